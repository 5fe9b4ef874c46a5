package drill

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/validate"
	"github.com/drillerd/drillerd/internal/verdict"
)

// fakeChecker is a restored database that answers every check as told,
// taking its time on a fake clock.
type fakeChecker struct {
	clock       *clocktesting.FakeClock
	took        time.Duration // how long the checks take
	failing     string        // the name of a check that fails
	connectErr  error
	newest      time.Time // the freshness query's answer
	freshErr    error
	freshTook   time.Duration
	tables      []validate.TableCount // what TablesReadable reads
	writeErr    error
	writeTook   time.Duration
	identity    validate.Identity
	refusing    string // the name of a check the copy refuses a privilege
	restrictErr error
	restricted  string // the role Restrict made

	readBytes int64 // what the checks read
	read      int64 // BytesRead's counter
	dbBytes   int64 // DatabaseBytes
	sizeErr   error // both fail so

	startup  []error // what the first connections get, in order (nil: connected)
	attempts int

	cfg    *pgx.ConnConfig
	ran    []validate.Check
	closed bool
}

func (f *fakeChecker) connect(_ context.Context, cfg *pgx.ConnConfig) (Checker, error) {
	f.cfg = cfg
	f.attempts++
	if len(f.startup) > 0 {
		err := f.startup[0]
		f.startup = f.startup[1:]
		if err != nil {
			return nil, err
		}
	}
	if f.connectErr != nil {
		return nil, f.connectErr
	}
	return f, nil
}

func (f *fakeChecker) Run(_ context.Context, checks []validate.Check) []validate.Result {
	f.ran = checks
	f.clock.Step(f.took)
	f.read += f.readBytes
	out := make([]validate.Result, 0, len(checks))
	for _, c := range checks {
		r := validate.Result{Name: c.Name, Passed: true, Value: "1200", Expected: ">= 1000"}
		if c.Name == f.failing {
			r.Passed, r.Value, r.Message = false, "999", ""
		}
		if c.Name == f.refusing {
			r.Passed, r.Finding, r.Message = false, validate.FindingRefused, "permission denied for function pg_read_file (SQLSTATE 42501)"
		}
		if c.Builtin == validate.BuiltinTablesReadable {
			r.Database, r.Tables = "app", f.tables
		}
		out = append(out, r)
	}
	return out
}

func (f *fakeChecker) Restrict(_ context.Context, role string) (string, error) {
	if f.restrictErr != nil {
		return "", f.restrictErr
	}
	f.restricted = role
	return role, nil
}

func (f *fakeChecker) WriteProbe(context.Context, time.Duration) error {
	f.clock.Step(f.writeTook)
	return f.writeErr
}

func (f *fakeChecker) Identity(context.Context) (validate.Identity, error) { return f.identity, nil }

func (f *fakeChecker) Freshness(context.Context, string, *time.Location, time.Duration) (time.Time, error) {
	f.clock.Step(f.freshTook)
	return f.newest, f.freshErr
}

func (f *fakeChecker) Close(context.Context) error { f.closed = true; return nil }

func (f *fakeChecker) BytesRead(context.Context) (int64, error) { return f.read, f.sizeErr }

func (f *fakeChecker) DatabaseBytes(context.Context) (int64, error) { return f.dbBytes, f.sizeErr }

// ordersTable is what TablesReadable reads of a healthy copy.
var ordersTable = []validate.TableCount{{Database: "app", Schema: "public", Name: "orders", Rows: 20000}}

