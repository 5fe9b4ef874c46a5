package validate

import (
	"testing"

	"k8s.io/utils/ptr"
)

// BenchmarkEvaluate is one check's expectation judged on its value, for
// each kind of expectation a drill names.
func BenchmarkEvaluate(b *testing.B) {
	cases := []struct {
		name   string
		expect Expectation
		value  string
	}{
		{"min on a count", Expectation{Min: ptr.To("1000")}, "20724"},
		{"min and max on a decimal", Expectation{Min: ptr.To("0.5"), Max: ptr.To("99.95")}, "42.125"},
		{"equals as numbers", Expectation{Equals: ptr.To("0")}, "0.000"},
		{"equals as text", Expectation{Equals: ptr.To("ok")}, "ok"},
		{"regex", Expectation{Regex: ptr.To(`^v\d+\.\d+$`)}, "v15.18"},
		{"not empty", Expectation{NotEmpty: true}, "orders"},
		{"a 40-digit number against min", Expectation{Min: ptr.To("1e30")}, "1234567890123456789012345678901234567890"},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if why := c.expect.Evaluate(&c.value, true); why != "" {
					b.Fatal(why)
				}
			}
		})
	}
}
