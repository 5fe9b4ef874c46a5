// Package drill_test runs whole drills on the local cluster with the real
// drillerd binary: `drillerd serve` reconciles, `drillerd run` starts a
// drill and reports, and the tests check what an SRE would: the verdict and
// its reason, the timings against the emulator's ground truth, and that no
// sandbox is left and no source object was touched.
package drill_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/drillerd/drillerd/test/localcluster"
)

var (
	cluster  localcluster.Info
	drillerd string // path of the built binary
)

func TestMain(m *testing.M) {
	os.Exit(localcluster.TestMain(m, &cluster, setUp))
}

// setUp builds drillerd, installs the CRDs and starts `drillerd serve`.
func setUp(info localcluster.Info) (func(), error) {
	root, err := localcluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "drillerd-e2e-")
	if err != nil {
		return nil, err
	}
	drillerd = filepath.Join(dir, "drillerd")
	// With its version, as make build sets it: its requests say it.
	describe := exec.Command("git", "describe", "--always", "--dirty")
	describe.Dir = root
	version := "e2e"
	if out, err := describe.Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		version = strings.TrimSpace(string(out))
	}
	build := exec.Command("go", "build", "-ldflags", "-X main.version="+version, "-o", drillerd, "./cmd/drillerd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building drillerd: %v\n%s", err, out)
	}
	apply := exec.Command(info.KubectlBinary, "--kubeconfig", info.Kubeconfig, "apply", "--server-side", "--force-conflicts", "-k", filepath.Join(root, "deploy", "crds"))
	if out, err := apply.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("installing CRDs: %v\n%s", err, out)
	}
	wait := exec.Command(info.KubectlBinary, "--kubeconfig", info.Kubeconfig, "wait", "--for=condition=Established", "--timeout=30s",
		"crd/restoredrills.drills.drillerd.dev", "crd/drillruns.drills.drillerd.dev")
	if out, err := wait.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("waiting for CRDs: %v\n%s", err, out)
	}
	ns := exec.Command(info.KubectlBinary, "--kubeconfig", info.Kubeconfig, "create", "namespace", "drillerd-system")
	if out, err := ns.CombinedOutput(); err != nil && !strings.Contains(string(out), "AlreadyExists") {
		return nil, fmt.Errorf("creating drillerd-system: %v\n%s", err, out)
	}
	// drillerd runs as its own ServiceAccount, so that the audit log tells
	// its requests from the test's, the snapshot controller's and the node
	// emulator's (which all use the admin kubeconfig).
	token, err := ownIdentity(info)
	if err != nil {
		return nil, fmt.Errorf("giving drillerd its own identity: %v", err)
	}
	own := info
	own.Kubeconfig = filepath.Join(dir, "drillerd.kubeconfig")
	if err := tokenKubeconfig(info.Kubeconfig, own.Kubeconfig, token); err != nil {
		return nil, err
	}
	daemon = &drillerdProcess{info: own, logPath: filepath.Join(dir, "drillerd.log")}
	if err := daemon.start(); err != nil {
		return nil, err
	}
	return func() {
		daemon.stop()
		if os.Getenv("DRILLERD_KEEP_CLUSTER_STATE") == "" {
			os.RemoveAll(dir)
		}
	}, nil
}

var daemon *drillerdProcess

// drillerdIdentity is the ServiceAccount `drillerd serve` runs as in these
// tests, bound to cluster-admin; the tests of deploy/ run it as deploy/'s
// ServiceAccount (serviceAccount).
const drillerdIdentity = "drillerd-e2e"

// drillerdUsers are the users drillerd's requests come from in these tests.
var drillerdUsers = []string{"system:serviceaccount:drillerd-system:" + drillerdIdentity, serviceAccount}

// ownIdentity creates drillerd's ServiceAccount in drillerd-system, binds it
// to cluster-admin and returns a token for it that outlasts the tests.
func ownIdentity(info localcluster.Info) (string, error) {
	cfg, err := info.RestConfig()
	if err != nil {
		return "", err
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return "", err
	}
	ctx := context.Background()
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "drillerd-system", Name: drillerdIdentity}}
	if _, err := cs.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: drillerdIdentity},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	tr, err := cs.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64((48 * time.Hour).Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// drillerdProcess is `drillerd serve`, which a test may kill and restart.
type drillerdProcess struct {
	info    localcluster.Info
	logPath string
	args    []string
	metrics string // host:port of /metrics, chosen at the first start
	api     string // host:port of the HTTP API, chosen at the first start
	cmd     *exec.Cmd
	done    chan struct{}
}

func (d *drillerdProcess) start() error {
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	for _, addr := range []*string{&d.metrics, &d.api} {
		if *addr == "" {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return err
			}
			*addr = l.Addr().String()
			l.Close()
		}
	}
	args := append([]string{"serve", "--kubeconfig", d.info.Kubeconfig, "--metrics-bind-address", d.metrics, "--api-bind-address", d.api,
		"--health-probe-bind-address", "0", "--log-format", "console", "--max-concurrent-drills", "4", "--namespace", "drillerd-system",
		// client-go's common timings rather than drillerd's (which ride out
		// a 45 s API server outage, test/e2e/faults): a drillerd killed here
		// is succeeded 15 s later, not a minute.
		"--leader-election-lease-duration=15s", "--leader-election-renew-deadline=10s", "--leader-election-retry-period=2s"}, d.args...)
	cmd := exec.Command(drillerd, args...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	d.cmd, d.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); logFile.Close(); close(d.done) }()
	fmt.Fprintf(os.Stderr, "drillerd serve: pid %d, log %s\n", cmd.Process.Pid, d.logPath)
	return nil
}

// kill ends drillerd at once, as a crash or a node failure would.
func (d *drillerdProcess) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
}

// stop ends drillerd gracefully.
func (d *drillerdProcess) stop() {
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.kill()
	}
}

// restartDrillerd restarts `drillerd serve` with extra flags, and again
// without them when the test ends.
func restartDrillerd(t *testing.T, extra ...string) {
	t.Helper()
	saved := daemon.args
	daemon.stop()
	daemon.args = append(slices.Clone(saved), extra...)
	if err := daemon.start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.stop()
		daemon.args = saved
		if err := daemon.start(); err != nil {
			t.Errorf("restarting drillerd: %v", err)
		}
	})
}
