package scheduler

import (
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	tests := []struct {
		expr, tz string
		wantErr  string
	}{
		{"0 3 * * *", "Europe/Berlin", ""},
		{"@daily", "", ""},
		{"@every 6h", "", ""},
		{"*/5 * * * MON-FRI", "", ""},
		{"0 3 * *", "", "spec.schedule"},
		{"61 * * * *", "", "spec.schedule"},
		{"0 3 * * *", "Mars/Olympus", "spec.timeZone \"Mars/Olympus\": unknown time zone"},
		{"CRON_TZ=UTC 0 3 * * *", "", "set the time zone in spec.timeZone"},
		{"@every -1h", "", "at least 1m"},
		{"@every 1s", "", "at least 1m"},
		{"", "", "spec.schedule"},
	}
	for _, tt := range tests {
		t.Run(tt.expr+"/"+tt.tz, func(t *testing.T) {
			_, err := Parse(tt.expr, tt.tz)
			if (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("Parse = %v, want error containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestNextHonoursTheTimeZone(t *testing.T) {
	s, err := Parse("0 3 * * *", "Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	// 03:00 in Berlin is 02:00 UTC in winter and 01:00 UTC in summer.
	winter := s.Next(time.Date(2026, 11, 22, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 11, 23, 2, 0, 0, 0, time.UTC); !winter.Equal(want) {
		t.Errorf("winter tick %s, want %s", winter.UTC(), want)
	}
	summer := s.Next(time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC))
	if want := time.Date(2026, 7, 2, 1, 0, 0, 0, time.UTC); !summer.Equal(want) {
		t.Errorf("summer tick %s, want %s", summer.UTC(), want)
	}
}

func TestLatestTick(t *testing.T) {
	s, _ := Parse("*/10 * * * *", "")
	base := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	tests := []struct {
		name       string
		after, now time.Time
		want       time.Time
		wantFound  bool
	}{
		{"one tick due", base.Add(-time.Minute), base.Add(30 * time.Second), base, true},
		{"newest of several missed", base, base.Add(35 * time.Minute), base.Add(30 * time.Minute), true},
		{"nothing due yet", base, base.Add(5 * time.Minute), time.Time{}, false},
		{"the tick itself counts", base.Add(-time.Second), base, base, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, found := s.LatestTick(tt.after, tt.now)
			if found != tt.wantFound || !got.Equal(tt.want) {
				t.Errorf("LatestTick = %s %v, want %s %v", got, found, tt.want, tt.wantFound)
			}
		})
	}
}

func TestRunNameIsDeterministic(t *testing.T) {
	tick := time.Date(2026, 11, 22, 2, 0, 0, 0, time.UTC)
	if a, b := RunName("orders-db", tick), RunName("orders-db", tick.In(time.FixedZone("x", 3600))); a != b || a != "orders-db-1795312800" {
		t.Errorf("RunName = %q and %q, want the same orders-db-1795312800", a, b)
	}
	if len(RunName(strings.Repeat("x", 300), tick)) > 253 {
		t.Error("RunName longer than 253")
	}
}
