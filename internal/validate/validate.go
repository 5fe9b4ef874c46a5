// Package validate runs a drill's checks against a restored PostgreSQL
// database: SQL queries with an expectation on their first value, the
// built-ins TablesReadable and Amcheck, and the freshness query behind the
// data RPO.
//
// The restored data is production data. Every check statement runs in its
// own READ ONLY transaction with a statement timeout and is rolled back; SQL
// checks use the extended query protocol, so a check is exactly one statement
// and cannot end the read-only transaction and carry on writing. The package
// logs nothing; a Result holds a check's first value (shortened), and the
// built-ins report only counts. The only write is Amcheck's CREATE EXTENSION
// amcheck in the throwaway copy, when the extension is missing.
package validate

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
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

// maxShown bounds how many characters of a value a Result shows.
const maxShown = 200

// Expectation on the first column of the first row of a check's query,
// compared as text or number. All given conditions must hold.
type Expectation struct {
	Equals   *string // exact text equality; numeric equality when both sides are numbers ("1000" == "1000.0")
	Min, Max *string // inclusive numeric bounds; a non-numeric value fails
	Regex    *string // RE2 that must match the text value
	NotEmpty bool    // at least one row and a non-NULL, non-blank value
}

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

// Validate checks a Check's shape and returns an error naming the field, for
// example `checks[2].expect.min: "abc" is not a number`. index is the check's
// position in the drill's list.
func (c Check) Validate(index int) error {
	field := func(f string) string { return fmt.Sprintf("checks[%d].%s", index, f) }
	hasSQL, hasBuiltin := strings.TrimSpace(c.SQL) != "", c.Builtin != ""
	switch {
	case hasSQL && hasBuiltin:
		return fmt.Errorf("%s: give exactly one of sql or builtin, not both", field("sql"))
	case !hasSQL && !hasBuiltin:
		return fmt.Errorf("%s: give exactly one of sql or builtin", field("sql"))
	case hasBuiltin && c.Builtin != BuiltinTablesReadable && c.Builtin != BuiltinAmcheck:
		return fmt.Errorf("%s: unknown builtin %q; use %s or %s", field("builtin"), c.Builtin, BuiltinTablesReadable, BuiltinAmcheck)
	case hasSQL && c.Expect == (Expectation{}):
		return fmt.Errorf("%s: a sql check needs an expectation (equals, min, max, regex or notEmpty)", field("expect"))
	case c.Timeout < 0:
		return fmt.Errorf("%s: %s is negative", field("timeout"), c.Timeout)
	}
	bounds := []struct {
		name  string
		value *string
	}{{"min", c.Expect.Min}, {"max", c.Expect.Max}}
	for _, b := range bounds {
		if b.value == nil {
			continue
		}
		if _, ok := parseNumber(*b.value); !ok {
			return fmt.Errorf("%s: %q is not a number", field("expect."+b.name), *b.value)
		}
	}
	if c.Expect.Min != nil && c.Expect.Max != nil {
		lo, _ := parseNumber(*c.Expect.Min)
		hi, _ := parseNumber(*c.Expect.Max)
		if lo.cmp(hi) > 0 {
			return fmt.Errorf("%s: min %s is greater than max %s, so no value can pass", field("expect"), *c.Expect.Min, *c.Expect.Max)
		}
	}
	if c.Expect.Regex != nil {
		if _, err := regexp.Compile(*c.Expect.Regex); err != nil {
			return fmt.Errorf("%s: %v", field("expect.regex"), err)
		}
	}
	return nil
}

// Describe says the expectation in words: ">= 1000", "= 5",
// ">= 1 and <= 9", "matches ^ok$", "not empty".
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

