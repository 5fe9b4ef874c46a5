package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/yaml"

	"github.com/drillerd/drillerd/test/nodeemu"
)

// Storage the cluster offers.
const (
	// StorageClassName is the default StorageClass (WaitForFirstConsumer,
	// like most production CSI drivers).
	StorageClassName = "hostpath"
	// ImmediateStorageClassName binds volumes as soon as a claim exists.
	ImmediateStorageClassName = "hostpath-immediate"
	// SnapshotClassName is the default VolumeSnapshotClass (deletionPolicy Delete).
	SnapshotClassName = "hostpath"
)

var crdGVR = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}

// snapshotCRDFiles are the VolumeSnapshot CRDs of the external-snapshotter
// (group snapshots stay off, as in a default installation).
var snapshotCRDFiles = []string{
	"snapshot.storage.k8s.io_volumesnapshotclasses.yaml",
	"snapshot.storage.k8s.io_volumesnapshotcontents.yaml",
	"snapshot.storage.k8s.io_volumesnapshots.yaml",
}

// installCRDs server-side applies the snapshot CRDs and waits until they are
// Established.
func installCRDs(ctx context.Context, cfg *rest.Config, dir string) error {
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		return err
	}
	var names []string
	for _, file := range snapshotCRDFiles {
		data, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			return fmt.Errorf("while reading snapshot CRD: %w", err)
		}
		obj := &unstructured.Unstructured{}
		if err := yaml.Unmarshal(data, &obj.Object); err != nil {
			return fmt.Errorf("while parsing %s: %w", file, err)
		}
		body, err := obj.MarshalJSON()
		if err != nil {
			return err
		}
		if _, err := dyn.Resource(crdGVR).Patch(ctx, obj.GetName(), types.ApplyPatchType, body,
			metav1.PatchOptions{FieldManager: "localcluster", Force: ptr.To(true)}); err != nil {
			return fmt.Errorf("while installing CRD %s: %w", obj.GetName(), err)
		}
		names = append(names, obj.GetName())
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, name := range names {
		for {
			obj, err := dyn.Resource(crdGVR).Get(ctx, name, metav1.GetOptions{})
			if err == nil && crdEstablished(obj) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s not Established after 30s", name)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	return nil
}

func crdEstablished(obj *unstructured.Unstructured) bool {
	conditions, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conditions {
		m, ok := c.(map[string]any)
		if ok && m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

// installStorage creates the CSIDriver, the StorageClasses and the
// VolumeSnapshotClass of the emulated hostpath driver.
func installStorage(ctx context.Context, cfg *rest.Config) error {
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return err
	}
	snaps, err := snapshotclient.NewForConfig(cfg)
	if err != nil {
		return err
	}
	driver := &storagev1.CSIDriver{
		ObjectMeta: metav1.ObjectMeta{Name: nodeemu.DriverName},
		Spec: storagev1.CSIDriverSpec{
			AttachRequired:       ptr.To(false),
			PodInfoOnMount:       ptr.To(false),
			VolumeLifecycleModes: []storagev1.VolumeLifecycleMode{storagev1.VolumeLifecyclePersistent},
		},
	}
	if _, err := client.StorageV1().CSIDrivers().Create(ctx, driver, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("while creating CSIDriver: %w", err)
	}
	classes := []*storagev1.StorageClass{
		storageClass(StorageClassName, storagev1.VolumeBindingWaitForFirstConsumer, true),
		storageClass(ImmediateStorageClassName, storagev1.VolumeBindingImmediate, false),
	}
	for _, sc := range classes {
		if _, err := client.StorageV1().StorageClasses().Create(ctx, sc, metav1.CreateOptions{}); ignoreExists(err) != nil {
			return fmt.Errorf("while creating StorageClass %s: %w", sc.Name, err)
		}
	}
	vsc := &snapshotv1.VolumeSnapshotClass{
		ObjectMeta: metav1.ObjectMeta{
			Name:        SnapshotClassName,
			Annotations: map[string]string{"snapshot.storage.kubernetes.io/is-default-class": "true"},
		},
		Driver:         nodeemu.DriverName,
		DeletionPolicy: snapshotv1.VolumeSnapshotContentDelete,
	}
	if _, err := snaps.SnapshotV1().VolumeSnapshotClasses().Create(ctx, vsc, metav1.CreateOptions{}); ignoreExists(err) != nil {
		return fmt.Errorf("while creating VolumeSnapshotClass: %w", err)
	}
	return nil
}

func storageClass(name string, binding storagev1.VolumeBindingMode, isDefault bool) *storagev1.StorageClass {
	sc := &storagev1.StorageClass{
		ObjectMeta:           metav1.ObjectMeta{Name: name},
		Provisioner:          nodeemu.DriverName,
		ReclaimPolicy:        ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode:    &binding,
		AllowVolumeExpansion: ptr.To(false),
	}
	if isDefault {
		sc.Annotations = map[string]string{"storageclass.kubernetes.io/is-default-class": "true"}
	}
	return sc
}

// clusterUsable reports whether pods can run: the node is Ready and the
// service-account controller has created the default service account.
func clusterUsable(ctx context.Context, client kubernetes.Interface, nodeName string) (bool, error) {
	node, err := client.CoreV1().Nodes().Get(ctx, nodeName, metav1.GetOptions{})
	if err != nil {
		return false, nil
	}
	ready := false
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady && c.Status == corev1.ConditionTrue {
			ready = true
		}
	}
	for _, t := range node.Spec.Taints {
		if strings.HasPrefix(t.Key, "node.kubernetes.io/") {
			ready = false
		}
	}
	if !ready {
		return false, nil
	}
	if _, err := client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{}); err != nil {
		return false, nil
	}
	return true, nil
}

func ignoreExists(err error) error {
	if apierrors.IsAlreadyExists(err) {
		return nil
	}
	return err
}

// allowKubeletAPI lets the API server's kubelet client identity use the
// kubelet API (pods/log, exec, port-forward) by binding it to the
// bootstrap ClusterRole system:kubelet-api-admin, as cluster installers
// do; kubelets authorize every request with a SubjectAccessReview.
func allowKubeletAPI(ctx context.Context, client kubernetes.Interface, user string) error {
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: "localcluster:apiserver-kubelet-client"},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "system:kubelet-api-admin"},
		Subjects:   []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}},
	}
	_, err := client.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("while letting the API server use the kubelet API: %w", err)
	}
	return nil
}
