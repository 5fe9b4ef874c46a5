package validate

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// byDatabase indexes a built-in's Results by database, failing the test on
// a duplicate or when they are not in database name order.
func byDatabase(t *testing.T, results []Result) map[string]Result {
	t.Helper()
	out := map[string]Result{}
	for i, r := range results {
		if _, dup := out[r.Database]; dup || (i > 0 && results[i-1].Database >= r.Database) {
			t.Errorf("results not one per database in name order: %s after %s", r.Database, results[i-1].Database)
		}
		out[r.Database] = r
	}
	return out
}

func TestTablesReadable(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	var toasted int
	var toastTable string
	if err := sess.conn.QueryRow(t.Context(), `SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'orders'::regclass`).Scan(&toastTable); err != nil {
		t.Fatal(err)
	}
	if err := sess.conn.QueryRow(t.Context(), "SELECT count(*) FROM "+toastTable).Scan(&toasted); err != nil || toasted == 0 {
		t.Fatalf("the fixture's notes are not TOASTed out of line: %d chunks in %s (%v)", toasted, toastTable, err)
	}
	var method string
	var size int
	if err := sess.conn.QueryRow(t.Context(), `SELECT pg_column_compression(memo), pg_column_size(memo) FROM "Sales Data"."odd ""name""" WHERE x = 1`).Scan(&method, &size); err != nil || method != "pglz" || size > 200 {
		t.Fatalf("the fixture's memo is not compressed in its row: %q, %d bytes (%v)", method, size, err)
	}
	tr := damage.truncated

	tests := []struct {
		db      string
		value   string
		finding string
		message string // the whole Message; "" when it passes
		tables  int
	}{
		{db: "drill", value: "5 tables, 1014 rows, 1 large objects (14 bytes)", tables: 5},
		// Reading cannot see a tuple header from the future on an
		// all-visible page: Amcheck's verify_heapam does.
		{db: "heapdamage", value: "1 tables, 1000 rows, 0 large objects", tables: 1},
		// A value is read through its TOAST table's index: chunks out of
		// order there are found, whether the row is read in its binary
		// form (notes) or as text (permits).
		{db: "indexdamage", value: "1 tables, 100 rows, 0 large objects", tables: 1, finding: FindingDamaged,
			message: fmt.Sprintf("table public.notes in database indexdamage: unexpected chunk number 2 (expected 1) for toast value %d in %s (SQLSTATE XX001); "+
				"table public.permits in database indexdamage: unexpected chunk number 2 (expected 1) for toast value %d in %s (SQLSTATE XX001)",
				damage.toast.value, damage.toast.table, damage.toastAsText.value, damage.toastAsText.table)},
		// A bytea value likewise.
		{db: "byteadamage", value: "0 tables, 0 rows, 0 large objects", finding: FindingDamaged,
			message: fmt.Sprintf("table public.attachments in database byteadamage: unexpected chunk number 2 (expected 1) for toast value %d in %s (SQLSTATE XX001)",
				damage.toastBytes.value, damage.toastBytes.table)},
		// A value compressed in its row is decompressed: Amcheck does not.
		{db: "compressdamage", value: "0 tables, 0 rows, 0 large objects", finding: FindingDamaged,
			message: "table public.memos in database compressdamage: compressed pglz data is corrupt (SQLSTATE XX001)"},
		// Bytes that are not UTF8 are read as production stores them, not
		// converted to the session's client_encoding (UTF8 there).
		{db: "legacy", value: "1 tables, 2 rows, 0 large objects", tables: 1},
		{db: "noext", value: "0 tables, 0 rows, 0 large objects"},
		{db: "postgres", value: "0 tables, 0 rows, 0 large objects"},
		{db: "private", value: "0 tables, 0 rows, 0 large objects"},
		// PostgreSQL reads the 3 pages left without a word; the catalog says
		// what is missing.
		{db: "truncated", tables: 1, finding: FindingDataMissing,
			value: fmt.Sprintf("1 tables, %d rows, 0 large objects", tr.rowsKept),
			message: fmt.Sprintf("table public.orders in database truncated: %[1]d rows read, the catalog says about %.0[2]f (pg_class.reltuples); "+
				"%[3]d pages on disk, the catalog says %[4]d (pg_class.relpages); %[1]d rows read, its index public.orders_pkey holds about %.0[2]f entries (pg_class.reltuples)",
				tr.rowsKept, tr.catalogRows, tr.pagesKept, tr.catalogPages)},
		// A missing file is not read as an empty table: PostgreSQL cannot open it.
		{db: "unlinked", value: "0 tables, 0 rows, 0 large objects", finding: FindingDamaged,
			message: fmt.Sprintf(`table public.orders in database unlinked: could not open file "%s": No such file or directory (SQLSTATE 58P01)`, damage.unlinkedFile)},
		// The damaged value is the row's 112th: TablesReadable reads it in
		// its second call of num_nulls.
		{db: "widedamage", value: "0 tables, 0 rows, 0 large objects", finding: FindingDamaged,
			message: fmt.Sprintf("table public.wide in database widedamage: unexpected chunk number 2 (expected 1) for toast value %d in %s (SQLSTATE XX001)",
				damage.toastWide.value, damage.toastWide.table)},
	}
	results := byDatabase(t, sess.Run(t.Context(), []Check{{Name: "tables", Builtin: BuiltinTablesReadable}}))
	if len(results) != len(tests) {
		t.Errorf("%d results, want one for each of %d databases", len(results), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.db, func(t *testing.T) {
			r := results[tt.db]
			if r.Name != "tables" || r.Passed != (tt.message == "") || r.Value != tt.value || r.Finding != tt.finding || r.Message != tt.message || len(r.Tables) != tt.tables {
				t.Errorf("TablesReadable in %s = %+v\nwant value %q, finding %q, message %q, %d tables", tt.db, r, tt.value, tt.finding, tt.message, tt.tables)
			}
			if r.Expected != "every table readable" || r.Duration <= 0 || r.Duration > 30*time.Second {
				t.Errorf("Expected = %q, Duration = %s", r.Expected, r.Duration)
			}
		})
	}
	if tr.rowsKept == 0 || tr.rowsKept >= 1000 || tr.catalogPages < 100 || tr.catalogRows != 20000 {
		t.Errorf("the truncated table is not what the test needs: %+v", tr)
	}
	// What was read, with the catalog's numbers, per table.
	want := TableCount{Database: "truncated", Schema: "public", Name: "orders", Rows: tr.rowsKept, CatalogRows: tr.catalogRows, Pages: tr.pagesKept, CatalogPages: tr.catalogPages}
	if got := results["truncated"].Tables; len(got) != 1 || got[0] != want {
		t.Errorf("Tables in truncated = %+v, want [%+v]", got, want)
	}
	var names []string
	for _, c := range results["drill"].Tables {
		names = append(names, c.Database+":"+c.Schema+"."+c.Name)
		if c.Name == "orders" && (c.Rows != 1000 || c.CatalogRows != 1000 || c.Pages == 0 || c.Pages != c.CatalogPages) {
			t.Errorf("orders in drill = %+v", c)
		}
	}
	if got := strings.Join(names, " "); got != `drill:Sales Data.odd "name" drill:public.empty_events drill:public.events_2026 drill:public.order_days drill:public.orders` {
		t.Errorf("tables read in drill: %s", got)
	}
}

