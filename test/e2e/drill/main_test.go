// Package drill_test runs whole drills on the local cluster with the real
// drillerd binary: `drillerd serve` reconciles, `drillerd run` starts a
// drill and reports, and the tests check what an SRE would: the verdict and
// its reason, the timings against the emulator's ground truth, and that no
// sandbox is left and no source object was touched.
package drill_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/drillerd/drillerd/test/fixture"
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
	version := fixture.DescribeVersion(root, "e2e")
	if err := fixture.BuildDrillerd(root, drillerd, nil, "-ldflags", "-X main.version="+version); err != nil {
		return nil, err
	}
	if err := fixture.InstallCRDs(info, root, drillerdIdentity.Namespace, 30*time.Second); err != nil {
		return nil, err
	}
	// drillerd runs as its own ServiceAccount, so that the audit log tells
	// its requests from the test's, the snapshot controller's and the node
	// emulator's (which all use the admin kubeconfig).
	kubeconfig := filepath.Join(dir, "drillerd.kubeconfig")
	if _, err := drillerdIdentity.Create(context.Background(), info, 48*time.Hour, kubeconfig); err != nil {
		return nil, fmt.Errorf("giving drillerd its own identity: %v", err)
	}
	daemon = newDrillerd("shared", kubeconfig, filepath.Join(dir, "drillerd.log"))
	if err := daemon.Start(); err != nil {
		return nil, err
	}
	return func() {
		daemon.Stop()
		if os.Getenv("DRILLERD_KEEP_CLUSTER_STATE") == "" {
			os.RemoveAll(dir)
		}
	}, nil
}

// daemon is the `drillerd serve` the tests share, as drillerdIdentity.
var daemon *fixture.Drillerd

// drillerdIdentity is the ServiceAccount `drillerd serve` runs as in these
// tests, bound to cluster-admin; the tests of deploy/ run it as deploy/'s
// ServiceAccount (serviceAccount).
var drillerdIdentity = fixture.Identity{Namespace: "drillerd-system", Name: "drillerd-e2e"}

// drillerdUsers are the users drillerd's requests come from in these tests.
var drillerdUsers = []string{drillerdIdentity.User(), serviceAccount}

// newDrillerd is a `drillerd serve` with the credentials in kubeconfig and
// these tests' flags, logging to logPath; it has its own addresses.
func newDrillerd(name, kubeconfig, logPath string, extra ...string) *fixture.Drillerd {
	flags := append([]string{"--log-format", "console", "--max-concurrent-drills", "4", "--namespace", "drillerd-system",
		// client-go's common timings rather than drillerd's (which ride out
		// a 45 s API server outage, test/e2e/faults): a drillerd killed here
		// is succeeded 15 s later, not a minute.
		"--leader-election-lease-duration=15s", "--leader-election-renew-deadline=10s", "--leader-election-retry-period=2s"}, extra...)
	return &fixture.Drillerd{Name: name, Binary: drillerd, Kubeconfig: kubeconfig, Health: "0", Flags: flags, LogPath: logPath}
}

// replaceDaemon stops the shared `drillerd serve` and starts one named
// name with the credentials in kubeconfig in its place until the test
// ends, when it stops that one and starts the shared one again.
func replaceDaemon(t *testing.T, name, kubeconfig string) *fixture.Drillerd {
	t.Helper()
	daemon.Stop()
	replacement := newDrillerd(name, kubeconfig, daemon.LogPath+"."+name)
	t.Cleanup(func() {
		replacement.Stop()
		if err := daemon.Start(); err != nil {
			t.Errorf("restarting drillerd: %v", err)
		}
	})
	if err := replacement.Start(); err != nil {
		t.Fatal(err)
	}
	return replacement
}

// restartDrillerd restarts `drillerd serve` with extra flags, and again
// without them when the test ends.
func restartDrillerd(t *testing.T, extra ...string) {
	t.Helper()
	saved := daemon.Flags
	daemon.Stop()
	daemon.Flags = append(slices.Clone(saved), extra...)
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		daemon.Stop()
		daemon.Flags = saved
		if err := daemon.Start(); err != nil {
			t.Errorf("restarting drillerd: %v", err)
		}
	})
}
