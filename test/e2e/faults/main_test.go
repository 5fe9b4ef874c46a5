// Package faults_test drills through faults, with the real drillerd binary
// on the local cluster: drillerd killed (SIGKILL) at every phase boundary
// and inside every phase, its leader killed among two replicas, the API
// server and the snapshot controller stopped, a database that crashes, a
// restore too slow for its timeout, a snapshot that fails, and many drills
// asked for at once. Each scenario checks what an SRE would: the verdict
// and its reason, that nothing of a sandbox outlives its run, that the
// next drill passes, and that no source object was touched.
//
// Exact instants come from hooks, never from sleeps: drillerd talks to the
// API server through a gate (package apigate) that holds a chosen request
// until drillerd is killed; phases that wait are held open by the node
// emulator's fault knobs, set on drillerd's sandbox pods by a
// MutatingAdmissionPolicy as a cluster's own admission would.
//
// The package stops components of the cluster it runs on: make test runs
// it on a local cluster of its own, beside the other packages.
package faults_test

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/drillerd/drillerd/test/apigate"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/localcluster"
)

var (
	cluster localcluster.Info
	// drillerdBinary is the drillerd built for these tests.
	drillerdBinary string
	// workDir holds the binary, kubeconfigs and drillerd's logs.
	workDir string
	// gate stands between drillerd and the API server when drillerd uses
	// gatedKubeconfig.
	gate *apigate.Gate
	// directKubeconfig and gatedKubeconfig are drillerd's credentials, to
	// the API server itself and through the gate.
	directKubeconfig, gatedKubeconfig string
)

// drillerdNamespace is drillerd's own namespace (its Lease, the namespace
// sandbox NetworkPolicies admit).
const drillerdNamespace = "drillerd-system"

// drillerdIdentity is the ServiceAccount drillerd runs as here, bound to
// cluster-admin, so that the audit log tells its requests from the
// test's, the controllers' and the node emulator's.
var drillerdIdentity = fixture.Identity{Namespace: drillerdNamespace, Name: "drillerd-faults"}

// drillerdUser is the user drillerd's requests come from.
var drillerdUser = drillerdIdentity.User()

func TestMain(m *testing.M) {
	ctrllog.SetLogger(logr.Discard()) // the tests' controller-runtime clients log nothing
	code := localcluster.TestMain(m, &cluster, setUp)
	n := drillsCreated.Load()
	if n > 0 {
		fmt.Fprintf(os.Stderr, "faults: %d drills; the sources of %d production databases compared after their last drill\n", n, productionsFinished.Load())
	}
	// A whole soak shows that sources come through many drills and their
	// faults.
	if os.Getenv(soakEnv) != "" && flag.Lookup("test.run").Value.String() == "" && code == 0 && n < soakDrills {
		fmt.Fprintf(os.Stderr, "faults: the soak ran %d drills, want at least %d\n", n, soakDrills)
		code = 1
	}
	os.Exit(code)
}

// soakDrills is the fewest drills a soak (make soak) must run.
const soakDrills = 50

// setUp builds drillerd, installs the CRDs, gives drillerd its identity and
// starts the gate. Each test starts the drillerd processes it needs.
func setUp(info localcluster.Info) (func(), error) {
	root, err := localcluster.RepoRoot()
	if err != nil {
		return nil, err
	}
	if workDir, err = os.MkdirTemp("", "drillerd-faults-"); err != nil {
		return nil, err
	}
	drillerdBinary = filepath.Join(workDir, "drillerd")
	if err := fixture.BuildDrillerd(root, drillerdBinary, nil); err != nil {
		return nil, err
	}
	if err := fixture.InstallCRDs(info, root, drillerdNamespace, 30*time.Second); err != nil {
		return nil, err
	}
	directKubeconfig = filepath.Join(workDir, "drillerd.kubeconfig")
	token, err := drillerdIdentity.Create(context.Background(), info, 48*time.Hour, directKubeconfig)
	if err != nil {
		return nil, fmt.Errorf("giving drillerd its own identity: %v", err)
	}
	cfg, err := info.RestConfig()
	if err != nil {
		return nil, err
	}
	if gate, err = apigate.Start(cfg); err != nil {
		return nil, err
	}
	gatedKubeconfig = filepath.Join(workDir, "drillerd-gated.kubeconfig")
	if err := gate.WriteKubeconfig(gatedKubeconfig, token); err != nil {
		return nil, err
	}
	return func() {
		gate.Close()
		if os.Getenv("DRILLERD_KEEP_CLUSTER_STATE") == "" {
			os.RemoveAll(workDir)
		} else {
			fmt.Fprintf(os.Stderr, "drillerd's logs are kept in %s\n", workDir)
		}
	}, nil
}
