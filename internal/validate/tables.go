package validate

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// userTables lists ordinary tables and populated materialized views outside
// the system, TOAST and temporary schemas, with what the catalog says of
// them and how many pages their main fork has now. Partitioned parents are
// empty and left out; their partitions are ordinary tables.
const userTables = `
SELECT c.oid, n.nspname, c.relname, c.relpersistence = 'u' AS unlogged,
       c.reltuples::float8 AS reltuples, c.relpages::int8 AS relpages,
       pg_catalog.pg_relation_size(c.oid) / current_setting('block_size')::int8 AS pages
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE (c.relkind = 'r' OR (c.relkind = 'm' AND c.relispopulated))
  AND c.relpersistence <> 't'
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
  AND n.nspname !~ '^pg_(toast_)?temp_'
ORDER BY n.nspname, c.relname`

// plainBtreeIndexes lists valid, non-partial btree indexes with how many
// entries the catalog says they hold: one per row of their table.
const plainBtreeIndexes = `
SELECT x.indrelid, n.nspname, i.relname, i.reltuples::float8
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
JOIN pg_catalog.pg_am am ON am.oid = i.relam
WHERE am.amname = 'btree' AND i.relkind = 'i' AND x.indpred IS NULL AND x.indisvalid
  AND n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
ORDER BY n.nspname, i.relname`

// readLargeObjects reads every large object whole.
const readLargeObjects = `
SELECT count(*), coalesce(sum(octet_length(pg_catalog.lo_get(oid))), 0)
FROM pg_catalog.pg_largeobject_metadata`

// userColumns lists the columns of the given tables in order, each with its
// type's length (-1 for a variable-length type) and its type's binary send
// function, schema and name ("" when the type has none). A domain's send
// function is its base type's.
const userColumns = `
SELECT a.attrelid, a.attname, t.typlen::int, coalesce(pn.nspname, ''), coalesce(p.proname, '')
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_proc p ON p.oid = t.typsend
LEFT JOIN pg_catalog.pg_namespace pn ON pn.oid = p.pronamespace
WHERE a.attrelid = ANY($1) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum`

// column is one column of a user table, as userColumns lists it.
type column struct {
	name   string
	typlen int
	send   relation // the type's send function; Name "" when it has none
}

// variableLength: the column's values can be stored compressed or out of
// line, in TOAST.
func (c column) variableLength() bool { return c.typlen == -1 }

// readRowsAsText counts the rows of a table and reads each as text, for a
// table with a column whose type has no binary form (no send function, such
// as an aclitem[]): casting the row to text runs each column's output
// function, which reads as much but formats every value, several times
// slower. The lengths are summed so that every cast is made.
const readRowsAsText = "SELECT count(*), coalesce(sum(octet_length(t::text)), 0) FROM ONLY %s t"

// binaryRead is the statement that counts the rows of t and reads each, or
// "" when a variable-length column's type has no binary form. Every
// variable-length value is read whole, as a client of the binary protocol
// receives it (valueRead): that fetches and decompresses every TOASTed and
// compressed value. A fixed-length value is stored in the row itself and
// read with it: the last column is referenced, so that every row is taken
// apart to its end, but fixed-length values are not copied into their
// binary form, which would read nothing more. The values of a row go to
// num_nulls, one call per maxFunctionArgs of them, and the max of the
// calls' sum is taken: the planner cannot fold a function called on
// columns, whereas newer planners fold "column IS NULL" on a NOT NULL
// column to false, and the read with it. ONLY reads this table's file
// alone, not inheriting children too.
func binaryRead(t *catalogTable) string {
	var reads []string
	for i, c := range t.columns {
		col := "t." + pgx.Identifier{c.name}.Sanitize()
		switch {
		case c.variableLength() && c.send.Name == "":
			return ""
		case c.variableLength():
			reads = append(reads, valueRead(c, col))
		case i == len(t.columns)-1:
			reads = append(reads, col)
		}
	}
	if len(reads) == 0 {
		return "SELECT count(*), 0 FROM ONLY " + t.rel.String() + " t"
	}
	var calls []string
	for chunk := range slices.Chunk(reads, maxFunctionArgs) {
		calls = append(calls, "pg_catalog.num_nulls("+strings.Join(chunk, ", ")+")")
	}
	return fmt.Sprintf("SELECT count(*), coalesce(max(%s), 0) FROM ONLY %s t", strings.Join(calls, " + "), t.rel.String())
}

// valueRead is the expression that reads col, a variable-length column c,
// whole: c's send function, as a client of the binary protocol receives the
// value, but for text, varchar and bytea, whose send functions copy the
// value once it is detoasted (text's converting it when the session's
// client_encoding is not the database's). Those values are detoasted whole
// by the position of an empty string in them, which PostgreSQL answers (1)
// without a copy, without a look at the bytes and whatever the column's
// collation: the copy costs as much as reading a short value from its page.
// The fetch and decompression of a value, and their errors, are the same;
// bytes that a conversion would refuse are production's own, as stored.
func valueRead(c column, col string) string {
	switch c.send {
	case byteaSend:
		return "pg_catalog.position(" + col + ", ''::pg_catalog.bytea)"
	case textSend, varcharSend:
		return "pg_catalog.strpos(" + col + ", '')"
	default:
		return c.send.String() + "(" + col + ")"
	}
}

// The send functions of bytea, text and varchar (and of domains over them).
var (
	byteaSend   = relation{"pg_catalog", "byteasend"}
	textSend    = relation{"pg_catalog", "textsend"}
	varcharSend = relation{"pg_catalog", "varcharsend"}
)

