package v1alpha1

import (
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RestoreDrillSpec is the plan of a restore drill.
// +kubebuilder:validation:XValidation:rule="!has(self.timeZone) || has(self.schedule)",message="timeZone needs a schedule"
type RestoreDrillSpec struct {
	// Schedule is when drills run, as a 5-field cron expression ("0 3 * * *")
	// or a descriptor (@daily, @hourly, @every 6h; @every at least 1m).
	// The rules below refuse what the cron parser would: a field out of
	// range, a step of 0, a range that ends before it begins (the third
	// rule is a regular expression of every such range, numbers and names,
	// in any field), @every under a minute. Without a schedule the
	// drill runs only on demand (HTTP API, `drillerd run`, or a DrillRun
	// created by hand).
	// +optional
	// +kubebuilder:validation:MaxLength=100
	// +kubebuilder:validation:XValidation:rule="self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|@every ([0-9]+(\\\\.[0-9]+)?(ns|us|µs|ms|s|m|h))+|(\\\\S+ ){4}\\\\S+)$')",message="schedule must be a 5-field cron expression such as \"0 3 * * *\" or a descriptor such as @daily or \"@every 6h\""
	// +kubebuilder:validation:XValidation:rule="self.startsWith('@') || (size(self.split(' ')) == 5 && self.split(' ')[0].matches('^(?i)([*]|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]*)?(,([*]|[0-5]?[0-9](-[0-5]?[0-9])?)(/[1-9][0-9]*)?)*$') && self.split(' ')[1].matches('^(?i)([*]|(1?[0-9]|2[0-3])(-(1?[0-9]|2[0-3]))?)(/[1-9][0-9]*)?(,([*]|(1?[0-9]|2[0-3])(-(1?[0-9]|2[0-3]))?)(/[1-9][0-9]*)?)*$') && self.split(' ')[2].matches('^(?i)([?]|([*]|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]*)?)(,([?]|([*]|([1-9]|[12][0-9]|3[01])(-([1-9]|[12][0-9]|3[01]))?)(/[1-9][0-9]*)?))*$') && self.split(' ')[3].matches('^(?i)([*]|([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]*)?(,([*]|([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC)(-([1-9]|1[0-2]|JAN|FEB|MAR|APR|MAY|JUN|JUL|AUG|SEP|OCT|NOV|DEC))?)(/[1-9][0-9]*)?)*$') && self.split(' ')[4].matches('^(?i)([?]|([*]|([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]*)?)(,([?]|([*]|([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT)(-([0-6]|SUN|MON|TUE|WED|THU|FRI|SAT))?)(/[1-9][0-9]*)?))*$'))",message="schedule has a field out of range: minute 0-59, hour 0-23, day of month 1-31, month 1-12 or JAN-DEC, day of week 0-6 or SUN-SAT, and steps of at least 1"
	// +kubebuilder:validation:XValidation:rule="!self.matches('(?i)(^|[ ,])(1[0-9]-0?[0-9]|2[0-9]-(0?|[1-1])[0-9]|3[0-9]-(0?|[1-2])[0-9]|4[0-9]-(0?|[1-3])[0-9]|5[0-9]-(0?|[1-4])[0-9]|0?1-0?0|11-10|21-20|31-30|41-40|51-50|0?2-0?[0-1]|12-1[0-1]|22-2[0-1]|32-3[0-1]|42-4[0-1]|52-5[0-1]|0?3-0?[0-2]|13-1[0-2]|23-2[0-2]|33-3[0-2]|43-4[0-2]|53-5[0-2]|0?4-0?[0-3]|14-1[0-3]|24-2[0-3]|34-3[0-3]|44-4[0-3]|54-5[0-3]|0?5-0?[0-4]|15-1[0-4]|25-2[0-4]|35-3[0-4]|45-4[0-4]|55-5[0-4]|0?6-0?[0-5]|16-1[0-5]|26-2[0-5]|36-3[0-5]|46-4[0-5]|56-5[0-5]|0?7-0?[0-6]|17-1[0-6]|27-2[0-6]|37-3[0-6]|47-4[0-6]|57-5[0-6]|0?8-0?[0-7]|18-1[0-7]|28-2[0-7]|38-3[0-7]|48-4[0-7]|58-5[0-7]|0?9-0?[0-8]|19-1[0-8]|29-2[0-8]|39-3[0-8]|49-4[0-8]|59-5[0-8]|(0?2|FEB)-(0?1|JAN)|(0?3|MAR)-(0?1|JAN)|(0?3|MAR)-(0?2|FEB)|(0?4|APR)-(0?1|JAN)|(0?4|APR)-(0?2|FEB)|(0?4|APR)-(0?3|MAR)|(0?5|MAY)-(0?1|JAN)|(0?5|MAY)-(0?2|FEB)|(0?5|MAY)-(0?3|MAR)|(0?5|MAY)-(0?4|APR)|(0?6|JUN)-(0?1|JAN)|(0?6|JUN)-(0?2|FEB)|(0?6|JUN)-(0?3|MAR)|(0?6|JUN)-(0?4|APR)|(0?6|JUN)-(0?5|MAY)|(0?7|JUL)-(0?1|JAN)|(0?7|JUL)-(0?2|FEB)|(0?7|JUL)-(0?3|MAR)|(0?7|JUL)-(0?4|APR)|(0?7|JUL)-(0?5|MAY)|(0?7|JUL)-(0?6|JUN)|(0?8|AUG)-(0?1|JAN)|(0?8|AUG)-(0?2|FEB)|(0?8|AUG)-(0?3|MAR)|(0?8|AUG)-(0?4|APR)|(0?8|AUG)-(0?5|MAY)|(0?8|AUG)-(0?6|JUN)|(0?8|AUG)-(0?7|JUL)|(0?9|SEP)-(0?1|JAN)|(0?9|SEP)-(0?2|FEB)|(0?9|SEP)-(0?3|MAR)|(0?9|SEP)-(0?4|APR)|(0?9|SEP)-(0?5|MAY)|(0?9|SEP)-(0?6|JUN)|(0?9|SEP)-(0?7|JUL)|(0?9|SEP)-(0?8|AUG)|(10|OCT)-(0?1|JAN)|(10|OCT)-(0?2|FEB)|(10|OCT)-(0?3|MAR)|(10|OCT)-(0?4|APR)|(10|OCT)-(0?5|MAY)|(10|OCT)-(0?6|JUN)|(10|OCT)-(0?7|JUL)|(10|OCT)-(0?8|AUG)|(10|OCT)-(0?9|SEP)|(11|NOV)-(0?1|JAN)|(11|NOV)-(0?2|FEB)|(11|NOV)-(0?3|MAR)|(11|NOV)-(0?4|APR)|(11|NOV)-(0?5|MAY)|(11|NOV)-(0?6|JUN)|(11|NOV)-(0?7|JUL)|(11|NOV)-(0?8|AUG)|(11|NOV)-(0?9|SEP)|(11|NOV)-(10|OCT)|(12|DEC)-(0?1|JAN)|(12|DEC)-(0?2|FEB)|(12|DEC)-(0?3|MAR)|(12|DEC)-(0?4|APR)|(12|DEC)-(0?5|MAY)|(12|DEC)-(0?6|JUN)|(12|DEC)-(0?7|JUL)|(12|DEC)-(0?8|AUG)|(12|DEC)-(0?9|SEP)|(12|DEC)-(10|OCT)|(12|DEC)-(11|NOV)|(1|MON)-(0|SUN)|(2|TUE)-(0|SUN)|(2|TUE)-(1|MON)|(3|WED)-(0|SUN)|(3|WED)-(1|MON)|(3|WED)-(2|TUE)|(4|THU)-(0|SUN)|(4|THU)-(1|MON)|(4|THU)-(2|TUE)|(4|THU)-(3|WED)|(5|FRI)-(0|SUN)|(5|FRI)-(1|MON)|(5|FRI)-(2|TUE)|(5|FRI)-(3|WED)|(5|FRI)-(4|THU)|(6|SAT)-(0|SUN)|(6|SAT)-(1|MON)|(6|SAT)-(2|TUE)|(6|SAT)-(3|WED)|(6|SAT)-(4|THU)|(6|SAT)-(5|FRI))($|[ ,/])')",message="schedule has a range that ends before it begins, such as 5-3 or FRI-MON; write the earlier value first"
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('@every ') || duration(self.substring(7)) >= duration('1m')",message="schedule @every needs a duration of at least 1m"
	Schedule string `json:"schedule,omitempty"`

	// TimeZone is the IANA time zone of Schedule (e.g. Europe/Berlin,
	// Japan, UTC); default UTC. The API server refuses a name its time zone
	// database does not know.
	// +optional
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:XValidation:rule="self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$') && self != 'Local' && timestamp('2000-01-01T00:00:00Z').getFullYear(self) > 0",message="timeZone must be an IANA time zone name such as Europe/Berlin, Japan or UTC"
	TimeZone *string `json:"timeZone,omitempty"`

	// Suspend stops scheduled runs; on-demand runs still work.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Source names the database volume whose snapshots are drilled.
	Source SourceSpec `json:"source"`

	// Sandbox configures the throwaway namespace the restore runs in.
	// +optional
	Sandbox SandboxSpec `json:"sandbox,omitempty"`

	// Database describes how to start the database on the restored volume.
	Database DatabaseSpec `json:"database"`

	// Checks run, in order, against the restored database. Every check must
	// pass for the drill to succeed.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=50
	// +kubebuilder:validation:XValidation:rule="self.all(c, self.exists_one(d, (has(d.name) ? d.name : d.builtin) == (has(c.name) ? c.name : c.builtin)))",message="check names must be unique (a builtin check without a name is named after its builtin)"
	Checks []Check `json:"checks,omitempty"`

	// Freshness measures the data RPO: a query returning the newest write in
	// the restored data. Without it the RPO is the snapshot's age.
	// +optional
	Freshness *FreshnessSpec `json:"freshness,omitempty"`

	// DataLoss says what the built-in checks may find missing: each run
	// compares the rows it read with the last Succeeded run's (status.baseline).
	// +optional
	DataLoss DataLossSpec `json:"dataLoss,omitempty"`

	// Targets are the recovery objectives a drill is held to.
	// +optional
	Targets Targets `json:"targets,omitempty"`

	// Timeouts bound the drill and its steps.
	// +optional
	Timeouts Timeouts `json:"timeouts,omitempty"`

	// HistoryLimit is how many finished DrillRuns are kept; default 10.
	// +optional
	// +kubebuilder:default=10
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=1000
	HistoryLimit *int32 `json:"historyLimit,omitempty"`
}

// SourceSpec selects the snapshots to drill.
type SourceSpec struct {
	// PersistentVolumeClaimName is the database's claim, in the drill's
	// namespace; its VolumeSnapshots (spec.source.persistentVolumeClaimName)
	// are the candidates. The claim itself is never touched.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	PersistentVolumeClaimName string `json:"persistentVolumeClaimName"`

	// SnapshotSelector further restricts candidates by label.
	// +optional
	SnapshotSelector *metav1.LabelSelector `json:"snapshotSelector,omitempty"`

	// MaxSnapshotAge fails the drill (on RPO) when the newest ready snapshot
	// is older than this.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="maxSnapshotAge must be a positive duration such as 48h"
	MaxSnapshotAge *metav1.Duration `json:"maxSnapshotAge,omitempty"`
}

// SandboxSpec configures the throwaway restore environment.
type SandboxSpec struct {
	// StorageClassName to restore onto; default: the source claim's class.
	// +optional
	StorageClassName *string `json:"storageClassName,omitempty"`

	// KeepOnFailure keeps the sandbox of a run that did not succeed (Failed
	// or Error) this long for debugging, then removes it. Default: removed
	// at once.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('0s')",message="keepOnFailure must not be negative"
	KeepOnFailure *metav1.Duration `json:"keepOnFailure,omitempty"`

	// Resources of the database container.
	// +optional
	Resources corev1.ResourceRequirements `json:"resources,omitempty"`
}

// DatabaseEngine names a database engine.
// +kubebuilder:validation:Enum=postgres
type DatabaseEngine string

// EnginePostgres is PostgreSQL.
const EnginePostgres DatabaseEngine = "postgres"

// DatabaseSpec describes the database to start on the restored volume.
type DatabaseSpec struct {
	// Engine of the database; only postgres today.
	// +optional
	// +kubebuilder:default=postgres
	Engine DatabaseEngine `json:"engine,omitempty"`

	// Image of the database server, the same major version as production
	// (e.g. postgres:16).
	// +kubebuilder:validation:MinLength=1
	Image string `json:"image"`

	// DataSubPath is where PGDATA lives inside the volume (e.g. pgdata);
	// empty means the volume root.
	// +optional
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:XValidation:rule="!self.startsWith('/') && !self.matches('(^|/)[.][.](/|$)')",message="dataSubPath must be a relative path inside the volume (no leading / and no ..)"
	DataSubPath string `json:"dataSubPath,omitempty"`

	// DatabaseName the checks connect to; default postgres.
	// +optional
	// +kubebuilder:default=postgres
	DatabaseName string `json:"databaseName,omitempty"`

	// Port the server listens on; default 5432.
	// +optional
	// +kubebuilder:default=5432
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=65535
	Port int32 `json:"port,omitempty"`

	// Args are extra server arguments, e.g. ["-c", "shared_buffers=256MB"].
	// +optional
	Args []string `json:"args,omitempty"`

	// Auth is how drillerd logs in to the restored database.
	// +optional
	Auth AuthSpec `json:"auth,omitempty"`
}

// AuthMode is how drillerd authenticates to the restored database.
// +kubebuilder:validation:Enum=Trust;Secret
type AuthMode string

const (
	// AuthTrust logs in as auth.user with a client certificate made for
	// the run, the only credential the sandbox admits over the network: no
	// production password is needed.
	AuthTrust AuthMode = "Trust"
	// AuthSecret logs in over TLS with a user and password from a Secret in
	// the drill's namespace.
	AuthSecret AuthMode = "Secret"
)

// AuthSpec selects the authentication mode.
// +kubebuilder:validation:XValidation:rule="self.mode != 'Secret' || has(self.secretRef)",message="auth.secretRef is required when mode is Secret"
type AuthSpec struct {
	// Mode is Trust (default): drillerd logs in as user with a client
	// certificate made for the run, which is all the sandbox admits over
	// the network; or Secret: with the user name and password of
	// secretRef, over TLS.
	// +optional
	// +kubebuilder:default=Trust
	Mode AuthMode `json:"mode,omitempty"`

	// User drillerd connects as in mode Trust; it must exist in the
	// restored database. Default postgres.
	// +optional
	// +kubebuilder:default=postgres
	// +kubebuilder:validation:MaxLength=63
	User string `json:"user,omitempty"`

	// SecretRef names the credentials for mode Secret.
	// +optional
	SecretRef *SecretCredentials `json:"secretRef,omitempty"`
}

// SecretCredentials point at a user name and password in a Secret.
type SecretCredentials struct {
	// Name of the Secret, in the drill's namespace.
	// +kubebuilder:validation:MinLength=1
	Name string `json:"name"`
	// UsernameKey is the key of the user name; default username.
	// +optional
	// +kubebuilder:default=username
	UsernameKey string `json:"usernameKey,omitempty"`
	// PasswordKey is the key of the password; default password.
	// +optional
	// +kubebuilder:default=password
	PasswordKey string `json:"passwordKey,omitempty"`
}

// Targets are recovery objectives.
type Targets struct {
	// RTO: the restore must produce a database that passed every check
	// within this time.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="targets.rto must be a positive duration such as 15m"
	RTO *metav1.Duration `json:"rto,omitempty"`
	// RPO: the newest recoverable write must be at most this old when the
	// drill starts.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="targets.rpo must be a positive duration such as 26h"
	RPO *metav1.Duration `json:"rpo,omitempty"`
	// SuccessWindow is the longest the drill may go without a successful
	// run before the DrillNotSucceededRecently alert fires (metric
	// drillerd_drill_success_window_seconds). Default for a scheduled,
	// unsuspended drill: twice the longest gap between its next eight ticks
	// plus timeouts.total, so one missed or failed night is tolerated and
	// the second pages; an on-demand or suspended drill has no window
	// unless one is set here.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="targets.successWindow must be a positive duration such as 49h"
	SuccessWindow *metav1.Duration `json:"successWindow,omitempty"`

	// RTO trend (trend_types.go).

	// RTOTrendHorizon is how far ahead the RTO is forecast from the trend
	// of recent runs (status.rtoForecast): the RTOTargetAtRisk alert fires
	// when the trend says the RTO will miss targets.rto within it. Default
	// 30 days (720h); at most a year.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s') && duration(self) <= duration('8760h')",message="targets.rtoTrendHorizon must be a positive duration of at most a year (8760h), such as 720h"
	RTOTrendHorizon *metav1.Duration `json:"rtoTrendHorizon,omitempty"`
}

// Timeouts bound a drill. A timeout ends the drill with a result naming the
// stuck object.
type Timeouts struct {
	// Total bounds the whole drill; default 1h.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeouts.total must be a positive duration"
	Total *metav1.Duration `json:"total,omitempty"`
	// Volume bounds restoring the volume (snapshot copy ready, claim bound); default 20m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeouts.volume must be a positive duration"
	Volume *metav1.Duration `json:"volume,omitempty"`
	// Database bounds starting the database until it accepts connections; default 10m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeouts.database must be a positive duration"
	Database *metav1.Duration `json:"database,omitempty"`
	// Checks bounds running every check; default 10m.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeouts.checks must be a positive duration"
	Checks *metav1.Duration `json:"checks,omitempty"`
	// Teardown bounds removing the sandbox once the run has its verdict
	// (after keepOnFailure, for a kept one); default 10m. Past it the run is
	// Done with its verdict, a SandboxLeaked condition and event name what
	// remains, and the sweep goes on removing it. It is not part of Total.
	// +optional
	// +kubebuilder:validation:XValidation:rule="duration(self) > duration('0s')",message="timeouts.teardown must be a positive duration"
	Teardown *metav1.Duration `json:"teardown,omitempty"`
}

// RestoreDrillStatus is what drillerd observed of a drill.
type RestoreDrillStatus struct {
	// LastRun summarises the newest finished run.
	// +optional
	LastRun *RunSummary `json:"lastRun,omitempty"`
	// LastSuccessTime is when a run last succeeded.
	// +optional
	LastSuccessTime *metav1.Time `json:"lastSuccessTime,omitempty"`
	// LastScheduleTime is the newest schedule tick handled (run created or
	// skipped).
	// +optional
	LastScheduleTime *metav1.Time `json:"lastScheduleTime,omitempty"`
	// NextScheduleTime is when the schedule next starts a run.
	// +optional
	NextScheduleTime *metav1.Time `json:"nextScheduleTime,omitempty"`
	// RunCounts counts finished runs by result, for the lifetime of the
	// drill (history pruning does not lower it).
	// +optional
	RunCounts map[RunResult]int64 `json:"runCounts,omitempty"`
	// PhaseDurations accumulate how long the phases of every finished run
	// took, as histogram buckets (drillerd_drill_phase_duration_seconds),
	// for the lifetime of the drill.
	// +optional
	PhaseDurations map[Phase]PhaseHistogram `json:"phaseDurations,omitempty"`
	// SkippedTicks counts schedule ticks that started no run, by reason
	// (AlreadyRunning, MissedDeadline).
	// +optional
	SkippedTicks map[string]int64 `json:"skippedTicks,omitempty"`
	// SkippedSnapshots counts snapshots newer than the one a run restored
	// that were passed over, by reason (NotReady, Failed), over the drill's
	// lifetime (drillerd_drill_snapshots_skipped_total).
	// +optional
	SkippedSnapshots map[string]int64 `json:"skippedSnapshots,omitempty"`
	// Baseline is what the last Succeeded run found; the next run is
	// compared with it.
	// +optional
	Baseline *Baseline `json:"baseline,omitempty"`
	// ObservedGeneration is the spec generation the status reflects.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`
	// Conditions: Ready (the schedule is usable: Scheduled, OnDemand,
	// Suspended or InvalidSchedule).
	// +optional
	// +listType=map
	// +listMapKey=type
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// RTO trend (trend_types.go).

	// RecentRuns are the newest finished runs in brief, oldest first, at
	// most RecentRunsKept (30): the status page's charts and the RTO
	// forecast. History pruning does not remove them.
	// +optional
	// +listType=atomic
	// +kubebuilder:validation:MaxItems=30
	RecentRuns []RunPoint `json:"recentRuns,omitempty"`
	// RTOForecast is where the RTO of RecentRuns is heading; unset with
	// fewer than 3 runs with an RTO, or when they span less than a tenth of
	// targets.rtoTrendHorizon.
	// +optional
	RTOForecast *RTOForecast `json:"rtoForecast,omitempty"`
}

// Baseline is what a Succeeded run found in its copy.
type Baseline struct {
	// RunName is the run that found it.
	RunName string `json:"runName"`
	// ClaimName is the source claim it restored: a different claim is a
	// different database, so identity is not compared across claims.
	ClaimName string `json:"claimName"`
	// SystemIdentifier of the restored cluster.
	// +optional
	SystemIdentifier string `json:"systemIdentifier,omitempty"`
	// Tables are the rows read per table (the largest tables, bounded).
	// +optional
	// +listType=atomic
	Tables []TableRows `json:"tables,omitempty"`
}

// PhaseHistogram counts phase durations: Buckets[i] is how many took at
// most PhaseBuckets[i] seconds (cumulative, as in Prometheus).
type PhaseHistogram struct {
	// Count of timings.
	Count int64 `json:"count"`
	// Sum of the timings in seconds.
	Sum float64 `json:"sum"`
	// Buckets are cumulative counts per PhaseBuckets upper bound.
	// +listType=atomic
	Buckets []int64 `json:"buckets"`
}

// PhaseBuckets are the upper bounds, in seconds, of phase histograms.
var PhaseBuckets = []float64{0.1, 0.5, 1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600}

// Observe adds a timing of seconds.
func (h *PhaseHistogram) Observe(seconds float64) {
	if len(h.Buckets) != len(PhaseBuckets) {
		h.Buckets = make([]int64, len(PhaseBuckets))
	}
	h.Count++
	h.Sum += seconds
	for i, le := range PhaseBuckets {
		if seconds <= le {
			h.Buckets[i]++
		}
	}
}

// RunSummary is a finished run in brief.
type RunSummary struct {
	// Name of the DrillRun.
	Name string `json:"name"`
	// Result of the run.
	Result RunResult `json:"result"`
	// Reason of a result other than Succeeded.
	// +optional
	Reason string `json:"reason,omitempty"`
	// RTOSeconds measured by the run.
	// +optional
	RTOSeconds *float64 `json:"rtoSeconds,omitempty"`
	// RPOSeconds measured by the run.
	// +optional
	RPOSeconds *float64 `json:"rpoSeconds,omitempty"`
	// CompletionTime of the run.
	// +optional
	CompletionTime *metav1.Time `json:"completionTime,omitempty"`

	// RTO trend (trend_types.go).

	// RTOSecondsPerGiB is the RTO per GiB of restored data
	// (size.databaseBytes).
	// +optional
	RTOSecondsPerGiB *float64 `json:"rtoSecondsPerGiB,omitempty"`
}

// RestoreDrill is the plan for proving, on a schedule or on demand, that a
// database can be restored from its newest VolumeSnapshot within its RTO
// and RPO targets.
//
// +kubebuilder:object:root=true
// +kubebuilder:subresource:status
// +kubebuilder:resource:shortName=rd,categories=drillerd
// +kubebuilder:validation:XValidation:rule="size(self.metadata.name) <= 52",message="a RestoreDrill's name must be at most 52 characters: its scheduled runs are named <drill>-<unix time> and label their sandboxes"
// +kubebuilder:printcolumn:name="Schedule",type=string,JSONPath=`.spec.schedule`
// +kubebuilder:printcolumn:name="Last Result",type=string,JSONPath=`.status.lastRun.result`
// +kubebuilder:printcolumn:name="RTO(s)",type=number,JSONPath=`.status.lastRun.rtoSeconds`
// +kubebuilder:printcolumn:name="RPO(s)",type=number,JSONPath=`.status.lastRun.rpoSeconds`
// +kubebuilder:printcolumn:name="Last Success",type=date,JSONPath=`.status.lastSuccessTime`
// +kubebuilder:printcolumn:name="Next Run",type=string,JSONPath=`.status.nextScheduleTime`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type RestoreDrill struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec   RestoreDrillSpec   `json:"spec"`
	Status RestoreDrillStatus `json:"status,omitempty"`
}

// RestoreDrillList is a list of RestoreDrills.
// +kubebuilder:object:root=true
type RestoreDrillList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []RestoreDrill `json:"items"`
}
