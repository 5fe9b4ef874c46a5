package drill_test

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/report"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/nodeemu"
)

const (
	// catalogProducts is how many rows the catalog's table has.
	catalogProducts = 300
	// snapshotSpaceError is what the emulated CSI driver answers when
	// asked to cut the failing snapshot.
	snapshotSpaceError = "the storage backend is out of snapshot space"
	// shortRPOTarget is the RPO target of the drill whose newest snapshot
	// soon is older than it.
	shortRPOTarget = 30 * time.Second
)

// slowCut is how long the emulated CSI driver takes to cut the slow
// snapshot: far longer than drillerd takes from `drillerd run` to picking
// a snapshot, so that the run sees it not yet ready.
var slowCut = fixture.Scaled(30 * time.Second)

// TestSkippedSnapshots runs a drill of a claim with one good snapshot
// while a real Prometheus scrapes drillerd with deploy/monitoring's rules.
// With only good snapshots nothing is skipped: the run lists none, the
// counters are 0 and neither SnapshotsFailing nor NewestSnapshotTooOld
// holds for the drill. Then a newer snapshot fails (the emulated driver's
// error) and a newer still is being cut: the next run restores the good
// one and Succeeds, lists both with their reasons in its status and a
// Warning event, the drill counts them by reason in its status and
// drillerd_drill_snapshots_skipped_total, and SnapshotsFailing fires.
// Between drills, a drill whose RPO target the newest snapshot has
// outgrown has drillerd_drill_newest_snapshot_age_seconds above its target
// and NewestSnapshotTooOld holds for it.
func TestSkippedSnapshots(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	env := fixture.New(t, cluster)
	p, pod := newProduction(t, env, "snapshots", "catalog")
	ns := p.ns
	db := env.Connect(pod)
	env.Exec(db, `CREATE TABLE products (id serial PRIMARY KEY, name text NOT NULL)`)
	env.Exec(db, fmt.Sprintf(`INSERT INTO products (name) SELECT 'product ' || g FROM generate_series(1, %d) g`, catalogProducts))
	good := env.CreateSnapshot(ns, "catalog-good", p.pg.ClaimName(), nil)

	ruleFile, err := fixture.RuleFile(repoPath(t, "deploy", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := fixture.AlertRules(ruleFile)
	if err != nil {
		t.Fatal(err)
	}
	prom := env.StartPrometheus("drillerd", []string{daemon.Metrics}, ruleFile)
	w := &snapshotWatch{p: p, prom: prom, rules: rules}

	// Only good snapshots: nothing is skipped, nothing alerts.
	d := p.newDrill("catalog").check("products", "SELECT count(*) FROM products", drillsv1.Expectation{Equals: ptr.To(strconv.Itoa(catalogProducts))}).
		targets(15*time.Minute, 26*time.Hour)
	clean, code := p.run(t, d)
	if code != 0 || clean.Status.Result != drillsv1.ResultSucceeded || clean.Status.Snapshot == nil || clean.Status.Snapshot.Name != good.Name {
		t.Fatalf("exit %d, %s/%s: %s; want a passing drill of snapshot %s", code, clean.Status.Result, clean.Status.Reason, clean.Status.Message, good.Name)
	}
	if len(clean.Status.SkippedSnapshots) != 0 || env.HasEvent(ns, "DrillRun", clean.Name, "SnapshotsSkipped", "") {
		t.Errorf("with only good snapshots, run %s skipped %+v (events %v)", clean.Name, clean.Status.SkippedSnapshots, env.Events(ns, "DrillRun", clean.Name))
	}
	if stored := waitSummarised(t, p, d, clean.Name); len(stored.Status.SkippedSnapshots) != 0 {
		t.Errorf("the drill's status.skippedSnapshots is %v, want none", stored.Status.SkippedSnapshots)
	}
	w.scraped(t, "catalog", map[string]float64{"Failed": 0, "NotReady": 0}, 1)
	w.holdsNot(t, "catalog", "SnapshotsFailing", "NewestSnapshotTooOld")

	// A newer snapshot fails, a newer still is being cut.
	env.StartSnapshot(ns, "catalog-failed", p.pg.ClaimName(), map[string]string{nodeemu.AnnotationSnapshotError: snapshotSpaceError})
	env.WaitSnapshotFailed(ns, "catalog-failed")
	env.StartSnapshot(ns, "catalog-slow", p.pg.ClaimName(), map[string]string{nodeemu.AnnotationSnapshotDelay: slowCut.String()})
	// Not p.runAgain: the snapshot controller is still cutting
	// catalog-slow, so the sources are not settled to be compared.
	skipping, code := drillerdRun(t, cluster.Kubeconfig, ns, d.d, "--timeout", "5m")
	p.assertNoSandboxLeft(t, skipping)
	s := skipping.Status
	if code != 0 || s.Result != drillsv1.ResultSucceeded || s.Snapshot == nil || s.Snapshot.Name != good.Name {
		t.Fatalf("exit %d, %s/%s: %s, snapshot %+v; want a passing drill of the older snapshot %s", code, s.Result, s.Reason, s.Message, s.Snapshot, good.Name)
	}
	// Newest first, but the two were created within a second or so, and
	// creation timestamps count whole seconds: their order is not asserted.
	skipped := map[string]drillsv1.SkippedSnapshot{}
	for _, sk := range s.SkippedSnapshots {
		skipped[sk.Name] = sk
	}
	if slow, failed := skipped["catalog-slow"], skipped["catalog-failed"]; len(s.SkippedSnapshots) != 2 || slow.Reason != drillsv1.SnapshotNotReady ||
		failed.Reason != drillsv1.SnapshotFailed || !strings.Contains(failed.Message, snapshotSpaceError) {
		t.Errorf("status.skippedSnapshots %+v: want catalog-slow NotReady and catalog-failed Failed with the driver's error", s.SkippedSnapshots)
	}
	// drillerd run's report names both, the failed one with its driver's error.
	var text strings.Builder
	report.Text(&text, d.d, skipping)
	for _, line := range []string{"Skipped   catalog-slow, newer, NotReady", "Skipped   catalog-failed, newer, Failed: "} {
		if !strings.Contains(text.String(), line) {
			t.Errorf("drillerd run's report lacks %q:\n%s", line, text.String())
		}
	}
	if !strings.Contains(text.String(), snapshotSpaceError) {
		t.Errorf("drillerd run's report does not say why catalog-failed failed (%q):\n%s", snapshotSpaceError, text.String())
	}
	for _, text := range []string{"catalog-slow (NotReady)", "catalog-failed (Failed)"} {
		if !env.HasWarning(ns, "DrillRun", skipping.Name, "SnapshotsSkipped", text) {
			t.Errorf("no SnapshotsSkipped Warning naming %s: %v", text, env.Events(ns, "DrillRun", skipping.Name))
		}
	}
	if stored := waitSummarised(t, p, d, skipping.Name); !reflect.DeepEqual(stored.Status.SkippedSnapshots, map[string]int64{"Failed": 1, "NotReady": 1}) {
		t.Errorf("the drill's status.skippedSnapshots is %v, want Failed 1 and NotReady 1", stored.Status.SkippedSnapshots)
	}
	w.scraped(t, "catalog", map[string]float64{"Failed": 1, "NotReady": 1}, 2)
	alert := w.alerting(t, "catalog", "SnapshotsFailing")
	if alert.State != "firing" || alert.Labels["severity"] != "warning" {
		t.Errorf("SnapshotsFailing %+v: want firing with severity warning", alert)
	}
	// The slow snapshot is cut in the end (and the namespace can go).
	env.WaitSnapshotReady(ns, "catalog-slow")

	// Between drills: a drill never run whose RPO target the newest
	// snapshot outgrows.
	stale := p.newDrill("catalog-rpo").targets(15*time.Minute, shortRPOTarget)
	if err := p.c.Create(env.Ctx, stale.d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.c.Delete(context.Background(), stale.d) })
	age := `drillerd_drill_newest_snapshot_age_seconds{drill=catalog-rpo,namespace=` + ns + `}`
	env.WaitFor(fixture.Scaled(2*time.Minute), "drillerd to export a newest-snapshot age above catalog-rpo's RPO target", func(context.Context) (bool, error) {
		got, err := tryScrape(daemon.Metrics)
		if err != nil {
			return false, err
		}
		v, ok := got[age]
		return ok && v > shortRPOTarget.Seconds(), fmt.Errorf("%s = %v (present %v)", age, v, ok)
	})
	// NewestSnapshotTooOld waits for: 10m before it fires; what is asserted
	// is that Prometheus evaluates deploy/'s rule true for this drill (the
	// alert is pending, or firing), not the ten minutes.
	tooOld := w.alerting(t, "catalog-rpo", "NewestSnapshotTooOld")
	if v, err := strconv.ParseFloat(tooOld.Value, 64); err != nil || v <= shortRPOTarget.Seconds() {
		t.Errorf("NewestSnapshotTooOld's value %q: want the newest snapshot's age, above %s", tooOld.Value, shortRPOTarget)
	}
	w.holdsNot(t, "catalog", "NewestSnapshotTooOld")
}

// snapshotWatch reads what drillerd's /metrics and a Prometheus that
// scrapes it say of a namespace's drills.
type snapshotWatch struct {
	p     *production
	prom  *fixture.Prometheus
	rules map[string]fixture.AlertRule
}

// scraped waits until drillerd's /metrics counts runs Succeeded runs of
// drill and then checks drillerd_drill_snapshots_skipped_total by reason;
// then it waits until Prometheus has scraped those runs, the same count of
// Failed snapshots and the newest snapshot's age: what the alerts of
// skipped and old snapshots are evaluated on.
func (w *snapshotWatch) scraped(t *testing.T, drill string, skipped map[string]float64, runs float64) {
	t.Helper()
	env, ns := w.p.env, w.p.ns
	series := func(name string, label string) string {
		return name + "{drill=" + drill + ",namespace=" + ns + "," + label + "}"
	}
	succeeded := series("drillerd_drill_runs_total", "result=Succeeded")
	var got map[string]float64
	env.WaitFor(fixture.ShortTimeout, "drillerd's metrics to count the runs of "+drill, func(context.Context) (bool, error) {
		m, err := tryScrape(daemon.Metrics)
		got = m
		return err == nil && m[succeeded] == runs, err
	})
	for reason, want := range skipped {
		key := series("drillerd_drill_snapshots_skipped_total", "reason="+reason)
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
	selector := fmt.Sprintf(`namespace=%q,drill=%q`, ns, drill)
	queries := []string{
		fmt.Sprintf(`drillerd_drill_runs_total{%s,result="Succeeded"} == %v`, selector, runs),
		fmt.Sprintf(`drillerd_drill_snapshots_skipped_total{%s,reason="Failed"} == %v`, selector, skipped["Failed"]),
		fmt.Sprintf(`drillerd_drill_newest_snapshot_age_seconds{%s}`, selector),
	}
	env.WaitFor(fixture.ShortTimeout, "Prometheus to scrape the runs and snapshots of "+drill, func(ctx context.Context) (bool, error) {
		for _, q := range queries {
			samples, err := w.prom.Query(ctx, q)
			if err != nil || len(samples) != 1 {
				return false, fmt.Errorf("%s: %v %v", q, samples, err)
			}
		}
		return true, nil
	})
}

// alerting waits until alert is pending or firing in Prometheus for drill
// and returns it.
func (w *snapshotWatch) alerting(t *testing.T, drill, alert string) fixture.Alert {
	t.Helper()
	var found fixture.Alert
	w.p.env.WaitFor(fixture.Scaled(time.Minute), alert+" for "+drill+" in Prometheus", func(ctx context.Context) (bool, error) {
		alerts, err := w.prom.Alerts(ctx)
		if err != nil {
			return false, err
		}
		for _, a := range alerts {
			if a.Labels["alertname"] == alert && a.Labels["namespace"] == w.p.ns && a.Labels["drill"] == drill {
				found = a
				return true, nil
			}
		}
		return false, fmt.Errorf("alerts now: %v", alerts)
	})
	return found
}

// holdsNot checks that the expressions of deploy/'s alerts, evaluated by
// Prometheus now, hold for no series of drill, and that none of the
// alerts is pending or firing for it.
func (w *snapshotWatch) holdsNot(t *testing.T, drill string, alerts ...string) {
	t.Helper()
	ctx := w.p.env.Ctx
	for _, name := range alerts {
		rule, ok := w.rules[name]
		if !ok {
			t.Fatalf("deploy/monitoring has no alert %s", name)
		}
		samples, err := w.prom.Query(ctx, rule.Expr)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			if s.Metric["namespace"] == w.p.ns && s.Metric["drill"] == drill {
				t.Errorf("%s's expression holds for %s: %v", name, drill, s)
			}
		}
	}
	active, err := w.prom.Alerts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range active {
		for _, name := range alerts {
			if a.Labels["alertname"] == name && a.Labels["namespace"] == w.p.ns && a.Labels["drill"] == drill {
				t.Errorf("%s is %s for %s", name, a.State, drill)
			}
		}
	}
}
