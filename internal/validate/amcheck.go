package validate

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// btreeIndexes lists the valid btree indexes of user tables and materialized
// views, and the indexes of their TOAST tables (through which every
// out-of-line value is found), leaving out temporary tables and partitioned
// (parent) indexes. Its fourth column names, for a TOAST index, the table
// whose values it finds.
const btreeIndexes = `
SELECT c.oid, n.nspname, c.relname, coalesce(quote_ident(ons.nspname) || '.' || quote_ident(o.relname), '')
FROM pg_catalog.pg_index i
JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid
JOIN pg_catalog.pg_class t ON t.oid = i.indrelid
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_am am ON am.oid = c.relam
LEFT JOIN pg_catalog.pg_class o ON n.nspname = 'pg_toast' AND o.reltoastrelid = t.oid
LEFT JOIN pg_catalog.pg_namespace ons ON ons.oid = o.relnamespace
WHERE am.amname = 'btree' AND c.relkind = 'i'
  AND i.indisvalid AND i.indisready AND i.indislive
  AND t.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname !~ '^pg_(toast_)?temp_'
  AND (n.nspname <> 'pg_toast' OR (ons.nspname NOT IN ('pg_catalog', 'information_schema') AND ons.nspname !~ '^pg_(toast_)?temp_'))
ORDER BY 2, 3`

// verifyHeapamSince is the first PostgreSQL (server_version_num) whose
// amcheck has verify_heapam.
const verifyHeapamSince = 140000

// maxCorruptionsListed bounds how many of verify_heapam's complaints about
// one table a message quotes.
const maxCorruptionsListed = 3

// amcheck makes sure the amcheck extension exists (and has verify_heapam
// where the server has it), then verifies every heap page of every user
// table with verify_heapam and every btree index with bt_index_check; it
// returns "N tables, M indexes verified" and every problem.
func (s *Session) amcheck(ctx context.Context, timeout time.Duration) outcome {
	in := " in database " + displayIdent(s.database)
	schema, version, err := s.amcheckExtension(ctx, timeout)
	if err != nil {
		return outcome{problems: problems{{text: "database " + displayIdent(s.database) + ": " + err.Error()}}}
	}
	heapCheck := version.num >= verifyHeapamSince
	verifyHeap := "SELECT count(*) OVER (), blkno, offnum, attnum, msg FROM " + pgx.Identifier{schema, "verify_heapam"}.Sanitize() +
		fmt.Sprintf("(relation => $1::oid::regclass, check_toast => true) LIMIT %d", maxCorruptionsListed)
	indexCheck := "SELECT " + pgx.Identifier{schema, "bt_index_check"}.Sanitize() + "(index => $1::oid::regclass, heapallindexed => true)"

	var o outcome
	var tablesVerified, indexesVerified int
	err = s.inTx(ctx, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
		var tables, indexes []oidRelation
		var err error
		if heapCheck {
			if tables, err = listRelations(ctx, tx, "SELECT oid, nspname, relname FROM ("+userTables+") t ORDER BY 2, 3"); err != nil {
				o.problems = append(o.problems, problem{text: "listing tables" + in + ": " + describeError(err), finding: findingOf(err)})
				return nil
			}
		}
		if indexes, err = listIndexes(ctx, tx); err != nil {
			o.problems = append(o.problems, problem{text: "listing indexes" + in + ": " + describeError(err), finding: findingOf(err)})
			return nil
		}
		for _, t := range tables {
			found, total, err := corruptions(ctx, tx, verifyHeap, t.oid)
			switch {
			case err != nil:
				o.problems = append(o.problems, problem{text: "table " + t.rel.display() + in + ": " + describeError(err), finding: findingOf(err)})
				if !isServerError(err) || tx.Conn().IsClosed() {
					return nil
				}
			case total > 0:
				text := fmt.Sprintf("table %s%s: verify_heapam: %s", t.rel.display(), in, strings.Join(found, "; "))
				if more := total - int64(len(found)); more > 0 {
					text += fmt.Sprintf("; and %d more", more)
				}
				o.problems = append(o.problems, problem{text: text, finding: FindingDamaged})
			default:
				tablesVerified++
			}
		}
		for _, ix := range indexes {
			err := inSavepoint(ctx, tx, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, indexCheck, ix.oid)
				return err
			})
			if err != nil {
				o.problems = append(o.problems, problem{text: "index " + ix.display() + in + ": " + describeError(err), finding: findingOf(err)})
				if !isServerError(err) || tx.Conn().IsClosed() {
					return nil
				}
				continue
			}
			indexesVerified++
		}
		return nil
	})
	if err != nil {
		o.problems = append(o.problems, problem{text: "verifying" + in + ": " + describeError(err), finding: findingOf(err)})
	}
	o.value = amcheckSummary(heapCheck, tablesVerified, indexesVerified, version)
	return o
}

