package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"github.com/prometheus/client_golang/prometheus/testutil"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/restore"
)

func TestMetricsComeFromState(t *testing.T) {
	done := metav1.NewTime(time.Unix(1795312800, 0))
	success := metav1.NewTime(time.Unix(1795226400, 0))
	// Two finished runs restored their volumes in 4s and 20s; a second
	// drill's run in 2s. The running run's phases are not counted yet.
	var h, other drillsv1.PhaseHistogram
	h.Observe(4)
	h.Observe(20)
	other.Observe(2)
	drill := builder.ForDrill("shop", "orders-db").Targets(15*time.Minute, 26*time.Hour).Status(func(s *drillsv1.RestoreDrillStatus) {
		s.RunCounts = map[drillsv1.RunResult]int64{drillsv1.ResultSucceeded: 7, drillsv1.ResultFailed: 2}
		s.SkippedTicks = map[string]int64{"AlreadyRunning": 1}
		s.LastSuccessTime = &success
		s.LastRun = &drillsv1.RunSummary{Name: "r9", Result: drillsv1.ResultFailed, Reason: "CheckFailed", RTOSeconds: ptr.To(42.5), RPOSeconds: ptr.To(3600.0), CompletionTime: &done}
		s.PhaseDurations = map[drillsv1.Phase]drillsv1.PhaseHistogram{drillsv1.PhaseRestoringVolume: h}
	}).Obj()
	started := done.Add(-time.Hour)
	running := builder.ForRun("shop", "r10").Of("orders-db").In(drillsv1.PhaseValidating).
		PhaseTiming(drillsv1.PhaseRestoringVolume, started, started.Add(3*time.Second)).
		PhaseTiming(drillsv1.PhaseValidating, started.Add(3*time.Second), time.Time{}).Obj()
	finished := builder.ForRun("shop", "r9").Of("orders-db").In(drillsv1.PhaseDone).
		PhaseTiming(drillsv1.PhaseRestoringVolume, started, started.Add(20*time.Second)).Obj()
	drill2 := builder.ForDrill("billing", "ledger").Status(func(s *drillsv1.RestoreDrillStatus) {
		s.PhaseDurations = map[drillsv1.Phase]drillsv1.PhaseHistogram{drillsv1.PhaseRestoringVolume: other}
	}).Obj()
	c := NewCollector(newClient(t, drill, drill2, running, finished), clocktesting.NewFakePassiveClock(done.Time), logr.Discard())
	c.OrphansRemoved.WithLabelValues("Namespace").Inc()

	want := `
# HELP drillerd_drill_runs_total Finished drill runs, by result.
# TYPE drillerd_drill_runs_total counter
drillerd_drill_runs_total{drill="ledger",namespace="billing",result="Error"} 0
drillerd_drill_runs_total{drill="ledger",namespace="billing",result="Failed"} 0
drillerd_drill_runs_total{drill="ledger",namespace="billing",result="Succeeded"} 0
drillerd_drill_runs_total{drill="orders-db",namespace="shop",result="Error"} 0
drillerd_drill_runs_total{drill="orders-db",namespace="shop",result="Failed"} 2
drillerd_drill_runs_total{drill="orders-db",namespace="shop",result="Succeeded"} 7
# HELP drillerd_drill_last_result 1 if the newest finished run succeeded, 0 otherwise.
# TYPE drillerd_drill_last_result gauge
drillerd_drill_last_result{drill="orders-db",namespace="shop"} 0
# HELP drillerd_drill_last_run_info Always 1; the labels carry the newest finished run's result and reason.
# TYPE drillerd_drill_last_run_info gauge
drillerd_drill_last_run_info{drill="orders-db",namespace="shop",reason="CheckFailed",result="Failed"} 1
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
# HELP drillerd_sandbox_orphans_removed_total Orphaned sandbox objects deleted by the sweep (namespaces, content copies) or released to be deleted (retained volumes), by kind.
# TYPE drillerd_sandbox_orphans_removed_total counter
drillerd_sandbox_orphans_removed_total{kind="Namespace"} 1
`
	names := []string{"drillerd_drill_runs_total", "drillerd_drill_last_result", "drillerd_drill_last_run_info", "drillerd_drill_last_success_timestamp_seconds",
		"drillerd_drill_rto_seconds", "drillerd_drill_rpo_target_seconds", "drillerd_drill_skipped_total", "drillerd_drills_in_progress",
		"drillerd_sandbox_orphans_removed_total"}
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), names...); err != nil {
		t.Error(err)
	}
	// Phase histogram: the finished runs' RestoringVolume timings of both drills (2s, 4s, 20s).
	if n := testutil.CollectAndCount(c, "drillerd_drill_phase_duration_seconds"); n != 1 {
		t.Errorf("phase histogram series = %d, want 1 (RestoringVolume)", n)
	}
	if err := testutil.CollectAndCompare(c, strings.NewReader(`
# HELP drillerd_drill_phase_duration_seconds How long the phases of finished drill runs took, from entering the phase to entering the next.
# TYPE drillerd_drill_phase_duration_seconds histogram
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="0.1"} 0
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="0.5"} 0
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="1"} 0
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="5"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="15"} 2
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="30"} 3
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="60"} 3
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="120"} 3
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="300"} 3
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="600"} 3
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="1200"} 3
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="3600"} 3
drillerd_drill_phase_duration_seconds_bucket{phase="RestoringVolume",le="+Inf"} 3
drillerd_drill_phase_duration_seconds_sum{phase="RestoringVolume"} 26
drillerd_drill_phase_duration_seconds_count{phase="RestoringVolume"} 3
`), "drillerd_drill_phase_duration_seconds"); err != nil {
		t.Error(err)
	}
}