// validatingRun is a run that started at t0, began provisioning 10s later
// and reached Validating at t0+30s, restoring a snapshot cut 3h before t0.
func validatingRun() *drillsv1.DrillRun {
	cut := metav1.NewTime(t0.Add(-3 * time.Hour))
	run := newRun("r1").In(drillsv1.PhaseValidating).StartedAt(t0).Deadline(t0.Add(time.Hour)).
		PhaseTiming(drillsv1.PhaseSelectingSnapshot, t0, t0.Add(10*time.Second)).
		PhaseTiming(drillsv1.PhaseProvisioning, t0.Add(10*time.Second), t0.Add(11*time.Second)).
		PhaseTiming(drillsv1.PhaseRestoringVolume, t0.Add(11*time.Second), t0.Add(25*time.Second)).
		PhaseTiming(drillsv1.PhaseStartingDatabase, t0.Add(25*time.Second), t0.Add(30*time.Second)).
		PhaseTiming(drillsv1.PhaseValidating, t0.Add(30*time.Second), time.Time{}).
		Snapshot(drillsv1.SnapshotRef{Name: "nightly", ContentName: "snapcontent-1", SnapshotHandle: "snap-1", CreationTime: &cut}).
		Obj()
	run.Status.SandboxNamespace = sandboxOf(run)
	return run
}

func databasePod(run *drillsv1.DrillRun) *corev1.Pod {
	pod := &corev1.Pod{}
	pod.Namespace, pod.Name = sandboxOf(run), restore.DatabasePodName
	pod.Status = readyPod("127.0.3.4")
	return pod
}

