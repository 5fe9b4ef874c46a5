package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/runcert"
	"github.com/drillerd/drillerd/internal/verdict"
)

// Readiness as drillerd sees it: once the database container runs, drillerd
// connects itself, every readinessBackoff for up to readinessWindow in one
// reconcile, then again after readinessBackoff. The pod's Ready condition
// comes only at the readiness probe's next period and is not waited for.
const (
	readinessBackoff = 25 * time.Millisecond
	readinessWindow  = time.Second
)

// startDatabase is the StartingDatabase step: it waits until the restored
// database answers drillerd, at most timeouts.database; a database that
// exits or cannot start fails the run. The phase ends at the first answer.
func (r *Reconciler) startDatabase(ctx context.Context, w *work) (outcome, error) {
	ns := w.sandbox.NamespaceName()
	timeout := durationOr(w.drill.Spec.Timeouts.Database, drillsv1.DefaultDatabaseTimeout)
	deadline := phaseDeadline(w, timeout)
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); client.IgnoreNotFound(err) != nil {
		return outcome{}, err
	}
	access, ok := r.access.get(w.run)
	if !ok {
		return conclude(accessLost(w.run.Status.Phase)), nil
	}
	p := restore.DatabasePodProgress(pod)
	if p.Running && !p.Terminated {
		cfg, err := r.connConfig(ctx, w, pod, access)
		if err != nil {
			return conclude(verdict.Errored(verdict.ReasonInvalidSpec, "%v", err)), nil
		}
		if r.answers(ctx, cfg, min(readinessWindow, wakeAt(w, deadline).Sub(w.now))) {
			return nextPhase(), nil
		}
		if w.now.Before(deadline) {
			return waitFor(readinessBackoff), nil
		}
	}
	switch {
	case p.Ready && !p.Running:
		return nextPhase(), nil
	case p.Terminated:
		why := p.WhyNotStarted(r.databaseLog(ctx, w, p))
		return conclude(verdict.Failed(verdict.ReasonDatabaseFailed, "database pod %s/%s: %s", ns, restore.DatabasePodName, why)), nil
	case w.now.Before(deadline):
		return waitFor(wakeAt(w, deadline).Sub(w.now)), nil
	}
	why := p.WhyNotStarted(r.databaseLog(ctx, w, p))
	if why == "" {
		why = r.lastEvent(ctx, pod, "Pod")
	}
	return conclude(verdict.Failed(verdict.ReasonDatabaseFailed, "%s", withEvent(fmt.Sprintf("database pod %s/%s not ready after %s", ns, restore.DatabasePodName, timeout), why))), nil
}

// logReadTimeout bounds reading the database's log.
const logReadTimeout = 10 * time.Second

// databaseLog reads the end of the database container's log (and, when it
// has restarted and its current run says nothing of PostgreSQL's own, of
// its previous run first), so that a database that did not start is
// reported in its own words even where its status has none: it still
// runs, its termination message was cut, it was restarted. A log that
// cannot be read (RBAC, an unreachable kubelet) changes no verdict:
// drillerd logs why and judges on the pod's status.
func (r *Reconciler) databaseLog(ctx context.Context, w *work, p restore.PodProgress) string {
	if r.Logs == nil || !p.HasLog {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, logReadTimeout)
	defer cancel()
	ns := w.sandbox.NamespaceName()
	current, err := r.Logs.DatabaseLog(ctx, ns, false)
	if err != nil {
		w.log.Info("cannot read the database's log; the verdict rests on the pod's status", "sandbox", ns, "error", err.Error())
	}
	if !p.Restarted || restore.DatabaseSaid(current) != "" {
		return current
	}
	previous, err := r.Logs.DatabaseLog(ctx, ns, true)
	if err != nil {
		w.log.Info("cannot read the log of the database's previous run", "sandbox", ns, "error", err.Error())
		return current
	}
	return previous + "\n" + current
}

// databaseStopped is the verdict on a copy that dropped drillerd's
// connection during the checks: it crashed, was killed or shut down under
// them, which the backup's data can cause (a damaged page that makes the
// server PANIC) and which no application could live with. The pod's status
// and the end of the database's log say how, where they already do.
func (r *Reconciler) databaseStopped(ctx context.Context, w *work, lost error) verdict.Verdict {
	ns := w.sandbox.NamespaceName()
	msg := fmt.Sprintf("database pod %s/%s stopped during the checks: drillerd's connection was lost (%v)", ns, restore.DatabasePodName, lost)
	pod := &corev1.Pod{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); err == nil {
		p := restore.DatabasePodProgress(pod)
		if why := p.WhyNotStarted(r.databaseLog(ctx, w, p)); why != "" {
			msg += ": " + why
		}
	}
	return verdict.Failed(verdict.ReasonDatabaseFailed, "%s", msg)
}

// cannotConnectNow is PostgreSQL's "the database system is starting up".
const cannotConnectNow = "57P03"

// answers tries to connect to the database every readinessBackoff for at
// most window and reports whether it answered: a connection, a refusal
// from the server itself (wrong credentials, a missing database), or a
// server drillerd refuses (not the run's certificate), which the
// Validating step reports. "Starting up" and a refused connection are not
// answers.
func (r *Reconciler) answers(ctx context.Context, cfg *pgx.ConnConfig, window time.Duration) bool {
	cfg = cfg.Copy()
	cfg.ConnectTimeout = readinessWindow
	end := time.Now().Add(window)
	for {
		db, err := r.Database(ctx, cfg)
		if err == nil {
			_ = db.Close(context.WithoutCancel(ctx))
			return true
		}
		var pg *pgconn.PgError
		if errors.As(err, &pg) && pg.Code != cannotConnectNow || errors.Is(err, runcert.ErrUntrustedServer) {
			return true
		}
		if !time.Now().Add(readinessBackoff).Before(end) {
			return false
		}
		t := time.NewTimer(readinessBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return false
		case <-t.C:
		}
	}
}

// connConfig is where and as whom drillerd connects: the pod's IP, over TLS
// with the run's client certificate, accepting only the run's server
// certificate, as the Trust user or with the Secret's credentials. There is
// no fallback to a connection without TLS. Passwords never reach logs.
func (r *Reconciler) connConfig(ctx context.Context, w *work, pod *corev1.Pod, access restore.Access) (*pgx.ConnConfig, error) {
	db := w.drill.Spec.Database
	port := db.Port
	if port == 0 {
		port = 5432
	}
	database := db.DatabaseName
	if database == "" {
		database = "postgres"
	}
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d dbname=%s sslmode=require connect_timeout=30",
		quoteConnValue(pod.Status.PodIP), port, quoteConnValue(database)))
	if err != nil {
		return nil, fmt.Errorf("while building the connection to %s: %v", pod.Status.PodIP, err)
	}
	cfg.TLSConfig, cfg.Fallbacks = access.Certificates.ClientTLS(), nil
	cfg.RuntimeParams["application_name"] = "drillerd"
	switch db.Auth.Mode {
	case drillsv1.AuthSecret:
		if l, ok := r.access.login(w.run); ok {
			cfg.User, cfg.Password = l.user, l.password
			break
		}
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
		r.access.rememberLogin(w.run, login{user: cfg.User, password: cfg.Password})
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
