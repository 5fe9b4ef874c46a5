package drill

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/event"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
)

func TestOnlySettledRunsAreLeftOutAtFirstSight(t *testing.T) {
	done := func(name string) *builder.RunBuilder {
		return newRun(name).In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).Sandbox("drill-" + name)
	}
	tests := []struct {
		name      string
		run       *drillsv1.DrillRun
		reconcile bool
	}{
		{"done, counted, sandbox gone", done("a").Recorded().SandboxRemoved().Obj(), false},
		{"done without a sandbox (no snapshot to restore), counted", newRun("b").In(drillsv1.PhaseDone).Result(drillsv1.ResultFailed).Recorded().Obj(), false},
		{"done, not counted in its drill yet", done("c").SandboxRemoved().Obj(), true},
		{"done, sandbox kept for keepOnFailure", done("d").Recorded().KeptUntil(t0.Add(time.Hour)).Obj(), true},
		{"done, sandbox leaked", done("e").Recorded().Status(func(s *drillsv1.DrillRunStatus) {
			s.Conditions = append(s.Conditions, metav1.Condition{Type: drillsv1.ConditionSandboxLeaked, Status: metav1.ConditionTrue, Reason: "TeardownTimeout"})
		}).Obj(), true},
		{"tearing down", newRun("f").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).Sandbox("drill-f").Obj(), true},
		{"validating", newRun("g").In(drillsv1.PhaseValidating).Obj(), true},
		{"new", newRun("h").Obj(), true},
	}
	p := UnsettledOnCreate()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := p.Create(event.CreateEvent{Object: tt.run}); got != tt.reconcile {
				t.Errorf("first sight reconciles: %v, want %v", got, tt.reconcile)
			}
			// What happens to a run later is always looked at.
			if !p.Update(event.UpdateEvent{ObjectOld: tt.run, ObjectNew: tt.run}) || !p.Delete(event.DeleteEvent{Object: tt.run}) {
				t.Error("an update or deletion of the run is left out")
			}
		})
	}
}