// Evaluate compares a query's first value with the expectation: value is nil
// for NULL, found is false when the query returned no rows. It returns why
// the expectation does not hold, or "" when it holds.
func (e Expectation) Evaluate(value *string, found bool) string {
	if !found {
		return "the query returned no rows"
	}
	if value == nil {
		if e == (Expectation{}) {
			return ""
		}
		return "the value is NULL"
	}
	v := *value
	if e.NotEmpty && strings.TrimSpace(v) == "" {
		return "the value is empty"
	}
	if e.Equals != nil {
		got, gotNumber := parseNumber(v)
		want, wantNumber := parseNumber(*e.Equals)
		switch {
		case gotNumber && wantNumber:
			if got.cmp(want) != 0 {
				return fmt.Sprintf("value %s is not %s", shorten(v), *e.Equals)
			}
		case v != *e.Equals:
			return fmt.Sprintf("value %q is not %q", shorten(v), *e.Equals)
		}
	}
	if e.Min != nil || e.Max != nil {
		n, ok := parseNumber(v)
		if !ok {
			return fmt.Sprintf("value %q is not a number", shorten(v))
		}
		if e.Min != nil {
			if lo, ok := parseNumber(*e.Min); !ok {
				return fmt.Sprintf("min %q is not a number", *e.Min)
			} else if n.cmp(lo) < 0 {
				return fmt.Sprintf("value %s < min %s", v, *e.Min)
			}
		}
		if e.Max != nil {
			if hi, ok := parseNumber(*e.Max); !ok {
				return fmt.Sprintf("max %q is not a number", *e.Max)
			} else if n.cmp(hi) > 0 {
				return fmt.Sprintf("value %s > max %s", v, *e.Max)
			}
		}
	}
	if e.Regex != nil {
		re, err := regexp.Compile(*e.Regex)
		if err != nil {
			return "bad regex: " + err.Error()
		}
		if !re.MatchString(v) {
			return fmt.Sprintf("value %q does not match %s", shorten(v), *e.Regex)
		}
	}
	return ""
}

// number is an exact decimal, or an infinity (inf -1 or 1) as PostgreSQL
// prints for numeric and float columns.
type number struct {
	inf int
	r   *big.Rat
}

// decimalSyntax is what counts as a number: plain decimals as PostgreSQL
// prints them, with an optional short exponent (no hex, fractions or
// underscores, and no exponent big enough to exhaust memory).
var decimalSyntax = regexp.MustCompile(`^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d{1,4})?$`)

func parseNumber(s string) (number, bool) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "infinity", "+infinity", "inf", "+inf":
		return number{inf: 1}, true
	case "-infinity", "-inf":
		return number{inf: -1}, true
	}
	if !decimalSyntax.MatchString(s) {
		return number{}, false
	}
	r, ok := new(big.Rat).SetString(s)
	return number{r: r}, ok
}

func (a number) cmp(b number) int {
	if a.inf != 0 || b.inf != 0 {
		return cmp.Compare(a.inf, b.inf)
	}
	return a.r.Cmp(b.r)
}

// shorten keeps a value short enough for a status field.
func shorten(v string) string {
	if utf8.RuneCountInString(v) <= maxShown {
		return v
	}
	return string([]rune(v)[:maxShown]) + "…"
}

// Run runs checks in order on conn and returns one Result per check. A
// failing check does not stop the others, and a check's error (a missing
// table, a timeout, an invalid check) is that check's failure. Each check
// runs in its own READ ONLY transaction with SET LOCAL statement_timeout and
// is rolled back. When ctx ends, the remaining checks are not run and fail
// with "not run: <ctx err>".
func Run(ctx context.Context, conn *pgx.Conn, checks []Check) []Result {
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
			r.Value, r.Message = tablesReadable(ctx, conn, timeoutOf(c))
		case BuiltinAmcheck:
			r.Value, r.Message = amcheck(ctx, conn, timeoutOf(c))
		default:
			r.Value, r.Message = sqlCheck(ctx, conn, c)
		}
		r.Duration = time.Since(start)
		r.Passed = r.Message == ""
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

