// Package drill_test runs whole drills on the local cluster with the real
// drillerd binary: `drillerd serve` reconciles, `drillerd run` starts a
// drill and reports, and the tests check what an SRE would: the verdict and
// its reason, the timings against the emulator's ground truth, and that no
// sandbox is left and no source object was touched.
package drill_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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
	build := exec.Command("go", "build", "-o", drillerd, "./cmd/drillerd")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building drillerd: %v\n%s", err, out)
	}
	apply := exec.Command(info.KubectlBinary, "--kubeconfig", info.Kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", filepath.Join(root, "deploy", "crds"))
	if out, err := apply.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("installing CRDs: %v\n%s", err, out)
	}
	wait := exec.Command(info.KubectlBinary, "--kubeconfig", info.Kubeconfig, "wait", "--for=condition=Established", "--timeout=30s",
		"crd/restoredrills.drills.drillerd.dev", "crd/drillruns.drills.drillerd.dev")
	if out, err := wait.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("waiting for CRDs: %v\n%s", err, out)
	}
	logPath := filepath.Join(dir, "drillerd.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	serve := exec.Command(drillerd, "serve", "--kubeconfig", info.Kubeconfig, "--metrics-bind-address", "0",
		"--health-probe-bind-address", "0", "--log-format", "console", "--max-concurrent-drills", "4", "--namespace", "drillerd-system")
	serve.Stdout, serve.Stderr = logFile, logFile
	if err := serve.Start(); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "drillerd serve: pid %d, log %s\n", serve.Process.Pid, logPath)
	return func() {
		_ = serve.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = serve.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = serve.Process.Kill()
		}
		logFile.Close()
		if os.Getenv("DRILLERD_KEEP_CLUSTER_STATE") == "" {
			os.RemoveAll(dir)
		}
	}, nil
}
