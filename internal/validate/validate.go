// Package validate runs a drill's checks against a restored PostgreSQL
// database: SQL queries with expectations on their first value, and the
// built-ins TablesReadable and Amcheck, plus the freshness query behind the
// data RPO.
//
// The restored data is production data: every statement runs in a READ
// ONLY transaction with a statement timeout, and results never reach logs
// beyond what a Result holds. Only Amcheck writes, and only to create the
// amcheck extension in the throwaway copy.
package validate

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Built-in checks.
const (
	BuiltinTablesReadable = "TablesReadable"
	BuiltinAmcheck        = "Amcheck"
)

// DefaultCheckTimeout bounds a check's statements when Check.Timeout is 0.
const DefaultCheckTimeout = time.Minute

// Expectation on the first column of the first row of a check's query.
type Expectation struct {
	Equals   *string // text equality; numeric equality when both are numbers
	Min, Max *string // inclusive numeric bounds
	Regex    *string // RE2 that must match the value
	NotEmpty bool    // a row whose value is not NULL or empty
}

// Check is one validation: SQL with an Expectation, or a Builtin.
type Check struct {
	Name    string
	SQL     string
	Builtin string
	Expect  Expectation
	Timeout time.Duration
}

// Result is the outcome of one check.
type Result struct {
	Name     string
	Passed   bool
	Value    string
	Expected string
	Duration time.Duration
	Message  string
}

// Validate checks a Check's shape and names the offending field.
func (c Check) Validate(index int) error {
	field := func(f string) string { return fmt.Sprintf("checks[%d].%s", index, f) }
	switch {
	case (c.SQL == "") == (c.Builtin == ""):
		return fmt.Errorf("%s: give exactly one of sql or builtin", field("sql"))
	case c.Builtin != "" && c.Builtin != BuiltinTablesReadable && c.Builtin != BuiltinAmcheck:
		return fmt.Errorf("%s: unknown builtin %q; use %s or %s", field("builtin"), c.Builtin, BuiltinTablesReadable, BuiltinAmcheck)
	case c.SQL != "" && c.Expect == (Expectation{}):
		return fmt.Errorf("%s: a sql check needs an expectation (equals, min, max, regex or notEmpty)", field("expect"))
	}
	for name, v := range map[string]*string{"min": c.Expect.Min, "max": c.Expect.Max} {
		if v != nil {
			if _, ok := number(*v); !ok {
				return fmt.Errorf("%s: %q is not a number", field("expect."+name), *v)
			}
		}
	}
	if c.Expect.Regex != nil {
		if _, err := regexp.Compile(*c.Expect.Regex); err != nil {
			return fmt.Errorf("%s: %v", field("expect.regex"), err)
		}
	}
	return nil
}

// Describe says the expectation in words: ">= 1000", "= 5", ...
func (e Expectation) Describe() string {
	var parts []string
	if e.Equals != nil {
		parts = append(parts, "= "+*e.Equals)
	}
	if e.Min != nil {
		parts = append(parts, ">= "+*e.Min)
	}
	if e.Max != nil {
		parts = append(parts, "<= "+*e.Max)
	}
	if e.Regex != nil {
		parts = append(parts, "matches "+*e.Regex)
	}
	if e.NotEmpty {
		parts = append(parts, "not empty")
	}
	return strings.Join(parts, " and ")
}

// Evaluate compares a query's value (nil for NULL, found=false without a
// row) with the expectation and returns why it does not hold, or "".
func (e Expectation) Evaluate(value *string, found bool) string {
	if !found {
		return "the query returned no rows"
	}
	if value == nil {
		if e.NotEmpty || e.Equals != nil || e.Min != nil || e.Max != nil || e.Regex != nil {
			return "the value is NULL"
		}
		return ""
	}
	v := *value
	if e.NotEmpty && strings.TrimSpace(v) == "" {
		return "the value is empty"
	}
	if e.Equals != nil {
		a, aok := number(v)
		b, bok := number(*e.Equals)
		if aok && bok {
			if a.Cmp(b) != 0 {
				return fmt.Sprintf("value %s is not %s", v, *e.Equals)
			}
		} else if v != *e.Equals {
			return fmt.Sprintf("value %q is not %q", v, *e.Equals)
		}
	}
	for _, bound := range []struct {
		limit *string
		bad   int
		word  string
	}{{e.Min, -1, "<"}, {e.Max, 1, ">"}} {
		if bound.limit == nil {
			continue
		}
		n, ok := number(v)
		if !ok {
			return fmt.Sprintf("value %q is not a number", v)
		}
		limit, _ := number(*bound.limit)
		if n.Cmp(limit) == bound.bad {
			return fmt.Sprintf("value %s %s %s", v, bound.word, *bound.limit)
		}
	}
	if e.Regex != nil {
		re, err := regexp.Compile(*e.Regex)
		if err != nil {
			return "bad regex: " + err.Error()
		}
		if !re.MatchString(v) {
			return fmt.Sprintf("value %q does not match %s", v, *e.Regex)
		}
	}
	return ""
}

func number(s string) (*big.Float, bool) {
	f, ok := new(big.Float).SetString(strings.TrimSpace(s))
	return f, ok
}

// Run runs the checks in order; each check's failure is its own. A done
// ctx stops early and marks the rest as not run.
func Run(ctx context.Context, conn *pgx.Conn, checks []Check) []Result {
	results := make([]Result, 0, len(checks))
	for _, c := range checks {
		if err := ctx.Err(); err != nil {
			results = append(results, Result{Name: c.Name, Expected: expected(c), Message: "not run: " + err.Error()})
			continue
		}
		start := time.Now()
		var r Result
		switch c.Builtin {
		case BuiltinTablesReadable:
			r = tablesReadable(ctx, conn, c)
		case BuiltinAmcheck:
			r = amcheck(ctx, conn, c)
		default:
			r = sqlCheck(ctx, conn, c)
		}
		r.Name, r.Expected, r.Duration = c.Name, expected(c), time.Since(start)
		results = append(results, r)
	}
	return results
}

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

