package nodeemu

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
)

// Annotations and finalizers of the external-provisioner protocol.
const (
	annStorageProvisioner     = "volume.kubernetes.io/storage-provisioner"
	annBetaStorageProvisioner = "volume.beta.kubernetes.io/storage-provisioner"
	annSelectedNode           = "volume.kubernetes.io/selected-node"
	annProvisionedBy          = "pv.kubernetes.io/provisioned-by"
	provisionerFinalizer      = "external-provisioner.volume.kubernetes.io/finalizer"
)

type provisioner struct {
	e       *Emulator
	claims  cache.Indexer
	volumes cache.Indexer
	classes cache.Indexer
}

func (e *Emulator) runProvisioner(ctx context.Context) error {
	factory := informers.NewSharedInformerFactory(e.client, 10*time.Minute)
	claimInformer := factory.Core().V1().PersistentVolumeClaims().Informer()
	volumeInformer := factory.Core().V1().PersistentVolumes().Informer()
	classInformer := factory.Storage().V1().StorageClasses().Informer()
	p := &provisioner{e: e, claims: claimInformer.GetIndexer(), volumes: volumeInformer.GetIndexer(), classes: classInformer.GetIndexer()}

	claimWorker := e.newWorker("provision", p.syncClaim)
	claimWorker.watch(claimInformer)
	volumeWorker := e.newWorker("delete-volume", p.syncVolume)
	volumeWorker.watch(volumeInformer)

	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	go volumeWorker.run(ctx, 2)
	claimWorker.run(ctx, 4)
	return ctx.Err()
}

