package validate

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

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

// relation is a schema-qualified table or index name.
type relation struct{ Schema, Name string }

func (r relation) String() string { return pgx.Identifier{r.Schema, r.Name}.Sanitize() }

// tablesReadable reads every user table end to end, TOAST included, and
// returns "N tables, M rows" and the first failure.
func (s *Session) tablesReadable(ctx context.Context, timeout time.Duration) (summary, failure string) {
	var tables, rowsRead int64
	var failed relation
	err := s.inTx(ctx, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
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
