//go:build bench

// Package bench measures drillerd on the local cluster: `make bench` runs
// TestBench, which writes bench/results.json and prints a table;
// docs/benchmarks.md says how each figure is made. It is not part of make
// test: it takes half an hour or more and its figures are measurements,
// not assertions.
package bench

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/localcluster"
)

var (
	cluster  localcluster.Info
	drillerd string // the binary under test
	version  string // its version
	daemon   *fixture.Drillerd
	root     string // the repository
)

func TestMain(m *testing.M) {
	os.Exit(localcluster.TestMain(m, &cluster, setUp))
}

// identity is the ServiceAccount drillerd serve runs as, so that the audit
// log tells its requests from the benchmark's.
var identity = fixture.Identity{Namespace: "drillerd-system", Name: "drillerd-bench"}

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
	cfg, err := info.RestConfig()
	if err != nil {
		return nil, err
	}
	token, err := identity.Create(context.Background(), cfg, 24*time.Hour)
	if err != nil {
		return nil, fmt.Errorf("giving drillerd its own identity: %v", err)
	}
	kubeconfig := filepath.Join(dir, "drillerd.kubeconfig")
	if err := fixture.WriteTokenKubeconfig(info.Kubeconfig, kubeconfig, token, identity.Namespace); err != nil {
		return nil, err
	}
	daemon = &fixture.Drillerd{
		Name: "bench", Binary: drillerd, Kubeconfig: kubeconfig, API: "0", Health: "0",
		Flags:   []string{"--max-concurrent-drills", "4", "--namespace", identity.Namespace, "--leader-elect=false"},
		LogPath: filepath.Join(dir, "drillerd.log"),
	}
	if err := daemon.Start(); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "drillerd serve: pid %d, log %s\n", daemon.PID(), daemon.LogPath)
	return func() {
		daemon.Stop()
		if os.Getenv("BENCH_KEEP") == "" {
			os.RemoveAll(dir)
		}
	}, nil
}
