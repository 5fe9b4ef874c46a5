//go:build bench

// Package bench measures drillerd on the local cluster: `make bench` runs
// TestBench, which writes bench/results.json and prints a table;
// docs/benchmarks.md says how each figure is made. It is not part of make
// test: it takes half an hour or more and its figures are measurements,
// not assertions.
package bench

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"k8s.io/utils/ptr"

	"github.com/drillerd/drillerd/test/localcluster"
)

var (
	cluster  localcluster.Info
	drillerd string // the binary under test
	version  string // its version
	daemon   *drillerdProcess
	root     string // the repository
)

func TestMain(m *testing.M) {
	os.Exit(localcluster.TestMain(m, &cluster, setUp))
}

// identity is the ServiceAccount drillerd serve runs as, so that the audit
// log tells its requests from the benchmark's.
const identity = "drillerd-bench"

// user is that ServiceAccount's user name.
const user = "system:serviceaccount:drillerd-system:" + identity

// setUp builds drillerd with its version, installs the CRDs and starts
// drillerd serve with --max-concurrent-drills=4.
func setUp(info localcluster.Info) (func(), error) {
	var err error
	if root, err = localcluster.RepoRoot(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "drillerd-bench-")
	if err != nil {
		return nil, err
	}
	version = "bench"
	describe := exec.Command("git", "describe", "--always", "--dirty")
	describe.Dir = root
	if out, err := describe.Output(); err == nil && len(strings.TrimSpace(string(out))) > 0 {
		version = strings.TrimSpace(string(out))
	}
	drillerd = filepath.Join(dir, "drillerd")
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-X main.version="+version, "-o", drillerd, "./cmd/drillerd")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building drillerd: %v\n%s", err, out)
	}
	kubectl := func(args ...string) error {
		cmd := exec.Command(info.KubectlBinary, append([]string{"--kubeconfig", info.Kubeconfig}, args...)...)
		if out, err := cmd.CombinedOutput(); err != nil && !strings.Contains(string(out), "AlreadyExists") {
			return fmt.Errorf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := kubectl("apply", "--server-side", "--force-conflicts", "-k", filepath.Join(root, "deploy", "crds")); err != nil {
		return nil, err
	}
	if err := kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/restoredrills.drills.drillerd.dev", "crd/drillruns.drills.drillerd.dev"); err != nil {
		return nil, err
	}
	if err := kubectl("create", "namespace", "drillerd-system"); err != nil {
		return nil, err
	}
	token, err := ownIdentity(info)
	if err != nil {
		return nil, fmt.Errorf("giving drillerd its own identity: %v", err)
	}
	kubeconfig := filepath.Join(dir, "drillerd.kubeconfig")
	if err := tokenKubeconfig(info.Kubeconfig, kubeconfig, token); err != nil {
		return nil, err
	}
	daemon = &drillerdProcess{kubeconfig: kubeconfig, logPath: filepath.Join(dir, "drillerd.log")}
	if err := daemon.start(); err != nil {
		return nil, err
	}
	return func() {
		daemon.stop()
		if os.Getenv("BENCH_KEEP") == "" {
			os.RemoveAll(dir)
		}
	}, nil
}

// ownIdentity creates drillerd's ServiceAccount, binds it to cluster-admin
// and returns a token for it.
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
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "drillerd-system", Name: identity}}
	if _, err := cs.CoreV1().ServiceAccounts(sa.Namespace).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	binding := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: identity},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Namespace: sa.Namespace, Name: sa.Name}},
	}
	if _, err := cs.RbacV1().ClusterRoleBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return "", err
	}
	tr, err := cs.CoreV1().ServiceAccounts(sa.Namespace).CreateToken(ctx, sa.Name, &authenticationv1.TokenRequest{
		Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64((24 * time.Hour).Seconds()))},
	}, metav1.CreateOptions{})
	if err != nil {
		return "", err
	}
	return tr.Status.Token, nil
}

// tokenKubeconfig writes a kubeconfig for the cluster of the admin
// kubeconfig that authenticates with token only.
func tokenKubeconfig(adminKubeconfig, path, token string) error {
	admin, err := clientcmd.LoadFromFile(adminKubeconfig)
	if err != nil {
		return err
	}
	ctx := admin.Contexts[admin.CurrentContext]
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["local"] = admin.Clusters[ctx.Cluster]
	cfg.AuthInfos["drillerd"] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["drillerd"] = &clientcmdapi.Context{Cluster: "local", AuthInfo: "drillerd", Namespace: "drillerd-system"}
	cfg.CurrentContext = "drillerd"
	return clientcmd.WriteToFile(*cfg, path)
}

// drillerdProcess is drillerd serve.
type drillerdProcess struct {
	kubeconfig string
	logPath    string
	metrics    string
	cmd        *exec.Cmd
	done       chan struct{}
	started    time.Time
}

func (d *drillerdProcess) start() error {
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	if d.metrics == "" {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		d.metrics = l.Addr().String()
		l.Close()
	}
	cmd := exec.Command(drillerd, "serve", "--kubeconfig", d.kubeconfig, "--metrics-bind-address", d.metrics,
		"--api-bind-address", "0", "--health-probe-bind-address", "0", "--max-concurrent-drills", "4",
		"--namespace", "drillerd-system", "--leader-elect=false")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return err
	}
	d.cmd, d.done, d.started = cmd, make(chan struct{}), time.Now()
	go func() { _ = cmd.Wait(); logFile.Close(); close(d.done) }()
	fmt.Fprintf(os.Stderr, "drillerd serve: pid %d, log %s\n", cmd.Process.Pid, d.logPath)
	return nil
}

func (d *drillerdProcess) stop() {
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		_ = d.cmd.Process.Kill()
		<-d.done
	}
}

// memory is drillerd's resident set size (VmRSS) and the anonymous part of
// it (RssAnon: heap, stacks), in MiB; the rest are pages of its binary.
func (d *drillerdProcess) memory() (rss, anon float64, err error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", d.cmd.Process.Pid))
	if err != nil {
		return 0, 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		for _, field := range []struct {
			prefix string
			into   *float64
		}{{"VmRSS:", &rss}, {"RssAnon:", &anon}} {
			if rest, ok := strings.CutPrefix(sc.Text(), field.prefix); ok {
				kib, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
				if err != nil {
					return 0, 0, err
				}
				*field.into = kib / 1024
			}
		}
	}
	if rss == 0 {
		return 0, 0, fmt.Errorf("no VmRSS in /proc/%d/status", d.cmd.Process.Pid)
	}
	return rss, anon, sc.Err()
}
