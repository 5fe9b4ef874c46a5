//go:build bench

package bench

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/test/fixture"
)

// Sizes and counts; the environment may change them (docs/benchmarks.md).
var (
	smallMiB    = envInt("BENCH_SMALL_MIB", 20)
	largeMiB    = envInt("BENCH_LARGE_MIB", 2048) // 0 skips the large database
	smallDrills = envInt("BENCH_SMALL_DRILLS", 10)
	largeDrills = envInt("BENCH_LARGE_DRILLS", 5)
	peerRuns    = envInt("BENCH_PEER_RUNS", 5)
	loadDrills  = envInt("BENCH_LOAD_DRILLS", 1000)
	loadRuns    = envInt("BENCH_LOAD_RUNS", 10000)
	concurrent  = envInt("BENCH_CONCURRENT_DRILLS", 8)
	scheduled   = envInt("BENCH_SCHEDULED_DRILLS", 100)
	ticks       = envInt("BENCH_TICKS", 3)
	// storageClass is the class the drills restore onto; empty: the source
	// claim's (WaitForFirstConsumer).
	storageClass = os.Getenv("BENCH_STORAGE_CLASS")
)

func envInt(name string, def int) int {
	if n, err := strconv.Atoi(os.Getenv(name)); err == nil && n >= 0 {
		return n
	}
	return def
}

// database is what the drills of one database size measured: medians,
// the detection lag's p50 and p99.
type database struct {
	Name                 string  `json:"name"`
	SizeMiB              float64 `json:"size_mib"`
	Drills               int     `json:"drills"`
	RTOSeconds           float64 `json:"rto_seconds"`
	IrreducibleSeconds   float64 `json:"irreducible_seconds"`
	OverheadRatio        float64 `json:"overhead_ratio"`
	DetectionLagP50MS    float64 `json:"detection_lag_p50_ms"`
	DetectionLagP99MS    float64 `json:"detection_lag_p99_ms"`
	OwnLagP50MS          float64 `json:"detection_lag_after_reported_p50_ms"`
	OwnLagP99MS          float64 `json:"detection_lag_after_reported_p99_ms"`
	APIRequestsPerDrill  float64 `json:"api_requests_per_drill"`
	TeardownSeconds      float64 `json:"teardown_seconds"`
	TablesReadableRatio  float64 `json:"tables_readable_ratio"`
	TablesReadableSecond float64 `json:"tables_readable_seconds"`
	PsqlCountSeconds     float64 `json:"psql_count_seconds"`
	AmcheckMiBPerS       float64 `json:"amcheck_mib_per_s"`
}

// results is bench/results.json: the keys of docs/benchmarks.md, flat,
// and the figures of each database size.
type results struct {
	Machine   map[string]string `json:"machine"`
	Databases []database        `json:"databases"`
	Figures   map[string]float64
}

func (r results) MarshalJSON() ([]byte, error) {
	out := map[string]any{"machine": r.Machine, "databases": r.Databases}
	for k, v := range r.Figures {
		out[k] = math.Round(v*1000) / 1000
	}
	return json.MarshalIndent(out, "", "  ")
}

