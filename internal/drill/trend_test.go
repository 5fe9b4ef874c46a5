package drill

import (
	"fmt"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

const day = 24 * time.Hour

// nightlyRuns are finished runs, one a night from t0, with the RTOs given
// (a negative one: the run measured none).
func nightlyRuns(rtos ...float64) []*drillsv1.DrillRun {
	runs := make([]*drillsv1.DrillRun, len(rtos))
	for i, rto := range rtos {
		b := newRun(fmt.Sprintf("r%d", i+1)).In(drillsv1.PhaseDone).Result(drillsv1.ResultSucceeded).
			CompletedAt(t0.Add(time.Duration(i)*day)).RPO(3600, nil, true, drillsv1.RPOBasisSnapshot).
			Size(4<<30, 2<<30, 1<<30)
		if rto >= 0 {
			b.RTO(rto, nil, true)
		} else {
			b.Result(drillsv1.ResultError).Reason("Timeout")
		}
		runs[i] = b.Obj()
	}
	return runs
}

// recorded is the drill's status after recording runs, in order.
func recorded(drill *drillsv1.RestoreDrill, runs []*drillsv1.DrillRun) drillsv1.RestoreDrillStatus {
	for _, r := range runs {
		if summarize(&drill.Status, r) {
			recordTrend(drill, r)
		}
	}
	return drill.Status
}

func TestRecentRunsAreKeptOldestFirstAndBounded(t *testing.T) {
	runs := nightlyRuns(make([]float64, 35)...)
	// Recorded out of order: the newest first, then the others.
	status := recorded(ordersDrill().Obj(), append(runs[34:], runs[:34]...))
	recent := status.RecentRuns
	if len(recent) != drillsv1.RecentRunsKept || recent[0].Name != "r6" || recent[len(recent)-1].Name != "r35" {
		t.Fatalf("recent runs %d, from %s to %s; want the newest 30, r6 to r35", len(recent), recent[0].Name, recent[len(recent)-1].Name)
	}
	for i := 1; i < len(recent); i++ {
		if recent[i].CompletionTime.Before(&recent[i-1].CompletionTime) {
			t.Fatalf("recent runs out of order at %d: %s after %s", i, recent[i].Name, recent[i-1].Name)
		}
	}
	p := recent[0]
	if p.Result != drillsv1.ResultSucceeded || p.RTOSeconds == nil || p.RPOSeconds == nil || *p.RPOSeconds != 3600 ||
		p.DatabaseBytes == nil || *p.DatabaseBytes != 2<<30 || p.ReadBytes == nil || *p.ReadBytes != 1<<30 {
		t.Errorf("recent run %+v, want its result, RTO, RPO and sizes", p)
	}
	again := recorded(ordersDrill().Status(func(s *drillsv1.RestoreDrillStatus) { *s = status }).Obj(), runs[34:])
	if len(again.RecentRuns) != drillsv1.RecentRunsKept || again.RunCounts[drillsv1.ResultSucceeded] != 35 {
		t.Errorf("recording r35 again: %d recent runs, %d counted; want it recorded once", len(again.RecentRuns), again.RunCounts[drillsv1.ResultSucceeded])
	}
}

func TestTheRTOForecast(t *testing.T) {
	rising := make([]float64, 10) // 60s, rising by 10s a night
	for i := range rising {
		rising[i] = 60 + 10*float64(i)
	}
	tests := []struct {
		name      string
		drill     *drillsv1.RestoreDrill
		rtos      []float64
		want      *drillsv1.RTOForecast // nil: no forecast
		wantAfter time.Duration         // TargetTime after the newest run
	}{
		{name: "two runs: no forecast", drill: ordersDrill().Targets(5*time.Minute, 0).Obj(), rtos: []float64{60, 90}},
		{name: "three runs, one without an RTO: no forecast", drill: ordersDrill().Targets(5*time.Minute, 0).Obj(), rtos: []float64{60, -1, 90}},
		{name: "three nights against a 30-day horizon: too short a span", drill: ordersDrill().Targets(5*time.Minute, 0).Obj(), rtos: []float64{60, 90, 120}},
		{
			name: "three nights against a 20-day horizon", drill: ordersDrill().Targets(5*time.Minute, 0).RTOTrendHorizon(20 * day).Obj(), rtos: []float64{60, 90, 120},
			want:      &drillsv1.RTOForecast{Runs: 3, HorizonSeconds: 20 * 86400, Seconds: 720, LowerSeconds: 720, SlopeSecondsPerDay: 30, TargetSeconds: ptrTo(300.0), AtRisk: true},
			wantAfter: 6 * day,
		},
		{
			name: "falling steeply: read as 0, not below", drill: ordersDrill().Obj(), rtos: []float64{600, 500, 400, 300},
			want: &drillsv1.RTOForecast{Runs: 4, HorizonSeconds: 30 * 86400, Seconds: 0, LowerSeconds: 0, SlopeSecondsPerDay: -100},
		},
		{
			name: "flat, under the target", drill: ordersDrill().Targets(5*time.Minute, 0).Obj(), rtos: []float64{60, 60, 60, 60},
			want: &drillsv1.RTOForecast{Runs: 4, HorizonSeconds: 30 * 86400, Seconds: 60, LowerSeconds: 60, TargetSeconds: ptrTo(300.0)},
		},
		{
			// The newest run, 150s, is within the 15m target; 30 nights on
			// the RTO reaches 450s, and the target 75 nights after the first.
			name: "rising 10s a night: at risk within 30 days", drill: ordersDrill().Targets(5*time.Minute, 0).Obj(), rtos: rising,
			want:      &drillsv1.RTOForecast{Runs: 10, HorizonSeconds: 30 * 86400, Seconds: 450, LowerSeconds: 450, SlopeSecondsPerDay: 10, TargetSeconds: ptrTo(300.0), AtRisk: true},
			wantAfter: 15 * day,
		},
		{
			name: "rising 10s a night: safe within a 7-day horizon", drill: ordersDrill().Targets(5*time.Minute, 0).RTOTrendHorizon(7 * day).Obj(), rtos: rising,
			want:      &drillsv1.RTOForecast{Runs: 10, HorizonSeconds: 7 * 86400, Seconds: 220, LowerSeconds: 220, SlopeSecondsPerDay: 10, TargetSeconds: ptrTo(300.0)},
			wantAfter: 15 * day,
		},
		{
			name: "no target: a forecast, never at risk", drill: ordersDrill().Obj(), rtos: rising,
			want: &drillsv1.RTOForecast{Runs: 10, HorizonSeconds: 30 * 86400, Seconds: 450, LowerSeconds: 450, SlopeSecondsPerDay: 10},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			runs := nightlyRuns(tt.rtos...)
			got := recorded(tt.drill, runs).RTOForecast
			if tt.want == nil {
				if got != nil {
					t.Errorf("forecast %+v, want none", got)
				}
				return
			}
			if got == nil {
				t.Fatal("no forecast")
			}
			newest := runs[len(runs)-1].Status.CompletionTime.Time
			if want := newest.Add(time.Duration(tt.want.HorizonSeconds) * time.Second); !got.Time.Time.Equal(want) {
				t.Errorf("forecast for %s, want %s: the horizon after the newest run", got.Time, want)
			}
			switch {
			case tt.wantAfter == 0 && got.TargetTime != nil:
				t.Errorf("target reached at %s, want never", got.TargetTime)
			case tt.wantAfter != 0 && (got.TargetTime == nil || !got.TargetTime.Time.Equal(newest.Add(tt.wantAfter))):
				t.Errorf("target reached at %v, want %s after the newest run", got.TargetTime, tt.wantAfter)
			}
			if got.Runs != tt.want.Runs || got.HorizonSeconds != tt.want.HorizonSeconds || got.Seconds != tt.want.Seconds ||
				got.LowerSeconds != tt.want.LowerSeconds || got.SlopeSecondsPerDay != tt.want.SlopeSecondsPerDay ||
				got.AtRisk != tt.want.AtRisk || fmt.Sprint(deref(got.TargetSeconds)) != fmt.Sprint(deref(tt.want.TargetSeconds)) {
				t.Errorf("forecast\n%s\nwant\n%s", describeForecast(got), describeForecast(tt.want))
			}
		})
	}
}

