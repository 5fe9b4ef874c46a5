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
	"path/filepath"
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
	version = fixture.DescribeVersion(root, "bench")
	drillerd = filepath.Join(dir, "drillerd")
	if err := fixture.BuildDrillerd(root, drillerd, []string{"CGO_ENABLED=0"}, "-trimpath", "-ldflags", "-X main.version="+version); err != nil {
		return nil, err
	}
	if err := fixture.InstallCRDs(info, root, identity.Namespace, 60*time.Second); err != nil {
		return nil, err
	}
	kubeconfig := filepath.Join(dir, "drillerd.kubeconfig")
	if _, err := identity.Create(context.Background(), info, 24*time.Hour, kubeconfig); err != nil {
		return nil, fmt.Errorf("giving drillerd its own identity: %v", err)
	}
	daemon = &fixture.Drillerd{
		Name: "bench", Binary: drillerd, Kubeconfig: kubeconfig, API: "0", Health: "0",
		Flags:   []string{"--max-concurrent-drills", "4", "--namespace", identity.Namespace, "--leader-elect=false"},
		LogPath: filepath.Join(dir, "drillerd.log"),
	}
	if err := daemon.Start(); err != nil {
		return nil, err
	}
	return func() {
		daemon.Stop()
		if os.Getenv("BENCH_KEEP") == "" {
			os.RemoveAll(dir)
		}
	}, nil
}
