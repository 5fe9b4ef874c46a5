package follow

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

var leaseKey = types.NamespacedName{Namespace: "drillerd-system", Name: "drillerd.drills.drillerd.dev"}

// lines is an io.Writer that hands each line written to the test, in order.
type lines chan string

func (l lines) Write(p []byte) (int, error) {
	for line := range strings.SplitSeq(strings.TrimSuffix(string(p), "\n"), "\n") {
		l <- line
	}
	return len(p), nil
}

// next is the next line written; the test fails if none comes.
func (l lines) next(t *testing.T) string {
	t.Helper()
	select {
	case line := <-l:
		return line
	case <-time.After(10 * time.Second):
		t.Fatal("no progress line written")
		return ""
	}
}

// harness runs a Follower on a fake API server and a fake clock.
type harness struct {
	c       client.WithWatch
	clock   *clocktesting.FakeClock
	out     lines
	watched chan struct{} // a value per watch started
	f       *Follower
}

func newHarness(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *harness {
	t.Helper()
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, drillsv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	h := &harness{clock: clocktesting.NewFakeClock(t0), out: make(lines, 100), watched: make(chan struct{}, 10)}
	funcs.Watch = func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) (watch.Interface, error) {
		w, err := c.Watch(ctx, list, opts...)
		h.watched <- struct{}{}
		return w, err
	}
	base := fake.NewClientBuilder().WithScheme(scheme).WithObjects(objs...).WithStatusSubresource(&drillsv1.DrillRun{}).Build()
	h.c = interceptor.NewClient(base, funcs)
	h.f = &Follower{Client: h.c, Clock: h.clock, Out: h.out, ExplainAfter: 30 * time.Second, Lease: leaseKey}
	return h
}

// result is what Wait returned.
type result struct {
	run *drillsv1.DrillRun
	err error
}

// wait starts Wait and returns once its watch is established.
func (h *harness) wait(t *testing.T, run *drillsv1.DrillRun) <-chan result {
	t.Helper()
	done := make(chan result, 1)
	go func() {
		r, err := h.f.Wait(context.Background(), run)
		done <- result{r, err}
	}()
	select {
	case <-h.watched:
	case <-time.After(10 * time.Second):
		t.Fatal("Wait started no watch")
	}
	return done
}

// setStatus writes the run's status as drillerd would.
func (h *harness) setStatus(t *testing.T, run *drillsv1.DrillRun, edit func(*drillsv1.DrillRunStatus)) {
	t.Helper()
	current := &drillsv1.DrillRun{}
	if err := h.c.Get(context.Background(), client.ObjectKeyFromObject(run), current); err != nil {
		t.Fatal(err)
	}
	edit(&current.Status)
	if err := h.c.Status().Update(context.Background(), current); err != nil {
		t.Fatal(err)
	}
}

func finished(t *testing.T, done <-chan result) result {
	t.Helper()
	select {
	case r := <-done:
		return r
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return result{}
	}
}

func TestEveryPhaseAndRetriedErrorIsToldAsItHappens(t *testing.T) {
	run := builder.ForRun("shop", "orders-db-cli-x").Of("orders-db").Obj()
	h := newHarness(t, interceptor.Funcs{}, run)
	done := h.wait(t, run)
	steps := []struct {
		status func(*drillsv1.DrillRunStatus)
		want   string
	}{
		{func(s *drillsv1.DrillRunStatus) {
			s.Phase, s.Message = drillsv1.PhasePending, "waiting for one of the 2 drill slots (--max-concurrent-drills)"
		}, "Pending: waiting for one of the 2 drill slots (--max-concurrent-drills)"},
		{func(s *drillsv1.DrillRunStatus) { s.Phase, s.Message = drillsv1.PhaseSelectingSnapshot, "" }, "SelectingSnapshot"},
		{func(s *drillsv1.DrillRunStatus) { s.Phase = drillsv1.PhaseProvisioning }, "Provisioning"},
		{func(s *drillsv1.DrillRunStatus) { s.LastError = "the server is currently unable to handle the request" }, "retrying: the server is currently unable to handle the request"},
		{func(s *drillsv1.DrillRunStatus) { s.Phase = drillsv1.PhaseRestoringVolume }, "RestoringVolume"},
		{func(s *drillsv1.DrillRunStatus) { s.Phase = drillsv1.PhaseValidating }, "Validating"},
		{func(s *drillsv1.DrillRunStatus) {
			s.Phase, s.Result, s.Reason = drillsv1.PhaseDone, drillsv1.ResultFailed, "CheckFailed"
		}, "Done: Failed (CheckFailed)"},
	}
	if got := h.out.next(t); !strings.HasSuffix(got, "  waiting for drillerd to pick the run up") {
		t.Errorf("first line %q, want the run waiting to be picked up", got)
	}
	for i, step := range steps {
		if i == 2 {
			h.clock.Step(1500 * time.Millisecond)
		}
		h.setStatus(t, run, step.status)
		got := h.out.next(t)
		if _, text, _ := strings.Cut(got, "s  "); text != step.want {
			t.Errorf("line %q, want %q", got, step.want)
		}
		if i == 2 && !strings.HasPrefix(got, "    1.5s  ") {
			t.Errorf("line %q does not start with the 1.5s since the wait began", got)
		}
	}
	r := finished(t, done)
	if r.err != nil || r.run.Status.Result != drillsv1.ResultFailed {
		t.Fatalf("Wait = %+v, %v; want the Failed run", r.run, r.err)
	}
}

