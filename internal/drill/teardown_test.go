package drill

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/restore"
)

func TestTeardownReleasesARetainedVolume(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).StartedAt(t0).Sandbox(sandboxName("r1")).
		Status(func(s *drillsv1.DrillRunStatus) { s.VolumeName = "pvc-restored" }).Obj()
	restored := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-restored"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: sandboxName("r1"), Name: restore.DataClaimName}},
	}
	production := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-production"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: "prod", Name: "data-orders-0"}},
	}
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, sandboxNamespace(run), restored, production)
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

func TestTeardownFindsAVolumeBoundAfterTheVerdict(t *testing.T) {
	// The run failed before it saw its claim bound (a quota refused the
	// pod); the claim bound afterwards to a volume of a Retain class.
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultError).StartedAt(t0).Sandbox(sandboxName("r1")).Obj()
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: run.Status.SandboxNamespace, Name: restore.DataClaimName},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pvc-late"},
	}
	late := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-late"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: run.Status.SandboxNamespace, Name: restore.DataClaimName}},
	}
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, sandboxNamespace(run), claim, late)
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

func TestAFailedSandboxIsKeptThenRemoved(t *testing.T) {
	tests := []struct {
		name     string
		result   drillsv1.RunResult
		wantKept bool
	}{
		{"a failed run keeps its sandbox for keepOnFailure", drillsv1.ResultFailed, true},
		{"an errored run keeps its sandbox too", drillsv1.ResultError, true},
		{"a successful run removes it at once", drillsv1.ResultSucceeded, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(tt.result).StartedAt(t0).Sandbox(sandboxName("r1")).Obj()
			ns := sandboxNamespace(run)
			e := newEngine(t, interceptor.Funcs{}, ordersDrill().KeepOnFailure(time.Hour).Obj(), run, ns)
			res := e.mustReconcile("r1")
			got := e.run("r1").Status
			err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ns), &corev1.Namespace{})
			if kept := err == nil; kept != tt.wantKept {
				t.Fatalf("sandbox kept = %v (%v), want %v", kept, err, tt.wantKept)
			}
			if !tt.wantKept {
				return
			}
			if got.Phase != drillsv1.PhaseDone || got.SandboxRemoved || got.SandboxExpiry == nil || !got.SandboxExpiry.Time.Equal(t0.Add(time.Hour)) || res.RequeueAfter != time.Hour {
				t.Fatalf("phase %s, removed %v, expiry %v, requeue %s: want Done, kept until t0+1h", got.Phase, got.SandboxRemoved, got.SandboxExpiry, res.RequeueAfter)
			}
			e.clock.Step(time.Hour)
			e.mustReconcile("r1")
			if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ns), &corev1.Namespace{}); err == nil {
				t.Error("the kept sandbox outlived keepOnFailure")
			}
			e.mustReconcile("r1") // the namespace's deletion wakes the run
			if got := e.run("r1").Status; !got.SandboxRemoved {
				t.Error("the run does not say its sandbox is gone")
			}
		})
	}
}

func TestTeardownRefusesANamespaceOfAnotherRun(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).StartedAt(t0).Sandbox(sandboxName("r1")).Obj()
	other := newRun("other").Obj()
	ns := sandboxNamespace(run)
	ns.Labels = sandboxLabels(other)
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, ns)
	if _, err := e.reconcile("r1"); err == nil {
		t.Fatal("teardown deleted or skipped a namespace of another run without saying so")
	}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ns), &corev1.Namespace{}); err != nil {
		t.Errorf("the other run's namespace was deleted: %v", err)
	}
	if got := e.run("r1").Status; got.Phase != drillsv1.PhaseTearingDown || got.LastError == "" {
		t.Errorf("phase %s, last error %q: want teardown stuck, saying why", got.Phase, got.LastError)
	}
}

