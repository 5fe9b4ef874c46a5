package localcluster

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"k8s.io/client-go/kubernetes"
)

// EnvStateDir names the state directory of a running cluster that tests
// must use instead of starting their own.
const EnvStateDir = "DRILLERD_LOCALCLUSTER"

// DefaultStateDir is where `make cluster-up` keeps its cluster.
func DefaultStateDir() (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	return filepath.Join(root, ".localcluster"), nil
}

// Running returns the cluster running in stateDir, if it answers.
func Running(ctx context.Context, stateDir string) (Info, error) {
	info, err := ReadInfo(stateDir)
	if err != nil {
		return info, fmt.Errorf("no cluster in %s: %w", stateDir, err)
	}
	if !processAlive(info.PID) {
		return info, fmt.Errorf("the cluster in %s (pid %d) is not running", stateDir, info.PID)
	}
	cfg, err := info.RestConfig()
	if err != nil {
		return info, err
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return info, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := client.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx); err != nil {
		return info, fmt.Errorf("the cluster in %s does not answer: %w", stateDir, err)
	}
	return info, nil
}

// Acquire gives a test binary a cluster: the one named by $DRILLERD_LOCALCLUSTER,
// else the one `make cluster-up` runs, else a private one that release stops
// and removes.
func Acquire(ctx context.Context, progress io.Writer) (info Info, release func(), err error) {
	if dir := os.Getenv(EnvStateDir); dir != "" {
		info, err := Running(ctx, dir)
		return info, func() {}, err
	}
	if dir, err := DefaultStateDir(); err == nil {
		if info, err := Running(ctx, dir); err == nil {
			fmt.Fprintf(progress, "localcluster: using the running cluster in %s\n", dir)
			return info, func() {}, nil
		}
	}
	dir, err := os.MkdirTemp("", "localcluster-")
	if err != nil {
		return info, nil, err
	}
	c, err := Start(ctx, Options{StateDir: dir, Progress: progress})
	if err != nil {
		return info, nil, err
	}
	return c.Info, func() {
		if err := c.Stop(); err != nil {
			fmt.Fprintf(progress, "localcluster: stopping: %v\n", err)
		}
		if os.Getenv("DRILLERD_KEEP_CLUSTER_STATE") == "" {
			_ = os.RemoveAll(dir)
		} else {
			fmt.Fprintf(progress, "localcluster: state kept in %s\n", dir)
		}
	}, nil
}

// TestMain runs m against a cluster from Acquire, stored in *cluster, and
// returns the exit code. Each setUp function runs once the cluster is there;
// the functions they return run after the tests. With -short it acquires
// nothing: end-to-end tests skip themselves then.
func TestMain(m *testing.M, cluster *Info, setUp ...func(Info) (func(), error)) int {
	flag.Parse()
	if testing.Short() {
		return m.Run()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	info, release, err := Acquire(ctx, os.Stderr)
	cancel()
	if err != nil {
		fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
		return 1
	}
	*cluster = info
	defer release()
	for _, f := range setUp {
		tearDown, err := f(info)
		if err != nil {
			fmt.Fprintf(os.Stderr, "setting up: %v\n", err)
			return 1
		}
		defer tearDown()
	}
	return m.Run()
}
