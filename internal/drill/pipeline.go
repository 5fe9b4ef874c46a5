package drill

import (
	"context"
	"fmt"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
	"github.com/drillerd/drillerd/internal/verdict"
)

// step is one phase's work.
type step func(r *Reconciler, ctx context.Context, w *work) (outcome, error)

// pipeline is a drill, in order: every phase and the step that does it.
var pipeline = []struct {
	phase drillsv1.Phase
	step  step
	// saveOnEntry: the status is written as the run enters the phase,
	// because its step works long without waiting (the checks) and
	// `kubectl get drillruns` should say so meanwhile.
	saveOnEntry bool
}{
	{drillsv1.PhasePending, (*Reconciler).admit, false},                    // wait for a drill slot, start the run
	{drillsv1.PhaseSelectingSnapshot, (*Reconciler).selectSnapshot, false}, // newest ready snapshot of the claim
	{drillsv1.PhaseProvisioning, (*Reconciler).provision, false},           // sandbox objects; the RTO clock starts
	{drillsv1.PhaseRestoringVolume, (*Reconciler).restoreVolume, false},    // wait: snapshot copy ready, claim bound
	{drillsv1.PhaseStartingDatabase, (*Reconciler).startDatabase, false},   // wait: database pod ready
	{drillsv1.PhaseValidating, (*Reconciler).validate, true},               // checks, RTO, RPO; the verdict
	{drillsv1.PhaseTearingDown, (*Reconciler).tearDown, false},             // wait: sandbox gone (or kept)
	{drillsv1.PhaseDone, (*Reconciler).afterDone, false},                   // count the run; expire a kept sandbox
}

// stageOf is the index of phase in pipeline; a run without a phase is
// Pending. It returns -1 for a phase drillerd does not know.
func stageOf(phase drillsv1.Phase) int {
	if phase == "" {
		phase = drillsv1.PhasePending
	}
	for i, s := range pipeline {
		if s.phase == phase {
			return i
		}
	}
	return -1
}

// outcomeKind is what happens after a step.
type outcomeKind int

const (
	waiting outcomeKind = iota
	advancing
	concluding
)

// outcome is what a step decided.
type outcome struct {
	kind    outcomeKind
	after   time.Duration   // waiting: look again after this even without a watch event; 0 = only on an event
	verdict verdict.Verdict // concluding: the run's verdict
}

// nextPhase: the step's work is done; the run moves to the next phase.
func nextPhase() outcome { return outcome{kind: advancing} }

// waitFor: the step waits for a watch event, or at most d (0: no limit).
func waitFor(d time.Duration) outcome { return outcome{kind: waiting, after: d} }

// conclude: the run has its verdict and goes to teardown.
func conclude(v verdict.Verdict) outcome { return outcome{kind: concluding, verdict: v} }

// staleRecheck is when a run whose cached copy is older than this
// process's last status write looks again, should the watch event of that
// write not come first.
const staleRecheck = time.Second

// Reconcile advances a run through the pipeline as far as it can. Its
// status is written when the run waits, when it has its verdict (before
// teardown begins), and as it enters a phase marked saveOnEntry: phases
// passed within one reconcile share one write, and one Progress event.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	if r.Gate != nil && !r.Gate.IsOpen() {
		return ctrl.Result{RequeueAfter: 500 * time.Millisecond}, nil
	}
	w, err := r.load(ctx, req)
	if w == nil && err == nil {
		r.forget(req.NamespacedName) // the run is gone
	}
	if w == nil || err != nil {
		return ctrl.Result{}, err
	}
	if r.writes.stale(w.run) {
		// The cache has not seen this process's last write yet: acting on
		// the older status would redo a step, and its write would conflict.
		return ctrl.Result{RequeueAfter: staleRecheck}, nil
	}
	ctx = ctrl.LoggerInto(ctx, w.log)
	run := w.run
	for {
		if v, over := overrun(w); over {
			r.end(w, v)
			if err := r.save(ctx, w); err != nil {
				return ctrl.Result{}, err
			}
		}
		phase := run.Status.Phase
		i := stageOf(phase)
		if i < 0 {
			w.log.Info("unknown phase; leaving the run alone", "phase", phase)
			return ctrl.Result{}, nil
		}
		out, err := pipeline[i].step(r, ctx, w)
		if err != nil {
			err = fmt.Errorf("in phase %s: %w", pipeline[i].phase, err)
			if !permanent(err) || run.Status.Result != "" {
				run.Status.LastError = boundMessage(err.Error())
				if werr := r.save(ctx, w); werr != nil {
					w.log.Error(werr, "while recording progress")
				}
				return ctrl.Result{}, err
			}
			// Retrying cannot help: end the run now and tear down.
			out = conclude(verdict.Errored(verdict.ReasonAPIError, "%v", err))
		}
		switch {
		case out.kind == concluding:
			r.end(w, out.verdict)
			// The verdict is recorded before teardown begins.
			if err := r.save(ctx, w); err != nil {
				return ctrl.Result{}, err
			}
		case out.kind == advancing && i+1 < len(pipeline):
			r.advance(w, i)
			if pipeline[i+1].saveOnEntry {
				if err := r.save(ctx, w); err != nil {
					return ctrl.Result{}, err
				}
			}
		default:
			if err := r.save(ctx, w); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{RequeueAfter: out.after}, nil
		}
	}
}

