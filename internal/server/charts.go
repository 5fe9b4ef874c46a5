package server

import (
	"fmt"
	"html"
	"math"
	"strings"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
)

// The status page's pictures are inline SVG drawn here, on the server: the
// page loads nothing and runs no script (its Content-Security-Policy allows
// neither). Every mark carries a <title>, which browsers show on hover and
// screen readers read.

// resultColors are the colours of run results, on the page and in charts.
var resultColors = map[drillsv1.RunResult]string{
	drillsv1.ResultSucceeded: "#17803d", drillsv1.ResultFailed: "#c0262d", drillsv1.ResultError: "#b35c00",
}

func resultColor(r drillsv1.RunResult) string {
	if c, ok := resultColors[r]; ok {
		return c
	}
	return "#888"
}

// chartPoint is one run's value in a chart.
type chartPoint struct {
	Run    string
	Link   string // the run's page; "" when the run is no longer kept
	Result drillsv1.RunResult
	Time   time.Time
	Value  float64
}

// Chart geometry, in SVG user units (pixels at 100%).
const (
	chartWidth, chartHeight = 480, 160
	chartLeft, chartRight   = 58, 86 // the target's label goes on the right
	chartTop, chartBottom   = 14, 26
)

// valueChart draws what (RTO or RPO) of the runs, oldest first, evenly
// spaced, against the target (nil: none): a line through the runs' values,
// one dot per run in its result's colour, linking to the run's page, and a
// dashed line at the target.
func valueChart(class, what string, points []chartPoint, target *float64) markup {
	if len(points) == 0 {
		return markup(fmt.Sprintf(`<p class="nodata">No run has measured the %s yet.</p>`, html.EscapeString(what)))
	}
	top := 0.0
	for _, p := range points {
		top = max(top, p.Value)
	}
	if target != nil {
		top = max(top, *target)
	}
	top = niceCeiling(top * 1.1)
	plotW, plotH := float64(chartWidth-chartLeft-chartRight), float64(chartHeight-chartTop-chartBottom)
	x := func(i int) float64 {
		if len(points) == 1 {
			return chartLeft + plotW/2
		}
		return chartLeft + float64(i)*plotW/float64(len(points)-1)
	}
	y := func(v float64) float64 { return chartTop + plotH - v/top*plotH }
	esc := html.EscapeString

	var b strings.Builder
	label := fmt.Sprintf("%s of the last %d runs", what, len(points))
	if target != nil {
		label += ", target " + rto.Human(*target)
	}
	fmt.Fprintf(&b, `<svg class="chart %s" role="img" aria-label="%s" width="%d" height="%d" viewBox="0 0 %d %d" xmlns="http://www.w3.org/2000/svg">`,
		esc(class), esc(label), chartWidth, chartHeight, chartWidth, chartHeight)
	fmt.Fprintf(&b, `<title>%s</title>`, esc(label))
	// Axes and their scale: 0, half and the top.
	base := y(0)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#999"/>`, chartLeft, base, chartWidth-chartRight, base)
	fmt.Fprintf(&b, `<line class="axis" x1="%d" y1="%d" x2="%d" y2="%.1f" stroke="#999"/>`, chartLeft, chartTop, chartLeft, base)
	for _, v := range []float64{0, top / 2, top} {
		fmt.Fprintf(&b, `<text class="tick" x="%d" y="%.1f" font-size="10" text-anchor="end" fill="#555">%s</text>`, chartLeft-4, y(v)+3, esc(rto.Human(v)))
		if v > 0 {
			fmt.Fprintf(&b, `<line class="grid" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#eee"/>`, chartLeft+1, y(v), chartWidth-chartRight, y(v))
		}
	}
	first, last := points[0].Time, points[len(points)-1].Time
	layout := "Jan 2"
	if first.Format(layout) == last.Format(layout) {
		layout = "15:04"
	}
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" font-size="10" fill="#555">%s</text>`, chartLeft, chartHeight-8, esc(first.UTC().Format(layout)))
	fmt.Fprintf(&b, `<text class="tick" x="%d" y="%d" font-size="10" text-anchor="end" fill="#555">%s</text>`, chartWidth-chartRight, chartHeight-8, esc(last.UTC().Format(layout)))
	if target != nil {
		ty := y(*target)
		fmt.Fprintf(&b, `<line class="target" x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="#c0262d" stroke-dasharray="5 3"><title>target %s</title></line>`,
			chartLeft, ty, chartWidth-chartRight, ty, esc(rto.Human(*target)))
		fmt.Fprintf(&b, `<text class="target-label" x="%d" y="%.1f" font-size="10" fill="#c0262d">target %s</text>`,
			chartWidth-chartRight+4, ty+3, esc(rto.Human(*target)))
	}
	coords := make([]string, len(points))
	for i, p := range points {
		coords[i] = fmt.Sprintf("%.1f,%.1f", x(i), y(p.Value))
	}
	fmt.Fprintf(&b, `<polyline class="line" points="%s" fill="none" stroke="#5b8def" stroke-width="1.5"/>`, strings.Join(coords, " "))
	for i, p := range points {
		over := ""
		if target != nil && p.Value > *target {
			over = ` stroke="#c0262d" stroke-width="2"`
		}
		dot := fmt.Sprintf(`<circle class="point %s" cx="%.1f" cy="%.1f" r="4" fill="%s"%s><title>%s: %s %s, %s, %s</title></circle>`,
			esc(string(p.Result)), x(i), y(p.Value), resultColor(p.Result), over,
			esc(p.Run), esc(what), esc(rto.Human(p.Value)), esc(string(p.Result)), esc(p.Time.UTC().Format(time.RFC3339)))
		if p.Link != "" {
			dot = fmt.Sprintf(`<a href="%s">%s</a>`, esc(p.Link), dot)
		}
		b.WriteString(dot)
	}
	b.WriteString(`</svg>`)
	return markup(b.String())
}

