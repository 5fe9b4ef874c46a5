package nodeemu

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapshotinformers "github.com/kubernetes-csi/external-snapshotter/client/v8/informers/externalversions"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/cache"
)

// Annotations and finalizers of the csi-snapshotter protocol.
const (
	contentFinalizer              = "snapshot.storage.kubernetes.io/volumesnapshotcontent-bound-protection"
	annVolumeSnapshotBeingCreated = "snapshot.storage.kubernetes.io/volumesnapshot-being-created"
	annVolumeSnapshotBeingDeleted = "snapshot.storage.kubernetes.io/volumesnapshot-being-deleted"
)

type snapshotter struct {
	e        *Emulator
	contents cache.Indexer
}

func (e *Emulator) runSnapshotter(ctx context.Context) error {
	factory := snapshotinformers.NewSharedInformerFactory(e.snapshots, 10*time.Minute)
	informer := factory.Snapshot().V1().VolumeSnapshotContents().Informer()
	s := &snapshotter{e: e, contents: informer.GetIndexer()}
	w := e.newWorker("snapshot", s.syncContent)
	w.watch(informer)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	w.run(ctx, 2)
	return ctx.Err()
}

// syncContent is the csi-snapshotter sidecar's sync for one content of this
// driver: delete, create, or report the status of a physical snapshot.
func (s *snapshotter) syncContent(ctx context.Context, key string) (time.Duration, error) {
	obj, exists, err := s.contents.GetByKey(key)
	if err != nil || !exists {
		return 0, err
	}
	content := obj.(*snapshotv1.VolumeSnapshotContent)
	if content.Spec.Driver != DriverName {
		return 0, nil
	}
	if shouldDelete(content) {
		if content.Spec.DeletionPolicy == snapshotv1.VolumeSnapshotContentDelete && content.Status != nil && content.Status.SnapshotHandle != nil {
			if err := s.e.store.DeleteSnapshot(*content.Status.SnapshotHandle); err != nil {
				s.e.snapshotterEvents().Event(content, corev1.EventTypeWarning, "SnapshotDeleteError", "Failed to delete snapshot")
				return 0, err
			}
			s.e.log.Printf("deleted physical snapshot %s (content %s)", *content.Status.SnapshotHandle, content.Name)
			if err := s.patchStatus(ctx, content, `{"status":{"snapshotHandle":null,"readyToUse":null,"creationTime":null,"restoreSize":null}}`); err != nil {
				return 0, err
			}
		}
		return 0, s.removeFinalizer(ctx, content)
	}
	if content.Spec.Source.VolumeHandle != nil && content.Status == nil {
		return s.create(ctx, content)
	}
	if content.Status != nil && content.Status.ReadyToUse != nil && *content.Status.ReadyToUse {
		return 0, s.setBeingCreated(ctx, content, false)
	}
	if content.Spec.Source.SnapshotHandle != nil {
		return s.checkPreProvisioned(ctx, content)
	}
	if content.Spec.Source.VolumeHandle != nil {
		return s.create(ctx, content)
	}
	return 0, nil
}

func shouldDelete(content *snapshotv1.VolumeSnapshotContent) bool {
	if content.DeletionTimestamp == nil {
		return false
	}
	if content.Spec.Source.SnapshotHandle != nil && content.Spec.VolumeSnapshotRef.UID == "" {
		return true
	}
	if metav1.HasAnnotation(content.ObjectMeta, annVolumeSnapshotBeingCreated) {
		return false
	}
	return metav1.HasAnnotation(content.ObjectMeta, annVolumeSnapshotBeingDeleted)
}

// create cuts a physical snapshot of the content's source volume.
func (s *snapshotter) create(ctx context.Context, content *snapshotv1.VolumeSnapshotContent) (time.Duration, error) {
	knobs := s.snapshotKnobs(ctx, content)
	if err := s.setBeingCreated(ctx, content, true); err != nil {
		return 0, err
	}
	if err := sleepCtx(ctx, durationKnob(knobs, AnnotationSnapshotDelay, s.e.cfg.Defaults.SnapshotDelay)); err != nil {
		return 0, err
	}
	volumeID := *content.Spec.Source.VolumeHandle
	if msg, ok := knobs[AnnotationSnapshotError]; ok {
		// A final error from the driver: the sidecar removes the
		// being-created annotation and records the error.
		_ = s.setBeingCreated(ctx, content, false)
		return 30 * time.Second, s.recordError(ctx, content, "SnapshotCreationFailed",
			fmt.Sprintf("Failed to create snapshot: failed to take snapshot of the volume %s: %q", volumeID, "rpc error: code = Internal desc = "+msg))
	}
	handle := "snap-" + string(content.UID)
	snap, err := s.e.store.CreateSnapshot(ctx, handle, volumeID, func() (func(), error) { return s.e.freezeVolume(volumeID) })
	if err != nil {
		_ = s.setBeingCreated(ctx, content, false)
		return 0, s.recordError(ctx, content, "SnapshotCreationFailed",
			fmt.Sprintf("Failed to create snapshot: failed to take snapshot of the volume %s: %q", volumeID, err.Error()))
	}
	size := s.volumeCapacity(volumeID, snap.SizeBytes)
	if err := s.writeStatus(ctx, content, snap.Handle, snap.CreationTime, size); err != nil {
		return 0, err
	}
	s.e.log.Printf("cut snapshot %s of volume %s for content %s (%d bytes of data)", handle, volumeID, content.Name, snap.SizeBytes)
	return 0, s.setBeingCreated(ctx, content, false)
}

