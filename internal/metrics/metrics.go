// Package metrics exposes drillerd's Prometheus metrics. Except for the
// orphan counter they are computed at scrape time from RestoreDrill and
// DrillRun objects (the manager's cache), so they are right after a restart
// and the same on every replica. The counters of the sweep count this
// process's sweeps.
//
//	drillerd_drill_runs_total{namespace,drill,result}        runs finished, from status.runCounts
//	drillerd_drill_last_run_timestamp_seconds{namespace,drill}    completion of the newest finished run
//	drillerd_drill_last_success_timestamp_seconds{namespace,drill} completion of the newest successful run
//	drillerd_drill_last_result{namespace,drill}              1 if the newest finished run succeeded, else 0
//	drillerd_drill_last_run_info{namespace,drill,result,reason}  1, labelled with the newest finished run's verdict
//	drillerd_drill_created_timestamp_seconds{namespace,drill}      when the RestoreDrill was created
//	drillerd_drill_success_window_seconds{namespace,drill}   how long the drill may go without a success
//	                                                         (scheduler.SuccessWindow); absent when it has none
//	drillerd_drill_rto_seconds / _rpo_seconds{namespace,drill}     measured by the newest finished run
//	drillerd_drill_rto_target_seconds / _rpo_target_seconds{namespace,drill}  spec.targets
//	drillerd_drill_rto_seconds_per_gib{namespace,drill}      the newest finished run's RTO per GiB of restored
//	                                                         databases (status.lastRun.rtoSecondsPerGiB)
//	drillerd_drill_restored_database_bytes{namespace,drill}  size of the newest recent run's restored databases
//	drillerd_drill_checks_read_bytes{namespace,drill}        what its checks read (pg_stat_database blks_read)
//	drillerd_drill_rto_forecast_seconds{namespace,drill,horizon}  the RTO the trend of recent runs reaches a horizon
//	                                                         after the newest (status.rtoForecast.seconds)
//	drillerd_drill_rto_forecast_lower_bound_seconds{namespace,drill,horizon}  its 95% lower bound (lowerSeconds)
//	drillerd_drill_phase_duration_seconds{phase}             histogram over every finished run's phases
//	                                                         (the drills' status.phaseDurations); a phase's
//	                                                         timer starts when the run enters it and stops
//	                                                         when it enters the next
//	drillerd_drills_in_progress                              runs past Pending and not Done
//	drillerd_drill_skipped_total{namespace,drill,reason}     schedule ticks that started no run
//	drillerd_drill_snapshots_skipped_total{namespace,drill,reason}  newer snapshots runs passed over (NotReady, Failed)
//	drillerd_drill_newest_snapshot_age_seconds{namespace,drill}     age of the newest ready snapshot a run would
//	                                                         restore now (read from the API server, at most
//	                                                         once a minute)
//	drillerd_sandbox_orphans_removed_total{kind}             orphaned sandbox objects the sweep deleted or released
//	drillerd_sandbox_sweep_errors_total{kind}                errors of this process's sweeps, by the kind of object
//	drillerd_sandboxes_leaked{namespace,drill}               runs whose sandbox outlived timeouts.teardown and is
//	                                                         not gone yet (condition SandboxLeaked=True)
//	drillerd_sandboxes{kind,state}                           labelled sandbox namespaces, restored volumes and
//	                                                         content copies by state: active, kept
//	                                                         (keepOnFailure) or orphaned
package metrics

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"github.com/prometheus/client_golang/prometheus"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/scheduler"
)

