// Package cluster_test checks the local cluster the way a user of it would:
// a database StatefulSet, snapshots, restores into another namespace,
// namespace deletion, authentication and fault reporting.
package cluster_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
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
	// Not waiting for Ready: a server killed 2s after each start may never
	// pass a readiness probe with a 2s period.
	if _, err := env.Client.AppsV1().StatefulSets(ns).Create(env.Ctx, pg.Result(), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
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
	// The killed run's log is still there for kubectl logs --previous.
	previous, err := kubectl("logs", "-n", ns, pg.PodName(), "--previous")
	if err != nil || !strings.Contains(previous, "LOG:  starting PostgreSQL") {
		t.Errorf("kubectl logs --previous = %q (%v), want the killed server's log", previous, err)
	}
}

// kubectl runs kubectl as the cluster's admin and returns its output.
func kubectl(args ...string) (string, error) {
	out, err := exec.Command(cluster.KubectlBinary, append([]string{"--kubeconfig", cluster.Kubeconfig}, args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("kubectl %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out), nil
}

// TestKubectlLogs: pods/log goes through the real API server to the
// node's kubelet API, which the API server reaches at the node's
// InternalIP and advertised port, trusting its certificate by the cluster
// CA, with its own client certificate; the kubelet API answers nobody
// else.
func TestKubectlLogs(t *testing.T) {
	env := newEnv(t)
	ns := env.Namespace("logs")
	pod, err := env.Client.CoreV1().Pods(ns).Create(env.Ctx, newDatabasePod(ns, "db").Result(), metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	env.WaitPodReady(ns, pod.Name)
	const ready = "LOG:  database system is ready to accept connections"
	env.WaitFor(fixture.ShortTimeout, "the server to log that it is ready", func(ctx context.Context) (bool, error) {
		out, err := kubectl("logs", "-n", ns, "db")
		return strings.Contains(out, ready), err
	})

	// The entrypoint's initdb output on stdout, the server's log on stderr.
	all, err := kubectl("logs", "-n", ns, "db")
	if err != nil || !strings.Contains(all, "PostgreSQL init process complete; ready for start up.") || !strings.Contains(all, "LOG:  starting PostgreSQL") {
		t.Errorf("kubectl logs = %q (%v), want the entrypoint's and the server's output", all, err)
	}
	lines := strings.SplitAfter(all, "\n")
	last, err := kubectl("logs", "-n", ns, "db", "--tail=1")
	if err != nil || last != lines[len(lines)-2] {
		t.Errorf("kubectl logs --tail=1 = %q (%v), want the last line %q", last, err, lines[len(lines)-2])
	}
	first, err := kubectl("logs", "-n", ns, "db", "--limit-bytes=10")
	if err != nil || first != all[:10] {
		t.Errorf("kubectl logs --limit-bytes=10 = %q (%v), want %q", first, err, all[:10])
	}
	stamped, err := kubectl("logs", "-n", ns, "db", "--tail=1", "--timestamps")
	if stamp, line, _ := strings.Cut(stamped, " "); err != nil || line != last {
		t.Errorf("kubectl logs --timestamps = %q (%v), want a time before %q", stamped, err, last)
	} else if _, err := time.Parse(time.RFC3339Nano, stamp); err != nil {
		t.Errorf("kubectl logs --timestamps: %q is not a time: %v", stamp, err)
	}
	if out, err := kubectl("logs", "-n", ns, "db", "--previous"); err == nil || !strings.Contains(out, `previous terminated container "postgres" in pod "db" not found`) {
		t.Errorf("kubectl logs --previous of a container that never restarted = %q (%v), want the kubelet's refusal", out, err)
	}

	// Following the log ends when the container stops, with its last words.
	follow := exec.Command(cluster.KubectlBinary, "--kubeconfig", cluster.Kubeconfig, "logs", "-n", ns, "db", "--follow", "--tail=1")
	stdout, err := follow.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	lineRead, followed := make(chan string, 1), make(chan string, 1)
	go func() {
		r := bufio.NewReader(stdout)
		line, _ := r.ReadString('\n') // the stream is open
		lineRead <- line
		rest, _ := io.ReadAll(r)
		_ = follow.Wait()
		followed <- line + string(rest)
	}()
	select {
	case line := <-lineRead:
		if line != last {
			t.Errorf("kubectl logs --follow --tail=1 began with %q, want %q", line, last)
		}
	case <-time.After(fixture.ShortTimeout):
		_ = follow.Process.Kill()
		t.Fatal("kubectl logs --follow printed nothing")
	}
	if err := env.Client.CoreV1().Pods(ns).Delete(env.Ctx, "db", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	select {
	case out := <-followed:
		if !strings.Contains(out, "LOG:  database system is shut down") || follow.ProcessState.ExitCode() != 0 {
			t.Errorf("kubectl logs --follow printed %q and exited %d, want the server's shutdown and 0", out, follow.ProcessState.ExitCode())
		}
	case <-time.After(fixture.ShortTimeout):
		_ = follow.Process.Kill()
		t.Error("kubectl logs --follow did not end with the container")
	}

	// The kubelet API itself refuses a client without a certificate.
	node, err := env.Client.CoreV1().Nodes().Get(env.Ctx, cluster.NodeName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ca, err := os.ReadFile(filepath.Join(cluster.StateDir, "pki", "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(ca)
	anonymous := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	url := fmt.Sprintf("https://%s/containerLogs/%s/db/postgres", net.JoinHostPort(nodeAddress(node), strconv.Itoa(int(node.Status.DaemonEndpoints.KubeletEndpoint.Port))), ns)
	resp, err := anonymous.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("GET %s without a client certificate: %s, want 401 Unauthorized", url, resp.Status)
	}
}

// nodeAddress is the node's InternalIP.
func nodeAddress(node *corev1.Node) string {
	for _, a := range node.Status.Addresses {
		if a.Type == corev1.NodeInternalIP {
			return a.Address
		}
	}
	return ""
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
				ReadinessProbe: &corev1.Probe{
					ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"pg_isready"}}},
					PeriodSeconds: 1,
				},
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

// TestReadinessComesOnlyFromTheReadinessProbe: a server that accepts
// connections is not Ready while its readiness probe fails, and Ready comes
// no earlier than the probe allows (initial delay, then a period after a
// failed probe).
func TestReadinessComesOnlyFromTheReadinessProbe(t *testing.T) {
	env := newEnv(t)
	ns := env.Namespace("probes")
	never := newDatabasePod(ns, "never-ready").readiness(&corev1.Probe{
		ProbeHandler:  corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"false"}}},
		PeriodSeconds: 1,
	}).Result()
	// Fails its first probe (and leaves a mark on the volume), then asks
	// the server.
	later := newDatabasePod(ns, "ready-later").readiness(&corev1.Probe{
		ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{
			"sh", "-c", `test -e "$1" && exec pg_isready -U app; touch "$1"; exit 1`, "sh", "/var/lib/postgresql/data/probed-once",
		}}},
		InitialDelaySeconds: 2,
		PeriodSeconds:       3,
	}).Result()
	for _, pod := range []*corev1.Pod{never, later} {
		if _, err := env.Client.CoreV1().Pods(ns).Create(env.Ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	// (a) The server accepts connections; the probe keeps failing; the pod
	// is not Ready.
	env.WaitFor(fixture.PodReadyTimeout, "never-ready's server to accept connections and fail three readiness probes", func(ctx context.Context) (bool, error) {
		truth, err := nodeemu.ReadPodTruth(cluster.GroundTruth, ns, "never-ready")
		if err != nil || len(truth.Processes) == 0 || truth.Processes[0].FirstAccepting.IsZero() {
			return false, err
		}
		return unhealthyCount(ctx, env, ns, "never-ready", "Readiness probe failed") >= 3, nil
	})
	pod, err := env.Client.CoreV1().Pods(ns).Get(env.Ctx, "never-ready", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if podCondition(pod, corev1.PodReady) != corev1.ConditionFalse || podCondition(pod, corev1.ContainersReady) != corev1.ConditionFalse ||
		len(pod.Status.ContainerStatuses) != 1 || pod.Status.ContainerStatuses[0].Ready || pod.Status.ContainerStatuses[0].State.Running == nil {
		t.Errorf("never-ready: conditions %+v, containers %+v; want running and not ready", pod.Status.Conditions, pod.Status.ContainerStatuses)
	}
	if got := env.QueryInt(env.Connect(pod), "SELECT 1"); got != 1 {
		t.Errorf("SELECT 1 = %d on the server that is not Ready", got)
	}

	// (c) Ready no earlier than initialDelaySeconds + periodSeconds after
	// the container started: the first probe fails, the next one is a
	// period later.
	ready := env.WaitPodReady(ns, "ready-later")
	started := ready.Status.ContainerStatuses[0].State.Running.StartedAt.Time
	var readyAt time.Time
	for _, c := range ready.Status.Conditions {
		if c.Type == corev1.PodReady {
			readyAt = c.LastTransitionTime.Time
		}
	}
	// Both times are whole seconds (the API's precision), truncated:
	// ready - started >= 5s holds for the truncated values too.
	if gap := readyAt.Sub(started); gap < 5*time.Second {
		t.Errorf("ready-later: Ready at %s, %s after the container started at %s; want at least 5s (initial delay 2s, then a failed probe and a 3s period)", readyAt, gap, started)
	}
	if !env.HasEvent(ns, "Pod", "ready-later", "Unhealthy", "Readiness probe failed") {
		t.Errorf("ready-later: no Unhealthy event for its first probe; events: %v", env.Events(ns, "Pod", "ready-later"))
	}
}

// TestAnImageOfAnotherMajorVersionRefusesTheDataDirectory: a data directory
// of this machine's major version, then a pod of the next major version on
// it. Its server refuses as that PostgreSQL does: exit code 1, the FATAL
// line in its log, and in its termination message only with
// FallbackToLogsOnError.
func TestAnImageOfAnotherMajorVersionRefusesTheDataDirectory(t *testing.T) {
	env := newEnv(t)
	const newer = "postgres:16"
	if _, err := os.Stat("/usr/lib/postgresql/16/bin/postgres"); err == nil {
		t.Skipf("this machine has PostgreSQL 16: %s would run", newer)
	}
	ns := env.Namespace("versions")
	claim := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "data"},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			Resources:   corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := env.Client.CoreV1().PersistentVolumeClaims(ns).Create(env.Ctx, claim, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	first := newDatabasePod(ns, "initdb").onClaim("data").Result()
	if _, err := env.Client.CoreV1().Pods(ns).Create(env.Ctx, first, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	env.WaitPodReady(ns, "initdb")
	if err := env.Client.CoreV1().Pods(ns).Delete(env.Ctx, "initdb", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	env.WaitFor(fixture.ShortTimeout, "pod initdb to be gone", func(ctx context.Context) (bool, error) {
		_, err := env.Client.CoreV1().Pods(ns).Get(ctx, "initdb", metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})

	// Two containers of the newer image on the same data directory: one
	// falls back to its log for the termination message, one does not.
	second := newDatabasePod(ns, "upgraded").onClaim("data").image(newer).Result()
	second.Spec.RestartPolicy = corev1.RestartPolicyNever
	logs := second.Spec.Containers[0]
	logs.Name, logs.TerminationMessagePolicy = "logs", corev1.TerminationMessageFallbackToLogsOnError
	file := second.Spec.Containers[0]
	file.Name, file.TerminationMessagePolicy = "file", corev1.TerminationMessageReadFile
	second.Spec.Containers = []corev1.Container{logs, file}
	created, err := env.Client.CoreV1().Pods(ns).Create(env.Ctx, second, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var pod *corev1.Pod
	env.WaitFor(fixture.PodReadyTimeout, "pod upgraded to fail", func(ctx context.Context) (bool, error) {
		p, err := env.Client.CoreV1().Pods(ns).Get(ctx, "upgraded", metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		pod = p
		return p.Status.Phase == corev1.PodFailed, fmt.Errorf("phase %s, containers %+v", p.Status.Phase, p.Status.ContainerStatuses)
	})

	const fatal = "FATAL:  database files are incompatible with server"
	const detail = "DETAIL:  The data directory was initialized by PostgreSQL version 15, which is not compatible with this version 16."
	messages := map[string]string{}
	for _, cs := range pod.Status.ContainerStatuses {
		term := cs.State.Terminated
		if term == nil || term.ExitCode != 1 || term.Reason != "Error" {
			t.Errorf("container %s: state %+v, want terminated with exit code 1 (Error)", cs.Name, cs.State)
			continue
		}
		messages[cs.Name] = term.Message
	}
	if m := messages["logs"]; !strings.Contains(m, fatal) || !strings.Contains(m, detail) {
		t.Errorf("termination message of logs (FallbackToLogsOnError) = %q, want the server's FATAL and DETAIL lines", m)
	}
	if m := messages["file"]; m != "" {
		t.Errorf("termination message of file (policy File, nothing written to /dev/termination-log) = %q, want empty", m)
	}
	log, err := kubectl("logs", "-n", ns, created.Name, "-c", "file")
	if err != nil || !strings.Contains(log, fatal) || !strings.Contains(log, detail) {
		t.Errorf("kubectl logs of container file = %q (%v), want the server's FATAL and DETAIL lines", log, err)
	}
}

// databasePod builds a pod running the fixtures' PostgreSQL with their
// credentials on a fresh data directory.
type databasePod struct{ p *corev1.Pod }

func newDatabasePod(namespace, name string) *databasePod {
	return &databasePod{p: &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: ptr.To(int64(5)),
			Containers: []corev1.Container{{
				Name:  "postgres",
				Image: fixture.PostgresImage,
				Env: []corev1.EnvVar{
					{Name: "POSTGRES_USER", Value: fixture.DBUser},
					{Name: "POSTGRES_PASSWORD", Value: fixture.DBPassword},
					{Name: "POSTGRES_DB", Value: fixture.DBName},
					{Name: "PGDATA", Value: "/var/lib/postgresql/data/pgdata"},
				},
				Args:         []string{"-c", "fsync=off", "-c", "shared_buffers=16MB"},
				VolumeMounts: []corev1.VolumeMount{{Name: "data", MountPath: "/var/lib/postgresql/data"}},
			}},
			Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
		},
	}}
}

func (b *databasePod) readiness(p *corev1.Probe) *databasePod {
	b.p.Spec.Containers[0].ReadinessProbe = p
	return b
}

func (b *databasePod) image(image string) *databasePod {
	b.p.Spec.Containers[0].Image = image
	return b
}

func (b *databasePod) onClaim(claim string) *databasePod {
	b.p.Spec.Volumes[0].VolumeSource = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: claim}}
	return b
}

func (b *databasePod) Result() *corev1.Pod { return b.p }

// unhealthyCount counts the Unhealthy events about a pod whose message
// starts with prefix (the event recorder folds repeats into one event's
// count).
func unhealthyCount(ctx context.Context, env *fixture.Env, namespace, pod, prefix string) int32 {
	list, err := env.Client.CoreV1().Events(namespace).List(ctx, metav1.ListOptions{
		FieldSelector: fmt.Sprintf("involvedObject.kind=Pod,involvedObject.name=%s,reason=Unhealthy", pod),
	})
	if err != nil {
		return 0
	}
	var n int32
	for _, e := range list.Items {
		if strings.HasPrefix(e.Message, prefix) {
			n += max(e.Count, 1)
		}
	}
	return n
}

func podCondition(pod *corev1.Pod, t corev1.PodConditionType) corev1.ConditionStatus {
	for _, c := range pod.Status.Conditions {
		if c.Type == t {
			return c.Status
		}
	}
	return corev1.ConditionUnknown
}
