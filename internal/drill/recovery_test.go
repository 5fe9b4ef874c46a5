package drill

import (
	"context"
	"errors"
	"testing"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

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

func TestMarkInterruptedRetriesConflicts(t *testing.T) {
	tests := []struct {
		name       string
		meanwhile  func(*drillsv1.DrillRunStatus) // what another writer changes just before each of the first writes
		conflicts  int
		wantResult drillsv1.RunResult
		wantReason string
	}{
		{"another write in between", func(s *drillsv1.DrillRunStatus) { s.LastError = "the API server was unavailable" }, 1, drillsv1.ResultError, "Interrupted"},
		{"several writes in between", func(s *drillsv1.DrillRunStatus) { s.LastError += "." }, 5, drillsv1.ResultError, "Interrupted"},
		{"the run got its verdict in between", func(s *drillsv1.DrillRunStatus) {
			s.Result, s.Reason, s.Phase = drillsv1.ResultFailed, "CheckFailed", drillsv1.PhaseTearingDown
		}, 1, drillsv1.ResultFailed, "CheckFailed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := newRun("r1").In(drillsv1.PhaseValidating).Obj()
			writes := 0
			funcs := interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
				if writes++; writes <= tt.conflicts {
					other := &drillsv1.DrillRun{}
					if err := c.Get(ctx, client.ObjectKeyFromObject(obj), other); err != nil {
						return err
					}
					tt.meanwhile(&other.Status)
					if err := c.Status().Update(ctx, other); err != nil {
						return err
					}
				}
				return c.SubResource(sub).Update(ctx, obj, opts...) // a conflict after another write
			}}
			base := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(run).WithStatusSubresource(&drillsv1.DrillRun{}).Build()
			c := interceptor.NewClient(base, funcs)
			if err := newRecovery(c).MarkInterrupted(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := &drillsv1.DrillRun{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(run), got); err != nil {
				t.Fatal(err)
			}
			if got.Status.Result != tt.wantResult || got.Status.Reason != tt.wantReason || got.Status.Phase != drillsv1.PhaseTearingDown {
				t.Errorf("status %s/%s in %s, want %s/%s tearing down", got.Status.Result, got.Status.Reason, got.Status.Phase, tt.wantResult, tt.wantReason)
			}
		})
	}
}

func TestMarkInterruptedStopsWithItsContext(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseValidating).Obj()
	ctx, cancel := context.WithCancel(context.Background())
	funcs := interceptor.Funcs{SubResourceUpdate: func(context.Context, client.Client, string, client.Object, ...client.SubResourceUpdateOption) error {
		cancel() // shutting down while conflicts go on
		return apierrors.NewConflict(drillsv1.GroupVersion.WithResource("drillruns").GroupResource(), "r1", errors.New("the object has been modified"))
	}}
	base := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(run).WithStatusSubresource(&drillsv1.DrillRun{}).Build()
	err := newRecovery(interceptor.NewClient(base, funcs)).MarkInterrupted(ctx)
	if !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want the context's", err)
	}
}

func TestMarkInterruptedReadsNoFinishedRun(t *testing.T) {
	runs := []client.Object{newRun("going").In(drillsv1.PhaseValidating).Obj()}
	for _, name := range []string{"done-1", "done-2", "done-3"} {
		runs = append(runs, newRun(name).In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).Obj())
	}
	base := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(runs...).WithStatusSubresource(&drillsv1.DrillRun{}).Build()
	r := newRecovery(base)
	var read []string
	r.APIReader = interceptor.NewClient(interceptor.NewClient(base, runFieldSelectors()), interceptor.Funcs{
		List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
			err := c.List(ctx, list, opts...)
			if l, ok := list.(*drillsv1.DrillRunList); ok {
				for _, run := range l.Items {
					read = append(read, run.Name)
				}
			}
			return err
		},
	})
	if err := r.MarkInterrupted(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(read) != 1 || read[0] != "going" {
		t.Errorf("start-up read runs %v from the API server, want only the one in progress", read)
	}
	got := &drillsv1.DrillRun{}
	if err := base.Get(context.Background(), client.ObjectKey{Namespace: runs[0].GetNamespace(), Name: "going"}, got); err != nil {
		t.Fatal(err)
	}
	if got.Status.Reason != "Interrupted" {
		t.Errorf("the run in progress ended %s/%s, want Interrupted", got.Status.Result, got.Status.Reason)
	}
}
