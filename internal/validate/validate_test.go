package validate

import (
	"context"
	"reflect"
	"testing"
)

func TestExpected(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  string
	}{
		{"tables", Check{Builtin: BuiltinTablesReadable}, "every table readable"},
		{"amcheck", Check{Builtin: BuiltinAmcheck}, "every table and btree index verified"},
		{"sql", Check{SQL: "SELECT 1", Expect: Expectation{Min: s("1")}}, ">= 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := expected(tt.check); got != tt.want {
				t.Errorf("expected = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results := sess.Run(ctx, []Check{
		{Name: "a", SQL: "SELECT 1", Expect: Expectation{Equals: s("1")}},
		{Name: "b", Builtin: BuiltinTablesReadable},
	})
	for i, want := range []Result{
		{Name: "a", Expected: "= 1", Message: "not run: context canceled"},
		{Name: "b", Expected: "every table readable", Message: "not run: context canceled"},
	} {
		if !reflect.DeepEqual(results[i], want) {
			t.Errorf("results[%d] = %+v, want %+v", i, results[i], want)
		}
	}
	if got := sess.Run(t.Context(), []Check{{Name: "a", SQL: "SELECT 1", Expect: Expectation{Equals: s("1")}}}); !got[0].Passed {
		t.Errorf("the connection is unusable after a canceled run: %+v", got[0])
	}
}