var (
	runsTotal     = prometheus.NewDesc("drillerd_drill_runs_total", "Finished drill runs, by result.", []string{"namespace", "drill", "result"}, nil)
	lastRun       = prometheus.NewDesc("drillerd_drill_last_run_timestamp_seconds", "When the newest finished run of the drill completed.", []string{"namespace", "drill"}, nil)
	lastSuccess   = prometheus.NewDesc("drillerd_drill_last_success_timestamp_seconds", "When a run of the drill last succeeded.", []string{"namespace", "drill"}, nil)
	lastResult    = prometheus.NewDesc("drillerd_drill_last_result", "1 if the newest finished run succeeded, 0 otherwise.", []string{"namespace", "drill"}, nil)
	lastRunInfo   = prometheus.NewDesc("drillerd_drill_last_run_info", "Always 1; the labels carry the newest finished run's result and reason.", []string{"namespace", "drill", "result", "reason"}, nil)
	created       = prometheus.NewDesc("drillerd_drill_created_timestamp_seconds", "When the RestoreDrill was created.", []string{"namespace", "drill"}, nil)
	successWindow = prometheus.NewDesc("drillerd_drill_success_window_seconds", "How long the drill may go without a successful run before DrillNotSucceededRecently fires (spec.targets.successWindow or the schedule's default).", []string{"namespace", "drill"}, nil)
	sandboxes     = prometheus.NewDesc("drillerd_sandboxes", "drillerd's sandbox namespaces, restored PersistentVolumes and VolumeSnapshotContent copies, by state: active (its run is in progress), kept (keepOnFailure) or orphaned (left for the sweep).", []string{"kind", "state"}, nil)
	rtoSeconds    = prometheus.NewDesc("drillerd_drill_rto_seconds", "RTO measured by the newest finished run: from the start of provisioning until every check answered.", []string{"namespace", "drill"}, nil)
	rpoSeconds    = prometheus.NewDesc("drillerd_drill_rpo_seconds", "RPO measured by the newest finished run: drill start minus the newest recoverable write.", []string{"namespace", "drill"}, nil)
	rtoTarget     = prometheus.NewDesc("drillerd_drill_rto_target_seconds", "The drill's RTO target (spec.targets.rto).", []string{"namespace", "drill"}, nil)
	rpoTarget     = prometheus.NewDesc("drillerd_drill_rpo_target_seconds", "The drill's RPO target (spec.targets.rpo).", []string{"namespace", "drill"}, nil)
	phaseDuration = prometheus.NewDesc("drillerd_drill_phase_duration_seconds", "How long the phases of finished drill runs took, from entering the phase to entering the next.", []string{"phase"}, nil)
	inProgress    = prometheus.NewDesc("drillerd_drills_in_progress", "Runs past Pending and not yet Done.", nil, nil)
	rtoPerGiB     = prometheus.NewDesc("drillerd_drill_rto_seconds_per_gib", "RTO of the newest finished run per GiB of its restored databases (pg_database_size).", []string{"namespace", "drill"}, nil)
	databaseBytes = prometheus.NewDesc("drillerd_drill_restored_database_bytes", "Size of the newest recent run's restored databases, as pg_database_size counts them.", []string{"namespace", "drill"}, nil)
	readBytes     = prometheus.NewDesc("drillerd_drill_checks_read_bytes", "What PostgreSQL read into shared buffers while the newest recent run's checks ran (pg_stat_database blks_read times block_size).", []string{"namespace", "drill"}, nil)
	rtoForecast   = prometheus.NewDesc("drillerd_drill_rto_forecast_seconds", "The RTO the least-squares trend of the drill's recent runs reaches a horizon (spec.targets.rtoTrendHorizon) after the newest.", []string{"namespace", "drill", "horizon"}, nil)
	rtoForecastLo = prometheus.NewDesc("drillerd_drill_rto_forecast_lower_bound_seconds", "The one-sided 95% lower confidence bound of drillerd_drill_rto_forecast_seconds: RTOTargetAtRisk fires when it exceeds the target.", []string{"namespace", "drill", "horizon"}, nil)
	skippedTotal  = prometheus.NewDesc("drillerd_drill_skipped_total", "Schedule ticks that started no run, by reason.", []string{"namespace", "drill", "reason"}, nil)
	leakedRuns    = prometheus.NewDesc("drillerd_sandboxes_leaked", "Runs of the drill whose sandbox was not removed within timeouts.teardown and is not gone yet (condition SandboxLeaked=True).", []string{"namespace", "drill"}, nil)
)

// Collector computes the metrics from the cluster's drill objects.
type Collector struct {
	Reader client.Reader
	Clock  clock.PassiveClock
	Log    logr.Logger
	// OrphansRemoved counts sandbox objects deleted by the sweep.
	OrphansRemoved *prometheus.CounterVec
	// SweepErrors counts the sweep's errors by the kind of object.
	SweepErrors *prometheus.CounterVec
	// Snapshots reads VolumeSnapshots from the API server (drillerd caches
	// none); nil leaves out drillerd_drill_newest_snapshot_age_seconds.
	Snapshots client.Reader

	snapshots snapshotCache
}

