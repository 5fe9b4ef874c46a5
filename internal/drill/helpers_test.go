package drill

import (
	"context"
	"testing"
	"time"

	"github.com/go-logr/logr"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/runcert"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func testScheme(t *testing.T) *runtime.Scheme {
	s := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{clientgoscheme.AddToScheme, drillsv1.AddToScheme, snapshotv1.AddToScheme} {
		if err := add(s); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// source is a production claim with one ready snapshot, cut an hour
// before t0.
func source() []client.Object {
	return []client.Object{
		builder.ForClaim("prod", "data-orders-0").StorageClass("fast").Size("1Gi").Obj(),
		builder.ForSnapshot("prod", "nightly").Of("data-orders-0").Created(t0.Add(-time.Hour)).ReadyAt(t0.Add(-time.Hour)).
			BoundTo("snapcontent-1").RestoreSize("1Gi").Obj(),
		builder.ForContent("snapcontent-1").Driver("hostpath").DeletionPolicy(snapshotv1.VolumeSnapshotContentDelete).
			VolumeHandle("vol-1").Handle("snap-1").Ready().Obj(),
	}
}

// ordersDrill is the drill of source's claim.
func ordersDrill() *builder.DrillBuilder {
	return builder.ForDrill("prod", "orders-db").Source("data-orders-0").Image("postgres:16")
}

// newRun is a run of ordersDrill.
func newRun(name string) *builder.RunBuilder {
	return builder.ForRun("prod", name).Of("orders-db")
}

// sandboxOf is the name of run's sandbox namespace.
func sandboxOf(run *drillsv1.DrillRun) string {
	return restore.NamespaceName("orders-db", string(run.UID))
}

// sandboxName is the name of the sandbox namespace of newRun(run).
func sandboxName(run string) string { return sandboxOf(newRun(run).Obj()) }

// sandboxLabels are the ownership labels of run's sandbox objects.
func sandboxLabels(run *drillsv1.DrillRun) map[string]string {
	return map[string]string{
		restore.LabelManagedBy: restore.ManagedByValue, restore.LabelRun: string(run.UID),
		restore.LabelRunName: run.Name, restore.LabelRunNamespace: run.Namespace, restore.LabelDrill: "orders-db",
	}
}

// sandboxNamespace is run's sandbox namespace, with its labels.
func sandboxNamespace(run *drillsv1.DrillRun) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: sandboxOf(run), Labels: sandboxLabels(run)}}
}

// engine is a Reconciler on a fake API server with a fake clock at t0.
type engine struct {
	t      *testing.T
	c      client.WithWatch
	r      *Reconciler
	clock  *clocktesting.FakeClock
	events *events.FakeRecorder
}

func newEngine(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *engine {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).
		WithStatusSubresource(&drillsv1.DrillRun{}, &drillsv1.RestoreDrill{}).
		WithIndex(&corev1.Event{}, "involvedObject.kind", func(o client.Object) []string { return []string{o.(*corev1.Event).InvolvedObject.Kind} }).
		WithIndex(&corev1.Event{}, "involvedObject.name", func(o client.Object) []string { return []string{o.(*corev1.Event).InvolvedObject.Name} }).
		Build()
	wc := interceptor.NewClient(interceptor.NewClient(c, runFieldSelectors()), funcs)
	clock := clocktesting.NewFakeClock(t0)
	rec := events.NewFakeRecorder(100)
	r := &Reconciler{Client: wc, APIReader: wc, Clock: clock, Recorder: rec,
		DrillerdNamespace: "drillerd-system", DrillerdLabels: map[string]string{"app": "drillerd"}}
	// A run given past Provisioning was provisioned by this process,
	// which therefore holds its Access.
	for _, o := range objs {
		if run, ok := o.(*drillsv1.DrillRun); ok && run.Status.SandboxNamespace != "" && run.Status.Result == "" {
			r.access.put(run, testAccess(t, run))
		}
	}
	return &engine{t: t, c: wc, r: r, clock: clock, events: rec}
}

// testAccess is an Access for run, as provisioning makes it.
func testAccess(t *testing.T, run *drillsv1.DrillRun) restore.Access {
	t.Helper()
	sb := restore.Sandbox{Run: run, Drill: ordersDrill().Obj()}
	certs, err := runcert.Issue(sb.CertificateRequest(t0, t0.Add(time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	return restore.Access{Certificates: certs, CheckRole: "drillerd_checks_0001"}
}

func (e *engine) reconcile(name string) (ctrl.Result, error) {
	return e.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: name}})
}

// mustReconcile reconciles and fails the test on an error.
func (e *engine) mustReconcile(name string) ctrl.Result {
	e.t.Helper()
	res, err := e.reconcile(name)
	if err != nil {
		e.t.Fatalf("reconcile %s: %v", name, err)
	}
	return res
}

func (e *engine) run(name string) *drillsv1.DrillRun {
	e.t.Helper()
	got := &drillsv1.DrillRun{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: "prod", Name: name}, got); err != nil {
		e.t.Fatal(err)
	}
	return got
}

// update writes obj (spec and status) to the fake API server.
func (e *engine) update(obj client.Object) {
	e.t.Helper()
	if err := e.c.Update(context.Background(), obj); err != nil {
		e.t.Fatal(err)
	}
}

// updateStatus writes obj's status to the fake API server, as the
// controller or kubelet that owns it would.
func (e *engine) updateStatus(obj client.Object) {
	e.t.Helper()
	if err := e.c.Status().Update(context.Background(), obj); err != nil {
		e.t.Fatal(err)
	}
}

// phases lists the names of a run's phase timings in order.
func phases(run *drillsv1.DrillRun) []drillsv1.Phase {
	var out []drillsv1.Phase
	for _, p := range run.Status.Phases {
		out = append(out, p.Name)
	}
	return out
}

// newRecovery is a Recovery at t0 on c; its API reader evaluates field
// selectors on DrillRuns as the API server does.
func newRecovery(c client.WithWatch) *Recovery {
	return &Recovery{Client: c, APIReader: interceptor.NewClient(c, runFieldSelectors()), Clock: clocktesting.NewFakePassiveClock(t0), Log: logr.Discard(), Gate: NewGate()}
}

// renamed is obj under another name.
func renamed[T client.Object](obj T, name string) T {
	obj.SetName(name)
	return obj
}

// runFieldSelectors evaluates a field selector on DrillRuns as the API
// server does with the CRD's selectable fields (status.phase!=Done), which
// the fake client, limited to exact matches on indexes, cannot.
func runFieldSelectors() interceptor.Funcs {
	return interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		lo := (&client.ListOptions{}).ApplyOptions(opts)
		runs, ok := list.(*drillsv1.DrillRunList)
		if !ok || lo.FieldSelector == nil || lo.FieldSelector.Empty() {
			return c.List(ctx, list, opts...)
		}
		selector := lo.FieldSelector
		lo.FieldSelector = nil
		if err := c.List(ctx, runs, lo); err != nil {
			return err
		}
		kept := runs.Items[:0]
		for _, run := range runs.Items {
			if selector.Matches(fields.Set{PhaseField: string(run.Status.Phase), "spec.drillName": run.Spec.DrillName,
				"metadata.name": run.Name, "metadata.namespace": run.Namespace}) {
				kept = append(kept, run)
			}
		}
		runs.Items = kept
		return nil
	}}
}
