// Package monitoring_test checks drillerd's alert rules and dashboard
// (deploy/monitoring): the rules pass promtool's checks and the unit tests
// in alerts_test.yaml, and every drillerd metric the rules and the dashboard
// query is one drillerd exposes.
package monitoring_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/utils/clock"
	"sigs.k8s.io/yaml"

	"github.com/drillerd/drillerd/internal/metrics"
	"github.com/drillerd/drillerd/test/fixture"
)

const (
	ruleFile      = "../../deploy/monitoring/prometheusrule.yaml"
	dashboardFile = "../../deploy/monitoring/dashboard.json"
)

// promtool finds promtool, which `make deps` installs (Debian package
// prometheus); a missing promtool fails the test rather than skipping it.
func promtool(t *testing.T) string {
	t.Helper()
	path, err := exec.LookPath("promtool")
	if err != nil {
		t.Fatalf("promtool not found (%v): install it with make deps (Debian package prometheus)", err)
	}
	return path
}

// ruleGroups returns spec.groups of the PrometheusRule as a rule file.
func ruleGroups(t *testing.T) []byte {
	t.Helper()
	rules, err := fixture.RuleFile(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

func TestAlertRules(t *testing.T) {
	tool := promtool(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), ruleGroups(t), 0o644); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "alerts_test.yaml"), tests, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{{"check", "rules", "rules.yaml"}, {"test", "rules", "alerts_test.yaml"}} {
		cmd := exec.Command(tool, args...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

func TestEveryAlertIsUnitTested(t *testing.T) {
	var groups struct {
		Groups []struct {
			Rules []struct {
				Alert       string            `json:"alert"`
				Labels      map[string]string `json:"labels"`
				Annotations map[string]string `json:"annotations"`
			} `json:"rules"`
		} `json:"groups"`
	}
	if err := yaml.Unmarshal(ruleGroups(t), &groups); err != nil {
		t.Fatal(err)
	}
	tests, err := os.ReadFile("alerts_test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			alerts = append(alerts, r.Alert)
			for _, key := range []string{"summary", "description", "runbook", "runbook_url"} {
				if r.Annotations[key] == "" {
					t.Errorf("alert %s has no %s annotation", r.Alert, key)
				}
			}
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("alert %s: severity %q, want critical or warning", r.Alert, s)
			}
			if !strings.Contains(string(tests), "alertname: "+r.Alert+"\n") {
				t.Errorf("alert %s has no promtool test in alerts_test.yaml", r.Alert)
			}
		}
	}
	// SandboxLeaked has two rules: a run past timeouts.teardown, and orphans the sweep has not removed.
	want := []string{"DrillErrored", "DrillFailed", "DrillNotSucceededRecently", "DrillerdDown", "NewestSnapshotTooOld", "RPOTargetMissed", "RTOTargetAtRisk", "RTOTargetMissed", "SandboxLeaked", "SandboxLeaked", "SnapshotsFailing"}
	sort.Strings(alerts)
	if strings.Join(alerts, ",") != strings.Join(want, ",") {
		t.Errorf("alerts %v, want %v", alerts, want)
	}
}

// TestQueriesUseExposedMetrics keeps the rules and the dashboard in step
// with the metrics drillerd exposes.
func TestQueriesUseExposedMetrics(t *testing.T) {
	exposed := exposedMetrics(t)
	rules := string(ruleGroups(t))
	panels, err := fixture.DashboardPanels(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	sources := map[string]string{ruleFile: rules}
	for _, p := range panels {
		for _, q := range p.Queries {
			if q == "" {
				t.Errorf("dashboard panel %q has a target without a query", p.Title)
			}
			sources[dashboardFile+": "+p.Title] += q + "\n"
		}
	}
	metricName := regexp.MustCompile(`drillerd_[a-z_]+`)
	for where, text := range sources {
		for _, name := range metricName.FindAllString(text, -1) {
			base := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(name, "_bucket"), "_sum"), "_count")
			if !exposed[name] && !exposed[base] {
				t.Errorf("%s queries %s, which drillerd does not expose", where, name)
			}
		}
	}
}

func exposedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	c := metrics.NewCollector(nil, clock.RealClock{}, logr.Discard())
	descs := make(chan *prometheus.Desc)
	go func() { c.Describe(descs); close(descs) }()
	names := map[string]bool{}
	fqName := regexp.MustCompile(`fqName: "([^"]+)"`)
	for d := range descs {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			t.Fatal(errors.New("cannot read a metric name from " + d.String()))
		}
		names[m[1]] = true
	}
	if len(names) < 10 {
		t.Fatalf("drillerd describes only %d metrics", len(names))
	}
	return names
}
