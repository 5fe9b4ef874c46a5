package scheduler

import (
	"time"

	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// windowTicks is how many upcoming ticks the default success window looks
// at: enough to see a weekday schedule's weekend gap.
const windowTicks = 8

// SuccessWindow is how long drill may go without a successful run before
// DrillNotSucceededRecently fires: spec.targets.successWindow, else for a
// scheduled, unsuspended drill twice the longest gap between its next eight
// ticks after now plus timeouts.total. ok is false when the drill has no
// window (on demand, suspended, or an unparsable schedule).
func SuccessWindow(drill *drillsv1.RestoreDrill, now time.Time) (window time.Duration, ok bool) {
	spec := drill.Spec
	if spec.Targets.SuccessWindow != nil {
		return spec.Targets.SuccessWindow.Duration, true
	}
	if spec.Schedule == "" || spec.Suspend {
		return 0, false
	}
	s, err := Parse(spec.Schedule, ptr.Deref(spec.TimeZone, ""))
	if err != nil {
		return 0, false
	}
	gap := s.LongestGap(now, windowTicks)
	if gap <= 0 {
		return 0, false
	}
	return 2*gap + spec.TotalTimeout(), true
}

// LongestGap is the longest time between two consecutive ticks among the
// next n ticks after t; 0 when the schedule has fewer than two.
func (s Schedule) LongestGap(t time.Time, n int) time.Duration {
	var longest time.Duration
	prev := s.Next(t)
	for i := 1; i < n && !prev.IsZero(); i++ {
		next := s.Next(prev)
		if next.IsZero() {
			break
		}
		longest = max(longest, next.Sub(prev))
		prev = next
	}
	return longest
}
