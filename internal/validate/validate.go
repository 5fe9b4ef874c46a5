// Package validate runs a drill's checks against a restored PostgreSQL
// cluster: SQL queries with an expectation on their first value, the
// built-ins TablesReadable and Amcheck, the freshness query behind the data
// RPO, the cluster's identity and a write probe. A Session is one connection
// to the restored database that runs them.
//
// # What the built-ins prove
//
// A restored copy can look healthy and still have lost data: PostgreSQL
// reads a relation file that is missing pages as a smaller table, without
// error. So TablesReadable reads every table end to end and compares what it
// read with what the copy's own catalog says should be there (pg_class
// relpages and reltuples), and Amcheck verifies every heap page
// (verify_heapam) and every btree index (bt_index_check). Both run in every
// database of the cluster that accepts connections, templates aside,
// reporting one Result per database; a failure says what kind of finding it
// is (FindingDataMissing, FindingDamaged) so the verdict can name it.
//
// # Read-only guarantees
//
// The restored data is production data. Each check runs in READ ONLY
// transactions of its own, with a statement timeout on every statement, and
// they are rolled back; SQL checks use the extended query protocol, so a check
// is exactly one statement and cannot end the read-only transaction and carry
// on writing. SQL checks run only in the session's own database. The package
// logs nothing; a Result holds a check's first value (shortened), and the
// built-ins report only counts and PostgreSQL's complaints. The only writes,
// all in the throwaway copy, are Amcheck's CREATE EXTENSION amcheck (or
// ALTER EXTENSION amcheck UPDATE when the installed version predates
// verify_heapam), committed in a transaction of its own in each database
// where the extension is missing, and WriteProbe, which creates, fills and
// drops a table in schema drillerd_probe to prove the copy serves writes.
package validate

import (
	"context"
	"time"
)

// Built-in checks.
const (
	// BuiltinTablesReadable reads every user table and materialized view end
	// to end, TOAST and large objects included, and compares what it read
	// with the copy's catalog.
	BuiltinTablesReadable = "TablesReadable"
	// BuiltinAmcheck verifies every heap page of user tables and
	// materialized views with amcheck's verify_heapam (PostgreSQL 14 and
	// later) and every valid btree index with bt_index_check(heapallindexed
	// => true).
	BuiltinAmcheck = "Amcheck"
)

// Kinds of finding a failed Result can report.
const (
	// FindingDataMissing: the copy holds far less than its own catalog says
	// it should (a truncated or emptied relation file).
	FindingDataMissing = "DataMissing"
	// FindingDamaged: PostgreSQL raised a data-corruption or I/O error
	// (SQLSTATE class XX or 58), or amcheck reported corruption.
	FindingDamaged = "DataDamaged"
	// FindingRefused: the copy refused the check's SQL a privilege; the
	// check, not the backup, is at fault.
	FindingRefused = "Refused"
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

// Result is the outcome of one check in one database.
type Result struct {
	Name     string
	Database string // the database the check ran in ("" for none: the check did not run)
	Passed   bool
	Value    string        // the observed value, "NULL", or a built-in's summary such as "12 tables, 10342 rows, 0 large objects"
	Expected string        // the expectation in words, e.g. ">= 1000" or "every table readable"
	Duration time.Duration // how long the check ran
	Message  string        // why it failed; "" when it passed
	// Finding is, for a failed check, what kind of finding it is: "" (a
	// plain failed check), FindingDataMissing or FindingDamaged.
	Finding string
	Tables  []TableCount // TablesReadable: what was read, per table
}

// TableCount is what TablesReadable read of one table and what the copy's
// catalog says should be there.
type TableCount struct {
	Database, Schema, Name string
	Rows                   int64   // rows read
	CatalogRows            float64 // pg_class.reltuples (-1 = never analyzed)
	Pages                  int64   // pages in the relation file now (pg_relation_size / block size)
	CatalogPages           int64   // pg_class.relpages
}

// Run runs checks in order and returns their Results in that order. A SQL
// check has one Result, in the session's own database; a built-in has one
// per database that accepts connections (templates aside), in database name
// order, each run over a connection of its own made with the session's
// configuration (the session's own connection for its own database). A
// failing check does not stop the others, and a check's error (a missing
// table, a timeout, an invalid check, a database it cannot connect to) is
// that check's failure. Each check runs in its own READ ONLY transaction with
// SET LOCAL statement_timeout and is rolled back (Amcheck first creates its
// extension when it is missing). When ctx ends, the remaining checks are not
// run and fail with "not run: <ctx err>".
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
		if c.Builtin != "" {
			results = append(results, s.runBuiltin(ctx, c)...)
			continue
		}
		if s.userSQLRefused != "" {
			r.Message = s.userSQLRefused
			results = append(results, r)
			continue
		}
		start := time.Now()
		r.Database = s.database
		r.Value, r.Message, r.Finding = s.forChecks().sqlCheck(ctx, c)
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
		return "every table and btree index verified"
	}
	return c.Expect.Describe()
}

func timeoutOf(c Check) time.Duration {
	if c.Timeout > 0 {
		return c.Timeout
	}
	return DefaultCheckTimeout
}
