package rto

import (
	"testing"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

func TestMeasureRTO(t *testing.T) {
	tests := []struct {
		name        string
		took        time.Duration
		target      time.Duration
		wantSeconds float64
		wantMet     bool
		wantTarget  bool
	}{
		{"within target", 90 * time.Second, 15 * time.Minute, 90, true, true},
		{"exactly the target", 15 * time.Minute, 15 * time.Minute, 900, true, true},
		{"over target", 15*time.Minute + time.Millisecond, 15 * time.Minute, 900.001, false, true},
		{"no target is met", 2 * time.Hour, 0, 7200, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := MeasureRTO(t0, t0.Add(tt.took), tt.target)
			if m.Seconds != tt.wantSeconds || m.Met != tt.wantMet || (m.TargetSeconds != nil) != tt.wantTarget {
				t.Errorf("MeasureRTO = %+v, want seconds %v met %v target set %v", m, tt.wantSeconds, tt.wantMet, tt.wantTarget)
			}
		})
	}
}

func TestMeasureRPO(t *testing.T) {
	newest := t0.Add(-3 * time.Hour)
	justAfterCut := t0.Add(-2*time.Hour + time.Minute)
	future := t0.Add(24 * time.Hour)
	tests := []struct {
		name          string
		newestWrite   *time.Time
		snapshot      time.Time
		target        time.Duration
		want          *drillsv1.RPOMeasurement
		wantUntrusted bool
	}{
		{
			name: "data basis wins when the freshness query ran", newestWrite: &newest, snapshot: t0.Add(-2 * time.Hour), target: 26 * time.Hour,
			want: &drillsv1.RPOMeasurement{Seconds: 10800, Basis: drillsv1.RPOBasisData, Met: true, DataSeconds: ptr(10800.0), SnapshotSeconds: ptr(7200.0), TargetSeconds: ptr(93600.0)},
		},
		{
			name: "snapshot basis without freshness", snapshot: t0.Add(-30 * time.Hour), target: 26 * time.Hour,
			want: &drillsv1.RPOMeasurement{Seconds: 108000, Basis: drillsv1.RPOBasisSnapshot, Met: false, SnapshotSeconds: ptr(108000.0), TargetSeconds: ptr(93600.0)},
		},
		{
			name: "data a minute after the cut (within the skew): the snapshot's larger age counts", newestWrite: &justAfterCut, snapshot: t0.Add(-2 * time.Hour), target: 26 * time.Hour,
			want: &drillsv1.RPOMeasurement{Seconds: 7200, Basis: drillsv1.RPOBasisSnapshot, Met: true, DataSeconds: ptr(7140.0), SnapshotSeconds: ptr(7200.0), TargetSeconds: ptr(93600.0)},
		},
		{
			name: "a row dated in the future is not trusted: the old snapshot still misses the target", newestWrite: &future, snapshot: t0.Add(-72 * time.Hour), target: 26 * time.Hour,
			want:          &drillsv1.RPOMeasurement{Seconds: 259200, Basis: drillsv1.RPOBasisSnapshot, Met: false, DataSeconds: ptr(-86400.0), SnapshotSeconds: ptr(259200.0), TargetSeconds: ptr(93600.0)},
			wantUntrusted: true,
		},
		{
			name: "data basis alone when the snapshot's cut is unknown", newestWrite: &newest, target: 26 * time.Hour,
			want: &drillsv1.RPOMeasurement{Seconds: 10800, Basis: drillsv1.RPOBasisData, Met: true, DataSeconds: ptr(10800.0), TargetSeconds: ptr(93600.0)},
		},
		{name: "nothing known", want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, untrusted := MeasureRPO(t0, tt.newestWrite, tt.snapshot, tt.target, 5*time.Minute)
			if (untrusted != "") != tt.wantUntrusted {
				t.Errorf("untrusted = %q, want untrusted %v", untrusted, tt.wantUntrusted)
			}
			if (got == nil) != (tt.want == nil) {
				t.Fatalf("MeasureRPO = %+v, want %+v", got, tt.want)
			}
			if got == nil {
				return
			}
			if got.Seconds != tt.want.Seconds || got.Basis != tt.want.Basis || got.Met != tt.want.Met ||
				!sameFloat(got.DataSeconds, tt.want.DataSeconds) || !sameFloat(got.SnapshotSeconds, tt.want.SnapshotSeconds) || !sameFloat(got.TargetSeconds, tt.want.TargetSeconds) {
				t.Errorf("MeasureRPO = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestPhaseTimeline(t *testing.T) {
	var s drillsv1.DrillRunStatus
	StartPhase(&s, drillsv1.PhaseSelectingSnapshot, t0)
	StartPhase(&s, drillsv1.PhaseProvisioning, t0.Add(1500*time.Millisecond))
	StartPhase(&s, drillsv1.PhaseRestoringVolume, t0.Add(2*time.Second))
	EndPhase(&s, t0.Add(5*time.Second))
	EndPhase(&s, t0.Add(9*time.Second)) // nothing running: no change

	if s.Phase != drillsv1.PhaseRestoringVolume || len(s.Phases) != 3 {
		t.Fatalf("phase %s with %d timings, want RestoringVolume with 3", s.Phase, len(s.Phases))
	}
	wantSeconds := []float64{1.5, 0.5, 3}
	for i, p := range s.Phases {
		if p.Seconds == nil || *p.Seconds != wantSeconds[i] {
			t.Errorf("phase %s took %v, want %v", p.Name, p.Seconds, wantSeconds[i])
		}
	}
	if start, ok := PhaseStart(s, drillsv1.PhaseProvisioning); !ok || !start.Equal(t0.Add(1500*time.Millisecond)) {
		t.Errorf("PhaseStart(Provisioning) = %v %v", start, ok)
	}
	if _, ok := PhaseStart(s, drillsv1.PhaseValidating); ok {
		t.Error("PhaseStart(Validating) found a phase that never ran")
	}
}

func sameFloat(a, b *float64) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
