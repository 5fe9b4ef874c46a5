package report

import (
	"testing"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestSizeLine(t *testing.T) {
	i64 := func(n int64) *int64 { return &n }
	tests := []struct {
		name string
		s    drillsv1.DrillRunStatus
		want string
	}{
		{"nothing measured", drillsv1.DrillRunStatus{}, ""},
		{"everything", drillsv1.DrillRunStatus{
			RTO:  &drillsv1.RTOMeasurement{Seconds: 90},
			Size: &drillsv1.RestoredSize{CapacityBytes: i64(2 << 30), DatabaseBytes: i64(512 << 20), ReadBytes: i64(300 << 20)},
		}, "databases 512.0 MiB on a 2.0 GiB volume (RTO 3m00s per GiB); checks read 300.0 MiB"},
		{"only the volume", drillsv1.DrillRunStatus{Size: &drillsv1.RestoredSize{CapacityBytes: i64(1 << 30)}}, "a 1.0 GiB volume"},
		{"no RTO", drillsv1.DrillRunStatus{Size: &drillsv1.RestoredSize{DatabaseBytes: i64(7 << 10), ReadBytes: i64(900)}}, "databases 7.0 KiB; checks read 900 B"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sizeLine(tt.s); got != tt.want {
				t.Errorf("sizeLine = %q, want %q", got, tt.want)
			}
		})
	}
}