// stuckSandbox is run's sandbox as a namespace controller leaves it when a
// finalizer nobody removes holds one of its objects: Terminating, saying
// why, and its content copy being deleted but held by the snapshot
// controller's finalizer.
func stuckSandbox(run *drillsv1.DrillRun) (*corev1.Namespace, *snapshotv1.VolumeSnapshotContent) {
	ns := sandboxNamespace(run)
	ns.Finalizers = []string{"kubernetes"}
	ns.DeletionTimestamp = &metav1.Time{Time: t0}
	ns.Status.Conditions = []corev1.NamespaceCondition{
		{Type: corev1.NamespaceDeletionContentFailure, Status: corev1.ConditionFalse, Message: "All content successfully deleted, may be waiting on finalization"},
		{Type: corev1.NamespaceFinalizersRemaining, Status: corev1.ConditionTrue, Message: "Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances"},
	}
	content := builder.ForContent("drill-" + string(run.UID)).Labels(sandboxLabels(run)).Driver("d").DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).Obj()
	content.Finalizers = []string{"snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"}
	content.DeletionTimestamp = &metav1.Time{Time: t0}
	return ns, content
}

// release removes obj's finalizers, as their controller (or an operator)
// does in the end; the fake API server then deletes it.
func (e *engine) release(obj client.Object) {
	e.t.Helper()
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(obj), obj); err != nil {
		e.t.Fatal(err)
	}
	obj.SetFinalizers(nil)
	e.update(obj)
}

func TestTeardownIsBoundedByItsTimeout(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultFailed).Reason("CheckFailed").StartedAt(t0.Add(-10*time.Minute)).
		Sandbox(sandboxName("r1")).PhaseTiming(drillsv1.PhaseTearingDown, t0, time.Time{}).Obj()
	ns, content := stuckSandbox(run)
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().TeardownTimeout(2*time.Minute).Obj(), run, ns, content)

	res := e.mustReconcile("r1")
	if got := e.run("r1").Status; got.Phase != drillsv1.PhaseTearingDown || res.RequeueAfter != teardownRecheck || len(got.Conditions) != 0 {
		t.Fatalf("phase %s, requeue %s, conditions %v: want teardown waiting for the sandbox", got.Phase, res.RequeueAfter, got.Conditions)
	}
	e.clock.Step(2*time.Minute - time.Second)
	if res := e.mustReconcile("r1"); res.RequeueAfter != time.Second {
		t.Errorf("requeue %s a second before the deadline, want 1s", res.RequeueAfter)
	}
	drainEvents(e)

	e.clock.Step(time.Second)
	e.mustReconcile("r1")
	got := e.run("r1").Status
	if got.Phase != drillsv1.PhaseDone || got.Result != drillsv1.ResultFailed || got.Reason != "CheckFailed" || got.CompletionTime == nil || got.SandboxRemoved {
		t.Fatalf("status %s/%s in %s, completed %v, removed %v: want Done with its verdict, the sandbox not removed", got.Result, got.Reason, got.Phase, got.CompletionTime, got.SandboxRemoved)
	}
	leak := meta.FindStatusCondition(got.Conditions, drillsv1.ConditionSandboxLeaked)
	wantLeft := []string{
		"timeouts.teardown (2m0s)",
		"Namespace " + ns.Name + " (Terminating: Some content in the namespace has finalizers remaining: example.com/hold in 1 resource instances)",
		"VolumeSnapshotContent " + content.Name + " (being deleted, finalizers snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection)",
	}
	if leak == nil || leak.Status != metav1.ConditionTrue || leak.Reason != "TeardownTimeout" {
		t.Fatalf("condition %+v, want SandboxLeaked=True (TeardownTimeout)", leak)
	}
	for _, want := range wantLeft {
		if !strings.Contains(leak.Message, want) {
			t.Errorf("SandboxLeaked message %q does not name %q", leak.Message, want)
		}
	}
	if ev := drainEvents(e); !strings.Contains(ev, "Warning SandboxLeaked "+leak.Message) || !strings.Contains(ev, "Warning Failed CheckFailed") {
		t.Errorf("events %q, want the SandboxLeaked warning and the verdict", ev)
	}

	// Nothing changes while the rest stays.
	if res := e.mustReconcile("r1"); res.RequeueAfter != leakRecheck || e.run("r1").Status.SandboxRemoved {
		t.Errorf("requeue %s: want the leak rechecked every %s", res.RequeueAfter, leakRecheck)
	}
	// Whoever removes the finalizers ends it: the run says so.
	e.release(content)
	e.release(ns)
	e.mustReconcile("r1")
	got = e.run("r1").Status
	leak = meta.FindStatusCondition(got.Conditions, drillsv1.ConditionSandboxLeaked)
	if !got.SandboxRemoved || leak == nil || leak.Status != metav1.ConditionFalse || leak.Reason != "SandboxRemoved" {
		t.Errorf("removed %v, condition %+v: want the sandbox removed and SandboxLeaked=False", got.SandboxRemoved, leak)
	}
	if ev := drainEvents(e); !strings.Contains(ev, "Normal SandboxRemoved") {
		t.Errorf("events %q, want SandboxRemoved", ev)
	}
}

