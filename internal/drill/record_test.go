package drill

import (
	"context"
	"errors"
	"testing"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestFinishedRunIsRecordedOnce(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseDone).Result(drillsv1.ResultFailed).Reason("CheckFailed").SandboxRemoved().CompletedAt(t0).
		PhaseTiming(drillsv1.PhaseRestoringVolume, t0.Add(-13*time.Second), t0.Add(-time.Second)).
		PhaseTiming(drillsv1.PhaseValidating, t0.Add(-time.Second), t0.Add(-600*time.Millisecond)).Obj()
	conflicts := 1
	funcs := interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if _, ok := obj.(*drillsv1.RestoreDrill); ok && conflicts > 0 {
			conflicts-- // another run's summary was written first
			return apierrors.NewConflict(schema.GroupResource{Resource: "restoredrills"}, "orders-db", errors.New("modified"))
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}
	e := newEngine(t, funcs, ordersDrill().Obj(), run)
	for range 2 {
		if _, err := e.reconcile("r1"); err != nil {
			t.Fatal(err)
		}
	}
	drill := &drillsv1.RestoreDrill{}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ordersDrill().Obj()), drill); err != nil {
		t.Fatal(err)
	}
	s := drill.Status
	if s.RunCounts[drillsv1.ResultFailed] != 1 || s.LastRun == nil || s.LastRun.Name != "r1" || s.LastRun.Reason != "CheckFailed" || s.LastSuccessTime != nil {
		t.Errorf("drill status %+v, want one Failed run recorded as the last", s)
	}
	if h := s.PhaseDurations[drillsv1.PhaseRestoringVolume]; h.Count != 1 || h.Sum != 12 {
		t.Errorf("RestoringVolume durations %+v, want the one 12s timing", h)
	}
	if !e.run("r1").Status.Recorded {
		t.Error("the run is not marked recorded")
	}
}

func TestASuccessBecomesTheBaselineAndSkippedSnapshotsAreCounted(t *testing.T) {
	tables := []drillsv1.TableRows{{Database: "app", Table: "public.orders", Rows: 20000}}
	skipped := []drillsv1.SkippedSnapshot{{Name: "hourly-3", Reason: drillsv1.SnapshotFailed, Message: "quota"}, {Name: "hourly-4", Reason: drillsv1.SnapshotNotReady}}
	status := func(s *drillsv1.DrillRunStatus) {
		s.Tables, s.SkippedSnapshots = tables, skipped
		s.Snapshot = &drillsv1.SnapshotRef{Name: "hourly-2", ClaimName: "data-orders-0"}
		s.Database = &drillsv1.RestoredDatabase{SystemIdentifier: "7311111111111111111"}
	}
	failed := newRun("r1").In(drillsv1.PhaseDone).Result(drillsv1.ResultFailed).SandboxRemoved().CompletedAt(t0).Status(status).Obj()
	passed := newRun("r2").In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).SandboxRemoved().CompletedAt(t0.Add(time.Hour)).Status(status).Obj()
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), failed, passed)
	e.mustReconcile("r1")
	drill := &drillsv1.RestoreDrill{}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ordersDrill().Obj()), drill); err != nil {
		t.Fatal(err)
	}
	if drill.Status.Baseline != nil {
		t.Errorf("a failed run became the baseline: %+v", drill.Status.Baseline)
	}
	e.mustReconcile("r2")
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ordersDrill().Obj()), drill); err != nil {
		t.Fatal(err)
	}
	b := drill.Status.Baseline
	if b == nil || b.RunName != "r2" || b.ClaimName != "data-orders-0" || b.SystemIdentifier != "7311111111111111111" || len(b.Tables) != 1 || b.Tables[0].Rows != 20000 {
		t.Errorf("baseline %+v, want r2's identity and rows", b)
	}
	if s := drill.Status.SkippedSnapshots; s[drillsv1.SnapshotFailed] != 2 || s[drillsv1.SnapshotNotReady] != 2 {
		t.Errorf("skipped snapshots %v, want each run's counted", s)
	}
}
