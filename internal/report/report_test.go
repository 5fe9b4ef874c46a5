package report

import (
	"strings"
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

func TestTextListsSkippedSnapshots(t *testing.T) {
	run := &drillsv1.DrillRun{Status: drillsv1.DrillRunStatus{
		Snapshot: &drillsv1.SnapshotRef{Name: "orders-0300"},
		SkippedSnapshots: []drillsv1.SkippedSnapshot{
			{Name: "orders-0500", Reason: drillsv1.SnapshotNotReady},
			{Name: "orders-0400", Reason: drillsv1.SnapshotFailed, Message: "rpc error: code = ResourceExhausted desc = no space left\nsecond line"},
		},
	}}
	var out strings.Builder
	Text(&out, &drillsv1.RestoreDrill{}, run)
	want := "Snapshot  orders-0300\n" +
		"Skipped   orders-0500, newer, NotReady\n" +
		"Skipped   orders-0400, newer, Failed: rpc error: code = ResourceExhausted desc = no space left\n"
	if !strings.Contains(out.String(), want) {
		t.Errorf("report:\n%s\nwant it to contain:\n%s", out.String(), want)
	}
	run.Status.SkippedSnapshots = nil
	out.Reset()
	Text(&out, &drillsv1.RestoreDrill{}, run)
	if strings.Contains(out.String(), "Skipped") {
		t.Errorf("with no snapshot skipped, the report says:\n%s", out.String())
	}
}
