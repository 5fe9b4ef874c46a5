package drill

import (
	"context"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

// sandboxKinds are the sandbox objects whose changes wake their run.
func sandboxKinds() []client.Object {
	return []client.Object{
		&corev1.Namespace{}, &corev1.Pod{}, &corev1.PersistentVolumeClaim{}, &corev1.PersistentVolume{},
		&snapshotv1.VolumeSnapshot{}, &snapshotv1.VolumeSnapshotContent{},
	}
}

// CacheByObject restricts the manager's cache of sandbox kinds to drillerd's
// own objects: drillerd never caches the cluster's pods or claims.
func CacheByObject() map[client.Object]cache.ByObject {
	owned := labels.SelectorFromSet(labels.Set{restore.LabelManagedBy: restore.ManagedByValue})
	out := map[client.Object]cache.ByObject{}
	for _, obj := range sandboxKinds() {
		out[obj] = cache.ByObject{Label: owned}
	}
	return out
}

// SetupWithManager registers the reconciler; workers bounds how many runs
// progress at once.
func (r *Reconciler) SetupWithManager(mgr ctrl.Manager, workers int) error {
	toRun := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		l := o.GetLabels()
		if l[restore.LabelRunName] == "" || l[restore.LabelRunNamespace] == "" {
			return nil
		}
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: l[restore.LabelRunNamespace], Name: l[restore.LabelRunName]}}}
	})
	owned := predicate.NewPredicateFuncs(func(o client.Object) bool {
		return o.GetLabels()[restore.LabelManagedBy] == restore.ManagedByValue
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("drillrun").
		For(&drillsv1.DrillRun{}, builder.WithPredicates(UnsettledOnCreate())).
		WithOptions(controller.Options{MaxConcurrentReconciles: workers})
	for _, obj := range sandboxKinds() {
		b = b.Watches(obj, toRun, builder.WithPredicates(owned))
	}
	return b.Complete(r)
}

// UnsettledOnCreate lets through every event but the first sight of a
// settled run (drillsv1.DrillRunStatus.Settled): at start, a cluster's
// thousands of finished runs have nothing to do and are not reconciled one
// by one. Their later changes and deletions still are.
func UnsettledOnCreate() predicate.Predicate {
	return predicate.Funcs{CreateFunc: func(e event.CreateEvent) bool {
		run, ok := e.Object.(*drillsv1.DrillRun)
		return !ok || !run.Status.Settled()
	}}
}