// readOnly runs f in a READ ONLY transaction with a statement timeout and
// rolls it back.
func readOnly(ctx context.Context, conn *pgx.Conn, timeout time.Duration, f func(pgx.Tx) error) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read-only: nothing to keep
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", timeout.Milliseconds())); err != nil {
		return err
	}
	return f(tx)
}

func sqlCheck(ctx context.Context, conn *pgx.Conn, c Check) Result {
	var value *string
	found := false
	err := readOnly(ctx, conn, timeoutOf(c), func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, c.SQL, pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			return err
		}
		defer rows.Close()
		if rows.Next() {
			found = true
			vals, err := rows.Values()
			if err != nil {
				return err
			}
			if len(vals) > 0 && vals[0] != nil {
				s := text(vals[0])
				value = &s
			}
		}
		return rows.Err()
	})
	if err != nil {
		return Result{Message: describeError(err)}
	}
	r := Result{}
	if value != nil {
		r.Value = *value
	} else if found {
		r.Value = "NULL"
	}
	if why := c.Expect.Evaluate(value, found); why != "" {
		r.Message = why
		return r
	}
	r.Passed = true
	return r
}

func text(v any) string {
	switch t := v.(type) {
	case time.Time:
		return t.UTC().Format(time.RFC3339Nano)
	case []byte:
		return string(t)
	case fmt.Stringer:
		return t.String()
	}
	return fmt.Sprint(v)
}

// userRelations lists ordinary tables and materialised views outside the
// system schemas.
const userRelations = `
SELECT n.nspname, c.relname
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'm') AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%'
ORDER BY 1, 2`

// tablesReadable reads every user table end to end, TOAST included.
func tablesReadable(ctx context.Context, conn *pgx.Conn, c Check) Result {
	var tables, rowsRead int64
	var failed string
	err := readOnly(ctx, conn, timeoutOf(c), func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, userRelations)
		if err != nil {
			return err
		}
		names, err := pgx.CollectRows(rows, pgx.RowToStructByPos[struct{ Schema, Name string }])
		if err != nil {
			return err
		}
		for _, n := range names {
			id := pgx.Identifier{n.Schema, n.Name}.Sanitize()
			var count, size int64
			if err := tx.QueryRow(ctx, "SELECT count(*), coalesce(sum(length(t::text)), 0) FROM "+id+" t").Scan(&count, &size); err != nil {
				failed = id
				return err
			}
			tables++
			rowsRead += count
		}
		return nil
	})
	r := Result{Value: fmt.Sprintf("%d tables, %d rows", tables, rowsRead)}
	if err != nil {
		r.Message = describeError(err)
		if failed != "" {
			r.Message = "table " + failed + ": " + r.Message
		}
		return r
	}
	r.Passed = true
	return r
}

// amcheck verifies every valid btree index of user tables, heap included.
func amcheck(ctx context.Context, conn *pgx.Conn, c Check) Result {
	ectx, cancel := context.WithTimeout(ctx, timeoutOf(c))
	defer cancel()
	if _, err := conn.Exec(ectx, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
		return Result{Message: "cannot create the amcheck extension in the restored copy (is postgresql-contrib in the image?): " + describeError(err)}
	}
	var verified int
	var failed string
	err := readOnly(ctx, conn, timeoutOf(c), func(tx pgx.Tx) error {
		type index struct {
			OID  uint32
			Name string
		}
		rows, err := tx.Query(ctx, `
SELECT c.oid, quote_ident(n.nspname) || '.' || quote_ident(c.relname)
FROM pg_index i
JOIN pg_class c ON c.oid = i.indexrelid
JOIN pg_class t ON t.oid = i.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND i.indisvalid AND i.indisready AND t.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg_toast%'
ORDER BY 2`)
		if err != nil {
			return err
		}
		indexes, err := pgx.CollectRows(rows, pgx.RowToStructByPos[index])
		if err != nil {
			return err
		}
		for _, ix := range indexes {
			if _, err := tx.Exec(ctx, "SELECT bt_index_check(index => $1::regclass, heapallindexed => true)", ix.OID); err != nil {
				failed = ix.Name
				return err
			}
			verified++
		}
		return nil
	})
	r := Result{Value: fmt.Sprintf("%d indexes verified", verified)}
	if err != nil {
		r.Message = describeError(err)
		if failed != "" {
			r.Message = "index " + failed + ": " + r.Message
		}
		return r
	}
	r.Passed = true
	return r
}

// Freshness runs the freshness query and returns the newest write it
// reports.
func Freshness(ctx context.Context, conn *pgx.Conn, sql string, timeout time.Duration) (time.Time, error) {
	var newest *time.Time
	err := readOnly(ctx, conn, timeout, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, sql).Scan(&newest)
	})
	switch {
	case errors.Is(err, pgx.ErrNoRows):
		return time.Time{}, errors.New("the freshness query returned no rows")
	case err != nil:
		return time.Time{}, fmt.Errorf("freshness query: %s", describeError(err))
	case newest == nil:
		return time.Time{}, errors.New("the freshness query returned NULL (is the table empty?)")
	}
	return *newest, nil
}

// describeError keeps PostgreSQL's message and SQLSTATE.
func describeError(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pg.Message, pg.Code)
	}
	return err.Error()
}
