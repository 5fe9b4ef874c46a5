package restore

import (
	"fmt"
	"testing"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/drillerd/drillerd/internal/builder"
)

// ownedLabels are the labels of a real sandbox object, less the keys in drop.
func ownedLabels(drop ...string) map[string]string {
	l := sandboxFor(orders().Obj()).Labels()
	for _, k := range drop {
		delete(l, k)
	}
	return l
}

// otherRun are drillerd's labels of a run that does not exist: another
// UID, name and namespace than the objects' own.
func otherRun() map[string]string {
	return merged(ownedLabels(), map[string]string{LabelRun: "uid-made-up", LabelRunName: "made-up", LabelRunNamespace: "shop"})
}

// merged is a copy of base with over's keys set.
func merged(base, over map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		out[k] = v
	}
	return out
}

type namespaceBuilder struct{ ns corev1.Namespace }

func newNamespace(name string) *namespaceBuilder {
	return &namespaceBuilder{ns: corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}}
}
func (b *namespaceBuilder) Labels(l map[string]string) *namespaceBuilder {
	b.ns.Labels = l
	return b
}
func (b *namespaceBuilder) Obj() *corev1.Namespace { return &b.ns }

// retainCopy starts a content shaped like drillerd's copy (Retain, bound
// to a sandbox's snapshot), without labels.
func retainCopy() *builder.ContentBuilder {
	return builder.ForContent("drill-uid-orders-db-1").Driver("ebs.csi.aws.com").
		DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).BoundTo(sandboxNS, SourceSnapshotName)
}

type volumeBuilder struct{ pv corev1.PersistentVolume }

func newVolume(name string) *volumeBuilder {
	return &volumeBuilder{pv: corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec:       corev1.PersistentVolumeSpec{PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain},
		Status:     corev1.PersistentVolumeStatus{Phase: corev1.VolumeAvailable},
	}}
}

// BoundTo binds the volume to claim ns/name.
func (b *volumeBuilder) BoundTo(ns, name string) *volumeBuilder {
	b.pv.Spec.ClaimRef = &corev1.ObjectReference{Kind: "PersistentVolumeClaim", Namespace: ns, Name: name}
	b.pv.Status.Phase = corev1.VolumeBound
	return b
}

// Released is what a Retain volume becomes when its claim is deleted: it
// keeps the reference to the claim it was bound to.
func (b *volumeBuilder) Released() *volumeBuilder {
	b.pv.Status.Phase = corev1.VolumeReleased
	return b
}
func (b *volumeBuilder) Labels(l map[string]string) *volumeBuilder {
	b.pv.Labels = l
	return b
}
func (b *volumeBuilder) Obj() *corev1.PersistentVolume { return &b.pv }

// gate asks the ownership gate of given's kind; volumes are asked as the
// sweep finds them, by label.
func gate(given client.Object) bool {
	switch o := given.(type) {
	case *corev1.Namespace:
		return IsOwnedSandbox(o)
	case *snapshotv1.VolumeSnapshotContent:
		return IsOwnedContent(o)
	case *corev1.PersistentVolume:
		return IsOwnedVolume(o)
	}
	panic(fmt.Sprintf("no ownership gate for %T", given))
}

