package drill

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
	"github.com/drillerd/drillerd/internal/validate"
	"github.com/drillerd/drillerd/internal/verdict"
)

// Checker runs a drill's checks on one connection to a restored database.
// *validate.Session is the real one.
type Checker interface {
	Restrict(ctx context.Context, role string) (string, error)
	Run(ctx context.Context, checks []validate.Check) []validate.Result
	WriteProbe(ctx context.Context, timeout time.Duration) error
	Identity(ctx context.Context) (validate.Identity, error)
	Freshness(ctx context.Context, sql string, loc *time.Location, timeout time.Duration) (time.Time, error)
	BytesRead(ctx context.Context) (int64, error)
	DatabaseBytes(ctx context.Context) (int64, error)
	Close(ctx context.Context) error
}

// Connector opens a Checker on a restored database.
type Connector func(ctx context.Context, cfg *pgx.ConnConfig) (Checker, error)

// ConnectPostgres is the Connector of a real PostgreSQL.
func ConnectPostgres(ctx context.Context, cfg *pgx.ConnConfig) (Checker, error) {
	s, err := validate.Connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	return s, nil
}

// Statement timeouts of drillerd's own queries.
const (
	freshnessTimeout  = time.Minute
	writeProbeTimeout = time.Minute
)

// validate is the Validating step. It runs the read checks, then the write
// probe; the RTO clock stops when the copy has answered every read check
// and accepted a write. Then it reads the copy's identity and the
// freshness query, measures the RPO, compares with the drill's baseline
// and concludes with the verdict.
func (r *Reconciler) validate(ctx context.Context, w *work) (outcome, error) {
	spec := w.drill.Spec
	ns := w.sandbox.NamespaceName()
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); err != nil {
		return outcome{}, fmt.Errorf("while reading the database pod: %w", err)
	}
	access, ok := r.access.get(w.run)
	if !ok {
		return conclude(accessLost(w.run.Status.Phase)), nil
	}
	cfg, err := r.connConfig(ctx, w, pod, access)
	if err != nil {
		return conclude(verdict.Errored(verdict.ReasonInvalidSpec, "%v", err)), nil
	}
	var loc *time.Location
	if spec.Freshness != nil && spec.Freshness.TimeZone != "" {
		if loc, err = time.LoadLocation(spec.Freshness.TimeZone); err != nil {
			return conclude(verdict.Errored(verdict.ReasonInvalidSpec, "spec.freshness.timeZone: unknown time zone %q; use an IANA name such as UTC or Europe/Berlin", spec.Freshness.TimeZone)), nil
		}
	}
	checksCtx, cancel := context.WithTimeout(ctx, durationOr(spec.Timeouts.Checks, drillsv1.DefaultChecksTimeout))
	defer cancel()
	db, err := r.Database(checksCtx, cfg)
	if err != nil {
		return conclude(verdict.Failed(verdict.ReasonDatabaseFailed, "cannot connect to the restored database %s as %s at %s: %v",
			cfg.Database, cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), err)), nil
	}
	defer db.Close(context.WithoutCancel(ctx))
	// The drill's own SQL runs as a read-only role made for this run; only
	// drillerd's built-ins keep the drill's role.
	if _, err := db.Restrict(checksCtx, access.CheckRole); err != nil {
		return conclude(verdict.Errored(verdict.ReasonCheckRefused, "%v", err)), nil
	}

	status := &w.run.Status
	checks := checksOf(spec.Checks)
	readBefore, readErr := db.BytesRead(checksCtx)
	results := db.Run(checksCtx, checks)
	readsDone := r.Clock.Now()
	readsAll := map[string]bool{} // the names of TablesReadable checks
	for _, c := range checks {
		if c.Builtin == validate.BuiltinTablesReadable {
			readsAll[c.Name] = true
		}
	}
	status.Checks = status.Checks[:0]
	var tables []drillsv1.TableRows
	tablesRead := len(readsAll) > 0 // every database's tables were listed and read
	for _, res := range results {
		status.Checks = append(status.Checks, drillsv1.CheckResult{
			Name: res.Name, Database: res.Database, Passed: res.Passed, Value: res.Value, Expected: res.Expected,
			Seconds: float64(res.Duration.Milliseconds()) / 1000, Message: res.Message, Reason: reasonOf(res.Finding),
		})
		for _, t := range res.Tables {
			tables = append(tables, drillsv1.TableRows{Database: t.Database, Table: t.Schema + "." + t.Name, Rows: t.Rows})
		}
		if readsAll[res.Name] && !res.Passed {
			tablesRead = false
		}
	}
	status.Tables = verdict.LargestTables(tables)

	findings := verdict.Findings{}
	writeErr := db.WriteProbe(checksCtx, writeProbeTimeout)
	writeDone := r.Clock.Now()
	if validate.ConnectionLost(writeErr) {
		// Not a copy that refuses writes: one that went away.
		return conclude(r.databaseStopped(ctx, w, writeErr)), nil
	}
	if validate.Refused(writeErr) {
		return conclude(verdict.Errored(verdict.ReasonCheckRefused, "the copy refused the write probe to %s: %v; the drill's database role must be a superuser (or may create a schema and hold pg_checkpoint)",
			cfg.User, writeErr)), nil
	}
	copyOf := &drillsv1.RestoredDatabase{ReadsAnsweredTime: microTime(readsDone)}
	if writeErr != nil {
		findings.NotWritable = writeErr.Error()
	} else {
		copyOf.WriteAcceptedTime = microTime(writeDone)
	}
	status.Database = copyOf

	snapshotCut := time.Time{}
	if status.Snapshot != nil && status.Snapshot.CreationTime != nil {
		snapshotCut = status.Snapshot.CreationTime.Time
	}
	skew := drillsv1.DefaultClockSkew
	if spec.Freshness != nil {
		skew = durationOr(spec.Freshness.ClockSkew, drillsv1.DefaultClockSkew)
	}
	if id, err := db.Identity(checksCtx); err != nil {
		w.log.Info("the restored copy's identity could not be read", "error", err.Error())
	} else {
		copyOf.SystemIdentifier, copyOf.ServerVersion, copyOf.DataChecksums = id.SystemIdentifier, id.ServerVersion, id.DataChecksums
		if !id.InitTime.IsZero() {
			copyOf.InitTime = &metav1.Time{Time: id.InitTime}
		}
		findings.NotTheBackup = verdict.NotTheBackup(id.InitTime, snapshotCut, skew)
		findings.IdentityChanged = verdict.IdentityChanged(id.SystemIdentifier, w.drill.Status.Baseline, spec.Source.PersistentVolumeClaimName)
	}
	if tablesRead && len(tables) == 0 && !spec.DataLoss.ExpectEmpty {
		findings.EmptyDatabase = "the copy has no user table in any database (set dataLoss.expectEmpty if that is expected)"
	}
	findings.DataMissing = verdict.ShrunkTables(tables, w.drill.Status.Baseline, spec.Source.PersistentVolumeClaimName,
		ptr.Deref(spec.DataLoss.MaxTableShrinkPercent, drillsv1.DefaultMaxTableShrinkPercent), spec.DataLoss.VolatileTables)

	var newestWrite *time.Time
	if spec.Freshness != nil {
		newest, err := db.Freshness(checksCtx, spec.Freshness.SQL, loc, freshnessTimeout)
		if err != nil {
			findings.FreshnessFailed = err.Error()
		} else {
			newestWrite = &newest
		}
	}

	status.Size = r.restoredSize(ctx, w, db, readBefore, readErr)

	targets := rto.TargetsOf(spec)
	if writeErr == nil {
		// The copy is usable once it has answered every read and accepted a write.
		provisionStart, _ := rto.PhaseStart(*status, drillsv1.PhaseProvisioning)
		status.RTO = rto.MeasureRTO(provisionStart, writeDone, targets.RTO)
	}
	rpo, untrusted := rto.MeasureRPO(status.StartTime.Time, newestWrite, snapshotCut, targets.RPO, skew)
	status.RPO = rpo
	if untrusted != "" {
		meta.SetStatusCondition(&status.Conditions, metav1.Condition{Type: ConditionRPODataTrusted, Status: metav1.ConditionFalse,
			Reason: "NewerThanSnapshot", Message: boundMessage(untrusted)})
		r.Recorder.Eventf(w.run, nil, corev1.EventTypeWarning, "RPODataNotTrusted", "Validate", "%s", boundMessage(untrusted))
	}
	findings.SnapshotTooOld = snapshotTooOld(spec, status.StartTime.Time, snapshotCut)
	return conclude(verdict.Decide(*status, findings)), nil
}

