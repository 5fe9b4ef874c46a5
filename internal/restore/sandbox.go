package restore

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"path"
	"strings"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// Names of the objects in a sandbox (the ownership labels are in
// ownership.go).
const (
	SourceSnapshotName    = "source"
	DataClaimName         = "data"
	DatabasePodName       = "db"
	HBAConfigMapName      = "pg-hba"
	DatabaseContainerName = "database"
	dataMountPath         = "/var/lib/postgresql/data"
)

// Sandbox describes the sandbox of one run.
type Sandbox struct {
	Run   *drillsv1.DrillRun
	Drill *drillsv1.RestoreDrill
	// DrillerdNamespace and DrillerdLabels select the drillerd pods the
	// NetworkPolicy admits.
	DrillerdNamespace string
	DrillerdLabels    map[string]string
	// ExtraLabels are the cluster's own labels for every sandbox object
	// (--sandbox-labels), checked by CheckExtraLabels.
	ExtraLabels map[string]string
}

// Labels are the labels of every sandbox object: the extra labels and
// drillerd's ownership labels.
func (s Sandbox) Labels() map[string]string {
	labels := make(map[string]string, len(s.ExtraLabels)+5)
	maps.Copy(labels, s.ExtraLabels)
	maps.Copy(labels, map[string]string{
		LabelManagedBy:    ManagedByValue,
		LabelRun:          string(s.Run.UID),
		LabelRunName:      s.Run.Name,
		LabelRunNamespace: s.Run.Namespace,
		LabelDrill:        clip(s.Drill.Name, 63),
	})
	return labels
}

// NamespaceName is drill-<drill>-<8 characters of the run's uid>.
func (s Sandbox) NamespaceName() string {
	return NamespaceName(s.Drill.Name, string(s.Run.UID))
}

// NamespaceName builds the sandbox namespace name of a run.
func NamespaceName(drill, runUID string) string {
	sum := sha256.Sum256([]byte(runUID))
	suffix := hex.EncodeToString(sum[:])[:8]
	name := strings.ReplaceAll(strings.ToLower(drill), ".", "-") // a namespace is a DNS label
	name = strings.TrimRight(clip(name, 63-len(NamespacePrefix)-1-len(suffix)), "-")
	return NamespacePrefix + name + "-" + suffix
}

// ContentName is the name of the run's VolumeSnapshotContent copy.
func (s Sandbox) ContentName() string { return "drill-" + string(s.Run.UID) }

func (s Sandbox) meta(name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: s.NamespaceName(), Labels: s.Labels()}
}

// Namespace is the sandbox namespace.
func (s Sandbox) Namespace() *corev1.Namespace {
	labels := s.Labels()
	// The database pod needs nothing beyond the baseline Pod Security
	// Standard; enforcing it keeps a drill's image from running privileged.
	labels["pod-security.kubernetes.io/enforce"] = "baseline"
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name:   s.NamespaceName(),
		Labels: labels,
		Annotations: map[string]string{
			"drills.drillerd.dev/purpose": fmt.Sprintf("restore drill %s/%s, run %s; removed by drillerd", s.Drill.Namespace, s.Drill.Name, s.Run.Name),
		},
	}}
}

// NetworkPolicy denies all traffic to and from the sandbox except
// connections from drillerd: the restored data is production data.
func (s Sandbox) NetworkPolicy() *networkingv1.NetworkPolicy {
	from := networkingv1.NetworkPolicyPeer{
		NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"kubernetes.io/metadata.name": s.DrillerdNamespace}},
		PodSelector:       &metav1.LabelSelector{MatchLabels: s.DrillerdLabels},
	}
	return &networkingv1.NetworkPolicy{
		ObjectMeta: s.meta("deny-all-but-drillerd"),
		Spec: networkingv1.NetworkPolicySpec{
			PodSelector: metav1.LabelSelector{},
			PolicyTypes: []networkingv1.PolicyType{networkingv1.PolicyTypeIngress, networkingv1.PolicyTypeEgress},
			Ingress:     []networkingv1.NetworkPolicyIngressRule{{From: []networkingv1.NetworkPolicyPeer{from}}},
			Egress:      []networkingv1.NetworkPolicyEgressRule{},
		},
	}
}

