package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

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
	w.started = fmt.Sprintf("drill %s started (trigger %s)", w.run.Spec.DrillName, w.run.Spec.Trigger)
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
// queue). An admitted run holds its slot from this moment until the cache
// shows it with a verdict, or gone.
func (r *Reconciler) takeSlot(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
	if r.MaxInFlight <= 0 {
		return true, nil
	}
	r.slots.mu.Lock()
	defer r.slots.mu.Unlock()
	// Only statuses are read: the cache's runs themselves, not a copy of
	// each (a cluster may hold thousands).
	all := &drillsv1.DrillRunList{}
	if err := r.Client.List(ctx, all, client.UnsafeDisableDeepCopy); err != nil {
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
	if len(inFlight) >= r.MaxInFlight {
		return false, nil
	}
	r.slots.admitted[run.UID] = true
	return true, nil
}
