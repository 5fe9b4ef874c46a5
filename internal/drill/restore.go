package drill

import (
	"context"
	"fmt"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/verdict"
)

// restoreVolume is the RestoringVolume step: it waits until the sandbox's
// snapshot copy is ready, then creates the claim restored from it and the
// database pod, and waits until the claim is bound, at most
// timeouts.volume.
func (r *Reconciler) restoreVolume(ctx context.Context, w *work) (outcome, error) {
	ns := w.sandbox.NamespaceName()
	timeout := durationOr(w.drill.Spec.Timeouts.Volume, drillsv1.DefaultVolumeTimeout)
	deadline := phaseDeadline(w, timeout)

	vs := &snapshotv1.VolumeSnapshot{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.SourceSnapshotName}, vs); client.IgnoreNotFound(err) != nil {
		return outcome{}, err
	}
	content := &snapshotv1.VolumeSnapshotContent{}
	switch err := r.Client.Get(ctx, types.NamespacedName{Name: w.sandbox.ContentName()}, content); {
	case apierrors.IsNotFound(err):
		content = nil
	case err != nil:
		return outcome{}, err
	}
	copied := restore.SnapshotCopyReady(vs, content)
	if copied.Refused != "" {
		return conclude(verdict.Failed(verdict.ReasonRestoreFailed, "VolumeSnapshot %s/%s failed: %s", ns, restore.SourceSnapshotName, copied.Refused)), nil
	}
	if copied.Retrying != "" {
		// It holds the run up: the run's status says so while it waits.
		w.run.Status.LastError = boundMessage(fmt.Sprintf("VolumeSnapshot %s/%s: the snapshot controller says: %s", ns, restore.SourceSnapshotName, copied.Retrying))
	}
	ready := copied.Ready
	pvc := &corev1.PersistentVolumeClaim{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}, pvc)
	if client.IgnoreNotFound(err) != nil {
		return outcome{}, err
	}
	if ready {
		switch planned, made, ok := r.access.plannedClaim(w.run); {
		case ok && !made:
			// The claim and the pod, once the snapshot is ready; again
			// after a failure between the two.
			if err := r.createClaimAndPod(ctx, w, planned); err != nil {
				return outcome{}, err
			}
		case !ok && apierrors.IsNotFound(err):
			return conclude(accessLost(w.run.Status.Phase)), nil
		}
	}
	bound := restore.ClaimBound(pvc)
	if bound {
		w.run.Status.VolumeName = pvc.Spec.VolumeName
		if err := r.labelVolume(ctx, w.run, w.sandbox.Labels()); err != nil {
			return outcome{}, err
		}
	}
	switch {
	case ready && bound:
		return nextPhase(), nil
	case w.now.Before(deadline):
		return waitFor(wakeAt(w, deadline).Sub(w.now)), nil
	case vs.Name != "" && vs.Status == nil:
		// The snapshot controller gives every VolumeSnapshot it sees a
		// status, ready or not: nothing is known of the backup.
		return conclude(verdict.Errored(verdict.ReasonSnapshotControllerUnavailable,
			"VolumeSnapshot %s/%s has no status after %s: no snapshot controller took it in hand; is the external-snapshotter's snapshot-controller running?",
			ns, restore.SourceSnapshotName, timeout)), nil
	case !ready:
		why := "the snapshot controller says: " + copied.Retrying
		if copied.Retrying == "" {
			why = r.lastEvent(ctx, vs, "VolumeSnapshot")
		}
		return conclude(verdict.Failed(verdict.ReasonRestoreFailed, "%s", withEvent(fmt.Sprintf("VolumeSnapshot %s/%s not ready after %s", ns, restore.SourceSnapshotName, timeout), why))), nil
	}
	return conclude(verdict.Failed(verdict.ReasonRestoreFailed, "%s", withEvent(fmt.Sprintf("PVC %s/%s not bound after %s", ns, restore.DataClaimName, timeout), r.lastEvent(ctx, pvc, "PersistentVolumeClaim")))), nil
}

// labelVolume gives the restored volume the sandbox's ownership labels, so
// that the sweep can find it if the run's teardown never happens.
func (r *Reconciler) labelVolume(ctx context.Context, run *drillsv1.DrillRun, labels map[string]string) error {
	pv := &corev1.PersistentVolume{}
	key := types.NamespacedName{Name: run.Status.VolumeName}
	if r.Client.Get(ctx, key, pv) == nil && pv.Labels[restore.LabelRun] == string(run.UID) {
		return nil // labelled already: the cache holds only labelled volumes
	}
	if err := r.APIReader.Get(ctx, key, pv); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("while reading the restored volume %s: %w", run.Status.VolumeName, err)
	} else if err != nil || !restore.IsSandboxVolume(pv, run.Status.SandboxNamespace) || pv.Labels[restore.LabelRun] == string(run.UID) {
		return nil
	}
	orig := pv.DeepCopy()
	if pv.Labels == nil {
		pv.Labels = map[string]string{}
	}
	for k, v := range labels {
		pv.Labels[k] = v
	}
	if err := r.Client.Patch(ctx, pv, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("while labelling the restored volume %s: %w", pv.Name, err)
	}
	return nil
}

// createClaimAndPod creates the planned claim and the database pod, owned
// by the content copy as the claim is. The pod is created with the claim:
// on a class that waits for the first consumer, it is what has the claim
// provisioned.
func (r *Reconciler) createClaimAndPod(ctx context.Context, w *work, claim *corev1.PersistentVolumeClaim) error {
	pod := w.sandbox.DatabasePod()
	pod.SetOwnerReferences(claim.OwnerReferences)
	for _, obj := range []client.Object{claim, pod} {
		if err := r.create(ctx, w, obj); err != nil {
			return err
		}
	}
	r.access.claimCreated(w.run)
	return nil
}