func TestValidatingReachesTheVerdict(t *testing.T) {
	orders := drillsv1.Check{Name: "orders-present", SQL: "SELECT count(*) FROM orders", Expect: &drillsv1.Expectation{Min: ptrTo("1000")}}
	tests := []struct {
		name       string
		drill      *drillsv1.RestoreDrill
		db         fakeChecker
		wantResult drillsv1.RunResult
		wantReason string
		wantInMsg  string
		wantRTO    float64 // 0: no RTO measured
		wantRPO    float64
		wantBasis  drillsv1.RPOBasis
	}{
		{
			name:  "every check passes; the RTO stops when the copy accepted a write, not after the freshness query",
			drill: ordersDrill().Check(orders).Freshness("SELECT max(created_at) FROM orders").Targets(time.Minute, 4*time.Hour).Obj(),
			db:    fakeChecker{took: 4 * time.Second, writeTook: 2 * time.Second, newest: t0.Add(-4 * time.Hour), freshTook: 30 * time.Second},
			// provisioning started at t0+10s; checks done at t0+30s+4s, the write at +2s
			wantResult: drillsv1.ResultSucceeded, wantInMsg: "1 check passed", wantRTO: 26, wantRPO: 4 * 3600, wantBasis: drillsv1.RPOBasisData,
		},
		{
			name:       "a copy that reads but refuses writes fails, and has no RTO",
			drill:      ordersDrill().Check(orders).Obj(),
			db:         fakeChecker{writeErr: errors.New(`CREATE TABLE: cannot execute CREATE TABLE in a read-only transaction (SQLSTATE 25006)`)},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonNotWritable, wantInMsg: "the copy does not accept writes: CREATE TABLE: cannot execute",
			wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "a copy that drops the connection during the checks stopped: it fails, as a database that failed, not one that refuses writes",
			drill:      ordersDrill().Check(orders).Obj(),
			db:         fakeChecker{writeErr: fmt.Errorf("write probe: BEGIN: %w", pgconn.ErrConnClosed)},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonDatabaseFailed, wantInMsg: "stopped during the checks: drillerd's connection was lost (write probe: BEGIN: conn closed)",
		},
		{
			name:       "a role that may not write is the drill's fault, not the copy's",
			drill:      ordersDrill().Check(orders).Obj(),
			db:         fakeChecker{writeErr: &pgconn.PgError{Severity: "ERROR", Code: "42501", Message: "permission denied for database app"}},
			wantResult: drillsv1.ResultError, wantReason: verdict.ReasonCheckRefused, wantInMsg: "refused the write probe to postgres: ERROR: permission denied for database app",
		},
		{
			name:       "a check the read-only role may not run is the drill's fault",
			drill:      ordersDrill().Check(orders).SQLCheck("sneaky", "SELECT pg_read_file('/etc/passwd')", drillsv1.Expectation{NotEmpty: true}).Obj(),
			db:         fakeChecker{refusing: "sneaky"},
			wantResult: drillsv1.ResultError, wantReason: verdict.ReasonCheckRefused, wantInMsg: "check sneaky was refused by the copy: permission denied for function pg_read_file",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "a refused check does not hide a failed one",
			drill:      ordersDrill().Check(orders).SQLCheck("sneaky", "SELECT pg_read_file('/etc/passwd')", drillsv1.Expectation{NotEmpty: true}).Obj(),
			db:         fakeChecker{refusing: "sneaky", failing: "orders-present"},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonCheckFailed, wantInMsg: "check sneaky was refused",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "no read-only role can be made: the drill cannot judge",
			drill:      ordersDrill().Check(orders).Obj(),
			db:         fakeChecker{restrictErr: errors.New("cannot log in as the read-only role drillerd_checks_1: no pg_hba.conf entry")},
			wantResult: drillsv1.ResultError, wantReason: verdict.ReasonCheckRefused, wantInMsg: "cannot log in as the read-only role",
		},
		{
			name:       "a cluster initialised after the cut is not the backup",
			drill:      ordersDrill().Obj(),
			db:         fakeChecker{identity: validate.Identity{SystemIdentifier: "7400000000000000001", InitTime: t0.Add(20 * time.Second)}, tables: nil},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonNotTheBackup, wantInMsg: "after the snapshot was cut at 2026-11-22T00:00:00Z",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "built-ins that read no table in any database: empty",
			drill:      ordersDrill().Obj(),
			db:         fakeChecker{},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonEmptyDatabase, wantInMsg: "no user table in any database",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "an empty copy a drill expects passes",
			drill:      expectEmpty(ordersDrill().Obj()),
			db:         fakeChecker{},
			wantResult: drillsv1.ResultSucceeded, wantInMsg: "2 checks passed",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "a table that shrank since the last success fails",
			drill:      withBaseline(ordersDrill().Obj(), "7311111111111111111", 20000),
			db:         fakeChecker{identity: validate.Identity{SystemIdentifier: "7311111111111111111"}, tables: []validate.TableCount{{Database: "app", Schema: "public", Name: "orders", Rows: 300}}},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonDataMissing, wantInMsg: "table public.orders in database app has 300 rows, 98% fewer than the 20000 run nightly-1 read",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "another cluster behind the same claim fails",
			drill:      withBaseline(ordersDrill().Obj(), "7311111111111111111", 20000),
			db:         fakeChecker{identity: validate.Identity{SystemIdentifier: "7399999999999999999"}, tables: []validate.TableCount{{Database: "app", Schema: "public", Name: "orders", Rows: 20000}}},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonIdentityChanged, wantInMsg: "system identifier is 7399999999999999999",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "the same cluster with its rows passes",
			drill:      withBaseline(ordersDrill().Obj(), "7311111111111111111", 20000),
			db:         fakeChecker{identity: validate.Identity{SystemIdentifier: "7311111111111111111"}, tables: []validate.TableCount{{Database: "app", Schema: "public", Name: "orders", Rows: 20100}}},
			wantResult: drillsv1.ResultSucceeded, wantInMsg: "2 checks passed",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:  "a row dated after the cut is not trusted: the snapshot's age is the RPO",
			drill: ordersDrill().Check(orders).Freshness("SELECT max(created_at) FROM orders").Targets(0, 2*time.Hour).Obj(),
			db:    fakeChecker{newest: t0.Add(24 * time.Hour)},
			// the snapshot is 3h old: the RPO target is missed whatever the data says
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonRPOTargetMissed, wantInMsg: "RPO 3h00m (basis Snapshot)",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "a failed check fails the run and is named",
			drill:      ordersDrill().Check(orders).Obj(),
			db:         fakeChecker{failing: "orders-present"},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonCheckFailed, wantInMsg: `check orders-present failed: got "999"`,
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "a database that refuses connections fails the run",
			drill:      ordersDrill().Check(orders).Obj(),
			db:         fakeChecker{connectErr: errors.New("connection refused")},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonDatabaseFailed, wantInMsg: "cannot connect to the restored database postgres as postgres at 127.0.3.4:5432: connection refused",
		},
		{
			name:       "a failed freshness query is a finding",
			drill:      ordersDrill().Check(orders).Freshness("SELECT max(created_at) FROM orders").Obj(),
			db:         fakeChecker{freshErr: errors.New(`relation "orders" does not exist`)},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonFreshnessFailed, wantInMsg: "orders",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "a missed RTO target fails the run",
			drill:      ordersDrill().Check(orders).Targets(30*time.Second, 0).Obj(),
			db:         fakeChecker{took: 15 * time.Second},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonRTOTargetMissed, wantInMsg: "RTO 35.0s exceeds the target 30.0s",
			wantRTO: 35, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "a snapshot older than maxSnapshotAge fails the run",
			drill:      ordersDrill().Check(orders).MaxSnapshotAge(time.Hour).Obj(),
			db:         fakeChecker{},
			wantResult: drillsv1.ResultFailed, wantReason: verdict.ReasonSnapshotTooOld, wantInMsg: "more than maxSnapshotAge 1h0m0s",
			wantRTO: 20, wantRPO: 3 * 3600, wantBasis: drillsv1.RPOBasisSnapshot,
		},
		{
			name:       "credentials that cannot be read are the drill's fault",
			drill:      ordersDrill().Check(orders).AuthSecret("missing", "", "").Obj(),
			db:         fakeChecker{},
			wantResult: drillsv1.ResultError, wantReason: verdict.ReasonInvalidSpec, wantInMsg: "spec.database.auth.secretRef: cannot read Secret prod/missing",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := validatingRun()
			e := newEngine(t, interceptor.Funcs{}, tt.drill, run, databasePod(run))
			e.clock.SetTime(t0.Add(30 * time.Second))
			db := tt.db
			db.clock = e.clock
			e.r.Database = db.connect
			e.mustReconcile("r1")
			got := e.run("r1").Status
			if got.Result != tt.wantResult || got.Reason != tt.wantReason || !strings.Contains(got.Message, tt.wantInMsg) {
				t.Errorf("verdict %s/%s %q, want %s/%s mentioning %q", got.Result, got.Reason, got.Message, tt.wantResult, tt.wantReason, tt.wantInMsg)
			}
			if got.Phase != drillsv1.PhaseDone {
				t.Errorf("phase %s, want the run torn down and Done", got.Phase)
			}
			switch {
			case tt.wantRTO == 0 && got.RTO != nil:
				t.Errorf("RTO %+v measured although the database never answered", got.RTO)
			case tt.wantRTO != 0 && (got.RTO == nil || got.RTO.Seconds != tt.wantRTO):
				t.Errorf("RTO %+v, want %vs", got.RTO, tt.wantRTO)
			}
			if tt.wantBasis != "" && (got.RPO == nil || got.RPO.Seconds != tt.wantRPO || got.RPO.Basis != tt.wantBasis) {
				t.Errorf("RPO %+v, want %vs on basis %s", got.RPO, tt.wantRPO, tt.wantBasis)
			}
			if db.connectErr == nil && db.cfg != nil && !db.closed {
				t.Error("the connection to the restored database was not closed")
			}
		})
	}
}

