package localcluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/drillerd/drillerd/test/nodeemu"
	"github.com/drillerd/drillerd/test/nodeemu/lazyfs"
)

const (
	serviceClusterIPRange = "10.0.0.0/24"
	serviceClusterIP      = "10.0.0.1"
	// ServiceAccountIssuer is the issuer of the cluster's service-account tokens.
	ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"
	// DefaultNodeName is the name of the emulated node.
	DefaultNodeName = "node-1"
)

// Options configure Start.
type Options struct {
	// StateDir holds everything the cluster writes; it is wiped first.
	StateDir string
	// BinDir holds the control-plane binaries; empty means build (or find)
	// them with test/tools/build.sh.
	BinDir string
	// NodeName names the emulated node; default DefaultNodeName.
	NodeName string
	// Node passes fault knobs and defaults to the node emulator.
	Node nodeemu.Defaults
	// Progress receives one line per start-up step; nil discards them.
	Progress io.Writer
}

// Info describes a running cluster; it is written to cluster.json.
type Info struct {
	PID           int    `json:"pid"`
	StateDir      string `json:"stateDir"`
	Kubeconfig    string `json:"kubeconfig"`
	APIServerURL  string `json:"apiServerURL"`
	EtcdURL       string `json:"etcdURL"`
	NodeName      string `json:"nodeName"`
	AuditLog      string `json:"auditLog"`
	GroundTruth   string `json:"groundTruth"`
	CSIStore      string `json:"csiStore"`
	KubectlBinary string `json:"kubectl"`
	StartedAt     string `json:"startedAt"`
	// ControlSocket is where StopComponent and StartComponent reach the
	// process that runs the cluster; empty when it has none.
	ControlSocket string `json:"controlSocket,omitempty"`
}

// Cluster is a running local cluster.
type Cluster struct {
	Info
	mu        sync.Mutex // processes
	processes []*process
	// ready tells, by component name, whether a (re)started component
	// serves.
	ready    map[string]func(context.Context) bool
	control  io.Closer // the control socket's server
	stopNode context.CancelFunc
	nodeDone chan error
	stopOnce sync.Once
}

// Files of the process that runs a cluster in the background; a fresh
// start keeps them.
const (
	ServeLog = "localcluster.log"
	PIDFile  = "localcluster.pid"
)

// InfoFile is the name of the file, inside the state directory, that
// describes a running cluster.
const InfoFile = "cluster.json"

// RestConfig returns an admin client configuration for the cluster.
func (i Info) RestConfig() (*rest.Config, error) {
	return clientcmd.BuildConfigFromFlags("", i.Kubeconfig)
}

