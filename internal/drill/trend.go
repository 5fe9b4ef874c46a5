package drill

import (
	"math"
	"slices"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/trend"
)

// recordTrend adds a finished run to its drill's recent runs (oldest first,
// at most RecentRunsKept) and forecasts the RTO from them.
func recordTrend(drill *drillsv1.RestoreDrill, run *drillsv1.DrillRun) {
	s := run.Status
	if s.CompletionTime == nil {
		return
	}
	// The completion time as the API server keeps it (whole seconds): the
	// forecast is the one anyone reading status.recentRuns would draw,
	// whether this run's time came from memory or from the API server.
	done := metav1.NewTime(s.CompletionTime.Truncate(time.Second))
	point := drillsv1.RunPoint{Name: run.Name, Result: s.Result, Reason: s.Reason, CompletionTime: done}
	if s.RTO != nil {
		point.RTOSeconds = ptr.To(s.RTO.Seconds)
	}
	if s.RPO != nil {
		point.RPOSeconds = ptr.To(s.RPO.Seconds)
	}
	if s.Size != nil {
		point.DatabaseBytes, point.ReadBytes = s.Size.DatabaseBytes, s.Size.ReadBytes
	}
	st := &drill.Status
	if slices.ContainsFunc(st.RecentRuns, func(p drillsv1.RunPoint) bool { return p.Name == run.Name }) {
		return
	}
	st.RecentRuns = append(st.RecentRuns, point)
	slices.SortStableFunc(st.RecentRuns, func(a, b drillsv1.RunPoint) int { return a.CompletionTime.Compare(b.CompletionTime.Time) })
	if n := len(st.RecentRuns); n > drillsv1.RecentRunsKept {
		st.RecentRuns = slices.Clone(st.RecentRuns[n-drillsv1.RecentRunsKept:])
	}
	var target *float64
	if t := drill.Spec.Targets.RTO; t != nil {
		target = ptr.To(t.Seconds())
	}
	st.RTOForecast = forecastRTO(st.RecentRuns, drill.Spec.RTOTrendHorizon(), target)
}

// minSpanOfHorizon: the runs of a forecast must span at least this part of
// its horizon. A line through runs minutes apart (a few drills started by
// hand) says nothing about next month, however well it fits them.
const minSpanOfHorizon = 10

// forecastRTO reads the least-squares line through the runs' RTOs at the
// horizon after the newest. It is nil with fewer than trend.MinPoints RTOs
// or when they span less than a tenth of the horizon. An RTO cannot be
// negative: a falling line is read as 0 at least.
func forecastRTO(runs []drillsv1.RunPoint, horizon time.Duration, target *float64) *drillsv1.RTOForecast {
	var points []trend.Point
	var oldest, newest time.Time
	for _, r := range runs {
		if r.RTOSeconds == nil {
			continue
		}
		t := r.CompletionTime.Time
		points = append(points, trend.Point{Time: t, Value: *r.RTOSeconds})
		if oldest.IsZero() || t.Before(oldest) {
			oldest = t
		}
		if t.After(newest) {
			newest = t
		}
	}
	if newest.Sub(oldest) < horizon/minSpanOfHorizon {
		return nil
	}
	line, ok := trend.Fit(points)
	if !ok {
		return nil
	}
	at := newest.Add(horizon)
	f := &drillsv1.RTOForecast{
		Runs: int32(line.N), Time: metav1.NewTime(at), HorizonSeconds: horizon.Seconds(),
		Seconds: roundMillis(max(line.At(at), 0)), LowerSeconds: roundMillis(max(line.LowerBound(at), 0)),
		SlopeSecondsPerDay: roundMillis(line.SlopePerDay), TargetSeconds: target,
	}
	if target != nil {
		f.AtRisk = f.LowerSeconds > *target
		if when, ok := line.Reaches(*target, newest); ok {
			f.TargetTime = &metav1.Time{Time: when.Truncate(time.Second)}
		}
	}
	return f
}

// rtoPerGiB is a run's RTO per GiB of restored data, when both are known.
func rtoPerGiB(s drillsv1.DrillRunStatus) *float64 {
	if s.RTO == nil || s.Size == nil || s.Size.DatabaseBytes == nil || *s.Size.DatabaseBytes <= 0 {
		return nil
	}
	return ptr.To(roundMillis(s.RTO.Seconds / (float64(*s.Size.DatabaseBytes) / drillsv1.GiB)))
}

func roundMillis(v float64) float64 { return math.Round(v*1000) / 1000 }