// restoredSize measures what the run restored and read: the restored
// claim's capacity, the copy's databases' size, and what PostgreSQL read
// since readBefore (taken before the checks). A measurement that fails is
// logged and left out; it decides nothing.
func (r *Reconciler) restoredSize(ctx context.Context, w *work, db Checker, readBefore int64, readErr error) *drillsv1.RestoredSize {
	size := &drillsv1.RestoredSize{}
	if readErr == nil {
		var after int64
		if after, readErr = db.BytesRead(ctx); readErr == nil {
			size.ReadBytes = ptr.To(max(after-readBefore, 0))
		}
	}
	if readErr != nil {
		w.log.Info("what the checks read could not be measured", "error", readErr.Error())
	}
	if n, err := db.DatabaseBytes(ctx); err != nil {
		w.log.Info("the restored databases' size could not be read", "error", err.Error())
	} else {
		size.DatabaseBytes = &n
	}
	claim := &corev1.PersistentVolumeClaim{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: w.sandbox.NamespaceName(), Name: restore.DataClaimName}, claim); err != nil {
		w.log.Info("the restored claim's capacity could not be read", "error", err.Error())
	} else if capacity, ok := claim.Status.Capacity[corev1.ResourceStorage]; ok {
		size.CapacityBytes = ptr.To(capacity.Value())
	}
	return size
}

