package drill

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/verdict"
)

func TestExtraRunsWaitPendingForASlot(t *testing.T) {
	tests := []struct {
		name      string
		others    []client.Object
		max       int
		wantPhase drillsv1.Phase
	}{
		{"slots full", []client.Object{newRun("a").In(drillsv1.PhaseValidating).Obj(), newRun("b").In(drillsv1.PhaseRestoringVolume).Obj()}, 2, drillsv1.PhasePending},
		{"finished runs and runs created later hold no slot", []client.Object{newRun("a").In(drillsv1.PhaseDone).Obj(), newRun("b").Created(t0.Add(time.Second)).In(drillsv1.PhasePending).Obj(), newRun("c").In(drillsv1.PhaseValidating).Obj()}, 2, drillsv1.PhaseSelectingSnapshot},
		{"a run created before waits for the one free slot", []client.Object{newRun("b").Created(t0.Add(-time.Second)).In(drillsv1.PhasePending).Obj(), newRun("c").In(drillsv1.PhaseValidating).Obj()}, 2, drillsv1.PhasePending},
		{"two free slots: one for the run created before, one for this", []client.Object{newRun("b").Created(t0.Add(-time.Second)).In(drillsv1.PhasePending).Obj()}, 2, drillsv1.PhaseSelectingSnapshot},
		{"runs tearing down with their verdict hold no slot", []client.Object{newRun("a").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultFailed).Obj(), newRun("b").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).Obj()}, 1, drillsv1.PhaseSelectingSnapshot},
		{"a run tearing down without a verdict holds its slot", []client.Object{newRun("a").In(drillsv1.PhaseTearingDown).Obj(), newRun("b").In(drillsv1.PhaseTearingDown).Obj()}, 2, drillsv1.PhasePending},
		{"no limit", []client.Object{newRun("a").In(drillsv1.PhaseValidating).Obj(), newRun("b").In(drillsv1.PhaseValidating).Obj()}, 0, drillsv1.PhaseSelectingSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No snapshots: an admitted run goes on to select one.
			e := newEngine(t, interceptor.Funcs{}, append(tt.others, ordersDrill().Obj(), newRun("new").Created(t0).Obj())...)
			e.r.MaxInFlight = tt.max
			res := e.mustReconcile("new")
			got := e.run("new")
			if tt.wantPhase == drillsv1.PhasePending {
				if got.Status.Phase != drillsv1.PhasePending || got.Status.StartTime != nil || res.RequeueAfter != pendingRecheck ||
					!strings.Contains(got.Status.Message, "waiting for one of the 2 drill slots") {
					t.Errorf("phase %s, start %v, requeue %s, message %q: want Pending, not started, rechecking, saying why", got.Status.Phase, got.Status.StartTime, res.RequeueAfter, got.Status.Message)
				}
				return
			}
			if got.Status.StartTime == nil || got.Status.Deadline == nil || len(got.Status.Phases) == 0 || got.Status.Phases[0].Name != drillsv1.PhaseSelectingSnapshot {
				t.Errorf("run did not start: %+v", got.Status)
			}
		})
	}
}

func TestAPendingRunStartsWhenASlotFrees(t *testing.T) {
	busy := newRun("busy").In(drillsv1.PhaseValidating).Obj()
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), busy, newRun("new").Obj())
	e.r.MaxInFlight = 1
	e.mustReconcile("new")
	busy = e.run("busy")
	busy.Status.Phase = drillsv1.PhaseDone
	e.updateStatus(busy)
	e.mustReconcile("new")
	got := e.run("new")
	if got.Status.StartTime == nil || strings.Contains(got.Status.Message, "waiting") || phases(got)[0] != drillsv1.PhasePending || phases(got)[1] != drillsv1.PhaseSelectingSnapshot {
		t.Errorf("status %+v: want started after its Pending wait, the waiting message gone", got.Status)
	}
}

