package drill

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
	"github.com/drillerd/drillerd/internal/validate"
)

// Connector opens a connection to a restored database.
type Connector func(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error)

// ConnectPgx connects with pgx.
func ConnectPgx(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	return pgx.ConnectConfig(ctx, cfg)
}

// validate runs the checks and the freshness query, stops the RTO clock,
// measures the RPO and reaches the verdict.
func (r *Reconciler) validate(ctx context.Context, w *work) (bool, time.Duration, error) {
	spec := w.drill.Spec
	ns := w.sandbox.NamespaceName()
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); err != nil {
		return false, 0, fmt.Errorf("while reading the database pod: %w", err)
	}
	cfg, err := r.connConfig(ctx, w, pod)
	if err != nil {
		r.decide(w, rto.Errored(rto.ReasonInvalidSpec, "%v", err))
		return true, 0, nil
	}
	checksCtx, cancel := context.WithTimeout(ctx, durationOr(spec.Timeouts.Checks, drillsv1.DefaultChecksTimeout))
	defer cancel()
	conn, err := r.Database(checksCtx, cfg)
	if err != nil {
		r.decide(w, rto.Failed(rto.ReasonDatabaseFailed, "cannot connect to the restored database %s as %s at %s: %v",
			cfg.Database, cfg.User, net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))), err))
		return true, 0, nil
	}
	defer conn.Close(context.WithoutCancel(ctx))

	results := validate.Run(checksCtx, conn, checksOf(spec.Checks))
	status := &w.run.Status
	status.Checks = status.Checks[:0]
	for _, res := range results {
		status.Checks = append(status.Checks, drillsv1.CheckResult{
			Name: res.Name, Passed: res.Passed, Value: res.Value, Expected: res.Expected,
			Seconds: float64(res.Duration.Milliseconds()) / 1000, Message: res.Message,
		})
	}
	// The RTO clock stops when the last check has answered; the freshness
	// query measures the RPO and is not part of the recovery.
	checksDone := r.Clock.Now()
	var newestWrite *time.Time
	findings := rto.Findings{}
	if spec.Freshness != nil {
		newest, err := validate.Freshness(checksCtx, conn, spec.Freshness.SQL, time.Minute)
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
	r.decide(w, rto.Decide(*status, findings))
	return true, 0, nil
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

// connConfig is where and as whom drillerd connects: the pod's IP, and the
// Trust user or the Secret's credentials. Passwords never reach logs.
func (r *Reconciler) connConfig(ctx context.Context, w *work, pod *corev1.Pod) (*pgx.ConnConfig, error) {
	db := w.drill.Spec.Database
	port := db.Port
	if port == 0 {
		port = 5432
	}
	database := db.DatabaseName
	if database == "" {
		database = "postgres"
	}
	// sslmode=prefer: a restored pg_hba.conf may demand TLS (hostssl); the
	// host is in the connection string so that the plain-text fallback
	// goes to the same address.
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s sslmode=prefer connect_timeout=30",
		quoteConnValue(pod.Status.PodIP), port, quoteConnValue(database)))
	if err != nil {
		return nil, fmt.Errorf("while building the connection to %s: %v", pod.Status.PodIP, err)
	}
	cfg.RuntimeParams["application_name"] = "drillerd"
	switch db.Auth.Mode {
	case drillsv1.AuthSecret:
		ref := db.Auth.SecretRef
		secret := &corev1.Secret{}
		if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: w.run.Namespace, Name: ref.Name}, secret); err != nil {
			return nil, fmt.Errorf("spec.database.auth.secretRef: cannot read Secret %s/%s: %v", w.run.Namespace, ref.Name, err)
		}
		userKey, passKey := keyOr(ref.UsernameKey, "username"), keyOr(ref.PasswordKey, "password")
		user, ok := secret.Data[userKey]
		if !ok {
			return nil, fmt.Errorf("spec.database.auth.secretRef: Secret %s/%s has no key %q", w.run.Namespace, ref.Name, userKey)
		}
		pass, ok := secret.Data[passKey]
		if !ok {
			return nil, fmt.Errorf("spec.database.auth.secretRef: Secret %s/%s has no key %q", w.run.Namespace, ref.Name, passKey)
		}
		cfg.User, cfg.Password = string(user), string(pass)
	default:
		cfg.User = keyOr(db.Auth.User, "postgres")
	}
	return cfg, nil
}

// quoteConnValue quotes a value for a keyword/value connection string.
func quoteConnValue(v string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(v) + "'"
}

func keyOr(v, def string) string {
	if v == "" {
		return def
	}
	return v
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
