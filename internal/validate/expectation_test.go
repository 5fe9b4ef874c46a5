package validate

import (
	"strings"
	"testing"
)

func s(v string) *string { return &v }

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name    string
		expect  Expectation
		value   *string
		found   bool
		wantErr string // "" = holds
	}{
		{"min holds", Expectation{Min: s("1000")}, s("1200"), true, ""},
		{"min is inclusive", Expectation{Min: s("1000")}, s("1000"), true, ""},
		{"below min", Expectation{Min: s("1000")}, s("999"), true, "value 999 < 1000"},
		{"max is inclusive", Expectation{Max: s("5")}, s("5"), true, ""},
		{"above max", Expectation{Max: s("5")}, s("5.5"), true, "value 5.5 > 5"},
		{"min on text", Expectation{Min: s("1")}, s("abc"), true, `value "abc" is not a number`},
		{"equals numerically", Expectation{Equals: s("1000")}, s("1000.0"), true, ""},
		{"equals as text", Expectation{Equals: s("ok")}, s("ok"), true, ""},
		{"not equal", Expectation{Equals: s("999")}, s("1200"), true, "value 1200 is not 999"},
		{"text not equal", Expectation{Equals: s("ok")}, s("OK"), true, `value "OK" is not "ok"`},
		{"regex matches", Expectation{Regex: s(`^v\d+\.\d+$`)}, s("v16.4"), true, ""},
		{"regex does not match", Expectation{Regex: s(`^v\d+$`)}, s("v16.4"), true, "does not match"},
		{"not empty holds", Expectation{NotEmpty: true}, s("x"), true, ""},
		{"empty string", Expectation{NotEmpty: true}, s("  "), true, "the value is empty"},
		{"NULL", Expectation{NotEmpty: true}, nil, true, "the value is NULL"},
		{"no rows", Expectation{NotEmpty: true}, nil, false, "no rows"},
		{"all conditions must hold", Expectation{Min: s("1"), Max: s("10")}, s("11"), true, "value 11 > 10"},
		{"big numbers compare exactly", Expectation{Min: s("9007199254740993")}, s("9007199254740992"), true, "<"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.expect.Evaluate(tt.value, tt.found)
			if (got == "") != (tt.wantErr == "") || !strings.Contains(got, tt.wantErr) {
				t.Errorf("Evaluate = %q, want %q", got, tt.wantErr)
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
	}
	for _, tt := range tests {
		if got := tt.expect.Describe(); got != tt.want {
			t.Errorf("Describe = %q, want %q", got, tt.want)
		}
	}
}

func TestCheckValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  string // "" = valid
	}{
		{"sql with min", Check{Name: "a", SQL: "SELECT 1", Expect: Expectation{Min: s("1")}}, ""},
		{"builtin", Check{Builtin: BuiltinAmcheck}, ""},
		{"both", Check{SQL: "SELECT 1", Builtin: BuiltinAmcheck}, "checks[3].sql: give exactly one of sql or builtin"},
		{"neither", Check{}, "checks[3].sql: give exactly one"},
		{"unknown builtin", Check{Builtin: "Fsck"}, `checks[3].builtin: unknown builtin "Fsck"`},
		{"no expectation", Check{SQL: "SELECT 1"}, "checks[3].expect: a sql check needs an expectation"},
		{"bad min", Check{SQL: "SELECT 1", Expect: Expectation{Min: s("lots")}}, `checks[3].expect.min: "lots" is not a number`},
		{"bad regex", Check{SQL: "SELECT 1", Expect: Expectation{Regex: s("(")}}, "checks[3].expect.regex"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check.Validate(3)
			if tt.want == "" {
				if err != nil {
					t.Errorf("Validate = %v, want valid", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}
