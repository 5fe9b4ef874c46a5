package builder

import (
	"maps"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// RunBuilder builds a DrillRun.
type RunBuilder struct {
	r *drillsv1.DrillRun
}

// ForRun starts a DrillRun named name in namespace, with UID "uid-"+name
// (sandbox labels carry a run's UID), an empty spec and no status.
func ForRun(namespace, name string) *RunBuilder {
	return &RunBuilder{r: &drillsv1.DrillRun{
		TypeMeta:   metav1.TypeMeta{APIVersion: drillsv1.GroupVersion.String(), Kind: "DrillRun"},
		ObjectMeta: metav1.ObjectMeta{Namespace: namespace, Name: name, UID: types.UID("uid-" + name)},
	}}
}

// Obj returns the built DrillRun.
func (b *RunBuilder) Obj() *drillsv1.DrillRun { return b.r }

// UID sets metadata.uid.
func (b *RunBuilder) UID(uid types.UID) *RunBuilder {
	b.r.UID = uid
	return b
}

// Created sets metadata.creationTimestamp.
func (b *RunBuilder) Created(t time.Time) *RunBuilder {
	b.r.CreationTimestamp = metav1.NewTime(t)
	return b
}

// Labels adds labels to metadata.labels.
func (b *RunBuilder) Labels(labels map[string]string) *RunBuilder {
	if b.r.Labels == nil {
		b.r.Labels = make(map[string]string, len(labels))
	}
	maps.Copy(b.r.Labels, labels)
	return b
}

// OwnedBy adds drill as the run's controller owner reference, as the
// schedule sets it on the runs it creates.
func (b *RunBuilder) OwnedBy(drill *drillsv1.RestoreDrill) *RunBuilder {
	ref := metav1.NewControllerRef(drill, drillsv1.GroupVersion.WithKind("RestoreDrill"))
	b.r.OwnerReferences = append(b.r.OwnerReferences, *ref)
	return b
}

// Of sets spec.drillName, the RestoreDrill the run runs.
func (b *RunBuilder) Of(drillName string) *RunBuilder {
	b.r.Spec.DrillName = drillName
	return b
}

// Trigger sets spec.trigger, what started the run.
func (b *RunBuilder) Trigger(t drillsv1.Trigger) *RunBuilder {
	b.r.Spec.Trigger = t
	return b
}

// Pinned sets spec.snapshotName, the VolumeSnapshot to restore instead of
// the newest ready one.
func (b *RunBuilder) Pinned(snapshotName string) *RunBuilder {
	b.r.Spec.SnapshotName = snapshotName
	return b
}

// ScheduledAt sets spec.scheduledTime, the schedule tick of the run.
func (b *RunBuilder) ScheduledAt(t time.Time) *RunBuilder {
	b.r.Spec.ScheduledTime = &metav1.Time{Time: t}
	return b
}

// In sets status.phase.
func (b *RunBuilder) In(p drillsv1.Phase) *RunBuilder {
	b.r.Status.Phase = p
	return b
}

// Result sets status.result, the verdict.
func (b *RunBuilder) Result(r drillsv1.RunResult) *RunBuilder {
	b.r.Status.Result = r
	return b
}

// Reason sets status.reason, the CamelCase cause of a non-success.
func (b *RunBuilder) Reason(reason string) *RunBuilder {
	b.r.Status.Reason = reason
	return b
}

// Message sets status.message, the result in words.
func (b *RunBuilder) Message(m string) *RunBuilder {
	b.r.Status.Message = m
	return b
}

// StartedAt sets status.startTime.
func (b *RunBuilder) StartedAt(t time.Time) *RunBuilder {
	b.r.Status.StartTime = &metav1.Time{Time: t}
	return b
}

// Deadline sets status.deadline, when the run times out as a whole.
func (b *RunBuilder) Deadline(t time.Time) *RunBuilder {
	b.r.Status.Deadline = &metav1.Time{Time: t}
	return b
}

// CompletedAt sets status.completionTime.
func (b *RunBuilder) CompletedAt(t time.Time) *RunBuilder {
	b.r.Status.CompletionTime = &metav1.Time{Time: t}
	return b
}

// Sandbox sets status.sandboxNamespace.
func (b *RunBuilder) Sandbox(namespace string) *RunBuilder {
	b.r.Status.SandboxNamespace = namespace
	return b
}

// SandboxRemoved sets status.sandboxRemoved: the sandbox is gone.
func (b *RunBuilder) SandboxRemoved() *RunBuilder {
	b.r.Status.SandboxRemoved = true
	return b
}

// KeptUntil sets status.sandboxExpiry, when a sandbox kept for debugging is
// removed.
func (b *RunBuilder) KeptUntil(t time.Time) *RunBuilder {
	b.r.Status.SandboxExpiry = &metav1.Time{Time: t}
	return b
}

// PhaseTiming appends a phase to status.phases: it started at start and, when
// end is not zero, ended at end after end-start seconds; a zero end leaves
// the phase running.
func (b *RunBuilder) PhaseTiming(name drillsv1.Phase, start, end time.Time) *RunBuilder {
	timing := drillsv1.PhaseTiming{Name: name, StartTime: metav1.NewMicroTime(start)}
	if !end.IsZero() {
		e := metav1.NewMicroTime(end)
		seconds := end.Sub(start).Seconds()
		timing.EndTime, timing.Seconds = &e, &seconds
	}
	b.r.Status.Phases = append(b.r.Status.Phases, timing)
	return b
}

// Snapshot sets status.snapshot, the VolumeSnapshot the run restored.
func (b *RunBuilder) Snapshot(ref drillsv1.SnapshotRef) *RunBuilder {
	b.r.Status.Snapshot = &ref
	return b
}

// RTO sets status.rto: seconds measured, the target in seconds (nil without
// a target) and whether it was met.
func (b *RunBuilder) RTO(seconds float64, target *float64, met bool) *RunBuilder {
	b.r.Status.RTO = &drillsv1.RTOMeasurement{Seconds: seconds, TargetSeconds: target, Met: met}
	return b
}

// RPO sets status.rpo: seconds measured on basis, the target in seconds (nil
// without a target) and whether it was met.
func (b *RunBuilder) RPO(seconds float64, target *float64, met bool, basis drillsv1.RPOBasis) *RunBuilder {
	b.r.Status.RPO = &drillsv1.RPOMeasurement{Seconds: seconds, TargetSeconds: target, Met: met, Basis: basis}
	return b
}

// Recorded sets status.recorded: the finished run is counted in its
// drill's status.
func (b *RunBuilder) Recorded() *RunBuilder {
	b.r.Status.Recorded = true
	return b
}

// Status calls set on the run's status, for what the other methods do not
// cover (checks, lastError, volumeName, ...).
func (b *RunBuilder) Status(set func(*drillsv1.DrillRunStatus)) *RunBuilder {
	set(&b.r.Status)
	return b
}

// Size sets status.size: what the run restored and its checks read.
func (b *RunBuilder) Size(capacityBytes, databaseBytes, readBytes int64) *RunBuilder {
	b.r.Status.Size = &drillsv1.RestoredSize{CapacityBytes: &capacityBytes, DatabaseBytes: &databaseBytes, ReadBytes: &readBytes}
	return b
}
