package validate

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// probeSchema holds WriteProbe's table, apart from the copy's own schemas.
const probeSchema = "drillerd_probe"

// probeRows is how many rows WriteProbe writes and reads back.
const probeRows = 100

// probeError is a statement of the write probe that PostgreSQL refused.
type probeError struct {
	statement string
	err       error
}

func (e *probeError) Error() string {
	return "write probe: " + e.statement + ": " + describeError(e.err)
}
func (e *probeError) Unwrap() error { return e.err }

// WriteProbe proves the copy serves writes: it creates a table, inserts rows,
// commits, reads them back, runs a CHECKPOINT, and drops the table. It
// returns when the write was committed and read back.
//
// The table lives in schema drillerd_probe, under a name of its own; the
// schema is dropped with it when nothing else is in it. The writing
// transactions are plain BEGINs, so the copy's defaults apply as they would
// to an application: a hot standby, or default_transaction_read_only, makes
// the probe fail. timeout is each statement's statement_timeout and bounds
// the whole probe; 0 means DefaultCheckTimeout. The error names the
// statement that failed, with PostgreSQL's message and SQLSTATE, e.g.
// "write probe: CREATE SCHEMA IF NOT EXISTS drillerd_probe: cannot execute
// CREATE SCHEMA in a read-only transaction (SQLSTATE 25006)".
func (s *Session) WriteProbe(ctx context.Context, timeout time.Duration) error {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	suffix := make([]byte, 6)
	_, _ = rand.Read(suffix) // never fails
	table := pgx.Identifier{probeSchema, fmt.Sprintf("probe_%d_%s", time.Now().Unix(), hex.EncodeToString(suffix))}.Sanitize()

	// statement is what the probe is doing, for the error: BEGIN, each
	// statement in turn, then COMMIT.
	statement := ""
	exec := func(tx pgx.Tx, sql string, args ...any) error {
		statement = sql
		if _, err := tx.Exec(ctx, sql, args...); err != nil {
			return err
		}
		statement = "COMMIT"
		return nil
	}
	var count, sum int64
	steps := []struct {
		mode pgx.TxAccessMode // "": a plain BEGIN
		f    func(pgx.Tx) error
	}{
		{"", func(tx pgx.Tx) error {
			if err := exec(tx, "CREATE SCHEMA IF NOT EXISTS "+probeSchema); err != nil {
				return err
			}
			if err := exec(tx, "CREATE TABLE "+table+" (id int PRIMARY KEY, written timestamptz NOT NULL DEFAULT now())"); err != nil {
				return err
			}
			return exec(tx, "INSERT INTO "+table+" (id) SELECT generate_series(1, $1::int)", probeRows)
		}},
		{pgx.ReadOnly, func(tx pgx.Tx) error {
			statement = "SELECT count(*), sum(id) FROM " + table
			return tx.QueryRow(ctx, statement).Scan(&count, &sum)
		}},
		{"", func(tx pgx.Tx) error { return exec(tx, "CHECKPOINT") }},
		{"", func(tx pgx.Tx) error {
			if err := exec(tx, "DROP TABLE "+table); err != nil {
				return err
			}
			// The schema goes when nothing else is in it (a probe that was
			// interrupted may have left a table behind).
			var others bool
			statement = "SELECT EXISTS (SELECT FROM pg_catalog.pg_class ...)"
			if err := tx.QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_catalog.pg_class WHERE relnamespace = $1::regnamespace)", probeSchema).Scan(&others); err != nil || others {
				return err
			}
			return exec(tx, "DROP SCHEMA "+probeSchema+" RESTRICT")
		}},
	}
	for _, step := range steps {
		statement = "BEGIN"
		if err := s.inTx(ctx, step.mode, timeout, step.f); err != nil {
			return &probeError{statement: statement, err: err}
		}
		if step.mode == pgx.ReadOnly && (count != probeRows || sum != probeRows*(probeRows+1)/2) {
			return fmt.Errorf("write probe: wrote %d rows to %s and committed them, read back %d (sum of ids %d)", probeRows, table, count, sum)
		}
	}
	return nil
}
