package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
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
// other runs hold a slot (holdsSlot), and the runs created before it that
// still wait do not take every free slot: runs start in the order they
// were created, whichever of them looks for a slot first. The cache
// answers first; before a slot is taken the API server confirms it, since
// the cache may not show yet a run created a moment before this one. An
// admitted run holds its slot from this moment until a list shows it
// holding none, or gone.
func (r *Reconciler) takeSlot(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
	if r.MaxInFlight <= 0 {
		return true, nil
	}
	r.slots.mu.Lock()
	defer r.slots.mu.Unlock()
	standing, err := r.standingSandboxes(ctx)
	if err != nil {
		return false, err
	}
	if free, err := r.slotFree(ctx, r.Client, run, standing); err != nil || !free {
		return false, err
	}
	// The API server is asked for the runs not Done only: a cluster keeps
	// thousands of finished runs, which hold no slot and wait for none.
	if free, err := r.slotFree(ctx, r.APIReader, run, standing, notDone); err != nil || !free {
		return false, err
	}
	r.slots.admitted[run.UID] = true
	return true, nil
}

// PhaseField is the DrillRun CRD's selectable field status.phase.
const PhaseField = "status.phase"

// notDone lists the runs that are not Done (a field selector the API
// server evaluates; a run without a status yet is among them).
var notDone = client.MatchingFieldsSelector{Selector: fields.OneTermNotEqualSelector(PhaseField, string(drillsv1.PhaseDone))}

// slotFree reports whether run may take a slot, with the runs as reader
// lists them. A run Done holds no slot and waits for none, so a list may
// leave those out.
func (r *Reconciler) slotFree(ctx context.Context, reader client.Reader, run *drillsv1.DrillRun, standing map[string]bool, opts ...client.ListOption) (bool, error) {
	// Only statuses are read: the cache's runs themselves, not a copy of
	// each (a cluster may hold thousands).
	all := &drillsv1.DrillRunList{}
	if err := reader.List(ctx, all, append(opts, client.UnsafeDisableDeepCopy)...); err != nil {
		return false, fmt.Errorf("while counting runs in progress: %w", err)
	}
	statuses := make(map[types.UID]drillsv1.DrillRunStatus, len(all.Items))
	inFlight := map[types.UID]bool{}
	for _, other := range all.Items {
		statuses[other.UID] = other.Status
		if holdsSlot(other.Status, standing) {
			inFlight[other.UID] = true
		}
	}
	if r.slots.admitted == nil {
		r.slots.admitted = map[types.UID]bool{}
	}
	for uid := range r.slots.admitted {
		if s, ok := statuses[uid]; !ok || s.Concluded() && !holdsSlot(s, standing) {
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
	return ahead < free, nil
}

// holdsSlot reports whether a run holds a drill slot: it has started and
// has no verdict yet, or it has its verdict and tears down a sandbox
// whose deletion has not been asked for yet (standing: sandbox namespaces
// that exist and are not being deleted), so that no more sandboxes than
// slots ever stand at once. A sandbox being deleted, however long it
// takes, holds no slot: it cannot stall the queue. Nor does a failed
// sandbox kept for keepOnFailure.
func holdsSlot(s drillsv1.DrillRunStatus, standing map[string]bool) bool {
	if s.InFlight() {
		return true
	}
	return s.Phase == drillsv1.PhaseTearingDown && s.Result != "" && s.SandboxExpiry == nil && !s.SandboxRemoved &&
		s.SandboxNamespace != "" && standing[s.SandboxNamespace]
}

// standingSandboxes are the sandbox namespaces in the cache that are not
// being deleted.
func (r *Reconciler) standingSandboxes(ctx context.Context) (map[string]bool, error) {
	list := &corev1.NamespaceList{}
	if err := r.Client.List(ctx, list, client.MatchingLabels{restore.LabelManagedBy: restore.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("while counting standing sandboxes: %w", err)
	}
	standing := make(map[string]bool, len(list.Items))
	for _, ns := range list.Items {
		if ns.DeletionTimestamp == nil {
			standing[ns.Name] = true
		}
	}
	return standing, nil
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
