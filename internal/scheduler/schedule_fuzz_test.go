package scheduler

import (
	"strings"
	"testing"
	"time"
)

// FuzzParse feeds schedules and time zones to Parse, and what it accepts
// to Next, LatestTick and the success window. Nothing may panic (robfig's
// parser can, on odd input) or hang; a refusal names spec.schedule or
// spec.timeZone; ticks move forward, and the newest tick up to now is at
// most now. `go test` runs the seeds of testdata/fuzz; `make fuzz` looks
// for more.
func FuzzParse(f *testing.F) {
	f.Fuzz(func(t *testing.T, expr, zone string, unix int64) {
		now := time.Unix(unix%(1<<34), 0).UTC() // years 1425 to 2514
		s, err := Parse(expr, zone)
		if err != nil {
			if msg := err.Error(); !strings.HasPrefix(msg, "spec.schedule ") && !strings.HasPrefix(msg, "spec.timeZone ") {
				t.Errorf("Parse(%q, %q): %q names neither spec.schedule nor spec.timeZone", expr, zone, msg)
			}
			return
		}
		next := s.Next(now)
		if !next.IsZero() && !next.After(now) {
			t.Errorf("Parse(%q, %q).Next(%s) = %s, not after", expr, zone, now, next)
		}
		if tick, ok := s.LatestTick(now.Add(-24*time.Hour), now); ok && (tick.After(now) || !tick.After(now.Add(-24*time.Hour))) {
			t.Errorf("Parse(%q, %q).LatestTick = %s, outside the last day before %s", expr, zone, tick, now)
		}
		if gap := s.LongestGap(now, windowTicks); gap < 0 {
			t.Errorf("Parse(%q, %q).LongestGap = %s", expr, zone, gap)
		}
	})
}
