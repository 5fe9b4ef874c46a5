package drill

import (
	"context"
	"errors"
	"fmt"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
)

// selectSnapshot picks the newest ready snapshot of the source claim (or the
// pinned one) and records it.
func (r *Reconciler) selectSnapshot(ctx context.Context, w *work) (bool, time.Duration, error) {
	src := w.drill.Spec.Source
	list := &snapshotv1.VolumeSnapshotList{}
	if err := r.APIReader.List(ctx, list, client.InNamespace(w.run.Namespace)); err != nil {
		return false, 0, fmt.Errorf("while listing VolumeSnapshots: %w", err)
	}
	selector := labels.Everything()
	if src.SnapshotSelector != nil {
		var err error
		selector, err = metav1.LabelSelectorAsSelector(src.SnapshotSelector)
		if err != nil {
			r.decide(w, rto.Errored(rto.ReasonInvalidSpec, "spec.source.snapshotSelector: %v", err))
			return true, 0, nil
		}
	}
	snap, err := restore.SelectSnapshot(list.Items, src.PersistentVolumeClaimName, selector, w.run.Spec.SnapshotName)
	switch {
	case errors.Is(err, restore.ErrNoReadySnapshot):
		r.decide(w, rto.Failed(rto.ReasonNoReadySnapshot, "%v", err))
		return true, 0, nil
	case errors.Is(err, restore.ErrSnapshotNotFound):
		r.decide(w, rto.Failed(rto.ReasonSnapshotNotFound, "%v", err))
		return true, 0, nil
	case err != nil:
		return false, 0, err
	}
	content := &snapshotv1.VolumeSnapshotContent{}
	contentName := ptr.Deref(snap.Status.BoundVolumeSnapshotContentName, "")
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: contentName}, content); apierrors.IsNotFound(err) {
		r.decide(w, rto.Failed(rto.ReasonRestoreFailed, "VolumeSnapshotContent %s of snapshot %s does not exist", contentName, snap.Name))
		return true, 0, nil
	} else if err != nil {
		return false, 0, fmt.Errorf("while reading VolumeSnapshotContent %s of snapshot %s: %w", contentName, snap.Name, err)
	}
	handle := ""
	if content.Status != nil {
		handle = ptr.Deref(content.Status.SnapshotHandle, "")
	}
	if handle == "" {
		r.decide(w, rto.Failed(rto.ReasonRestoreFailed, "VolumeSnapshotContent %s of snapshot %s has no snapshot handle", content.Name, snap.Name))
		return true, 0, nil
	}
	created := metav1.NewTime(restore.SnapshotTime(snap))
	w.run.Status.Snapshot = &drillsv1.SnapshotRef{
		Name: snap.Name, ContentName: content.Name, SnapshotHandle: handle,
		CreationTime: &created, RestoreSize: snap.Status.RestoreSize,
	}
	w.log.Info("snapshot selected", "snapshot", snap.Name, "created", created.Time)
	return true, 0, nil
}

// provision creates the sandbox. It starts the RTO clock (the phase start).
func (r *Reconciler) provision(ctx context.Context, w *work) (bool, time.Duration, error) {
	sb := w.sandbox
	w.run.Status.SandboxNamespace = sb.NamespaceName()
	if err := r.writeStatus(ctx, w); err != nil {
		return false, 0, err
	}
	source := &snapshotv1.VolumeSnapshotContent{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: w.run.Status.Snapshot.ContentName}, source); apierrors.IsNotFound(err) {
		r.decide(w, rto.Failed(rto.ReasonRestoreFailed, "VolumeSnapshotContent %s of snapshot %s was deleted before the restore", w.run.Status.Snapshot.ContentName, w.run.Status.Snapshot.Name))
		return true, 0, nil
	} else if err != nil {
		return false, 0, fmt.Errorf("while reading the source VolumeSnapshotContent: %w", err)
	}
	claim := &corev1.PersistentVolumeClaim{}
	err := r.APIReader.Get(ctx, types.NamespacedName{Namespace: w.run.Namespace, Name: w.drill.Spec.Source.PersistentVolumeClaimName}, claim)
	if apierrors.IsNotFound(err) {
		claim = &corev1.PersistentVolumeClaim{} // restore size and the drill's class still decide
	} else if err != nil {
		return false, 0, fmt.Errorf("while reading the source claim: %w", err)
	}

	objects := []client.Object{sb.Namespace(), sb.NetworkPolicy()}
	if w.drill.Spec.Database.Auth.Mode != drillsv1.AuthSecret {
		objects = append(objects, sb.HBAConfigMap())
	}
	objects = append(objects,
		sb.ContentCopy(source, w.run.Status.Snapshot.SnapshotHandle),
		sb.SnapshotCopy(),
		sb.Claim(claim, w.run.Status.Snapshot.RestoreSize),
		sb.DatabasePod(),
	)
	for _, obj := range objects {
		if err := r.create(ctx, w, obj); err != nil {
			return false, 0, err
		}
	}
	w.log.Info("sandbox provisioned", "sandbox", sb.NamespaceName())
	return true, 0, nil
}

