package drill

import (
	"context"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

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
		{"run deleted", nil, sandboxNamespace(gone, "drill-orders-db-aaaa"), true},
		{"run done", []client.Object{done}, sandboxNamespace(done, "drill-orders-db-bbbb"), true},
		{"run in progress", []client.Object{running}, sandboxNamespace(running, "drill-orders-db-cccc"), false},
		{"kept for debugging", []client.Object{kept}, sandboxNamespace(kept, "drill-orders-db-dddd"), false},
		{"keepOnFailure expired", []client.Object{expired}, sandboxNamespace(expired, "drill-orders-db-eeee"), true},
		{"labelled but without the name prefix is never touched", nil, sandboxNamespace(gone, "payments"), false},
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
	gone := newRun("gone").Obj()
	retain := builder.ForContent("drill-retain").Labels(sandboxLabels(gone)).Driver("d").DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).Obj()
	retain.Spec.Source.SnapshotHandle = ptrTo("h")
	deleting := retain.DeepCopy()
	deleting.Name = "drill-delete-policy"
	deleting.Spec.DeletionPolicy = snapshotv1.VolumeSnapshotContentDelete
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
		{"run gone: released", volume("pv-1", "drill-orders-db-aaaa", labels(gone)), true},
		{"run in progress: kept", volume("pv-2", "drill-orders-db-bbbb", labels(running)), false},
		{"labelled, but bound to another namespace's claim", volume("pv-3", "prod", labels(gone)), false},
		{"not labelled: never touched", volume("pv-4", "drill-orders-db-cccc", nil), false},
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
	ns := sandboxNamespace(gone, "drill-orders-db-ffff")
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
