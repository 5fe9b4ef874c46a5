package drill

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// afterDone is the Done step: the run is counted in its drill's status once,
// a kept sandbox is removed when keepOnFailure has passed, and a leaked one
// is watched until it is gone.
func (r *Reconciler) afterDone(ctx context.Context, w *work) (outcome, error) {
	if !w.run.Status.Recorded {
		if err := r.record(ctx, w.run); err != nil {
			return outcome{}, fmt.Errorf("while recording the run in its RestoreDrill's status: %w", err)
		}
		w.run.Status.Recorded = true
	}
	return r.sandboxAfterDone(ctx, w)
}

// announce sends the verdict as events on the run and its drill.
func (r *Reconciler) announce(w *work) {
	s := w.run.Status
	eventType := corev1.EventTypeNormal
	if s.Result != drillsv1.ResultSucceeded {
		eventType = corev1.EventTypeWarning
	}
	note := boundMessage(reasonOr(s.Reason, "Succeeded") + ": " + s.Message)
	r.Recorder.Eventf(w.run, nil, eventType, string(s.Result), "Finish", "%s", note)
	if w.drill != nil {
		r.Recorder.Eventf(w.drill, w.run, eventType, "Run"+string(s.Result), "Finish", "%s", boundMessage("run "+w.run.Name+": "+note))
	}
}

// record counts a finished run in its drill's status, once: with an
// optimistic lock, so concurrent runs do not lose counts. The drill is read
// from the cache first, from the API server after a conflict. A drill that
// is gone has nothing to count.
func (r *Reconciler) record(ctx context.Context, run *drillsv1.DrillRun) error {
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.DrillName}
	var reader client.Reader = r.Client
	err := retry.RetryOnConflict(retry.DefaultBackoff, func() error {
		drill := &drillsv1.RestoreDrill{}
		err := reader.Get(ctx, key, drill)
		reader = r.APIReader
		if err != nil {
			return err
		}
		orig := drill.DeepCopy()
		if !summarize(&drill.Status, run) {
			return nil
		}
		recordTrend(drill, run)
		return r.Client.Status().Patch(ctx, drill, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{}))
	})
	return client.IgnoreNotFound(err)
}

// baselineOf is what a Succeeded run found, for the next runs to be
// compared with.
func baselineOf(run *drillsv1.DrillRun) *drillsv1.Baseline {
	b := &drillsv1.Baseline{RunName: run.Name, Tables: run.Status.Tables}
	if run.Status.Snapshot != nil {
		b.ClaimName = run.Status.Snapshot.ClaimName
	}
	if run.Status.Database != nil {
		b.SystemIdentifier = run.Status.Database.SystemIdentifier
	}
	return b
}

// summarize adds a finished run to its drill's status: run counts, skipped
// snapshots and phase durations always; lastRun, lastSuccessTime and the
// baseline unless a newer run finished first. It returns false when the run is recorded already.
func summarize(status *drillsv1.RestoreDrillStatus, run *drillsv1.DrillRun) bool {
	s := run.Status
	last := status.LastRun
	if last != nil && last.Name == run.Name {
		return false
	}
	if status.RunCounts == nil {
		status.RunCounts = map[drillsv1.RunResult]int64{}
	}
	status.RunCounts[s.Result]++
	for _, skipped := range s.SkippedSnapshots {
		if status.SkippedSnapshots == nil {
			status.SkippedSnapshots = map[string]int64{}
		}
		status.SkippedSnapshots[skipped.Reason]++
	}
	for _, p := range s.Phases {
		if p.Seconds == nil {
			continue
		}
		if status.PhaseDurations == nil {
			status.PhaseDurations = map[drillsv1.Phase]drillsv1.PhaseHistogram{}
		}
		h := status.PhaseDurations[p.Name]
		h.Observe(*p.Seconds)
		status.PhaseDurations[p.Name] = h
	}
	if last != nil && last.CompletionTime != nil && s.CompletionTime != nil && last.CompletionTime.After(s.CompletionTime.Time) {
		return true // a newer run finished first
	}
	summary := &drillsv1.RunSummary{Name: run.Name, Result: s.Result, Reason: s.Reason, CompletionTime: s.CompletionTime}
	if s.RTO != nil {
		summary.RTOSeconds = ptr.To(s.RTO.Seconds)
	}
	if s.RPO != nil {
		summary.RPOSeconds = ptr.To(s.RPO.Seconds)
	}
	summary.RTOSecondsPerGiB = rtoPerGiB(s)
	status.LastRun = summary
	if s.Result == drillsv1.ResultSucceeded {
		status.LastSuccessTime = s.CompletionTime
		status.Baseline = baselineOf(run)
	}
	return true
}