// amcheckSummary is Amcheck's Value.
func amcheckSummary(heapCheck bool, tables, indexes int, version serverVersion) string {
	if !heapCheck {
		return fmt.Sprintf("%d indexes verified; tables not verified: verify_heapam needs PostgreSQL 14 or later, this is %s",
			indexes, version.text)
	}
	return fmt.Sprintf("%d tables, %d indexes verified", tables, indexes)
}

// corruptions runs verifyHeap on a table, in a savepoint, and returns the
// first complaints and how many there are.
func corruptions(ctx context.Context, tx pgx.Tx, verifyHeap string, table uint32) (found []string, total int64, err error) {
	err = inSavepoint(ctx, tx, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, verifyHeap, table)
		if err != nil {
			return err
		}
		var block *int64
		var offset, attribute *int32
		var msg string
		_, err = pgx.ForEachRow(rows, []any{&total, &block, &offset, &attribute, &msg}, func() error {
			found = append(found, heapCorruption(block, offset, attribute, msg))
			return nil
		})
		return err
	})
	return found, total, err
}

// heapCorruption is one of verify_heapam's complaints, where it is.
func heapCorruption(block *int64, offset, attribute *int32, msg string) string {
	var where []string
	if block != nil {
		where = append(where, fmt.Sprintf("block %d", *block))
	}
	if offset != nil {
		where = append(where, fmt.Sprintf("offset %d", *offset))
	}
	if attribute != nil {
		where = append(where, fmt.Sprintf("attribute %d", *attribute))
	}
	if len(where) == 0 {
		return msg
	}
	return strings.Join(where, ", ") + ": " + msg
}

// amcheckExtension returns the amcheck extension's schema and the server's
// version, creating the extension when it is missing and updating it when it
// predates verify_heapam on a server that has it. The lookup is read-only,
// so a copy that already has the extension is not written to; creating or
// updating it is the check's one write, in the throwaway copy.
func (s *Session) amcheckExtension(ctx context.Context, timeout time.Duration) (schema string, v serverVersion, err error) {
	const extension = `SELECT n.nspname,
  EXISTS (SELECT FROM pg_catalog.pg_proc p WHERE p.proname = 'verify_heapam' AND p.pronamespace = n.oid)
FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'`
	var hasHeapCheck bool
	lookup := func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, serverVersionQuery).Scan(&v.num, &v.text); err != nil {
			return err
		}
		return tx.QueryRow(ctx, extension).Scan(&schema, &hasHeapCheck)
	}
	err = s.inTx(ctx, pgx.ReadOnly, timeout, lookup)
	exists := err == nil
	switch {
	case exists && (hasHeapCheck || v.num < verifyHeapamSince):
		return schema, v, nil
	case err != nil && !errors.Is(err, pgx.ErrNoRows):
		return "", v, fmt.Errorf("cannot look up the amcheck extension: %s", describeError(err))
	}
	statement := "CREATE EXTENSION amcheck"
	if exists {
		statement = "ALTER EXTENSION amcheck UPDATE"
	}
	err = s.inTx(ctx, pgx.ReadWrite, timeout, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, statement); err != nil {
			return err
		}
		return lookup(tx)
	})
	if err != nil {
		return "", v, fmt.Errorf("cannot run %s in the restored copy (it needs PostgreSQL's contrib modules in the image and a superuser): %s",
			statement, describeError(err))
	}
	return schema, v, nil
}

// serverVersion is the server's version as a number (server_version_num,
// e.g. 150004) and as text (server_version, e.g. "15.4").
type serverVersion struct {
	num  int
	text string
}

const serverVersionQuery = "SELECT current_setting('server_version_num')::int, current_setting('server_version')"

// oidRelation is a relation and its OID.
type oidRelation struct {
	oid uint32
	rel relation
	// toastOf is, for a TOAST table's index, the table it serves.
	toastOf string
}

// display is the relation's name as a message shows it.
func (r oidRelation) display() string {
	if r.toastOf != "" {
		return r.rel.display() + " (TOAST of " + r.toastOf + ")"
	}
	return r.rel.display()
}

// listRelations runs a query of (oid, schema, name) rows.
func listRelations(ctx context.Context, tx pgx.Tx, query string) ([]oidRelation, error) {
	rows, err := tx.Query(ctx, query)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (oidRelation, error) {
		var r oidRelation
		err := row.Scan(&r.oid, &r.rel.Schema, &r.rel.Name)
		return r, err
	})
}

// listIndexes runs btreeIndexes.
func listIndexes(ctx context.Context, tx pgx.Tx) ([]oidRelation, error) {
	rows, err := tx.Query(ctx, btreeIndexes)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (oidRelation, error) {
		var r oidRelation
		err := row.Scan(&r.oid, &r.rel.Schema, &r.rel.Name, &r.toastOf)
		return r, err
	})
}
