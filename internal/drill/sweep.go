package drill

import (
	"context"
	"fmt"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

// Sweep deletes sandbox namespaces and content copies whose run is gone, or
// finished and no longer keeping its sandbox.
func (r *Recovery) Sweep(ctx context.Context) error {
	owned := client.MatchingLabels{restore.LabelManagedBy: restore.ManagedByValue}
	namespaces := &corev1.NamespaceList{}
	if err := r.APIReader.List(ctx, namespaces, owned); err != nil {
		return fmt.Errorf("while listing sandbox namespaces: %w", err)
	}
	for i := range namespaces.Items {
		ns := &namespaces.Items[i]
		if !restore.IsOwnedSandbox(ns) {
			continue
		}
		orphan, err := r.orphaned(ctx, ns.Labels)
		if err != nil || !orphan {
			continue
		}
		if _, _, err := releaseVolume(ctx, r.APIReader, r.Client, ns.Name, ""); err != nil {
			return err
		}
		if ns.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("while deleting orphaned sandbox %s: %w", ns.Name, err)
		}
		r.removed("Namespace", ns.Name)
	}
	// Restored volumes labelled by their run (restore.IsSandboxVolume
	// gates them too): one of a Retain class whose sandbox is gone would
	// otherwise stay as a Released copy of production data.
	labelled := &corev1.PersistentVolumeList{}
	if err := r.APIReader.List(ctx, labelled, owned); err != nil {
		return fmt.Errorf("while listing restored volumes: %w", err)
	}
	for i := range labelled.Items {
		pv := &labelled.Items[i]
		if !restore.IsOwnedVolume(pv) || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
			continue
		}
		orphan, err := r.orphaned(ctx, pv.Labels)
		if err != nil || !orphan {
			continue
		}
		if err := restore.ReleaseSandboxVolume(ctx, r.Client, pv); err != nil {
			return err
		}
		r.removed("PersistentVolume", pv.Name)
	}
	contents := &snapshotv1.VolumeSnapshotContentList{}
	if err := r.APIReader.List(ctx, contents, owned); err != nil {
		return fmt.Errorf("while listing content copies: %w", err)
	}
	for i := range contents.Items {
		c := &contents.Items[i]
		if !restore.IsOwnedContent(c) || c.DeletionTimestamp != nil {
			continue
		}
		orphan, err := r.orphaned(ctx, c.Labels)
		if err != nil || !orphan {
			continue
		}
		if err := r.Client.Delete(ctx, c, client.Preconditions{UID: &c.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("while deleting orphaned content copy %s: %w", c.Name, err)
		}
		r.removed("VolumeSnapshotContent", c.Name)
	}
	return nil
}

func (r *Recovery) removed(kind, name string) {
	r.Log.Info("orphaned sandbox object removed", "kind", kind, "name", name)
	if r.OrphanRemoved != nil {
		r.OrphanRemoved(kind)
	}
}

// orphaned decides from an object's run labels whether its run still needs it.
func (r *Recovery) orphaned(ctx context.Context, labels map[string]string) (bool, error) {
	run := &drillsv1.DrillRun{}
	err := r.APIReader.Get(ctx, restore.RunOf(labels), run)
	switch {
	case apierrors.IsNotFound(err):
		run = nil
	case err != nil:
		return false, err
	}
	return restore.StateOf(labels, run, r.Clock.Now()) == restore.SandboxOrphaned, nil
}
