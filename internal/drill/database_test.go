package drill

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/runcert"
	"github.com/drillerd/drillerd/internal/verdict"
)

func TestStartingDatabaseWaitsAndTimesOut(t *testing.T) {
	const dbTimeout = 5 * time.Minute
	run := newRun("r1").In(drillsv1.PhaseStartingDatabase).StartedAt(t0).Deadline(t0.Add(time.Hour)).
		PhaseTiming(drillsv1.PhaseStartingDatabase, t0, time.Time{}).Obj()
	run.Status.SandboxNamespace = sandboxOf(run)
	pod := func(status corev1.PodStatus) *corev1.Pod {
		p := databasePod(run)
		p.Status = status
		return p
	}
	waitingFor := func(reason string) corev1.PodStatus {
		return corev1.PodStatus{Phase: corev1.PodPending, ContainerStatuses: []corev1.ContainerStatus{{Name: restore.DatabaseContainerName,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: "pull access denied\nretrying"}}}}}
	}
	exited := corev1.PodStatus{Phase: corev1.PodFailed, ContainerStatuses: []corev1.ContainerStatus{{Name: restore.DatabaseContainerName,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Error", ExitCode: 1,
			Message: "FATAL:  database files are incompatible with server"}}}}}
	tests := []struct {
		name        string
		at          time.Duration
		objects     []client.Object
		wantPhase   drillsv1.Phase
		wantRequeue time.Duration
		wantReason  string
		wantInMsg   string
	}{
		{name: "pod not scheduled yet: waits until the database timeout", at: time.Minute,
			objects: []client.Object{pod(corev1.PodStatus{Phase: corev1.PodPending})}, wantPhase: drillsv1.PhaseStartingDatabase, wantRequeue: 4 * time.Minute},
		{name: "pod not created yet (cache lag): waits", at: time.Minute,
			wantPhase: drillsv1.PhaseStartingDatabase, wantRequeue: 4 * time.Minute},
		{name: "an image pull error is waited out until the timeout", at: time.Minute,
			objects: []client.Object{pod(waitingFor("ErrImagePull"))}, wantPhase: drillsv1.PhaseStartingDatabase, wantRequeue: 4 * time.Minute},
		{name: "ready: validation starts", at: time.Minute,
			objects: []client.Object{pod(readyPod("127.0.3.4"))}, wantPhase: drillsv1.PhaseValidating},
		{name: "the database exited: Failed at once with its message", at: time.Minute,
			objects: []client.Object{pod(exited)}, wantPhase: drillsv1.PhaseDone, wantReason: verdict.ReasonDatabaseFailed,
			wantInMsg: "container database terminated: Error (exit code 1): FATAL:  database files are incompatible with server"},
		{name: "still pulling at the timeout: Failed, naming why", at: dbTimeout,
			objects: []client.Object{pod(waitingFor("ImagePullBackOff"))}, wantPhase: drillsv1.PhaseDone, wantReason: verdict.ReasonDatabaseFailed,
			wantInMsg: "not ready after 5m0s: container database is waiting: ImagePullBackOff: pull access denied"},
		{name: "not ready at the timeout without a reason: Failed, naming the last warning", at: dbTimeout,
			objects: []client.Object{pod(corev1.PodStatus{Phase: corev1.PodPending}),
				warning(sandboxOf(run), "Pod", restore.DatabasePodName, "FailedScheduling", "0/3 nodes are available: insufficient memory", t0)},
			wantPhase: drillsv1.PhaseDone, wantReason: verdict.ReasonDatabaseFailed, wantInMsg: "FailedScheduling: 0/3 nodes are available"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append([]client.Object{ordersDrill().DatabaseTimeout(dbTimeout).Obj(), run.DeepCopy()}, tt.objects...)
			e := newEngine(t, interceptor.Funcs{}, objs...)
			e.r.Database = (&fakeChecker{clock: e.clock, tables: ordersTable}).connect
			e.clock.SetTime(t0.Add(tt.at))
			res := e.mustReconcile("r1")
			got := e.run("r1").Status
			if tt.wantPhase == drillsv1.PhaseValidating {
				if !containsPhase(got.Phases, drillsv1.PhaseValidating) || got.Result != drillsv1.ResultSucceeded {
					t.Errorf("timeline %v, result %s: want Validating reached", got.Phases, got.Result)
				}
				return
			}
			if got.Phase != tt.wantPhase || got.Reason != tt.wantReason || !strings.Contains(got.Message, tt.wantInMsg) {
				t.Errorf("phase %s, %s %q; want %s, %s mentioning %q", got.Phase, got.Reason, got.Message, tt.wantPhase, tt.wantReason, tt.wantInMsg)
			}
			if tt.wantRequeue != 0 && res.RequeueAfter != tt.wantRequeue {
				t.Errorf("requeue after %s, want %s", res.RequeueAfter, tt.wantRequeue)
			}
		})
	}
}