// create creates obj; an existing object of this run is adopted, one of
// anybody else is an error.
func (r *Reconciler) create(ctx context.Context, w *work, obj client.Object) error {
	err := r.Client.Create(ctx, obj)
	if err == nil {
		return nil
	}
	if !apierrors.IsAlreadyExists(err) {
		kind := fmt.Sprintf("%T", obj)
		return fmt.Errorf("while creating sandbox %s %s: %w", kind, obj.GetName(), err)
	}
	existing := obj.DeepCopyObject().(client.Object)
	if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(obj), existing); err != nil {
		return fmt.Errorf("while reading existing sandbox object %s: %w", obj.GetName(), err)
	}
	if existing.GetLabels()[restore.LabelRun] != string(w.run.UID) {
		return fmt.Errorf("%w: %s", errSandboxTaken, obj.GetName())
	}
	return nil
}

// restoreVolume waits until the snapshot copy is ready and the claim bound.
func (r *Reconciler) restoreVolume(ctx context.Context, w *work) (bool, time.Duration, error) {
	ns := w.sandbox.NamespaceName()
	timeout := durationOr(w.drill.Spec.Timeouts.Volume, drillsv1.DefaultVolumeTimeout)
	deadline := phaseDeadline(w, timeout)

	vs := &snapshotv1.VolumeSnapshot{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.SourceSnapshotName}, vs); client.IgnoreNotFound(err) != nil {
		return false, 0, err
	}
	ready, failure := restore.SnapshotCopyReady(vs)
	if failure != "" {
		r.decide(w, rto.Failed(rto.ReasonRestoreFailed, "VolumeSnapshot %s/%s failed: %s", ns, restore.SourceSnapshotName, failure))
		return true, 0, nil
	}
	pvc := &corev1.PersistentVolumeClaim{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}, pvc); client.IgnoreNotFound(err) != nil {
		return false, 0, err
	}
	bound := restore.ClaimBound(pvc)
	if bound {
		w.run.Status.VolumeName = pvc.Spec.VolumeName
		if err := r.labelVolume(ctx, w.run, w.sandbox.Labels()); err != nil {
			return false, 0, err
		}
	}
	if ready && bound {
		return true, 0, nil
	}
	if !w.now.Before(deadline) {
		if !ready {
			r.decide(w, rto.Failed(rto.ReasonRestoreFailed, "%s", withEvent(fmt.Sprintf("VolumeSnapshot %s/%s not ready after %s", ns, restore.SourceSnapshotName, timeout), r.lastEvent(ctx, vs, "VolumeSnapshot"))))
		} else {
			r.decide(w, rto.Failed(rto.ReasonRestoreFailed, "%s", withEvent(fmt.Sprintf("PVC %s/%s not bound after %s", ns, restore.DataClaimName, timeout), r.lastEvent(ctx, pvc, "PersistentVolumeClaim"))))
		}
		return true, 0, nil
	}
	return false, wakeAt(w, deadline).Sub(w.now), nil
}

// wakeAt is when a waiting phase looks again without a watch event: its own
// deadline, or the run's timeouts.total if that comes first.
func wakeAt(w *work, phaseDeadline time.Time) time.Time {
	if d := w.run.Status.Deadline; d != nil && d.Time.Before(phaseDeadline) {
		return d.Time
	}
	return phaseDeadline
}

