//go:build bench

package bench

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/nodeemu"
)

// source is a production database with a ready snapshot.
type source struct {
	ns, claim string
	ip        string // the production pod's address, for psql
	sizeMiB   float64
	// relationsMiB is what Amcheck verifies: every user table, its TOAST
	// and its indexes.
	relationsMiB float64
	tables       []string
}

// newClient is a client of the drills API as the cluster's admin.
func newClient(t *testing.T, env *fixture.Env) client.WithWatch {
	scheme := runtime.NewScheme()
	if err := drillsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	cfg := rest.CopyConfig(env.Config)
	cfg.QPS, cfg.Burst = 500, 1000 // the load is made fast, not throttled by the client
	c, err := client.NewWithWatch(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newSource starts a production PostgreSQL in a namespace of its own,
// fills its table orders with about mib MiB and snapshots it.
func newSource(t *testing.T, env *fixture.Env, name string, mib int) *source {
	ns := env.Namespace("bench-" + name)
	pg := fixture.NewPostgres(ns, name)
	pg.Size = fmt.Sprintf("%dGi", mib/1024+2)
	pod := env.CreatePostgres(pg)
	db := env.Connect(pod)
	env.Exec(db, `CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL)`)
	env.Exec(db, `INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 1000) g`)
	env.Exec(db, `CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, note text, created_at timestamptz NOT NULL DEFAULT now())`)
	// Rows of about 1 KiB, in batches of 100 MiB.
	rows := mib * 1000
	for done := 0; done < rows; done += 100_000 {
		n := min(100_000, rows-done)
		env.Exec(db, fmt.Sprintf(`INSERT INTO orders (customer, note) SELECT g %% 1000 + 1, repeat(md5(g::text), 28) FROM generate_series(1, %d) g`, n))
	}
	env.Exec(db, `CREATE INDEX orders_created_at ON orders (created_at)`)
	env.Exec(db, `VACUUM ANALYZE`)
	env.Exec(db, `CHECKPOINT`)
	s := &source{ns: ns, claim: pg.ClaimName(), ip: pod.Status.PodIP, tables: []string{"customers", "orders"}}
	s.sizeMiB = float64(env.QueryInt(db, `SELECT pg_database_size(current_database())`)) / (1 << 20)
	s.relationsMiB = float64(env.QueryInt(db, `SELECT sum(pg_total_relation_size(c.oid))::bigint FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE c.relkind IN ('r', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'`)) / (1 << 20)
	env.CreateSnapshot(ns, "nightly", pg.ClaimName(), nil)
	t.Logf("source %s: database %.1f MiB, user relations %.1f MiB", name, s.sizeMiB, s.relationsMiB)
	return s
}

// drillOf is a RestoreDrill of s named name with checks (none: the
// built-ins).
func (s *source) drillOf(name string, checks ...drillsv1.Check) *drillsv1.RestoreDrill {
	var sandbox drillsv1.SandboxSpec
	if storageClass != "" {
		sandbox.StorageClassName = &storageClass
	}
	return &drillsv1.RestoreDrill{
		ObjectMeta: metav1.ObjectMeta{Namespace: s.ns, Name: name},
		Spec: drillsv1.RestoreDrillSpec{
			Source: drillsv1.SourceSpec{PersistentVolumeClaimName: s.claim},
			Database: drillsv1.DatabaseSpec{
				Image: fixture.PostgresImage, DataSubPath: "pgdata", DatabaseName: fixture.DBName,
				Auth: drillsv1.AuthSpec{Mode: drillsv1.AuthTrust, User: fixture.DBUser},
			},
			Checks:    checks,
			Sandbox:   sandbox,
			Freshness: &drillsv1.FreshnessSpec{SQL: "SELECT max(created_at) FROM orders"},
			Timeouts: drillsv1.Timeouts{
				Database: &metav1.Duration{Duration: 10 * time.Minute},
				Checks:   &metav1.Duration{Duration: 30 * time.Minute},
				Total:    &metav1.Duration{Duration: time.Hour},
			},
		},
	}
}

// fullChecks are a drill's usual checks: one of the drill's own and both
// built-ins.
var fullChecks = []drillsv1.Check{
	{Name: "orders-present", SQL: "SELECT count(*) FROM orders", Expect: &drillsv1.Expectation{Min: ptr.To("1")}},
	{Builtin: drillsv1.BuiltinTablesReadable},
	{Builtin: drillsv1.BuiltinAmcheck},
}

// oneCheck is the one check the plain script runs too.
var oneCheck = []drillsv1.Check{
	{Name: "orders-present", SQL: "SELECT count(*) FROM orders", Expect: &drillsv1.Expectation{Min: ptr.To("1")}},
}

// startRun creates a run of drill.
func startRun(ctx context.Context, c client.Client, drill *drillsv1.RestoreDrill) (*drillsv1.DrillRun, error) {
	run := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: drill.Namespace, GenerateName: drill.Name + "-bench-", Labels: map[string]string{drillsv1.LabelDrill: drill.Name}},
		Spec:       drillsv1.DrillRunSpec{DrillName: drill.Name, Trigger: drillsv1.TriggerManual},
	}
	return run, c.Create(ctx, run)
}