// TestBench measures every figure of docs/benchmarks.md it can and writes
// bench/results.json.
func TestBench(t *testing.T) {
	env := fixture.New(t, cluster)
	c := newClient(t, env)
	res := results{Machine: machine(), Figures: map[string]float64{}}
	// Each part's figures are written as soon as it ends, so a run stopped
	// in a later part keeps them.
	save := func() {
		path := filepath.Join(root, "bench", "results.json")
		data, err := json.Marshal(res)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	defer func() {
		save()
		printTable(res)
	}()

	// Idle: drillerd with nothing to do.
	time.Sleep(max(0, 20*time.Second-time.Since(daemon.StartTime())))
	idle, anon, err := daemon.Memory()
	if err != nil {
		t.Fatal(err)
	}
	res.Figures["rss_idle_mib"], res.Figures["rss_idle_anon_mib"] = idle, anon
	t.Logf("idle RSS %.1f MiB (anonymous %.1f MiB)", idle, anon)

	small := newSource(t, env, "small", smallMiB)
	res.Databases = append(res.Databases, measureSize(t, env, c, "small", small, smallDrills))
	setFigures(res.Figures, res.Databases[0])
	save()

	res.Figures["peer_ratio"] = peerRatio(t, env, c, small)
	res.Figures["concurrent_drills_per_hour"] = concurrentDrills(t, env, c, small)
	save()

	loaded(t, env, c, res.Figures)
	save()

	// The large database comes last, the longest part: its drills run with
	// the load's drills and runs still in the cluster.
	if largeMiB > 0 {
		large := newSource(t, env, "large", largeMiB)
		db := measureSize(t, env, c, "large", large, largeDrills)
		res.Databases = append(res.Databases, db)
		res.Figures["tables_readable_ratio"] = db.TablesReadableRatio
		res.Figures["amcheck_mib_per_s"] = db.AmcheckMiBPerS
	}
}

// setFigures takes the drill figures of db as the flat keys.
func setFigures(f map[string]float64, db database) {
	f["overhead_ratio"] = db.OverheadRatio
	f["detection_lag_p50_ms"] = db.DetectionLagP50MS
	f["detection_lag_p99_ms"] = db.DetectionLagP99MS
	f["detection_lag_after_reported_p50_ms"] = db.OwnLagP50MS
	f["detection_lag_after_reported_p99_ms"] = db.OwnLagP99MS
	f["api_requests_per_drill"] = db.APIRequestsPerDrill
	f["teardown_seconds"] = db.TeardownSeconds
	f["tables_readable_ratio"] = db.TablesReadableRatio
	f["amcheck_mib_per_s"] = db.AmcheckMiBPerS
}

// measureSize runs n drills of s one after the other.
func measureSize(t *testing.T, env *fixture.Env, c client.WithWatch, name string, s *source, n int) database {
	d := s.drillOf("bench-"+name, fullChecks...)
	if err := c.Create(env.Ctx, d); err != nil {
		t.Fatal(err)
	}
	samples := sequential(t, env, c, d, n)
	db := database{Name: fmt.Sprintf("%s (%.0f MiB)", name, s.sizeMiB), SizeMiB: s.sizeMiB, Drills: n}
	pick := func(f func(*sample) float64) []float64 {
		var v []float64
		for _, x := range samples {
			v = append(v, f(x))
		}
		return v
	}
	db.RTOSeconds = median(pick(func(x *sample) float64 { return x.rto }))
	db.IrreducibleSeconds = median(pick(func(x *sample) float64 { return x.irreducible }))
	db.OverheadRatio = median(pick(func(x *sample) float64 { return x.rto / x.irreducible }))
	lags := pick(func(x *sample) float64 { return x.detectionLagMS })
	db.DetectionLagP50MS, db.DetectionLagP99MS = percentile(lags, 50), percentile(lags, 99)
	own := pick(func(x *sample) float64 { return x.ownLagMS })
	db.OwnLagP50MS, db.OwnLagP99MS = percentile(own, 50), percentile(own, 99)
	db.APIRequestsPerDrill = median(pick(func(x *sample) float64 { return float64(x.apiRequests) }))
	db.TeardownSeconds = median(pick(func(x *sample) float64 { return x.teardown }))
	db.TablesReadableSecond = median(pick(func(x *sample) float64 { return x.tablesReadable }))
	var psql []float64
	psqlCount(t, s) // warm, as the copy's files are after the restore
	for range 5 {
		psql = append(psql, psqlCount(t, s).Seconds())
	}
	db.PsqlCountSeconds = median(psql)
	db.TablesReadableRatio = db.TablesReadableSecond / db.PsqlCountSeconds
	db.AmcheckMiBPerS = median(pick(func(x *sample) float64 { return s.relationsMiB / x.amcheck }))
	t.Logf("%s: %+v", name, db)
	return db
}

// peerRatio compares drillerd's wall time for a drill with one check with
// bench/peer.sh's, a plain kubectl and psql script doing the same restore,
// check and removal; medians of peerRuns each.
func peerRatio(t *testing.T, env *fixture.Env, c client.WithWatch, s *source) float64 {
	d := s.drillOf("bench-peer", oneCheck...)
	if err := c.Create(env.Ctx, d); err != nil {
		t.Fatal(err)
	}
	snap, err := env.Snapshots.SnapshotV1().VolumeSnapshots(s.ns).Get(env.Ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	content := env.Content(snap)
	var drillerdWall, scriptWall []float64
	for i := range peerRuns {
		x := drill(t, env, c, d)
		drillerdWall = append(drillerdWall, x.wall.Seconds())
		ns := fmt.Sprintf("peer-%d-%d", time.Now().Unix(), i)
		start := time.Now()
		cmd := command(filepath.Join(root, "bench", "peer.sh"), ns, *content.Status.SnapshotHandle, content.Spec.Driver,
			snap.Status.RestoreSize.String(), "hostpath", fixture.PostgresImage)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bench/peer.sh: %v\n%s", err, out)
		}
		scriptWall = append(scriptWall, time.Since(start).Seconds())
		t.Logf("peer %d: drillerd %.2fs, script %.2fs", i, x.wall.Seconds(), time.Since(start).Seconds())
	}
	return median(drillerdWall) / median(scriptWall)
}

// command runs name with the cluster's kubeconfig and kubectl, and the
// fixtures' database password.
func command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+cluster.Kubeconfig, "PGPASSWORD="+fixture.DBPassword,
		"PATH="+filepath.Dir(cluster.KubectlBinary)+string(os.PathListSeparator)+os.Getenv("PATH"))
	return cmd
}

