package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/apigate"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/nodeemu"
)

// crashPoint is an instant at which drillerd dies during a run.
type crashPoint struct {
	name string
	// phase is the phase the run is in when drillerd dies.
	phase drillsv1.Phase
	// arm shapes the run's drill and arms the hook that tells when the run
	// is at the instant (c.reached); it runs before the drill is created.
	arm func(t *testing.T, c *crashCase)
}

// crashCase is one crash point in one run of a drill of its own.
type crashCase struct {
	point crashPoint
	p     *production
	drill *drill
	run   *drillsv1.DrillRun
	// snapshot pins the run's snapshot when not empty.
	snapshot string
	// reached reports whether the run is at the instant.
	reached func(ctx context.Context) (bool, error)
	// afterRestart runs once drillerd is back, before the run is judged.
	afterRestart func(t *testing.T)
}

// interrupted reports whether a kill at this point leaves the run without
// its verdict: then it must end Error, Interrupted. From TearingDown on
// the run has its verdict, which stands; a run still Pending in the API
// server (its first status write not made) is started afresh and must
// pass.
func (c *crashCase) interrupted() bool {
	return c.point.phase != drillsv1.PhasePending && c.point.phase != drillsv1.PhaseTearingDown && c.point.phase != drillsv1.PhaseDone
}

// statusWrite matches drillerd's write of the run's status that sets phase.
func (c *crashCase) statusWrite(phase drillsv1.Phase) func(apigate.Request) bool {
	return func(r apigate.Request) bool {
		return r.Group == drillsv1.GroupVersion.Group && r.Resource == "drillruns" && r.Namespace == c.p.ns &&
			r.Name == c.runName() && (r.Verb == "update" || r.Verb == "patch") && r.StatusPhase() == string(phase)
	}
}

func (c *crashCase) runName() string { return c.drill.d.Name + "-1" }

// holdAt arms a gate hold; the run is at the instant once it holds.
func (c *crashCase) holdAt(when apigate.When, match func(apigate.Request) bool) {
	h := gate.Hold(c.point.name, when, match)
	c.reached = func(context.Context) (bool, error) {
		select {
		case <-h.Arrived():
			return true, nil
		default:
			return false, fmt.Errorf("no request held yet by %q", c.point.name)
		}
	}
}

// inPhase: the run is at the instant once it is in phase and cond holds.
func (c *crashCase) inPhase(phase drillsv1.Phase, cond func(ctx context.Context, run *drillsv1.DrillRun) (bool, error)) {
	c.reached = func(ctx context.Context) (bool, error) {
		run, err := c.p.get(ctx, c.run)
		if err != nil {
			return false, err
		}
		if run.Status.Phase != phase {
			return false, fmt.Errorf("phase %s", run.Status.Phase)
		}
		return cond(ctx, run)
	}
}

// boundary is the instant just after drillerd recorded that the run
// entered phase: the status write is committed, drillerd dies before it
// hears so, and before it does anything of the phase.
func boundary(phase drillsv1.Phase) crashPoint {
	return crashPoint{
		name:  "as the run enters " + string(phase),
		phase: phase,
		arm: func(t *testing.T, c *crashCase) {
			c.holdAt(apigate.AfterServer, c.statusWrite(phase))
		},
	}
}

// boundaries are the instants between phases. drillerd records the run's
// entering SelectingSnapshot together with its entering Provisioning (one
// status write for both): until then the run is Pending as far as the API
// server knows, and a kill leaves it so (inside SelectingSnapshot, below).
var boundaries = []crashPoint{
	boundary(drillsv1.PhaseProvisioning),
	boundary(drillsv1.PhaseRestoringVolume),
	boundary(drillsv1.PhaseStartingDatabase),
	boundary(drillsv1.PhaseValidating),
	boundary(drillsv1.PhaseTearingDown),
	boundary(drillsv1.PhaseDone),
}

