package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Defaults of spec.timeouts.
const (
	DefaultTotalTimeout    = time.Hour
	DefaultVolumeTimeout   = 20 * time.Minute
	DefaultDatabaseTimeout = 10 * time.Minute
	DefaultChecksTimeout   = 10 * time.Minute
	DefaultTeardownTimeout = 10 * time.Minute
)

// TotalTimeout is spec.timeouts.total, or its default.
func (s RestoreDrillSpec) TotalTimeout() time.Duration {
	return positiveOr(s.Timeouts.Total, DefaultTotalTimeout)
}

// TeardownTimeout is spec.timeouts.teardown, or its default.
func (s RestoreDrillSpec) TeardownTimeout() time.Duration {
	return positiveOr(s.Timeouts.Teardown, DefaultTeardownTimeout)
}

func positiveOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d != nil && d.Duration > 0 {
		return d.Duration
	}
	return def
}

// Conditions of a DrillRun.
const (
	// ConditionSandboxLeaked is True while what teardown could not remove
	// within timeouts.teardown remains, and False once it is gone.
	ConditionSandboxLeaked = "SandboxLeaked"
)

// Concluded reports whether the run has its verdict: it is tearing down or
// Done. A concluded run does not keep another run of its drill from
// starting, and holds its drill slot only until its sandbox's deletion has
// been asked for.
func (s DrillRunStatus) Concluded() bool {
	return s.Result != "" || s.Phase == PhaseDone
}

// InFlight reports whether the run is in progress: it has started (is past
// Pending) and has no verdict yet. It holds a drill slot
// (--max-concurrent-drills), as does a concluded run whose sandbox still
// stands, its deletion not asked for yet.
func (s DrillRunStatus) InFlight() bool {
	return s.Phase != "" && s.Phase != PhasePending && !s.Concluded()
}

// Settled reports whether nothing is left to do for the run: it is Done,
// counted in its drill's status, and its sandbox is gone or never was.
// drillerd never writes a settled run again.
func (s DrillRunStatus) Settled() bool {
	return s.Phase == PhaseDone && s.Recorded && (s.SandboxRemoved || s.SandboxNamespace == "")
}