func TestOwnershipGates(t *testing.T) {
	sb := sandboxFor(orders().Obj())
	sandbox := sb.NamespaceName()
	copyOfProduction := sb.ContentCopy(builder.ForContent("snapcontent-prod").Driver("ebs.csi.aws.com").DeletionPolicy(snapshotv1.VolumeSnapshotContentDelete).Obj(), "snap-0abc")
	tests := []struct {
		name  string
		given client.Object
		want  bool
	}{
		// Namespaces: the labels, the prefix and the name of the labelled run's sandbox.
		{"the sandbox namespace", sb.Namespace(), true},
		{"namespace with the labels and the run's sandbox name", newNamespace(sandbox).Labels(ownedLabels()).Obj(), true},
		{"namespace with the prefix but no labels", newNamespace(sandbox).Obj(), false},
		{"namespace with the labels but not the prefix", newNamespace("shop").Labels(ownedLabels()).Obj(), false},
		{"namespace with the labels and the prefix inside its name", newNamespace("shop-drill-1").Labels(ownedLabels()).Obj(), false},
		{"drillerd's own namespace with the labels", newNamespace("drillerd-system").Labels(ownedLabels()).Obj(), false},
		{"namespace with the labels and the prefix, named for another run", newNamespace(sandboxNS).Labels(ownedLabels()).Obj(), false},
		{"namespace with the labels and the prefix, named by hand", newNamespace("drill-scratch").Labels(ownedLabels()).Obj(), false},
		{"the sandbox name labelled with a run it was not made for", newNamespace(sandbox).Labels(otherRun()).Obj(), false},
		{"namespace with the prefix and only managed-by", newNamespace(sandbox).Labels(ownedLabels(LabelRun)).Obj(), false},
		{"namespace with the prefix and only the run label", newNamespace(sandbox).Labels(ownedLabels(LabelManagedBy)).Obj(), false},
		{"namespace without the run's name", newNamespace(sandbox).Labels(ownedLabels(LabelRunName)).Obj(), false},
		{"namespace without the run's namespace", newNamespace(sandbox).Labels(ownedLabels(LabelRunNamespace)).Obj(), false},
		{"namespace without the drill", newNamespace(sandbox).Labels(ownedLabels(LabelDrill)).Obj(), false},
		{"namespace with an empty run label", newNamespace(sandbox).Labels(map[string]string{LabelManagedBy: ManagedByValue, LabelRun: ""}).Obj(), false},
		{"namespace managed by another tool", newNamespace(sandbox).Labels(merged(ownedLabels(), map[string]string{LabelManagedBy: "helm"})).Obj(), false},

		// Contents: the labels, the name of the labelled run's copy and Retain.
		{"the content copy", copyOfProduction, true},
		{"Retain content with drillerd's labels", retainCopy().Labels(ownedLabels()).Obj(), true},
		{"content with Delete and drillerd's labels", retainCopy().DeletionPolicy(snapshotv1.VolumeSnapshotContentDelete).Labels(ownedLabels()).Obj(), false},
		{"content with no deletion policy and drillerd's labels", retainCopy().DeletionPolicy("").Labels(ownedLabels()).Obj(), false},
		{"Retain content without the run label", retainCopy().Labels(ownedLabels(LabelRun)).Obj(), false},
		{"Retain content without managed-by", retainCopy().Labels(ownedLabels(LabelManagedBy)).Obj(), false},
		{"Retain content without the run's name", retainCopy().Labels(ownedLabels(LabelRunName)).Obj(), false},
		{"Retain content labelled with a run it was not made for", retainCopy().Labels(otherRun()).Obj(), false},
		{"Retain content with drillerd's labels, named by hand", builder.ForContent("drill-scratch").Driver("ebs.csi.aws.com").DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).Labels(ownedLabels()).Obj(), false},
		{"production content (Retain, no labels)", builder.ForContent("snapcontent-prod").Driver("ebs.csi.aws.com").DeletionPolicy(snapshotv1.VolumeSnapshotContentRetain).Obj(), false},

		// Volumes found by label (the sweep): the labels and a sandbox's data claim (rules 1 and 3).
		{"restored volume, bound", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Labels(ownedLabels()).Obj(), true},
		{"restored volume, Released after its sandbox went", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Released().Labels(ownedLabels()).Obj(), true},
		{"restored volume without labels", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Obj(), false},
		{"restored volume with only managed-by", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Labels(ownedLabels(LabelRun)).Obj(), false},
		{"restored volume with only the run label", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Labels(ownedLabels(LabelManagedBy)).Obj(), false},
		{"labelled volume bound to a production claim", newVolume("pvc-2").BoundTo("shop", "data-orders-0").Labels(ownedLabels()).Obj(), false},
		{"labelled volume bound to claim data outside a sandbox", newVolume("pvc-2").BoundTo("shop", DataClaimName).Labels(ownedLabels()).Obj(), false},
		{"labelled volume bound to another claim of the sandbox", newVolume("pvc-2").BoundTo(sandbox, "scratch").Labels(ownedLabels()).Obj(), false},
		{"labelled production volume, Released", newVolume("pvc-2").BoundTo("shop", "data-orders-0").Released().Labels(ownedLabels()).Obj(), false},
		{"labelled volume, Released from claim data outside a sandbox", newVolume("pvc-2").BoundTo("shop", DataClaimName).Released().Labels(ownedLabels()).Obj(), false},
		{"labelled volume never bound", newVolume("pvc-2").Labels(ownedLabels()).Obj(), false},
		{"volume bound to the sandbox, labelled with another run", newVolume("pvc-2").BoundTo(sandbox, DataClaimName).Labels(otherRun()).Obj(), false},
		{"labelled volume bound to the data claim of another sandbox", newVolume("pvc-2").BoundTo(sandboxNS, DataClaimName).Labels(ownedLabels()).Obj(), false},
		{"restored volume without the drill label", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Labels(ownedLabels(LabelDrill)).Obj(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := gate(tt.given); got != tt.want {
				t.Errorf("gate(%T %s, labels %v) = %v, want %v", tt.given, tt.given.GetName(), tt.given.GetLabels(), got, tt.want)
			}
		})
	}
}

// TestIsSandboxVolume covers the gate of teardown, which knows its sandbox
// namespace and asks about the volume before it carries any labels.
func TestIsSandboxVolume(t *testing.T) {
	sandbox := sandboxFor(orders().Obj()).NamespaceName()
	tests := []struct {
		name  string
		given *corev1.PersistentVolume
		ns    string
		want  bool
	}{
		{"bound to the sandbox's data claim", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Obj(), sandbox, true},
		{"Released from the sandbox's data claim", newVolume("pvc-1").BoundTo(sandbox, DataClaimName).Released().Obj(), sandbox, true},
		{"bound to a production claim", newVolume("pvc-2").BoundTo("shop", "data-orders-0").Obj(), sandbox, false},
		{"bound to another sandbox's data claim", newVolume("pvc-2").BoundTo("drill-users-db-99999999", DataClaimName).Obj(), sandbox, false},
		{"bound to another claim of the sandbox", newVolume("pvc-2").BoundTo(sandbox, "scratch").Obj(), sandbox, false},
		{"bound to claim data in a namespace without the prefix", newVolume("pvc-2").BoundTo("shop", DataClaimName).Obj(), "shop", false},
		{"Released from claim data in a namespace without the prefix", newVolume("pvc-2").BoundTo("shop", DataClaimName).Released().Obj(), "shop", false},
		{"Released production volume", newVolume("pvc-2").BoundTo("shop", "data-orders-0").Released().Obj(), sandbox, false},
		{"no sandbox namespace known", newVolume("pvc-2").BoundTo("", DataClaimName).Obj(), "", false},
		{"never bound", newVolume("pvc-2").Obj(), sandbox, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IsSandboxVolume(tt.given, tt.ns); got != tt.want {
				t.Errorf("IsSandboxVolume(claim %+v, %q) = %v, want %v", tt.given.Spec.ClaimRef, tt.ns, got, tt.want)
			}
		})
	}
}
