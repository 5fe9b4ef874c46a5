package nodeemu

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
)

const (
	leaseDuration     = 40 * time.Second
	leaseRenewal      = 10 * time.Second
	nodeStatusRefresh = time.Minute
	hostIP            = "127.0.0.1"
	kubeletVersion    = "v1.37.2"
)

// registerNode creates (or adopts) the Node, its CSINode and its Lease.
func (e *Emulator) registerNode(ctx context.Context) error {
	name := e.cfg.NodeName
	node := &corev1.Node{
		ObjectMeta: metav1.ObjectMeta{
			Name: name,
			Labels: map[string]string{
				corev1.LabelHostname:          name,
				corev1.LabelOSStable:          "linux",
				corev1.LabelArchStable:        "amd64",
				"node.kubernetes.io/emulated": "true",
			},
		},
	}
	if _, err := e.client.CoreV1().Nodes().Create(ctx, node, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("while registering node %s: %w", name, err)
	}
	if err := e.updateNodeStatus(ctx); err != nil {
		return err
	}
	csiNode := &storagev1.CSINode{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: storagev1.CSINodeSpec{Drivers: []storagev1.CSINodeDriver{{
			Name:         DriverName,
			NodeID:       name,
			TopologyKeys: []string{corev1.LabelHostname},
		}}},
	}
	if _, err := e.client.StorageV1().CSINodes().Create(ctx, csiNode, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("while registering CSINode %s: %w", name, err)
	}
	return e.renewLease(ctx)
}

func (e *Emulator) updateNodeStatus(ctx context.Context) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		node, err := e.client.CoreV1().Nodes().Get(ctx, e.cfg.NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		now := metav1.Now()
		capacity := corev1.ResourceList{
			corev1.ResourceCPU:              resource.MustParse("2"),
			corev1.ResourceMemory:           resource.MustParse("24Gi"),
			corev1.ResourcePods:             resource.MustParse("110"),
			corev1.ResourceEphemeralStorage: resource.MustParse("100Gi"),
		}
		node.Status.Capacity = capacity
		node.Status.Allocatable = capacity
		node.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeInternalIP, Address: hostIP},
			{Type: corev1.NodeHostName, Address: e.cfg.NodeName},
		}
		node.Status.DaemonEndpoints.KubeletEndpoint.Port = e.kubeletPort
		node.Status.NodeInfo = corev1.NodeSystemInfo{
			KubeletVersion:          kubeletVersion,
			OperatingSystem:         "linux",
			Architecture:            "amd64",
			ContainerRuntimeVersion: "nodeemu://1",
			OSImage:                 "drillerd node emulator",
		}
		node.Status.Conditions = []corev1.NodeCondition{
			nodeCondition(node, corev1.NodeReady, corev1.ConditionTrue, "KubeletReady", "node emulator is posting ready status", now),
			nodeCondition(node, corev1.NodeMemoryPressure, corev1.ConditionFalse, "KubeletHasSufficientMemory", "node emulator has sufficient memory available", now),
			nodeCondition(node, corev1.NodeDiskPressure, corev1.ConditionFalse, "KubeletHasNoDiskPressure", "node emulator has no disk pressure", now),
			nodeCondition(node, corev1.NodePIDPressure, corev1.ConditionFalse, "KubeletHasSufficientPID", "node emulator has sufficient PID available", now),
		}
		_, err = e.client.CoreV1().Nodes().UpdateStatus(ctx, node, metav1.UpdateOptions{})
		return err
	})
}

// nodeCondition keeps lastTransitionTime when the status did not change.
func nodeCondition(node *corev1.Node, t corev1.NodeConditionType, s corev1.ConditionStatus, reason, message string, now metav1.Time) corev1.NodeCondition {
	transition := now
	for _, c := range node.Status.Conditions {
		if c.Type == t && c.Status == s {
			transition = c.LastTransitionTime
		}
	}
	return corev1.NodeCondition{Type: t, Status: s, Reason: reason, Message: message, LastHeartbeatTime: now, LastTransitionTime: transition}
}

func (e *Emulator) renewLease(ctx context.Context) error {
	leases := e.client.CoordinationV1().Leases(corev1.NamespaceNodeLease)
	now := metav1.NowMicro()
	lease, err := leases.Get(ctx, e.cfg.NodeName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		lease = &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: e.cfg.NodeName},
			Spec: coordinationv1.LeaseSpec{
				HolderIdentity:       ptr.To(e.cfg.NodeName),
				LeaseDurationSeconds: ptr.To(int32(leaseDuration.Seconds())),
				RenewTime:            &now,
			},
		}
		_, err = leases.Create(ctx, lease, metav1.CreateOptions{})
		return err
	}
	if err != nil {
		return err
	}
	lease.Spec.RenewTime = &now
	_, err = leases.Update(ctx, lease, metav1.UpdateOptions{})
	return err
}

// heartbeat renews the node Lease and refreshes the node status, as the
// kubelet does, so the node lifecycle controller keeps the node Ready.
func (e *Emulator) heartbeat(ctx context.Context) error {
	lease := time.NewTicker(leaseRenewal)
	defer lease.Stop()
	status := time.NewTicker(nodeStatusRefresh)
	defer status.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-lease.C:
			if err := e.renewLease(ctx); err != nil && ctx.Err() == nil {
				e.log.Printf("renewing node lease: %v", err)
			}
		case <-status.C:
			if err := e.updateNodeStatus(ctx); err != nil && ctx.Err() == nil {
				e.log.Printf("updating node status: %v", err)
			}
		}
	}
}
