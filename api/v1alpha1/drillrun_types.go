package v1alpha1

import (
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// LabelDrill on a DrillRun names its RestoreDrill.
const LabelDrill = "drills.drillerd.dev/drill"

// Trigger says what started a run.
// +kubebuilder:validation:Enum=Schedule;HTTP;CLI;Manual
type Trigger string

// Triggers.
const (
	TriggerSchedule Trigger = "Schedule"
	TriggerHTTP     Trigger = "HTTP"
	TriggerCLI      Trigger = "CLI"
	TriggerManual   Trigger = "Manual"
)

// DrillRunSpec is one request to run a drill. It cannot change once created.
type DrillRunSpec struct {
	// DrillName is the RestoreDrill, in this namespace, to run.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	DrillName string `json:"drillName"`

	// Trigger records what started the run.
	// +optional
	// +kubebuilder:default=Manual
	Trigger Trigger `json:"trigger,omitempty"`

	// SnapshotName pins a VolumeSnapshot (of the drill's source claim)
	// instead of the newest ready one.
	// +optional
	SnapshotName string `json:"snapshotName,omitempty"`

	// ScheduledTime is the schedule tick a scheduled run belongs to.
	// +optional
	ScheduledTime *metav1.Time `json:"scheduledTime,omitempty"`
}

// Phase is the step a run is in.
// +kubebuilder:validation:Enum=Pending;SelectingSnapshot;Provisioning;RestoringVolume;StartingDatabase;Validating;TearingDown;Done
type Phase string

// Phases, in order.
const (
	PhasePending           Phase = "Pending"
	PhaseSelectingSnapshot Phase = "SelectingSnapshot"
	PhaseProvisioning      Phase = "Provisioning"
	PhaseRestoringVolume   Phase = "RestoringVolume"
	PhaseStartingDatabase  Phase = "StartingDatabase"
	PhaseValidating        Phase = "Validating"
	PhaseTearingDown       Phase = "TearingDown"
	PhaseDone              Phase = "Done"
)

// RunResult is the verdict of a run.
// +kubebuilder:validation:Enum=Succeeded;Failed;Error
type RunResult string

const (
	// ResultSucceeded: every check passed and both targets were met.
	ResultSucceeded RunResult = "Succeeded"
	// ResultFailed: the backup could not be restored, a check failed, or a
	// target was missed. A real finding about the backup.
	ResultFailed RunResult = "Failed"
	// ResultError: the drill could not run (API errors, quota, timeouts of
	// the platform). Nothing was learnt about the backup.
	ResultError RunResult = "Error"
)

// RPOBasis says what the RPO was measured from.
// +kubebuilder:validation:Enum=Data;Snapshot
type RPOBasis string

const (
	// RPOBasisData: the newest write in the restored data (freshness query).
	RPOBasisData RPOBasis = "Data"
	// RPOBasisSnapshot: the snapshot's creation time.
	RPOBasisSnapshot RPOBasis = "Snapshot"
)

// DrillRunStatus is the record of a run.
type DrillRunStatus struct {
	// Phase is the current step; Done when finished.
	// +optional
	Phase Phase `json:"phase,omitempty"`
	// Result is set when the run is Done.
	// +optional
	Result RunResult `json:"result,omitempty"`
	// Reason is a CamelCase word for a non-success (e.g. CheckFailed,
	// NoReadySnapshot, RTOTargetMissed, APIError).
	// +optional
	Reason string `json:"reason,omitempty"`
	// Message explains the result for people.
	// +optional
	Message string `json:"message,omitempty"`
	// Snapshot is the VolumeSnapshot the run restored.
	// +optional
	Snapshot *SnapshotRef `json:"snapshot,omitempty"`
	// SandboxNamespace is the throwaway namespace of the restore.
	// +optional
	SandboxNamespace string `json:"sandboxNamespace,omitempty"`
	// VolumeName is the PersistentVolume the snapshot was restored to;
	// teardown waits until it is gone.
	// +optional
	VolumeName string `json:"volumeName,omitempty"`
	// LastError is the newest error that held the run up and was retried;
	// a timeout's message includes it.
	// +optional
	LastError string `json:"lastError,omitempty"`
	// Phases is the timeline: when each step started and ended.
	// +optional
	Phases []PhaseTiming `json:"phases,omitempty"`
	// Checks are the results of the drill's checks; a built-in reports once
	// per database.
	// +optional
	Checks []CheckResult `json:"checks,omitempty"`
	// Database is what the restored copy says about itself.
	// +optional
	Database *RestoredDatabase `json:"database,omitempty"`
	// Tables are the rows read per table by TablesReadable (the largest
	// tables, bounded): the drill's next baseline if the run succeeds.
	// +optional
	// +listType=atomic
	Tables []TableRows `json:"tables,omitempty"`
	// SkippedSnapshots are snapshots of the claim newer than the one
	// restored that were passed over because they were not ready or had
	// failed.
	// +optional
	// +listType=atomic
	SkippedSnapshots []SkippedSnapshot `json:"skippedSnapshots,omitempty"`
	// Conditions qualify the verdict: RPODataTrusted is False when the
	// freshness query's answer was not used (newer than the snapshot's cut);
	// SandboxLeaked is True when teardown did not remove the sandbox within
	// timeouts.teardown (its message names what remains) and False once the
	// rest is gone.
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`
	// RTO measured: from the start of provisioning until every check passed.
	// +optional
	RTO *RTOMeasurement `json:"rto,omitempty"`
	// RPO measured: drill start minus the newest recoverable write.
	// +optional
	RPO *RPOMeasurement `json:"rpo,omitempty"`
	// StartTime is when drillerd started the run.
	// +optional
	StartTime *metav1.Time `json:"startTime,omitempty"`
	// CompletionTime is when the run was Done.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`
	// Deadline is when the run times out as a whole (timeouts.total).
	// +optional
	Deadline *metav1.Time `json:"deadline,omitempty"`
	// SandboxExpiry is when a kept sandbox (keepOnFailure) is removed.
	// +optional
	SandboxExpiry *metav1.Time `json:"sandboxExpiry,omitempty"`
	// SandboxRemoved says the sandbox is gone.
	// +optional
	SandboxRemoved bool `json:"sandboxRemoved,omitempty"`
	// Recorded says the finished run is counted in its RestoreDrill's
	// status (runCounts, lastRun, phase durations).
	// +optional
	Recorded bool `json:"recorded,omitempty"`

	// RTO trend (trend_types.go).

	// Size is how much the run restored and how much its checks read.
	// +optional
	Size *RestoredSize `json:"size,omitempty"`
}

// SnapshotRef identifies the restored snapshot.
type SnapshotRef struct {
	// Name of the VolumeSnapshot.
	Name string `json:"name"`
	// ClaimName is the PersistentVolumeClaim the snapshot was taken of.
	// +optional
	ClaimName string `json:"claimName,omitempty"`
	// ContentName of its VolumeSnapshotContent.
	// +optional
	ContentName string `json:"contentName,omitempty"`
	// SnapshotHandle is the storage system's snapshot id.
	// +optional
	SnapshotHandle string `json:"snapshotHandle,omitempty"`
	// CreationTime is when the snapshot was cut.
	// +optional
	CreationTime *metav1.Time `json:"creationTime,omitempty"`
	// RestoreSize is the minimum size of a volume restored from it.
	// +optional
	RestoreSize *resource.Quantity `json:"restoreSize,omitempty"`
}

// PhaseTiming is one step of the timeline.
type PhaseTiming struct {
	// Name of the phase.
	Name Phase `json:"name"`
	// StartTime of the phase (microsecond precision).
	StartTime metav1.MicroTime `json:"startTime"`
	// EndTime of the phase; unset while it runs.
	// +optional
	EndTime *metav1.MicroTime `json:"endTime,omitempty"`
	// Seconds the phase took.
	// +optional
	Seconds *float64 `json:"seconds,omitempty"`
}

// CheckResult is the outcome of one check.
type CheckResult struct {
	// Name of the check.
	Name string `json:"name"`
	// Database the check ran in.
	// +optional
	Database string `json:"database,omitempty"`
	// Passed says whether the expectation held.
	Passed bool `json:"passed"`
	// Value observed (for built-ins, a summary such as "12 tables, 10342 rows").
	// +optional
	Value string `json:"value,omitempty"`
	// Expected, in words (">= 1000").
	// +optional
	Expected string `json:"expected,omitempty"`
	// Seconds the check took.
	// +optional
	Seconds float64 `json:"seconds,omitempty"`
	// Message says why it failed.
	// +optional
	Message string `json:"message,omitempty"`
	// Reason is the kind of finding of a failed built-in: DataMissing (the
	// copy has less than its own catalog says) or DataDamaged (PostgreSQL or
	// amcheck found corruption).
	// +optional
	Reason string `json:"reason,omitempty"`
}

// RestoredDatabase is what a restored copy says about itself.
type RestoredDatabase struct {
	// SystemIdentifier of the cluster (pg_control_system()): the same for a
	// database and all its backups, new for every initdb.
	// +optional
	SystemIdentifier string `json:"systemIdentifier,omitempty"`
	// InitTime is when the cluster was initialised (initdb).
	// +optional
	InitTime *metav1.Time `json:"initTime,omitempty"`
	// ServerVersion of the PostgreSQL that ran the copy.
	// +optional
	ServerVersion string `json:"serverVersion,omitempty"`
	// DataChecksums says whether the copy has data checksums, so that
	// damaged pages are detected when read.
	// +optional
	DataChecksums bool `json:"dataChecksums,omitempty"`
	// ReadsAnsweredTime is when the last read check answered.
	// +optional
	ReadsAnsweredTime *metav1.MicroTime `json:"readsAnsweredTime,omitempty"`
	// WriteAcceptedTime is when the write probe's rows were committed and
	// read back; the RTO ends at the later of the two.
	// +optional
	WriteAcceptedTime *metav1.MicroTime `json:"writeAcceptedTime,omitempty"`
}

// TableRows is how many rows a run read of one table.
type TableRows struct {
	// Database the table is in.
	Database string `json:"database"`
	// Table, schema-qualified.
	Table string `json:"table"`
	// Rows read.
	Rows int64 `json:"rows"`
}

// SkippedSnapshot is a snapshot a run passed over.
type SkippedSnapshot struct {
	// Name of the VolumeSnapshot.
	Name string `json:"name"`
	// Reason: NotReady or Failed.
	Reason string `json:"reason"`
	// Message: the snapshot controller's error, if any.
	// +optional
	Message string `json:"message,omitempty"`
}

// Skipped snapshot reasons.
const (
	SnapshotNotReady = "NotReady"
	SnapshotFailed   = "Failed"
)

// RTOMeasurement is the measured recovery time against its target.
type RTOMeasurement struct {
	// Seconds from the start of provisioning until every check passed.
	Seconds float64 `json:"seconds"`
	// TargetSeconds is spec.targets.rto; unset without a target.
	// +optional
	TargetSeconds *float64 `json:"targetSeconds,omitempty"`
	// Met is false when the target was missed.
	Met bool `json:"met"`
}

// RPOMeasurement is the measured data loss window against its target.
type RPOMeasurement struct {
	// Seconds between the drill's start and the newest recoverable write.
	Seconds float64 `json:"seconds"`
	// TargetSeconds is spec.targets.rpo; unset without a target.
	// +optional
	TargetSeconds *float64 `json:"targetSeconds,omitempty"`
	// Met is false when the target was missed.
	Met bool `json:"met"`
	// Basis of Seconds: Data (freshness query) or Snapshot (creation time).
	Basis RPOBasis `json:"basis"`
	// DataSeconds from the freshness query, when it ran.
	// +optional
	DataSeconds *float64 `json:"dataSeconds,omitempty"`
	// SnapshotSeconds from the snapshot's creation time.
	// +optional
	SnapshotSeconds *float64 `json:"snapshotSeconds,omitempty"`
}

// DrillRun is one execution of a RestoreDrill: snapshot selection, restore
// into a sandbox, validation, measurement, verdict and teardown.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=dr,categories=drillerd
// +kubebuilder:selectablefield:JSONPath=`.spec.drillName`
// +kubebuilder:selectablefield:JSONPath=`.status.phase`
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 63",message="a DrillRun's name must be at most 63 characters: it labels the run's sandbox"
// +kubebuilder:validation:XValidation:rule="self.spec == oldSelf.spec",message="spec is immutable: create a new DrillRun instead"
// +kubebuilder:printcolumn:name="Drill",type=string,JSONPath=`.spec.drillName`
// +kubebuilder:printcolumn:name="Phase",type=string,JSONPath=`.status.phase`
// +kubebuilder:printcolumn:name="Result",type=string,JSONPath=`.status.result`
// +kubebuilder:printcolumn:name="Reason",type=string,JSONPath=`.status.reason`,priority=1
// +kubebuilder:printcolumn:name="RTO(s)",type=number,JSONPath=`.status.rto.seconds`
// +kubebuilder:printcolumn:name="RPO(s)",type=number,JSONPath=`.status.rpo.seconds`
// +kubebuilder:printcolumn:name="Snapshot",type=string,JSONPath=`.status.snapshot.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type DrillRun struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   DrillRunSpec   `json:"spec"`
	Status DrillRunStatus `json:"status,omitempty"`
}

// DrillRunList is a list of DrillRuns.
// +kubebuilder:object:root=true
type DrillRunList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []DrillRun `json:"items"`
}
