package drill_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/report"
	"github.com/drillerd/drillerd/test/fixture"
)

// ledgerEntries is how many rows the ledger table has, before and after
// the database is re-created: the same data, so that only its identity
// tells the two apart.
const ledgerEntries = 500

// TestIdentityChanged: a drill succeeds on its claim and records the
// copy's system identifier as its baseline. The database on the claim is
// then re-created (a new cluster, initialised before the next snapshot is
// cut, holding the same table and rows) and the next run is Failed
// IdentityChanged, naming both identifiers. Once the drill's
// spec.source.persistentVolumeClaimName names another claim (a source that
// changed: the baseline's claim differs), a third cluster's identifier is
// no finding: the run Succeeds and the baseline moves to the new claim.
func TestIdentityChanged(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	env := fixture.New(t, cluster)
	p, pod := newProduction(t, env, "identity", "ledger")
	ns := p.ns
	firstID := fillLedger(t, env, pod)
	env.CreateSnapshot(ns, "ledger-1", p.pg.ClaimName(), nil)

	d := p.newDrill("ledger").check("entries", "SELECT count(*) FROM entries", drillsv1.Expectation{Equals: ptr.To(fmt.Sprint(ledgerEntries))}).
		builtin(drillsv1.BuiltinTablesReadable)
	first, code := p.run(t, d)
	if code != 0 || first.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("first run: exit %d, %s/%s: %s; want a passing drill", code, first.Status.Result, first.Status.Reason, first.Status.Message)
	}
	if db := first.Status.Database; db == nil || db.SystemIdentifier != firstID {
		t.Fatalf("first run's status.database %+v: want the source's system identifier %s", db, firstID)
	}
	assertBaseline(t, p, d, first.Name, p.pg.ClaimName(), firstID)

	// The database is re-created on the same claim, then snapshotted: the
	// copy is a cluster initialised before the cut (not NotTheBackup),
	// with the same rows (nothing DataMissing), but another identity.
	secondID := fillLedger(t, env, env.RecreateCluster(p.pg))
	if secondID == firstID {
		t.Fatalf("the re-created database kept system identifier %s", firstID)
	}
	cut := env.CreateSnapshot(ns, "ledger-2", p.pg.ClaimName(), nil)

	second, code := p.runAgain(t, cluster.Kubeconfig, d)
	s := second.Status
	if code != 1 || s.Result != drillsv1.ResultFailed || s.Reason != "IdentityChanged" {
		t.Fatalf("second run: exit %d, %s/%s: %s; want 1 and Failed/IdentityChanged", code, s.Result, s.Reason, s.Message)
	}
	if s.Snapshot == nil || s.Snapshot.Name != cut.Name {
		t.Errorf("second run restored %+v, want snapshot %s", s.Snapshot, cut.Name)
	}
	if db := s.Database; db == nil || db.SystemIdentifier != secondID || db.InitTime == nil || !db.InitTime.Before(s.Snapshot.CreationTime) {
		t.Errorf("second run's status.database %+v: want system identifier %s, initialised before the cut %v", db, secondID, s.Snapshot.CreationTime)
	}
	for _, want := range []string{secondID, firstID, first.Name} {
		if !strings.Contains(s.Message, want) {
			t.Errorf("message %q does not name %s", s.Message, want)
		}
	}
	var text strings.Builder
	report.Text(&text, d.d, second)
	for _, want := range []string{"Failed (IdentityChanged)", "system identifier " + secondID, firstID} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("the report does not say %q:\n%s", want, text.String())
		}
	}
	if !env.HasWarning(ns, "RestoreDrill", d.d.Name, "RunFailed", "IdentityChanged: the restored cluster's system identifier is "+secondID) {
		t.Errorf("no RunFailed Warning naming IdentityChanged on the drill: %v", env.Events(ns, "RestoreDrill", d.d.Name))
	}
	stored := waitSummarised(t, p, d, second.Name)
	if last := stored.Status.LastRun; last.Result != drillsv1.ResultFailed || last.Reason != "IdentityChanged" {
		t.Errorf("the drill's status.lastRun is %s/%s, want Failed/IdentityChanged", last.Result, last.Reason)
	}
	// A failed run does not move the baseline: the next run on this claim
	// is compared with the last one that succeeded.
	assertBaseline(t, p, d, first.Name, p.pg.ClaimName(), firstID)

	// The source changes: the drill now restores another claim, whose
	// database is a third cluster.
	moved := &production{env: env, ns: ns, pg: fixture.NewPostgres(ns, "ledger-new"), c: p.c}
	thirdID := fillLedger(t, env, env.CreatePostgres(moved.pg))
	env.CreateSnapshot(ns, "ledger-new-1", moved.pg.ClaimName(), nil)
	if err := p.c.Get(env.Ctx, client.ObjectKeyFromObject(d.d), d.d); err != nil {
		t.Fatal(err)
	}
	d.source(moved.pg.ClaimName())
	if err := p.c.Update(env.Ctx, d.d); err != nil {
		t.Fatalf("pointing the drill at claim %s: %v", moved.pg.ClaimName(), err)
	}
	third, code := moved.runAgain(t, cluster.Kubeconfig, d)
	if s := third.Status; code != 0 || s.Result != drillsv1.ResultSucceeded {
		t.Fatalf("run on the new source: exit %d, %s/%s: %s; want a passing drill (the baseline is of claim %s)", code, s.Result, s.Reason, s.Message, p.pg.ClaimName())
	}
	if db := third.Status.Database; db == nil || db.SystemIdentifier != thirdID || thirdID == firstID || thirdID == secondID {
		t.Errorf("run on the new source: status.database %+v, want a third system identifier %s (the others: %s, %s)", db, thirdID, firstID, secondID)
	}
	waitSummarised(t, p, d, third.Name)
	assertBaseline(t, p, d, third.Name, moved.pg.ClaimName(), thirdID)
}