func TestTablesReadableWithoutPrivileges(t *testing.T) {
	sess := openSession(t, "nopriv", "drill")
	results := byDatabase(t, sess.Run(t.Context(), []Check{{Name: "tables", Builtin: BuiltinTablesReadable}}))
	tests := []struct {
		db      string
		message string // a part of Message
	}{
		// Tables are read in order of schema and name: "Sales Data" first.
		{"drill", `table "Sales Data"."odd ""name""" in database drill: permission denied for schema Sales Data (SQLSTATE 42501); table public.empty_events in database drill: permission denied for table empty_events (SQLSTATE 42501)`},
		{"private", `cannot connect to database private as nopriv: permission denied for database "private" (SQLSTATE 42501)`},
	}
	for _, tt := range tests {
		t.Run(tt.db, func(t *testing.T) {
			r := results[tt.db]
			if r.Passed || r.Finding != "" || !strings.Contains(r.Message, tt.message) {
				t.Errorf("TablesReadable as nopriv in %s = %+v, want a plain failure saying %q", tt.db, r, tt.message)
			}
		})
	}
	if r := results["drill"]; len(r.Tables) != 1 || r.Tables[0].Name != "orders" || r.Tables[0].Rows != 1000 {
		t.Errorf("nopriv may read orders: Tables = %+v", r.Tables)
	}
}