func TestAnAdmittedRunFreesItsSlotWithItsVerdictOnceItsSandboxGoes(t *testing.T) {
	// busy is admitted by this process and waits for its volume; then it
	// has its verdict, and its sandbox's deletion is asked for but stuck.
	e := newEngine(t, interceptor.Funcs{}, append(source(), ordersDrill().Obj(), newRun("busy").Obj(), newRun("new").Obj())...)
	e.r.MaxInFlight = 1
	e.mustReconcile("busy")
	e.mustReconcile("new")
	if busy, got := e.run("busy"), e.run("new"); busy.Status.Phase != drillsv1.PhaseRestoringVolume || got.Status.StartTime != nil {
		t.Fatalf("busy in %s, new started at %v: want busy restoring in the only slot, new waiting", busy.Status.Phase, got.Status.StartTime)
	}
	busy := e.run("busy")
	busy.Status.Phase, busy.Status.Result = drillsv1.PhaseTearingDown, drillsv1.ResultFailed
	e.updateStatus(busy)
	e.mustReconcile("new")
	if got := e.run("new"); got.Status.StartTime != nil {
		t.Fatalf("new started while the sandbox of busy stands, its deletion not asked for: %+v", got.Status)
	}
	// A finalizer no controller removes keeps the namespace Terminating.
	ns := &corev1.Namespace{}
	if err := e.c.Get(context.Background(), client.ObjectKey{Name: busy.Status.SandboxNamespace}, ns); err != nil {
		t.Fatal(err)
	}
	ns.Finalizers = append(ns.Finalizers, "example.com/stuck")
	if err := e.c.Update(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	if err := e.c.Delete(context.Background(), ns); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile("new")
	if got := e.run("new"); got.Status.StartTime == nil {
		t.Errorf("new still waits for the slot of a run that has its verdict and whose sandbox is being deleted: %+v", got.Status)
	}
}

func TestARunWithItsVerdictHoldsItsSlotWhileItsSandboxStands(t *testing.T) {
	standing := map[string]bool{"drill-a-1": true}
	tests := []struct {
		name   string
		status drillsv1.DrillRunStatus
		want   bool
	}{
		{"in flight", drillsv1.DrillRunStatus{Phase: drillsv1.PhaseValidating}, true},
		{"tearing down, its sandbox standing", drillsv1.DrillRunStatus{Phase: drillsv1.PhaseTearingDown, Result: drillsv1.ResultSucceeded, SandboxNamespace: "drill-a-1"}, true},
		{"tearing down, its sandbox being deleted", drillsv1.DrillRunStatus{Phase: drillsv1.PhaseTearingDown, Result: drillsv1.ResultSucceeded, SandboxNamespace: "drill-b-1"}, false},
		{"tearing down, no sandbox made", drillsv1.DrillRunStatus{Phase: drillsv1.PhaseTearingDown, Result: drillsv1.ResultFailed}, false},
		{"a failed sandbox kept for keepOnFailure", drillsv1.DrillRunStatus{Phase: drillsv1.PhaseTearingDown, Result: drillsv1.ResultFailed, SandboxNamespace: "drill-a-1", SandboxExpiry: &metav1.Time{Time: t0}}, false},
		{"done", drillsv1.DrillRunStatus{Phase: drillsv1.PhaseDone, Result: drillsv1.ResultSucceeded, SandboxNamespace: "drill-a-1"}, false},
		{"pending", drillsv1.DrillRunStatus{Phase: drillsv1.PhasePending}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := holdsSlot(tt.status, standing); got != tt.want {
				t.Errorf("holdsSlot = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestTheAPIServerConfirmsASlot: a run the cache does not show yet, created
// before this one, is waited for.
func TestTheAPIServerConfirmsASlot(t *testing.T) {
	older := newRun("older").Created(t0.Add(-time.Second)).Obj()
	funcs := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if err := c.List(ctx, list, opts...); err != nil {
			return err
		}
		if runs, ok := list.(*drillsv1.DrillRunList); ok {
			runs.Items = slices.DeleteFunc(runs.Items, func(r drillsv1.DrillRun) bool { return r.Name == "older" })
		}
		return nil
	}}
	objs := func() []client.Object {
		return append(source(), ordersDrill().Obj(), older.DeepCopy(), newRun("new").Created(t0).Obj())
	}
	e := newEngine(t, funcs, objs()...)
	e.r.APIReader = newEngine(t, interceptor.Funcs{}, objs()...).c // the API server sees every run
	e.r.MaxInFlight = 1
	e.mustReconcile("new")
	if got := e.run("new"); got.Status.StartTime != nil {
		t.Errorf("new took the only slot before the older run the cache does not show yet: %+v", got.Status)
	}
}

func TestSlotsHoldWhileTheCacheLags(t *testing.T) {
	// The cache keeps answering as it did at the start: both runs Pending.
	stale := []client.Object{newRun("a").In(drillsv1.PhasePending).Obj(), newRun("b").In(drillsv1.PhasePending).Obj()}
	funcs := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if runs, ok := list.(*drillsv1.DrillRunList); ok {
			runs.Items = nil
			for _, o := range stale {
				runs.Items = append(runs.Items, *o.(*drillsv1.DrillRun).DeepCopy())
			}
			return nil
		}
		return c.List(ctx, list, opts...)
	}}
	objs := append(source(), ordersDrill().Obj())
	objs = append(objs, stale[0].DeepCopyObject().(client.Object), stale[1].DeepCopyObject().(client.Object))
	e := newEngine(t, funcs, objs...)
	e.r.MaxInFlight = 1
	e.mustReconcile("a")
	e.mustReconcile("b")
	if a, b := e.run("a"), e.run("b"); a.Status.StartTime == nil || b.Status.StartTime != nil {
		t.Errorf("run a started %v, run b started %v: want exactly one run in the single slot", a.Status.StartTime, b.Status.StartTime)
	}
}

func TestARunOfAMissingDrillEndsAtOnce(t *testing.T) {
	e := newEngine(t, interceptor.Funcs{}, newRun("r1").Obj()) // no RestoreDrill
	e.r.MaxInFlight = 1
	e.mustReconcile("r1")
	got := e.run("r1")
	if got.Status.Result != drillsv1.ResultError || got.Status.Reason != verdict.ReasonDrillNotFound || got.Status.Phase != drillsv1.PhaseDone ||
		!strings.Contains(got.Status.Message, "RestoreDrill prod/orders-db does not exist") {
		t.Errorf("status %s/%s %q in %s, want Error/DrillNotFound and Done", got.Status.Result, got.Status.Reason, got.Status.Message, got.Status.Phase)
	}
	if got.Status.StartTime == nil || got.Status.CompletionTime == nil {
		t.Errorf("start %v, completion %v: a run that ended has both", got.Status.StartTime, got.Status.CompletionTime)
	}
}

// TestRunsStartInTheOrderTheyWereCreated: ten runs created one after the
// other and three slots: whichever run looks for a slot first, the first
// three created start, then one more as each finishes, in the order of
// creation (runs created in the same second in the order of their names).
func TestRunsStartInTheOrderTheyWereCreated(t *testing.T) {
	var objs []client.Object
	var names []string
	for i := range 10 {
		name := fmt.Sprintf("run-%d", i)
		names = append(names, name)
		objs = append(objs, newRun(name).Created(t0.Add(time.Duration(i/4)*time.Second)).Obj())
	}
	e := newEngine(t, interceptor.Funcs{}, append(append(source(), ordersDrill().Obj()), objs...)...)
	e.r.MaxInFlight = 3
	var started []string
	for len(started) < len(names) {
		// The newest runs look for a slot first.
		for i := len(names) - 1; i >= 0; i-- {
			if e.run(names[i]).Status.StartTime == nil {
				e.mustReconcile(names[i])
				if e.run(names[i]).Status.StartTime != nil {
					started = append(started, names[i])
				}
			}
		}
		// Whichever of them asked first, the runs started are the first
		// ones created.
		for _, name := range names[:len(started)] {
			if !slices.Contains(started, name) {
				t.Fatalf("runs started %v, before %s", started, name)
			}
		}
		inFlight := 0
		for _, name := range names {
			if s := e.run(name).Status; s.StartTime != nil && s.Result == "" {
				inFlight++
			}
		}
		if inFlight > 3 {
			t.Fatalf("%d runs in flight, want at most 3", inFlight)
		}
		// The first run started that is still in flight finishes.
		for _, name := range started {
			if run := e.run(name); run.Status.Result == "" {
				run.Status.Phase, run.Status.Result = drillsv1.PhaseDone, drillsv1.ResultSucceeded
				e.updateStatus(run)
				break
			}
		}
	}
	if !slices.Equal(started[3:], names[3:]) {
		t.Errorf("runs started in the order %v, want %v after the first three", started, names)
	}
}
