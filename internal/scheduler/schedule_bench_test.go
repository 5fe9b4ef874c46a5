package scheduler

import (
	"testing"
	"time"
)

// schedules are what 1,000 drills might say: nightly, hourly, every ten
// minutes, with and without a time zone.
func schedules(n int) (exprs, zones []string) {
	kinds := []struct{ expr, zone string }{
		{"0 3 * * *", ""}, {"30 2 * * *", "Europe/Berlin"}, {"0 * * * *", ""}, {"15 1 * * 1-5", "America/New_York"}, {"*/10 * * * *", ""},
	}
	for i := range n {
		k := kinds[i%len(kinds)]
		exprs, zones = append(exprs, k.expr), append(zones, k.zone)
	}
	return exprs, zones
}

// BenchmarkScheduleOf1000Drills is the schedule arithmetic of one pass of
// the schedule controller over 1,000 drills: parse each schedule, find its
// latest due tick since the drill's last one, and the next. Steady: the
// last tick was handled; after a day down: a day of ticks to look through.
func BenchmarkScheduleOf1000Drills(b *testing.B) {
	exprs, zones := schedules(1000)
	now := time.Date(2026, 11, 30, 3, 0, 0, 100e6, time.UTC)
	for _, c := range []struct {
		name string
		down time.Duration
	}{{"steady", 0}, {"after a day down", 24 * time.Hour}} {
		b.Run(c.name, func(b *testing.B) {
			last := make([]time.Time, len(exprs))
			for i := range exprs {
				s, err := Parse(exprs[i], zones[i])
				if err != nil {
					b.Fatal(err)
				}
				// The last tick handled; a drill with no tick in the day
				// before (weekdays only) was last looked at a day before.
				last[i] = now.Add(-c.down - 24*time.Hour)
				if tick, ok := s.LatestTick(last[i], now.Add(-c.down)); ok {
					last[i] = tick
				}
			}
			b.ReportAllocs()
			for b.Loop() {
				for i := range exprs {
					s, err := Parse(exprs[i], zones[i])
					if err != nil {
						b.Fatal(err)
					}
					s.LatestTick(last[i], now)
					s.Next(now)
				}
			}
		})
	}
}
