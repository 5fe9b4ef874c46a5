package drill_test

import (
	"context"
	"encoding/json"
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/test/fixture"
)

// runCommand runs drillerd with args until it exits or timeout passes, and
// returns its stdout, stderr and exit code (-1 when it had to be killed).
func runCommand(t *testing.T, timeout time.Duration, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, drillerd, args...)
	var out, errOut strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	var exitErr *exec.ExitError
	switch {
	case ctx.Err() != nil:
		t.Fatalf("drillerd %s did not exit within %s\nstderr: %s", strings.Join(args, " "), timeout, errOut.String())
	case errors.As(err, &exitErr):
		code = exitErr.ExitCode()
	case err != nil:
		t.Fatalf("drillerd %s: %v", strings.Join(args, " "), err)
	}
	return out.String(), errOut.String(), code
}

// noDrillerdServing: with no drillerd serving, `drillerd run` says why its
// run does not start (the leader Lease has no holder), `drillerd run
// --wait=false -o json` prints the DrillRun it created, and `drillerd
// serve` without its lease namespace stops at once saying what to do.
func (p *production) noDrillerdServing(t *testing.T) {
	d := p.newDrill("nobody-serves")
	if err := p.c.Create(p.env.Ctx, d.d); err != nil {
		t.Fatal(err)
	}
	daemon.Stop() // gracefully: it releases the leader Lease
	defer func() {
		// Nothing of this test may be drilled once drillerd is back.
		_ = p.c.DeleteAllOf(context.Background(), &drillsv1.DrillRun{}, client.InNamespace(p.ns), client.MatchingLabels{drillsv1.LabelDrill: d.d.Name})
		_ = p.c.Delete(context.Background(), d.d)
		if err := daemon.Start(); err != nil {
			t.Fatal(err)
		}
	}()

	stdout, stderr, code := runCommand(t, fixture.ShortTimeout, "run", "--kubeconfig", cluster.Kubeconfig, "-n", p.ns, d.d.Name, "--wait=false", "-o", "json")
	created := &drillsv1.DrillRun{}
	if err := json.Unmarshal([]byte(stdout), created); err != nil || code != 0 {
		t.Fatalf("drillerd run --wait=false -o json exited %d and printed no DrillRun (%v)\nstdout: %s\nstderr: %s", code, err, stdout, stderr)
	}
	if created.Kind != "DrillRun" || created.Namespace != p.ns || created.Spec.DrillName != d.d.Name || created.Spec.Trigger != drillsv1.TriggerCLI || created.UID == "" {
		t.Errorf("printed %s %s/%s of drill %s, trigger %s, uid %q; want the created DrillRun of %s", created.Kind, created.Namespace, created.Name,
			created.Spec.DrillName, created.Spec.Trigger, created.UID, d.d.Name)
	}
	if err := p.c.Get(p.env.Ctx, client.ObjectKeyFromObject(created), &drillsv1.DrillRun{}); err != nil {
		t.Errorf("the printed run %s is not in the cluster: %v", created.Name, err)
	}

	// The run waits for nobody; the command explains after a second and
	// gives up at its timeout.
	timeout := fixture.Scaled(10 * time.Second)
	_, stderr, code = runCommand(t, timeout+fixture.ShortTimeout, "run", "--kubeconfig", cluster.Kubeconfig, "-n", p.ns, d.d.Name,
		"--explain-pending-after", "1s", "--timeout", timeout.String())
	t.Logf("drillerd run with no drillerd serving exited %d:\n%s", code, stderr)
	for _, want := range []string{
		"waiting for drillerd to pick the run up",
		"no drillerd has picked the run up after 1.",
		"no drillerd holds the leader Lease drillerd-system/drillerd.drills.drillerd.dev: a drillerd that stopped released it at",
		"kubectl -n drillerd-system get pods,events",
	} {
		if !strings.Contains(stderr, want) {
			t.Errorf("drillerd run's stderr lacks %q", want)
		}
	}
	if strings.Count(stderr, "no drillerd has picked the run up") != 1 {
		t.Errorf("the stall is explained %d times, want once", strings.Count(stderr, "no drillerd has picked the run up"))
	}
	if code != 2 || !strings.Contains(stderr, "within --timeout "+timeout.String()) {
		t.Errorf("drillerd run exited %d, want 2 after its --timeout", code)
	}

	// serve stops at once when its Lease cannot be made.
	missing := "drillerd-absent-" + p.ns
	_, stderr, code = runCommand(t, fixture.ShortTimeout, "serve", "--kubeconfig", cluster.Kubeconfig, "--namespace", missing,
		"--metrics-bind-address", "0", "--health-probe-bind-address", "0", "--api-bind-address", "0")
	want := "drillerd serve: --namespace=" + missing + ": namespace " + missing + " does not exist"
	if code == 0 || !strings.Contains(stderr, want) || !strings.Contains(stderr, "kubectl create namespace "+missing) || !strings.Contains(stderr, "--leader-elect=false") {
		t.Errorf("drillerd serve without its namespace exited %d with\n%s\nwant non-zero and %q, how to create it and --leader-elect=false", code, stderr, want)
	}
	if _, err := p.env.Client.CoreV1().Namespaces().Get(p.env.Ctx, missing, metav1.GetOptions{}); err == nil {
		t.Errorf("namespace %s exists: the dry run created it", missing)
	}
}