// niceTops are the round durations, in seconds, a chart's scale may end at:
// each has a round half, the scale's middle tick.
var niceTops = func() []float64 {
	var tops []float64
	for _, unit := range []float64{1, 60} {
		for _, n := range []float64{1, 2, 4, 6, 8, 10, 12, 16, 20, 24, 30, 40} {
			tops = append(tops, n*unit)
		}
	}
	for _, n := range []float64{1, 2, 4, 6, 8, 12, 16, 20, 24, 30, 36, 48, 60, 72, 96, 120, 168, 240, 336, 720} {
		tops = append(tops, n*3600)
	}
	return tops
}()

// niceCeiling is the smallest round duration of at least seconds (18m
// becomes 20m, 28h 30h), or seconds itself past the largest.
func niceCeiling(seconds float64) float64 {
	if seconds <= 0 {
		return 1
	}
	for _, top := range niceTops {
		if top >= seconds {
			return top
		}
	}
	return math.Ceil(seconds)
}

var phaseColors = map[drillsv1.Phase]string{
	drillsv1.PhasePending: "#bbb", drillsv1.PhaseSelectingSnapshot: "#8e8cd8", drillsv1.PhaseProvisioning: "#5b8def",
	drillsv1.PhaseRestoringVolume: "#2fa4a9", drillsv1.PhaseStartingDatabase: "#3fae5a", drillsv1.PhaseValidating: "#e0a030",
	drillsv1.PhaseTearingDown: "#999",
}

// waterfall draws a run's phases as an inline SVG: one bar per phase, offset
// by its start and as long as it took.
func waterfall(s drillsv1.DrillRunStatus) markup {
	if len(s.Phases) == 0 {
		return ""
	}
	start := s.Phases[0].StartTime.Time
	end := start
	for _, p := range s.Phases {
		e := p.StartTime.Time
		if p.EndTime != nil {
			e = p.EndTime.Time
		}
		if e.After(end) {
			end = e
		}
	}
	total := end.Sub(start).Seconds()
	if total <= 0 {
		total = 1
	}
	const width, bar, label = 420.0, 14, 170
	var b strings.Builder
	height := len(s.Phases)*(bar+4) + 4
	fmt.Fprintf(&b, `<svg class="waterfall" role="img" aria-label="phase waterfall" width="%d" height="%d" xmlns="http://www.w3.org/2000/svg">`, int(width)+label+10, height)
	for i, p := range s.Phases {
		y := 4 + i*(bar+4)
		x := label + p.StartTime.Sub(start).Seconds()/total*width
		took, secs := "running", 0.0
		if p.Seconds != nil {
			secs, took = *p.Seconds, rto.Human(*p.Seconds)
		}
		w := secs / total * width
		if w < 2 {
			w = 2
		}
		color := phaseColors[p.Name]
		if color == "" {
			color = "#777"
		}
		fmt.Fprintf(&b, `<text x="0" y="%d" font-size="11">%s %s</text>`, y+bar-3, html.EscapeString(string(p.Name)), took)
		fmt.Fprintf(&b, `<rect x="%.1f" y="%d" width="%.1f" height="%d" fill="%s"><title>%s: %s</title></rect>`, x, y, w, bar, color, html.EscapeString(string(p.Name)), took)
	}
	b.WriteString(`</svg>`)
	return markup(b.String())
}
