// Package cluster_test checks the local cluster the way a user of it would:
// a database StatefulSet, snapshots, restores into another namespace,
// namespace deletion, authentication and fault reporting.
package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/localcluster"
	"github.com/drillerd/drillerd/test/nodeemu"
	"github.com/drillerd/drillerd/test/nodeemu/csistore"
)

var cluster localcluster.Info

func TestMain(m *testing.M) {
	os.Exit(localcluster.TestMain(m, &cluster))
}

func newEnv(t *testing.T) *fixture.Env {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	return fixture.New(t, cluster)
}

func TestKubectlSeesARealServerAndServiceAccountTokensWork(t *testing.T) {
	env := newEnv(t)

	out, err := exec.Command(cluster.KubectlBinary, "--kubeconfig", cluster.Kubeconfig, "version", "-o", "json").Output()
	if err != nil {
		t.Fatalf("kubectl version: %v", err)
	}
	var version struct {
		ServerVersion struct{ GitVersion, Major, Minor string } `json:"serverVersion"`
	}
	if err := json.Unmarshal(out, &version); err != nil {
		t.Fatalf("kubectl version output: %v\n%s", err, out)
	}
	if version.ServerVersion.GitVersion != "v1.37.2" || version.ServerVersion.Minor != "37" {
		t.Errorf("server version = %+v, want v1.37.2 (minor 37)", version.ServerVersion)
	}

	token, err := exec.Command(cluster.KubectlBinary, "--kubeconfig", cluster.Kubeconfig, "create", "token", "default", "-n", "default").Output()
	if err != nil {
		t.Fatalf("kubectl create token: %v", err)
	}
	review, err := env.Client.AuthenticationV1().TokenReviews().Create(env.Ctx, &authenticationv1.TokenReview{
		Spec: authenticationv1.TokenReviewSpec{Token: strings.TrimSpace(string(token))},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenReview: %v", err)
	}
	if !review.Status.Authenticated || review.Status.User.Username != "system:serviceaccount:default:default" {
		t.Errorf("token review = %+v, want authenticated as system:serviceaccount:default:default", review.Status)
	}

	audit, err := os.ReadFile(cluster.AuditLog)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	if !strings.Contains(string(audit), `"resource":"tokenreviews"`) {
		t.Errorf("audit log %s does not record the TokenReview", cluster.AuditLog)
	}

	node, err := env.Client.CoreV1().Nodes().Get(env.Ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("node: %v", err)
	}
	if !nodeReady(node) {
		t.Errorf("node %s is not Ready: %+v", node.Name, node.Status.Conditions)
	}
	csiNode, err := env.Client.StorageV1().CSINodes().Get(env.Ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil || len(csiNode.Spec.Drivers) != 1 || csiNode.Spec.Drivers[0].Name != nodeemu.DriverName {
		t.Errorf("CSINode %s does not register %s: %v %+v", cluster.NodeName, nodeemu.DriverName, err, csiNode)
	}
}

// TestSnapshotAndRestoreIntoAnotherNamespace walks the path drillerd takes:
// a production StatefulSet, a snapshot, more writes, a restore elsewhere
// through a Retain copy of the content, and the clean-up.
func TestSnapshotAndRestoreIntoAnotherNamespace(t *testing.T) {
	env := newEnv(t)
	store, err := csistore.Open(cluster.CSIStore)
	if err != nil {
		t.Fatal(err)
	}

	prod := env.Namespace("prod")
	orders := fixture.NewPostgres(prod, "orders")
	pod := env.CreatePostgres(orders)
	if owner := metav1.GetControllerOf(pod); owner == nil || owner.Kind != "StatefulSet" {
		t.Errorf("pod %s is not owned by its StatefulSet: %+v", pod.Name, owner)
	}
	if !env.HasEvent(prod, "Pod", pod.Name, "Scheduled", "Successfully assigned") {
		t.Errorf("pod was not scheduled by the scheduler; events: %v", env.Events(prod, "Pod", pod.Name))
	}
	if !env.HasEvent(prod, "PersistentVolumeClaim", orders.ClaimName(), "ProvisioningSucceeded", "Successfully provisioned volume") {
		t.Errorf("claim not provisioned by the driver; events: %v", env.Events(prod, "PersistentVolumeClaim", orders.ClaimName()))
	}

	db := env.Connect(pod)
	env.Exec(db, `CREATE TABLE orders (id serial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now())`)
	env.Exec(db, `INSERT INTO orders SELECT FROM generate_series(1, 100)`)

	snap := env.CreateSnapshot(prod, "orders-1", orders.ClaimName(), nil)
	content := env.Content(snap)
	handle := ptr.Deref(content.Status.SnapshotHandle, "")
	if handle == "" {
		t.Fatalf("content %s has no snapshot handle", content.Name)
	}
	if got := snap.Status.RestoreSize; got == nil || got.Cmp(resource.MustParse("1Gi")) != 0 {
		t.Errorf("restoreSize = %v, want 1Gi (the source volume's capacity)", got)
	}
	if _, ok, err := store.GetSnapshot(handle); !ok || err != nil {
		t.Fatalf("no physical copy for %s: %v", handle, err)
	}

	env.Exec(db, `INSERT INTO orders SELECT FROM generate_series(1, 50)`)

	// Restore in another namespace through a pre-provisioned Retain content.
	sandbox := env.Namespace("restore")
	copyName := "copy-" + sandbox
	copyContent := &snapshotv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: copyName},
		Spec: snapshotv1.VolumeSnapshotContentSpec{
			Driver:                  nodeemu.DriverName,
			DeletionPolicy:          snapshotv1.VolumeSnapshotContentRetain,
			Source:                  snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To(handle)},
			VolumeSnapshotClassName: ptr.To(localcluster.SnapshotClassName),
			VolumeSnapshotRef:       corev1.ObjectReference{Namespace: sandbox, Name: "orders-copy"},
		},
	}
	if _, err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Create(env.Ctx, copyContent, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating content copy: %v", err)
	}
	t.Cleanup(func() {
		_ = env.Snapshots.SnapshotV1().VolumeSnapshotContents().Delete(context.Background(), copyName, metav1.DeleteOptions{})
	})
	copySnap := &snapshotv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Namespace: sandbox, Name: "orders-copy"},
		Spec:       snapshotv1.VolumeSnapshotSpec{Source: snapshotv1.VolumeSnapshotSource{VolumeSnapshotContentName: ptr.To(copyName)}},
	}
	if _, err := env.Snapshots.SnapshotV1().VolumeSnapshots(sandbox).Create(env.Ctx, copySnap, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating snapshot copy: %v", err)
	}
	env.WaitSnapshotReady(sandbox, "orders-copy")

	claim := restoreClaim(sandbox, "data", "orders-copy", "1Gi")
	if _, err := env.Client.CoreV1().PersistentVolumeClaims(sandbox).Create(env.Ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating restore claim: %v", err)
	}
	if _, err := env.Client.CoreV1().Pods(sandbox).Create(env.Ctx, postgresPod(sandbox, "db", "data", fixture.PostgresImage), metav1.CreateOptions{}); err != nil {
		t.Fatalf("creating restore pod: %v", err)
	}
	restored := env.WaitPodReady(sandbox, "db")
	if got := env.QueryInt(env.Connect(restored), `SELECT count(*) FROM orders`); got != 100 {
		t.Errorf("restored database has %d orders, want the 100 from before the snapshot", got)
	}

	boundClaim, err := env.Client.CoreV1().PersistentVolumeClaims(sandbox).Get(env.Ctx, "data", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	restoredPV := boundClaim.Spec.VolumeName
	volumeTruth, err := nodeemu.ReadVolumeTruth(cluster.GroundTruth, restoredPV)
	if err != nil || volumeTruth.SnapshotHandle != handle || volumeTruth.Usable.Before(volumeTruth.ProvisionStarted) {
		t.Errorf("ground truth of %s = %+v (%v), want a restore of %s", restoredPV, volumeTruth, err, handle)
	}
	podTruth, err := nodeemu.ReadPodTruth(cluster.GroundTruth, sandbox, "db")
	if err != nil || len(podTruth.Processes) != 1 || podTruth.Processes[0].FirstAccepting.Before(podTruth.Processes[0].Started) || podTruth.IP != restored.Status.PodIP {
		t.Errorf("ground truth of pod db = %+v (%v), want one process that started, then accepted connections on %s", podTruth, err, restored.Status.PodIP)
	}

	sourceBefore := env.Content(env.WaitSnapshotReady(prod, "orders-1"))

	// Tear the restore down: the namespace goes, the source stays.
	env.DeleteNamespace(env.Ctx, sandbox)
	if _, err := env.Client.CoreV1().PersistentVolumes().Get(env.Ctx, restoredPV, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("restored PV %s still exists after its namespace was deleted: %v", restoredPV, err)
	}
	if _, ok := store.VolumePath(restoredPV); ok {
		t.Errorf("restored volume %s still on disk", restoredPV)
	}
	if podTruth, _ := nodeemu.ReadPodTruth(cluster.GroundTruth, sandbox, "db"); len(podTruth.Processes) != 1 || podTruth.Processes[0].Exited.IsZero() {
		t.Errorf("restored database process did not stop: %+v", podTruth)
	}
	if err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Delete(env.Ctx, copyName, metav1.DeleteOptions{}); err != nil {
		t.Fatalf("deleting content copy: %v", err)
	}
	env.WaitFor(fixture.ShortTimeout, "content copy to be gone", func(ctx context.Context) (bool, error) {
		_, err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Get(ctx, copyName, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	sourceAfter := env.Content(env.WaitSnapshotReady(prod, "orders-1"))
	if sourceAfter.ResourceVersion != sourceBefore.ResourceVersion || ptr.Deref(sourceAfter.Status.SnapshotHandle, "") != handle {
		t.Errorf("source content changed: before %+v, after %+v", sourceBefore, sourceAfter)
	}
	if _, ok, _ := store.GetSnapshot(handle); !ok {
		t.Errorf("physical copy %s was removed with a Retain content", handle)
	}
	if got := env.QueryInt(db, `SELECT count(*) FROM orders`); got != 150 {
		t.Errorf("production database has %d orders, want 150", got)
	}

	// The source snapshot's content has policy Delete: deleting the snapshot
	// removes its physical copy.
	if err := env.Snapshots.SnapshotV1().VolumeSnapshots(prod).Delete(env.Ctx, "orders-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(fixture.ShortTimeout, "content "+content.Name+" to be gone", func(ctx context.Context) (bool, error) {
		_, err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Get(ctx, content.Name, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
	if _, ok, _ := store.GetSnapshot(handle); ok {
		t.Errorf("physical copy %s survived the deletion of its Delete-policy content", handle)
	}
}

func TestUnknownImageReportsErrImagePull(t *testing.T) {
	env := newEnv(t)
	ns := env.Namespace("image")
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "web"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}},
	}
	if _, err := env.Client.CoreV1().Pods(ns).Create(env.Ctx, pod, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(fixture.ShortTimeout, "container web to wait with ErrImagePull", func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "web", metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) != 1 {
			return false, err
		}
		w := p.Status.ContainerStatuses[0].State.Waiting
		return w != nil && (w.Reason == "ErrImagePull" || w.Reason == "ImagePullBackOff") && p.Status.Phase == corev1.PodPending, nil
	})
	if !env.HasEvent(ns, "Pod", "web", "Failed", `Failed to pull image "nginx:1.27"`) {
		t.Errorf("no Failed event for the image pull; events: %v", env.Events(ns, "Pod", "web"))
	}
}

func TestCrashedDatabaseIsRestarted(t *testing.T) {
	env := newEnv(t)
	ns := env.Namespace("crash")
	pg := fixture.NewPostgres(ns, "flaky").WithPodAnnotations(map[string]string{nodeemu.AnnotationCrashAfter: "2s"})
	env.CreatePostgres(pg)
	env.WaitFor(fixture.Scaled(60*time.Second), "the crashed container to be restarted", func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, pg.PodName(), metav1.GetOptions{})
		if err != nil || len(p.Status.ContainerStatuses) != 1 {
			return false, err
		}
		cs := p.Status.ContainerStatuses[0]
		last := cs.LastTerminationState.Terminated
		return cs.RestartCount >= 1 && last != nil && last.ExitCode == 137, fmt.Errorf("status %+v", cs)
	})
	if !env.HasEvent(ns, "Pod", pg.PodName(), "BackOff", "Back-off restarting failed container postgres") {
		t.Errorf("no BackOff event; events: %v", env.Events(ns, "Pod", pg.PodName()))
	}
}

func restoreClaim(namespace, name, snapshot, size string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}},
			DataSource:  &corev1.TypedLocalObjectReference{APIGroup: ptr.To(snapshotv1.GroupName), Kind: "VolumeSnapshot", Name: snapshot},
		},
	}
}

func postgresPod(namespace, name, claim, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(5)),
			Containers: []corev1.Container{{
				Name:         "postgres",
				Image:        image,
				Env:          []corev1.EnvVar{{Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"}},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim},
			}}},
		},
	}
}

func nodeReady(node *corev1.Node) bool {
	for _, c := range node.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}
