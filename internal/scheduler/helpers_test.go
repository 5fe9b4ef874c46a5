package scheduler

import (
	"context"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
)

// created is when the drill of the tests was created.
var created = time.Date(2026, 11, 22, 0, 0, 0, 0, time.UTC)

// newDrill starts the drill prod/orders-db, created at created, on schedule.
func newDrill(schedule string) *builder.DrillBuilder {
	return builder.ForDrill("prod", "orders-db").UID("drill-uid").Created(created).Schedule(schedule).Image("postgres:16")
}

// newRun starts a run of prod/orders-db.
func newRun(name string) *builder.RunBuilder {
	return builder.ForRun("prod", name).Of("orders-db")
}

type harness struct {
	c        client.Client
	ctl      *Controller
	clock    *clocktesting.FakePassiveClock
	recorder *events.FakeRecorder
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
	h := &harness{c: c, clock: clocktesting.NewFakePassiveClock(now), recorder: events.NewFakeRecorder(100)}
	h.ctl = &Controller{Client: c, Clock: h.clock, Recorder: h.recorder}
	return h
}

// reconcile reconciles prod/orders-db and returns the drill and its runs
// as stored afterwards.
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

// reconcileAndWake reconciles prod/orders-db and, when that created a run,
// once more, as the run's creation wakes the drill.
func (h *harness) reconcileAndWake(t *testing.T) (ctrl.Result, *drillsv1.RestoreDrill, []drillsv1.DrillRun) {
	t.Helper()
	before := &drillsv1.DrillRunList{}
	if err := h.c.List(context.Background(), before); err != nil {
		t.Fatal(err)
	}
	res, d, runs := h.reconcile(t)
	if len(runs) > len(before.Items) {
		return h.reconcile(t)
	}
	return res, d, runs
}

// events drains the events recorded so far whose reason is reason.
func (h *harness) events(reason string) []string {
	var got []string
	for {
		select {
		case e := <-h.recorder.Events:
			if _, rest, ok := strings.Cut(e, " "); ok && strings.HasPrefix(rest, reason+" ") {
				got = append(got, e)
			}
		default:
			return got
		}
	}
}
