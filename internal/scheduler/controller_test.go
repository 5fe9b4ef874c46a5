package scheduler

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

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
	// The run is created before the drill's status is written; its
	// creation wakes the drill, which then records the tick.
	if d.Status.LastScheduleTime != nil || res.RequeueAfter != tickRecordRecheck {
		t.Errorf("after creating the run: last %v, requeue after %s; want no status write yet and a look again after %s", d.Status.LastScheduleTime, res.RequeueAfter, tickRecordRecheck)
	}
	h.clock.SetTime(tick.Add(21 * time.Second))
	res, d, runs = h.reconcile(t)
	if len(runs) != 1 {
		t.Fatalf("%d runs after the run's creation woke the drill, want still 1", len(runs))
	}
	if d.Status.LastScheduleTime == nil || !d.Status.LastScheduleTime.Time.Equal(tick) || !d.Status.NextScheduleTime.Time.Equal(tick.Add(24*time.Hour)) {
		t.Errorf("last %v next %v", d.Status.LastScheduleTime, d.Status.NextScheduleTime)
	}
	if want := 24*time.Hour - 21*time.Second; res.RequeueAfter != want {
		t.Errorf("requeue after %s, want %s", res.RequeueAfter, want)
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
		deadline    time.Duration // Controller.StartingDeadline; zero is the default
		now         time.Time
		wantRuns    int
		wantSkipped string // the reason counted in status.skippedTicks
		wantEvent   string // in the RunSkipped event's message
		wantReason  string
		wantNext    bool
	}{
		{
			name: "previous run still going", drill: newDrill("0 3 * * *").Obj(),
			runs: []client.Object{newRun("older").In(drillsv1.PhaseValidating).Created(created.Add(-time.Hour)).Obj()},
			now:  tick.Add(time.Second), wantRuns: 1,
			wantSkipped: SkipAlreadyRunning, wantEvent: "run older is still in progress", wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "previous run tearing down with its verdict: the tick starts a run", drill: newDrill("0 3 * * *").Obj(),
			runs: []client.Object{newRun("older").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultFailed).Created(created.Add(-time.Hour)).Obj()},
			now:  tick.Add(time.Second), wantRuns: 2, wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "previous run done with its sandbox leaked: the tick starts a run", drill: newDrill("0 3 * * *").Obj(),
			runs: []client.Object{newRun("older").In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).Sandbox("drill-orders-db-0a1b2c3d").Created(created.Add(-time.Hour)).Obj()},
			now:  tick.Add(time.Second), wantRuns: 2, wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "previous run still pending", drill: newDrill("0 3 * * *").Obj(),
			runs: []client.Object{newRun("older").In(drillsv1.PhasePending).Created(created.Add(-time.Hour)).Obj()},
			now:  tick.Add(time.Second), wantRuns: 1,
			wantSkipped: SkipAlreadyRunning, wantEvent: "run older is still in progress", wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "tick missed by more than the deadline", drill: newDrill("0 3 * * *").Obj(),
			now: tick.Add(time.Hour), wantRuns: 0,
			wantSkipped: SkipMissedDeadline, wantEvent: "was missed by 1h0m0s (more than 10m0s late)", wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "a longer starting deadline still starts a late tick", drill: newDrill("0 3 * * *").Obj(),
			deadline: 2 * time.Hour, now: tick.Add(time.Hour), wantRuns: 1, wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "a shorter starting deadline skips a tick the default would start", drill: newDrill("0 3 * * *").Obj(),
			deadline: 30 * time.Second, now: tick.Add(time.Minute), wantRuns: 0,
			wantSkipped: SkipMissedDeadline, wantEvent: "was missed by 1m0s (more than 30s late)", wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "suspended", drill: newDrill("0 3 * * *").Suspended().Obj(),
			now: tick.Add(time.Second), wantRuns: 0, wantReason: "Suspended",
		},
		{
			name: "on demand only", drill: newDrill("").Obj(),
			now: tick.Add(time.Second), wantRuns: 0, wantReason: "OnDemand",
		},
		{
			name: "a single-word IANA zone: 03:00 Japan is 18:00 UTC the day before", drill: newDrill("0 3 * * *").TimeZone("Japan").Obj(),
			now: tick.Add(15*time.Hour + time.Second), wantRuns: 1, wantReason: "Scheduled", wantNext: true,
		},
		{
			name: "unknown time zone", drill: newDrill("0 3 * * *").TimeZone("Mars/Olympus").Obj(),
			now: tick.Add(time.Second), wantRuns: 0, wantReason: "InvalidSchedule",
		},
		{
			name: "time zone moves the tick: 03:00 Berlin is 02:00 UTC", drill: newDrill("0 3 * * *").TimeZone("Europe/Berlin").Obj(),
			now: tick.Add(-time.Hour + time.Second), wantRuns: 1, wantReason: "Scheduled", wantNext: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.now, append([]client.Object{tt.drill}, tt.runs...)...)
			h.ctl.StartingDeadline = tt.deadline
			_, d, runs := h.reconcileAndWake(t)
			if len(runs) != tt.wantRuns {
				t.Errorf("%d runs, want %d", len(runs), tt.wantRuns)
			}
			wantSkipped := map[string]int64{}
			if tt.wantSkipped != "" {
				wantSkipped[tt.wantSkipped] = 1
			}
			if !maps.Equal(d.Status.SkippedTicks, wantSkipped) {
				t.Errorf("status.skippedTicks %v, want %v", d.Status.SkippedTicks, wantSkipped)
			}
			skipped := h.events("RunSkipped")
			switch {
			case tt.wantEvent == "" && len(skipped) != 0:
				t.Errorf("RunSkipped events %q, want none", skipped)
			case tt.wantEvent != "" && (len(skipped) != 1 || !strings.Contains(skipped[0], tt.wantEvent)):
				t.Errorf("RunSkipped events %q, want one saying %q", skipped, tt.wantEvent)
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

func TestSkippedTicksAddUp(t *testing.T) {
	tick := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	drill := newDrill("0 3 * * *").Status(func(s *drillsv1.RestoreDrillStatus) {
		s.SkippedTicks = map[string]int64{SkipAlreadyRunning: 2}
	}).Obj()
	h := newHarness(t, tick.Add(time.Second), drill, newRun("older").In(drillsv1.PhaseValidating).Created(created.Add(-time.Hour)).Obj())
	h.reconcile(t)
	// The same tick handled again is not skipped twice.
	h.clock.SetTime(tick.Add(2 * time.Second))
	_, d, _ := h.reconcile(t)
	if got := d.Status.SkippedTicks[SkipAlreadyRunning]; got != 3 {
		t.Errorf("skippedTicks[%s] = %d, want 3 (2 before, 1 for this tick)", SkipAlreadyRunning, got)
	}
	if got := h.events("RunSkipped"); len(got) != 1 {
		t.Errorf("RunSkipped events %q, want 1", got)
	}
}

func TestHistoryLimitPrunesTheOldestFinishedRuns(t *testing.T) {
	objs := []client.Object{newDrill("").History(3).Obj()}
	for i := range 5 {
		objs = append(objs, newRun(fmt.Sprintf("done-%d", i)).In(drillsv1.PhaseDone).Created(created.Add(-time.Duration(10-i)*time.Hour)).Obj())
	}
	objs = append(objs, newRun("running").In(drillsv1.PhaseValidating).Created(created.Add(-20*time.Hour)).Obj())
	// The oldest run failed and keeps its sandbox for debugging: it stays
	// until the sandbox is gone, or the sweep would take the sandbox early.
	objs = append(objs, newRun("kept").In(drillsv1.PhaseDone).Created(created.Add(-30*time.Hour)).Sandbox("drill-kept").KeptUntil(created.Add(time.Hour)).Obj())
	// Another's sandbox outlived timeouts.teardown: the run stays while
	// what is left of it exists (its SandboxLeaked condition says what).
	objs = append(objs, newRun("leaked").In(drillsv1.PhaseDone).Created(created.Add(-40*time.Hour)).Sandbox("drill-leaked").Obj())
	objs = append(objs, newRun("removed").In(drillsv1.PhaseDone).Created(created.Add(-50*time.Hour)).Sandbox("drill-removed").SandboxRemoved().Obj())
	h := newHarness(t, created, objs...)
	_, _, runs := h.reconcile(t)
	var names []string
	for _, r := range runs {
		names = append(names, r.Name)
	}
	want := "[done-2 done-3 done-4 kept leaked running]"
	if fmt.Sprint(names) != want {
		t.Errorf("runs kept %v, want %s (the 3 newest finished, the ones whose sandbox is not gone, and the one in progress)", names, want)
	}
}
