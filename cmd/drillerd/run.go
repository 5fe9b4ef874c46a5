package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/report"
)

// runDrill creates a DrillRun, waits for its verdict and prints the report.
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
		fmt.Fprintf(stdout, "drillrun %s/%s created\n", ns, run.Name)
		return exitSucceeded
	}
	if cfg.Output == "text" {
		fmt.Fprintf(stderr, "drillrun %s/%s created; waiting for the verdict\n", ns, run.Name)
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	done, err := waitDone(ctx, c, run)
	if err != nil {
		return fail("while waiting for %s/%s: %v", ns, run.Name, err)
	}
	if cfg.Output == "json" {
		// As the HTTP API returns it: typed, without server bookkeeping.
		done.APIVersion, done.Kind = drillsv1.GroupVersion.String(), "DrillRun"
		done.ManagedFields = nil
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(done); err != nil {
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

// waitDone watches the run until it is Done.
func waitDone(ctx context.Context, c client.WithWatch, run *drillsv1.DrillRun) (*drillsv1.DrillRun, error) {
	for {
		current := &drillsv1.DrillRun{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(run), current); err != nil {
			return nil, err
		}
		if current.Status.Phase == drillsv1.PhaseDone {
			return current, nil
		}
		list := &drillsv1.DrillRunList{}
		w, err := c.Watch(ctx, list, client.InNamespace(run.Namespace),
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", run.Name)},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: current.ResourceVersion}})
		if err != nil {
			return nil, err
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if r, ok := ev.Object.(*drillsv1.DrillRun); ok && r.Status.Phase == drillsv1.PhaseDone {
				w.Stop()
				return r, nil
			}
		}
		w.Stop()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
	}
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