func TestSizesThatCannotBeMeasuredDecideNothing(t *testing.T) {
	run := validatingRun()
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, databasePod(run))
	e.clock.SetTime(t0.Add(30 * time.Second))
	db := fakeChecker{clock: e.clock, tables: ordersTable, sizeErr: errors.New("permission denied for view pg_stat_database (SQLSTATE 42501)")}
	e.r.Database = db.connect
	e.mustReconcile("r1")
	got := e.run("r1").Status
	if got.Result != drillsv1.ResultSucceeded || got.RTO == nil {
		t.Errorf("verdict %s/%s %q, RTO %+v; want Succeeded with an RTO", got.Result, got.Reason, got.Message, got.RTO)
	}
	if got.Size == nil || got.Size.ReadBytes != nil || got.Size.DatabaseBytes != nil || got.Size.CapacityBytes != nil {
		t.Errorf("size %+v, want nothing measured (and no claim in this test)", got.Size)
	}
}

func expectEmpty(d *drillsv1.RestoreDrill) *drillsv1.RestoreDrill {
	d.Spec.DataLoss.ExpectEmpty = true
	return d
}

// withBaseline gives d a last success (run nightly-1) that read rows of
// app's public.orders in the cluster systemIdentifier.
func withBaseline(d *drillsv1.RestoreDrill, systemIdentifier string, rows int64) *drillsv1.RestoreDrill {
	d.Status.Baseline = &drillsv1.Baseline{RunName: "nightly-1", ClaimName: d.Spec.Source.PersistentVolumeClaimName, SystemIdentifier: systemIdentifier,
		Tables: []drillsv1.TableRows{{Database: "app", Table: "public.orders", Rows: rows}}}
	return d
}

