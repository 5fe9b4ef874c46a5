package monitoring_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/metrics"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/fixture"
)

// drillsWithHistory is the state of a cluster whose drills have run for a
// while: every status field the metrics read is set, and a run and its
// sandbox are in progress.
func drillsWithHistory(now time.Time) []client.Object {
	var h drillsv1.PhaseHistogram
	h.Observe(12)
	h.Observe(20)
	done := metav1.NewTime(now.Add(-time.Hour))
	var recent []drillsv1.RunPoint
	for i := range 10 {
		recent = append(recent, drillsv1.RunPoint{
			Name: fmt.Sprintf("orders-db-%d", i), Result: drillsv1.ResultSucceeded, CompletionTime: metav1.NewTime(done.Add(time.Duration(i-9) * 24 * time.Hour)),
			RTOSeconds: ptr.To(300 + 20*float64(i)), RPOSeconds: ptr.To(3600.0), DatabaseBytes: ptr.To[int64](40 << 30), ReadBytes: ptr.To[int64](38 << 30),
		})
	}
	orders := builder.ForDrill("shop", "orders-db").Source("data-orders-0").Schedule("0 3 * * *").Created(now.Add(-30*24*time.Hour)).
		Targets(15*time.Minute, 26*time.Hour).Status(func(s *drillsv1.RestoreDrillStatus) {
		s.RunCounts = map[drillsv1.RunResult]int64{drillsv1.ResultSucceeded: 10, drillsv1.ResultFailed: 1}
		s.SkippedTicks = map[string]int64{"AlreadyRunning": 1}
		s.SkippedSnapshots = map[string]int64{drillsv1.SnapshotFailed: 2}
		s.LastSuccessTime = &done
		s.LastRun = &drillsv1.RunSummary{Name: "orders-db-9", Result: drillsv1.ResultSucceeded, RTOSeconds: ptr.To(480.0), RPOSeconds: ptr.To(3600.0),
			CompletionTime: &done, RTOSecondsPerGiB: ptr.To(12.0)}
		s.PhaseDurations = map[drillsv1.Phase]drillsv1.PhaseHistogram{drillsv1.PhaseRestoringVolume: h}
		s.RecentRuns = recent
		s.RTOForecast = &drillsv1.RTOForecast{Runs: 10, HorizonSeconds: 30 * 86400, Seconds: 1080, LowerSeconds: 1050, SlopeSecondsPerDay: 20,
			TargetSeconds: ptr.To(900.0), AtRisk: true, Time: metav1.NewTime(done.Add(30 * 24 * time.Hour))}
	}).Obj()
	running := builder.ForRun("shop", "orders-db-10").UID("u10").Of("orders-db").In(drillsv1.PhaseValidating).Obj()
	sandbox := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "drill-orders-db-u10", Labels: map[string]string{
		restore.LabelManagedBy: restore.ManagedByValue, restore.LabelRun: "u10", restore.LabelRunName: "orders-db-10", restore.LabelRunNamespace: "shop"}}}
	snapshot := builder.ForSnapshot("shop", "nightly").Of("data-orders-0").Created(now.Add(-2 * time.Hour)).ReadyAt(now.Add(-2 * time.Hour)).Obj()
	return []client.Object{orders, running, sandbox, snapshot}
}

// TestDashboardQueriesFindDataInPrometheus serves drillerd's metrics of a
// cluster with drill history to a real Prometheus, then evaluates every
// query of the dashboard, its variables' included: each must be valid PromQL
// and find series, as Grafana would ask them.
func TestDashboardQueriesFindDataInPrometheus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts Prometheus")
	}
	scheme := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{drillsv1.AddToScheme, corev1.AddToScheme, snapshotv1.AddToScheme} {
		if err := add(scheme); err != nil {
			t.Fatal(err)
		}
	}
	reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(drillsWithHistory(time.Now())...).Build()
	collector := metrics.NewCollector(reader, clock.RealClock{}, logr.Discard())
	collector.Snapshots = reader
	registry := prometheus.NewRegistry()
	registry.MustRegister(collector)
	srv := httptest.NewServer(promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	defer srv.Close()

	env := &fixture.Env{T: t, Ctx: t.Context()}
	prom := env.StartPrometheus("drillerd", []string{strings.TrimPrefix(srv.URL, "http://")}, ruleGroups(t))
	// increase() over counters needs two scrapes of them.
	env.WaitFor(fixture.ShortTimeout, "Prometheus to scrape drillerd's metrics twice", func(ctx context.Context) (bool, error) {
		samples, err := prom.Query(ctx, `count_over_time(drillerd_drill_runs_total{result="Succeeded"}[1m])`)
		if err != nil || len(samples) == 0 {
			return false, err
		}
		n, err := strconv.ParseFloat(fmt.Sprint(samples[0].Value[1]), 64)
		return n >= 2, err
	})

	data, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var dashboard struct {
		Templating struct {
			List []struct {
				Name  string `json:"name"`
				Query any    `json:"query"`
			} `json:"list"`
		} `json:"templating"`
	}
	if err := json.Unmarshal(data, &dashboard); err != nil {
		t.Fatal(err)
	}
	// Variables: label_values(SELECTOR, LABEL) is Grafana's; the selector
	// must find series that carry the label.
	labelValues := regexp.MustCompile(`^label_values\((.+), *([a-z_]+)\)$`)
	vars := strings.NewReplacer("$namespace", "shop", "$drill", ".*")
	for _, v := range dashboard.Templating.List {
		q, ok := v.Query.(map[string]any)
		if !ok {
			continue // the data source
		}
		m := labelValues.FindStringSubmatch(fmt.Sprint(q["query"]))
		if m == nil {
			t.Errorf("variable %s: query %v is not label_values(selector, label)", v.Name, q["query"])
			continue
		}
		samples, err := prom.Query(env.Ctx, vars.Replace(m[1]))
		if err != nil || len(samples) == 0 || samples[0].Metric[m[2]] == "" {
			t.Errorf("variable %s: %s finds %v (%v), want series with label %s", v.Name, m[1], samples, err, m[2])
		}
	}
	panels, err := fixture.DashboardPanels(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, panel := range panels {
		for _, query := range panel.Queries {
			samples, err := prom.Query(env.Ctx, vars.Replace(query))
			if err != nil {
				t.Errorf("panel %q: %v", panel.Title, err)
			} else if len(samples) == 0 {
				t.Errorf("panel %q: %s finds nothing", panel.Title, vars.Replace(query))
			}
		}
	}
	// The alert the forecast is for fires on this state.
	env.WaitFor(fixture.ShortTimeout, "RTOTargetAtRisk to fire for shop/orders-db", func(ctx context.Context) (bool, error) {
		alerts, err := prom.Alerts(ctx)
		for _, a := range alerts {
			if a.Labels["alertname"] == "RTOTargetAtRisk" && a.Labels["drill"] == "orders-db" && a.Labels["horizon"] == "30d" && a.State == "firing" {
				return true, nil
			}
		}
		return false, fmt.Errorf("alerts now: %v (%v)", alerts, err)
	})
}
