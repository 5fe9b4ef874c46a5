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
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/restore"
)

func TestSweep(t *testing.T) {
	gone := newRun("gone").Obj()
	done := newRun("done").In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).SandboxRemoved().Obj()
	running := newRun("running").In(drillsv1.PhaseValidating).Obj()
	kept := newRun("kept").In(drillsv1.PhaseDone).Result(drillsv1.ResultFailed).KeptUntil(t0.Add(time.Hour)).Obj()
	expired := newRun("expired").In(drillsv1.PhaseDone).Result(drillsv1.ResultFailed).KeptUntil(t0.Add(-time.Minute)).Obj()

	tests := []struct {
		name      string
		runs      []client.Object
		namespace *corev1.Namespace
		wantSwept bool
	}{
		{"run deleted", nil, sandboxNamespace(gone), true},
		{"run done", []client.Object{done}, sandboxNamespace(done), true},
		{"run in progress", []client.Object{running}, sandboxNamespace(running), false},
		{"kept for debugging", []client.Object{kept}, sandboxNamespace(kept), false},
		{"keepOnFailure expired", []client.Object{expired}, sandboxNamespace(expired), true},
		{"labelled but without the name prefix is never touched", nil, renamed(sandboxNamespace(gone), "payments"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append([]client.Object{tt.namespace}, tt.runs...)
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build()
			removed := 0
			r := newRecovery(c)
			r.OrphanRemoved = func(string) { removed++ }
			if err := r.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			err := c.Get(context.Background(), client.ObjectKeyFromObject(tt.namespace), &corev1.Namespace{})
			if swept := apierrors.IsNotFound(err); swept != tt.wantSwept {
				t.Errorf("namespace swept = %v, want %v", swept, tt.wantSwept)
			}
			if (removed == 1) != tt.wantSwept {
				t.Errorf("OrphanRemoved called %d times", removed)
			}
		})
	}
}

func TestSweepDeletesOnlyRetainCopies(t *testing.T) {
	gone, goneToo := newRun("gone").Obj(), newRun("gone-too").Obj()
	copyOf := func(run *drillsv1.DrillRun, policy snapshotv1.DeletionPolicy) *snapshotv1.VolumeSnapshotContent {
		c := builder.ForContent("drill-" + string(run.UID)).Labels(sandboxLabels(run)).Driver("d").DeletionPolicy(policy).Obj()
		c.Spec.Source.SnapshotHandle = ptrTo("h")
		return c
	}
	retain := copyOf(gone, snapshotv1.VolumeSnapshotContentRetain)
	deleting := copyOf(goneToo, snapshotv1.VolumeSnapshotContentDelete)
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(retain, deleting).Build()
	r := newRecovery(c)
	if err := r.Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(retain), &snapshotv1.VolumeSnapshotContent{}); !apierrors.IsNotFound(err) {
		t.Errorf("orphaned Retain copy not swept: %v", err)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(deleting), &snapshotv1.VolumeSnapshotContent{}); err != nil {
		t.Errorf("a Delete-policy content was swept (it would destroy a physical snapshot): %v", err)
	}
}

func TestSweepReleasesOrphanedRetainedVolumes(t *testing.T) {
	gone := newRun("gone").Obj()
	running := newRun("running").In(drillsv1.PhaseValidating).Obj()
	labels := sandboxLabels
	volume := func(name, claimNamespace string, l map[string]string) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: l},
			Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
				ClaimRef: &corev1.ObjectReference{Namespace: claimNamespace, Name: restore.DataClaimName}},
		}
	}
	tests := []struct {
		name        string
		pv          *corev1.PersistentVolume
		wantRelease bool
	}{
		{"run gone: released", volume("pv-1", sandboxOf(gone), labels(gone)), true},
		{"run in progress: kept", volume("pv-2", sandboxOf(running), labels(running)), false},
		{"labelled, but bound to another namespace's claim", volume("pv-3", "prod", labels(gone)), false},
		{"not labelled: never touched", volume("pv-4", sandboxOf(gone), nil), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(tt.pv, running).Build()
			r := newRecovery(c)
			if err := r.Sweep(context.Background()); err != nil {
				t.Fatal(err)
			}
			got := &corev1.PersistentVolume{}
			if err := c.Get(context.Background(), client.ObjectKeyFromObject(tt.pv), got); err != nil {
				t.Fatal(err)
			}
			if released := got.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete; released != tt.wantRelease {
				t.Errorf("reclaim policy %s, want released=%v", got.Spec.PersistentVolumeReclaimPolicy, tt.wantRelease)
			}
		})
	}
}

func TestSweepReleasesTheVolumeOfAnOrphanedSandboxBoundAfterItsRun(t *testing.T) {
	// The run is gone; its sandbox claim bound to a Retain volume that was
	// never labelled (the run ended before it saw the claim bound).
	gone := newRun("gone").Obj()
	ns := sandboxNamespace(gone)
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: restore.DataClaimName},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pv-late"},
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-late"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: ns.Name, Name: restore.DataClaimName}},
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(ns, claim, pv).Build()
	if err := newRecovery(c).Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	got := &corev1.PersistentVolume{}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(pv), got); err != nil || got.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimDelete {
		t.Errorf("volume %v (%v), want reclaimPolicy Delete before its namespace is swept", got.Spec.PersistentVolumeReclaimPolicy, err)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(ns), &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("orphaned namespace not swept: %v", err)
	}
}

