package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/follow"
	"github.com/drillerd/drillerd/internal/report"
)

// runDrill creates a DrillRun, waits for its verdict and prints the report.
// While it waits, it tells on stderr each phase the run enters and, when
// the run does not start, why it may not.
func runDrill(ctx context.Context, cfg RunConfig, stdout, stderr io.Writer) int {
	fail := func(format string, args ...any) int {
		fmt.Fprintf(stderr, "drillerd run: "+format+"\n", args...)
		return exitError
	}
	restCfg, err := restConfig(cfg.Kubeconfig, "run")
	if err != nil {
		return fail("while loading the kubeconfig: %v", err)
	}
	scheme, err := newScheme()
	if err != nil {
		return fail("%v", err)
	}
	c, err := client.NewWithWatch(restCfg, client.Options{Scheme: scheme})
	if err != nil {
		return fail("%v", err)
	}
	ns := cfg.Namespace
	if ns == "" {
		ns = contextNamespace(cfg.Kubeconfig)
	}
	drill := &drillsv1.RestoreDrill{}
	if err := c.Get(ctx, client.ObjectKey{Namespace: ns, Name: cfg.Drill}, drill); err != nil {
		return fail("RestoreDrill %s/%s: %v", ns, cfg.Drill, err)
	}
	run := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, GenerateName: generateNamePrefix(cfg.Drill, 50) + "-cli-", Labels: map[string]string{drillsv1.LabelDrill: cfg.Drill}},
		Spec:       drillsv1.DrillRunSpec{DrillName: cfg.Drill, Trigger: drillsv1.TriggerCLI, SnapshotName: cfg.Snapshot},
	}
	if err := c.Create(ctx, run); err != nil {
		return fail("while creating the DrillRun: %v", err)
	}
	if !cfg.Wait {
		if cfg.Output == "json" {
			if err := printJSON(stdout, run); err != nil {
				return fail("%v", err)
			}
		} else {
			fmt.Fprintf(stdout, "drillrun %s/%s created\n", ns, run.Name)
		}
		return exitSucceeded
	}
	fmt.Fprintf(stderr, "drillrun %s/%s created; waiting for the verdict\n", ns, run.Name)
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	follower := &follow.Follower{
		Client: c, Clock: clock.RealClock{}, Out: stderr, ExplainAfter: cfg.ExplainPendingAfter,
		Lease: types.NamespacedName{Namespace: cfg.DrillerdNamespace, Name: cfg.LeaderElectionID},
	}
	done, err := follower.Wait(ctx, run)
	if errors.Is(err, context.DeadlineExceeded) {
		return fail("no verdict for %s/%s within --timeout %s; the run goes on: kubectl -n %s get drillrun %s", ns, run.Name, cfg.Timeout, ns, run.Name)
	}
	if err != nil {
		return fail("while waiting for %s/%s: %v", ns, run.Name, err)
	}
	if cfg.Output == "json" {
		if err := printJSON(stdout, done); err != nil {
			return fail("%v", err)
		}
	} else {
		report.Text(stdout, drill, done)
	}
	switch done.Status.Result {
	case drillsv1.ResultSucceeded:
		return exitSucceeded
	case drillsv1.ResultFailed:
		return exitFailed
	}
	return exitError
}

// printJSON writes run as the HTTP API returns it: typed, without server
// bookkeeping.
func printJSON(w io.Writer, run *drillsv1.DrillRun) error {
	out := run.DeepCopy()
	out.APIVersion, out.Kind = drillsv1.GroupVersion.String(), "DrillRun"
	out.ManagedFields = nil
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// generateNamePrefix returns the start of a run's GenerateName for drill:
// its name lower-cased and cut to at most n bytes, so that the rest of the
// generated name still fits.
func generateNamePrefix(drill string, n int) string {
	drill = strings.ToLower(drill)
	if len(drill) > n {
		return drill[:n]
	}
	return drill
}
