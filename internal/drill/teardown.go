package drill

import (
	"context"
	"fmt"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

// teardownRecheck is how often teardown looks whether the sandbox is gone.
const teardownRecheck = 5 * time.Second

// tearDown is the TearingDown step: it removes the sandbox and waits until
// it is gone, or keeps a failed one for keepOnFailure (the Done step removes
// it then).
func (r *Reconciler) tearDown(ctx context.Context, w *work) (outcome, error) {
	s := &w.run.Status
	if s.SandboxNamespace == "" {
		s.SandboxRemoved = true
		return nextPhase(), nil
	}
	keep := time.Duration(0)
	if w.drill != nil && w.drill.Spec.Sandbox.KeepOnFailure != nil {
		keep = w.drill.Spec.Sandbox.KeepOnFailure.Duration
	}
	if s.Result != drillsv1.ResultSucceeded && keep > 0 && s.SandboxExpiry == nil {
		expiry := metav1.NewTime(w.now.Add(keep))
		s.SandboxExpiry = &expiry
		w.log.Info("keeping the failed sandbox", "sandbox", s.SandboxNamespace, "until", expiry.Time)
		return nextPhase(), nil
	}
	if s.SandboxExpiry != nil && w.now.Before(s.SandboxExpiry.Time) {
		return nextPhase(), nil
	}
	gone, err := r.removeSandbox(ctx, w.run)
	if err != nil {
		return outcome{}, err
	}
	if !gone {
		return waitFor(teardownRecheck), nil
	}
	s.SandboxRemoved = true
	return nextPhase(), nil
}

// expireKeptSandbox removes a kept sandbox of a finished run once its
// keepOnFailure has passed.
func (r *Reconciler) expireKeptSandbox(ctx context.Context, w *work) (outcome, error) {
	s := &w.run.Status
	if s.SandboxRemoved || s.SandboxExpiry == nil {
		return waitFor(0), nil
	}
	if w.now.Before(s.SandboxExpiry.Time) {
		return waitFor(s.SandboxExpiry.Sub(w.now)), nil
	}
	gone, err := r.removeSandbox(ctx, w.run)
	if err != nil {
		return outcome{}, err
	}
	if !gone {
		return waitFor(teardownRecheck), nil
	}
	s.SandboxRemoved = true
	return waitFor(0), nil
}

// removeSandbox deletes the run's namespace and content copy, through the
// ownership gates, makes sure the restored volume is deleted with its claim,
// and reports whether all three are gone.
func (r *Reconciler) removeSandbox(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
	volume, gone, err := releaseVolume(ctx, r.APIReader, r.Client, run.Status.SandboxNamespace, run.Status.VolumeName)
	if err != nil {
		return false, err
	}
	run.Status.VolumeName = volume
	if name := run.Status.SandboxNamespace; name != "" {
		ns := &corev1.Namespace{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Name: name}, ns)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return false, err
		case !restore.IsOwnedSandbox(ns) || ns.Labels[restore.LabelRun] != string(run.UID):
			return false, fmt.Errorf("refusing to delete namespace %s: it does not carry this run's labels", name)
		default:
			gone = false
			if ns.DeletionTimestamp == nil {
				if err := r.Client.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
					return false, fmt.Errorf("while deleting sandbox namespace %s: %w", name, err)
				}
			}
		}
	}
	content := &snapshotv1.VolumeSnapshotContent{}
	err = r.APIReader.Get(ctx, types.NamespacedName{Name: restore.Sandbox{Run: run}.ContentName()}, content)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, err
	case !restore.IsOwnedContent(content) || content.Labels[restore.LabelRun] != string(run.UID):
		return false, fmt.Errorf("refusing to delete VolumeSnapshotContent %s: it is not a Retain copy of this run", content.Name)
	default:
		gone = false
		if content.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, content, client.Preconditions{UID: &content.UID}); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("while deleting VolumeSnapshotContent copy %s: %w", content.Name, err)
			}
		}
	}
	return gone, nil
}

// releaseVolume makes the restored volume of sandbox namespace ns go away
// with its claim: a volume of a storage class with reclaimPolicy Retain
// would otherwise outlive the sandbox as a Released copy of production
// data. name is the volume if known, else the sandbox claim's volume is
// looked up (a run can end before it saw its claim bound). Only a volume
// bound to the sandbox's claim is touched (restore.IsSandboxVolume). It
// returns the volume's name and whether it is gone. Teardown and the sweep
// both use it.
func releaseVolume(ctx context.Context, reader client.Reader, c client.Client, ns, name string) (string, bool, error) {
	if name == "" && ns != "" {
		claim := &corev1.PersistentVolumeClaim{}
		err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}, claim)
		if client.IgnoreNotFound(err) != nil {
			return "", false, fmt.Errorf("while reading the sandbox's claim: %w", err)
		}
		name = claim.Spec.VolumeName
	}
	if name == "" {
		return "", true, nil
	}
	pv := &corev1.PersistentVolume{}
	err := reader.Get(ctx, types.NamespacedName{Name: name}, pv)
	switch {
	case apierrors.IsNotFound(err):
		return name, true, nil
	case err != nil:
		return name, false, fmt.Errorf("while reading the restored volume %s: %w", name, err)
	case !restore.IsSandboxVolume(pv, ns):
		return name, true, nil // not the sandbox's (any more): not drillerd's to wait for
	}
	return name, false, restore.ReleaseSandboxVolume(ctx, c, pv)
}