func TestTeardownRefusedPastItsTimeoutNamesTheError(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).StartedAt(t0.Add(-10*time.Minute)).
		Sandbox(sandboxName("r1")).PhaseTiming(drillsv1.PhaseTearingDown, t0, time.Time{}).Obj()
	forbidden := interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		if _, ok := obj.(*corev1.Namespace); ok {
			return apierrors.NewForbidden(corev1.Resource("namespaces"), obj.GetName(), errors.New("a policy says no"))
		}
		return c.Delete(ctx, obj, opts...)
	}}
	e := newEngine(t, forbidden, ordersDrill().Obj(), run, sandboxNamespace(run))
	if _, err := e.reconcile("r1"); err == nil {
		t.Fatal("a refused deletion before the deadline is not retried")
	}
	if got := e.run("r1").Status; got.Phase != drillsv1.PhaseTearingDown || !strings.Contains(got.LastError, "a policy says no") {
		t.Fatalf("phase %s, last error %q: want teardown retrying, saying why", got.Phase, got.LastError)
	}
	e.clock.Step(drillsv1.DefaultTeardownTimeout)
	e.mustReconcile("r1")
	got := e.run("r1").Status
	leak := meta.FindStatusCondition(got.Conditions, drillsv1.ConditionSandboxLeaked)
	if got.Phase != drillsv1.PhaseDone || got.Result != drillsv1.ResultSucceeded || leak == nil || leak.Status != metav1.ConditionTrue ||
		!strings.Contains(leak.Message, "Namespace "+sandboxName("r1")+" (deletion not requested yet)") || !strings.Contains(leak.Message, "last error: ") ||
		!strings.Contains(leak.Message, "a policy says no") || !strings.Contains(leak.Message, "timeouts.teardown (10m0s)") {
		t.Errorf("status %s/%s in %s, condition %+v: want Done, Succeeded kept, SandboxLeaked naming the namespace and the refusal", got.Result, got.Reason, got.Phase, leak)
	}
}

func TestAKeptSandboxIsBoundedFromItsExpiry(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseDone).Result(drillsv1.ResultFailed).StartedAt(t0.Add(-time.Hour)).
		Sandbox(sandboxName("r1")).KeptUntil(t0).Obj()
	ns, content := stuckSandbox(run)
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().KeepOnFailure(time.Hour).TeardownTimeout(time.Minute).Obj(), run, ns, content)
	if res := e.mustReconcile("r1"); res.RequeueAfter != teardownRecheck || leaked(e.run("r1").Status) {
		t.Fatalf("requeue %s: want removal under way, no leak yet", res.RequeueAfter)
	}
	e.clock.Step(time.Minute)
	if res := e.mustReconcile("r1"); res.RequeueAfter != leakRecheck {
		t.Errorf("requeue %s once leaked, want the leak rechecked every %s", res.RequeueAfter, leakRecheck)
	}
	got := e.run("r1").Status
	if leak := meta.FindStatusCondition(got.Conditions, drillsv1.ConditionSandboxLeaked); leak == nil || leak.Status != metav1.ConditionTrue ||
		!strings.Contains(leak.Message, "Namespace "+ns.Name) || got.SandboxRemoved {
		t.Errorf("condition %+v, removed %v: want SandboxLeaked a timeouts.teardown after keepOnFailure ended", leak, got.SandboxRemoved)
	}
}
