package restore

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// SandboxState says whether a labelled sandbox object is still needed.
type SandboxState string

const (
	// SandboxActive: its run is in progress (tearing down included) and
	// removes it itself.
	SandboxActive SandboxState = "active"
	// SandboxKept: its run failed and keeps it for keepOnFailure.
	SandboxKept SandboxState = "kept"
	// SandboxOrphaned: its run is gone, or finished and past keepOnFailure;
	// the sweep removes it.
	SandboxOrphaned SandboxState = "orphaned"
)

// RunOf names the DrillRun a sandbox object belongs to, from its labels.
func RunOf(labels map[string]string) types.NamespacedName {
	return types.NamespacedName{Namespace: labels[LabelRunNamespace], Name: labels[LabelRunName]}
}

// StateOf decides the state of a sandbox object with labels, given its run
// as read by RunOf (nil when that run does not exist) at now.
func StateOf(labels map[string]string, run *drillsv1.DrillRun, now time.Time) SandboxState {
	switch {
	case run == nil, string(run.UID) != labels[LabelRun]:
		return SandboxOrphaned // gone, or a newer run of the same name
	case run.Status.Phase != drillsv1.PhaseDone:
		return SandboxActive
	case run.Status.SandboxExpiry != nil && now.Before(run.Status.SandboxExpiry.Time):
		return SandboxKept
	}
	return SandboxOrphaned
}

// ReleaseSandboxVolume sets a sandbox volume's reclaim policy to Delete, so
// that deleting its claim deletes it; the caller has checked the volume with
// IsSandboxVolume or IsOwnedVolume (ownership.go). A volume that is already
// Delete is left alone.
func ReleaseSandboxVolume(ctx context.Context, c client.Client, pv *corev1.PersistentVolume) error {
	if pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
		return nil
	}
	orig := pv.DeepCopy()
	pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
	if err := c.Patch(ctx, pv, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("while setting reclaimPolicy Delete on the restored volume %s: %w", pv.Name, err)
	}
	return nil
}