func TestDrillerdSeesTheDatabaseReadyItself(t *testing.T) {
	refused := errors.New("dial tcp 127.0.3.4:5432: connect: connection refused")
	startingUp := &pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is starting up"}
	wrongPassword := &pgconn.PgError{Severity: "FATAL", Code: "28P01", Message: "password authentication failed for user \"postgres\""}
	untrusted := fmt.Errorf("failed to connect to `user=postgres database=app`: 127.0.3.4:5432: tls error: %w",
		fmt.Errorf("%w: it presented the certificate of %q, not this run's sandbox certificate", runcert.ErrUntrustedServer, "db"))
	running := readyPod("127.0.3.4")
	running.Conditions = nil // the readiness probe has not run yet
	tests := []struct {
		name        string
		startup     []error
		wantPhase   drillsv1.Phase
		wantRequeue time.Duration
		wantTries   int
	}{
		{"answers at the third try: on to Validating without the probe", []error{refused, refused, nil}, drillsv1.PhaseValidating, 0, 3},
		{"still starting up: tries again shortly", repeat(startingUp, 30), drillsv1.PhaseStartingDatabase, readinessBackoff, 0},
		{"not listening yet: tries again shortly", repeat(refused, 30), drillsv1.PhaseStartingDatabase, readinessBackoff, 0},
		{"refuses the credentials: it answered; Validating says why", []error{wrongPassword}, drillsv1.PhaseValidating, 0, 0},
		{"not the run's server: it answered; Validating says why", []error{untrusted}, drillsv1.PhaseValidating, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := newRun("r1").In(drillsv1.PhaseStartingDatabase).StartedAt(t0).Deadline(t0.Add(time.Hour)).
				PhaseTiming(drillsv1.PhaseStartingDatabase, t0, time.Time{}).Obj()
			run.Status.SandboxNamespace = sandboxOf(run)
			pod := databasePod(run)
			pod.Status = running
			e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run, pod)
			db := &fakeChecker{clock: e.clock, tables: ordersTable, startup: tt.startup}
			e.r.Database = db.connect
			res := e.mustReconcile("r1")
			got := e.run("r1").Status
			reached := containsPhase(got.Phases, drillsv1.PhaseValidating)
			if reached != (tt.wantPhase == drillsv1.PhaseValidating) {
				t.Fatalf("timeline %v: want %s", got.Phases, tt.wantPhase)
			}
			if tt.wantRequeue != 0 && (res.RequeueAfter != tt.wantRequeue || got.Phase != drillsv1.PhaseStartingDatabase) {
				t.Errorf("phase %s, requeue %s: want still starting, looking again after %s", got.Phase, res.RequeueAfter, tt.wantRequeue)
			}
			if tt.wantTries != 0 && db.attempts < tt.wantTries {
				t.Errorf("%d connection attempts, want at least %d", db.attempts, tt.wantTries)
			}
		})
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}