// syncClaim provisions a volume for a pending claim addressed to this driver.
func (p *provisioner) syncClaim(ctx context.Context, key string) (time.Duration, error) {
	obj, exists, err := p.claims.GetByKey(key)
	if err != nil || !exists {
		return 0, err
	}
	claim := obj.(*corev1.PersistentVolumeClaim)
	if claim.Spec.VolumeName != "" || claim.DeletionTimestamp != nil {
		return 0, nil
	}
	provisionerName := claim.Annotations[annStorageProvisioner]
	if provisionerName == "" {
		provisionerName = claim.Annotations[annBetaStorageProvisioner]
	}
	if provisionerName != DriverName {
		return 0, nil
	}
	className := ptrValue(claim.Spec.StorageClassName)
	classObj, exists, err := p.classes.GetByKey(className)
	if err != nil || !exists {
		return 10 * time.Second, err
	}
	class := classObj.(*storagev1.StorageClass)
	if class.VolumeBindingMode != nil && *class.VolumeBindingMode == storagev1.VolumeBindingWaitForFirstConsumer {
		if node := claim.Annotations[annSelectedNode]; node != p.e.cfg.NodeName {
			return 0, nil // the scheduler has not picked this node (yet)
		}
	}
	pvName := "pvc-" + string(claim.UID)
	if _, exists, _ := p.volumes.GetByKey(pvName); exists {
		return 0, nil
	}

	events := p.e.provisionerEvents()
	events.Eventf(claim, corev1.EventTypeNormal, "Provisioning", "External provisioner is provisioning volume for claim %q", key)
	truth := VolumeTruth{PersistentVolume: pvName, Claim: key, ProvisionStarted: time.Now()}

	delay := durationKnob(class.Parameters, ParameterProvisionDelay, p.e.cfg.Defaults.ProvisionDelay)
	if err := sleepCtx(ctx, durationKnob(claim.Annotations, AnnotationProvisionDelay, delay)); err != nil {
		return 0, err
	}
	requested := claim.Spec.Resources.Requests[corev1.ResourceStorage]
	capacity := requested.DeepCopy()

	var path string
	if ds := claim.Spec.DataSourceRef; ds != nil || claim.Spec.DataSource != nil {
		kind, name, group := dataSource(claim)
		if kind != "VolumeSnapshot" || group != snapshotv1.GroupName {
			err := fmt.Errorf("data source %s %q is not supported by %s (only VolumeSnapshot)", kind, name, DriverName)
			return p.failed(claim, class, err, 0)
		}
		handle, restoreSize, err := p.snapshotSource(ctx, claim.Namespace, name)
		if err != nil {
			return p.failed(claim, class, err, 5*time.Second)
		}
		if restoreSize > requested.Value() {
			err := fmt.Errorf("requested volume size %d is less than the size %d for the source snapshot %s", requested.Value(), restoreSize, name)
			return p.failed(claim, class, err, 30*time.Second)
		}
		rate := int64Knob(class.Parameters, ParameterRestoreBytesPerSecond, p.e.cfg.Defaults.RestoreBytesPerSecond)
		rate = int64Knob(claim.Annotations, AnnotationRestoreBytesPerSecond, rate)
		truth.SnapshotHandle = handle
		if hydrate, blockSize := p.e.hydrationKnobs(class, claim); hydrate > 0 {
			path, err = p.e.restoreLazily(ctx, pvName, handle, hydrate, blockSize)
		} else {
			path, err = p.e.store.CloneVolume(ctx, pvName, handle, int(p.e.uid), int(p.e.gid), rate)
		}
		if err != nil {
			return p.failed(claim, class, fmt.Errorf("restoring snapshot %s: %w", name, err), 5*time.Second)
		}
	} else {
		path, err = p.e.store.CreateVolume(pvName, int(p.e.uid), int(p.e.gid))
		if err != nil {
			return p.failed(claim, class, err, 5*time.Second)
		}
	}

	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{
			Name:        pvName,
			Annotations: map[string]string{annProvisionedBy: DriverName},
			Finalizers:  []string{provisionerFinalizer},
		},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: capacity},
			AccessModes:                   claim.Spec.AccessModes,
			PersistentVolumeReclaimPolicy: ptrValue(class.ReclaimPolicy),
			StorageClassName:              class.Name,
			MountOptions:                  class.MountOptions,
			VolumeMode:                    claim.Spec.VolumeMode,
			ClaimRef: &corev1.ObjectReference{
				Kind: "PersistentVolumeClaim", APIVersion: "v1",
				Namespace: claim.Namespace, Name: claim.Name, UID: claim.UID, ResourceVersion: claim.ResourceVersion,
			},
			PersistentVolumeSource: corev1.PersistentVolumeSource{CSI: &corev1.CSIPersistentVolumeSource{
				Driver:           DriverName,
				VolumeHandle:     pvName,
				VolumeAttributes: map[string]string{"path": path},
			}},
			NodeAffinity: &corev1.VolumeNodeAffinity{Required: &corev1.NodeSelector{NodeSelectorTerms: []corev1.NodeSelectorTerm{{
				MatchExpressions: []corev1.NodeSelectorRequirement{{Key: corev1.LabelHostname, Operator: corev1.NodeSelectorOpIn, Values: []string{p.e.cfg.NodeName}}},
			}}}},
		},
	}
	if pv.Spec.PersistentVolumeReclaimPolicy == "" {
		pv.Spec.PersistentVolumeReclaimPolicy = corev1.PersistentVolumeReclaimDelete
	}
	if _, err := p.e.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		err = fmt.Errorf("while creating PV %s: %w", pvName, err)
		return 0, errors.Join(err, p.e.abandonLazy(pvName))
	}
	truth.Usable = time.Now()
	if err := p.e.recordVolume(truth); err != nil {
		p.e.log.Printf("ground truth for %s: %v", pvName, err)
	}
	events.Eventf(claim, corev1.EventTypeNormal, "ProvisioningSucceeded", "Successfully provisioned volume %s", pvName)
	p.e.log.Printf("provisioned %s for %s (%s)", pvName, key, capacity.String())
	return 0, nil
}

func (p *provisioner) failed(claim *corev1.PersistentVolumeClaim, class *storagev1.StorageClass, err error, retry time.Duration) (time.Duration, error) {
	p.e.provisionerEvents().Eventf(claim, corev1.EventTypeWarning, "ProvisioningFailed",
		"failed to provision volume with StorageClass %q: %v", class.Name, err)
	if retry == 0 {
		return 0, nil
	}
	return retry, nil
}

func dataSource(claim *corev1.PersistentVolumeClaim) (kind, name, group string) {
	if ref := claim.Spec.DataSourceRef; ref != nil {
		return ref.Kind, ref.Name, ptrValue(ref.APIGroup)
	}
	ds := claim.Spec.DataSource
	return ds.Kind, ds.Name, ptrValue(ds.APIGroup)
}

