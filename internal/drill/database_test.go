package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr/funcr"
	"github.com/jackc/pgx/v5/pgconn"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
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
	// More failed tries than one reconcile makes (one every
	// readinessBackoff for readinessWindow).
	moreThanAWindow := int(readinessWindow/readinessBackoff) + 10
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
		{"still starting up: tries again shortly", repeat(startingUp, moreThanAWindow), drillsv1.PhaseStartingDatabase, readinessBackoff, 0},
		{"not listening yet: tries again shortly", repeat(refused, moreThanAWindow), drillsv1.PhaseStartingDatabase, readinessBackoff, 0},
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

// fakeLogs is the database container's log as pods/log returns it.
type fakeLogs struct {
	current, previous string
	err               error  // every read fails with it
	asked             []bool // previous, per read
}

func (f *fakeLogs) DatabaseLog(_ context.Context, _ string, previous bool) (string, error) {
	f.asked = append(f.asked, previous)
	if f.err != nil {
		return "", f.err
	}
	if previous {
		return f.previous, nil
	}
	return f.current, nil
}

// A database that does not start is Failed in PostgreSQL's own words,
// read from the end of its log where its status has none; a log that
// cannot be read changes no verdict.
func TestStartingDatabaseReadsWhyFromTheLog(t *testing.T) {
	const (
		dbTimeout = 5 * time.Minute
		standby   = "2026-11-22 03:04:59.120 UTC [812] FATAL:  the database system is not accepting connections"
		hotOff    = "2026-11-22 03:04:59.120 UTC [812] DETAIL:  Hot standby mode is disabled."
		knock     = "2026-11-22 03:00:02.001 UTC [17] FATAL:  the database system is starting up"
		xact      = "2026-11-22 03:00:03.500 UTC [9] FATAL:  could not access status of transaction 818"
		xactWhy   = `2026-11-22 03:00:03.500 UTC [9] DETAIL:  Could not open file "pg_xact/0000": No such file or directory.`
	)
	lines := func(l ...string) string { return strings.Join(l, "\n") + "\n" }
	// noise: the server's last 80 lines, all after its FATAL, as a
	// termination message keeps them.
	noise := strings.Repeat("2026-11-22 03:00:03.600 UTC [1] DEBUG:  proc_exit(1): 2 callbacks to make\n", 80)
	forbidden := apierrors.NewForbidden(schema.GroupResource{Resource: "pods/log"}, restore.DatabasePodName, errors.New("RBAC: not allowed"))

	run := newRun("r1").In(drillsv1.PhaseStartingDatabase).StartedAt(t0).Deadline(t0.Add(time.Hour)).
		PhaseTiming(drillsv1.PhaseStartingDatabase, t0, time.Time{}).Obj()
	run.Status.SandboxNamespace = sandboxOf(run)
	status := func(cs corev1.ContainerStatus, phase corev1.PodPhase) corev1.PodStatus {
		cs.Name = restore.DatabaseContainerName
		return corev1.PodStatus{Phase: phase, PodIP: "127.0.3.4", ContainerStatuses: []corev1.ContainerStatus{cs}}
	}
	running := status(corev1.ContainerStatus{ContainerID: "containerd://0", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}, corev1.PodRunning)
	cut := status(corev1.ContainerStatus{ContainerID: "containerd://0", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		Reason: "Error", ExitCode: 1, Message: noise, ContainerID: "containerd://0"}}}, corev1.PodFailed)
	crashLooping := status(corev1.ContainerStatus{ContainerID: "containerd://1", RestartCount: 1,
		State:                corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff", Message: "back-off 20s restarting failed container"}},
		LastTerminationState: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 1, ContainerID: "containerd://1"}}}, corev1.PodRunning)
	pulling := status(corev1.ContainerStatus{State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff", Message: "Back-off pulling image"}}}, corev1.PodPending)

	tests := []struct {
		name      string
		at        time.Duration
		pod       corev1.PodStatus
		logs      *fakeLogs
		wantMsg   string
		wantAsked []bool
		wantLog   string // what drillerd's own log says
	}{
		{
			name: "runs but never answers: not ready, with the FATAL it says to every connection",
			at:   dbTimeout, pod: running, logs: &fakeLogs{current: lines("LOG:  entering standby mode", knock, standby, hotOff, standby, hotOff)},
			wantMsg:   "database pod " + run.Status.SandboxNamespace + "/db not ready after 5m0s: " + standby + " " + hotOff,
			wantAsked: []bool{false},
		},
		{
			name: "exited, its termination message cut after the FATAL: the log's FATAL",
			at:   time.Minute, pod: cut, logs: &fakeLogs{current: lines(xact, xactWhy) + noise},
			wantMsg:   "database pod " + run.Status.SandboxNamespace + "/db: container database terminated: Error (exit code 1): " + xact + " " + xactWhy,
			wantAsked: []bool{false},
		},
		{
			name: "restarted, waiting to run again, its current log silent: the previous run's FATAL",
			at:   dbTimeout, pod: crashLooping, logs: &fakeLogs{current: "LOG:  starting PostgreSQL 16.4\n", previous: lines(xact, xactWhy)},
			wantMsg:   "not ready after 5m0s: container database is waiting: CrashLoopBackOff: " + xact + " " + xactWhy,
			wantAsked: []bool{false, true},
		},
		{
			name: "the log cannot be read: still Failed, on the pod's status, and drillerd logs why",
			at:   dbTimeout, pod: running, logs: &fakeLogs{err: forbidden},
			wantMsg:   "not ready after 5m0s: Unhealthy: Readiness probe failed",
			wantAsked: []bool{false},
			wantLog:   `"sandbox"="` + run.Status.SandboxNamespace + `" "error"="pods/log \"db\" is forbidden: RBAC: not allowed"`,
		},
		{
			name: "exited, the log unreadable: the termination message's words",
			at:   time.Minute, pod: status(corev1.ContainerStatus{ContainerID: "containerd://0", State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
				Reason: "Error", ExitCode: 1, Message: lines(xact, xactWhy), ContainerID: "containerd://0"}}}, corev1.PodFailed),
			logs:      &fakeLogs{err: forbidden},
			wantMsg:   "container database terminated: Error (exit code 1): " + xact + " " + xactWhy,
			wantAsked: []bool{false},
		},
		{
			name: "never ran (image not pulled): no log to read",
			at:   dbTimeout, pod: pulling, logs: &fakeLogs{current: "must not be read"},
			wantMsg: "not ready after 5m0s: container database is waiting: ImagePullBackOff: Back-off pulling image",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := databasePod(run)
			pod.Status = tt.pod
			probe := warning(sandboxOf(run), "Pod", restore.DatabasePodName, "Unhealthy", "Readiness probe failed: /var/run/postgresql:5432 - rejecting connections", t0)
			e := newEngine(t, interceptor.Funcs{}, ordersDrill().DatabaseTimeout(dbTimeout).Obj(), run.DeepCopy(), pod, probe)
			e.r.Database = (&fakeChecker{clock: e.clock, tables: ordersTable, startup: repeat(&pgconn.PgError{Severity: "FATAL", Code: "57P03", Message: "the database system is not accepting connections"}, 100)}).connect
			e.r.Logs = tt.logs
			e.clock.SetTime(t0.Add(tt.at))
			var logged strings.Builder
			logger := funcr.New(func(prefix, args string) { logged.WriteString(args + "\n") }, funcr.Options{})
			ctx := ctrl.LoggerInto(context.Background(), logger)
			if _, err := e.r.Reconcile(ctx, ctrl.Request{NamespacedName: types.NamespacedName{Namespace: "prod", Name: "r1"}}); err != nil {
				t.Fatal(err)
			}
			got := e.run("r1").Status
			if got.Phase != drillsv1.PhaseDone || got.Result != drillsv1.ResultFailed || got.Reason != verdict.ReasonDatabaseFailed || !strings.Contains(got.Message, tt.wantMsg) {
				t.Errorf("%s %s/%s: %q\nwant Done Failed/DatabaseFailed with %q", got.Phase, got.Result, got.Reason, got.Message, tt.wantMsg)
			}
			if fmt.Sprint(tt.logs.asked) != fmt.Sprint(tt.wantAsked) {
				t.Errorf("read logs (previous?) %v, want %v", tt.logs.asked, tt.wantAsked)
			}
			if tt.wantLog != "" && (!strings.Contains(logged.String(), `"msg"="cannot read the database's log; the verdict rests on the pod's status"`) || !strings.Contains(logged.String(), tt.wantLog)) {
				t.Errorf("drillerd's log lacks %s:\n%s", tt.wantLog, logged.String())
			}
		})
	}
}
