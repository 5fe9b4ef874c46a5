package validate

import (
	"fmt"
	"strings"
)

// When is a relation "far short" of what the copy's catalog says?
//
// PostgreSQL reads a relation file that is missing pages (a lost or
// truncated file in the volume, a snapshot that caught a file half copied)
// as a smaller table, without error. What the relation should hold is still
// written in the copy's own pg_class:
//
//   - relpages is the main fork's length in pages when VACUUM, ANALYZE or
//     CREATE INDEX last measured it. Between two measurements a heap file
//     only grows. It shrinks only when VACUUM cuts empty pages off its end,
//     which sets relpages right after, or by TRUNCATE, CLUSTER or VACUUM
//     FULL, which write a new file with new statistics. A file far shorter
//     than relpages is not explained by anything PostgreSQL does.
//   - reltuples is the number of live rows VACUUM or ANALYZE last estimated
//     (-1: never measured). Autovacuum analyzes a table once about 10% of it
//     has changed (autovacuum_analyze_scale_factor 0.1) and vacuums it once
//     about 20% is dead (autovacuum_vacuum_scale_factor 0.2), within a minute
//     (autovacuum_naptime), so on a copy of a healthy database reltuples is
//     within some 10-20% of the rows there, and a legitimate mass delete is
//     followed by autovacuum shortly after. A plain btree index holds one
//     entry per row, and its reltuples says how many it held.
//
// A relation is therefore far short when it holds less than half of what the
// catalog says, and by at least a minimum count, so that small tables, where
// a handful of rows or pages is a large fraction, never fail on estimation
// noise. The margin costs a false DataMissing only for a copy cut within a
// minute or so of a delete of more than half of a table; in return a copy
// that lost more than half of a measured table (beyond the minimums) is never
// called healthy. Unlogged tables are not compared: crash recovery, which is
// what starting a copy of a volume snapshot is, empties them by design.
const (
	// minFractionPresent: less than this fraction of the catalog's rows or
	// pages is far short.
	minFractionPresent = 0.5
	// minMissingRows: and at least this many rows are missing.
	minMissingRows = 1000
	// minMissingPages: and at least this many pages (64 kB in 8 kB blocks).
	minMissingPages = 8
)

// rowsMissing says whether read rows are far fewer than the catalog's
// estimate (reltuples); a negative estimate means never measured.
func rowsMissing(read int64, catalog float64) bool {
	return catalog >= 0 && float64(read) < catalog*minFractionPresent && catalog-float64(read) >= minMissingRows
}

// pagesMissing says whether a file of pages is far shorter than relpages.
func pagesMissing(pages, catalog int64) bool {
	return float64(pages) < float64(catalog)*minFractionPresent && catalog-pages >= minMissingPages
}

// missingData compares what was read of a table with its catalog entry and
// its plain btree indexes (each holds one entry per row), and says what is
// far short; "" when nothing is.
func missingData(t TableCount, indexes []catalogIndex) string {
	var short []string
	if rowsMissing(t.Rows, t.CatalogRows) {
		short = append(short, fmt.Sprintf("%d rows read, the catalog says about %.0f (pg_class.reltuples)", t.Rows, t.CatalogRows))
	}
	if pagesMissing(t.Pages, t.CatalogPages) {
		short = append(short, fmt.Sprintf("%d pages on disk, the catalog says %d (pg_class.relpages)", t.Pages, t.CatalogPages))
	}
	// An index's count corroborates the table's, or stands in for it when
	// the table was never measured. When the table's own estimate agrees
	// with what was read, a larger index count is dead entries that VACUUM
	// could not remove yet (an old snapshot held them), not missing rows.
	tableShort := rowsMissing(t.Rows, t.CatalogRows)
	for _, ix := range indexes {
		if (t.CatalogRows < 0 || tableShort) && rowsMissing(t.Rows, ix.entries) {
			short = append(short, fmt.Sprintf("%d rows read, its index %s holds about %.0f entries (pg_class.reltuples)", t.Rows, ix.rel.display(), ix.entries))
		}
	}
	return strings.Join(short, "; ")
}
