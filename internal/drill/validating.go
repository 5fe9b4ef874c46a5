package drill

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
	"github.com/drillerd/drillerd/internal/validate"
	"github.com/drillerd/drillerd/internal/verdict"
)

// Checker runs a drill's checks on one connection to a restored database.
// *validate.Session is the real one.
type Checker interface {
	Run(ctx context.Context, checks []validate.Check) []validate.Result
	Freshness(ctx context.Context, sql string, timeout time.Duration) (time.Time, error)
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

// freshnessTimeout is the freshness query's statement timeout.
const freshnessTimeout = time.Minute

// validate is the Validating step: it runs the checks, stops the RTO clock
// when the last one has answered, runs the freshness query, measures the
// RPO and concludes with the verdict.
func (r *Reconciler) validate(ctx context.Context, w *work) (outcome, error) {
	spec := w.drill.Spec
	ns := w.sandbox.NamespaceName()
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); err != nil {
		return outcome{}, fmt.Errorf("while reading the database pod: %w", err)
	}
	cfg, err := r.connConfig(ctx, w, pod)
	if err != nil {
		return conclude(verdict.Errored(verdict.ReasonInvalidSpec, "%v", err)), nil
	}
	checksCtx, cancel := context.WithTimeout(ctx, durationOr(spec.Timeouts.Checks, drillsv1.DefaultChecksTimeout))
	defer cancel()
	db, err := r.Database(checksCtx, cfg)
	if err != nil {
		return conclude(verdict.Failed(verdict.ReasonDatabaseFailed, "cannot connect to the restored database %s as %s at %s: %v",
			cfg.Database, cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), err)), nil
	}
	defer db.Close(context.WithoutCancel(ctx))

	status := &w.run.Status
	status.Checks = status.Checks[:0]
	for _, res := range db.Run(checksCtx, checksOf(spec.Checks)) {
		status.Checks = append(status.Checks, drillsv1.CheckResult{
			Name: res.Name, Passed: res.Passed, Value: res.Value, Expected: res.Expected,
			Seconds: float64(res.Duration.Milliseconds()) / 1000, Message: res.Message,
		})
	}
	// The RTO clock stops when the last check has answered; the freshness
	// query measures the RPO and is not part of the recovery.
	checksDone := r.Clock.Now()
	var newestWrite *time.Time
	findings := verdict.Findings{}
	if spec.Freshness != nil {
		newest, err := db.Freshness(checksCtx, spec.Freshness.SQL, freshnessTimeout)
		if err != nil {
			findings.FreshnessFailed = err.Error()
		} else {
			newestWrite = &newest
		}
	}

	targets := rto.TargetsOf(spec)
	provisionStart, _ := rto.PhaseStart(*status, drillsv1.PhaseProvisioning)
	status.RTO = rto.MeasureRTO(provisionStart, checksDone, targets.RTO)
	snapshotCreated := time.Time{}
	if status.Snapshot != nil && status.Snapshot.CreationTime != nil {
		snapshotCreated = status.Snapshot.CreationTime.Time
	}
	status.RPO = rto.MeasureRPO(status.StartTime.Time, newestWrite, snapshotCreated, targets.RPO)
	findings.SnapshotTooOld = snapshotTooOld(spec, status.StartTime.Time, snapshotCreated)
	return conclude(verdict.Decide(*status, findings)), nil
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

func checksOf(checks []drillsv1.Check) []validate.Check {
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