// labelVolume gives the restored volume the sandbox's ownership labels, so
// that the sweep can find it if the run's teardown never happens.
func (r *Reconciler) labelVolume(ctx context.Context, run *drillsv1.DrillRun, labels map[string]string) error {
	pv := &corev1.PersistentVolume{}
	if err := r.APIReader.Get(ctx, types.NamespacedName{Name: run.Status.VolumeName}, pv); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("while reading the restored volume %s: %w", run.Status.VolumeName, err)
	} else if err != nil || !restore.IsSandboxVolume(pv, run.Status.SandboxNamespace) || pv.Labels[restore.LabelRun] == string(run.UID) {
		return nil
	}
	orig := pv.DeepCopy()
	if pv.Labels == nil {
		pv.Labels = map[string]string{}
	}
	for k, v := range labels {
		pv.Labels[k] = v
	}
	if err := r.Client.Patch(ctx, pv, client.MergeFromWithOptions(orig, client.MergeFromWithOptimisticLock{})); client.IgnoreNotFound(err) != nil {
		return fmt.Errorf("while labelling the restored volume %s: %w", pv.Name, err)
	}
	return nil
}

// startDatabase waits until the database pod accepts connections.
func (r *Reconciler) startDatabase(ctx context.Context, w *work) (bool, time.Duration, error) {
	ns := w.sandbox.NamespaceName()
	timeout := durationOr(w.drill.Spec.Timeouts.Database, drillsv1.DefaultDatabaseTimeout)
	deadline := phaseDeadline(w, timeout)
	pod := &corev1.Pod{}
	if err := r.Client.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); client.IgnoreNotFound(err) != nil {
		return false, 0, err
	}
	p := restore.DatabasePodProgress(pod)
	switch {
	case p.Ready:
		return true, 0, nil
	case p.Terminated:
		r.decide(w, rto.Failed(rto.ReasonDatabaseFailed, "database pod %s/%s: %s", ns, restore.DatabasePodName, p.Failure))
		return true, 0, nil
	case !w.now.Before(deadline):
		why := p.Failure
		if why == "" {
			why = r.lastEvent(ctx, pod, "Pod")
		}
		r.decide(w, rto.Failed(rto.ReasonDatabaseFailed, "%s", withEvent(fmt.Sprintf("database pod %s/%s not ready after %s", ns, restore.DatabasePodName, timeout), why)))
		return true, 0, nil
	}
	return false, wakeAt(w, deadline).Sub(w.now), nil
}

// tearDown removes the sandbox, or keeps a failed one for keepOnFailure.
func (r *Reconciler) tearDown(ctx context.Context, w *work) (bool, time.Duration, error) {
	s := &w.run.Status
	if s.SandboxNamespace == "" {
		s.SandboxRemoved = true
		return true, 0, nil
	}
	keep := time.Duration(0)
	if w.drill != nil && w.drill.Spec.Sandbox.KeepOnFailure != nil {
		keep = w.drill.Spec.Sandbox.KeepOnFailure.Duration
	}
	if s.Result != drillsv1.ResultSucceeded && keep > 0 && s.SandboxExpiry == nil {
		expiry := metav1.NewTime(w.now.Add(keep))
		s.SandboxExpiry = &expiry
		w.log.Info("keeping the failed sandbox", "sandbox", s.SandboxNamespace, "until", expiry.Time)
		return true, 0, nil
	}
	if s.SandboxExpiry != nil && w.now.Before(s.SandboxExpiry.Time) {
		return true, 0, nil
	}
	gone, err := r.removeSandbox(ctx, w.run)
	if err != nil || !gone {
		return false, teardownRecheck, err
	}
	s.SandboxRemoved = true
	return true, 0, nil
}

// expireKeptSandbox removes a kept sandbox of a finished run once its
// keepOnFailure has passed.
func (r *Reconciler) expireKeptSandbox(ctx context.Context, run *drillsv1.DrillRun) (ctrl.Result, error) {
	s := &run.Status
	if s.SandboxRemoved || s.SandboxExpiry == nil {
		return ctrl.Result{}, nil
	}
	now := r.Clock.Now()
	if now.Before(s.SandboxExpiry.Time) {
		return ctrl.Result{RequeueAfter: s.SandboxExpiry.Sub(now)}, nil
	}
	gone, err := r.removeSandbox(ctx, run)
	if err != nil || !gone {
		return ctrl.Result{RequeueAfter: teardownRecheck}, err
	}
	s.SandboxRemoved = true
	return ctrl.Result{}, r.Client.Status().Update(ctx, run)
}