// waitDone watches run until it is Done and returns it, and when this
// process saw it Done.
func waitDone(ctx context.Context, c client.WithWatch, run *drillsv1.DrillRun) (*drillsv1.DrillRun, time.Time, error) {
	for {
		current := &drillsv1.DrillRun{}
		if err := c.Get(ctx, client.ObjectKeyFromObject(run), current); err != nil {
			return nil, time.Time{}, err
		}
		if current.Status.Phase == drillsv1.PhaseDone {
			return current, time.Now(), nil
		}
		w, err := c.Watch(ctx, &drillsv1.DrillRunList{}, client.InNamespace(run.Namespace),
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", run.Name)},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: current.ResourceVersion}})
		if err != nil {
			return nil, time.Time{}, err
		}
		for ev := range w.ResultChan() {
			if ev.Type == watch.Error {
				break
			}
			if r, ok := ev.Object.(*drillsv1.DrillRun); ok && r.Status.Phase == drillsv1.PhaseDone {
				w.Stop()
				return r, time.Now(), nil
			}
		}
		w.Stop()
		if err := ctx.Err(); err != nil {
			return nil, time.Time{}, err
		}
	}
}

// sample is what one drill measured.
type sample struct {
	run            *drillsv1.DrillRun
	wall           time.Duration // from the request to create the run to seeing it Done
	started        time.Time     // when the request to create it was sent
	rto            float64
	irreducible    float64 // volume copy + process start to first accepting connection + checks and write probe
	detectionLagMS float64 // first accepting connection (ground truth) to drillerd's "database ready"
	// ownLagMS is drillerd's part of it: from the later of the first
	// accepting connection and the kubelet's report that the container
	// runs (ground truth) to drillerd's "database ready".
	ownLagMS       float64
	teardown       float64
	tablesReadable float64 // seconds of TablesReadable, every database
	amcheck        float64 // seconds of Amcheck, every database
	apiRequests    int
}

// drill runs drill once and measures it against the node's ground truth.
func drill(t *testing.T, env *fixture.Env, c client.WithWatch, d *drillsv1.RestoreDrill) *sample {
	t.Helper()
	started := time.Now()
	run, err := startRun(env.Ctx, c, d)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(env.Ctx, time.Hour)
	defer cancel()
	done, seen, err := waitDone(ctx, c, run)
	if err != nil {
		t.Fatalf("waiting for %s: %v", run.Name, err)
	}
	s := &sample{run: done, wall: seen.Sub(started), started: started}
	st := done.Status
	if st.Result != drillsv1.ResultSucceeded {
		t.Fatalf("run %s: %s/%s: %s", done.Name, st.Result, st.Reason, st.Message)
	}
	s.rto = st.RTO.Seconds
	for _, p := range st.Phases {
		if p.Name == drillsv1.PhaseTearingDown && p.Seconds != nil {
			s.teardown = *p.Seconds
		}
	}
	for _, ch := range st.Checks {
		switch ch.Name {
		case string(drillsv1.BuiltinTablesReadable):
			s.tablesReadable += ch.Seconds
		case string(drillsv1.BuiltinAmcheck):
			s.amcheck += ch.Seconds
		}
	}
	volume, err := nodeemu.ReadVolumeTruth(cluster.GroundTruth, st.VolumeName)
	if err != nil {
		t.Fatal(err)
	}
	pod, err := nodeemu.ReadPodTruth(cluster.GroundTruth, st.SandboxNamespace, "db")
	if err != nil || len(pod.Processes) == 0 || pod.Processes[0].FirstAccepting.IsZero() {
		t.Fatalf("pod ground truth of %s: %+v %v", st.SandboxNamespace, pod, err)
	}
	proc := pod.Processes[0]
	validating, ok := rto.PhaseStart(st, drillsv1.PhaseValidating)
	if !ok || st.Database == nil || st.Database.WriteAcceptedTime == nil {
		t.Fatalf("run %s: no Validating phase or accepted write", done.Name)
	}
	checks := st.Database.WriteAcceptedTime.Sub(validating).Seconds()
	s.irreducible = volume.Usable.Sub(volume.ProvisionStarted).Seconds() + proc.FirstAccepting.Sub(proc.Started).Seconds() + checks
	s.detectionLagMS = float64(validating.Sub(proc.FirstAccepting).Microseconds()) / 1000
	if proc.Reported.IsZero() {
		t.Fatalf("pod ground truth of %s: the kubelet never reported its database running: %+v", st.SandboxNamespace, proc)
	}
	visible := proc.FirstAccepting
	if proc.Reported.After(visible) {
		visible = proc.Reported
	}
	s.ownLagMS = float64(validating.Sub(visible).Microseconds()) / 1000
	return s
}

// audited calls visit once for each of drillerd's requests whose response
// the audit log has in [from, to) (to zero: no end).
func audited(t *testing.T, from, to time.Time, visit func(fixture.AuditEvent)) {
	t.Helper()
	if err := fixture.AuditedResponses(cluster.AuditLog, []string{identity.User()}, from, to, fixture.OncePerRequest(visit)); err != nil {
		t.Fatal(err)
	}
}

// drillRequests counts drillerd's requests in [from, to) that a drill
// makes: not the Lease, not the informers' watches, not the sweep's
// cluster-wide lists (the end-to-end test counts the same way).
func drillRequests(t *testing.T, from, to time.Time) int {
	n := 0
	audited(t, from, to, func(ev fixture.AuditEvent) {
		if !strings.HasPrefix(ev.UserAgent, "drillerd/"+version+" (") {
			t.Errorf("a request of drillerd's says %q, not its version %s", ev.UserAgent, version)
		}
		if ev.Verb == "watch" || ev.ObjectRef != nil && (ev.ObjectRef.Resource == "leases" || ev.Verb == "list" && ev.ObjectRef.Namespace == "") {
			return
		}
		n++
	})
	return n
}

// sequential runs n drills of d one after the other and counts each one's
// API requests: those between its start and the next one's (the last
// one's: until its verdict's events are sent).
func sequential(t *testing.T, env *fixture.Env, c client.WithWatch, d *drillsv1.RestoreDrill, n int) []*sample {
	var out []*sample
	for i := 0; i < n; i++ {
		s := drill(t, env, c, d)
		t.Logf("%s: RTO %.2fs (irreducible %.2fs), detection lag %.0f ms (%.0f ms after the kubelet reported it running), teardown %.2fs, wall %.2fs",
			s.run.Name, s.rto, s.irreducible, s.detectionLagMS, s.ownLagMS, s.teardown, s.wall.Seconds())
		out = append(out, s)
	}
	env.WaitFor(fixture.ShortTimeout, "the last run's verdict event", func(context.Context) (bool, error) {
		return env.HasEvent(d.Namespace, "RestoreDrill", d.Name, "RunSucceeded", out[len(out)-1].run.Name), nil
	})
	for i, s := range out {
		to := time.Now()
		if i+1 < len(out) {
			to = out[i+1].started
		}
		s.apiRequests = drillRequests(t, s.started, to)
	}
	return out
}

// psqlCount times psql counting the rows of every table of s's database,
// one process, one -c per table.
func psqlCount(t *testing.T, s *source) time.Duration {
	// Without index-only scans: count(*) of a vacuumed table would read
	// only its primary key's index, not the table TablesReadable reads.
	args := []string{"-h", s.ip, "-U", fixture.DBUser, "-d", fixture.DBName, "-tA", "-c", "SET enable_indexonlyscan = off"}
	for _, table := range s.tables {
		args = append(args, "-c", "SELECT count(*) FROM "+pgx.Identifier{table}.Sanitize())
	}
	start := time.Now()
	if out, err := command("psql", args...).CombinedOutput(); err != nil {
		t.Fatalf("psql: %v\n%s", err, out)
	}
	return time.Since(start)
}
