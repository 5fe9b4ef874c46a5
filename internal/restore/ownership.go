package restore

// The gates in this file are the only functions that decide whether
// drillerd may delete or change a cluster object (other than its own
// RestoreDrills and DrillRuns): a sandbox namespace, whose deletion takes
// the sandbox's pod, claim and VolumeSnapshot with it; a content copy; a
// restored volume, whose reclaim policy drillerd sets to Delete. Each
// enforces one of drillerd's safety rules (README.md, Security model):
//
//   - never a source object: a gate accepts only objects shaped as
//     drillerd makes them for a sandbox, so a production content with
//     deletionPolicy Delete and the volume of a production claim do not
//     pass even if they carry drillerd's labels;
//   - content copies are Retain: IsOwnedContent refuses a content
//     whose deletion would delete the physical snapshot, whatever its labels;
//   - ownership labels: every gate but IsSandboxVolume asks for
//     drillerd's labels (LabelManagedBy=ManagedByValue and the run's UID,
//     name and namespace), and IsOwnedSandbox also for the name prefix
//     NamespacePrefix. drillerd labels the restored volume only once
//     IsSandboxVolume has recognised it, and teardown may meet it
//     unlabelled, so IsSandboxVolume asks what it is bound to instead: the
//     data claim of a sandbox namespace;
//   - names follow from the run: drillerd names a sandbox namespace and a
//     content copy after its run's UID (NamespaceName, Sandbox.ContentName),
//     so an object labelled with a run it was not made for (labels copied
//     from another object, or made up) does not pass, whether that run
//     exists or not.

import (
	"strings"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
)

// Ownership labels of every sandbox object, and the name prefix of sandbox
// namespaces.
const (
	LabelManagedBy    = "app.kubernetes.io/managed-by"
	ManagedByValue    = "drillerd"
	LabelRun          = "drills.drillerd.dev/run"
	LabelRunName      = "drills.drillerd.dev/run-name"
	LabelRunNamespace = "drills.drillerd.dev/run-namespace"
	LabelDrill        = "drills.drillerd.dev/drill"
	NamespacePrefix   = "drill-"
)

// hasOwnershipLabels reports whether labels are drillerd's: managed by
// drillerd and naming a run (its UID, name and namespace).
func hasOwnershipLabels(labels map[string]string) bool {
	return labels[LabelManagedBy] == ManagedByValue && labels[LabelRun] != "" &&
		labels[LabelRunName] != "" && labels[LabelRunNamespace] != ""
}

// IsOwnedSandbox is the gate to deleting a namespace: drillerd's labels,
// the name prefix, and the name drillerd gives the sandbox of the labelled
// run of the labelled drill.
func IsOwnedSandbox(ns *corev1.Namespace) bool {
	l := ns.Labels
	return hasOwnershipLabels(l) && strings.HasPrefix(ns.Name, NamespacePrefix) &&
		l[LabelDrill] != "" && ns.Name == NamespaceName(l[LabelDrill], l[LabelRun])
}

// contentName is the name of the content copy of the run with runUID
// (Sandbox.ContentName).
func contentName(runUID string) string { return "drill-" + runUID }

// IsOwnedContent is the gate to deleting a VolumeSnapshotContent: drillerd's
// labels, the name of the labelled run's copy, and never one that would
// delete the physical snapshot.
func IsOwnedContent(c *snapshotv1.VolumeSnapshotContent) bool {
	return hasOwnershipLabels(c.Labels) && c.Name == contentName(c.Labels[LabelRun]) &&
		c.Spec.DeletionPolicy == snapshotv1.VolumeSnapshotContentRetain
}

// IsSandboxVolume is the gate to changing a PersistentVolume: it is bound
// (or was, and is now Released) to the data claim of sandbox namespace ns
// (rules 1 and 3).
func IsSandboxVolume(pv *corev1.PersistentVolume, ns string) bool {
	ref := pv.Spec.ClaimRef
	return ref != nil && ns != "" && strings.HasPrefix(ns, NamespacePrefix) &&
		ref.Namespace == ns && ref.Name == DataClaimName
}

// IsOwnedVolume is the gate to releasing a volume found by label (the
// sweep): it carries drillerd's labels and is bound to the claim of the
// labelled run's sandbox (rules 1 and 3).
func IsOwnedVolume(pv *corev1.PersistentVolume) bool {
	l := pv.Labels
	return hasOwnershipLabels(l) && l[LabelDrill] != "" &&
		IsSandboxVolume(pv, NamespaceName(l[LabelDrill], l[LabelRun]))
}
