package drill

import (
	"context"
	"errors"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

// source is a production claim with one ready snapshot.
func source() []client.Object {
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "data-orders-0"},
		Spec: corev1.PersistentVolumeClaimSpec{StorageClassName: ptr.To("fast"), Resources: corev1.VolumeResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
		}},
	}
	snap := &snapshotv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "nightly", CreationTimestamp: metav1.NewTime(t0.Add(-time.Hour))},
		Spec:       snapshotv1.VolumeSnapshotSpec{Source: snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To("data-orders-0")}},
		Status: &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(true), BoundVolumeSnapshotContentName: ptr.To("snapcontent-1"),
			CreationTime: &metav1.Time{Time: t0.Add(-time.Hour)}, RestoreSize: ptr.To(resource.MustParse("1Gi"))},
	}
	content := &snapshotv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: "snapcontent-1"},
		Spec: snapshotv1.VolumeSnapshotContentSpec{Driver: "hostpath", DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete,
			Source: snapshotv1.VolumeSnapshotContentSource{VolumeHandle: ptr.To("vol-1")}},
		Status: &snapshotv1.VolumeSnapshotContentStatus{SnapshotHandle: ptr.To("snap-1"), ReadyToUse: ptr.To(true)},
	}
	return []client.Object{claim, snap, content}
}

func ordersDrill() *drillsv1.RestoreDrill {
	return &drillsv1.RestoreDrill{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "orders-db"},
		Spec: drillsv1.RestoreDrillSpec{
			Source:   drillsv1.SourceSpec{PersistentVolumeClaimName: "data-orders-0"},
			Database: drillsv1.DatabaseSpec{Image: "postgres:16"},
		},
	}
}

type engine struct {
	t     *testing.T
	c     client.WithWatch
	r     *Reconciler
	clock *clocktesting.FakeClock
}

func newEngine(t *testing.T, funcs interceptor.Funcs, objs ...client.Object) *engine {
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).
		WithStatusSubresource(&drillsv1.DrillRun{}, &drillsv1.RestoreDrill{}).Build()
	wc := interceptor.NewClient(c, funcs)
	clock := clocktesting.NewFakeClock(t0)
	r := &Reconciler{Client: wc, APIReader: wc, Clock: clock, Recorder: events.NewFakeRecorder(100),
		DrillerdNamespace: "drillerd-system", DrillerdLabels: map[string]string{"app": "drillerd"}}
	return &engine{t: t, c: wc, r: r, clock: clock}
}

func (e *engine) reconcile(name string) (ctrl.Result, error) {
	return e.r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: name}})
}

func (e *engine) run(name string) *drillsv1.DrillRun {
	e.t.Helper()
	got := &drillsv1.DrillRun{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: "prod", Name: name}, got); err != nil {
		e.t.Fatal(err)
	}
	return got
}

func TestPermanentErrorEndsTheRunAtOnce(t *testing.T) {
	quota := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "db", errors.New("exceeded quota: sandbox-quota, requested: pods=1"))
	funcs := interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*corev1.Pod); ok {
			return quota
		}
		return c.Create(ctx, obj, opts...)
	}}
	e := newEngine(t, funcs, append(source(), ordersDrill(), newRun("r1").Obj())...)
	if _, err := e.reconcile("r1"); err != nil {
		t.Fatalf("a permanent error must be decided, not retried: %v", err)
	}
	got := e.run("r1")
	if got.Status.Result != drillsv1.ResultError || got.Status.Reason != "APIError" {
		t.Fatalf("result %s/%s (%s), want Error/APIError", got.Status.Result, got.Status.Reason, got.Status.Message)
	}
	for _, want := range []string{"Provisioning", "exceeded quota"} {
		if !contains(got.Status.Message, want) {
			t.Errorf("message %q does not name %q", got.Status.Message, want)
		}
	}
	if got.Status.Phase != drillsv1.PhaseTearingDown && got.Status.Phase != drillsv1.PhaseDone {
		t.Errorf("phase %s, want the half-built sandbox torn down", got.Status.Phase)
	}
}

