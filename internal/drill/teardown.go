package drill

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
)

const (
	// teardownRecheck is how often teardown looks whether the sandbox is
	// gone, besides the watch events of its objects.
	teardownRecheck = 5 * time.Second
	// leakRecheck is how often a Done run whose sandbox leaked looks
	// whether the rest is gone, besides the watch events of its objects.
	leakRecheck = time.Minute
)

// Reasons of the SandboxLeaked condition.
const (
	reasonTeardownTimeout = "TeardownTimeout"
	reasonSandboxRemoved  = "SandboxRemoved"
)

// tearDown is the TearingDown step: it removes the sandbox and waits until
// it is gone, or keeps a failed one for keepOnFailure (the Done step removes
// it then). Past timeouts.teardown the run is Done all the same, with a
// SandboxLeaked condition naming what remains.
func (r *Reconciler) tearDown(ctx context.Context, w *work) (outcome, error) {
	s := &w.run.Status
	if s.SandboxNamespace == "" {
		s.SandboxRemoved = true
		return nextPhase(), nil
	}
	keep := time.Duration(0)
	if w.drill != nil && w.drill.Spec.Sandbox.KeepOnFailure != nil {
		keep = w.drill.Spec.Sandbox.KeepOnFailure.Duration
	}
	if s.Result != drillsv1.ResultSucceeded && keep > 0 && s.SandboxExpiry == nil {
		expiry := metav1.NewTime(w.now.Add(keep))
		s.SandboxExpiry = &expiry
		w.log.Info("keeping the failed sandbox", "sandbox", s.SandboxNamespace, "until", expiry.Time)
		return nextPhase(), nil
	}
	if s.SandboxExpiry != nil && w.now.Before(s.SandboxExpiry.Time) {
		return nextPhase(), nil
	}
	start, ok := rto.PhaseStart(*s, drillsv1.PhaseTearingDown)
	switch {
	case ok:
	case s.StartTime != nil:
		start = s.StartTime.Time // a status without its timing still has a bound
	default:
		start = w.now
	}
	out, err := r.removeWithin(ctx, w, start.Add(teardownTimeout(w.drill)))
	if err != nil || out.kind == waiting {
		return out, err
	}
	return nextPhase(), nil
}

// sandboxAfterDone is the Done step's part of the sandbox: it removes a kept
// sandbox once keepOnFailure has passed (bounded by timeouts.teardown from
// then), and watches a leaked one until the rest is gone.
func (r *Reconciler) sandboxAfterDone(ctx context.Context, w *work) (outcome, error) {
	s := &w.run.Status
	if s.SandboxRemoved || s.SandboxNamespace == "" {
		return waitFor(0), nil
	}
	if leaked(*s) {
		return r.watchLeak(ctx, w)
	}
	if s.SandboxExpiry == nil {
		return waitFor(0), nil
	}
	if w.now.Before(s.SandboxExpiry.Time) {
		return waitFor(s.SandboxExpiry.Sub(w.now)), nil
	}
	out, err := r.removeWithin(ctx, w, s.SandboxExpiry.Add(teardownTimeout(w.drill)))
	switch {
	case err != nil || out.kind == waiting:
		return out, err
	case leaked(*s):
		return waitFor(leakRecheck), nil
	}
	return waitFor(0), nil
}

// removeWithin removes the run's sandbox and waits for it until deadline.
// It returns nextPhase once the sandbox is gone (status.sandboxRemoved) or
// the deadline has passed (the SandboxLeaked condition names what remains),
// else a wait or the error to retry.
func (r *Reconciler) removeWithin(ctx context.Context, w *work, deadline time.Time) (outcome, error) {
	remains, err := r.removeSandbox(ctx, w.run)
	if err == nil && len(remains) == 0 {
		w.run.Status.SandboxRemoved = true
		return nextPhase(), nil
	}
	if w.now.Before(deadline) {
		if err != nil {
			return outcome{}, err
		}
		return waitFor(min(teardownRecheck, deadline.Sub(w.now))), nil
	}
	r.recordLeak(w, remains, err)
	return nextPhase(), nil
}

// watchLeak looks whether what a leaked sandbox left is gone (the sweep
// removes it, or whoever cleared what blocked it), asking for its deletion
// again on the way, and then records that it is.
func (r *Reconciler) watchLeak(ctx context.Context, w *work) (outcome, error) {
	remains, err := r.removeSandbox(ctx, w.run)
	if err != nil || len(remains) > 0 {
		if err != nil {
			w.log.Info("the leaked sandbox is not removed yet", "sandbox", w.run.Status.SandboxNamespace, "error", err.Error())
		}
		return waitFor(leakRecheck), nil
	}
	s := &w.run.Status
	s.SandboxRemoved = true
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: drillsv1.ConditionSandboxLeaked, Status: metav1.ConditionFalse, Reason: reasonSandboxRemoved,
		Message: "what teardown left of the sandbox " + s.SandboxNamespace + " is gone",
	})
	r.Recorder.Eventf(w.run, nil, corev1.EventTypeNormal, reasonSandboxRemoved, "Teardown", "what teardown left of the sandbox %s is gone", s.SandboxNamespace)
	w.log.Info("leaked sandbox removed", "sandbox", s.SandboxNamespace)
	return waitFor(0), nil
}

