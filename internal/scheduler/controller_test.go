package scheduler

import (
	"context"
	"fmt"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

var created = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

type drillBuilder struct{ d *drillsv1.RestoreDrill }

func newDrill(schedule string) *drillBuilder {
	return &drillBuilder{d: &drillsv1.RestoreDrill{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "orders-db", UID: "drill-uid", CreationTimestamp: metav1.Time{Time: created}},
		Spec:       drillsv1.RestoreDrillSpec{Schedule: schedule, Database: drillsv1.DatabaseSpec{Image: "postgres:16"}},
	}}
}
func (b *drillBuilder) TimeZone(tz string) *drillBuilder { b.d.Spec.TimeZone = &tz; return b }
func (b *drillBuilder) Suspended() *drillBuilder         { b.d.Spec.Suspend = true; return b }
func (b *drillBuilder) History(n int32) *drillBuilder    { b.d.Spec.HistoryLimit = &n; return b }
func (b *drillBuilder) Obj() *drillsv1.RestoreDrill      { return b.d }

func run(name string, phase drillsv1.Phase, age time.Duration) *drillsv1.DrillRun {
	return &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: name, UID: types.UID(name), CreationTimestamp: metav1.Time{Time: created.Add(-age)}},
		Spec:       drillsv1.DrillRunSpec{DrillName: "orders-db"},
		Status:     drillsv1.DrillRunStatus{Phase: phase},
	}
}

type harness struct {
	c       client.Client
	ctl     *Controller
	clock   *clocktesting.FakePassiveClock
	skipped []string
}

func newHarness(t *testing.T, now time.Time, objs ...client.Object) *harness {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	if err := drillsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := fake.NewClientBuilder().WithScheme(s).WithObjects(objs...).
		WithStatusSubresource(&drillsv1.RestoreDrill{}, &drillsv1.DrillRun{}).
		WithIndex(&drillsv1.DrillRun{}, DrillNameField, func(o client.Object) []string { return []string{o.(*drillsv1.DrillRun).Spec.DrillName} }).
		Build()
	h := &harness{c: c, clock: clocktesting.NewFakePassiveClock(now)}
	h.ctl = &Controller{Client: c, Clock: h.clock, Recorder: events.NewFakeRecorder(100),
		Skipped: func(ns, drill, reason string) { h.skipped = append(h.skipped, reason) }}
	return h
}

func (h *harness) reconcile(t *testing.T) (ctrl.Result, *drillsv1.RestoreDrill, []drillsv1.DrillRun) {
	t.Helper()
	res, err := h.ctl.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: "orders-db"}})
	if err != nil {
		t.Fatal(err)
	}
	d := &drillsv1.RestoreDrill{}
	if err := h.c.Get(context.Background(), types.NamespacedName{Namespace: "prod", Name: "orders-db"}, d); err != nil {
		t.Fatal(err)
	}
	runs := &drillsv1.DrillRunList{}
	if err := h.c.List(context.Background(), runs); err != nil {
		t.Fatal(err)
	}
	return res, d, runs.Items
}

func TestTickCreatesExactlyOneRun(t *testing.T) {
	tick := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	h := newHarness(t, tick.Add(20*time.Second), newDrill("0 3 * * *").Obj())

	res, d, runs := h.reconcile(t)
	if len(runs) != 1 {
		t.Fatalf("%d runs, want 1", len(runs))
	}
	r := runs[0]
	if r.Name != RunName("orders-db", tick) || r.Spec.Trigger != drillsv1.TriggerSchedule || !r.Spec.ScheduledTime.Time.Equal(tick) {
		t.Errorf("run %s trigger %s scheduled %v", r.Name, r.Spec.Trigger, r.Spec.ScheduledTime)
	}
	if owner := metav1.GetControllerOf(&r); owner == nil || owner.Name != "orders-db" {
		t.Errorf("run is not owned by its drill: %+v", r.OwnerReferences)
	}
	if !d.Status.LastScheduleTime.Time.Equal(tick) || !d.Status.NextScheduleTime.Time.Equal(tick.Add(24*time.Hour)) {
		t.Errorf("last %v next %v", d.Status.LastScheduleTime, d.Status.NextScheduleTime)
	}
	if want := 24*time.Hour - 20*time.Second; res.RequeueAfter < want || res.RequeueAfter > want+time.Second {
		t.Errorf("requeue after %s, want about %s", res.RequeueAfter, want)
	}

	// A retry or a second replica handling the same tick creates nothing.
	h.clock.SetTime(tick.Add(40 * time.Second))
	if _, _, runs := h.reconcile(t); len(runs) != 1 {
		t.Errorf("%d runs after a second reconcile, want still 1", len(runs))
	}
	if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(d), d); err != nil {
		t.Fatal(err)
	}
	d.Status.LastScheduleTime = nil // as if the status write had been lost
	if err := h.c.Status().Update(context.Background(), d); err != nil {
		t.Fatal(err)
	}
	if _, _, runs := h.reconcile(t); len(runs) != 1 {
		t.Errorf("%d runs after losing lastScheduleTime, want still 1 (deterministic name)", len(runs))
	}
}

