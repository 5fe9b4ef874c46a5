package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestMetricsComeFromState(t *testing.T) {
	done := metav1.NewTime(time.Unix(1795312800, 0))
	success := metav1.NewTime(time.Unix(1795226400, 0))
	drill := &drillsv1.RestoreDrill{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "orders-db"},
		Spec: drillsv1.RestoreDrillSpec{Targets: drillsv1.Targets{
			RTO: &metav1.Duration{Duration: 15 * time.Minute}, RPO: &metav1.Duration{Duration: 26 * time.Hour},
		}},
		Status: drillsv1.RestoreDrillStatus{
			RunCounts:       map[drillsv1.RunResult]int64{drillsv1.ResultSucceeded: 7, drillsv1.ResultFailed: 2},
			SkippedTicks:    map[string]int64{"AlreadyRunning": 1},
			LastSuccessTime: &success,
			LastRun:         &drillsv1.RunSummary{Name: "r9", Result: drillsv1.ResultFailed, RTOSeconds: ptr.To(42.5), RPOSeconds: ptr.To(3600.0), CompletionTime: &done},
		},
	}
	running := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "r10"},
		Status: drillsv1.DrillRunStatus{Phase: drillsv1.PhaseValidating, Phases: []drillsv1.PhaseTiming{
			{Name: drillsv1.PhaseRestoringVolume, Seconds: ptr.To(3.0)},
			{Name: drillsv1.PhaseValidating},
		}},
	}
	finished := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "r9"},
		Status:     drillsv1.DrillRunStatus{Phase: drillsv1.PhaseDone, Phases: []drillsv1.PhaseTiming{{Name: drillsv1.PhaseRestoringVolume, Seconds: ptr.To(20.0)}}},
	}
	s := runtime.NewScheme()
	if err := drillsv1.AddToScheme(s); err != nil {
		t.Fatal(err)
	}
	c := NewCollector(fake.NewClientBuilder().WithScheme(s).WithObjects(drill, running, finished).Build(), logr.Discard())
	c.OrphansRemoved.WithLabelValues("Namespace").Inc()

	want := `
# HELP drillerd_drill_runs_total Finished drill runs, by result.
# TYPE drillerd_drill_runs_total counter
drillerd_drill_runs_total{drill="orders-db",namespace="shop",result="Error"} 0
drillerd_drill_runs_total{drill="orders-db",namespace="shop",result="Failed"} 2
drillerd_drill_runs_total{drill="orders-db",namespace="shop",result="Succeeded"} 7
# HELP drillerd_drill_last_result 1 if the newest finished run succeeded, 0 otherwise.
# TYPE drillerd_drill_last_result gauge
drillerd_drill_last_result{drill="orders-db",namespace="shop"} 0
# HELP drillerd_drill_last_success_timestamp_seconds When a run of the drill last succeeded.
# TYPE drillerd_drill_last_success_timestamp_seconds gauge
drillerd_drill_last_success_timestamp_seconds{drill="orders-db",namespace="shop"} 1.7952264e+09
# HELP drillerd_drill_rto_seconds RTO measured by the newest finished run: from the start of provisioning until every check answered.
# TYPE drillerd_drill_rto_seconds gauge
drillerd_drill_rto_seconds{drill="orders-db",namespace="shop"} 42.5
# HELP drillerd_drill_rpo_target_seconds The drill's RPO target (spec.targets.rpo).
# TYPE drillerd_drill_rpo_target_seconds gauge
drillerd_drill_rpo_target_seconds{drill="orders-db",namespace="shop"} 93600
# HELP drillerd_drill_skipped_total Schedule ticks that started no run, by reason.
# TYPE drillerd_drill_skipped_total counter
drillerd_drill_skipped_total{drill="orders-db",namespace="shop",reason="AlreadyRunning"} 1
# HELP drillerd_drills_in_progress Runs past Pending and not yet Done.
# TYPE drillerd_drills_in_progress gauge
drillerd_drills_in_progress 1
# HELP drillerd_sandbox_orphans_removed_total Orphaned sandbox objects (namespaces, content copies) deleted by the sweep, by kind.
# TYPE drillerd_sandbox_orphans_removed_total counter
drillerd_sandbox_orphans_removed_total{kind="Namespace"} 1
`
	names := []string{"drillerd_drill_runs_total", "drillerd_drill_last_result", "drillerd_drill_last_success_timestamp_seconds",
		"drillerd_drill_rto_seconds", "drillerd_drill_rpo_target_seconds", "drillerd_drill_skipped_total", "drillerd_drills_in_progress",
		"drillerd_sandbox_orphans_removed_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Phase histogram: both RestoringVolume timings (3s and 20s), none of the running phase.
	if n := testutil.CollectAndCount(c, "drillerd_drill_phase_duration_seconds"); n != 1 {
		t.Errorf("phase histogram series = %d, want 1 (RestoringVolume)", n)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP drillerd_drill_phase_duration_seconds How long drill phases took, over the retained runs.
# TYPE drillerd_drill_phase_duration_seconds histogram
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="0.1"} 0
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="0.5"} 0
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="1"} 0
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="5"} 1
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="15"} 1
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="30"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="60"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="120"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="300"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="600"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="1200"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="3600"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="+Inf"} 2
drillerd_drill_phase_duration_seconds_sum{phase="RestoringVolume"} 23
drillerd_drill_phase_duration_seconds_count{phase="RestoringVolume"} 2
`), "drillerd_drill_phase_duration_seconds"); err != nil {
		t.Error(err)
	}
}