func deref(p *float64) any {
	if p == nil {
		return "none"
	}
	return *p
}

func describeForecast(f *drillsv1.RTOForecast) string {
	return fmt.Sprintf("%d runs, horizon %gs: %gs (at least %gs), %gs/day, target %v, at risk %v",
		f.Runs, f.HorizonSeconds, f.Seconds, f.LowerSeconds, f.SlopeSecondsPerDay, deref(f.TargetSeconds), f.AtRisk)
}

func TestRTOPerGiB(t *testing.T) {
	run := nightlyRuns(90)[0]
	if got := rtoPerGiB(run.Status); got == nil || *got != 45 {
		t.Errorf("RTO per GiB %v, want 90s over 2 GiB: 45", got)
	}
	run.Status.Size.DatabaseBytes = nil
	if got := rtoPerGiB(run.Status); got != nil {
		t.Errorf("RTO per GiB %v without a database size, want none", *got)
	}
}

// TestTheForecastUsesTheStoredTimes: a run recorded straight from memory
// (its completion time to the nanosecond) gets the forecast that its
// stored point (whole seconds, as the API server keeps times) gives.
func TestTheForecastUsesTheStoredTimes(t *testing.T) {
	runs := nightlyRuns(60, 70, 80)
	for i, r := range runs {
		r.Status.CompletionTime = &metav1.Time{Time: t0.Add(time.Duration(i)*10*time.Second + 900*time.Millisecond)}
	}
	drill := ordersDrill().RTOTrendHorizon(2 * time.Minute).Obj()
	status := recorded(drill, runs)
	for _, p := range status.RecentRuns {
		if p.CompletionTime.Nanosecond() != 0 {
			t.Errorf("run %s stored at %s, not in whole seconds as the API server keeps it", p.Name, p.CompletionTime.Time)
		}
	}
	stored := forecastRTO(status.RecentRuns, 2*time.Minute, nil)
	if status.RTOForecast == nil || stored == nil || status.RTOForecast.Seconds != stored.Seconds {
		t.Errorf("forecast %+v, want %+v: the one the stored points give", status.RTOForecast, stored)
	}
}
