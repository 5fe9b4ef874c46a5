package drill

import (
	"context"
	"testing"

	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestMarkInterrupted(t *testing.T) {
	tests := []struct {
		name       string
		run        *drillsv1.DrillRun
		wantResult drillsv1.RunResult
		wantReason string
		wantPhase  drillsv1.Phase
	}{
		{"validating run is interrupted", newRun("a").In(drillsv1.PhaseValidating).Obj(), drillsv1.ResultError, "Interrupted", drillsv1.PhaseTearingDown},
		{"restoring run is interrupted", newRun("b").In(drillsv1.PhaseRestoringVolume).Obj(), drillsv1.ResultError, "Interrupted", drillsv1.PhaseTearingDown},
		{"new run is left to start", newRun("c").Obj(), "", "", ""},
		{"pending run is left waiting", newRun("d").In(drillsv1.PhasePending).Obj(), "", "", drillsv1.PhasePending},
		{"tearing down keeps its verdict", newRun("e").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultFailed).Obj(), drillsv1.ResultFailed, "", drillsv1.PhaseTearingDown},
		{"done stays done", newRun("f").In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).Obj(), drillsv1.ResultSucceeded, "", drillsv1.PhaseDone},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(tt.run).WithStatusSubresource(&drillsv1.DrillRun{}).Build()
			r := newRecovery(c)
			if err := r.MarkInterrupted(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := &drillsv1.DrillRun{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(tt.run), got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Result != tt.wantResult || got.Status.Reason != tt.wantReason || got.Status.Phase != tt.wantPhase {
				t.Errorf("status = %s/%s in %s, want %s/%s in %s", got.Status.Result, got.Status.Reason, got.Status.Phase, tt.wantResult, tt.wantReason, tt.wantPhase)
			}
		})
	}
}
