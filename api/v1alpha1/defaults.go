package v1alpha1

import "time"

// Defaults of spec.timeouts.
const (
	DefaultTotalTimeout    = time.Hour
	DefaultVolumeTimeout   = 20 * time.Minute
	DefaultDatabaseTimeout = 10 * time.Minute
	DefaultChecksTimeout   = 10 * time.Minute
)

// TotalTimeout is spec.timeouts.total, or its default.
func (s RestoreDrillSpec) TotalTimeout() time.Duration {
	if s.Timeouts.Total != nil && s.Timeouts.Total.Duration > 0 {
		return s.Timeouts.Total.Duration
	}
	return DefaultTotalTimeout
}
