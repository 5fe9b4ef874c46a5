package validate

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzExpectation feeds a check's expectation (equals, min, max, regex,
// notEmpty, each given or not) and a query's answer to Validate, Describe
// and Evaluate. Nothing may panic; an expectation Validate accepts never
// makes Evaluate complain about the expectation itself; a value equal to a
// bound passes that bound (bounds are inclusive), and a value the
// expectation holds for is described within the value's limits. `go test`
// runs the seeds of testdata/fuzz; `make fuzz` looks for more.
func FuzzExpectation(f *testing.F) {
	f.Fuzz(func(t *testing.T, equals, minimum, maximum, regex string, given uint8, notEmpty bool, value string, null, found bool) {
		e := Expectation{NotEmpty: notEmpty}
		for i, field := range []struct {
			to    **string
			value string
		}{{&e.Equals, equals}, {&e.Min, minimum}, {&e.Max, maximum}, {&e.Regex, regex}} {
			if given&(1<<i) != 0 {
				*field.to = &field.value
			}
		}
		check := Check{Name: "fuzzed", SQL: "SELECT 1", Expect: e}
		valid := check.Validate(0) == nil
		described := e.Describe()
		var answer *string
		if !null {
			answer = &value
		}
		why := e.Evaluate(answer, found)
		if !valid {
			return
		}
		if strings.HasPrefix(why, "bad regex") || strings.HasPrefix(why, "min ") || strings.HasPrefix(why, "max ") {
			t.Errorf("Validate accepted %+v (%s), but Evaluate says %q", e, described, why)
		}
		if !utf8.ValidString(why) && utf8.ValidString(value) && utf8.ValidString(described) {
			t.Errorf("Evaluate's message %q is not UTF-8 although its inputs are", why)
		}
		if !found || null {
			return
		}
		// Inclusive bounds: the bound itself passes the bound.
		for _, b := range []struct {
			set   func(*Expectation, *string)
			value *string
		}{
			{func(x *Expectation, v *string) { x.Min = v }, e.Min},
			{func(x *Expectation, v *string) { x.Max = v }, e.Max},
		} {
			if b.value == nil {
				continue
			}
			only := Expectation{}
			b.set(&only, b.value)
			if got := only.Evaluate(b.value, true); got != "" {
				t.Errorf("the bound %q does not pass itself: %s", *b.value, got)
			}
		}
		if e.Equals != nil {
			if got := (Expectation{Equals: e.Equals}).Evaluate(e.Equals, true); got != "" {
				t.Errorf("equals %q does not hold for itself: %s", *e.Equals, got)
			}
		}
	})
}
