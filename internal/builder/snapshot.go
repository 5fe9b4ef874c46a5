package builder

import (
	"maps"
	"slices"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// SnapshotFinalizer is the finalizer the snapshot controller puts on a bound
// VolumeSnapshot; a snapshot being deleted carries it until the controller
// lets go.
const SnapshotFinalizer = "snapshot.storage.kubernetes.io/volumesnapshot-bound-protection"

// SnapshotBuilder builds a VolumeSnapshot.
type SnapshotBuilder struct {
	s *snapshotv1.VolumeSnapshot
}

// ForSnapshot starts a VolumeSnapshot named name in namespace, with no
// source and no status (not yet seen by the snapshot controller).
func ForSnapshot(namespace, name string) *SnapshotBuilder {
	return &SnapshotBuilder{s: &snapshotv1.VolumeSnapshot{
		TypeMeta:   metav1.TypeMeta{APIVersion: snapshotv1.SchemeGroupVersion.String(), Kind: "VolumeSnapshot"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
	}}
}

// Obj returns the built VolumeSnapshot.
func (b *SnapshotBuilder) Obj() *snapshotv1.VolumeSnapshot { return b.s }

// Created sets metadata.creationTimestamp.
func (b *SnapshotBuilder) Created(t time.Time) *SnapshotBuilder {
	b.s.CreationTimestamp = metav1.NewTime(t)
	return b
}

// Of sets spec.source.persistentVolumeClaimName, the claim the snapshot was
// cut from.
func (b *SnapshotBuilder) Of(claim string) *SnapshotBuilder {
	b.s.Spec.Source.PersistentVolumeClaimName = &claim
	return b
}

// Labeled adds the label k=v.
func (b *SnapshotBuilder) Labeled(k, v string) *SnapshotBuilder {
	if b.s.Labels == nil {
		b.s.Labels = map[string]string{}
	}
	b.s.Labels[k] = v
	return b
}

// ReadyAt makes the snapshot ready to use, cut at t (status.creationTime),
// with no error; unless BoundTo named its content, it is bound to
// "content-"+name.
func (b *SnapshotBuilder) ReadyAt(t time.Time) *SnapshotBuilder {
	st := b.status()
	st.ReadyToUse, st.CreationTime, st.Error = ptr.To(true), &metav1.Time{Time: t}, nil
	if st.BoundVolumeSnapshotContentName == nil {
		st.BoundVolumeSnapshotContentName = ptr.To("content-" + b.s.Name)
	}
	return b
}

// NotReady sets status.readyToUse to false: the snapshot is still being cut.
func (b *SnapshotBuilder) NotReady() *SnapshotBuilder {
	b.status().ReadyToUse = ptr.To(false)
	return b
}

// Failed makes the snapshot not ready, with status.error saying msg.
func (b *SnapshotBuilder) Failed(msg string) *SnapshotBuilder {
	st := b.status()
	st.ReadyToUse, st.Error = ptr.To(false), &snapshotv1.VolumeSnapshotError{Message: &msg}
	return b
}

// BoundTo sets status.boundVolumeSnapshotContentName.
func (b *SnapshotBuilder) BoundTo(contentName string) *SnapshotBuilder {
	b.status().BoundVolumeSnapshotContentName = &contentName
	return b
}

// RestoreSize sets status.restoreSize to the quantity q (such as "1Gi").
func (b *SnapshotBuilder) RestoreSize(q string) *SnapshotBuilder {
	b.status().RestoreSize = ptr.To(resource.MustParse(q))
	return b
}

// Deleting marks the snapshot as being deleted: a deletion timestamp (the
// Unix epoch; only its presence matters) and SnapshotFinalizer holding it.
func (b *SnapshotBuilder) Deleting() *SnapshotBuilder {
	b.s.DeletionTimestamp = &metav1.Time{Time: time.Unix(0, 0).UTC()}
	if !slices.Contains(b.s.Finalizers, SnapshotFinalizer) {
		b.s.Finalizers = append(b.s.Finalizers, SnapshotFinalizer)
	}
	return b
}

// status is the snapshot's status, made if it has none yet.
func (b *SnapshotBuilder) status() *snapshotv1.VolumeSnapshotStatus {
	if b.s.Status == nil {
		b.s.Status = &snapshotv1.VolumeSnapshotStatus{}
	}
	return b.s.Status
}

// ContentBuilder builds a VolumeSnapshotContent.
type ContentBuilder struct {
	c *snapshotv1.VolumeSnapshotContent
}

// ForContent starts a (cluster-scoped) VolumeSnapshotContent named name,
// with an empty spec and no status.
func ForContent(name string) *ContentBuilder {
	return &ContentBuilder{c: &snapshotv1.VolumeSnapshotContent{
		TypeMeta:   metav1.TypeMeta{APIVersion: snapshotv1.SchemeGroupVersion.String(), Kind: "VolumeSnapshotContent"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
	}}
}

// Obj returns the built VolumeSnapshotContent.
func (b *ContentBuilder) Obj() *snapshotv1.VolumeSnapshotContent { return b.c }

// Labels adds labels to metadata.labels.
func (b *ContentBuilder) Labels(labels map[string]string) *ContentBuilder {
	if b.c.Labels == nil {
		b.c.Labels = make(map[string]string, len(labels))
	}
	maps.Copy(b.c.Labels, labels)
	return b
}

// Driver sets spec.driver, the CSI driver of the snapshot.
func (b *ContentBuilder) Driver(driver string) *ContentBuilder {
	b.c.Spec.Driver = driver
	return b
}

// DeletionPolicy sets spec.deletionPolicy: whether deleting the content
// deletes the physical snapshot (Delete) or keeps it (Retain).
func (b *ContentBuilder) DeletionPolicy(p snapshotv1.DeletionPolicy) *ContentBuilder {
	b.c.Spec.DeletionPolicy = p
	return b
}

// VolumeHandle sets spec.source.volumeHandle: the content is cut
// dynamically from that volume.
func (b *ContentBuilder) VolumeHandle(handle string) *ContentBuilder {
	b.c.Spec.Source.VolumeHandle = &handle
	return b
}

// BoundTo sets spec.volumeSnapshotRef, the VolumeSnapshot the content
// belongs to.
func (b *ContentBuilder) BoundTo(namespace, snapshot string) *ContentBuilder {
	b.c.Spec.VolumeSnapshotRef = corev1.ObjectReference{Namespace: namespace, Name: snapshot}
	return b
}

// Handle sets status.snapshotHandle, the storage system's id of the
// physical snapshot.
func (b *ContentBuilder) Handle(handle string) *ContentBuilder {
	b.status().SnapshotHandle = &handle
	return b
}

// Ready sets status.readyToUse.
func (b *ContentBuilder) Ready() *ContentBuilder {
	b.status().ReadyToUse = ptr.To(true)
	return b
}

// Failed makes the content not ready, with status.error saying msg, as
// the CSI snapshotter sidecar writes a driver's refusal.
func (b *ContentBuilder) Failed(msg string) *ContentBuilder {
	st := b.status()
	st.ReadyToUse, st.Error = ptr.To(false), &snapshotv1.VolumeSnapshotError{Message: &msg}
	return b
}

// status is the content's status, made if it has none yet.
func (b *ContentBuilder) status() *snapshotv1.VolumeSnapshotContentStatus {
	if b.c.Status == nil {
		b.c.Status = &snapshotv1.VolumeSnapshotContentStatus{}
	}
	return b.c.Status
}

// ClaimBuilder builds a PersistentVolumeClaim.
type ClaimBuilder struct {
	c *corev1.PersistentVolumeClaim
}

// ForClaim starts a PersistentVolumeClaim named name in namespace, with an
// empty spec.
func ForClaim(namespace, name string) *ClaimBuilder {
	return &ClaimBuilder{c: &corev1.PersistentVolumeClaim{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "PersistentVolumeClaim"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
	}}
}

// Obj returns the built PersistentVolumeClaim.
func (b *ClaimBuilder) Obj() *corev1.PersistentVolumeClaim { return b.c }

// StorageClass sets spec.storageClassName.
func (b *ClaimBuilder) StorageClass(name string) *ClaimBuilder {
	b.c.Spec.StorageClassName = &name
	return b
}

// Size sets the storage request, spec.resources.requests.storage, to the
// quantity q (such as "1Gi").
func (b *ClaimBuilder) Size(q string) *ClaimBuilder {
	if b.c.Spec.Resources.Requests == nil {
		b.c.Spec.Resources.Requests = corev1.ResourceList{}
	}
	b.c.Spec.Resources.Requests[corev1.ResourceStorage] = resource.MustParse(q)
	return b
}