// Start brings up a fresh cluster in opts.StateDir and returns once the node
// is Ready, the default service account exists and the snapshot API is
// served. On error everything started so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.StateDir == "" {
		return nil, errors.New("localcluster: Options.StateDir is required")
	}
	if opts.NodeName == "" {
		opts.NodeName = DefaultNodeName
	}
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	step := func(format string, args ...any) { fmt.Fprintf(progress, "localcluster: "+format+"\n", args...) }
	began := time.Now()

	state, err := filepath.Abs(opts.StateDir)
	if err != nil {
		return nil, err
	}
	if err := resetStateDir(state); err != nil {
		return nil, err
	}
	binDir := opts.BinDir
	if binDir == "" {
		step("building control-plane binaries (cached after the first time)")
		if binDir, err = BuildBinaries(ctx, progress); err != nil {
			return nil, err
		}
	}
	crdDir, err := snapshotCRDDir(ctx)
	if err != nil {
		return nil, err
	}

	logs := filepath.Join(state, "logs")
	for _, d := range []string{logs, filepath.Join(state, "etcd"), filepath.Join(state, "node")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	p, err := newPKI(filepath.Join(state, "pki"), opts.NodeName, adminIdentity, controllerIdentity, schedulerIdentity, kubeletClientIdentity)
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(6)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort, kcmPort, schedPort, snapPort := ports[0], ports[1], ports[2], ports[3], ports[4], ports[5]

	c = &Cluster{Info: Info{
		PID:           os.Getpid(),
		StateDir:      state,
		Kubeconfig:    filepath.Join(state, "kubeconfig"),
		APIServerURL:  fmt.Sprintf("https://127.0.0.1:%d", apiPort),
		EtcdURL:       fmt.Sprintf("http://127.0.0.1:%d", etcdClient),
		NodeName:      opts.NodeName,
		AuditLog:      filepath.Join(logs, "audit.log"),
		GroundTruth:   filepath.Join(state, "node", nodeemu.GroundTruthDir),
		CSIStore:      filepath.Join(state, "node", nodeemu.CSIStoreDir),
		KubectlBinary: filepath.Join(binDir, "kubectl"),
	}}
	defer func() {
		if err != nil {
			_ = c.Stop()
			c = nil
		}
	}()

	kubeconfigs := map[string]identity{"kubeconfig": adminIdentity, "kube-controller-manager.kubeconfig": controllerIdentity, "kube-scheduler.kubeconfig": schedulerIdentity}
	for file, id := range kubeconfigs {
		if err := writeKubeconfig(filepath.Join(state, file), c.APIServerURL, p, id); err != nil {
			return c, err
		}
	}

	step("starting etcd on %s", c.EtcdURL)
	if err := c.start(logs, Etcd, filepath.Join(binDir, "etcd"),
		"--name=default",
		"--data-dir="+filepath.Join(state, "etcd"),
		"--listen-client-urls="+c.EtcdURL,
		"--advertise-client-urls="+c.EtcdURL,
		fmt.Sprintf("--listen-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-advertise-peer-urls=http://127.0.0.1:%d", etcdPeer),
		fmt.Sprintf("--initial-cluster=default=http://127.0.0.1:%d", etcdPeer),
		"--listen-metrics-urls=",
		"--unsafe-no-fsync",
		"--log-level=warn",
	); err != nil {
		return c, err
	}

	auditPolicy := filepath.Join(state, "audit-policy.yaml")
	if err := os.WriteFile(auditPolicy, []byte(auditPolicyYAML), 0o644); err != nil {
		return c, err
	}
	step("starting kube-apiserver on %s", c.APIServerURL)
	if err := c.start(logs, KubeAPIServer, filepath.Join(binDir, "kube-apiserver"),
		"--etcd-servers="+c.EtcdURL,
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// Loopback cannot back the kubernetes Service; nothing here routes to it.
		"--endpoint-reconciler-type=none",
		fmt.Sprintf("--secure-port=%d", apiPort),
		"--cert-dir="+filepath.Join(state, "pki"),
		"--tls-cert-file="+p.path("apiserver.crt"),
		"--tls-private-key-file="+p.path("apiserver.key"),
		"--client-ca-file="+p.path("ca.crt"),
		// Kubelets (pods/log, exec): reached at their InternalIP, their
		// serving certificate verified against the cluster CA, the API
		// server authenticated by its own client certificate.
		"--kubelet-client-certificate="+p.path(kubeletClientIdentity.file+".crt"),
		"--kubelet-client-key="+p.path(kubeletClientIdentity.file+".key"),
		"--kubelet-certificate-authority="+p.path("ca.crt"),
		"--kubelet-preferred-address-types=InternalIP",
		"--service-account-issuer="+ServiceAccountIssuer,
		"--service-account-key-file="+p.path("sa.pub"),
		"--service-account-signing-key-file="+p.path("sa.key"),
		"--service-cluster-ip-range="+serviceClusterIPRange,
		"--authorization-mode=Node,RBAC",
		"--allow-privileged=true",
		"--audit-policy-file="+auditPolicy,
		"--audit-log-path="+c.AuditLog,
		"--audit-log-format=json",
		"--audit-log-maxsize=200",
		"--profiling=false",
		"--v=1",
	); err != nil {
		return c, err
	}

	admin, err := c.RestConfig()
	if err != nil {
		return c, err
	}
	client, err := kubernetes.NewForConfig(admin)
	if err != nil {
		return c, err
	}
	c.ready = map[string]func(context.Context) bool{
		KubeAPIServer: func(ctx context.Context) bool {
			body, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
			return err == nil && string(body) == "ok"
		},
		KubeControllerManager: accepting(kcmPort),
		KubeScheduler:         accepting(schedPort),
		SnapshotController:    accepting(snapPort),
	}
	if err := c.waitFor(ctx, 90*time.Second, "kube-apiserver to be ready", func(ctx context.Context) (bool, error) {
		return c.ready[KubeAPIServer](ctx), nil
	}); err != nil {
		return c, err
	}

	step("installing the snapshot CRDs from %s", crdDir)
	if err := installCRDs(ctx, admin, crdDir); err != nil {
		return c, err
	}

	step("starting kube-controller-manager, kube-scheduler and snapshot-controller")
	if err := c.start(logs, KubeControllerManager, filepath.Join(binDir, "kube-controller-manager"),
		"--kubeconfig="+filepath.Join(state, "kube-controller-manager.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(state, "kube-controller-manager.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(state, "kube-controller-manager.kubeconfig"),
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", kcmPort),
		"--leader-elect=false",
		"--use-service-account-credentials=true",
		"--service-account-private-key-file="+p.path("sa.key"),
		"--root-ca-file="+p.path("ca.crt"),
		"--cluster-signing-cert-file="+p.path("ca.crt"),
		"--cluster-signing-key-file="+p.path("ca.key"),
		"--cluster-name=localcluster",
		"--controllers=*",
		"--v=1",
	); err != nil {
		return c, err
	}
	if err := c.start(logs, KubeScheduler, filepath.Join(binDir, "kube-scheduler"),
		"--kubeconfig="+filepath.Join(state, "kube-scheduler.kubeconfig"),
		"--authentication-kubeconfig="+filepath.Join(state, "kube-scheduler.kubeconfig"),
		"--authorization-kubeconfig="+filepath.Join(state, "kube-scheduler.kubeconfig"),
		"--bind-address=127.0.0.1",
		fmt.Sprintf("--secure-port=%d", schedPort),
		"--leader-elect=false",
		"--v=1",
	); err != nil {
		return c, err
	}
	if err := c.start(logs, SnapshotController, filepath.Join(binDir, "snapshot-controller"),
		"--kubeconfig="+c.Kubeconfig,
		"--leader-election=false",
		fmt.Sprintf("--http-endpoint=127.0.0.1:%d", snapPort),
		"--v=2",
	); err != nil {
		return c, err
	}

	step("installing storage classes, the snapshot class and the CSI driver %s", nodeemu.DriverName)
	if err := installStorage(ctx, admin); err != nil {
		return c, err
	}
	if err := allowKubeletAPI(ctx, client, kubeletClientIdentity.cn); err != nil {
		return c, err
	}

	step("starting the node emulator (%s)", opts.NodeName)
	emu, err := nodeemu.New(nodeemu.Config{
		RestConfig: admin,
		NodeName:   opts.NodeName,
		StateDir:   filepath.Join(state, "node"),
		LogPath:    filepath.Join(logs, "nodeemu.log"),
		Defaults:   opts.Node,
		Serving: nodeemu.KubeletServing{
			CertFile: p.path("kubelet.crt"), KeyFile: p.path("kubelet.key"), ClientCAFile: p.path("ca.crt"),
		},
	})
	if err != nil {
		return c, err
	}
	nodeCtx, cancel := context.WithCancel(context.Background())
	c.stopNode = cancel
	c.nodeDone = make(chan error, 1)
	go func() { c.nodeDone <- emu.Run(nodeCtx) }()

	if err := c.waitFor(ctx, 60*time.Second, "the node to be Ready and the default service account to exist", func(ctx context.Context) (bool, error) {
		return clusterUsable(ctx, client, opts.NodeName)
	}); err != nil {
		return c, err
	}

	if err := c.serveControl(); err != nil {
		step("no component control (StopComponent, StartComponent): %v", err)
	}
	c.StartedAt = time.Now().UTC().Format(time.RFC3339)
	if err := writeInfo(c.Info); err != nil {
		return c, err
	}
	step("ready in %.1fs", time.Since(began).Seconds())
	return c, nil
}

// Stop stops the node emulator (and with it every database process) and then
// the control plane, newest first. It is safe to call more than once.
func (c *Cluster) Stop() error {
	var errs []error
	c.stopOnce.Do(func() {
		_ = os.Remove(filepath.Join(c.StateDir, InfoFile))
		if c.control != nil {
			_ = c.control.Close()
		}
		if c.stopNode != nil {
			c.stopNode()
			select {
			case err := <-c.nodeDone:
				if err != nil && !errors.Is(err, context.Canceled) {
					errs = append(errs, err)
				}
			case <-time.After(60 * time.Second):
				errs = append(errs, errors.New("node emulator did not stop within 60s"))
			}
		}
		c.mu.Lock()
		defer c.mu.Unlock()
		for i := len(c.processes) - 1; i >= 0; i-- {
			if err := c.processes[i].stop(15 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	})
	return errors.Join(errs...)
}

// Failed returns a non-nil error once a control-plane process has exited
// on its own or the node emulator has stopped.
func (c *Cluster) Failed() error {
	c.mu.Lock()
	for _, p := range c.processes {
		if err := p.exited(); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	c.mu.Unlock()
	select {
	case err := <-c.nodeDone:
		c.nodeDone <- err
		return fmt.Errorf("node emulator stopped: %v (see %s)", err, filepath.Join(c.StateDir, "logs", "nodeemu.log"))
	default:
		return nil
	}
}

func (c *Cluster) start(logDir, name, binary string, args ...string) error {
	p, err := startProcess(logDir, name, binary, args...)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.processes = append(c.processes, p)
	c.mu.Unlock()
	return nil
}

// waitFor polls cond until it holds, a process dies, or timeout passes.
func (c *Cluster) waitFor(ctx context.Context, timeout time.Duration, what string, cond func(context.Context) (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := c.Failed(); err != nil {
			return fmt.Errorf("while waiting for %s: %w", what, err)
		}
		ok, err := cond(ctx)
		if err != nil {
			return fmt.Errorf("while waiting for %s: %w", what, err)
		}
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out after %s waiting for %s (logs in %s)", timeout, what, filepath.Join(c.StateDir, "logs"))
		case <-tick.C:
		}
	}
}

// resetStateDir empties dir, refusing to touch a directory that holds a
// running cluster.
func resetStateDir(dir string) error {
	if info, err := ReadInfo(dir); err == nil && processAlive(info.PID) {
		return fmt.Errorf("a cluster (pid %d) is already running in %s; stop it first (make cluster-down)", info.PID, dir)
	}
	// The lazy volumes of a cluster that did not stop cleanly are mounts
	// no process serves: detach them, or nothing below them can be removed.
	if _, err := lazyfs.UnmountBelow(dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	for _, entry := range entries {
		if entry.Name() == ServeLog || entry.Name() == PIDFile {
			continue // written by the process that runs this cluster
		}
		if err := os.RemoveAll(filepath.Join(dir, entry.Name())); err != nil {
			return fmt.Errorf("while cleaning %s: %w", dir, err)
		}
	}
	// 0755: database processes run as an unprivileged user and must reach
	// their volumes below this directory.
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chmod(dir, 0o755)
}

func writeInfo(info Info) error {
	data, err := json.MarshalIndent(info, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(info.StateDir, InfoFile+".tmp")
	if err := os.WriteFile(tmp, append(data, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(info.StateDir, InfoFile))
}

// ReadInfo reads the description of the cluster running in stateDir.
func ReadInfo(stateDir string) (Info, error) {
	var info Info
	data, err := os.ReadFile(filepath.Join(stateDir, InfoFile))
	if err != nil {
		return info, err
	}
	if err := json.Unmarshal(data, &info); err != nil {
		return info, fmt.Errorf("while reading %s: %w", filepath.Join(stateDir, InfoFile), err)
	}
	return info, nil
}

func writeKubeconfig(path, server string, p *pki, id identity) error {
	ca, err := os.ReadFile(p.path("ca.crt"))
	if err != nil {
		return err
	}
	cert, err := os.ReadFile(p.path(id.file + ".crt"))
	if err != nil {
		return err
	}
	key, err := os.ReadFile(p.path(id.file + ".key"))
	if err != nil {
		return err
	}
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["localcluster"] = &clientcmdapi.Cluster{Server: server, CertificateAuthorityData: ca}
	cfg.AuthInfos[id.cn] = &clientcmdapi.AuthInfo{ClientCertificateData: cert, ClientKeyData: key}
	cfg.Contexts["localcluster"] = &clientcmdapi.Context{Cluster: "localcluster", AuthInfo: id.cn, Namespace: "default"}
	cfg.CurrentContext = "localcluster"
	return clientcmd.WriteToFile(*cfg, path)
}

func freePorts(n int) ([]int, error) {
	var ports []int
	var listeners []net.Listener
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("while finding a free port: %w", err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// RepoRoot returns the directory of drillerd's go.mod, found by walking up
// from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
		if err == nil && strings.HasPrefix(string(data), "module github.com/drillerd/drillerd\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("localcluster: not inside the drillerd repository")
		}
		dir = parent
	}
}

// BuildBinaries runs test/tools/build.sh and returns the directory that holds
// the control-plane binaries.
func BuildBinaries(ctx context.Context, progress io.Writer) (string, error) {
	if dir := os.Getenv("DRILLERD_BIN_DIR"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, filepath.Join(root, "test", "tools", "build.sh"))
	cmd.Stderr = progress
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("while building the control-plane binaries (test/tools/build.sh): %w", err)
	}
	return strings.TrimSpace(string(out)), nil
}

// snapshotCRDDir finds config/crd of the external-snapshotter client module
// that go.mod pins.
func snapshotCRDDir(ctx context.Context) (string, error) {
	if dir := os.Getenv("DRILLERD_SNAPSHOT_CRDS"); dir != "" {
		return dir, nil
	}
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "list", "-m", "-f", "{{.Dir}}", "github.com/kubernetes-csi/external-snapshotter/client/v8")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("while locating the external-snapshotter client module (go mod download): %w", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "config", "crd"), nil
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, err := os.Stat("/proc/" + strconv.Itoa(pid))
	return err == nil
}

const auditPolicyYAML = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
- level: None
  nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version"]
- level: RequestResponse
  verbs: ["update", "patch"]
  resources:
  - group: snapshot.storage.k8s.io
    resources: ["volumesnapshots/status"]
- level: Metadata
`