func TestTransientErrorIsRetriedAndRemembered(t *testing.T) {
	funcs := interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*corev1.Pod); ok {
			return apierrors.NewServiceUnavailable("etcd leader change")
		}
		return c.Create(ctx, obj, opts...)
	}}
	e := newEngine(t, funcs, append(source(), ordersDrill(), newRun("r1").Obj())...)
	if _, err := e.reconcile("r1"); err == nil {
		t.Fatal("a transient error must be returned for a retry")
	}
	got := e.run("r1")
	if got.Status.Result != "" || got.Status.Phase != drillsv1.PhaseProvisioning || !contains(got.Status.LastError, "etcd leader change") {
		t.Errorf("status %s/%s, lastError %q: want still provisioning with the error remembered", got.Status.Phase, got.Status.Result, got.Status.LastError)
	}
	// When timeouts.total passes, the verdict names that error.
	e.clock.Step(drillsv1.DefaultTotalTimeout + time.Second)
	_, _ = e.reconcile("r1")
	got = e.run("r1")
	if got.Status.Reason != "Timeout" || !contains(got.Status.Message, "etcd leader change") {
		t.Errorf("%s: %s, want a Timeout naming the last error", got.Status.Reason, got.Status.Message)
	}
}

func TestDrillDeletedDuringTheRun(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseRestoringVolume).Obj()
	run.Status.StartTime = &metav1.Time{Time: t0}
	run.Status.SandboxNamespace = "drill-orders-db-1234abcd"
	ns := sandboxNamespace(run, "drill-orders-db-1234abcd")
	e := newEngine(t, interceptor.Funcs{}, run, ns) // no RestoreDrill
	for range 3 {
		if _, err := e.reconcile("r1"); err != nil {
			t.Fatal(err)
		}
	}
	got := e.run("r1")
	if got.Status.Result != drillsv1.ResultError || got.Status.Reason != "DrillNotFound" || !contains(got.Status.Message, "deleted during the run") {
		t.Errorf("result %s/%s (%s), want Error/DrillNotFound", got.Status.Result, got.Status.Reason, got.Status.Message)
	}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ns), &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("the sandbox namespace was not torn down: %v", err)
	}
}

func TestSlotsHoldWhileTheCacheLags(t *testing.T) {
	// The cache keeps answering as it did at the start: both runs Pending.
	stale := []client.Object{newRun("a").In(drillsv1.PhasePending).Obj(), newRun("b").In(drillsv1.PhasePending).Obj()}
	funcs := interceptor.Funcs{List: func(ctx context.Context, c client.WithWatch, list client.ObjectList, opts ...client.ListOption) error {
		if runs, ok := list.(*drillsv1.DrillRunList); ok {
			runs.Items = nil
			for _, o := range stale {
				runs.Items = append(runs.Items, *o.(*drillsv1.DrillRun).DeepCopy())
			}
			return nil
		}
		return c.List(ctx, list, opts...)
	}}
	objs := append(source(), ordersDrill())
	objs = append(objs, stale[0].DeepCopyObject().(client.Object), stale[1].DeepCopyObject().(client.Object))
	e := newEngine(t, funcs, objs...)
	e.r.MaxInFlight = 1
	if _, err := e.reconcile("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reconcile("b"); err != nil {
		t.Fatal(err)
	}
	if a, b := e.run("a"), e.run("b"); a.Status.StartTime == nil || b.Status.StartTime != nil {
		t.Errorf("run a started %v, run b started %v: want exactly one run in the single slot", a.Status.StartTime, b.Status.StartTime)
	}
}