// insides are instants inside each phase, in the middle of its work or
// while it waits.
var insides = []crashPoint{{
	// Nothing of the run is recorded or created yet: it is still Pending,
	// and the next drillerd starts it afresh, its RTO measured from then.
	name:  "inside SelectingSnapshot, reading the chosen snapshot's content, before the run's first status write",
	phase: drillsv1.PhasePending,
	arm: func(t *testing.T, c *crashCase) {
		// Only this run restores "older": the read of its content is this
		// run's selection.
		c.snapshot = "older"
		content := c.p.env.Content(c.p.snapshot(t, "older")).Name
		c.holdAt(apigate.BeforeServer, func(r apigate.Request) bool {
			return r.Verb == "get" && r.Resource == "volumesnapshotcontents" && r.Name == content
		})
	},
}, {
	name:  "inside Provisioning, the namespace and content copy made, the VolumeSnapshot not yet",
	phase: drillsv1.PhaseProvisioning,
	arm: func(t *testing.T, c *crashCase) {
		prefix := restore.NamespacePrefix + c.drill.d.Name + "-"
		c.holdAt(apigate.BeforeServer, func(r apigate.Request) bool {
			return r.Verb == "create" && r.Resource == "volumesnapshots" && strings.HasPrefix(r.Namespace, prefix)
		})
	},
}, {
	name:  "inside RestoringVolume, the claim bound, its volume not yet labelled",
	phase: drillsv1.PhaseRestoringVolume,
	arm: func(t *testing.T, c *crashCase) {
		label := []byte(fmt.Sprintf("%q:%q", restore.LabelDrill, c.drill.d.Name))
		c.holdAt(apigate.BeforeServer, func(r apigate.Request) bool {
			return r.Verb == "patch" && r.Resource == "persistentvolumes" && bytes.Contains(r.Body, label)
		})
	},
}, {
	name:  "inside StartingDatabase, the image still being pulled",
	phase: drillsv1.PhaseStartingDatabase,
	arm: func(t *testing.T, c *crashCase) {
		annotateDatabasePods(t, c.p.env, c.drill.d.Name, map[string]string{nodeemu.AnnotationStartDelay: "1h"})
		c.inPhase(drillsv1.PhaseStartingDatabase, func(context.Context, *drillsv1.DrillRun) (bool, error) { return true, nil })
	},
}, {
	name:  "inside Validating, a check running",
	phase: drillsv1.PhaseValidating,
	arm: func(t *testing.T, c *crashCase) {
		c.drill.d.Spec.Checks = []drillsv1.Check{{Name: "slow", SQL: "SELECT 1 FROM pg_sleep(3600)", Expect: &drillsv1.Expectation{Equals: ptr.To("1")}}}
		c.inPhase(drillsv1.PhaseValidating, func(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
			return c.p.checkRunning(ctx, run)
		})
	},
}, {
	name:  "inside TearingDown, the sandbox namespace Terminating",
	phase: drillsv1.PhaseTearingDown,
	arm: func(t *testing.T, c *crashCase) {
		holdSandboxesOf(t, c.p.env, c.drill.d.Name)
		c.inPhase(drillsv1.PhaseTearingDown, func(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
			ns, err := c.p.env.Client.CoreV1().Namespaces().Get(ctx, run.Status.SandboxNamespace, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return ns.DeletionTimestamp != nil, nil
		})
		c.afterRestart = func(t *testing.T) {
			run, err := c.p.get(c.p.env.Ctx, c.run)
			if err != nil {
				t.Fatal(err)
			}
			if run.Status.Phase != drillsv1.PhaseTearingDown || run.Status.Result != drillsv1.ResultSucceeded {
				t.Errorf("%s: after the restart the run is %s/%s, want still TearingDown with its verdict Succeeded", c.point.name, run.Status.Phase, run.Status.Result)
			}
			releaseSandboxesOf(t, c.p.env, c.drill.d.Name)
		}
	},
}, {
	name:  "inside Done, the run counted in its drill's status but not marked so",
	phase: drillsv1.PhaseDone,
	arm: func(t *testing.T, c *crashCase) {
		// The patch that counts this run (runCounts, lastRun naming it);
		// the schedule's own patches of the drill's status are not it.
		counted := []byte(fmt.Sprintf("%q:%q", "name", c.runName()))
		c.holdAt(apigate.AfterServer, func(r apigate.Request) bool {
			return r.Resource == "restoredrills" && r.Subresource == "status" && r.Namespace == c.p.ns && r.Name == c.drill.d.Name && r.Verb == "patch" &&
				bytes.Contains(r.Body, []byte(`"runCounts"`)) && bytes.Contains(r.Body, counted)
		})
	},
}}

// TestCrashAtEveryInstant kills drillerd (SIGKILL) at every phase boundary
// and inside every phase, with one run held at each instant (so that one
// kill interrupts several runs), and starts it again: a run without a
// verdict ends Error, Interrupted, naming the phase it was in; a run with
// its verdict keeps it; nothing of any sandbox remains cleanupTimeout after
// the restart; the next drill passes; no source object was touched.
func TestCrashAtEveryInstant(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	p := setUpProduction(t)
	d := startDrillerd(t, "crash", gatedKubeconfig, "--max-concurrent-drills", "10")
	next := p.create(t, p.newDrill("next"))
	t.Run("at every phase boundary", func(t *testing.T) { p.crashAt(t, d, "at", boundaries, next) })
	t.Run("inside every phase", func(t *testing.T) { p.crashAt(t, d, "in", insides, next) })
	p.finish(t)
}

// crashAt runs one drill per point, kills d once every run is at its
// point, starts d again and judges.
func (p *production) crashAt(t *testing.T, d *fixture.Drillerd, prefix string, points []crashPoint, next *drillsv1.RestoreDrill) {
	sources := p.sources(t)
	cases := p.reach(t, prefix, points)
	d.Kill()
	gate.Disarm()
	startReady(t, d)
	p.judge(t, cases)
	p.passes(t, next, "next-"+prefix)
	sources.AssertUntouched(drillerdUser)
}

// reach starts one run per point, each of a drill of its own, and waits
// until every run is at its point.
func (p *production) reach(t *testing.T, prefix string, points []crashPoint) []*crashCase {
	t.Helper()
	var cases []*crashCase
	for i, point := range points {
		c := &crashCase{point: point, p: p, drill: p.newDrill(fmt.Sprintf("crash-%s-%d", prefix, i))}
		point.arm(t, c)
		p.create(t, c.drill)
		cases = append(cases, c)
	}
	for _, c := range cases {
		c.run = p.startRun(t, c.drill.d, c.runName(), c.snapshot)
	}
	for _, c := range cases {
		p.env.WaitFor(holdTimeout, "run "+c.run.Name+" to be "+c.point.name, c.reached)
		t.Logf("run %s is %s", c.run.Name, c.point.name)
	}
	return cases
}

// judge checks, once drillerd is back, that every run ended as it must
// and that nothing of its sandbox remains.
func (p *production) judge(t *testing.T, cases []*crashCase) {
	t.Helper()
	for _, c := range cases {
		if c.afterRestart != nil {
			c.afterRestart(t)
		}
	}
	for _, c := range cases {
		run := p.waitDone(t, c.run, cleanupTimeout)
		s := run.Status
		t.Logf("killed %s: run %s ended %s/%s: %s", c.point.name, run.Name, s.Result, s.Reason, s.Message)
		switch {
		case c.interrupted() && (s.Result != drillsv1.ResultError || s.Reason != "Interrupted" || !strings.Contains(s.Message, "in phase "+string(c.point.phase))):
			t.Errorf("%s: %s/%s (%s), want Error/Interrupted in phase %s", c.point.name, s.Result, s.Reason, s.Message, c.point.phase)
		case !c.interrupted() && s.Result != drillsv1.ResultSucceeded:
			t.Errorf("%s: %s/%s (%s), want Succeeded: the verdict recorded before the crash, or a run not yet recorded as started run afresh", c.point.name, s.Result, s.Reason, s.Message)
		}
		p.assertSandboxGone(t, run)
		if !c.interrupted() {
			p.assertCountedOnce(t, c.drill.d, run)
		}
	}
}

// assertCountedOnce checks that the drill's status counts its one run once.
func (p *production) assertCountedOnce(t *testing.T, d *drillsv1.RestoreDrill, run *drillsv1.DrillRun) {
	t.Helper()
	p.env.WaitFor(fixture.ShortTimeout, "run "+run.Name+" to be counted in its drill's status", func(ctx context.Context) (bool, error) {
		got := &drillsv1.RestoreDrill{}
		if err := p.c.Get(ctx, client.ObjectKeyFromObject(d), got); err != nil {
			return false, err
		}
		s := got.Status
		if s.LastRun == nil || s.LastRun.Name != run.Name {
			return false, fmt.Errorf("lastRun %+v", s.LastRun)
		}
		if s.RunCounts[drillsv1.ResultSucceeded] != 1 || len(s.RunCounts) != 1 {
			t.Errorf("drill %s counts %v after its one Succeeded run", d.Name, s.RunCounts)
		}
		return true, nil
	})
}

// snapshot reads a production snapshot.
func (p *production) snapshot(t *testing.T, name string) *snapshotv1.VolumeSnapshot {
	t.Helper()
	snap, err := p.env.Snapshots.SnapshotV1().VolumeSnapshots(p.ns).Get(p.env.Ctx, name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return snap
}

// checkRunning reports whether a backend of the run's sandbox database is
// executing a statement: PostgreSQL's process titles say so
// ("postgres: USER DATABASE CLIENT SELECT").
func (p *production) checkRunning(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
	pod, err := p.env.Client.CoreV1().Pods(run.Status.SandboxNamespace).Get(ctx, restore.DatabasePodName, metav1.GetOptions{})
	if err != nil {
		return false, err
	}
	if pod.Status.PodIP == "" || pod.Status.Phase != corev1.PodRunning {
		return false, fmt.Errorf("database pod %s", pod.Status.Phase)
	}
	postmaster := 0
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	titles := map[int]string{}
	parents := map[int]int{}
	for _, f := range procs {
		pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
		cmdline, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		line := strings.TrimRight(strings.ReplaceAll(string(cmdline), "\x00", " "), " ")
		if strings.Contains(line, "/postgres -D "+p.env.Cluster.CSIStore) && strings.Contains(line, "listen_addresses="+pod.Status.PodIP+" ") {
			postmaster = pid
		}
		if strings.HasPrefix(line, "postgres: ") {
			titles[pid] = line
			parents[pid] = ppid(pid)
		}
	}
	if postmaster == 0 {
		return false, fmt.Errorf("no PostgreSQL listens on %s", pod.Status.PodIP)
	}
	for pid, title := range titles {
		if parents[pid] == postmaster && strings.HasSuffix(title, " SELECT") {
			return true, nil
		}
	}
	return false, fmt.Errorf("no backend of the sandbox's database runs a statement")
}

// ppid is the parent of a process, from /proc/PID/stat.
func ppid(pid int) int {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// pid (comm) state ppid ...: comm may hold spaces and parentheses.
	rest := string(data[bytes.LastIndexByte(data, ')')+1:])
	fields := strings.Fields(rest)
	if len(fields) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(fields[1])
	return n
}

// soakEnv names the environment variable that turns on the longer
// variants of the fault suite (make soak).
const soakEnv = "DRILLERD_SOAK"

// TestCrashEachInstantAlone is TestCrashAtEveryInstant with one run and
// one kill per instant, and the next drill after each: no run at another
// instant can hide what a kill at this one leaves. A soak: make soak runs
// it.
func TestCrashEachInstantAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	if os.Getenv(soakEnv) == "" {
		t.Skip("a soak: make soak runs it (" + soakEnv + "=1)")
	}
	p := setUpProduction(t)
	d := startDrillerd(t, "crash-alone", gatedKubeconfig)
	next := p.create(t, p.newDrill("next"))
	for i, point := range append(slices.Clone(boundaries), insides...) {
		t.Run(point.name, func(t *testing.T) { p.crashAt(t, d, fmt.Sprintf("alone-%d", i), []crashPoint{point}, next) })
	}
	p.finish(t)
}