// checkPreProvisioned reports the status of the physical snapshot a
// pre-provisioned content names, as ListSnapshots would.
func (s *snapshotter) checkPreProvisioned(ctx context.Context, content *snapshotv1.VolumeSnapshotContent) (time.Duration, error) {
	handle := *content.Spec.Source.SnapshotHandle
	snap, ok, err := s.e.store.GetSnapshot(handle)
	if err != nil {
		return 0, err
	}
	if !ok {
		return 30 * time.Second, s.recordError(ctx, content, "SnapshotContentCheckandUpdateFailed",
			fmt.Sprintf("Failed to check and update snapshot content: failed to list snapshot for content %s: %q", content.Name,
				fmt.Sprintf("rpc error: code = NotFound desc = snapshot %s not found", handle)))
	}
	return 0, s.writeStatus(ctx, content, handle, snap.CreationTime, s.volumeCapacity(snap.SourceVolumeID, snap.SizeBytes))
}

// volumeCapacity is the restore size of a snapshot of volumeID: the source
// PV's capacity when it still exists, else the data size.
func (s *snapshotter) volumeCapacity(volumeID string, dataBytes int64) int64 {
	pv, err := s.e.client.CoreV1().PersistentVolumes().Get(context.Background(), volumeID, metav1.GetOptions{})
	if err == nil {
		if q, ok := pv.Spec.Capacity[corev1.ResourceStorage]; ok {
			return q.Value()
		}
	}
	return dataBytes
}

func (s *snapshotter) writeStatus(ctx context.Context, content *snapshotv1.VolumeSnapshotContent, handle string, created time.Time, size int64) error {
	status := map[string]any{"status": map[string]any{
		"snapshotHandle": handle,
		"readyToUse":     true,
		"creationTime":   created.UnixNano(),
		"restoreSize":    size,
		"error":          nil,
	}}
	data, err := json.Marshal(status)
	if err != nil {
		return err
	}
	return s.patchStatus(ctx, content, string(data))
}

func (s *snapshotter) recordError(ctx context.Context, content *snapshotv1.VolumeSnapshotContent, reason, message string) error {
	s.e.snapshotterEvents().Event(content, corev1.EventTypeWarning, reason, message)
	if content.Status != nil && content.Status.Error != nil && ptrValue(content.Status.Error.Message) == message {
		return nil
	}
	data, err := json.Marshal(map[string]any{"status": map[string]any{
		"readyToUse": false,
		"error":      map[string]any{"time": metav1.Now(), "message": message},
	}})
	if err != nil {
		return err
	}
	return s.patchStatus(ctx, content, string(data))
}

func (s *snapshotter) patchStatus(ctx context.Context, content *snapshotv1.VolumeSnapshotContent, patch string) error {
	_, err := s.e.snapshots.SnapshotV1().VolumeSnapshotContents().Patch(ctx, content.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}, "status")
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func (s *snapshotter) setBeingCreated(ctx context.Context, content *snapshotv1.VolumeSnapshotContent, on bool) error {
	if metav1.HasAnnotation(content.ObjectMeta, annVolumeSnapshotBeingCreated) == on {
		return nil
	}
	value := `null`
	if on {
		value = `"yes"`
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, annVolumeSnapshotBeingCreated, value)
	updated, err := s.e.snapshots.SnapshotV1().VolumeSnapshotContents().Patch(ctx, content.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		return err
	}
	content.ObjectMeta = updated.ObjectMeta
	return nil
}

func (s *snapshotter) removeFinalizer(ctx context.Context, content *snapshotv1.VolumeSnapshotContent) error {
	var kept []string
	for _, f := range content.Finalizers {
		if f != contentFinalizer {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(content.Finalizers) {
		return nil
	}
	patch := fmt.Sprintf(`{"metadata":{"finalizers":%s,"resourceVersion":%q}}`, jsonStrings(kept), content.ResourceVersion)
	_, err := s.e.snapshots.SnapshotV1().VolumeSnapshotContents().Patch(ctx, content.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// snapshotKnobs are the fault annotations of the content's VolumeSnapshot.
func (s *snapshotter) snapshotKnobs(ctx context.Context, content *snapshotv1.VolumeSnapshotContent) map[string]string {
	ref := content.Spec.VolumeSnapshotRef
	if ref.Name == "" {
		return nil
	}
	snap, err := s.e.snapshots.SnapshotV1().VolumeSnapshots(ref.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
	if err != nil {
		return nil
	}
	return snap.Annotations
}
