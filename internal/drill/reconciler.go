package drill

import (
	"context"
	"fmt"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
)

// teardownRecheck is how often teardown looks whether the sandbox is gone.
const teardownRecheck = 5 * time.Second

// Reconciler runs DrillRuns.
type Reconciler struct {
	// Client reads DrillRuns, RestoreDrills and the labelled sandbox
	// objects from the cache, and writes.
	Client client.Client
	// APIReader reads source objects, Secrets and events directly, so
	// that drillerd caches none of them cluster-wide.
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// Database opens the connection checks run on.
	Database Connector
	// DrillerdNamespace and DrillerdLabels are what sandbox NetworkPolicies admit.
	DrillerdNamespace string
	DrillerdLabels    map[string]string
	// Gate, when set, holds reconciles back until Recovery has run.
	Gate *Gate
	// MaxInFlight bounds how many runs are past Pending at once; 0 = no bound.
	MaxInFlight int

	slots admission
}

// maxMessageBytes bounds messages and event notes (events.k8s.io allows
// 1 KiB).
const maxMessageBytes = 1024

// pendingRecheck is how often a Pending run looks for a free slot.
const pendingRecheck = 2 * time.Second

// step is one phase's work: done=true moves to the next phase.
type step func(ctx context.Context, w *work) (done bool, requeue time.Duration, err error)

// work is one reconcile of one run.
type work struct {
	run     *drillsv1.DrillRun
	drill   *drillsv1.RestoreDrill
	sandbox restore.Sandbox
	now     time.Time
	log     logr.Logger
}

// Reconcile advances a run as far as it can.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.Gate != nil && !r.Gate.IsOpen() {
		return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
	}
	run := &drillsv1.DrillRun{}
	if err := r.Client.Get(ctx, req.NamespacedName, run); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log := ctrl.LoggerFrom(ctx).WithValues("run", run.Name, "drill", run.Spec.DrillName, "namespace", run.Namespace)
	ctx = ctrl.LoggerInto(ctx, log)
	if run.Status.Phase == drillsv1.PhaseDone {
		return r.finished(ctx, run)
	}

	w := &work{run: run, now: r.Clock.Now(), log: log}
	drill := &drillsv1.RestoreDrill{}
	err := r.Client.Get(ctx, types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.DrillName}, drill)
	switch {
	case apierrors.IsNotFound(err):
		drill = nil
	case err != nil:
		return ctrl.Result{}, fmt.Errorf("while reading RestoreDrill %s: %w", run.Spec.DrillName, err)
	}
	w.drill = drill
	if drill != nil {
		w.sandbox = restore.Sandbox{Run: run, Drill: drill, DrillerdNamespace: r.DrillerdNamespace, DrillerdLabels: r.DrillerdLabels}
	}

	if run.Status.Phase == "" || run.Status.Phase == drillsv1.PhasePending {
		if drill != nil {
			if ok, err := r.admit(ctx, run); err != nil {
				return ctrl.Result{}, err
			} else if !ok {
				if run.Status.Phase == "" {
					rto.StartPhase(&run.Status, drillsv1.PhasePending, w.now)
					run.Status.Message = fmt.Sprintf("waiting for one of the %d drill slots (--max-concurrent-drills)", r.MaxInFlight)
					if err := r.writeStatus(ctx, w); err != nil {
						return ctrl.Result{}, err
					}
				}
				return ctrl.Result{RequeueAfter: pendingRecheck}, nil
			}
		}
		run.Status.Message = ""
		r.start(w)
		if drill == nil {
			r.decide(w, rto.Errored(rto.ReasonDrillNotFound, "RestoreDrill %s/%s does not exist", run.Namespace, run.Spec.DrillName))
		}
		if err := r.writeStatus(ctx, w); err != nil {
			return ctrl.Result{}, err
		}
	}
	if drill == nil && run.Status.Result == "" {
		r.decide(w, rto.Errored(rto.ReasonDrillNotFound, "RestoreDrill %s/%s was deleted during the run", run.Namespace, run.Spec.DrillName))
	}

	for {
		if run.Status.Result == "" && run.Status.Deadline != nil && !w.now.Before(run.Status.Deadline.Time) {
			msg := fmt.Sprintf("the drill did not finish within timeouts.total (%s); it was in phase %s", totalTimeout(drill), run.Status.Phase)
			if run.Status.LastError != "" {
				msg += "; last error: " + run.Status.LastError
			}
			r.decide(w, rto.Errored(rto.ReasonTimeout, "%s", msg))
		}
		phase := run.Status.Phase
		if run.Status.Result != "" && phase != drillsv1.PhaseTearingDown && phase != drillsv1.PhaseDone {
			rto.StartPhase(&run.Status, drillsv1.PhaseTearingDown, w.now)
			if err := r.writeStatus(ctx, w); err != nil {
				return ctrl.Result{}, err
			}
			continue
		}
		s, next := r.stepFor(phase)
		if s == nil {
			return ctrl.Result{}, nil
		}
		done, requeue, err := s(ctx, w)
		if err != nil {
			err = fmt.Errorf("in phase %s: %w", phase, err)
			if permanent(err) && run.Status.Result == "" {
				// Retrying cannot help: end the run now and tear down.
				r.decide(w, rto.Errored(rto.ReasonAPIError, "%v", err))
				if werr := r.writeStatus(ctx, w); werr != nil {
					return ctrl.Result{}, werr
				}
				continue
			}
			run.Status.LastError = truncate(err.Error(), maxMessageBytes)
			if werr := r.writeStatus(ctx, w); werr != nil {
				log.Error(werr, "while recording progress")
			}
			return ctrl.Result{}, err
		}
		if !done {
			if err := r.writeStatus(ctx, w); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{RequeueAfter: requeue}, nil
		}
		run.Status.LastError = ""
		w.now = r.Clock.Now()
		if next == drillsv1.PhaseDone {
			r.finish(w)
		} else if run.Status.Phase == phase && run.Status.Result == "" {
			// A step that reached a verdict goes straight to teardown.
			rto.StartPhase(&run.Status, next, w.now)
			r.Recorder.Eventf(run, nil, corev1.EventTypeNormal, string(next), "Progress", "%s done in %s; %s", phase, phaseTook(run.Status, phase), next)
		}
		if err := r.writeStatus(ctx, w); err != nil {
			return ctrl.Result{}, err
		}
		if next == drillsv1.PhaseDone {
			r.announce(w)
			return r.finished(ctx, run)
		}
		log.V(1).Info("phase done", "phase", phase, "next", run.Status.Phase)
	}
}

