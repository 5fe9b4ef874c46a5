package validate

import (
	"cmp"
	"strings"
	"testing"
	"time"
)

func TestSQLChecks(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	tests := []struct {
		check   Check
		passed  bool
		value   string
		message string        // a part of Message; "" when passed
		within  time.Duration // the longest the check may take; 0 means 30s
	}{
		{check: Check{Name: "enough-orders", SQL: "SELECT count(*) FROM orders", Expect: Expectation{Min: s("1000")}}, passed: true, value: "1000"},
		{check: Check{Name: "too-few-orders", SQL: "SELECT count(*) FROM orders", Expect: Expectation{Min: s("1001")}}, value: "1000", message: "value 1000 < min 1001"},
		{check: Check{Name: "missing-table", SQL: "SELECT count(*) FROM invoices", Expect: Expectation{Min: s("1")}}, message: `relation "invoices" does not exist (SQLSTATE 42P01)`},
		{check: Check{Name: "runs-after-a-failure", SQL: "SELECT 'ok'", Expect: Expectation{Regex: s("^ok$")}}, passed: true, value: "ok"},
		{check: Check{Name: "sneaky-insert", SQL: "INSERT INTO orders (note, created_at) VALUES ('x', now()) RETURNING 1", Expect: Expectation{Equals: s("1")}}, message: "cannot execute INSERT in a read-only transaction (SQLSTATE 25006)"},
		{check: Check{Name: "sneaky-nextval", SQL: "SELECT pg_catalog.nextval('orders_id_seq')", Expect: Expectation{Min: s("1")}}, message: "read-only transaction (SQLSTATE 25006)"},
		{check: Check{Name: "escape-the-transaction", SQL: "COMMIT; DELETE FROM orders; SELECT 1", Expect: Expectation{Equals: s("1")}}, message: "cannot insert multiple commands into a prepared statement (SQLSTATE 42601)"},
		{check: Check{Name: "slow", SQL: "SELECT pg_sleep(2)", Expect: Expectation{NotEmpty: true}, Timeout: 200 * time.Millisecond}, message: "canceling statement due to statement timeout (SQLSTATE 57014); the check's timeout is 200ms", within: 1500 * time.Millisecond},
		{check: Check{Name: "numeric", SQL: "SELECT 1000.0::numeric", Expect: Expectation{Equals: s("1000")}}, passed: true, value: "1000.0"},
		{check: Check{Name: "boolean", SQL: "SELECT count(*) = 1000 FROM orders", Expect: Expectation{Equals: s("true")}}, passed: true, value: "true"},
		{check: Check{Name: "toasted", SQL: "SELECT min(length(note)) FROM orders", Expect: Expectation{Equals: s("6400")}}, passed: true, value: "6400"},
		{check: Check{Name: "null", SQL: "SELECT NULL::text", Expect: Expectation{NotEmpty: true}}, value: "NULL", message: "the value is NULL"},
		{check: Check{Name: "no-rows", SQL: "SELECT 1 WHERE false", Expect: Expectation{NotEmpty: true}}, message: "the query returned no rows"},
		// The message names the check's position in the list: keep it 13th.
		{check: Check{Name: "invalid", SQL: "SELECT 1"}, message: "invalid check: checks[13].expect: a sql check needs an expectation"},
	}
	checks := make([]Check, len(tests))
	for i, tt := range tests {
		checks[i] = tt.check
	}
	results := sess.Run(t.Context(), checks)
	if len(results) != len(checks) {
		t.Fatalf("%d results for %d checks", len(results), len(checks))
	}
	for i, tt := range tests {
		t.Run(tt.check.Name, func(t *testing.T) {
			r := results[i]
			// An invalid check is not run, so it takes no time.
			ran := tt.check.Validate(i) == nil
			if r.Name != tt.check.Name || r.Passed != tt.passed || r.Value != tt.value || !strings.Contains(r.Message, tt.message) || (tt.passed && r.Message != "") {
				t.Errorf("got passed=%v value=%q message=%q; want passed=%v value=%q message containing %q",
					r.Passed, r.Value, r.Message, tt.passed, tt.value, tt.message)
			}
			if ran && r.Database != "drill" || !ran && r.Database != "" {
				t.Errorf("Database = %q, want the session's own when the check ran", r.Database)
			}
			if r.Expected != expected(tt.check) {
				t.Errorf("Expected = %q, want %q", r.Expected, expected(tt.check))
			}
			within := cmp.Or(tt.within, 30*time.Second)
			if (ran && r.Duration <= 0) || (!ran && r.Duration != 0) || r.Duration > within {
				t.Errorf("Duration = %s, want (0, %s]", r.Duration, within)
			}
		})
	}
	var count, last int64
	if err := sess.conn.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM orders), (SELECT last_value FROM orders_id_seq)").Scan(&count, &last); err != nil || count != 1000 || last != 1000 {
		t.Errorf("the read-only checks wrote: %d orders, sequence at %d (%v)", count, last, err)
	}
}