// fillLedger creates the ledger table with ledgerEntries rows in the
// database of pod and returns the cluster's system identifier.
func fillLedger(t *testing.T, env *fixture.Env, pod *corev1.Pod) string {
	t.Helper()
	db := env.Connect(pod)
	env.Exec(db, `CREATE TABLE entries (id serial PRIMARY KEY, amount numeric NOT NULL)`)
	env.Exec(db, fmt.Sprintf(`INSERT INTO entries (amount) SELECT g * 1.5 FROM generate_series(1, %d) g`, ledgerEntries))
	return systemIdentifier(t, env, db)
}

// systemIdentifier is pg_control_system()'s system identifier of the
// cluster db is connected to.
func systemIdentifier(t *testing.T, env *fixture.Env, db *pgx.Conn) string {
	t.Helper()
	var id string
	if err := db.QueryRow(env.Ctx, "SELECT system_identifier::text FROM pg_control_system()").Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// waitSummarised waits until run is the drill's status.lastRun and returns
// the drill.
func waitSummarised(t *testing.T, p *production, d *drill, run string) *drillsv1.RestoreDrill {
	t.Helper()
	stored := &drillsv1.RestoreDrill{}
	p.env.WaitFor(fixture.ShortTimeout, "run "+run+" to be summarised in the RestoreDrill's status", func(ctx context.Context) (bool, error) {
		if err := p.c.Get(ctx, client.ObjectKeyFromObject(d.d), stored); err != nil {
			return false, err
		}
		return stored.Status.LastRun != nil && stored.Status.LastRun.Name == run, nil
	})
	return stored
}

// assertBaseline waits until the drill's status.baseline is run's and
// checks that it records claim, system identifier id and the tables read.
func assertBaseline(t *testing.T, p *production, d *drill, run, claim, id string) {
	t.Helper()
	var b *drillsv1.Baseline
	p.env.WaitFor(fixture.ShortTimeout, "the RestoreDrill's baseline to be run "+run+"'s", func(ctx context.Context) (bool, error) {
		stored := &drillsv1.RestoreDrill{}
		if err := p.c.Get(ctx, client.ObjectKeyFromObject(d.d), stored); err != nil {
			return false, err
		}
		b = stored.Status.Baseline
		return b != nil && b.RunName == run, fmt.Errorf("baseline %+v", b)
	})
	if b.ClaimName != claim || b.SystemIdentifier != id || len(b.Tables) == 0 {
		t.Errorf("baseline %+v: want claim %s, system identifier %s and the tables read", b, claim, id)
	}
}
