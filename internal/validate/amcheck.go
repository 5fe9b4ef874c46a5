package validate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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
func (s *Session) amcheck(ctx context.Context, timeout time.Duration) (summary, failure string) {
	const extensionSchema = `SELECT n.nspname FROM pg_catalog.pg_extension e
JOIN pg_catalog.pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'`
	var schema string
	// Not read-only: the extension may have to be created in the copy.
	err := s.inTx(ctx, pgx.ReadWrite, timeout, func(tx pgx.Tx) error {
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
	err = s.inTx(ctx, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
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