// concurrentDrills starts `concurrent` drills of s at once (drillerd runs
// 4 at a time) and turns the time until the last is Done into drills per
// hour.
func concurrentDrills(t *testing.T, env *fixture.Env, c client.WithWatch, s *source) float64 {
	var drills []*drillsv1.RestoreDrill
	for i := range concurrent {
		d := s.drillOf(fmt.Sprintf("bench-concurrent-%d", i), fullChecks...)
		if err := c.Create(env.Ctx, d); err != nil {
			t.Fatal(err)
		}
		drills = append(drills, d)
	}
	start := time.Now()
	var runs []*drillsv1.DrillRun
	for _, d := range drills {
		run, err := startRun(env.Ctx, c, d)
		if err != nil {
			t.Fatal(err)
		}
		runs = append(runs, run)
	}
	last := start
	for _, run := range runs {
		done, seen, err := waitDone(env.Ctx, c, run)
		if err != nil {
			t.Fatal(err)
		}
		if done.Status.Result != drillsv1.ResultSucceeded {
			t.Errorf("run %s: %s/%s: %s", done.Name, done.Status.Result, done.Status.Reason, done.Status.Message)
		}
		if seen.After(last) {
			last = seen
		}
	}
	wall := last.Sub(start)
	t.Logf("%d drills at once took %.1fs", concurrent, wall.Seconds())
	return float64(concurrent) * 3600 / wall.Seconds()
}