func TestUntrustedDataIsACondition(t *testing.T) {
	run := validatingRun()
	drill := ordersDrill().SQLCheck("one", "SELECT 1", drillsv1.Expectation{Equals: ptrTo("1")}).Freshness("SELECT max(created_at) FROM orders").Obj()
	e := newEngine(t, interceptor.Funcs{}, drill, run, databasePod(run))
	e.r.Database = (&fakeChecker{clock: e.clock, newest: t0.Add(24 * time.Hour)}).connect
	e.mustReconcile("r1")
	got := e.run("r1").Status
	c := meta.FindStatusCondition(got.Conditions, ConditionRPODataTrusted)
	if c == nil || c.Status != metav1.ConditionFalse || !strings.Contains(c.Message, "cannot have been in the snapshot") {
		t.Errorf("conditions %+v, want RPODataTrusted=False saying why", got.Conditions)
	}
	if got.RPO == nil || got.RPO.DataSeconds == nil || *got.RPO.DataSeconds != -86400 || got.RPO.Basis != drillsv1.RPOBasisSnapshot {
		t.Errorf("RPO %+v, want both bases kept and the snapshot's used", got.RPO)
	}
}

func TestADrillWithoutChecksRunsTheBuiltins(t *testing.T) {
	run := validatingRun()
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, databasePod(run))
	db := &fakeChecker{clock: e.clock, tables: []validate.TableCount{{Database: "app", Schema: "public", Name: "orders", Rows: 10}}}
	e.r.Database = db.connect
	e.mustReconcile("r1")
	if len(db.ran) != 2 || db.ran[0].Builtin != validate.BuiltinTablesReadable || db.ran[1].Builtin != validate.BuiltinAmcheck {
		t.Errorf("ran %+v, want TablesReadable and Amcheck", db.ran)
	}
	got := e.run("r1").Status
	if len(got.Tables) != 1 || got.Tables[0] != (drillsv1.TableRows{Database: "app", Table: "public.orders", Rows: 10}) {
		t.Errorf("tables %+v, want what TablesReadable read", got.Tables)
	}
	if got.Database == nil || got.Database.ReadsAnsweredTime == nil || got.Database.WriteAcceptedTime == nil {
		t.Errorf("database %+v, want when reads and the write first succeeded", got.Database)
	}
}