// newRecovery is a Recovery at t0 on c.

func TestTheSweepGoesOnPastAnErrorAndReportsEach(t *testing.T) {
	refused, stuck, orphan := newRun("refused").Obj(), newRun("stuck").Obj(), newRun("orphan").Obj()
	copyOf := func(run *drillsv1.DrillRun) *snapshotv1.VolumeSnapshotContent {
		return builder.ForContent("drill-" + string(run.UID)).Labels(sandboxLabels(run)).Driver("d").DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).Obj()
	}
	// The API server refuses to delete one namespace and one content copy.
	funcs := interceptor.Funcs{Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
		if obj.GetName() == sandboxOf(refused) || obj.GetName() == "drill-"+string(stuck.UID) {
			return apierrors.NewForbidden(corev1.Resource("namespaces"), obj.GetName(), errors.New("a policy says no"))
		}
		return c.Delete(ctx, obj, opts...)
	}}
	objs := []client.Object{sandboxNamespace(refused), sandboxNamespace(orphan), copyOf(stuck), copyOf(orphan)}
	c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(objs...).Build(), funcs)
	rec := events.NewFakeRecorder(10)
	failed := map[string]int{}
	r := newRecovery(c)
	r.Recorder = rec
	r.SweepFailed = func(kind string) { failed[kind]++ }

	err := r.Sweep(context.Background())
	if err == nil || !strings.Contains(err.Error(), "orphaned sandbox "+sandboxOf(refused)) || !strings.Contains(err.Error(), "orphaned content copy drill-"+string(stuck.UID)) {
		t.Errorf("sweep error %v, want both refusals", err)
	}
	for _, gone := range []client.Object{sandboxNamespace(orphan), copyOf(orphan)} {
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(gone), gone); !apierrors.IsNotFound(err) {
			t.Errorf("%s %s was not swept after the errors before it: %v", gone.GetObjectKind().GroupVersionKind().Kind, gone.GetName(), err)
		}
	}
	if failed["Namespace"] != 1 || failed["VolumeSnapshotContent"] != 1 {
		t.Errorf("SweepFailed %v, want one Namespace and one VolumeSnapshotContent", failed)
	}
	var got []string
	for len(rec.Events) > 0 {
		got = append(got, <-rec.Events)
	}
	if len(got) != 2 || !strings.Contains(strings.Join(got, "\n"), "Warning SweepFailed the sweep could not remove orphaned Namespace "+sandboxOf(refused)) {
		t.Errorf("events %q, want a SweepFailed warning for each", got)
	}
}

func TestTheSweepLeavesDecoysAlone(t *testing.T) {
	gone := newRun("gone").Obj()
	made := func(name string, labels map[string]string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels}}
	}
	decoys := []client.Object{
		made(sandboxOf(gone), nil),                            // the prefix and a sandbox's name, no labels
		made("payments", sandboxLabels(gone)),                 // the labels, not the prefix
		made("drill-orders-db-0a1b2c3d", sandboxLabels(gone)), // labels of a run it was not made for
		builder.ForContent("drill-uid-gone").Labels(map[string]string{restore.LabelManagedBy: restore.ManagedByValue}).Driver("d").
			DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).Obj(), // no run
		builder.ForContent("snapcontent-prod").Labels(sandboxLabels(gone)).Driver("d").
			DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).Obj(), // a production content labelled like a copy
	}
	c := fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(decoys...).Build()
	if err := newRecovery(c).Sweep(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, d := range decoys {
		fresh := d.DeepCopyObject().(client.Object)
		if err := c.Get(context.Background(), client.ObjectKeyFromObject(d), fresh); err != nil || fresh.GetResourceVersion() != "999" {
			t.Errorf("%s was touched by the sweep: %v, resourceVersion %s", d.GetName(), err, fresh.GetResourceVersion())
		}
	}
}

func TestTheSweepKeepsASandboxWhoseVolumeItCannotRelease(t *testing.T) {
	gone := newRun("gone").Obj()
	ns := sandboxNamespace(gone)
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns.Name, Name: restore.DataClaimName},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: "pv-late"},
	}
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: "pv-late"},
		Spec: corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			ClaimRef: &corev1.ObjectReference{Namespace: ns.Name, Name: restore.DataClaimName}},
	}
	refused := interceptor.Funcs{Patch: func(ctx context.Context, c client.WithWatch, obj client.Object, patch client.Patch, opts ...client.PatchOption) error {
		return apierrors.NewServiceUnavailable("the API server is busy")
	}}
	c := interceptor.NewClient(fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(ns, claim, pv).Build(), refused)
	failed := 0
	r := newRecovery(c)
	r.SweepFailed = func(string) { failed++ }
	if err := r.Sweep(context.Background()); err == nil || failed != 1 {
		t.Errorf("sweep error %v, %d failures reported, want the refused patch reported", err, failed)
	}
	if err := c.Get(context.Background(), client.ObjectKeyFromObject(ns), &corev1.Namespace{}); err != nil {
		t.Errorf("the sandbox was deleted before its Retain volume was released (it would outlive it, unlabelled): %v", err)
	}
}
