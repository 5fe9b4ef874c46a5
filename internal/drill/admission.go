package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
	"github.com/drillerd/drillerd/internal/verdict"
)

// pendingRecheck is how often a Pending run looks for a free slot.
const pendingRecheck = 2 * time.Second

// admit is the Pending step: a run waits for one of MaxInFlight slots, then
// starts: its start time and its timeouts.total deadline are set.
func (r *Reconciler) admit(ctx context.Context, w *work) (outcome, error) {
	s := &w.run.Status
	if w.drill != nil {
		ok, err := r.takeSlot(ctx, w.run)
		if err != nil {
			return outcome{}, err
		}
		if !ok {
			if s.Phase == "" {
				rto.StartPhase(s, drillsv1.PhasePending, w.now)
				s.Message = fmt.Sprintf("waiting for one of the %d drill slots (--max-concurrent-drills)", r.MaxInFlight)
			}
			return waitFor(pendingRecheck), nil
		}
	}
	s.Message = ""
	start := metav1.NewTime(w.now)
	s.StartTime = &start
	deadline := metav1.NewTime(w.now.Add(totalTimeout(w.drill)))
	s.Deadline = &deadline
	r.Recorder.Eventf(w.run, nil, corev1.EventTypeNormal, "Started", "Start", "drill %s started (trigger %s)", w.run.Spec.DrillName, w.run.Spec.Trigger)
	if w.drill == nil {
		return conclude(verdict.Errored(verdict.ReasonDrillNotFound, "RestoreDrill %s/%s does not exist", w.run.Namespace, w.run.Spec.DrillName)), nil
	}
	return nextPhase(), nil
}

// admission remembers the runs this process let out of Pending, so that
// two reconciles cannot take the same free slot before the cache shows the
// first one's new phase.
type admission struct {
	mu       sync.Mutex
	admitted map[types.UID]bool
}

// takeSlot reports whether run may leave Pending: fewer than MaxInFlight
// other runs are in flight (started, without a verdict yet: a run tearing
// down holds no slot, so a sandbox that will not go away cannot stall the
// queue), and the runs created before it that still wait do not take every
// free slot: runs start in the order they were created, whichever of them
// looks for a slot first. An admitted run holds its slot from this moment
// until the cache shows it with a verdict, or gone.
func (r *Reconciler) takeSlot(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
	if r.MaxInFlight <= 0 {
		return true, nil
	}
	r.slots.mu.Lock()
	defer r.slots.mu.Unlock()
	all := &drillsv1.DrillRunList{}
	if err := r.Client.List(ctx, all); err != nil {
		return false, fmt.Errorf("while counting runs in progress: %w", err)
	}
	statuses := make(map[types.UID]drillsv1.DrillRunStatus, len(all.Items))
	inFlight := map[types.UID]bool{}
	for _, other := range all.Items {
		statuses[other.UID] = other.Status
		if other.Status.InFlight() {
			inFlight[other.UID] = true
		}
	}
	if r.slots.admitted == nil {
		r.slots.admitted = map[types.UID]bool{}
	}
	for uid := range r.slots.admitted {
		if s, ok := statuses[uid]; !ok || s.Concluded() {
			delete(r.slots.admitted, uid)
		} else {
			inFlight[uid] = true
		}
	}
	delete(inFlight, run.UID)
	free := r.MaxInFlight - len(inFlight)
	ahead := 0
	for i := range all.Items {
		other := &all.Items[i]
		if other.UID != run.UID && !inFlight[other.UID] && waitsForSlot(other.Status) && queuedBefore(other, run) {
			ahead++
		}
	}
	if ahead >= free {
		return false, nil
	}
	r.slots.admitted[run.UID] = true
	return true, nil
}

// waitsForSlot reports whether a run waits in Pending: not started, no verdict.
func waitsForSlot(s drillsv1.DrillRunStatus) bool {
	return s.StartTime == nil && s.Result == "" && (s.Phase == "" || s.Phase == drillsv1.PhasePending)
}

// queuedBefore reports whether run a was created before run b: by creation
// time, which has seconds, then by namespace and name.
func queuedBefore(a, b *drillsv1.DrillRun) bool {
	ta, tb := a.CreationTimestamp.Time, b.CreationTimestamp.Time
	if !ta.Equal(tb) {
		return ta.Before(tb)
	}
	if a.Namespace != b.Namespace {
		return a.Namespace < b.Namespace
	}
	return a.Name < b.Name
}
