package drill

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

func TestTeardownReleasesARetainedVolume(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).StartedAt(t0).Sandbox("drill-orders-db-1234abcd").
		Status(func(s *drillsv1.DrillRunStatus) { s.VolumeName = "pvc-restored" }).Obj()
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
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, sandboxNamespace(run, run.Status.SandboxNamespace), restored, production)
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
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultError).StartedAt(t0).Sandbox("drill-orders-db-1234abcd").Obj()
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: run.Status.SandboxNamespace, Name: restore.DataClaimName},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pvc-late"},
	}
	late := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pvc-late"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: run.Status.SandboxNamespace, Name: restore.DataClaimName}},
	}
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, sandboxNamespace(run, run.Status.SandboxNamespace), claim, late)
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
			run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(tt.result).StartedAt(t0).Sandbox("drill-orders-db-1234abcd").Obj()
			ns := sandboxNamespace(run, "drill-orders-db-1234abcd")
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
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).StartedAt(t0).Sandbox("drill-orders-db-1234abcd").Obj()
	other := newRun("other").Obj()
	ns := sandboxNamespace(other, "drill-orders-db-1234abcd")
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
