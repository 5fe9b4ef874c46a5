package validate

import (
	"strings"
	"testing"
	"time"
)

// s is a pointer to v, for the optional fields of an Expectation.
func s(v string) *string { return &v }

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		expect Expectation
		value  *string
		found  bool
		want   string // "" = holds; otherwise a part of the failure
	}{
		{"equals as text", Expectation{Equals: s("ok")}, s("ok"), true, ""},
		{"text is case sensitive", Expectation{Equals: s("ok")}, s("OK"), true, `value "OK" is not "ok"`},
		{"equals numerically", Expectation{Equals: s("1000")}, s("1000.0"), true, ""},
		{"equals with exponent", Expectation{Equals: s("1e3")}, s("1000"), true, ""},
		{"not equal numbers", Expectation{Equals: s("999")}, s("1200"), true, "value 1200 is not 999"},
		{"number against text", Expectation{Equals: s("10")}, s("ten"), true, `value "ten" is not "10"`},
		{"hex is text, not a number", Expectation{Equals: s("16")}, s("0x10"), true, "is not"},
		{"min holds", Expectation{Min: s("1000")}, s("1200"), true, ""},
		{"min is inclusive", Expectation{Min: s("1000")}, s("1000"), true, ""},
		{"below min", Expectation{Min: s("1000")}, s("999"), true, "value 999 < min 1000"},
		{"max is inclusive", Expectation{Max: s("5")}, s("5.000"), true, ""},
		{"above max", Expectation{Max: s("5")}, s("5.5"), true, "value 5.5 > max 5"},
		{"between", Expectation{Min: s("1"), Max: s("10")}, s("-3"), true, "value -3 < min 1"},
		{"all conditions must hold", Expectation{Min: s("1"), Max: s("10")}, s("11"), true, "value 11 > max 10"},
		{"min on text", Expectation{Min: s("1")}, s("abc"), true, `value "abc" is not a number`},
		{"max on empty", Expectation{Max: s("1")}, s(""), true, `value "" is not a number`},
		{"big numbers compare exactly", Expectation{Min: s("100000000000000000000000001")}, s("100000000000000000000000000"), true, "< min"},
		{"infinity above any max", Expectation{Max: s("1e300")}, s("Infinity"), true, "value Infinity > max 1e300"},
		{"regex matches", Expectation{Regex: s(`^v\d+\.\d+$`)}, s("v16.4"), true, ""},
		{"regex does not match", Expectation{Regex: s(`^v\d+$`)}, s("v16.4"), true, `value "v16.4" does not match ^v\d+$`},
		{"not empty holds", Expectation{NotEmpty: true}, s("x"), true, ""},
		{"empty string", Expectation{NotEmpty: true}, s(""), true, "the value is empty"},
		{"blank string", Expectation{NotEmpty: true}, s("  "), true, "the value is empty"},
		{"NULL with not empty", Expectation{NotEmpty: true}, nil, true, "the value is NULL"},
		{"NULL with min", Expectation{Min: s("0")}, nil, true, "the value is NULL"},
		{"no rows", Expectation{NotEmpty: true}, nil, false, "the query returned no rows"},
		{"no rows with equals", Expectation{Equals: s("0")}, nil, false, "no rows"},
		{"long values are shortened", Expectation{Equals: s("x")}, s(strings.Repeat("y", 1000)), true, strings.Repeat("y", maxShown) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.expect.Evaluate(tt.value, tt.found)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Errorf("Evaluate = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		expect Expectation
		want   string
	}{
		{Expectation{Min: s("1000")}, ">= 1000"},
		{Expectation{Equals: s("5")}, "= 5"},
		{Expectation{Min: s("1"), Max: s("9")}, ">= 1 and <= 9"},
		{Expectation{Regex: s("^ok$")}, "matches ^ok$"},
		{Expectation{NotEmpty: true}, "not empty"},
		{Expectation{Equals: s("a"), NotEmpty: true}, "= a and not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.expect.Describe(); got != tt.want {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestCheckValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  string // "" = valid; otherwise the whole error text
	}{
		{"sql with min", Check{Name: "a", SQL: "SELECT 1", Expect: Expectation{Min: s("1")}}, ""},
		{"sql with not empty", Check{SQL: "SELECT 1", Expect: Expectation{NotEmpty: true}}, ""},
		{"builtin", Check{Builtin: BuiltinAmcheck}, ""},
		{"tables builtin", Check{Builtin: BuiltinTablesReadable, Timeout: time.Second}, ""},
		{"both", Check{SQL: "SELECT 1", Builtin: BuiltinAmcheck}, "checks[2].sql: give exactly one of sql or builtin, not both"},
		{"neither", Check{Name: "x"}, "checks[2].sql: give exactly one of sql or builtin"},
		{"blank sql", Check{SQL: "  \n", Expect: Expectation{NotEmpty: true}}, "checks[2].sql: give exactly one of sql or builtin"},
		{"unknown builtin", Check{Builtin: "Fsck"}, `checks[2].builtin: unknown builtin "Fsck"; use TablesReadable or Amcheck`},
		{"no expectation", Check{SQL: "SELECT 1"}, "checks[2].expect: a sql check needs an expectation (equals, min, max, regex or notEmpty)"},
		{"bad min", Check{SQL: "SELECT 1", Expect: Expectation{Min: s("abc")}}, `checks[2].expect.min: "abc" is not a number`},
		{"bad max", Check{SQL: "SELECT 1", Expect: Expectation{Max: s("1,5")}}, `checks[2].expect.max: "1,5" is not a number`},
		{"min above max", Check{SQL: "SELECT 1", Expect: Expectation{Min: s("10"), Max: s("9.5")}}, "checks[2].expect: min 10 is greater than max 9.5, so no value can pass"},
		{"bad regex", Check{SQL: "SELECT 1", Expect: Expectation{Regex: s("(")}}, "checks[2].expect.regex: error parsing regexp: missing closing ): `(`"},
		{"negative timeout", Check{Builtin: BuiltinAmcheck, Timeout: -time.Second}, "checks[2].timeout: -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check.Validate(2)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want valid", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