// maxFunctionArgs is how many arguments a PostgreSQL function takes at most
// (FUNC_MAX_ARGS); a table has up to 1,600 columns.
const maxFunctionArgs = 100

// statementDoesNotFit is the SQLSTATE class of errors about a statement,
// not about the data it reads (42883, "no binary output function
// available for type", for an array or composite of a type without one).
const statementDoesNotFit = "42"

// readTable reads t end to end, in its binary form, else as text, each
// statement in a savepoint of its own, and sets the rows it read.
func readTable(ctx context.Context, tx pgx.Tx, t *catalogTable) error {
	var aggregate int64 // the statement's second column: there to make every value be read, not looked at
	read := func(query string) error {
		return inSavepoint(ctx, tx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, query).Scan(&t.count.Rows, &aggregate)
		})
	}
	query := binaryRead(t)
	if query == "" {
		return read(fmt.Sprintf(readRowsAsText, t.rel.String()))
	}
	err := read(query)
	var pg *pgconn.PgError
	if errors.As(err, &pg) && strings.HasPrefix(pg.Code, statementDoesNotFit) {
		err = read(fmt.Sprintf(readRowsAsText, t.rel.String()))
	}
	return err
}

// relation is a schema-qualified table or index name.
type relation struct{ Schema, Name string }

// String is the name as SQL, every part quoted.
func (r relation) String() string { return pgx.Identifier{r.Schema, r.Name}.Sanitize() }

// display is the name as a message shows it.
func (r relation) display() string { return displayIdent(r.Schema) + "." + displayIdent(r.Name) }

type catalogTable struct {
	oid      uint32
	rel      relation
	unlogged bool
	columns  []column
	count    TableCount
}

type catalogIndex struct {
	rel     relation
	entries float64 // pg_class.reltuples
}

// tablesReadable reads every user table end to end, TOAST included, and
// every large object, in the session's database; it compares what it read
// with the catalog and returns "N tables, M rows, K large objects", the
// tables read, and every problem.
func (s *Session) tablesReadable(ctx context.Context, timeout time.Duration) outcome {
	var o outcome
	var rowsRead, largeObjects, largeObjectBytes int64
	in := " in database " + displayIdent(s.database)
	err := s.inTx(ctx, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
		tables, indexes, err := listCatalog(ctx, tx)
		if err != nil {
			o.problems = append(o.problems, problem{text: "listing tables" + in + ": " + describeError(err), finding: findingOf(err)})
			return nil
		}
		for _, t := range tables {
			err := readTable(ctx, tx, t)
			if err != nil {
				o.problems = append(o.problems, problem{text: "table " + t.rel.display() + in + ": " + describeError(err), finding: findingOf(err)})
				if !isServerError(err) || tx.Conn().IsClosed() {
					return nil
				}
				continue
			}
			t.count.Database = s.database
			o.tables = append(o.tables, t.count)
			rowsRead += t.count.Rows
			if !t.unlogged { // crash recovery empties unlogged tables: nothing is missing
				if short := missingData(t.count, indexes[t.oid]); short != "" {
					o.problems = append(o.problems, problem{text: "table " + t.rel.display() + in + ": " + short, finding: FindingDataMissing})
				}
			}
		}
		err = inSavepoint(ctx, tx, func(tx pgx.Tx) error {
			return tx.QueryRow(ctx, readLargeObjects).Scan(&largeObjects, &largeObjectBytes)
		})
		if err != nil {
			o.problems = append(o.problems, problem{text: "large objects" + in + ": " + describeError(err), finding: findingOf(err)})
		}
		return nil
	})
	if err != nil {
		o.problems = append(o.problems, problem{text: "reading tables" + in + ": " + describeError(err), finding: findingOf(err)})
	}
	o.value = fmt.Sprintf("%d tables, %d rows, %d large objects", len(o.tables), rowsRead, largeObjects)
	if largeObjects > 0 {
		o.value += fmt.Sprintf(" (%d bytes)", largeObjectBytes)
	}
	return o
}

// listCatalog returns the user tables and, per table OID, its plain btree
// indexes.
func listCatalog(ctx context.Context, tx pgx.Tx) ([]*catalogTable, map[uint32][]catalogIndex, error) {
	rows, err := tx.Query(ctx, userTables)
	if err != nil {
		return nil, nil, err
	}
	tables, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*catalogTable, error) {
		t := &catalogTable{}
		err := row.Scan(&t.oid, &t.rel.Schema, &t.rel.Name, &t.unlogged, &t.count.CatalogRows, &t.count.CatalogPages, &t.count.Pages)
		t.count.Schema, t.count.Name = t.rel.Schema, t.rel.Name
		return t, err
	})
	if err != nil {
		return nil, nil, err
	}
	byOID := map[uint32]*catalogTable{}
	oids := make([]uint32, 0, len(tables))
	for _, t := range tables {
		byOID[t.oid] = t
		oids = append(oids, t.oid)
	}
	rows, err = tx.Query(ctx, userColumns, oids)
	if err != nil {
		return nil, nil, err
	}
	var table uint32
	var c column
	_, err = pgx.ForEachRow(rows, []any{&table, &c.name, &c.typlen, &c.send.Schema, &c.send.Name}, func() error {
		if t := byOID[table]; t != nil {
			t.columns = append(t.columns, c)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	rows, err = tx.Query(ctx, plainBtreeIndexes)
	if err != nil {
		return nil, nil, err
	}
	indexes := map[uint32][]catalogIndex{}
	var ix catalogIndex
	_, err = pgx.ForEachRow(rows, []any{&table, &ix.rel.Schema, &ix.rel.Name, &ix.entries}, func() error {
		indexes[table] = append(indexes[table], ix)
		return nil
	})
	return tables, indexes, err
}