// ConditionRPODataTrusted is False on a run whose freshness answer was not
// used for its RPO.
const ConditionRPODataTrusted = "RPODataTrusted"

// reasonOf is the verdict reason of a built-in's finding.
func reasonOf(finding string) string {
	switch finding {
	case validate.FindingDataMissing:
		return verdict.ReasonDataMissing
	case validate.FindingDamaged:
		return verdict.ReasonDataDamaged
	case validate.FindingRefused:
		return verdict.ReasonCheckRefused
	}
	return ""
}

func microTime(t time.Time) *metav1.MicroTime {
	m := metav1.NewMicroTime(t)
	return &m
}

func snapshotTooOld(spec drillsv1.RestoreDrillSpec, start, created time.Time) string {
	if spec.Source.MaxSnapshotAge == nil || created.IsZero() {
		return ""
	}
	age := start.Sub(created)
	if age <= spec.Source.MaxSnapshotAge.Duration {
		return ""
	}
	return fmt.Sprintf("the newest ready snapshot is %s old, more than maxSnapshotAge %s", rto.Human(age.Seconds()), spec.Source.MaxSnapshotAge.Duration)
}

// defaultChecks run when a drill names none: every table read, every
// table and index verified.
var defaultChecks = []drillsv1.Check{{Builtin: drillsv1.BuiltinTablesReadable}, {Builtin: drillsv1.BuiltinAmcheck}}

func checksOf(checks []drillsv1.Check) []validate.Check {
	if len(checks) == 0 {
		checks = defaultChecks
	}
	out := make([]validate.Check, 0, len(checks))
	for _, c := range checks {
		vc := validate.Check{Name: c.CheckName(), SQL: c.SQL, Builtin: string(c.Builtin)}
		if c.Expect != nil {
			vc.Expect = validate.Expectation{Equals: c.Expect.Equals, Min: c.Expect.Min, Max: c.Expect.Max, Regex: c.Expect.Regex, NotEmpty: c.Expect.NotEmpty}
		}
		if c.Timeout != nil {
			vc.Timeout = c.Timeout.Duration
		}
		out = append(out, vc)
	}
	return out
}