func TestTicks(t *testing.T) {
	tick := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name        string
		drill       *drillsv1.RestoreDrill
		runs        []client.Object
		now         time.Time
		wantRuns    int
		wantSkipped []string
		wantReason  string
		wantNext    bool
	}{
		{"previous run still going", newDrill("0 3 * * *").Obj(), []client.Object{run("older", drillsv1.PhaseValidating, time.Hour)}, tick.Add(time.Second), 1, []string{SkipAlreadyRunning}, "Scheduled", true},
		{"tick missed by more than the deadline", newDrill("0 3 * * *").Obj(), nil, tick.Add(time.Hour), 0, []string{SkipMissedDeadline}, "Scheduled", true},
		{"suspended", newDrill("0 3 * * *").Suspended().Obj(), nil, tick.Add(time.Second), 0, nil, "Suspended", false},
		{"on demand only", newDrill("").Obj(), nil, tick.Add(time.Second), 0, nil, "OnDemand", false},
		{"unknown time zone", newDrill("0 3 * * *").TimeZone("Mars/Olympus").Obj(), nil, tick.Add(time.Second), 0, nil, "InvalidSchedule", false},
		{"time zone moves the tick: 03:00 Berlin is 02:00 UTC", newDrill("0 3 * * *").TimeZone("Europe/Berlin").Obj(), nil, tick.Add(-time.Hour + time.Second), 1, nil, "Scheduled", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.now, append([]client.Object{tt.drill}, tt.runs...)...)
			_, d, runs := h.reconcile(t)
			if len(runs) != tt.wantRuns {
				t.Errorf("%d runs, want %d", len(runs), tt.wantRuns)
			}
			if fmt.Sprint(h.skipped) != fmt.Sprint(tt.wantSkipped) {
				t.Errorf("skipped %v, want %v", h.skipped, tt.wantSkipped)
			}
			ready := meta.FindStatusCondition(d.Status.Conditions, "Ready")
			if ready == nil || ready.Reason != tt.wantReason {
				t.Errorf("Ready condition %+v, want reason %s", ready, tt.wantReason)
			}
			if (d.Status.NextScheduleTime != nil) != tt.wantNext {
				t.Errorf("nextScheduleTime %v, want set=%v", d.Status.NextScheduleTime, tt.wantNext)
			}
		})
	}
}

func TestHistoryLimitPrunesTheOldestFinishedRuns(t *testing.T) {
	objs := []client.Object{newDrill("").History(3).Obj()}
	for i := range 5 {
		objs = append(objs, run(fmt.Sprintf("done-%d", i), drillsv1.PhaseDone, time.Duration(10-i)*time.Hour))
	}
	objs = append(objs, run("running", drillsv1.PhaseValidating, 20*time.Hour))
	// The oldest run failed and keeps its sandbox for debugging: it stays
	// until the sandbox is gone, or the sweep would take the sandbox early.
	kept := run("kept", drillsv1.PhaseDone, 30*time.Hour)
	kept.Status.SandboxExpiry = &metav1.Time{Time: created.Add(time.Hour)}
	objs = append(objs, kept)
	h := newHarness(t, created, objs...)
	_, _, runs := h.reconcile(t)
	var names []string
	for _, r := range runs {
		names = append(names, r.Name)
	}
	want := "[done-2 done-3 done-4 kept running]"
	if fmt.Sprint(names) != want {
		t.Errorf("runs kept %v, want %s (the 3 newest finished, the one keeping its sandbox and the one in progress)", names, want)
	}
}
