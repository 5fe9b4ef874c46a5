// Package trend fits a straight line to measurements over time by least
// squares and reads it ahead: where the RTO of a drill's recent runs is
// heading, and how sure the line is.
//
// # Design
//
// With x the time of a measurement (in days since the first) and y its
// value, the line ŷ = a + b·x minimises the sum of squared residuals:
//
//	b = Sxy / Sxx,  a = ȳ − b·x̄,  Sxx = Σ(x−x̄)²,  Sxy = Σ(x−x̄)(y−ȳ)
//
// Read at x₀ far ahead, the line is only as good as the runs are close to
// it. The one-sided 95% lower confidence bound of the line at x₀ is
//
//	ŷ(x₀) − t₀.₉₅(n−2) · s · √(1/n + (x₀−x̄)²/Sxx),  s² = Σ(y−ŷ)² / (n−2)
//
// with Student's t quantile for n−2 degrees of freedom. A few noisy runs
// give a wide bound, so an alert on the bound does not fire on noise; many
// runs that rise steadily give a narrow one. A line needs at least three
// measurements (one degree of freedom for the scatter) at two or more
// different times.
package trend

import (
	"math"
	"time"
)

// MinPoints is the fewest measurements a line is fitted to.
const MinPoints = 3

// Point is one measurement.
type Point struct {
	Time  time.Time
	Value float64
}

// Line is a least-squares fit.
type Line struct {
	// N is how many points it was fitted to.
	N int
	// Origin is the time x = 0 (the first point's).
	Origin time.Time
	// Intercept is the line's value at Origin.
	Intercept float64
	// SlopePerDay is how much the value grows per day.
	SlopePerDay float64
	// ResidualStdErr is s: the points' standard deviation around the line.
	ResidualStdErr float64

	meanX, sxx float64 // in days
}

// Fit fits a line to points. It reports false with fewer than MinPoints
// points or when they are all at the same time.
func Fit(points []Point) (Line, bool) {
	n := len(points)
	if n < MinPoints {
		return Line{}, false
	}
	origin := points[0].Time
	for _, p := range points {
		if p.Time.Before(origin) {
			origin = p.Time
		}
	}
	xs := make([]float64, n)
	var sumX, sumY float64
	for i, p := range points {
		xs[i] = days(p.Time.Sub(origin))
		sumX += xs[i]
		sumY += p.Value
	}
	meanX, meanY := sumX/float64(n), sumY/float64(n)
	var sxx, sxy float64
	for i, p := range points {
		dx := xs[i] - meanX
		sxx += dx * dx
		sxy += dx * (p.Value - meanY)
	}
	if sxx == 0 {
		return Line{}, false
	}
	l := Line{N: n, Origin: origin, SlopePerDay: sxy / sxx, meanX: meanX, sxx: sxx}
	l.Intercept = meanY - l.SlopePerDay*meanX
	var sse float64
	for i, p := range points {
		r := p.Value - (l.Intercept + l.SlopePerDay*xs[i])
		sse += r * r
	}
	l.ResidualStdErr = math.Sqrt(sse / float64(n-2))
	return l, true
}

// At is the line's value at t.
func (l Line) At(t time.Time) float64 {
	return l.Intercept + l.SlopePerDay*days(t.Sub(l.Origin))
}

// LowerBound is the one-sided 95% lower confidence bound of the line's
// value at t.
func (l Line) LowerBound(t time.Time) float64 {
	x := days(t.Sub(l.Origin))
	dx := x - l.meanX
	se := l.ResidualStdErr * math.Sqrt(1/float64(l.N)+dx*dx/l.sxx)
	return l.At(t) - tQuantile95(l.N-2)*se
}

// Reaches is when the line reaches value, if it rises and reaches it after
// from.
func (l Line) Reaches(value float64, from time.Time) (time.Time, bool) {
	if l.SlopePerDay <= 0 || l.At(from) >= value {
		return time.Time{}, false
	}
	x := (value - l.Intercept) / l.SlopePerDay
	return l.Origin.Add(time.Duration(x * float64(24*time.Hour))), true
}

func days(d time.Duration) float64 { return d.Hours() / 24 }

// t95 are Student's t distribution's 0.95 quantiles for 1 to 30 degrees of
// freedom.
var t95 = [...]float64{
	6.314, 2.920, 2.353, 2.132, 2.015, 1.943, 1.895, 1.860, 1.833, 1.812,
	1.796, 1.782, 1.771, 1.761, 1.753, 1.746, 1.740, 1.734, 1.729, 1.725,
	1.721, 1.717, 1.714, 1.711, 1.708, 1.706, 1.703, 1.701, 1.699, 1.697,
}

// tQuantile95 is Student's t 0.95 quantile for df degrees of freedom;
// past the table, the quantile of the next tabulated degrees of freedom
// below df (a little larger: the bound stays on the safe side).
func tQuantile95(df int) float64 {
	switch {
	case df < 1:
		return math.Inf(1)
	case df <= len(t95):
		return t95[df-1]
	case df < 40:
		return t95[len(t95)-1]
	case df < 60:
		return 1.684 // 40
	case df < 120:
		return 1.671 // 60
	}
	return 1.658 // 120
}
