package faults_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/localcluster"
	"github.com/drillerd/drillerd/test/nodeemu"
)

// apiOutage is how long the API server stays stopped mid-drill.
const apiOutage = 15 * time.Second

// TestOutages drills through outages of the cluster's machinery and
// through faults of the backup: each run ends with the verdict and reason
// a user expects (Error for the machinery, Failed for the backup), before
// its timeouts.total; its sandbox is removed once the cluster answers
// again; drillerd, running as deploy/ runs it (leader election on), never
// exits; and the next drill passes.
func TestOutages(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	p := setUpProduction(t)
	ensureStorageClasses(t, p.env)
	d := startDrillerd(t, "outages", directKubeconfig, "--leader-elect")
	next := p.create(t, p.newDrill("next"))
	t.Run("the API server stopped for 15s while the database starts", func(t *testing.T) { p.apiServerOutage(t, d, next) })
	t.Run("the snapshot controller stopped for a whole drill", func(t *testing.T) { p.snapshotControllerOutage(t, d, next) })
	t.Run("the snapshot controller's cache behind drillerd's content copy", func(t *testing.T) { p.snapshotControllerBehind(t, d) })
	t.Run("a database that crashes during the checks, a restore slower than its timeout, a snapshot that fails", func(t *testing.T) { p.backupFaults(t, d) })
	p.finish(t)
}

func (p *production) apiServerOutage(t *testing.T, d *fixture.Drillerd, next *drillsv1.RestoreDrill) {
	sources := p.sources(t)
	b := p.newDrill("api-outage")
	// The database's image takes a while to pull: the run waits in
	// StartingDatabase when the API server stops.
	annotateDatabasePods(t, p.env, b.d.Name, map[string]string{nodeemu.AnnotationStartDelay: "5s"})
	drill := p.create(t, b)
	run := p.startRun(t, drill, "api-outage-1", "")
	p.waitPhase(t, run, drillsv1.PhaseStartingDatabase, drillTimeout)
	stopComponent(t, localcluster.KubeAPIServer)
	stopped := time.Now()
	select {
	case <-time.After(apiOutage):
	case <-d.Exited():
		t.Fatalf("drillerd exited while the API server was stopped: %v", d.Crashed())
	}
	startComponent(t, localcluster.KubeAPIServer)
	t.Logf("the API server was stopped for %s", time.Since(stopped).Round(time.Millisecond))
	if err := d.Crashed(); err != nil {
		t.Fatalf("drillerd exited during the API server's outage: %v", err)
	}
	run = p.waitDone(t, run, drillTimeout)
	p.assertOnTime(t, run)
	// The backup is sound and the drill could judge it: the outage only
	// made the restore slower, and the RTO says so.
	if run.Status.Result != drillsv1.ResultSucceeded {
		t.Errorf("run %s: %s/%s (%s), want Succeeded", run.Name, run.Status.Result, run.Status.Reason, run.Status.Message)
	}
	t.Logf("run %s: %s, RTO %.1fs", run.Name, run.Status.Result, ptr.Deref(run.Status.RTO, drillsv1.RTOMeasurement{}).Seconds)
	p.assertSandboxGone(t, run)
	p.passes(t, next, "next-api-outage")
	sources.AssertUntouched(drillerdUser)
}

func (p *production) snapshotControllerOutage(t *testing.T, d *fixture.Drillerd, next *drillsv1.RestoreDrill) {
	sources := p.sources(t)
	b := p.newDrill("snapshot-controller-outage")
	b.d.Spec.Timeouts.Volume = &metav1.Duration{Duration: 20 * time.Second}
	drill := p.create(t, b)
	stopComponent(t, localcluster.SnapshotController)
	run := p.waitDone(t, p.startRun(t, drill, "snapshot-controller-outage-1", ""), drillTimeout)
	startComponent(t, localcluster.SnapshotController)
	p.assertOnTime(t, run)
	// Nothing is known about the backup: no snapshot controller took the
	// sandbox's VolumeSnapshot in hand.
	s := run.Status
	if s.Result != drillsv1.ResultError || s.Reason != "SnapshotControllerUnavailable" {
		t.Errorf("run %s: %s/%s (%s), want Error/SnapshotControllerUnavailable", run.Name, s.Result, s.Reason, s.Message)
	}
	t.Logf("run %s: %s/%s: %s", run.Name, s.Result, s.Reason, s.Message)
	p.assertSandboxGone(t, run)
	if err := d.Crashed(); err != nil {
		t.Fatal(err)
	}
	p.passes(t, next, "next-snapshot-controller-outage")
	sources.AssertUntouched(drillerdUser)
}

