package drill

import (
	"context"
	"errors"
	"fmt"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

// Sweep deletes sandbox namespaces and content copies whose run is gone, or
// finished and no longer keeping its sandbox, and releases their restored
// volumes of a Retain class. It goes on past an error with the other
// objects, reports each (log, a SweepFailed event, SweepFailed's counter)
// and returns them joined.
func (r *Recovery) Sweep(ctx context.Context) error {
	s := sweep{Recovery: r}
	owned := client.MatchingLabels{restore.LabelManagedBy: restore.ManagedByValue}
	namespaces := &corev1.NamespaceList{}
	if err := r.APIReader.List(ctx, namespaces, owned); err != nil {
		s.fail(ctx, "Namespace", nil, fmt.Errorf("while listing sandbox namespaces: %w", err))
	}
	for i := range namespaces.Items {
		ns := &namespaces.Items[i]
		if !restore.IsOwnedSandbox(ns) || !s.orphaned(ctx, "Namespace", ns) {
			continue
		}
		if _, _, err := releaseVolume(ctx, r.APIReader, r.Client, ns.Name, ""); err != nil {
			// Not the namespace yet: without its claim an unlabelled
			// volume of a Retain class would stay behind, found by nobody.
			s.fail(ctx, "PersistentVolume", ns, fmt.Errorf("while releasing the restored volume of orphaned sandbox %s: %w", ns.Name, err))
			continue
		}
		if ns.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
			s.fail(ctx, "Namespace", ns, fmt.Errorf("while deleting orphaned sandbox %s: %w", ns.Name, err))
			continue
		}
		r.removed("Namespace", ns.Name)
	}
	// Restored volumes labelled by their run (restore.IsOwnedVolume gates
	// them too): one of a Retain class whose sandbox is gone would
	// otherwise stay as a Released copy of production data.
	labelled := &corev1.PersistentVolumeList{}
	if err := r.APIReader.List(ctx, labelled, owned); err != nil {
		s.fail(ctx, "PersistentVolume", nil, fmt.Errorf("while listing restored volumes: %w", err))
	}
	for i := range labelled.Items {
		pv := &labelled.Items[i]
		if !restore.IsOwnedVolume(pv) || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain || !s.orphaned(ctx, "PersistentVolume", pv) {
			continue
		}
		if err := restore.ReleaseSandboxVolume(ctx, r.Client, pv); err != nil {
			s.fail(ctx, "PersistentVolume", pv, err)
			continue
		}
		r.removed("PersistentVolume", pv.Name)
	}
	contents := &snapshotv1.VolumeSnapshotContentList{}
	if err := r.APIReader.List(ctx, contents, owned); err != nil {
		s.fail(ctx, "VolumeSnapshotContent", nil, fmt.Errorf("while listing content copies: %w", err))
	}
	for i := range contents.Items {
		c := &contents.Items[i]
		if !restore.IsOwnedContent(c) || c.DeletionTimestamp != nil || !s.orphaned(ctx, "VolumeSnapshotContent", c) {
			continue
		}
		if err := r.Client.Delete(ctx, c, client.Preconditions{UID: &c.UID}); client.IgnoreNotFound(err) != nil {
			s.fail(ctx, "VolumeSnapshotContent", c, fmt.Errorf("while deleting orphaned content copy %s: %w", c.Name, err))
			continue
		}
		r.removed("VolumeSnapshotContent", c.Name)
	}
	return errors.Join(s.errs...)
}

// sweep is one pass of Sweep: the errors met so far.
type sweep struct {
	*Recovery
	errs []error
}

// fail reports one error of the sweep about a sandbox object of kind (obj
// nil when listing failed): a log line, a Warning event on the object's run
// if it still exists, else on the object, and SweepFailed.
func (s *sweep) fail(ctx context.Context, kind string, obj client.Object, err error) {
	s.errs = append(s.errs, err)
	name := ""
	if obj != nil {
		name = obj.GetName()
	}
	s.Log.Error(err, "sweep: an orphaned sandbox object was not removed; the next sweep tries again", "kind", kind, "name", name)
	if s.SweepFailed != nil {
		s.SweepFailed(kind)
	}
	if s.Recorder == nil || obj == nil {
		return
	}
	note := boundMessage(fmt.Sprintf("the sweep could not remove orphaned %s %s; it tries again: %v", kind, name, err))
	run := &drillsv1.DrillRun{}
	if s.APIReader.Get(ctx, restore.RunOf(obj.GetLabels()), run) == nil && string(run.UID) == obj.GetLabels()[restore.LabelRun] {
		s.Recorder.Eventf(run, obj, corev1.EventTypeWarning, "SweepFailed", "Sweep", "%s", note)
		return
	}
	s.Recorder.Eventf(obj, nil, corev1.EventTypeWarning, "SweepFailed", "Sweep", "%s", note)
}

// orphaned decides from obj's run labels whether its run still needs it;
// an error reading the run is reported and counts as "still needed".
func (s *sweep) orphaned(ctx context.Context, kind string, obj client.Object) bool {
	labels := obj.GetLabels()
	run := &drillsv1.DrillRun{}
	err := s.APIReader.Get(ctx, restore.RunOf(labels), run)
	switch {
	case apierrors.IsNotFound(err):
		run = nil
	case err != nil:
		s.fail(ctx, kind, obj, fmt.Errorf("while reading the run of %s %s: %w", kind, obj.GetName(), err))
		return false
	}
	return restore.StateOf(labels, run, s.Clock.Now()) == restore.SandboxOrphaned
}

func (r *Recovery) removed(kind, name string) {
	r.Log.Info("orphaned sandbox object removed", "kind", kind, "name", name)
	if r.OrphanRemoved != nil {
		r.OrphanRemoved(kind)
	}
}
