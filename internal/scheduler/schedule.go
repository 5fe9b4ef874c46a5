// Package scheduler turns RestoreDrill schedules into DrillRuns.
//
// # Design
//
// A scheduled run's name is the drill's name and the Unix time of its tick
// (orders-db-1795834800), so a retry, a restart or a second replica that
// handles the same tick finds the run already there (AlreadyExists = adopt)
// and cannot create a duplicate. status.lastScheduleTime records the newest
// tick handled, whether a run was created or the tick was skipped because
// the previous run was still going. Only the newest missed tick is run, and
// only within StartingDeadline of it: a drill does not fire a backlog after
// an outage.
package scheduler

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// Schedule is a parsed spec.schedule in its time zone.
type Schedule struct {
	cron cron.Schedule
	loc  *time.Location
}

var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// Parse parses a 5-field cron expression or descriptor in time zone tz
// (empty = UTC). It never panics, whatever the input.
func Parse(expr, tz string) (s Schedule, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("spec.schedule %q: %v", expr, r)
		}
	}()
	loc := time.UTC
	if tz != "" {
		if loc, err = time.LoadLocation(tz); err != nil {
			return s, fmt.Errorf("spec.timeZone %q: unknown time zone; use an IANA name such as Europe/Berlin", tz)
		}
	}
	if strings.HasPrefix(strings.TrimSpace(expr), "TZ=") || strings.HasPrefix(strings.TrimSpace(expr), "CRON_TZ=") {
		return s, fmt.Errorf("spec.schedule %q: set the time zone in spec.timeZone, not in the schedule", expr)
	}
	if rest, ok := strings.CutPrefix(strings.TrimSpace(expr), "@every "); ok {
		if d, err := time.ParseDuration(strings.TrimSpace(rest)); err != nil || d < time.Minute {
			return s, fmt.Errorf("spec.schedule %q: @every needs a duration of at least 1m", expr)
		}
	}
	c, err := parser.Parse(expr)
	if err != nil {
		return s, fmt.Errorf("spec.schedule %q: %v", expr, err)
	}
	return Schedule{cron: c, loc: loc}, nil
}

// Next is the first tick after t.
func (s Schedule) Next(t time.Time) time.Time { return s.cron.Next(t.In(s.loc)) }

// LatestTick is the newest tick in (after, now], if any. It stops looking
// after maxTicks ticks so a schedule every minute over a long outage stays
// cheap.
func (s Schedule) LatestTick(after, now time.Time) (time.Time, bool) {
	const maxTicks = 100000
	var latest time.Time
	found := false
	for t, i := s.Next(after), 0; !t.After(now) && !t.IsZero() && i < maxTicks; t, i = s.Next(t), i+1 {
		latest, found = t, true
	}
	return latest, found
}

// RunName is the deterministic name of the run of a tick.
func RunName(drill string, tick time.Time) string {
	suffix := fmt.Sprintf("-%d", tick.Unix())
	if len(drill)+len(suffix) > 253 {
		drill = drill[:253-len(suffix)]
	}
	return drill + suffix
}
