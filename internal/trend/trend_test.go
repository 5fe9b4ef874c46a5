package trend

import (
	"math"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 3, 0, 0, 0, time.UTC)

const day = 24 * time.Hour

// nightly makes one point a night, starting at t0, with the values given.
func nightly(values ...float64) []Point {
	points := make([]Point, len(values))
	for i, v := range values {
		points[i] = Point{Time: t0.Add(time.Duration(i) * day), Value: v}
	}
	return points
}

func near(a, b, tolerance float64) bool { return math.Abs(a-b) <= tolerance }

func TestNoLineThroughTooFewOrSimultaneousPoints(t *testing.T) {
	tests := []struct {
		name   string
		points []Point
	}{
		{"none", nil},
		{"one run", nightly(60)},
		{"two runs", nightly(60, 90)},
		{"three runs at the same moment", []Point{{t0, 60}, {t0, 70}, {t0, 80}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if l, ok := Fit(tt.points); ok {
				t.Errorf("Fit = %+v, want no line", l)
			}
		})
	}
}

func TestTheLineAndItsBound(t *testing.T) {
	ahead := func(d time.Duration) time.Time { return t0.Add(d) }
	tests := []struct {
		name              string
		points            []Point
		at                time.Time
		wantSlope         float64 // per day
		wantValue         float64
		wantLower         float64 // the bound, or
		wantLowerBelow    float64 // a value the bound must stay below (noisy runs)
		wantLowerAbove    float64 // a value the bound must stay above (a clear rise)
		tolerance         float64
		wantResidualAbove float64
	}{
		{
			// x̄ = 1, ȳ = 2, Sxx = 2, Sxy = 1: b = 0.5, a = 1.5; residuals
			// -0.5, 1, -0.5: s = √1.5. At x = 3: ŷ = 3, and the bound is
			// 3 − t(1) · s · √(1/3 + 4/2) = 3 − 6.314 · 1.22474 · 1.52753.
			name: "three points, by hand", points: nightly(1, 3, 2), at: ahead(3 * day),
			wantSlope: 0.5, wantValue: 3, wantLower: 3 - 6.314*math.Sqrt(1.5)*math.Sqrt(1.0/3+2), tolerance: 1e-9,
		},
		{
			name: "flat: the same RTO every night", points: nightly(60, 60, 60, 60, 60), at: ahead(34 * day),
			wantSlope: 0, wantValue: 60, wantLower: 60, tolerance: 1e-9,
		},
		{
			name: "rising steadily by 2s a night", points: nightly(60, 62, 64, 66, 68, 70), at: ahead(35 * day),
			wantSlope: 2, wantValue: 130, wantLower: 130, tolerance: 1e-9,
		},
		{
			// 100s ± 10s around a flat line: the point estimate stays near
			// 100s, and the bound a month ahead is well below it.
			name: "noisy but flat", points: nightly(110, 90, 90, 110, 105, 95, 95, 105, 100, 100), at: ahead(39 * day),
			wantSlope: 0, wantValue: 100, wantLowerBelow: 80, tolerance: 10, wantResidualAbove: 5,
		},
		{
			// 3s a night with ±5s of noise over a month: the trend is clear
			// and the bound a month ahead is above the last night's RTO.
			name: "noisy and rising",
			points: func() []Point {
				p := nightly()
				for i := range 30 {
					noise := []float64{5, -4, 2, -5, 3, 0, -3, 4, -2, 1}[i%10]
					p = append(p, Point{Time: t0.Add(time.Duration(i) * day), Value: 100 + 3*float64(i) + noise})
				}
				return p
			}(),
			at: ahead(59 * day), wantSlope: 3, wantValue: 277, wantLowerAbove: 187, tolerance: 6, wantResidualAbove: 2,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, ok := Fit(tt.points)
			if !ok {
				t.Fatal("no line")
			}
			if l.N != len(tt.points) {
				t.Errorf("N = %d, want %d", l.N, len(tt.points))
			}
			slopeTolerance := tt.tolerance
			if slopeTolerance > 0.2 {
				slopeTolerance = 0.2
			}
			if !near(l.SlopePerDay, tt.wantSlope, slopeTolerance) {
				t.Errorf("slope %.4f/day, want %.4f", l.SlopePerDay, tt.wantSlope)
			}
			if got := l.At(tt.at); !near(got, tt.wantValue, tt.tolerance) {
				t.Errorf("value ahead %.4f, want %.4f", got, tt.wantValue)
			}
			lower := l.LowerBound(tt.at)
			switch {
			case tt.wantLowerBelow != 0:
				if lower >= tt.wantLowerBelow {
					t.Errorf("lower bound %.2f, want below %.2f: noise must not look like a trend", lower, tt.wantLowerBelow)
				}
			case tt.wantLowerAbove != 0:
				if lower <= tt.wantLowerAbove {
					t.Errorf("lower bound %.2f, want above %.2f: a clear rise must show", lower, tt.wantLowerAbove)
				}
			default:
				if !near(lower, tt.wantLower, 1e-9) {
					t.Errorf("lower bound %.6f, want %.6f", lower, tt.wantLower)
				}
			}
			if lower > l.At(tt.at)+1e-9 {
				t.Errorf("lower bound %.4f above the line %.4f", lower, l.At(tt.at))
			}
			if l.ResidualStdErr < tt.wantResidualAbove {
				t.Errorf("residual standard error %.3f, want at least %.3f", l.ResidualStdErr, tt.wantResidualAbove)
			}
		})
	}
}

