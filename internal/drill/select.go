package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/verdict"
)

// selectSnapshot is the SelectingSnapshot step: it picks the newest ready
// snapshot of the source claim (or the pinned one) and records it with its
// content's snapshot handle.
func (r *Reconciler) selectSnapshot(ctx context.Context, w *work) (outcome, error) {
	src := w.drill.Spec.Source
	list := &snapshotv1.VolumeSnapshotList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(w.run.Namespace)); err != nil {
		return outcome{}, fmt.Errorf("while listing VolumeSnapshots: %w", err)
	}
	selector := labels.Everything()
	if src.SnapshotSelector != nil {
		var err error
		selector, err = metav1.LabelSelectorAsSelector(src.SnapshotSelector)
		if err != nil {
			return conclude(verdict.Errored(verdict.ReasonInvalidSpec, "spec.source.snapshotSelector: %v", err)), nil
		}
	}
	snap, err := restore.SelectSnapshot(list.Items, src.PersistentVolumeClaimName, selector, w.run.Spec.SnapshotName)
	switch {
	case errors.Is(err, restore.ErrNoReadySnapshot):
		return conclude(verdict.Failed(verdict.ReasonNoReadySnapshot, "%v", err)), nil
	case errors.Is(err, restore.ErrSnapshotNotFound):
		return conclude(verdict.Failed(verdict.ReasonSnapshotNotFound, "%v", err)), nil
	case err != nil:
		return outcome{}, err
	}
	content := &snapshotv1.VolumeSnapshotContent{}
	contentName := ptr.Deref(snap.Status.BoundVolumeSnapshotContentName, "")
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: contentName}, content); apierrors.IsNotFound(err) {
		return conclude(verdict.Failed(verdict.ReasonRestoreFailed, "VolumeSnapshotContent %s of snapshot %s does not exist", contentName, snap.Name)), nil
	} else if err != nil {
		return outcome{}, fmt.Errorf("while reading VolumeSnapshotContent %s of snapshot %s: %w", contentName, snap.Name, err)
	}
	handle := ""
	if content.Status != nil {
		handle = ptr.Deref(content.Status.SnapshotHandle, "")
	}
	if handle == "" {
		return conclude(verdict.Failed(verdict.ReasonRestoreFailed, "VolumeSnapshotContent %s of snapshot %s has no snapshot handle", content.Name, snap.Name)), nil
	}
	w.source = content
	created := metav1.NewTime(restore.SnapshotTime(snap))
	w.run.Status.Snapshot = &drillsv1.SnapshotRef{
		Name: snap.Name, ClaimName: src.PersistentVolumeClaimName, ContentName: content.Name, SnapshotHandle: handle,
		CreationTime: &created, RestoreSize: snap.Status.RestoreSize,
	}
	w.log.Info("snapshot selected", "snapshot", snap.Name, "created", created.Time)
	if w.run.Spec.SnapshotName == "" {
		r.reportSkipped(w, restore.SkippedNewer(list.Items, src.PersistentVolumeClaimName, selector, snap))
	}
	return nextPhase(), nil
}

// reportSkipped records the newer snapshots that were passed over: a
// snapshot schedule that stopped producing usable snapshots is news, even
// when an older snapshot still restores.
func (r *Reconciler) reportSkipped(w *work, skipped []drillsv1.SkippedSnapshot) {
	w.run.Status.SkippedSnapshots = skipped
	if len(skipped) == 0 {
		return
	}
	names := make([]string, len(skipped))
	for i, s := range skipped {
		names[i] = s.Name + " (" + s.Reason + ")"
	}
	note := fmt.Sprintf("restoring %s; %d newer snapshots were passed over: %s", w.run.Status.Snapshot.Name, len(skipped), strings.Join(names, ", "))
	r.Recorder.Eventf(w.run, nil, corev1.EventTypeWarning, "SnapshotsSkipped", "SelectSnapshot", "%s", boundMessage(note))
}