// inTx runs f in a transaction with a statement timeout. A read-only one is
// always rolled back; a read-write one is committed when f succeeds.
func inTx(ctx context.Context, conn *pgx.Conn, mode pgx.TxAccessMode, timeout time.Duration, f func(pgx.Tx) error) error {
	tx, err := conn.BeginTx(ctx, pgx.TxOptions{AccessMode: mode})
	if err != nil {
		return err
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // nothing to keep, or already committed
	ms := max(timeout.Milliseconds(), 1)
	if _, err := tx.Exec(ctx, fmt.Sprintf("SET LOCAL statement_timeout = %d", ms)); err != nil {
		return err
	}
	if err := f(tx); err != nil {
		return err
	}
	if mode == pgx.ReadWrite {
		return tx.Commit(ctx)
	}
	return nil
}

// sqlCheck runs the check's query and compares its first value; it returns
// the value shown and why the check failed.
func sqlCheck(ctx context.Context, conn *pgx.Conn, c Check) (shown, failure string) {
	var value *string
	found := false
	err := inTx(ctx, conn, pgx.ReadOnly, timeoutOf(c), func(tx pgx.Tx) error {
		// The extended protocol refuses more than one statement, and text
		// results give the value exactly as PostgreSQL prints it.
		rr := tx.Conn().PgConn().ExecParams(ctx, c.SQL, nil, nil, nil, nil)
		if rr.NextRow() {
			found = true
			if vals := rr.Values(); len(vals) > 0 && vals[0] != nil {
				s := textValue(rr.FieldDescriptions()[0].DataTypeOID, vals[0])
				value = &s
			}
		}
		_, err := rr.Close()
		return err
	})
	if err != nil {
		msg := describeError(err)
		if isStatementTimeout(err) {
			msg += fmt.Sprintf("; the check's timeout is %s", timeoutOf(c))
		}
		return "", msg
	}
	switch {
	case value != nil:
		shown = shorten(*value)
	case found:
		shown = "NULL"
	}
	return shown, c.Expect.Evaluate(value, found)
}

// textValue is a value in PostgreSQL's text format; booleans read true and
// false rather than t and f.
func textValue(oid uint32, raw []byte) string {
	if oid == pgtype.BoolOID {
		switch string(raw) {
		case "t":
			return "true"
		case "f":
			return "false"
		}
	}
	return string(raw)
}

// userTables lists ordinary tables and populated materialized views outside
// the system, TOAST and temporary schemas. Partitioned parents are empty and
// left out; their partitions are ordinary tables.
const userTables = `
SELECT n.nspname, c.relname
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated))
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname !~ '^pg_(toast_)?temp_'
ORDER BY 1, 2`

type relation struct{ Schema, Name string }

func (r relation) String() string { return pgx.Identifier{r.Schema, r.Name}.Sanitize() }

// tablesReadable reads every user table end to end, TOAST included, and
// returns "N tables, M rows" and the first failure.
func tablesReadable(ctx context.Context, conn *pgx.Conn, timeout time.Duration) (summary, failure string) {
	var tables, rowsRead int64
	var failed relation
	err := inTx(ctx, conn, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, userTables)
		if err != nil {
			return err
		}
		rels, err := pgx.CollectRows(rows, pgx.RowToStructByPos[relation])
		if err != nil {
			return err
		}
		for _, rel := range rels {
			var count, chars int64
			// Casting the whole row to text detoasts every column.
			q := "SELECT count(*), coalesce(sum(length(t::text)), 0) FROM " + rel.String() + " t"
			if err := tx.QueryRow(ctx, q).Scan(&count, &chars); err != nil {
				failed = rel
				return err
			}
			tables++
			rowsRead += count
		}
		return nil
	})
	summary = fmt.Sprintf("%d tables, %d rows", tables, rowsRead)
	switch {
	case err == nil:
		return summary, ""
	case failed != relation{}:
		return summary, "table " + failed.String() + ": " + describeError(err)
	}
	return summary, "listing tables: " + describeError(err)
}

// btreeIndexes lists the valid btree indexes of user tables and materialized
// views, leaving out temporary tables and partitioned (parent) indexes.
const btreeIndexes = `
SELECT c.oid, n.nspname, c.relname
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE am.amname = 'btree' AND c.relkind = 'i'
  AND i.indisvalid AND i.indisready AND i.indislive
  AND t.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname !~ '^pg_(toast_)?temp_'
ORDER BY 2, 3`