// finished completes a Done run's bookkeeping: it is counted in its drill's
// status once, and a kept sandbox is removed when keepOnFailure has passed.
func (r *Reconciler) finished(ctx context.Context, run *drillsv1.DrillRun) (ctrl.Result, error) {
	if !run.Status.Recorded {
		if err := r.record(ctx, run); err != nil {
			return ctrl.Result{}, fmt.Errorf("while recording the run in its RestoreDrill's status: %w", err)
		}
	}
	return r.expireKeptSandbox(ctx, run)
}

func (r *Reconciler) stepFor(phase drillsv1.Phase) (step, drillsv1.Phase) {
	switch phase {
	case drillsv1.PhaseSelectingSnapshot:
		return r.selectSnapshot, drillsv1.PhaseProvisioning
	case drillsv1.PhaseProvisioning:
		return r.provision, drillsv1.PhaseRestoringVolume
	case drillsv1.PhaseRestoringVolume:
		return r.restoreVolume, drillsv1.PhaseStartingDatabase
	case drillsv1.PhaseStartingDatabase:
		return r.startDatabase, drillsv1.PhaseValidating
	case drillsv1.PhaseValidating:
		return r.validate, drillsv1.PhaseTearingDown
	case drillsv1.PhaseTearingDown:
		return r.tearDown, drillsv1.PhaseDone
	}
	return nil, ""
}

// admission remembers the runs this process let out of Pending, so that
// two reconciles cannot take the same free slot before the cache shows the
// first one's new phase.
type admission struct {
	mu       sync.Mutex
	admitted map[types.UID]bool
}

// admit reports whether run may leave Pending: fewer than MaxInFlight other
// runs are past Pending and not Done. An admitted run holds its slot from
// this moment until the cache shows it Done or gone.
func (r *Reconciler) admit(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
	if r.MaxInFlight <= 0 {
		return true, nil
	}
	r.slots.mu.Lock()
	defer r.slots.mu.Unlock()
	all := &drillsv1.DrillRunList{}
	if err := r.Client.List(ctx, all); err != nil {
		return false, fmt.Errorf("while counting runs in progress: %w", err)
	}
	phases := make(map[types.UID]drillsv1.Phase, len(all.Items))
	inFlight := map[types.UID]bool{}
	for _, other := range all.Items {
		p := other.Status.Phase
		phases[other.UID] = p
		if p != "" && p != drillsv1.PhasePending && p != drillsv1.PhaseDone {
			inFlight[other.UID] = true
		}
	}
	if r.slots.admitted == nil {
		r.slots.admitted = map[types.UID]bool{}
	}
	for uid := range r.slots.admitted {
		if p, ok := phases[uid]; !ok || p == drillsv1.PhaseDone {
			delete(r.slots.admitted, uid)
		} else {
			inFlight[uid] = true
		}
	}
	delete(inFlight, run.UID)
	if len(inFlight) >= r.MaxInFlight {
		return false, nil
	}
	r.slots.admitted[run.UID] = true
	return true, nil
}