// NewCollector returns a collector reading through r.
func NewCollector(r client.Reader, clk clock.PassiveClock, log logr.Logger) *Collector {
	return &Collector{Reader: r, Clock: clk, Log: log, OrphansRemoved: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drillerd_sandbox_orphans_removed_total",
		Help: "Orphaned sandbox objects deleted by the sweep (namespaces, content copies) or released to be deleted (retained volumes), by kind.",
	}, []string{"kind"}), SweepErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "drillerd_sandbox_sweep_errors_total",
		Help: "Errors of the sweep of orphaned sandbox objects (each also logged and sent as a SweepFailed event), by the kind of object.",
	}, []string{"kind"})}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{runsTotal, lastRun, lastSuccess, lastResult, lastRunInfo, created, successWindow, sandboxes, rtoSeconds, rpoSeconds, rtoTarget, rpoTarget, phaseDuration, inProgress, skippedTotal, snapshotsSkipped, newestSnapshotAge, leakedRuns,
		rtoPerGiB, databaseBytes, readBytes, rtoForecast, rtoForecastLo} {
		ch <- d
	}
	c.OrphansRemoved.Describe(ch)
	c.SweepErrors.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.OrphansRemoved.Collect(ch)
	c.SweepErrors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// A scrape only reads what it lists: the cache's objects themselves, not
	// a copy of every drill and run.
	drills := &drillsv1.RestoreDrillList{}
	if err := c.Reader.List(ctx, drills, client.UnsafeDisableDeepCopy); err != nil {
		c.Log.Error(err, "while listing RestoreDrills for metrics")
		return
	}
	runs := &drillsv1.DrillRunList{}
	if err := c.Reader.List(ctx, runs, client.UnsafeDisableDeepCopy); err != nil {
		c.Log.Error(err, "while listing DrillRuns for metrics")
		return
	}
	now := c.Clock.Now()
	for _, d := range drills.Items {
		c.collectDrill(ch, d, now)
		collectSkipped(ch, d)
	}
	c.collectSnapshotAges(ctx, ch, drills.Items, now)
	collectPhases(ch, drills.Items)
	running := 0
	for _, r := range runs.Items {
		if p := r.Status.Phase; p != "" && p != drillsv1.PhasePending && p != drillsv1.PhaseDone {
			running++
		}
	}
	ch <- prometheus.MustNewConstMetric(inProgress, prometheus.GaugeValue, float64(running))
	collectLeaks(ch, drills.Items, runs.Items)
	c.collectSandboxes(ctx, ch, runs.Items, now)
}

// collectLeaks counts, per drill, the runs whose sandbox leaked and is not
// gone yet: 0 for every drill without one, so that SandboxLeaked resolves
// when the sweep has removed the rest.
func collectLeaks(ch chan<- prometheus.Metric, drills []drillsv1.RestoreDrill, runs []drillsv1.DrillRun) {
	leaks := map[types.NamespacedName]int{}
	for _, d := range drills {
		leaks[client.ObjectKeyFromObject(&d)] = 0
	}
	for _, r := range runs {
		if meta.IsStatusConditionTrue(r.Status.Conditions, drillsv1.ConditionSandboxLeaked) && !r.Status.SandboxRemoved {
			leaks[types.NamespacedName{Namespace: r.Namespace, Name: r.Spec.DrillName}]++
		}
	}
	for key, n := range leaks {
		ch <- prometheus.MustNewConstMetric(leakedRuns, prometheus.GaugeValue, float64(n), key.Namespace, key.Name)
	}
}

// collectPhases sums the drills' phase histograms by phase.
func collectPhases(ch chan<- prometheus.Metric, drills []drillsv1.RestoreDrill) {
	type hist struct {
		count   uint64
		sum     float64
		buckets map[float64]uint64
	}
	phases := map[drillsv1.Phase]*hist{}
	for _, d := range drills {
		for phase, dh := range d.Status.PhaseDurations {
			h := phases[phase]
			if h == nil {
				h = &hist{buckets: make(map[float64]uint64, len(drillsv1.PhaseBuckets))}
				phases[phase] = h
			}
			h.count += uint64(dh.Count)
			h.sum += dh.Sum
			for i, le := range drillsv1.PhaseBuckets {
				if i < len(dh.Buckets) {
					h.buckets[le] += uint64(dh.Buckets[i])
				}
			}
		}
	}
	for phase, h := range phases {
		ch <- prometheus.MustNewConstHistogram(phaseDuration, h.count, h.sum, h.buckets, string(phase))
	}
}

