package v1alpha1

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The RTO trend: what each run restored and read (DrillRunStatus.Size), the
// drill's recent runs in brief (RestoreDrillStatus.RecentRuns) and the RTO
// their least-squares line forecasts (RestoreDrillStatus.RTOForecast) for
// spec.targets.rtoTrendHorizon after the newest.

// DefaultRTOTrendHorizon is Targets.RTOTrendHorizon's default.
const DefaultRTOTrendHorizon = 30 * 24 * time.Hour

// RecentRunsKept bounds RestoreDrillStatus.RecentRuns.
const RecentRunsKept = 30

// GiB is the unit of RTO per GiB: 2^30 bytes.
const GiB = 1 << 30

// RestoredSize is how much a run restored, and how much its checks read.
type RestoredSize struct {
	// CapacityBytes of the restored claim (its status.capacity.storage).
	// +optional
	CapacityBytes *int64 `json:"capacityBytes,omitempty"`
	// DatabaseBytes is the copy's data as PostgreSQL counts it: the sum of
	// pg_database_size() over the databases drillerd may connect to (WAL
	// and cluster-wide catalogs aside). The RTO per GiB is per GiB of it.
	// +optional
	DatabaseBytes *int64 `json:"databaseBytes,omitempty"`
	// ReadBytes is what PostgreSQL read into its shared buffers, from the
	// volume or the operating system's page cache, between the start of the
	// checks and the end of validation: the growth of pg_stat_database's
	// blks_read, summed over every database, times block_size. Backends
	// publish their counts at most once a second (PostgreSQL 15 and later:
	// drillerd's own sessions publish theirs before it reads), so it is a
	// close lower bound.
	// +optional
	ReadBytes *int64 `json:"readBytes,omitempty"`
}

// RunPoint is a finished run in brief, for trends.
type RunPoint struct {
	// Name of the DrillRun.
	Name string `json:"name"`
	// Result of the run.
	Result RunResult `json:"result"`
	// Reason of a result other than Succeeded.
	// +optional
	Reason string `json:"reason,omitempty"`
	// CompletionTime of the run.
	CompletionTime metav1.Time `json:"completionTime"`
	// RTOSeconds measured by the run.
	// +optional
	RTOSeconds *float64 `json:"rtoSeconds,omitempty"`
	// RPOSeconds measured by the run.
	// +optional
	RPOSeconds *float64 `json:"rpoSeconds,omitempty"`
	// DatabaseBytes restored (RestoredSize.DatabaseBytes).
	// +optional
	DatabaseBytes *int64 `json:"databaseBytes,omitempty"`
	// ReadBytes read by the checks (RestoredSize.ReadBytes).
	// +optional
	ReadBytes *int64 `json:"readBytes,omitempty"`
}

// RTOForecast is where the RTO of recent runs is heading: the least-squares
// line through their RTOs against their completion times, read at the
// horizon after the newest.
type RTOForecast struct {
	// Runs is how many runs the line was fitted to (those of RecentRuns
	// with an RTO); there is no forecast with fewer than 3, nor when they
	// span less than a tenth of the horizon (3 days for 30).
	Runs int32 `json:"runs"`
	// Time the forecast is for: the newest run's completion plus the
	// horizon.
	Time metav1.Time `json:"time"`
	// HorizonSeconds is spec.targets.rtoTrendHorizon in seconds.
	HorizonSeconds float64 `json:"horizonSeconds"`
	// Seconds is the RTO the line reaches at Time (0 when it falls below).
	Seconds float64 `json:"seconds"`
	// LowerSeconds is the one-sided 95% lower confidence bound of the line
	// at Time: the trend says the RTO will be at least this, given how far
	// the runs scatter around the line (0 when the bound falls below).
	LowerSeconds float64 `json:"lowerSeconds"`
	// SlopeSecondsPerDay is how much the RTO grows per day.
	SlopeSecondsPerDay float64 `json:"slopeSecondsPerDay"`
	// TargetSeconds is spec.targets.rto; unset without a target.
	// +optional
	TargetSeconds *float64 `json:"targetSeconds,omitempty"`
	// AtRisk says that LowerSeconds is over the target: the trend says the
	// RTO will miss it within the horizon (alert RTOTargetAtRisk).
	AtRisk bool `json:"atRisk"`
	// TargetTime is when the line reaches the target, if it rises and has
	// not reached it by the newest run.
	// +optional
	TargetTime *metav1.Time `json:"targetTime,omitempty"`
}

// RTOTrendHorizon is spec.targets.rtoTrendHorizon, or its default.
func (s RestoreDrillSpec) RTOTrendHorizon() time.Duration {
	if h := s.Targets.RTOTrendHorizon; h != nil && h.Duration > 0 {
		return h.Duration
	}
	return DefaultRTOTrendHorizon
}