// ContentCopy is a pre-provisioned content pointing at the source's
// physical snapshot, with deletionPolicy Retain.
func (s Sandbox) ContentCopy(source *snapshotv1.VolumeSnapshotContent, handle string) *snapshotv1.VolumeSnapshotContent {
	return &snapshotv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: s.ContentName(), Labels: s.Labels()},
		Spec: snapshotv1.VolumeSnapshotContentSpec{
			Driver:                  source.Spec.Driver,
			DeletionPolicy:          snapshotv1.VolumeSnapshotContentRetain,
			Source:                  snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To(handle)},
			VolumeSnapshotClassName: source.Spec.VolumeSnapshotClassName,
			SourceVolumeMode:        source.Spec.SourceVolumeMode,
			VolumeSnapshotRef:       corev1.ObjectReference{Namespace: s.NamespaceName(), Name: SourceSnapshotName},
		},
	}
}

// OwnedByContentCopy is the owner reference of the sandbox objects restored
// from content, the run's content copy (created, so that it has its UID):
// the snapshot, the claim and the database pod. It neither controls them
// nor blocks the copy's deletion; it lets the garbage collector delete them
// when the copy is deleted in the foreground.
func OwnedByContentCopy(content *snapshotv1.VolumeSnapshotContent) metav1.OwnerReference {
	return metav1.OwnerReference{
		APIVersion: snapshotv1.SchemeGroupVersion.String(), Kind: "VolumeSnapshotContent",
		Name: content.Name, UID: content.UID,
	}
}

// SnapshotCopy is the sandbox's VolumeSnapshot bound to the content copy.
func (s Sandbox) SnapshotCopy() *snapshotv1.VolumeSnapshot {
	return &snapshotv1.VolumeSnapshot{
		ObjectMeta: s.meta(SourceSnapshotName),
		Spec:       snapshotv1.VolumeSnapshotSpec{Source: snapshotv1.VolumeSnapshotSource{VolumeSnapshotContentName: ptr.To(s.ContentName())}},
	}
}

// Claim is the restored volume: at least the snapshot's restore size and
// the source claim's request, on the drill's storage class or the source's.
func (s Sandbox) Claim(source *corev1.PersistentVolumeClaim, restoreSize *resource.Quantity) *corev1.PersistentVolumeClaim {
	size := source.Spec.Resources.Requests[corev1.ResourceStorage]
	if q, ok := source.Status.Capacity[corev1.ResourceStorage]; ok && q.Cmp(size) > 0 {
		size = q
	}
	if restoreSize != nil && restoreSize.Cmp(size) > 0 {
		size = *restoreSize
	}
	class := source.Spec.StorageClassName
	if s.Drill.Spec.Sandbox.StorageClassName != nil {
		class = s.Drill.Spec.Sandbox.StorageClassName
	}
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: s.meta(DataClaimName),
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: class,
			VolumeMode:       source.Spec.VolumeMode,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: size}},
			DataSource:       &corev1.TypedLocalObjectReference{APIGroup: ptr.To(snapshotv1.GroupName), Kind: "VolumeSnapshot", Name: SourceSnapshotName},
		},
	}
}