// loaded puts loadDrills RestoreDrills and loadRuns finished DrillRuns in
// the cluster, then measures drillerd's memory, how soon a new run gets its
// first status write, and how late scheduled runs are created.
func loaded(t *testing.T, env *fixture.Env, c client.WithWatch, f map[string]float64) {
	ns := env.Namespace("bench-load")
	// Past runs are made while drillerd is down: it would take a new run
	// without status for one to start. It finds them all when it starts,
	// as after an upgrade.
	daemon.Stop()
	start := time.Now()
	var drills []*drillsv1.RestoreDrill
	for i := range loadDrills {
		drills = append(drills, loadDrill(ns, fmt.Sprintf("load-%04d", i)))
	}
	parallel(t, 16, len(drills), func(i int) error { return c.Create(env.Ctx, drills[i]) })
	parallel(t, 16, loadRuns, func(i int) error {
		run := finishedRun(drills[i%len(drills)], i)
		status := run.Status
		if err := c.Create(env.Ctx, run); err != nil {
			return err
		}
		run.Status = status
		return c.Status().Update(env.Ctx, run)
	})
	t.Logf("%d drills and %d runs created in %s", loadDrills, loadRuns, time.Since(start).Round(time.Second))
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	// drillerd's cache fills as the objects come; its memory settles.
	var rss, anon float64
	for range 6 {
		time.Sleep(5 * time.Second)
		r, a, err := daemon.Memory()
		if err != nil {
			t.Fatal(err)
		}
		rss, anon = max(rss, r), max(anon, a)
	}
	f["rss_loaded_mib"], f["rss_loaded_anon_mib"] = rss, anon
	t.Logf("loaded RSS %.1f MiB (anonymous %.1f MiB)", rss, anon)

	// A new run's first status write, one run at a time.
	var latencies []float64
	for i := range 10 {
		latencies = append(latencies, statusLatency(t, env, c, drills[i]).Seconds()*1000)
	}
	f["status_latency_ms"] = median(latencies)
	f["status_latency_p99_ms"] = percentile(latencies, 99)

	// Scheduled drills, every minute, for a few ticks.
	var sched []*drillsv1.RestoreDrill
	for i := range scheduled {
		d := loadDrill(ns, fmt.Sprintf("cron-%03d", i))
		d.Spec.Schedule = "* * * * *"
		sched = append(sched, d)
	}
	parallel(t, 16, len(sched), func(i int) error { return c.Create(env.Ctx, sched[i]) })
	began := time.Now()
	firstTick := began.Truncate(time.Minute).Add(time.Minute)
	end := firstTick.Add(time.Duration(ticks-1)*time.Minute + 20*time.Second)
	time.Sleep(time.Until(end))
	var lateness []float64
	audited(t, firstTick, end, func(ev fixture.AuditEvent) {
		if ev.Verb != "create" || ev.Stage != "ResponseComplete" || ev.ObjectRef == nil || ev.ObjectRef.Resource != "drillruns" || !strings.HasPrefix(ev.ObjectRef.Name, "cron-") {
			return
		}
		i := strings.LastIndexByte(ev.ObjectRef.Name, '-')
		unix, err := strconv.ParseInt(ev.ObjectRef.Name[i+1:], 10, 64)
		if err != nil {
			return
		}
		lateness = append(lateness, float64(ev.StageTimestamp.Sub(time.Unix(unix, 0)).Microseconds())/1000)
	})
	if len(lateness) < scheduled*ticks/2 {
		t.Errorf("only %d scheduled runs were created in %d ticks of %d drills", len(lateness), ticks, scheduled)
	}
	if len(lateness) > 0 {
		f["schedule_lateness_p50_ms"] = percentile(lateness, 50)
		f["schedule_lateness_ms"] = percentile(lateness, 99)
	}
	t.Logf("schedule lateness of %d runs: p50 %.0f ms, p99 %.0f ms", len(lateness), percentile(lateness, 50), percentile(lateness, 99))
	// The scheduled drills stop before the namespace goes.
	for _, d := range sched {
		_ = c.Patch(env.Ctx, d, client.RawPatch("application/merge-patch+json", []byte(`{"spec":{"suspend":true}}`)))
	}
}

// loadDrill is an on-demand drill of a claim that has no snapshots: its
// runs end NoReadySnapshot at once.
func loadDrill(ns, name string) *drillsv1.RestoreDrill {
	return &drillsv1.RestoreDrill{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
		Spec: drillsv1.RestoreDrillSpec{
			Source:   drillsv1.SourceSpec{PersistentVolumeClaimName: "data-" + name + "-0"},
			Database: drillsv1.DatabaseSpec{Image: fixture.PostgresImage},
			Checks:   fullChecks,
			Targets:  drillsv1.Targets{RTO: &metav1.Duration{Duration: 15 * time.Minute}, RPO: &metav1.Duration{Duration: 26 * time.Hour}},
		},
	}
}