// overrun is the verdict of a started run that can no longer go on: its
// drill was deleted, or timeouts.total has passed.
func overrun(w *work) (verdict.Verdict, bool) {
	s := w.run.Status
	if s.Result != "" || s.StartTime == nil {
		return verdict.Verdict{}, false
	}
	if w.drill == nil {
		return verdict.Errored(verdict.ReasonDrillNotFound, "RestoreDrill %s/%s was deleted during the run", w.run.Namespace, w.run.Spec.DrillName), true
	}
	if s.Deadline != nil && !w.now.Before(s.Deadline.Time) {
		msg := fmt.Sprintf("the drill did not finish within timeouts.total (%s); it was in phase %s", totalTimeout(w.drill), s.Phase)
		if s.LastError != "" {
			msg += "; last error: " + s.LastError
		}
		return verdict.Errored(verdict.ReasonTimeout, "%s", msg), true
	}
	return verdict.Verdict{}, false
}

// endRun gives a run its verdict and sends it to teardown. It is the one
// way a run ends, whoever decides: a step, a permanent API error, the total
// timeout, a deleted drill, or start-up recovery. The first verdict stands;
// endRun reports whether it gave this one.
func endRun(s *drillsv1.DrillRunStatus, v verdict.Verdict, now time.Time) bool {
	if s.Result != "" {
		return false
	}
	s.Result, s.Reason, s.Message = v.Result, v.Reason, v.Message
	if s.Phase != drillsv1.PhaseTearingDown && s.Phase != drillsv1.PhaseDone {
		rto.StartPhase(s, drillsv1.PhaseTearingDown, now)
	}
	return true
}

// end is endRun for the run being reconciled. The run's Access is dropped:
// nothing connects to its database any more, and a sandbox kept for
// keepOnFailure is open to nobody over the network.
func (r *Reconciler) end(w *work, v verdict.Verdict) {
	r.access.forget(types.NamespacedName{Namespace: w.run.Namespace, Name: w.run.Name})
	w.now = r.Clock.Now()
	if endRun(&w.run.Status, v, w.now) {
		// The message may quote values from the restored data: it goes to
		// status and events, never to logs.
		w.log.Info("verdict", "result", v.Result, "reason", v.Reason)
	}
}

// advance moves the run from pipeline[i] to the next phase; the last move
// completes the run.
func (r *Reconciler) advance(w *work, i int) {
	s := &w.run.Status
	from, next := pipeline[i].phase, pipeline[i+1].phase
	s.LastError = ""
	w.now = r.Clock.Now()
	if next == drillsv1.PhaseDone {
		rto.EndPhase(s, w.now)
		s.Phase = drillsv1.PhaseDone
		done := metav1.NewTime(w.now)
		s.CompletionTime = &done
		return
	}
	rto.StartPhase(s, next, w.now)
	if from != drillsv1.PhasePending {
		w.progress = append(w.progress, fmt.Sprintf("%s done in %s", from, phaseTook(*s, from)))
	}
	w.log.V(1).Info("phase done", "phase", from, "next", next)
}