func TestARunNobodyPicksUpIsExplainedByTheLeaseOnce(t *testing.T) {
	run := builder.ForRun("shop", "orders-db-cli-x").Of("orders-db").Obj()
	h := newHarness(t, interceptor.Funcs{}, run)
	done := h.wait(t, run)
	h.out.next(t) // waiting for drillerd to pick the run up
	h.clock.Step(30 * time.Second)
	got := h.out.next(t)
	want := "   30.0s  no drillerd has picked the run up after 30.0s: no drillerd holds the leader Lease drillerd-system/drillerd.drills.drillerd.dev: it does not exist"
	if !strings.HasPrefix(got, want) || !strings.Contains(got, "kubectl -n drillerd-system get pods") {
		t.Errorf("explanation %q, want it to start %q and say where to look", got, want)
	}
	h.clock.Step(30 * time.Second) // the same stall is not explained twice
	h.setStatus(t, run, func(s *drillsv1.DrillRunStatus) { s.Phase = drillsv1.PhaseSelectingSnapshot })
	if got := h.out.next(t); !strings.HasSuffix(got, "  SelectingSnapshot") {
		t.Errorf("line %q, want SelectingSnapshot and no second explanation", got)
	}
	h.setStatus(t, run, func(s *drillsv1.DrillRunStatus) { s.Phase, s.Result = drillsv1.PhaseDone, drillsv1.ResultSucceeded })
	h.out.next(t)
	if r := finished(t, done); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestADeletedRunEndsTheWait(t *testing.T) {
	run := builder.ForRun("shop", "orders-db-cli-x").Of("orders-db").Obj()
	h := newHarness(t, interceptor.Funcs{}, run)
	done := h.wait(t, run)
	if err := h.c.Delete(context.Background(), run.DeepCopy()); err != nil {
		t.Fatal(err)
	}
	if r := finished(t, done); !errors.Is(r.err, ErrDeleted) {
		t.Errorf("Wait error %v, want ErrDeleted", r.err)
	}
}

func lease() *coordinationv1.Lease {
	return &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Namespace: leaseKey.Namespace, Name: leaseKey.Name}}
}