func TestSuccessWindowAndCreation(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	created := time.Unix(1795000000, 0)
	drills := []client.Object{
		builder.ForDrill("shop", "nightly").Created(created).Schedule("0 3 * * *").Obj(),
		builder.ForDrill("shop", "on-demand").Created(created).Obj(),
	}
	c := NewCollector(newClient(t, drills...), clocktesting.NewFakePassiveClock(now), logr.Discard())
	want := `
# HELP drillerd_drill_created_timestamp_seconds When the RestoreDrill was created.
# TYPE drillerd_drill_created_timestamp_seconds gauge
drillerd_drill_created_timestamp_seconds{drill="nightly",namespace="shop"} 1.795e+09
drillerd_drill_created_timestamp_seconds{drill="on-demand",namespace="shop"} 1.795e+09
# HELP drillerd_drill_success_window_seconds How long the drill may go without a successful run before DrillNotSucceededRecently fires (spec.targets.successWindow or the schedule's default).
# TYPE drillerd_drill_success_window_seconds gauge
drillerd_drill_success_window_seconds{drill="nightly",namespace="shop"} 176400
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "drillerd_drill_created_timestamp_seconds", "drillerd_drill_success_window_seconds"); err != nil {
		t.Error(err)
	}
}

func TestSandboxesByState(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	run := func(name, uid string, phase drillsv1.Phase) *builder.RunBuilder {
		return builder.ForRun("shop", name).UID(types.UID(uid)).In(phase)
	}
	labels := func(runName, uid string) map[string]string {
		return map[string]string{restore.LabelManagedBy: restore.ManagedByValue, restore.LabelRun: uid, restore.LabelRunName: runName, restore.LabelRunNamespace: "shop", restore.LabelDrill: "orders-db"}
	}
	sandbox := func(uid string) string { return restore.NamespaceName("orders-db", uid) }
	namespace := func(name, runName, uid string) *corev1.Namespace {
		return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(runName, uid)}}
	}
	content := func(runName, uid string, policy snapshotv1.DeletionPolicy) *snapshotv1.VolumeSnapshotContent {
		return builder.ForContent("drill-" + uid).Labels(labels(runName, uid)).DeletionPolicy(policy).Obj()
	}
	volume := func(name, ns, runName, uid string) *corev1.PersistentVolume {
		return &corev1.PersistentVolume{
			ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels(runName, uid)},
			Spec:       corev1.PersistentVolumeSpec{ClaimRef: &corev1.ObjectReference{Namespace: ns, Name: restore.DataClaimName}},
		}
	}
	objects := []client.Object{
		run("validating", "u1", drillsv1.PhaseValidating).Obj(),
		run("kept", "u2", drillsv1.PhaseDone).KeptUntil(now.Add(time.Hour)).Obj(),
		run("expired", "u3", drillsv1.PhaseDone).KeptUntil(now.Add(-time.Hour)).Obj(),
		run("replaced", "u4-new", drillsv1.PhaseValidating).Obj(),
		namespace(sandbox("u1"), "validating", "u1"),
		namespace(sandbox("u2"), "kept", "u2"),
		namespace(sandbox("u3"), "expired", "u3"),
		namespace(sandbox("u5"), "gone", "u5"),
		namespace(sandbox("u4-old"), "replaced", "u4-old"),
		namespace("no-prefix", "gone", "u6"), // not a sandbox by the ownership rules
		content("validating", "u1", snapshotv1.VolumeSnapshotContentRetain),
		content("gone", "u5", snapshotv1.VolumeSnapshotContentRetain),
		content("gone", "u7", snapshotv1.VolumeSnapshotContentDelete), // never drillerd's to remove
		volume("pv-kept", sandbox("u2"), "kept", "u2"),
		volume("pv-gone", sandbox("u5"), "gone", "u5"),
	}
	c := NewCollector(newClient(t, objects...), clocktesting.NewFakePassiveClock(now), logr.Discard())
	want := `
# HELP drillerd_sandboxes drillerd's sandbox namespaces, restored PersistentVolumes and VolumeSnapshotContent copies, by state: active (its run is in progress), kept (keepOnFailure) or orphaned (left for the sweep).
# TYPE drillerd_sandboxes gauge
drillerd_sandboxes{kind="Namespace",state="active"} 1
drillerd_sandboxes{kind="Namespace",state="kept"} 1
drillerd_sandboxes{kind="Namespace",state="orphaned"} 3
drillerd_sandboxes{kind="PersistentVolume",state="active"} 0
drillerd_sandboxes{kind="PersistentVolume",state="kept"} 1
drillerd_sandboxes{kind="PersistentVolume",state="orphaned"} 1
drillerd_sandboxes{kind="VolumeSnapshotContent",state="active"} 1
drillerd_sandboxes{kind="VolumeSnapshotContent",state="kept"} 0
drillerd_sandboxes{kind="VolumeSnapshotContent",state="orphaned"} 1
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "drillerd_sandboxes"); err != nil {
		t.Error(err)
	}
}