// DatabasePod runs the database on the restored claim.
func (s Sandbox) DatabasePod() *corev1.Pod {
	db := s.Drill.Spec.Database
	port := db.Port
	if port == 0 {
		port = 5432
	}
	// The drill's own arguments come first: PostgreSQL takes the last
	// value of a setting, so none of them can undo what follows.
	args := append([]string{}, db.Args...)
	args = append(args,
		"-c", "listen_addresses=*",
		"-c", fmt.Sprintf("port=%d", port),
		// The copy must never reach production: no WAL shipped to its
		// archive, no logical replication subscription connecting to it and
		// consuming its slots, no standby streaming from its primary.
		"-c", "archive_mode=off",
		"-c", "max_logical_replication_workers=0",
		"-c", "primary_conninfo=",
		"-c", "primary_slot_name=",
		// Nor fetch WAL from production's archive, nor run commands there
		// at the end of recovery, nor run scheduled jobs (pg_cron) against
		// anything.
		"-c", "restore_command=",
		"-c", "archive_cleanup_command=",
		"-c", "recovery_end_command=",
		"-c", "cron.launch_active_jobs=off",
		// Damage must show: a damaged page is an error, never silently
		// zeroed or read past its checksum.
		"-c", "zero_damaged_pages=off",
		"-c", "ignore_checksum_failure=off",
	)
	args = append(args,
		// Who may connect: drillerd's files, not the restored ones.
		"-c", "hba_file="+configMountPath+"/pg_hba.conf",
		"-c", "ident_file="+configMountPath+"/pg_ident.conf",
		// TLS with the run's certificates, whatever production's
		// configuration names (its files are not in the sandbox).
		"-c", "ssl=on",
		"-c", "ssl_cert_file="+tlsMountPath+"/"+TLSCertKey,
		"-c", "ssl_key_file="+tlsMountPath+"/"+TLSKeyKey,
		"-c", "ssl_ca_file="+tlsMountPath+"/"+TLSCAKey,
		"-c", "ssl_crl_file=",
		"-c", "ssl_dh_params_file=",
	)
	mounts := []corev1.VolumeMount{
		{Name: "data", MountPath: dataMountPath},
		{Name: "hba", MountPath: configMountPath, ReadOnly: true},
		{Name: "tls", MountPath: tlsMountPath, ReadOnly: true},
	}
	volumes := []corev1.Volume{
		{Name: "data", VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: DataClaimName},
		}},
		{Name: "hba", VolumeSource: corev1.VolumeSource{
			ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: HBAConfigMapName}},
		}},
		{Name: "tls", VolumeSource: corev1.VolumeSource{
			Secret: &corev1.SecretVolumeSource{SecretName: TLSSecretName, DefaultMode: ptr.To(tlsFileMode)},
		}},
	}
	pgdata := dataMountPath
	if db.DataSubPath != "" {
		pgdata = path.Join(dataMountPath, db.DataSubPath)
	}
	return &corev1.Pod{
		ObjectMeta: s.meta(DatabasePodName),
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			// A throwaway copy: nothing of it needs to reach the disk at
			// shutdown. With no grace period its deletion (by the garbage
			// collector, when teardown deletes the content copy) removes the
			// pod at once, and the kubelet stops the process as it does for
			// a forced deletion; the claim is free as soon as the pod is gone.
			TerminationGracePeriodSeconds: ptr.To(int64(0)),
			EnableServiceLinks:            ptr.To(false),
			// The TLS key is readable through this group (access.go). The
			// kubelet gives it to the restored volume's files too where its
			// CSI driver supports fsGroup; OnRootMismatch spares a volume
			// whose root already has it the walk through every file.
			SecurityContext: &corev1.PodSecurityContext{
				FSGroup:             ptr.To(DatabaseGroup),
				FSGroupChangePolicy: ptr.To(corev1.FSGroupChangeOnRootMismatch),
			},
			Containers: []corev1.Container{{
				Name:         DatabaseContainerName,
				Image:        db.Image,
				Args:         args,
				Env:          []corev1.EnvVar{{Name: "PGDATA", Value: pgdata}},
				Ports:        []corev1.ContainerPort{{Name: "postgres", ContainerPort: port}},
				Resources:    s.Drill.Spec.Sandbox.Resources,
				VolumeMounts: mounts,
				// A database that will not start says why in its last log
				// lines (PostgreSQL's FATAL or PANIC); the kubelet copies them
				// into the termination message.
				TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"pg_isready", "-p", fmt.Sprint(port)}}},
					PeriodSeconds: 2,
				},
			}},
			Volumes: volumes,
		},
	}
}

// clip cuts s to at most n bytes, without an ellipsis (label values and
// namespace names are limited in bytes, and a marker would spend them) and
// without splitting a UTF-8 rune: it ends at the last rune boundary at or
// before n.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := 0
	for i := range s {
		if i > n {
			break
		}
		cut = i
	}
	return s[:cut]
}