func TestChecksReachTheDatabaseAsWritten(t *testing.T) {
	drill := ordersDrill().
		SQLCheck("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptrTo("1000"), Regex: ptrTo("^[0-9]+$")}).
		Builtin(drillsv1.BuiltinAmcheck).Obj()
	drill.Spec.Checks[0].Timeout = &metav1.Duration{Duration: 5 * time.Second}
	run := validatingRun()
	e := newEngine(t, interceptor.Funcs{}, drill, run, databasePod(run))
	db := &fakeChecker{clock: e.clock}
	e.r.Database = db.connect
	e.mustReconcile("r1")
	if len(db.ran) != 2 {
		t.Fatalf("ran %d checks, want 2", len(db.ran))
	}
	first, second := db.ran[0], db.ran[1]
	if first.Name != "orders-present" || first.SQL != "SELECT count(*) FROM orders" || *first.Expect.Min != "1000" || *first.Expect.Regex != "^[0-9]+$" || first.Timeout != 5*time.Second {
		t.Errorf("first check %+v, want the SQL check with its expectation and timeout", first)
	}
	if second.Builtin != validate.BuiltinAmcheck || second.SQL != "" {
		t.Errorf("second check %+v, want the Amcheck built-in", second)
	}
}

func TestConnConfigReachesThePodOverTLSOnly(t *testing.T) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "creds"},
		Data:       map[string][]byte{"user": []byte("app"), "pass": []byte(`p'w\d`)},
	}
	tests := []struct {
		name               string
		drill              *drillsv1.RestoreDrill
		wantUser, wantPass string
		wantDB             string
		wantPort           uint16
		wantErr            string
	}{
		{"trust with defaults", ordersDrill().Obj(), "postgres", "", "postgres", 5432, ""},
		{"trust user, odd database name, port", ordersDrill().DatabaseName(`shop's db`).Port(6432).AuthUser("shop").Obj(), "shop", "", `shop's db`, 6432, ""},
		{"secret", ordersDrill().AuthSecret("creds", "user", "pass").Obj(), "app", `p'w\d`, "postgres", 5432, ""},
		{"secret without the key", ordersDrill().AuthSecret("creds", "", "").Obj(), "", "", "", 0, `spec.database.auth.secretRef: Secret prod/creds has no key "username"`},
		{"secret missing", ordersDrill().AuthSecret("nope", "", "").Obj(), "", "", "", 0, "spec.database.auth.secretRef: cannot read Secret prod/nope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEngine(t, interceptor.Funcs{}, secret)
			run := newRun("r").Obj()
			w := &work{run: run, drill: tt.drill}
			pod := &corev1.Pod{Status: corev1.PodStatus{PodIP: "127.0.4.7"}}
			access := testAccess(t, run)
			cfg, err := e.r.connConfig(context.Background(), w, pod, access)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Host != "127.0.4.7" || cfg.Port != tt.wantPort || cfg.Database != tt.wantDB || cfg.User != tt.wantUser || cfg.Password != tt.wantPass {
				t.Errorf("config %s:%d db %q user %q pass %q", cfg.Host, cfg.Port, cfg.Database, cfg.User, cfg.Password)
			}
			if len(cfg.Fallbacks) != 0 {
				t.Errorf("fallbacks %+v: a connection without the run's TLS must never be tried", cfg.Fallbacks)
			}
			tc := cfg.TLSConfig
			if tc == nil || len(tc.Certificates) != 1 || tc.Certificates[0].Leaf == nil ||
				tc.Certificates[0].Leaf.Subject.CommonName != restore.ClientName(string(run.UID)) || tc.VerifyConnection == nil {
				t.Errorf("TLS config %+v: want the run's client certificate and its check of the server", tc)
			}
		})
	}
}

// TestADatabaseThatStoppedSaysHow: when the pod's status already says the
// database exited, the verdict says so.
func TestADatabaseThatStoppedSaysHow(t *testing.T) {
	run := validatingRun()
	pod := databasePod(run)
	pod.Status.Phase = corev1.PodFailed
	pod.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 137}}
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, pod)
	e.clock.SetTime(t0.Add(30 * time.Second))
	e.r.Database = (&fakeChecker{clock: e.clock, writeErr: fmt.Errorf("write probe: BEGIN: %w", io.ErrUnexpectedEOF)}).connect
	e.mustReconcile("r1")
	got := e.run("r1").Status
	want := "stopped during the checks: drillerd's connection was lost (write probe: BEGIN: unexpected EOF): container database terminated: Error (exit code 137)"
	if got.Result != drillsv1.ResultFailed || got.Reason != verdict.ReasonDatabaseFailed || !strings.Contains(got.Message, want) {
		t.Errorf("verdict %s/%s %q, want Failed/DatabaseFailed saying %q", got.Result, got.Reason, got.Message, want)
	}
}
