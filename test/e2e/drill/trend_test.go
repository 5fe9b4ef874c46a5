package drill_test

import (
	"context"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/test/fixture"
)

// databasesOnDisk sums the files of every database directory (base/<oid>)
// of a data directory: what pg_database_size counts.
func databasesOnDisk(t *testing.T, pgdata string) int64 {
	t.Helper()
	dirs, err := os.ReadDir(filepath.Join(pgdata, "base"))
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	for _, d := range dirs {
		if _, err := strconv.ParseUint(d.Name(), 10, 32); err != nil || !d.IsDir() {
			continue
		}
		files, err := os.ReadDir(filepath.Join(pgdata, "base", d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if info, err := f.Info(); err == nil && info.Mode().IsRegular() {
				total += info.Size()
			}
		}
	}
	return total
}

// rtoTrend: three runs of one drill each record what they restored and
// read, measured against the snapshot's physical copy and the source's
// tables; the drill keeps them in status.recentRuns, forecasts the RTO with
// the least-squares line through them, and the metrics say the same.
func (p *production) rtoTrend(t *testing.T) {
	env := p.env
	// Runs one after the other span a minute at most: a forecast needs
	// them to span a tenth of its horizon.
	const horizon = 2 * time.Minute
	d := p.newDrill("trend").builtin(drillsv1.BuiltinTablesReadable).builtin(drillsv1.BuiltinAmcheck)
	d.d.Spec.Targets = drillsv1.Targets{RTO: &metav1.Duration{Duration: 15 * time.Minute}, RTOTrendHorizon: &metav1.Duration{Duration: horizon}}
	if err := p.c.Create(env.Ctx, d.d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.c.Delete(env.Ctx, d.d) })

	snap, err := env.Snapshots.SnapshotV1().VolumeSnapshots(p.ns).Get(env.Ctx, "nightly", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	backup := databasesOnDisk(t, filepath.Join(env.PhysicalSnapshot(snap), "pgdata"))
	source := env.Connect(env.WaitPodReady(p.ns, p.pg.PodName()))
	// Every user table's heap and TOAST pages: the built-ins read them all.
	tables := env.QueryInt(source, `SELECT sum(pg_relation_size(c.oid) + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0))::bigint
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`)

	var runs []*drillsv1.DrillRun
	for range 3 {
		run, code := drillerdRun(t, cluster.Kubeconfig, p.ns, d.d, "--timeout", fixture.Scaled(5*time.Minute).String())
		if code != 0 || run.Status.RTO == nil {
			t.Fatalf("run %s exited %d: %s (%s), RTO %+v", run.Name, code, run.Status.Result, run.Status.Message, run.Status.RTO)
		}
		runs = append(runs, run)
		size := run.Status.Size
		if size == nil || size.CapacityBytes == nil || size.DatabaseBytes == nil || size.ReadBytes == nil {
			t.Fatalf("run %s size %+v, want the claim's capacity, the databases' size and what was read", run.Name, size)
		}
		if restore := run.Status.Snapshot.RestoreSize; restore == nil || *size.CapacityBytes < restore.Value() {
			t.Errorf("run %s: capacity %d, want at least the snapshot's restore size %v", run.Name, *size.CapacityBytes, restore)
		}
		// The copy's databases are the backup's, plus what starting a
		// server on them adds (WAL replayed into relations, relation cache
		// files).
		if db := *size.DatabaseBytes; db < backup*95/100 || db > backup*105/100+1<<20 {
			t.Errorf("run %s: databases %d bytes, want the %d bytes of the snapshot's base/ within 5%% (+1 MiB)", run.Name, db, backup)
		}
		if read := *size.ReadBytes; read < tables || read > 2*(*size.DatabaseBytes) {
			t.Errorf("run %s: read %d bytes, want at least the %d bytes of the user tables and at most twice the databases (%d)", run.Name, read, tables, *size.DatabaseBytes)
		}
		t.Logf("run %s: RTO %.2fs, capacity %d, databases %d (snapshot %d), read %d (tables %d)", run.Name, run.Status.RTO.Seconds,
			*size.CapacityBytes, *size.DatabaseBytes, backup, *size.ReadBytes, tables)
	}

	// A run is Done before drillerd records it in its drill's status.
	stored := &drillsv1.RestoreDrill{}
	env.WaitFor(fixture.ShortTimeout, "the newest run to be recorded in the drill's status", func(ctx context.Context) (bool, error) {
		err := p.c.Get(ctx, client.ObjectKeyFromObject(d.d), stored)
		return err == nil && stored.Status.LastRun != nil && stored.Status.LastRun.Name == runs[2].Name, err
	})
	recent := stored.Status.RecentRuns
	if len(recent) != 3 {
		t.Fatalf("recent runs %+v, want the 3 runs", recent)
	}
	for i, r := range runs {
		got := recent[i]
		if got.Name != r.Name || ptr.Deref(got.RTOSeconds, -1) != r.Status.RTO.Seconds || ptr.Deref(got.DatabaseBytes, -1) != *r.Status.Size.DatabaseBytes ||
			ptr.Deref(got.ReadBytes, -1) != *r.Status.Size.ReadBytes || !got.CompletionTime.Equal(r.Status.CompletionTime) {
			t.Errorf("recent run %d = %+v, want run %s as it ended", i, got, r.Name)
		}
	}
	last := runs[2].Status
	wantPerGiB := last.RTO.Seconds / (float64(*last.Size.DatabaseBytes) / (1 << 30))
	if got := stored.Status.LastRun.RTOSecondsPerGiB; got == nil || math.Abs(*got-wantPerGiB) > 0.001 {
		t.Errorf("RTO per GiB %v, want %.3f", got, wantPerGiB)
	}

	// The least-squares line through the three (completion, RTO) points,
	// read the horizon after the newest.
	var xs, ys [3]float64
	for i, r := range runs {
		xs[i] = r.Status.CompletionTime.Sub(runs[0].Status.CompletionTime.Time).Hours() / 24
		ys[i] = r.Status.RTO.Seconds
	}
	mx, my := (xs[0]+xs[1]+xs[2])/3, (ys[0]+ys[1]+ys[2])/3
	var sxx, sxy float64
	for i := range 3 {
		sxx += (xs[i] - mx) * (xs[i] - mx)
		sxy += (xs[i] - mx) * (ys[i] - my)
	}
	slope := sxy / sxx
	want := max(my+slope*(xs[2]+horizon.Hours()/24-mx), 0)
	f := stored.Status.RTOForecast
	if f == nil {
		t.Fatal("no RTO forecast after 3 runs")
	}
	if f.Runs != 3 || f.HorizonSeconds != horizon.Seconds() || math.Abs(f.Seconds-want) > 0.002 ||
		f.LowerSeconds > f.Seconds || !f.Time.Equal(&metav1.Time{Time: runs[2].Status.CompletionTime.Add(horizon)}) {
		t.Errorf("forecast %+v, want 3 runs, %s ahead of the newest, %.3fs (slope %.3fs/day) and a lower bound below it", f, horizon, want, slope)
	}
	if f.TargetSeconds == nil || *f.TargetSeconds != 900 || f.AtRisk != (f.LowerSeconds > 900) {
		t.Errorf("forecast %+v: target or atRisk wrong for a 15m target", f)
	}

	got := scrape(t, daemon.Metrics)
	labels := "{drill=trend,horizon=" + horizon.String() + ",namespace=" + p.ns + "}"
	for name, value := range map[string]float64{
		"drillerd_drill_rto_forecast_seconds" + labels:                               f.Seconds,
		"drillerd_drill_rto_forecast_lower_bound_seconds" + labels:                   f.LowerSeconds,
		"drillerd_drill_rto_seconds_per_gib{drill=trend,namespace=" + p.ns + "}":     *stored.Status.LastRun.RTOSecondsPerGiB,
		"drillerd_drill_restored_database_bytes{drill=trend,namespace=" + p.ns + "}": float64(*last.Size.DatabaseBytes),
		"drillerd_drill_checks_read_bytes{drill=trend,namespace=" + p.ns + "}":       float64(*last.Size.ReadBytes),
	} {
		if g, ok := got[name]; !ok || g != value {
			t.Errorf("%s = %v (present %v), want %v", name, g, ok, value)
		}
	}
}