func TestLeakedSandboxesByDrill(t *testing.T) {
	leak := func(status metav1.ConditionStatus) func(*drillsv1.DrillRunStatus) {
		return func(s *drillsv1.DrillRunStatus) {
			s.Conditions = []metav1.Condition{{Type: drillsv1.ConditionSandboxLeaked, Status: status, Reason: "TeardownTimeout"}}
		}
	}
	objects := []client.Object{
		builder.ForDrill("shop", "orders-db").Obj(),
		builder.ForDrill("shop", "users-db").Obj(),
		builder.ForRun("shop", "leaked-1").Of("orders-db").In(drillsv1.PhaseDone).Sandbox("drill-orders-db-1").Status(leak(metav1.ConditionTrue)).Obj(),
		builder.ForRun("shop", "leaked-2").Of("orders-db").In(drillsv1.PhaseDone).Sandbox("drill-orders-db-2").Status(leak(metav1.ConditionTrue)).Obj(),
		builder.ForRun("shop", "swept").Of("users-db").In(drillsv1.PhaseDone).Sandbox("drill-users-db-3").SandboxRemoved().Status(leak(metav1.ConditionFalse)).Obj(),
		builder.ForRun("shop", "clean").Of("users-db").In(drillsv1.PhaseDone).SandboxRemoved().Obj(),
	}
	c := NewCollector(newClient(t, objects...), clocktesting.NewFakePassiveClock(time.Unix(1795312800, 0)), logr.Discard())
	want := `
# HELP drillerd_sandboxes_leaked Runs of the drill whose sandbox was not removed within timeouts.teardown and is not gone yet (condition SandboxLeaked=True).
# TYPE drillerd_sandboxes_leaked gauge
drillerd_sandboxes_leaked{drill="orders-db",namespace="shop"} 2
drillerd_sandboxes_leaked{drill="users-db",namespace="shop"} 0
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "drillerd_sandboxes_leaked"); err != nil {
		t.Error(err)
	}
}

func TestTheRTOTrendMetrics(t *testing.T) {
	done := metav1.NewTime(time.Unix(1795312800, 0))
	drills := []client.Object{
		builder.ForDrill("shop", "orders-db").Targets(15*time.Minute, 0).RTOTrendHorizon(30 * 24 * time.Hour).Status(func(s *drillsv1.RestoreDrillStatus) {
			s.LastRun = &drillsv1.RunSummary{Name: "r9", Result: drillsv1.ResultSucceeded, RTOSeconds: ptr.To(600.0), RTOSecondsPerGiB: ptr.To(150.0), CompletionTime: &done}
			s.RecentRuns = []drillsv1.RunPoint{
				{Name: "r8", Result: drillsv1.ResultSucceeded, CompletionTime: metav1.NewTime(done.Add(-24 * time.Hour)), DatabaseBytes: ptr.To[int64](3 << 30), ReadBytes: ptr.To[int64](1 << 30)},
				{Name: "r9", Result: drillsv1.ResultSucceeded, CompletionTime: done, DatabaseBytes: ptr.To[int64](4 << 30), ReadBytes: ptr.To[int64](2 << 30)},
			}
			s.RTOForecast = &drillsv1.RTOForecast{Runs: 9, HorizonSeconds: 30 * 86400, Seconds: 1200, LowerSeconds: 1000, TargetSeconds: ptr.To(900.0), AtRisk: true}
		}).Obj(),
		builder.ForDrill("billing", "ledger").Status(func(s *drillsv1.RestoreDrillStatus) {
			s.RTOForecast = &drillsv1.RTOForecast{Runs: 3, HorizonSeconds: 36 * 3600, Seconds: 60, LowerSeconds: 20}
		}).Obj(),
		builder.ForDrill("billing", "new").Obj(), // no run yet: no trend
	}
	c := NewCollector(newClient(t, drills...), clocktesting.NewFakePassiveClock(done.Time), logr.Discard())
	want := `
# HELP drillerd_drill_rto_seconds_per_gib RTO of the newest finished run per GiB of its restored databases (pg_database_size).
# TYPE drillerd_drill_rto_seconds_per_gib gauge
drillerd_drill_rto_seconds_per_gib{drill="orders-db",namespace="shop"} 150
# HELP drillerd_drill_restored_database_bytes Size of the newest recent run's restored databases, as pg_database_size counts them.
# TYPE drillerd_drill_restored_database_bytes gauge
drillerd_drill_restored_database_bytes{drill="orders-db",namespace="shop"} 4.294967296e+09
# HELP drillerd_drill_checks_read_bytes What PostgreSQL read into shared buffers while the newest recent run's checks ran (pg_stat_database blks_read times block_size).
# TYPE drillerd_drill_checks_read_bytes gauge
drillerd_drill_checks_read_bytes{drill="orders-db",namespace="shop"} 2.147483648e+09
# HELP drillerd_drill_rto_forecast_seconds The RTO the least-squares trend of the drill's recent runs reaches a horizon (spec.targets.rtoTrendHorizon) after the newest.
# TYPE drillerd_drill_rto_forecast_seconds gauge
drillerd_drill_rto_forecast_seconds{drill="ledger",horizon="36h0m0s",namespace="billing"} 60
drillerd_drill_rto_forecast_seconds{drill="orders-db",horizon="30d",namespace="shop"} 1200
# HELP drillerd_drill_rto_forecast_lower_bound_seconds The one-sided 95% lower confidence bound of drillerd_drill_rto_forecast_seconds: RTOTargetAtRisk fires when it exceeds the target.
# TYPE drillerd_drill_rto_forecast_lower_bound_seconds gauge
drillerd_drill_rto_forecast_lower_bound_seconds{drill="ledger",horizon="36h0m0s",namespace="billing"} 20
drillerd_drill_rto_forecast_lower_bound_seconds{drill="orders-db",horizon="30d",namespace="shop"} 1000
`
	if err := testutil.CollectAndCompare(c, strings.NewReader(want), "drillerd_drill_rto_seconds_per_gib", "drillerd_drill_restored_database_bytes",
		"drillerd_drill_checks_read_bytes", "drillerd_drill_rto_forecast_seconds", "drillerd_drill_rto_forecast_lower_bound_seconds"); err != nil {
		t.Error(err)
	}
}