// snapshotControllerBehind drills through the snapshot controller's error
// on the sandbox's VolumeSnapshot while its cache has not yet seen the
// content copy drillerd made ("VolumeSnapshotContent is missing", which it
// writes, and then tries again, when its watch of contents lags behind,
// as after an API server outage). The controller is stopped while drillerd
// makes the copy, and the test writes that error as the controller does.
// The run waits, says why in status.lastError, and passes once the
// controller, started again, binds the two.
func (p *production) snapshotControllerBehind(t *testing.T, d *fixture.Drillerd) {
	const missing = "VolumeSnapshotContent is missing"
	sources := p.sources(t)
	drill := p.create(t, p.newDrill("snapshot-controller-behind"))
	stopComponent(t, localcluster.SnapshotController)
	run := p.waitPhase(t, p.startRun(t, drill, "snapshot-controller-behind-1", ""), drillsv1.PhaseRestoringVolume, drillTimeout)
	snapshots := p.env.Snapshots.SnapshotV1().VolumeSnapshots(run.Status.SandboxNamespace)
	var vs *snapshotv1.VolumeSnapshot
	p.env.WaitFor(holdTimeout, "the sandbox's VolumeSnapshot", func(ctx context.Context) (bool, error) {
		var err error
		vs, err = snapshots.Get(ctx, restore.SourceSnapshotName, metav1.GetOptions{})
		return err == nil, err
	})
	if vs.Status != nil {
		t.Fatalf("VolumeSnapshot %s/%s has a status while no snapshot controller runs: %+v", vs.Namespace, vs.Name, vs.Status)
	}
	vs.Status = &snapshotv1.VolumeSnapshotStatus{
		ReadyToUse: ptr.To(false),
		Error:      &snapshotv1.VolumeSnapshotError{Time: &metav1.Time{Time: time.Now()}, Message: ptr.To(missing)},
	}
	if _, err := snapshots.UpdateStatus(p.env.Ctx, vs, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("writing the snapshot controller's error on VolumeSnapshot %s/%s: %v", vs.Namespace, vs.Name, err)
	}
	p.env.WaitFor(holdTimeout, "run "+run.Name+" to record the snapshot controller's error", func(ctx context.Context) (bool, error) {
		got, err := p.get(ctx, run)
		if err != nil {
			return false, err
		}
		if got.Status.Result != "" {
			t.Fatalf("run %s ended on the snapshot controller's passing error: %s/%s (%s)", run.Name, got.Status.Result, got.Status.Reason, got.Status.Message)
		}
		return strings.Contains(got.Status.LastError, missing), fmt.Errorf("phase %s, lastError %q", got.Status.Phase, got.Status.LastError)
	})
	startComponent(t, localcluster.SnapshotController)
	run = p.waitDone(t, run, drillTimeout)
	p.assertOnTime(t, run)
	if s := run.Status; s.Result != drillsv1.ResultSucceeded || s.LastError != "" {
		t.Errorf("run %s: %s/%s (%s), lastError %q; want Succeeded with no error left", run.Name, s.Result, s.Reason, s.Message, s.LastError)
	}
	p.assertSandboxGone(t, run)
	if err := d.Crashed(); err != nil {
		t.Fatal(err)
	}
	sources.AssertUntouched(drillerdUser)
}

// backupFaults runs three drills at once, each with a fault of the backup
// or its storage: each is Failed, naming what failed.
func (p *production) backupFaults(t *testing.T, d *fixture.Drillerd) {
	sources := p.sources(t)
	env := p.env

	// The restored database is killed 15s after it starts, while a check
	// that takes ten minutes runs.
	crash := p.newDrill("crashing-database")
	crash.d.Spec.Checks = append(crash.d.Spec.Checks, drillsv1.Check{Name: "slow", SQL: "SELECT count(*) FROM orders, pg_sleep(600)", Expect: &drillsv1.Expectation{Min: ptr.To("1")}})
	annotateDatabasePods(t, env, crash.d.Name, map[string]string{nodeemu.AnnotationCrashAfter: "15s"})

	// The restore copies at slowRestoreRate: far slower than 10s.
	slow := p.newDrill("slow-restore").storageClass(slowRestoreClass)
	slow.d.Spec.Timeouts.Volume = &metav1.Duration{Duration: 10 * time.Second}

	// The only snapshot of the ledger's claim failed: the CSI driver
	// refused it.
	ledger := p.failedSnapshotClaim(t)
	failed := p.newDrill("ledger").source(ledger)

	runs := map[string]*drillsv1.DrillRun{}
	for _, b := range []*drill{crash, slow, failed} {
		runs[b.d.Name] = p.startRun(t, p.create(t, b), b.d.Name+"-1", "")
	}
	for name, run := range runs {
		runs[name] = p.waitDone(t, run, drillTimeout)
	}
	want := map[string]struct{ reason, says string }{
		crash.d.Name:  {"DatabaseFailed", "stopped during the checks"},
		slow.d.Name:   {"RestoreFailed", "not bound after 10s"},
		failed.d.Name: {"NoReadySnapshot", "failed to take snapshot"},
	}
	for name, run := range runs {
		s := run.Status
		t.Logf("run %s: %s/%s: %s", run.Name, s.Result, s.Reason, s.Message)
		if w := want[name]; s.Result != drillsv1.ResultFailed || s.Reason != w.reason || !strings.Contains(s.Message, w.says) {
			t.Errorf("run %s: %s/%s (%s), want Failed/%s saying %q", run.Name, s.Result, s.Reason, s.Message, w.reason, w.says)
		}
		p.assertOnTime(t, run)
		p.assertSandboxGone(t, run)
	}
	p.assertCrashedDuringChecks(t, runs[crash.d.Name])
	if err := d.Crashed(); err != nil {
		t.Fatal(err)
	}
	sources.AssertUntouched(drillerdUser)
}