// amcheck makes sure the amcheck extension exists, then verifies every
// btree index with its heap; it returns "N indexes verified" and the first
// failure.
func amcheck(ctx context.Context, conn *pgx.Conn, timeout time.Duration) (summary, failure string) {
	const extensionSchema = `SELECT n.nspname FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'`
	var schema string
	// Not read-only: the extension may have to be created in the copy.
	err := inTx(ctx, conn, pgx.ReadWrite, timeout, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, extensionSchema).Scan(&schema)
		if !errors.Is(err, pgx.ErrNoRows) {
			return err
		}
		if _, err := tx.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS amcheck"); err != nil {
			return err
		}
		return tx.QueryRow(ctx, extensionSchema).Scan(&schema)
	})
	if err != nil {
		return "", "cannot create the amcheck extension in the restored copy " +
			"(it needs PostgreSQL's contrib modules in the image and a superuser): " + describeError(err)
	}
	check := "SELECT " + pgx.Identifier{schema, "bt_index_check"}.Sanitize() + "(index => $1::oid::regclass, heapallindexed => true)"

	verified := 0
	var failed relation
	err = inTx(ctx, conn, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, btreeIndexes)
		if err != nil {
			return err
		}
		type index struct {
			OID uint32
			relation
		}
		indexes, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (index, error) {
			var ix index
			err := row.Scan(&ix.OID, &ix.Schema, &ix.Name)
			return ix, err
		})
		if err != nil {
			return err
		}
		for _, ix := range indexes {
			if _, err := tx.Exec(ctx, check, ix.OID); err != nil {
				failed = ix.relation
				return err
			}
			verified++
		}
		return nil
	})
	summary = fmt.Sprintf("%d indexes verified", verified)
	switch {
	case err == nil:
		return summary, ""
	case failed != relation{}:
		return summary, "index " + failed.String() + ": " + describeError(err)
	}
	return summary, "listing indexes: " + describeError(err)
}

// Freshness runs the freshness query in a read-only transaction with the
// given statement timeout (0 means DefaultCheckTimeout) and returns the
// newest write it reports: the first column of the first row, which must be a
// timestamptz, a timestamp (taken as UTC) or a date (midnight UTC).
func Freshness(ctx context.Context, conn *pgx.Conn, sql string, timeout time.Duration) (time.Time, error) {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	var newest time.Time
	err := inTx(ctx, conn, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, pgx.QueryExecModeExec)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return freshnessError("the freshness query returned no rows")
		}
		fields := rows.FieldDescriptions()
		if len(fields) == 0 {
			return freshnessError("the freshness query returned no columns")
		}
		switch oid := fields[0].DataTypeOID; oid {
		case pgtype.TimestamptzOID, pgtype.TimestampOID, pgtype.DateOID:
		default:
			return freshnessError(fmt.Sprintf("the freshness query returned a %s, want a timestamptz, timestamp or date", typeName(conn, oid)))
		}
		values, err := rows.Values()
		if err != nil {
			return err
		}
		switch v := values[0].(type) {
		case nil:
			return freshnessError("the freshness query returned NULL (is the table empty?)")
		case time.Time:
			newest = v
		default:
			return freshnessError(fmt.Sprintf("the freshness query returned %v, not a point in time", v))
		}
		return nil
	})
	var problem freshnessError
	switch {
	case errors.As(err, &problem):
		return time.Time{}, problem
	case err != nil:
		return time.Time{}, fmt.Errorf("freshness query: %s", describeError(err))
	}
	return newest, nil
}

// freshnessError is what is wrong with the freshness query's answer.
type freshnessError string

func (e freshnessError) Error() string { return string(e) }

func typeName(conn *pgx.Conn, oid uint32) string {
	if t, ok := conn.TypeMap().TypeForOID(oid); ok {
		return t.Name
	}
	return fmt.Sprintf("value of type OID %d", oid)
}

// describeError keeps PostgreSQL's message and SQLSTATE, and nothing of the
// connection's configuration.
func describeError(err error) string {
	var pg *pgconn.PgError
	if errors.As(err, &pg) {
		return fmt.Sprintf("%s (SQLSTATE %s)", pg.Message, pg.Code)
	}
	return err.Error()
}

func isStatementTimeout(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "57014" && strings.Contains(pg.Message, "statement timeout")
}