// snapshotSource resolves a VolumeSnapshot to its physical handle the way
// the external-provisioner does, with the same refusals.
func (p *provisioner) snapshotSource(ctx context.Context, namespace, name string) (string, int64, error) {
	snap, err := p.e.snapshots.SnapshotV1().VolumeSnapshots(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("error getting handle for DataSource Type VolumeSnapshot by Name %s: error getting snapshot %s from api server: %w", name, name, err)
	}
	if snap.Status == nil || snap.Status.ReadyToUse == nil || !*snap.Status.ReadyToUse {
		return "", 0, fmt.Errorf("error getting handle for DataSource Type VolumeSnapshot by Name %s: snapshot %s is not Ready", name, name)
	}
	if snap.Status.BoundVolumeSnapshotContentName == nil {
		return "", 0, fmt.Errorf("snapshot %s is not bound to a content", name)
	}
	content, err := p.e.snapshots.SnapshotV1().VolumeSnapshotContents().Get(ctx, *snap.Status.BoundVolumeSnapshotContentName, metav1.GetOptions{})
	if err != nil {
		return "", 0, fmt.Errorf("error retrieving contents %s of snapshot %s: %w", *snap.Status.BoundVolumeSnapshotContentName, name, err)
	}
	if content.Spec.Driver != DriverName {
		return "", 0, fmt.Errorf("snapshot %s belongs to driver %s, not %s", name, content.Spec.Driver, DriverName)
	}
	if content.Spec.VolumeSnapshotRef.UID != snap.UID {
		return "", 0, fmt.Errorf("snapshot %s is not bound to content %s", name, content.Name)
	}
	if content.Status == nil || content.Status.SnapshotHandle == nil {
		return "", 0, fmt.Errorf("content %s of snapshot %s has no snapshot handle", content.Name, name)
	}
	var size int64
	if snap.Status.RestoreSize != nil {
		size = snap.Status.RestoreSize.Value()
	}
	return *content.Status.SnapshotHandle, size, nil
}

// syncVolume deletes the directory and the object of a released PV whose
// reclaim policy is Delete, and releases the finalizer of deleted PVs.
func (p *provisioner) syncVolume(ctx context.Context, key string) (time.Duration, error) {
	obj, exists, err := p.volumes.GetByKey(key)
	if err != nil || !exists {
		return 0, err
	}
	pv := obj.(*corev1.PersistentVolume)
	if pv.Annotations[annProvisionedBy] != DriverName || pv.Spec.CSI == nil {
		return 0, nil
	}
	released := pv.Status.Phase == corev1.VolumeReleased || pv.Status.Phase == corev1.VolumeFailed
	switch {
	case released && pv.Spec.PersistentVolumeReclaimPolicy == corev1.PersistentVolumeReclaimDelete:
		if err := p.e.unmountLazy(pv.Spec.CSI.VolumeHandle); err != nil {
			p.e.provisionerEvents().Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "unmounting volume: %v", err)
			return 0, err
		}
		if err := p.e.store.DeleteVolume(pv.Spec.CSI.VolumeHandle); err != nil {
			p.e.provisionerEvents().Eventf(pv, corev1.EventTypeWarning, "VolumeFailedDelete", "deleting volume: %v", err)
			return 0, err
		}
		if err := p.removeFinalizer(ctx, pv); err != nil {
			return 0, err
		}
		err := p.e.client.CoreV1().PersistentVolumes().Delete(ctx, pv.Name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &pv.UID}})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, err
		}
		p.e.log.Printf("deleted volume %s", pv.Name)
	case pv.DeletionTimestamp != nil && pv.Status.Phase != corev1.VolumeBound:
		// Deleted by hand with reclaim policy Retain: keep the data, let the object go.
		return 0, p.removeFinalizer(ctx, pv)
	}
	return 0, nil
}

func (p *provisioner) removeFinalizer(ctx context.Context, pv *corev1.PersistentVolume) error {
	var kept []string
	for _, f := range pv.Finalizers {
		if f != provisionerFinalizer {
			kept = append(kept, f)
		}
	}
	if len(kept) == len(pv.Finalizers) {
		return nil
	}
	patch := fmt.Appendf(nil, `{"metadata":{"finalizers":%s,"resourceVersion":%q}}`, jsonStrings(kept), pv.ResourceVersion)
	_, err := p.e.client.CoreV1().PersistentVolumes().Patch(ctx, pv.Name, "application/merge-patch+json", patch, metav1.PatchOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

func jsonStrings(values []string) string {
	if len(values) == 0 {
		return "[]"
	}
	quoted := make([]string, len(values))
	for i, v := range values {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	return "[" + strings.Join(quoted, ",") + "]"
}

func ptrValue[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}
