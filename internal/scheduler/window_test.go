package scheduler

import (
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestSuccessWindow(t *testing.T) {
	// Tuesday 2026-11-24 12:00 UTC.
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	hours := func(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }
	tests := []struct {
		name   string
		spec   drillsv1.RestoreDrillSpec
		want   time.Duration
		wantOK bool
	}{
		{"nightly: two nights and the total timeout", drillsv1.RestoreDrillSpec{Schedule: "0 3 * * *"}, hours(49), true},
		{"nightly in Berlin across no DST change", drillsv1.RestoreDrillSpec{Schedule: "0 3 * * *", TimeZone: ptr.To("Europe/Berlin")}, hours(49), true},
		{"weekdays: the weekend gap decides", drillsv1.RestoreDrillSpec{Schedule: "0 3 * * MON-FRI"}, hours(145), true},
		{"every 6h with a 30m total timeout", drillsv1.RestoreDrillSpec{Schedule: "@every 6h", Timeouts: drillsv1.Timeouts{Total: &metav1.Duration{Duration: 30 * time.Minute}}}, hours(12.5), true},
		{"explicit window wins", drillsv1.RestoreDrillSpec{Schedule: "0 3 * * *", Targets: drillsv1.Targets{SuccessWindow: &metav1.Duration{Duration: hours(30)}}}, hours(30), true},
		{"explicit window on an on-demand drill", drillsv1.RestoreDrillSpec{Targets: drillsv1.Targets{SuccessWindow: &metav1.Duration{Duration: hours(170)}}}, hours(170), true},
		{"on demand: no window", drillsv1.RestoreDrillSpec{}, 0, false},
		{"suspended: no window", drillsv1.RestoreDrillSpec{Schedule: "0 3 * * *", Suspend: true}, 0, false},
		{"unparsable schedule: no window", drillsv1.RestoreDrillSpec{Schedule: "0 3 * *"}, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := SuccessWindow(&drillsv1.RestoreDrill{Spec: tt.spec}, now)
			if got != tt.want || ok != tt.wantOK {
				t.Errorf("SuccessWindow = %s %v, want %s %v", got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