// removeSandbox deletes the run's namespace and content copy, through the
// ownership gates, makes sure the restored volume is deleted with its claim,
// and reports whether all three are gone.
func (r *Reconciler) removeSandbox(ctx context.Context, run *drillsv1.DrillRun) (bool, error) {
	volume, gone, err := releaseVolume(ctx, r.APIReader, r.Client, run.Status.SandboxNamespace, run.Status.VolumeName)
	if err != nil {
		return false, err
	}
	run.Status.VolumeName = volume
	if name := run.Status.SandboxNamespace; name != "" {
		ns := &corev1.Namespace{}
		err := r.APIReader.Get(ctx, types.NamespacedName{Name: name}, ns)
		switch {
		case apierrors.IsNotFound(err):
		case err != nil:
			return false, err
		case !restore.IsOwnedSandbox(ns) || ns.Labels[restore.LabelRun] != string(run.UID):
			return false, fmt.Errorf("refusing to delete namespace %s: it does not carry this run's labels", name)
		default:
			gone = false
			if ns.DeletionTimestamp == nil {
				if err := r.Client.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
					return false, fmt.Errorf("while deleting sandbox namespace %s: %w", name, err)
				}
			}
		}
	}
	content := &snapshotv1.VolumeSnapshotContent{}
	err = r.APIReader.Get(ctx, types.NamespacedName{Name: "drill-" + string(run.UID)}, content)
	switch {
	case apierrors.IsNotFound(err):
	case err != nil:
		return false, err
	case !restore.IsOwnedContent(content) || content.Labels[restore.LabelRun] != string(run.UID):
		return false, fmt.Errorf("refusing to delete VolumeSnapshotContent %s: it is not a Retain copy of this run", content.Name)
	default:
		gone = false
		if content.DeletionTimestamp == nil {
			if err := r.Client.Delete(ctx, content, client.Preconditions{UID: &content.UID}); client.IgnoreNotFound(err) != nil {
				return false, fmt.Errorf("while deleting VolumeSnapshotContent copy %s: %w", content.Name, err)
			}
		}
	}
	return gone, nil
}

// releaseVolume makes the restored volume of sandbox namespace ns go away
// with its claim: a volume of a storage class with reclaimPolicy Retain
// would otherwise outlive the sandbox as a Released copy of production
// data. name is the volume if known, else the sandbox claim's volume is
// looked up (a run can end before it saw its claim bound). Only a volume
// bound to the sandbox's claim is touched (restore.IsSandboxVolume). It
// returns the volume's name and whether it is gone.
func releaseVolume(ctx context.Context, reader client.Reader, c client.Client, ns, name string) (string, bool, error) {
	if name == "" && ns != "" {
		claim := &corev1.PersistentVolumeClaim{}
		err := reader.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}, claim)
		if client.IgnoreNotFound(err) != nil {
			return "", false, fmt.Errorf("while reading the sandbox's claim: %w", err)
		}
		name = claim.Spec.VolumeName
	}
	if name == "" {
		return "", true, nil
	}
	pv := &corev1.PersistentVolume{}
	err := reader.Get(ctx, types.NamespacedName{Name: name}, pv)
	switch {
	case apierrors.IsNotFound(err):
		return name, true, nil
	case err != nil:
		return name, false, fmt.Errorf("while reading the restored volume %s: %w", name, err)
	case !restore.IsSandboxVolume(pv, ns):
		return name, true, nil // not the sandbox's (any more): not drillerd's to wait for
	}
	return name, false, restore.ReleaseSandboxVolume(ctx, c, pv)
}

// summarize adds a finished run to its drill's status: run counts and
// phase durations always, lastRun and lastSuccessTime unless a newer run
// finished first. It returns false when the run is recorded already.
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
	status.LastRun = summary
	if s.Result == drillsv1.ResultSucceeded {
		status.LastSuccessTime = s.CompletionTime
	}
	return true
}