func (c *Collector) collectDrill(ch chan<- prometheus.Metric, d drillsv1.RestoreDrill, now time.Time) {
	gauge := func(desc *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(desc, prometheus.GaugeValue, v, append([]string{d.Namespace, d.Name}, labels...)...)
	}
	s := d.Status
	gauge(created, float64(d.CreationTimestamp.Unix()))
	if w, ok := scheduler.SuccessWindow(&d, now); ok {
		gauge(successWindow, w.Seconds())
	}
	for _, result := range []drillsv1.RunResult{drillsv1.ResultSucceeded, drillsv1.ResultFailed, drillsv1.ResultError} {
		ch <- prometheus.MustNewConstMetric(runsTotal, prometheus.CounterValue, float64(s.RunCounts[result]), d.Namespace, d.Name, string(result))
	}
	for reason, n := range s.SkippedTicks {
		ch <- prometheus.MustNewConstMetric(skippedTotal, prometheus.CounterValue, float64(n), d.Namespace, d.Name, reason)
	}
	if s.LastSuccessTime != nil {
		gauge(lastSuccess, float64(s.LastSuccessTime.Unix()))
	}
	if last := s.LastRun; last != nil {
		if last.CompletionTime != nil {
			gauge(lastRun, float64(last.CompletionTime.Unix()))
		}
		ok := 0.0
		if last.Result == drillsv1.ResultSucceeded {
			ok = 1
		}
		gauge(lastResult, ok)
		gauge(lastRunInfo, 1, string(last.Result), last.Reason)
		if last.RTOSeconds != nil {
			gauge(rtoSeconds, *last.RTOSeconds)
		}
		if last.RPOSeconds != nil {
			gauge(rpoSeconds, *last.RPOSeconds)
		}
	}
	if t := d.Spec.Targets.RTO; t != nil {
		gauge(rtoTarget, t.Seconds())
	}
	collectTrend(gauge, s)
	if t := d.Spec.Targets.RPO; t != nil {
		gauge(rpoTarget, t.Seconds())
	}
}

// collectSandboxes counts drillerd's labelled sandbox namespaces and content
// copies by state, deciding each as the sweep does.
func (c *Collector) collectSandboxes(ctx context.Context, ch chan<- prometheus.Metric, runs []drillsv1.DrillRun, now time.Time) {
	byName := make(map[types.NamespacedName]*drillsv1.DrillRun, len(runs))
	for i := range runs {
		byName[client.ObjectKeyFromObject(&runs[i])] = &runs[i]
	}
	owned := client.MatchingLabels{restore.LabelManagedBy: restore.ManagedByValue}
	count := func(kind string, labelSets []map[string]string) {
		states := map[restore.SandboxState]int{restore.SandboxActive: 0, restore.SandboxKept: 0, restore.SandboxOrphaned: 0}
		for _, l := range labelSets {
			states[restore.StateOf(l, byName[restore.RunOf(l)], now)]++
		}
		for state, n := range states {
			ch <- prometheus.MustNewConstMetric(sandboxes, prometheus.GaugeValue, float64(n), kind, string(state))
		}
	}
	for _, k := range []struct {
		kind  string
		list  client.ObjectList
		owned func(client.Object) bool // the ownership gate of the kind
	}{
		{"Namespace", &corev1.NamespaceList{}, func(o client.Object) bool { return restore.IsOwnedSandbox(o.(*corev1.Namespace)) }},
		{"PersistentVolume", &corev1.PersistentVolumeList{}, func(o client.Object) bool { return restore.IsOwnedVolume(o.(*corev1.PersistentVolume)) }},
		{"VolumeSnapshotContent", &snapshotv1.VolumeSnapshotContentList{}, func(o client.Object) bool {
			return restore.IsOwnedContent(o.(*snapshotv1.VolumeSnapshotContent))
		}},
	} {
		if err := c.Reader.List(ctx, k.list, owned); err != nil {
			c.Log.Error(err, "while listing sandbox objects for metrics", "kind", k.kind)
			continue
		}
		var sets []map[string]string
		_ = meta.EachListItem(k.list, func(o runtime.Object) error {
			if obj := o.(client.Object); k.owned(obj) {
				sets = append(sets, obj.GetLabels())
			}
			return nil
		})
		count(k.kind, sets)
	}
}

// collectTrend exposes the RTO trend of a drill's status: the newest
// run's RTO per GiB and sizes, and the forecast.
func collectTrend(gauge func(desc *prometheus.Desc, v float64, labels ...string), s drillsv1.RestoreDrillStatus) {
	if last := s.LastRun; last != nil && last.RTOSecondsPerGiB != nil {
		gauge(rtoPerGiB, *last.RTOSecondsPerGiB)
	}
	if n := len(s.RecentRuns); n > 0 {
		newest := s.RecentRuns[n-1]
		if newest.DatabaseBytes != nil {
			gauge(databaseBytes, float64(*newest.DatabaseBytes))
		}
		if newest.ReadBytes != nil {
			gauge(readBytes, float64(*newest.ReadBytes))
		}
	}
	if f := s.RTOForecast; f != nil {
		horizon := HorizonLabel(time.Duration(f.HorizonSeconds * float64(time.Second)))
		gauge(rtoForecast, f.Seconds, horizon)
		gauge(rtoForecastLo, f.LowerSeconds, horizon)
	}
}

// HorizonLabel writes a forecast horizon as the horizon label shows it:
// whole days as "30d", else as Go writes durations ("36h0m0s").
func HorizonLabel(d time.Duration) string {
	const day = 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}
