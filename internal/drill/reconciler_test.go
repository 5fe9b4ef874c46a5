package drill

import (
	"context"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestExtraRunsWaitPendingForASlot(t *testing.T) {
	drill := &drillsv1.RestoreDrill{}
	drill.Namespace, drill.Name = "prod", "orders-db"
	tests := []struct {
		name      string
		inFlight  []client.Object
		max       int
		wantPhase drillsv1.Phase
	}{
		{"slots full", []client.Object{newRun("a").In(drillsv1.PhaseValidating).Obj(), newRun("b").In(drillsv1.PhaseRestoringVolume).Obj()}, 2, drillsv1.PhasePending},
		{"finished and pending runs hold no slot", []client.Object{newRun("a").In(drillsv1.PhaseDone).Obj(), newRun("b").In(drillsv1.PhasePending).Obj(), newRun("c").In(drillsv1.PhaseValidating).Obj()}, 2, drillsv1.PhaseSelectingSnapshot},
		{"no limit", []client.Object{newRun("a").In(drillsv1.PhaseValidating).Obj(), newRun("b").In(drillsv1.PhaseValidating).Obj()}, 0, drillsv1.PhaseSelectingSnapshot},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := newRun("new").Obj()
			objs := append([]client.Object{drill, run}, tt.inFlight...)
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).WithStatusSubresource(&drillsv1.DrillRun{}, &drillsv1.RestoreDrill{}).Build()
			r := &Reconciler{Client: c, APIReader: c, Clock: clocktesting.NewFakePassiveClock(t0), Recorder: events.NewFakeRecorder(100), MaxInFlight: tt.max}
			res, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: "new"}})
			if err != nil {
				t.Fatal(err)
			}
			got := &drillsv1.DrillRun{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(run), got); err != nil {
				t.Fatal(err)
			}
			if tt.wantPhase == drillsv1.PhasePending {
				if got.Status.Phase != drillsv1.PhasePending || got.Status.StartTime != nil || res.RequeueAfter == 0 {
					t.Errorf("phase %s, start %v, requeue %s: want Pending, not started, rechecking", got.Status.Phase, got.Status.StartTime, res.RequeueAfter)
				}
				return
			}
			if got.Status.StartTime == nil || len(got.Status.Phases) == 0 || got.Status.Phases[0].Name != drillsv1.PhaseSelectingSnapshot {
				t.Errorf("run did not start: %+v", got.Status)
			}
		})
	}
}