func TestTheLeaseSaysWhoHoldsItOrThatNobodyDoes(t *testing.T) {
	forbidden := interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*coordinationv1.Lease); ok {
			return apierrors.NewForbidden(schema.GroupResource{Group: "coordination.k8s.io", Resource: "leases"}, key.Name, errors.New(`User "dev" cannot get resource "leases"`))
		}
		return c.Get(ctx, key, obj, opts...)
	}}
	tests := []struct {
		name  string
		lease *coordinationv1.Lease
		funcs interceptor.Funcs
		want  []string
	}{
		{"no Lease", nil, interceptor.Funcs{}, []string{"no drillerd holds the leader Lease drillerd-system/drillerd.drills.drillerd.dev: it does not exist", "kubectl -n drillerd-system get pods,events"}},
		{"held and renewed", func() *coordinationv1.Lease {
			l := lease()
			l.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To("drillerd-7d9f_0a1b"), LeaseDurationSeconds: ptr.To[int32](15),
				AcquireTime: &metav1.MicroTime{Time: t0.Add(-time.Hour)}, RenewTime: &metav1.MicroTime{Time: t0.Add(28 * time.Second)}}
			return l
		}(), interceptor.Funcs{}, []string{"is held by drillerd-7d9f_0a1b since 2026-11-22T02:00:00Z (renewed 2.0s ago)", "kubectl -n drillerd-system logs drillerd-7d9f"}},
		{"lapsed", func() *coordinationv1.Lease {
			l := lease()
			l.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To("drillerd-7d9f_0a1b"), LeaseDurationSeconds: ptr.To[int32](15),
				RenewTime: &metav1.MicroTime{Time: t0.Add(-10 * time.Minute)}}
			return l
		}(), interceptor.Funcs{}, []string{"no drillerd holds the leader Lease drillerd-system/drillerd.drills.drillerd.dev: its last holder, drillerd-7d9f_0a1b, renewed it at 2026-11-22T02:50:00Z (10m30s ago)"}},
		{"released", func() *coordinationv1.Lease {
			l := lease()
			l.Spec = coordinationv1.LeaseSpec{HolderIdentity: ptr.To(""), RenewTime: &metav1.MicroTime{Time: t0.Add(-time.Minute)}}
			return l
		}(), interceptor.Funcs{}, []string{"no drillerd holds the leader Lease drillerd-system/drillerd.drills.drillerd.dev: a drillerd that stopped released it at 2026-11-22T02:59:00Z (1m30s ago)"}},
		{"not readable", nil, forbidden, []string{"cannot read drillerd's leader Lease drillerd-system/drillerd.drills.drillerd.dev to tell whether a drillerd is serving", `cannot get resource "leases"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := builder.ForRun("shop", "orders-db-cli-x").Of("orders-db").Obj()
			objs := []client.Object{run}
			if tt.lease != nil {
				objs = append(objs, tt.lease)
			}
			h := newHarness(t, tt.funcs, objs...)
			h.f.start = t0
			h.clock.SetTime(t0.Add(30 * time.Second))
			got := h.f.Explain(context.Background(), run)
			if !strings.HasPrefix(got, "no drillerd has picked the run up after 30.0s: ") {
				t.Errorf("explanation %q does not say how long the run waited", got)
			}
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("explanation %q\nwants %q", got, w)
				}
			}
		})
	}
}

func TestAPendingRunNamesTheRunsHoldingTheSlots(t *testing.T) {
	pending := builder.ForRun("shop", "orders-db-cli-x").Of("orders-db").In(drillsv1.PhasePending).
		Message("waiting for one of the 2 drill slots (--max-concurrent-drills)").Obj()
	validating := builder.ForRun("shop", "users-db-1").Of("users-db").In(drillsv1.PhaseValidating).
		PhaseTiming(drillsv1.PhaseValidating, t0.Add(-80*time.Second), time.Time{}).Obj()
	restoring := builder.ForRun("billing", "ledger-1").Of("ledger").In(drillsv1.PhaseRestoringVolume).Obj()
	others := []client.Object{
		builder.ForRun("shop", "orders-db-old").Of("orders-db").In(drillsv1.PhaseDone).Obj(),
		builder.ForRun("shop", "crm-1").Of("crm").In(drillsv1.PhasePending).Obj(),
	}
	clusterWideForbidden := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if (&client.ListOptions{}).ApplyOptions(opts).Namespace == "" {
			return apierrors.NewForbidden(schema.GroupResource{Group: drillsv1.GroupVersion.Group, Resource: "drillruns"}, "", errors.New("cluster scope"))
		}
		return c.List(ctx, list, opts...)
	}}
	tests := []struct {
		name  string
		funcs interceptor.Funcs
		want  string
	}{
		{"every namespace", interceptor.Funcs{}, "still Pending after 30.0s: waiting for one of the 2 drill slots (--max-concurrent-drills); " +
			"the slots are held by the runs in progress: billing/ledger-1 (drill ledger, RestoringVolume), shop/users-db-1 (drill users-db, Validating for 1m50s)"},
		{"the run's namespace only", clusterWideForbidden, "still Pending after 30.0s: waiting for one of the 2 drill slots (--max-concurrent-drills); " +
			"the slots are held by the runs in progress in namespace shop (you may not list drillruns in every namespace): shop/users-db-1 (drill users-db, Validating for 1m50s)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.funcs, append(others, pending, validating, restoring)...)
			h.f.start = t0
			h.clock.SetTime(t0.Add(30 * time.Second))
			if got := h.f.Explain(context.Background(), pending); got != tt.want {
				t.Errorf("explanation\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}
