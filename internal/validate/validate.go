// Package validate runs a drill's checks against a restored PostgreSQL
// database: SQL queries with an expectation on their first value, the
// built-ins TablesReadable and Amcheck, and the freshness query behind the
// data RPO. A Session is one connection to the restored database that runs
// them.
//
// The restored data is production data. Each check runs in READ ONLY
// transactions of its own, with a statement timeout on every statement, and
// they are rolled back; SQL checks use the extended query protocol, so a check
// is exactly one statement and cannot end the read-only transaction and carry
// on writing. The package logs nothing; a Result holds a check's first value
// (shortened), and the built-ins report only counts. The only write is
// Amcheck's CREATE EXTENSION amcheck in the throwaway copy, committed in a
// transaction of its own when the extension is missing.
package validate

import (
	"context"
	"time"
)

// Built-in checks.
const (
	// BuiltinTablesReadable reads every user table and materialized view end
	// to end, TOAST included.
	BuiltinTablesReadable = "TablesReadable"
	// BuiltinAmcheck verifies every valid btree index of user tables with
	// amcheck's bt_index_check(heapallindexed => true).
	BuiltinAmcheck = "Amcheck"
)

// DefaultCheckTimeout is a check's statement timeout when Check.Timeout is 0.
const DefaultCheckTimeout = time.Minute

// Check is one validation: either SQL with an Expectation, or a Builtin.
type Check struct {
	Name    string
	SQL     string        // one read-only statement
	Builtin string        // BuiltinTablesReadable or BuiltinAmcheck
	Expect  Expectation   // for SQL checks
	Timeout time.Duration // statement_timeout of each of the check's statements; 0 means DefaultCheckTimeout
}

// Result is the outcome of one check.
type Result struct {
	Name     string
	Passed   bool
	Value    string        // the observed value, "NULL", or a built-in's summary such as "12 tables, 10342 rows"
	Expected string        // the expectation in words, e.g. ">= 1000" or "every table readable"
	Duration time.Duration // how long the check ran
	Message  string        // why it failed; "" when it passed
}

// Run runs checks in order and returns one Result per check. A failing check
// does not stop the others, and a check's error (a missing table, a timeout,
// an invalid check) is that check's failure. Each check runs in its own READ
// ONLY transaction with SET LOCAL statement_timeout and is rolled back
// (Amcheck first creates its extension when it is missing). When ctx ends,
// the remaining checks are not run and fail with "not run: <ctx err>".
func (s *Session) Run(ctx context.Context, checks []Check) []Result {
	results := make([]Result, 0, len(checks))
	for i, c := range checks {
		r := Result{Name: c.Name, Expected: expected(c)}
		if err := ctx.Err(); err != nil {
			r.Message = "not run: " + err.Error()
			results = append(results, r)
			continue
		}
		if err := c.Validate(i); err != nil {
			r.Message = "invalid check: " + err.Error()
			results = append(results, r)
			continue
		}
		start := time.Now()
		switch c.Builtin {
		case BuiltinTablesReadable:
			r.Value, r.Message = s.tablesReadable(ctx, timeoutOf(c))
		case BuiltinAmcheck:
			r.Value, r.Message = s.amcheck(ctx, timeoutOf(c))
		default:
			r.Value, r.Message = s.sqlCheck(ctx, c)
		}
		r.Duration = time.Since(start)
		r.Passed = r.Message == ""
		results = append(results, r)
	}
	return results
}

// expected is a check's Result.Expected.
func expected(c Check) string {
	switch c.Builtin {
	case BuiltinTablesReadable:
		return "every table readable"
	case BuiltinAmcheck:
		return "every btree index verified"
	}
	return c.Expect.Describe()
}

func timeoutOf(c Check) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultCheckTimeout
}