// failedSnapshotClaim makes a claim whose only VolumeSnapshot failed (the
// emulated CSI driver's snapshot-error knob) and returns its name.
func (p *production) failedSnapshotClaim(t *testing.T) string {
	t.Helper()
	env := p.env
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: "data-ledger-0"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(localcluster.ImmediateStorageClassName),
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := env.Client.CoreV1().PersistentVolumeClaims(p.ns).Create(env.Ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(fixture.ShortTimeout, "claim "+claim.Name+" to be bound", func(ctx context.Context) (bool, error) {
		c, err := env.Client.CoreV1().PersistentVolumeClaims(p.ns).Get(ctx, claim.Name, metav1.GetOptions{})
		return err == nil && c.Status.Phase == corev1.ClaimBound, err
	})
	env.StartSnapshot(p.ns, "ledger-nightly", claim.Name, map[string]string{nodeemu.AnnotationSnapshotError: "the storage backend is out of snapshot space"})
	env.WaitSnapshotFailed(p.ns, "ledger-nightly")
	return claim.Name
}

// assertCrashedDuringChecks checks with the node emulator's ground truth
// that the database process of run exited while the run was validating.
func (p *production) assertCrashedDuringChecks(t *testing.T, run *drillsv1.DrillRun) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(p.env.Cluster.GroundTruth, "pods", run.Status.SandboxNamespace+"_db.json"))
	if err != nil {
		t.Fatalf("the ground truth of the database pod of %s: %v", run.Name, err)
	}
	var truth nodeemu.PodTruth
	if err := json.Unmarshal(data, &truth); err != nil {
		t.Fatal(err)
	}
	start, ok := phaseStart(run, drillsv1.PhaseValidating)
	if len(truth.Processes) == 0 || !ok {
		t.Fatalf("run %s: processes %+v, Validating started %v", run.Name, truth.Processes, ok)
	}
	if exited := truth.Processes[0].Exited; exited.IsZero() || exited.Before(start) {
		t.Errorf("the database of run %s exited at %s, not during the checks (from %s)", run.Name, exited, start)
	}
}

func phaseStart(run *drillsv1.DrillRun, phase drillsv1.Phase) (time.Time, bool) {
	for _, ph := range run.Status.Phases {
		if ph.Name == phase {
			return ph.StartTime.Time, true
		}
	}
	return time.Time{}, false
}

// assertOnTime checks that the run ended before its timeouts.total.
func (p *production) assertOnTime(t *testing.T, run *drillsv1.DrillRun) {
	t.Helper()
	s := run.Status
	if s.Deadline == nil || s.CompletionTime == nil || s.CompletionTime.After(s.Deadline.Time) {
		t.Errorf("run %s completed at %v, its timeouts.total deadline is %v", run.Name, s.CompletionTime, s.Deadline)
	}
}

func stopComponent(t *testing.T, name string) {
	t.Helper()
	if err := localcluster.StopComponent(context.Background(), cluster.StateDir, name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { startComponent(t, name) }) // whatever happens, the cluster is whole again
}

func startComponent(t *testing.T, name string) {
	t.Helper()
	if err := localcluster.StartComponent(context.Background(), cluster.StateDir, name); err != nil {
		t.Fatal(err)
	}
}

func (b *drill) storageClass(name string) *drill {
	b.d.Spec.Sandbox.StorageClassName = &name
	return b
}

func (b *drill) source(claim string) *drill {
	b.d.Spec.Source.PersistentVolumeClaimName = claim
	return b
}

// waitPhase waits until a run is in phase (or later, when it passed by).
func (p *production) waitPhase(t *testing.T, run *drillsv1.DrillRun, phase drillsv1.Phase, timeout time.Duration) *drillsv1.DrillRun {
	t.Helper()
	var got *drillsv1.DrillRun
	p.env.WaitFor(timeout, fmt.Sprintf("run %s to be in phase %s", run.Name, phase), func(ctx context.Context) (bool, error) {
		assertNoneCrashed(t)
		var err error
		got, err = p.get(ctx, run)
		if err != nil {
			return false, err
		}
		return got.Status.Phase == phase, fmt.Errorf("phase %s", got.Status.Phase)
	})
	return got
}

// Storage classes of the emulated driver with fault knobs.
const (
	// slowRestoreClass restores volumes at slowRestoreRate.
	slowRestoreClass = "hostpath-faults-slow-restore"
	slowRestoreRate  = 1 << 20 // bytes per second
)

func ensureStorageClasses(t *testing.T, env *fixture.Env) {
	t.Helper()
	binding := storagev1.VolumeBindingImmediate
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: slowRestoreClass},
		Provisioner:       nodeemu.DriverName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: &binding,
		Parameters:        map[string]string{nodeemu.ParameterRestoreBytesPerSecond: fmt.Sprint(slowRestoreRate)},
	}
	if _, err := env.Client.StorageV1().StorageClasses().Create(env.Ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}
