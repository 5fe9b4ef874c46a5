package drill

import (
	"context"
	"fmt"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/verdict"
)

// provision is the Provisioning step: it makes the run's Access and
// creates the sandbox (namespace, NetworkPolicy, pg_hba ConfigMap, TLS
// Secret, content copy, snapshot) and plans its claim, which
// RestoringVolume creates with the database pod. Its start is the start
// of the RTO.
func (r *Reconciler) provision(ctx context.Context, w *work) (outcome, error) {
	sb := w.sandbox
	access, ok := r.access.get(w.run)
	if !ok {
		if w.run.Status.SandboxNamespace != "" {
			return conclude(accessLost(w.run.Status.Phase)), nil
		}
		var err error
		if access, err = r.issueAccess(w); err != nil {
			return outcome{}, err
		}
		r.access.put(w.run, access)
	}
	if w.run.Status.SandboxNamespace == "" {
		// Recorded before anything is created, so that teardown and the
		// sweep find the sandbox whatever happens next.
		w.run.Status.SandboxNamespace = sb.NamespaceName()
		if err := r.save(ctx, w); err != nil {
			return outcome{}, err
		}
	}
	snap := w.run.Status.Snapshot
	source := w.source
	if source == nil || source.Name != snap.ContentName {
		source = &snapshotv1.VolumeSnapshotContent{}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Name: snap.ContentName}, source); apierrors.IsNotFound(err) {
			return conclude(verdict.Failed(verdict.ReasonRestoreFailed, "VolumeSnapshotContent %s of snapshot %s was deleted before the restore", snap.ContentName, snap.Name)), nil
		} else if err != nil {
			return outcome{}, fmt.Errorf("while reading the source VolumeSnapshotContent: %w", err)
		}
	}
	claim := &corev1.PersistentVolumeClaim{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: w.run.Namespace, Name: w.drill.Spec.Source.PersistentVolumeClaimName}, claim)
	if apierrors.IsNotFound(err) {
		claim = &corev1.PersistentVolumeClaim{} // restore size and the drill's class still decide
	} else if err != nil {
		return outcome{}, fmt.Errorf("while reading the source claim: %w", err)
	}

	content := sb.ContentCopy(source, snap.SnapshotHandle)
	for _, obj := range []client.Object{sb.Namespace(), sb.NetworkPolicy(), sb.HBAConfigMap(access), sb.TLSSecret(access), content} {
		if err := r.create(ctx, w, obj); err != nil {
			return outcome{}, err
		}
	}
	// What is restored from the content copy belongs to it: deleting the
	// copy in the foreground (teardown) has the garbage collector delete
	// them at once, so that the namespace controller finds nothing held by
	// a finalizer when it empties the sandbox.
	owned := []metav1.OwnerReference{restore.OwnedByContentCopy(content)}
	snapshotCopy := sb.SnapshotCopy()
	snapshotCopy.SetOwnerReferences(owned)
	if err := r.create(ctx, w, snapshotCopy); err != nil {
		return outcome{}, err
	}
	// The claim and the database pod follow in RestoringVolume, once the
	// snapshot controller has made the VolumeSnapshot ready: a provisioner
	// that sees a claim of a snapshot not ready yet refuses it and looks
	// again only after its retry interval. A pod the API server would
	// refuse (invalid, over a quota, denied by admission) is found now,
	// with a dry run, before anything is restored.
	pod := sb.DatabasePod()
	pod.SetOwnerReferences(owned)
	if err := r.Client.Create(ctx, pod, client.DryRunAll); err != nil && !apierrors.IsAlreadyExists(err) {
		return outcome{}, fmt.Errorf("while checking sandbox %T %s with the API server: %w", pod, pod.Name, err)
	}
	restored := sb.Claim(claim, snap.RestoreSize)
	restored.SetOwnerReferences(owned)
	r.access.planClaim(w.run, restored)
	w.log.Info("sandbox provisioned", "sandbox", sb.NamespaceName())
	return nextPhase(), nil
}

// create creates obj; an existing object of this run is adopted, one of
// anybody else is an error.
func (r *Reconciler) create(ctx context.Context, w *work, obj client.Object) error {
	err := r.Client.Create(ctx, obj)
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("while creating sandbox %T %s: %w", obj, obj.GetName(), err)
	}
	if _, ok := obj.(*corev1.Secret); ok {
		// drillerd may not read Secrets. This one is in the run's own
		// namespace (adopted only with the run's labels), so an earlier
		// attempt of this run made it; were it anybody else's, the
		// database would serve a certificate drillerd does not accept.
		return nil
	}
	existing := obj.DeepCopyObject().(client.Object)
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), existing); err != nil {
		return fmt.Errorf("while reading existing sandbox object %s: %w", obj.GetName(), err)
	}
	if existing.GetLabels()[restore.LabelRun] != string(w.run.UID) {
		return fmt.Errorf("%w: %s", errSandboxTaken, obj.GetName())
	}
	obj.SetUID(existing.GetUID())
	return nil
}
