package scheduler

import (
	"testing"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestSuccessWindow(t *testing.T) {
	// Tuesday 2026-11-24 12:00 UTC.
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	hours := func(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }
	tests := []struct {
		name   string
		drill  *drillsv1.RestoreDrill
		want   time.Duration
		wantOK bool
	}{
		{"nightly: two nights and the total timeout", newDrill("0 3 * * *").Obj(), hours(49), true},
		{"nightly in Berlin across no DST change", newDrill("0 3 * * *").TimeZone("Europe/Berlin").Obj(), hours(49), true},
		{"weekdays: the weekend gap decides", newDrill("0 3 * * MON-FRI").Obj(), hours(145), true},
		{"every 6h with a 30m total timeout", newDrill("@every 6h").TotalTimeout(30 * time.Minute).Obj(), hours(12.5), true},
		{"explicit window wins", newDrill("0 3 * * *").SuccessWindow(hours(30)).Obj(), hours(30), true},
		{"explicit window on an on-demand drill", newDrill("").SuccessWindow(hours(170)).Obj(), hours(170), true},
		{"on demand: no window", newDrill("").Obj(), 0, false},
		{"suspended: no window", newDrill("0 3 * * *").Suspended().Obj(), 0, false},
		{"unparsable schedule: no window", newDrill("0 3 * *").Obj(), 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SuccessWindow(tt.drill, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("SuccessWindow = %s %v, want %s %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