func TestTablesReadableOnAStandbyWithChecksums(t *testing.T) {
	c := replica.server(t, setupReplica)
	sess := connect(t, c, "postgres", "postgres", nil)
	r := sess.Run(t.Context(), []Check{{Name: "tables", Builtin: BuiltinTablesReadable}})[0]
	want := fmt.Sprintf("table public.accounts in database postgres: invalid page in block %d of relation %s (SQLSTATE XX001)", replicaDamage.block, replicaDamage.file)
	if r.Database != "postgres" || r.Passed || r.Finding != FindingDamaged || r.Message != want {
		t.Errorf("TablesReadable = %+v\nwant finding %s, message %q", r, FindingDamaged, want)
	}
}

func TestBinaryRead(t *testing.T) {
	table := func(columns ...column) *catalogTable {
		return &catalogTable{rel: relation{"Sales Data", `odd "name"`}, columns: columns}
	}
	arraySend := relation{"pg_catalog", "array_send"}
	tests := []struct {
		name  string
		table *catalogTable
		want  string
	}{
		{"no column: the rows are counted", table(),
			`SELECT count(*), 0 FROM ONLY "Sales Data"."odd ""name""" t`},
		{"fixed-length columns: the last is read, so every row is taken apart",
			table(column{name: "id", typlen: 8}, column{name: "at", typlen: 8}),
			`SELECT count(*), coalesce(max(pg_catalog.num_nulls(t."at")), 0) FROM ONLY "Sales Data"."odd ""name""" t`},
		{"every variable-length column is read, fixed-length ones are not; values only copied by their send function are detoasted in place",
			table(column{name: "id", typlen: 8}, column{name: "Note", typlen: -1, send: textSend}, column{name: "at", typlen: 8},
				column{name: "tags", typlen: -1, send: arraySend}, column{name: "code", typlen: -1, send: varcharSend},
				column{name: "blob", typlen: -1, send: byteaSend}),
			`SELECT count(*), coalesce(max(pg_catalog.num_nulls(pg_catalog.strpos(t."Note", ''), ` +
				`"pg_catalog"."array_send"(t."tags"), pg_catalog.strpos(t."code", ''), pg_catalog.position(t."blob", ''::pg_catalog.bytea))), 0) ` +
				`FROM ONLY "Sales Data"."odd ""name""" t`},
		{"a variable-length type without a binary form: none",
			table(column{name: "id", typlen: 4}, column{name: "g", typlen: -1}), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := binaryRead(tt.table); got != tt.want {
				t.Errorf("binaryRead =\n%s\nwant\n%s", got, tt.want)
			}
		})
	}
}

// A table of more variable-length columns than a function takes arguments
// is read whole, its values in several calls.
func TestTablesReadableOnAWideTable(t *testing.T) {
	c := primary.server(t, setupPrimary)
	const columns = 2*maxFunctionArgs + 10
	var defs, values []string
	for i := range columns {
		defs = append(defs, fmt.Sprintf("c%d text", i))
		values = append(values, fmt.Sprintf("repeat('%d', g)", i%10))
	}
	if err := c.exec("postgres", "CREATE DATABASE wide"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.exec("postgres", "DROP DATABASE wide WITH (FORCE)"); err != nil {
			t.Error(err)
		}
	})
	if err := c.exec("wide", "CREATE TABLE wide ("+strings.Join(defs, ", ")+", at timestamptz NOT NULL DEFAULT now())",
		"INSERT INTO wide SELECT "+strings.Join(values, ", ")+" FROM generate_series(1, 50) g", "ANALYZE wide"); err != nil {
		t.Fatal(err)
	}
	sess := connect(t, c, "postgres", "wide", nil)
	r := byDatabase(t, sess.Run(t.Context(), []Check{{Name: "tables", Builtin: BuiltinTablesReadable}}))["wide"]
	if !r.Passed || r.Value != "1 tables, 50 rows, 0 large objects" || r.Message != "" {
		t.Errorf("TablesReadable on a table of %d text columns = %+v", columns, r)
	}
}