func TestFinishedRunIsRecordedOnce(t *testing.T) {
	done := metav1.NewTime(t0)
	run := newRun("r1").In(drillsv1.PhaseDone).Result(drillsv1.ResultFailed).SandboxRemoved().Obj()
	run.Status.Reason = "CheckFailed"
	run.Status.CompletionTime = &done
	run.Status.Phases = []drillsv1.PhaseTiming{{Name: drillsv1.PhaseRestoringVolume, Seconds: ptr.To(12.0)}, {Name: drillsv1.PhaseValidating, Seconds: ptr.To(0.4)}}
	conflicts := 1
	funcs := interceptor.Funcs{SubResourcePatch: func(ctx context.Context, c client.Client, sub string, obj client.Object, patch client.Patch, opts ...client.SubResourcePatchOption) error {
		if _, ok := obj.(*drillsv1.RestoreDrill); ok && conflicts > 0 {
			conflicts-- // another run's summary was written first
			return apierrors.NewConflict(schema.GroupResource{Resource: "restoredrills"}, "orders-db", errors.New("modified"))
		}
		return c.SubResource(sub).Patch(ctx, obj, patch, opts...)
	}}
	e := newEngine(t, funcs, ordersDrill(), run)
	for range 2 {
		if _, err := e.reconcile("r1"); err != nil {
			t.Fatal(err)
		}
	}
	drill := &drillsv1.RestoreDrill{}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ordersDrill()), drill); err != nil {
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

func TestTeardownReleasesARetainedVolume(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).Obj()
	run.Status.StartTime = &metav1.Time{Time: t0}
	run.Status.SandboxNamespace = "drill-orders-db-1234abcd"
	run.Status.VolumeName = "pvc-restored"
	restored := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-restored"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: "drill-orders-db-1234abcd", Name: restore.DataClaimName}},
	}
	production := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-production"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: "prod", Name: "data-orders-0"}},
	}
	e := newEngine(t, interceptor.Funcs{}, ordersDrill(), run, sandboxNamespace(run, run.Status.SandboxNamespace), restored, production)
	res, err := e.reconcile("r1")
	if err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(restored), pv); err != nil || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("restored volume %v (%v), want reclaimPolicy Delete so that it goes with its claim", pv.Spec.PersistentVolumeReclaimPolicy, err)
	}
	if got := e.run("r1"); got.Status.Phase != drillsv1.PhaseTearingDown || res.RequeueAfter == 0 {
		t.Errorf("phase %s, requeue %s: want teardown to wait for the volume", got.Status.Phase, res.RequeueAfter)
	}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(production), pv); err != nil || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		t.Errorf("production volume changed: %v (%v)", pv.Spec.PersistentVolumeReclaimPolicy, err)
	}
	// Once the volume is gone, teardown completes.
	if err := e.c.Delete(context.Background(), restored); err != nil {
		t.Fatal(err)
	}
	if _, err := e.reconcile("r1"); err != nil {
		t.Fatal(err)
	}
	if got := e.run("r1"); got.Status.Phase != drillsv1.PhaseDone || !got.Status.SandboxRemoved {
		t.Errorf("phase %s, removed %v: want Done with the sandbox removed", got.Status.Phase, got.Status.SandboxRemoved)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

func TestNoReadySnapshotGoesStraightToTeardown(t *testing.T) {
	e := newEngine(t, interceptor.Funcs{}, ordersDrill(), newRun("r1").Obj()) // no snapshots at all
	if _, err := e.reconcile("r1"); err != nil {
		t.Fatal(err)
	}
	got := e.run("r1")
	var phases []drillsv1.Phase
	for _, p := range got.Status.Phases {
		phases = append(phases, p.Name)
	}
	if got.Status.Reason != "NoReadySnapshot" || got.Status.Phase != drillsv1.PhaseDone ||
		len(phases) != 2 || phases[0] != drillsv1.PhaseSelectingSnapshot || phases[1] != drillsv1.PhaseTearingDown {
		t.Errorf("reason %s, phase %s, timeline %v: want NoReadySnapshot, Done after SelectingSnapshot and TearingDown only", got.Status.Reason, got.Status.Phase, phases)
	}
	if got.Status.RTO != nil {
		t.Errorf("RTO %+v measured although nothing was restored", got.Status.RTO)
	}
}

func TestTeardownFindsAVolumeBoundAfterTheVerdict(t *testing.T) {
	// The run failed before it saw its claim bound (a quota refused the
	// pod); the claim bound afterwards to a volume of a Retain class.
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultError).Obj()
	run.Status.StartTime = &metav1.Time{Time: t0}
	run.Status.SandboxNamespace = "drill-orders-db-1234abcd"
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: run.Status.SandboxNamespace, Name: restore.DataClaimName},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pvc-late"},
	}
	late := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-late"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: run.Status.SandboxNamespace, Name: restore.DataClaimName}},
	}
	e := newEngine(t, interceptor.Funcs{}, ordersDrill(), run, sandboxNamespace(run, run.Status.SandboxNamespace), claim, late)
	if _, err := e.reconcile("r1"); err != nil {
		t.Fatal(err)
	}
	pv := &corev1.PersistentVolume{}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(late), pv); err != nil || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("late volume %v (%v), want reclaimPolicy Delete", pv.Spec.PersistentVolumeReclaimPolicy, err)
	}
	if got := e.run("r1"); got.Status.VolumeName != "pvc-late" || got.Status.Phase != drillsv1.PhaseTearingDown {
		t.Errorf("volume %q, phase %s: want teardown waiting for pvc-late", got.Status.VolumeName, got.Status.Phase)
	}
}