// recordLeak gives the run the SandboxLeaked condition and a Warning event
// naming what remains of its sandbox past timeouts.teardown, and why, if an
// error said so. The run's verdict stands; the sweep goes on removing the
// rest.
func (r *Reconciler) recordLeak(w *work, remains []remnant, err error) {
	s := &w.run.Status
	parts := make([]string, 0, len(remains))
	for _, rem := range remains {
		parts = append(parts, rem.String())
	}
	msg := fmt.Sprintf("the sandbox was not removed within timeouts.teardown (%s); left: %s", teardownTimeout(w.drill), strings.Join(parts, "; "))
	if len(remains) == 0 {
		msg = fmt.Sprintf("the sandbox was not removed within timeouts.teardown (%s)", teardownTimeout(w.drill))
	}
	if err != nil {
		msg += "; last error: " + err.Error()
	}
	msg = boundMessage(msg)
	meta.SetStatusCondition(&s.Conditions, metav1.Condition{
		Type: drillsv1.ConditionSandboxLeaked, Status: metav1.ConditionTrue, Reason: reasonTeardownTimeout, Message: msg,
	})
	s.LastError = ""
	r.Recorder.Eventf(w.run, nil, corev1.EventTypeWarning, drillsv1.ConditionSandboxLeaked, "Teardown", "%s", msg)
	w.log.Info("sandbox leaked; the sweep goes on removing it", "sandbox", s.SandboxNamespace, "left", len(remains))
}

// leaked reports whether the run's sandbox outlived timeouts.teardown and
// is not known to be gone yet.
func leaked(s drillsv1.DrillRunStatus) bool {
	return meta.IsStatusConditionTrue(s.Conditions, drillsv1.ConditionSandboxLeaked)
}

func teardownTimeout(d *drillsv1.RestoreDrill) time.Duration {
	if d == nil {
		return drillsv1.DefaultTeardownTimeout
	}
	return d.Spec.TeardownTimeout()
}

// remnant is a sandbox object teardown has not seen go, for the
// SandboxLeaked condition.
type remnant struct {
	kind, name string
	state      string // what it is waiting for, e.g. the namespace's Terminating conditions
}

func (r remnant) String() string {
	if r.state == "" {
		return r.kind + " " + r.name
	}
	return r.kind + " " + r.name + " (" + r.state + ")"
}

// removeSandbox deletes the run's namespace and content copy, through the
// ownership gates, makes sure the restored volume is deleted with its
// claim, and returns what is not gone yet. It goes on past an error with
// the other objects and returns the errors joined.
//
// The content copy is deleted in the foreground: the garbage collector then
// deletes what was restored from it (sandbox snapshot, claim, database pod,
// which the copy owns) at once, and the database pod, which has no grace
// period, goes with its process. So when the namespace controller empties
// the namespace (it waits a few seconds after the deletion before it
// starts), nothing is left that a finalizer holds, which would make it wait
// many seconds more. Teardown reads the sandbox from the cache (sightings);
// watch events of the labelled objects wake the run as they go.
func (r *Reconciler) removeSandbox(ctx context.Context, run *drillsv1.DrillRun) ([]remnant, error) {
	var remains []remnant
	var errs []error
	reader := r.sightings.reader(run, r.Client, r.APIReader)
	volume, pv, err := releaseVolume(ctx, reader, r.Client, run.Status.SandboxNamespace, run.Status.VolumeName)
	if err != nil {
		errs = append(errs, err)
	}
	if volume != "" {
		run.Status.VolumeName = volume
	}
	switch {
	case pv != nil:
		remains = append(remains, volumeRemnant(pv))
	case err != nil && volume != "":
		remains = append(remains, remnant{kind: "PersistentVolume", name: volume, state: "not known to be gone"})
	}
	content := &snapshotv1.VolumeSnapshotContent{}
	name := restore.Sandbox{Run: run}.ContentName()
	err = reader.Get(ctx, types.NamespacedName{Name: name}, content)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		errs = append(errs, fmt.Errorf("while reading VolumeSnapshotContent copy %s: %w", name, err))
		remains = append(remains, remnant{kind: "VolumeSnapshotContent", name: name, state: "not known to be gone"})
	case !restore.IsOwnedContent(content) || content.Labels[restore.LabelRun] != string(run.UID):
		errs = append(errs, fmt.Errorf("refusing to delete VolumeSnapshotContent %s: it is not a Retain copy of this run", content.Name))
	default:
		if content.DeletionTimestamp == nil && !r.sightings.wasDeleted(run, content) {
			err := r.Client.Delete(ctx, content, client.Preconditions{UID: &content.UID}, client.PropagationPolicy(metav1.DeletePropagationForeground))
			if client.IgnoreNotFound(err) != nil {
				errs = append(errs, fmt.Errorf("while deleting VolumeSnapshotContent copy %s: %w", content.Name, err))
			} else {
				r.sightings.deleted(run, content)
			}
		}
		remains = append(remains, deletingRemnant("VolumeSnapshotContent", content))
	}
	if name := run.Status.SandboxNamespace; name != "" {
		ns := &corev1.Namespace{}
		err := reader.Get(ctx, types.NamespacedName{Name: name}, ns)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			errs = append(errs, fmt.Errorf("while reading sandbox namespace %s: %w", name, err))
			remains = append(remains, remnant{kind: "Namespace", name: name, state: "not known to be gone"})
		case !restore.IsOwnedSandbox(ns) || ns.Labels[restore.LabelRun] != string(run.UID):
			errs = append(errs, fmt.Errorf("refusing to delete namespace %s: it does not carry this run's labels", name))
		default:
			if ns.DeletionTimestamp == nil && !r.sightings.wasDeleted(run, ns) {
				if err := r.Client.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
					errs = append(errs, fmt.Errorf("while deleting sandbox namespace %s: %w", name, err))
				} else {
					r.sightings.deleted(run, ns)
				}
			}
			remains = append(remains, namespaceRemnant(ns))
		}
	}
	if len(remains) == 0 && len(errs) == 0 {
		r.sightings.forget(client.ObjectKeyFromObject(run))
	}
	return remains, errors.Join(errs...)
}