// finishedRun is the i-th past run of d, as a passing drill leaves it.
func finishedRun(d *drillsv1.RestoreDrill, i int) *drillsv1.DrillRun {
	t0 := time.Date(2026, 1, 1, 3, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Hour)
	at := func(s float64) *metav1.MicroTime {
		m := metav1.NewMicroTime(t0.Add(time.Duration(s * float64(time.Second))))
		return &m
	}
	var phases []drillsv1.PhaseTiming
	clock := 0.0
	for _, p := range []struct {
		name drillsv1.Phase
		took float64
	}{{drillsv1.PhaseSelectingSnapshot, 0.05}, {drillsv1.PhaseProvisioning, 0.3}, {drillsv1.PhaseRestoringVolume, 20}, {drillsv1.PhaseStartingDatabase, 2}, {drillsv1.PhaseValidating, 3}, {drillsv1.PhaseTearingDown, 5.5}} {
		phases = append(phases, drillsv1.PhaseTiming{Name: p.name, StartTime: *at(clock), EndTime: at(clock + p.took), Seconds: ptr.To(p.took)})
		clock += p.took
	}
	start, done := metav1.NewTime(t0), metav1.NewTime(t0.Add(31*time.Second))
	return &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: d.Namespace, Name: fmt.Sprintf("%s-past-%05d", d.Name, i), Labels: map[string]string{drillsv1.LabelDrill: d.Name}},
		Spec:       drillsv1.DrillRunSpec{DrillName: d.Name, Trigger: drillsv1.TriggerSchedule},
		Status: drillsv1.DrillRunStatus{
			Phase: drillsv1.PhaseDone, Result: drillsv1.ResultSucceeded, Message: "3 checks passed; RTO 25.4s; RPO 2h00m (Snapshot)",
			Snapshot: &drillsv1.SnapshotRef{Name: "nightly", ClaimName: d.Spec.Source.PersistentVolumeClaimName, ContentName: "snapcontent-" + d.Name,
				SnapshotHandle: "snap-" + d.Name, CreationTime: &start},
			SandboxNamespace: "drill-" + d.Name + "-past", SandboxRemoved: true, Recorded: true, VolumeName: "pvc-" + d.Name,
			Phases: phases,
			Checks: []drillsv1.CheckResult{
				{Name: "orders-present", Database: "app", Passed: true, Value: "20000", Expected: ">= 1", Seconds: 0.01},
				{Name: "TablesReadable", Database: "app", Passed: true, Value: "2 tables, 21000 rows, 0 large objects", Expected: "every table readable", Seconds: 0.4},
				{Name: "Amcheck", Database: "app", Passed: true, Value: "2 tables, 3 indexes verified", Expected: "every table and btree index verified", Seconds: 0.6},
			},
			RTO:            &drillsv1.RTOMeasurement{Seconds: 25.4, TargetSeconds: ptr.To(900.0), Met: true},
			RPO:            &drillsv1.RPOMeasurement{Seconds: 7200, TargetSeconds: ptr.To(93600.0), Met: true, Basis: drillsv1.RPOBasisSnapshot, SnapshotSeconds: ptr.To(7200.0)},
			StartTime:      &start,
			CompletionTime: &done,
		},
	}
}

// statusLatency creates a run of d and times its first status write, as a
// watch sees it.
func statusLatency(t *testing.T, env *fixture.Env, c client.WithWatch, d *drillsv1.RestoreDrill) time.Duration {
	ctx, cancel := context.WithTimeout(env.Ctx, time.Minute)
	defer cancel()
	w, err := c.Watch(ctx, &drillsv1.DrillRunList{}, client.InNamespace(d.Namespace), client.MatchingLabels{drillsv1.LabelDrill: d.Name})
	if err != nil {
		t.Fatal(err)
	}
	defer w.Stop()
	start := time.Now()
	run, err := startRun(ctx, c, d)
	if err != nil {
		t.Fatal(err)
	}
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			t.Fatalf("watch: %v", ev.Object)
		}
		if r, ok := ev.Object.(*drillsv1.DrillRun); ok && r.Name == run.Name && (r.Status.Phase != "" || r.Status.Result != "") {
			return time.Since(start)
		}
	}
	t.Fatalf("no status write of %s within a minute", run.Name)
	return 0
}