func TestMoreRunsNarrowTheBound(t *testing.T) {
	noise := []float64{4, -3, 1, -4, 2, 0, -2, 3, -1, 0}
	rising := func(n int) []Point {
		var p []Point
		for i := range n {
			p = append(p, Point{Time: t0.Add(time.Duration(i) * day), Value: 100 + 2*float64(i) + noise[i%len(noise)]})
		}
		return p
	}
	few, _ := Fit(rising(4))
	many, _ := Fit(rising(30))
	horizon := 30 * day
	gapFew := few.At(t0.Add(3*day+horizon)) - few.LowerBound(t0.Add(3*day+horizon))
	gapMany := many.At(t0.Add(29*day+horizon)) - many.LowerBound(t0.Add(29*day+horizon))
	if gapMany >= gapFew {
		t.Errorf("the bound is %.1fs under the line after 30 runs and %.1fs after 4; want it narrower with more runs", gapMany, gapFew)
	}
}

func TestWhenTheLineReachesATarget(t *testing.T) {
	rising, _ := Fit(nightly(60, 62, 64, 66))
	flat, _ := Fit(nightly(60, 60, 60))
	falling, _ := Fit(nightly(66, 64, 62, 60))
	tests := []struct {
		name   string
		line   Line
		target float64
		want   time.Time
		ok     bool
	}{
		{"rising towards it", rising, 120, t0.Add(30 * day), true},
		{"rising, already past it", rising, 62, time.Time{}, false},
		{"flat below it", flat, 120, time.Time{}, false},
		{"falling", falling, 120, time.Time{}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.line.Reaches(tt.target, t0.Add(3*day))
			if ok != tt.ok || ok && got.Sub(tt.want).Abs() > time.Second {
				t.Errorf("Reaches = %s, %v; want %s, %v", got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestStudentsQuantileFallsWithDegreesOfFreedom(t *testing.T) {
	previous := math.Inf(1)
	for df := 1; df <= 200; df++ {
		q := tQuantile95(df)
		if q > previous || q < 1.645 {
			t.Fatalf("t(%d) = %.3f after t(%d) = %.3f: want a falling sequence above the normal's 1.645", df, q, df-1, previous)
		}
		previous = q
	}
}