// namespaceRemnant names a sandbox namespace and what its deletion waits
// for: the namespace controller's conditions say which finalizers or
// resources remain.
func namespaceRemnant(ns *corev1.Namespace) remnant {
	rem := deletingRemnant("Namespace", ns)
	if ns.DeletionTimestamp == nil {
		return rem
	}
	var why []string
	for _, c := range ns.Status.Conditions {
		if c.Status == corev1.ConditionTrue && c.Message != "" {
			why = append(why, c.Message)
		}
	}
	if len(why) > 0 {
		rem.state = "Terminating: " + strings.Join(why, "; ")
	} else {
		rem.state = "Terminating"
	}
	return rem
}

// deletingRemnant names obj and whether its deletion was requested and
// waits for finalizers.
func deletingRemnant(kind string, obj client.Object) remnant {
	rem := remnant{kind: kind, name: obj.GetName(), state: "deletion not requested yet"}
	if obj.GetDeletionTimestamp() != nil {
		rem.state = "being deleted"
		if f := obj.GetFinalizers(); len(f) > 0 {
			rem.state += ", finalizers " + strings.Join(f, ", ")
		}
	}
	return rem
}

// volumeRemnant names a restored volume and its state.
func volumeRemnant(pv *corev1.PersistentVolume) remnant {
	rem := deletingRemnant("PersistentVolume", pv)
	state := fmt.Sprintf("%s, reclaimPolicy %s", pv.Status.Phase, pv.Spec.PersistentVolumeReclaimPolicy)
	if pv.Status.Phase == "" {
		state = "reclaimPolicy " + string(pv.Spec.PersistentVolumeReclaimPolicy)
	}
	if pv.DeletionTimestamp != nil {
		state += "; " + rem.state
	}
	rem.state = state
	return rem
}

// releaseVolume makes the restored volume of sandbox namespace ns go away
// with its claim: a volume of a storage class with reclaimPolicy Retain
// would otherwise outlive the sandbox as a Released copy of production
// data. name is the volume if known, else the sandbox claim's volume is
// looked up (a run can end before it saw its claim bound). Only a volume
// bound to the sandbox's claim is touched (restore.IsSandboxVolume). It
// returns the volume's name and the volume while it still exists. Teardown
// and the sweep both use it.
func releaseVolume(ctx context.Context, reader client.Reader, c client.Client, ns, name string) (string, *corev1.PersistentVolume, error) {
	if name == "" && ns != "" {
		claim := &corev1.PersistentVolumeClaim{}
		err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}, claim)
		if client.IgnoreNotFound(err) != nil {
			return "", nil, fmt.Errorf("while reading the sandbox's claim: %w", err)
		}
		name = claim.Spec.VolumeName
	}
	if name == "" {
		return "", nil, nil
	}
	pv := &corev1.PersistentVolume{}
	err := reader.Get(ctx, types.NamespacedName{Name: name}, pv)
	switch {
	case apierrors.IsNotFound(err):
		return name, nil, nil
	case err != nil:
		return name, nil, fmt.Errorf("while reading the restored volume %s: %w", name, err)
	case !restore.IsSandboxVolume(pv, ns):
		return name, nil, nil // not the sandbox's (any more): not drillerd's to wait for
	}
	return name, pv, restore.ReleaseSandboxVolume(ctx, c, pv)
}