// parallel runs do(0..n-1) on workers goroutines and fails on the first
// error.
func parallel(t *testing.T, workers, n int, do func(i int) error) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		}()
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	if first != nil {
		t.Fatal(first)
	}
}

func median(v []float64) float64 { return percentile(v, 50) }

// percentile is the nearest-rank percentile p of v.
func percentile(v []float64, p float64) float64 {
	if len(v) == 0 {
		return math.NaN()
	}
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	rank := int(math.Ceil(p / 100 * float64(len(s))))
	return s[min(max(rank, 1), len(s))-1]
}

// machine describes where the figures were made.
func machine() map[string]string {
	m := map[string]string{
		"cpus": strconv.Itoa(runtime.NumCPU()), "goos": runtime.GOOS, "goarch": runtime.GOARCH,
		"drillerd": version, "date": time.Now().UTC().Format(time.RFC3339),
		"storage_class": cmp.Or(storageClass, "the source claim's"),
	}
	if out, err := exec.Command("uname", "-r").Output(); err == nil {
		m["kernel"] = strings.TrimSpace(string(out))
	}
	if data, err := os.ReadFile("/proc/loadavg"); err == nil {
		m["loadavg_at_start"] = strings.Join(strings.Fields(string(data))[:3], " ")
	}
	return m
}

// targets are the targets, for the table.
var targets = map[string]string{
	"overhead_ratio": "<= 1.10", "detection_lag_p50_ms": "<= 50", "detection_lag_p99_ms": "<= 200",
	"api_requests_per_drill": "<= 30", "teardown_seconds": "<= 3", "peer_ratio": "<= 0.5",
	"rss_idle_mib": "<= 40", "rss_loaded_mib": "<= 150", "schedule_lateness_ms": "<= 500 (p99)",
	"tables_readable_ratio": "<= 1.2",
}

var order = []string{
	"overhead_ratio", "detection_lag_p50_ms", "detection_lag_p99_ms", "detection_lag_after_reported_p50_ms",
	"detection_lag_after_reported_p99_ms", "api_requests_per_drill", "teardown_seconds",
	"peer_ratio", "rss_idle_mib", "rss_idle_anon_mib", "rss_loaded_mib", "rss_loaded_anon_mib", "status_latency_ms", "status_latency_p99_ms",
	"schedule_lateness_p50_ms", "schedule_lateness_ms", "tables_readable_ratio", "amcheck_mib_per_s", "concurrent_drills_per_hour",
}

// printTable prints the figures with their targets.
func printTable(r results) {
	fmt.Printf("\n%-28s %12s  %s\n", "figure", "value", "target")
	for _, k := range order {
		v, ok := r.Figures[k]
		if !ok {
			fmt.Printf("%-28s %12s  %s\n", k, "not measured", targets[k])
			continue
		}
		fmt.Printf("%-28s %12.3f  %s\n", k, v, targets[k])
	}
	for _, db := range r.Databases {
		fmt.Printf("\n%s, %d drills: RTO %.2fs, irreducible %.2fs, overhead %.3f, detection lag p50 %.0f ms p99 %.0f ms (after the kubelet's report %.0f / %.0f ms), %.0f requests, teardown %.2fs, TablesReadable %.2fs vs psql %.2fs, Amcheck %.1f MiB/s\n",
			db.Name, db.Drills, db.RTOSeconds, db.IrreducibleSeconds, db.OverheadRatio, db.DetectionLagP50MS, db.DetectionLagP99MS, db.OwnLagP50MS, db.OwnLagP99MS,
			db.APIRequestsPerDrill, db.TeardownSeconds, db.TablesReadableSecond, db.PsqlCountSeconds, db.AmcheckMiBPerS)
	}
}