func (r *Reconciler) start(w *work) {
	s := &w.run.Status
	start := metav1.NewTime(w.now)
	s.StartTime = &start
	deadline := metav1.NewTime(w.now.Add(totalTimeout(w.drill)))
	s.Deadline = &deadline
	rto.StartPhase(s, drillsv1.PhaseSelectingSnapshot, w.now)
	r.Recorder.Eventf(w.run, nil, corev1.EventTypeNormal, "Started", "Start", "drill %s started (trigger %s)", w.run.Spec.DrillName, w.run.Spec.Trigger)
}

// decide records the verdict once; later findings do not overwrite it.
func (r *Reconciler) decide(w *work, v rto.Verdict) {
	s := &w.run.Status
	if s.Result != "" {
		return
	}
	s.Result, s.Reason, s.Message = v.Result, v.Reason, v.Message
	// The message may quote values from the restored data: it goes to
	// status and events, never to logs.
	w.log.Info("verdict", "result", v.Result, "reason", v.Reason)
}

func (r *Reconciler) finish(w *work) {
	s := &w.run.Status
	rto.EndPhase(s, w.now)
	s.Phase = drillsv1.PhaseDone
	done := metav1.NewTime(w.now)
	s.CompletionTime = &done
}

// announce sends the verdict as events on the run and its drill.
func (r *Reconciler) announce(w *work) {
	s := w.run.Status
	eventType := corev1.EventTypeNormal
	if s.Result != drillsv1.ResultSucceeded {
		eventType = corev1.EventTypeWarning
	}
	note := truncate(reasonOr(s.Reason, "Succeeded")+": "+s.Message, maxMessageBytes)
	r.Recorder.Eventf(w.run, nil, eventType, string(s.Result), "Finish", "%s", note)
	if w.drill != nil {
		r.Recorder.Eventf(w.drill, w.run, eventType, "Run"+string(s.Result), "Finish", "%s", truncate("run "+w.run.Name+": "+note, maxMessageBytes))
	}
}

// record counts a finished run in its drill's status, once: with an
// optimistic lock on a fresh read, so concurrent runs do not lose counts.
func (r *Reconciler) record(ctx context.Context, run *drillsv1.DrillRun) error {
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.DrillName}
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		drill := &drillsv1.RestoreDrill{}
		if err := r.APIReader.Get(ctx, key, drill); err != nil {
			return err
		}
		orig := drill.DeepCopy()
		if !summarize(&drill.Status, run) {
			return nil
		}
		return r.Client.Status().Patch(ctx, drill, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
	if client.IgnoreNotFound(err) != nil {
		return err
	}
	run.Status.Recorded = true
	return r.Client.Status().Update(ctx, run)
}

func (r *Reconciler) writeStatus(ctx context.Context, w *work) error {
	if err := r.Client.Status().Update(ctx, w.run); err != nil {
		return fmt.Errorf("while writing DrillRun status: %w", err)
	}
	return nil
}

// phaseDeadline is when the current phase times out.
func phaseDeadline(w *work, d time.Duration) time.Time {
	start, ok := rto.PhaseStart(w.run.Status, w.run.Status.Phase)
	if !ok {
		start = w.now
	}
	return start.Add(d)
}

// lastEvent describes the newest event about an object, for messages that
// name why something is stuck.
func (r *Reconciler) lastEvent(ctx context.Context, obj client.Object, kind string) string {
	list := &corev1.EventList{}
	err := r.APIReader.List(ctx, list, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{"involvedObject.kind": kind, "involvedObject.name": obj.GetName()})
	if err != nil {
		return ""
	}
	return restore.LastEvent(list.Items)
}

func withEvent(msg, event string) string {
	if event == "" {
		return msg
	}
	return msg + ": " + event
}

func totalTimeout(d *drillsv1.RestoreDrill) time.Duration {
	if d == nil {
		return drillsv1.DefaultTotalTimeout
	}
	return d.Spec.TotalTimeout()
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d != nil && d.Duration > 0 {
		return d.Duration
	}
	return def
}

// phaseTook is how long the last timing of phase took, for events.
func phaseTook(s drillsv1.DrillRunStatus, phase drillsv1.Phase) string {
	for i := len(s.Phases) - 1; i >= 0; i-- {
		if p := s.Phases[i]; p.Name == phase && p.Seconds != nil {
			return rto.Human(*p.Seconds)
		}
	}
	return "?"
}

// truncate cuts s to at most n bytes, at a rune boundary.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func reasonOr(reason, def string) string {
	if reason == "" {
		return def
	}
	return reason
}
