package validate

// The primary's fixture: undamaged databases, and databases damaged on disk
// while the server is stopped, the way amcheck's own tests (contrib/amcheck/t/)
// corrupt pages on purpose and assert the exact complaint.

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"os"
	"strings"
)

// damage records what setupPrimary did to the damaged databases, for the
// tests to expect exactly that.
var damage struct {
	truncated struct {
		rowsKept     int64 // rows on the pages left
		pagesKept    int64
		catalogPages int64 // relpages
		catalogRows  float64
	}
	unlinkedFile string // the removed file, as pg_relation_filepath names it
	heap         struct {
		block, offset int
		xmin          uint32
	}
	toast       toastDamage // notes'
	toastAsText toastDamage // permits', a table TablesReadable reads as text
	toastWide   toastDamage // wide's, whose TOASTed column comes after maxFunctionArgs others
	toastBytes  toastDamage // attachments', a bytea column's
}

// toastDamage is a TOAST index whose leaf has two items swapped.
type toastDamage struct {
	index string // the damaged TOAST index, schema-qualified
	table string // its TOAST table, unqualified
	value uint32 // the value whose chunks it finds out of order
	file  string // the index's file, as pg_relation_filepath names it
}

// ordersTable makes table orders of n rows with a primary key, VACUUMed and
// ANALYZEd so the catalog knows its size.
func ordersTable(n int) []string {
	return []string{
		`CREATE TABLE orders (id int PRIMARY KEY, note text NOT NULL)`,
		fmt.Sprintf(`INSERT INTO orders SELECT g, md5(g::text) FROM generate_series(1, %d) g`, n),
		`VACUUM ANALYZE orders`,
	}
}

// setupPrimary builds, on a cluster without data checksums:
//   - drill: 1000 orders with an out-of-line TOASTed note, a partitioned
//     table with a column of a type without a binary form, materialized
//     views, an oddly named table of several types and a large object;
//     role nopriv may read orders only;
//   - noext: an empty database; private: an empty one nopriv may not
//     connect to;
//   - truncated: orders (20000 rows), whose file is cut to 3 pages;
//   - unlinked: orders, whose file is removed;
//   - heapdamage: orders, where one tuple in the middle of its first page
//     gets an xmin from the future;
//   - indexdamage: orders, where two items of its primary key's leaf page
//     swap places, and notes and permits, where two items of their TOAST
//     tables' indexes do;
//   - byteadamage: attachments, notes as bytea, where two items of its
//     TOAST table's index swap places;
//   - compressdamage: memos, one value compressed (pglz) in its row, whose
//     compressed bytes are garbled after the first eight;
//   - legacy: a SQL_ASCII database whose letters hold bytes that are not
//     UTF8 (Latin-1's é), in the row and out of line in TOAST; its
//     sessions' client_encoding is UTF8 unless they set their own;
//   - widedamage: wide, the notes after more text columns than a function
//     takes arguments (TablesReadable reads them in a second call), where
//     two items of its TOAST table's index swap places.
func setupPrimary() (*cluster, error) {
	c, err := newCluster()
	if err != nil {
		return c, err
	}
	if err := c.start(); err != nil {
		return c, err
	}
	var stmts []string
	for _, db := range []string{"drill", "noext", "private", "truncated", "unlinked", "heapdamage", "indexdamage", "byteadamage", "compressdamage", "widedamage"} {
		stmts = append(stmts, "CREATE DATABASE "+db+"")
	}
	stmts = append(stmts, "CREATE DATABASE legacy ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0",
		"ALTER DATABASE legacy SET client_encoding = 'UTF8'")
	stmts = append(stmts, "CREATE ROLE nopriv LOGIN", "REVOKE CONNECT ON DATABASE private FROM PUBLIC")
	if err := c.exec("postgres", stmts...); err != nil {
		return c, err
	}
	if err := c.exec("drill",
		`CREATE TABLE orders (id serial PRIMARY KEY, note text NOT NULL, created_at timestamptz NOT NULL)`,
		`CREATE INDEX orders_created ON orders (created_at)`,
		// md5 digests hardly compress: each note is stored out of line in TOAST.
		`INSERT INTO orders (note, created_at)
		 SELECT (SELECT string_agg(md5(g || '-' || i), '') FROM generate_series(1, 200) i),
		        timestamptz '2026-11-20 10:00:00+00' + g * interval '1 minute'
		 FROM generate_series(1, 1000) g`,
		`CREATE TABLE empty_events (at timestamptz)`,
		// aclitem has no binary form: TablesReadable reads the array in
		// events as text.
		`CREATE TABLE events (id int, at date, granted aclitem[] NOT NULL DEFAULT '{postgres=r/postgres}') PARTITION BY RANGE (at)`,
		`CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		`CREATE INDEX events_id ON events (id)`, // partitioned index on the parent, a real one on the partition
		`INSERT INTO events SELECT g, date '2026-03-01' + g FROM generate_series(1, 10) g`,
		`CREATE MATERIALIZED VIEW order_days AS SELECT created_at::date AS day, count(*) AS n FROM orders GROUP BY 1`,
		`CREATE UNIQUE INDEX order_days_day ON order_days (day)`,
		`CREATE MATERIALIZED VIEW never_refreshed AS SELECT 1 AS one WITH NO DATA`,
		`CREATE SCHEMA "Sales Data"`,
		`CREATE TYPE mood AS ENUM ('calm', 'busy')`,
		// A single aclitem is stored in the row: it needs no binary form.
		// scan's 3,200 random bytes are stored out of line in TOAST, memo's
		// 4,800 compressed in the row.
		`CREATE TABLE "Sales Data"."odd ""name""" (x int, m mood, doc json, tags jsonb, amounts numeric[], at timestamptz, span tstzrange, acl aclitem,
		 label varchar(20), scan bytea, memo text COMPRESSION pglz)`,
		`INSERT INTO "Sales Data"."odd ""name""" VALUES
		 (1, 'calm', '{"a": 1}', '["x"]', '{1.5, 2}', '2026-11-20 10:00:00+00', '[2026-11-20, 2026-11-21)', 'postgres=r/postgres', 'première',
		  (SELECT decode(string_agg(md5(i::text), ''), 'hex') FROM generate_series(1, 200) i), repeat('`+memoWords+`', 300)),
		 (2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL)`,
		`SELECT lo_from_bytea(0, convert_to('a large object', 'UTF8'))`,
		`VACUUM ANALYZE`,
		`GRANT SELECT ON orders TO nopriv`,
	); err != nil {
		return c, err
	}

	// The damaged databases, and where their files are.
	tr := &damage.truncated
	tr.pagesKept = 3
	if err := c.exec("truncated", ordersTable(20000)...); err != nil {
		return c, err
	}
	var truncatedFile string
	if err := c.query("truncated", fmt.Sprintf(`SELECT pg_relation_filepath('orders'), relpages, reltuples,
		  (SELECT count(*) FROM orders WHERE (ctid::text::point)[0] < %d)
		FROM pg_class WHERE oid = 'orders'::regclass`, tr.pagesKept),
		&truncatedFile, &tr.catalogPages, &tr.catalogRows, &tr.rowsKept); err != nil {
		return c, err
	}
	if err := c.exec("unlinked", ordersTable(1000)...); err != nil {
		return c, err
	}
	if err := c.query("unlinked", "SELECT pg_relation_filepath('orders')", &damage.unlinkedFile); err != nil {
		return c, err
	}
	var heapFile, indexFile string
	var nextXid int64
	if err := c.exec("heapdamage", ordersTable(1000)...); err != nil {
		return c, err
	}
	if err := c.query("heapdamage", "SELECT pg_relation_filepath('orders'), txid_current()", &heapFile, &nextXid); err != nil {
		return c, err
	}
	if err := c.exec("indexdamage", ordersTable(100)...); err != nil {
		return c, err
	}
	if err := c.query("indexdamage", "SELECT pg_relation_filepath('orders_pkey')", &indexFile); err != nil {
		return c, err
	}
	// 20 notes of 6400 hardly compressible bytes: four TOAST chunks each.
	// permits has them too, after a column of a type without a binary
	// form: TablesReadable reads it as text.
	if err := c.exec("indexdamage",
		`CREATE TABLE notes (id int PRIMARY KEY, body text NOT NULL)`,
		`INSERT INTO notes SELECT g, (SELECT string_agg(md5(g || '-' || i), '') FROM generate_series(1, 200) i) FROM generate_series(1, 20) g`,
		`CREATE TABLE permits (id int PRIMARY KEY, grants aclitem[] NOT NULL, body text NOT NULL)`,
		`INSERT INTO permits SELECT id, '{postgres=r/postgres}', body FROM notes`,
		`VACUUM ANALYZE notes, permits`); err != nil {
		return c, err
	}
	if err := c.exec("byteadamage",
		`CREATE TABLE attachments (id int PRIMARY KEY, body bytea NOT NULL)`,
		`INSERT INTO attachments SELECT g, (SELECT convert_to(string_agg(md5(g || '-' || i), ''), 'UTF8') FROM generate_series(1, 200) i) FROM generate_series(1, 20) g`,
		`VACUUM ANALYZE attachments`); err != nil {
		return c, err
	}
	if err := c.exec("legacy",
		`CREATE TABLE letters (id int PRIMARY KEY, body text NOT NULL)`,
		`INSERT INTO letters VALUES (1, E'caf\xe9'), (2, (SELECT string_agg(md5(i::text) || E'\xe9', '') FROM generate_series(1, 200) i))`,
		`VACUUM ANALYZE letters`); err != nil {
		return c, err
	}
	if err := c.exec("compressdamage",
		`CREATE TABLE memos (id int PRIMARY KEY, body text COMPRESSION pglz NOT NULL)`,
		`INSERT INTO memos VALUES (1, repeat('`+memoWords+`', 300))`,
		`VACUUM ANALYZE memos`); err != nil {
		return c, err
	}
	var memosFile string
	if err := c.query("compressdamage", "SELECT pg_relation_filepath('memos')", &memosFile); err != nil {
		return c, err
	}
	var wideColumns []string
	for i := range maxFunctionArgs + 10 {
		wideColumns = append(wideColumns, fmt.Sprintf("c%d text", i))
	}
	if err := c.exec("widedamage",
		`CREATE TABLE wide (id int PRIMARY KEY, `+strings.Join(wideColumns, ", ")+`, body text NOT NULL)`,
		`INSERT INTO wide (id, c0, body) SELECT g, 'short', (SELECT string_agg(md5(g || '-' || i), '') FROM generate_series(1, 200) i) FROM generate_series(1, 20) g`,
		`VACUUM ANALYZE wide`); err != nil {
		return c, err
	}
	toasted := []struct {
		db, table string
		td        *toastDamage
	}{
		{"indexdamage", "notes", &damage.toast}, {"indexdamage", "permits", &damage.toastAsText},
		{"byteadamage", "attachments", &damage.toastBytes}, {"widedamage", "wide", &damage.toastWide},
	}
	for _, tt := range toasted {
		db, table, td := tt.db, tt.table, tt.td
		if err := c.query(db, `SELECT pg_relation_filepath(i.indexrelid), i.indexrelid::regclass::text, t.relname FROM pg_index i
			JOIN pg_class t ON t.oid = i.indrelid WHERE t.oid = (SELECT reltoastrelid FROM pg_class WHERE oid = '`+table+`'::regclass)`,
			&td.file, &td.index, &td.table); err != nil {
			return c, err
		}
		// The index's leaf, block 1, lists four chunks a value in order:
		// items 9 to 12 are the third value's.
		if err := c.query(db, "SELECT DISTINCT chunk_id::bigint FROM pg_toast."+td.table+" ORDER BY 1 OFFSET 2 LIMIT 1", &td.value); err != nil {
			return c, err
		}
	}
	if err := c.stop(); err != nil {
		return c, err
	}
	if err := os.Truncate(c.file(truncatedFile), tr.pagesKept*pageSize); err != nil {
		return c, err
	}
	if err := os.Remove(c.file(damage.unlinkedFile)); err != nil {
		return c, err
	}
	damage.heap.xmin = uint32(nextXid + 100000)
	offset, err := setXmin(c.file(heapFile), 0, damage.heap.xmin)
	if err != nil {
		return c, err
	}
	damage.heap.block, damage.heap.offset = 0, offset
	if err := garbleCompressed(c.file(memosFile), 0, []byte(memoWords[:8])); err != nil {
		return c, err
	}
	// Block 0 is the metapage; 100 keys fit the root, a leaf, in block 1.
	if err := swapItems(c.file(indexFile), 1, 10, 11); err != nil {
		return c, err
	}
	for _, tt := range toasted {
		if err := swapItems(c.file(tt.td.file), 1, 10, 11); err != nil {
			return c, err
		}
	}
	return c, c.start()
}

// memoWords, repeated, make memos' value: pglz stores its first eight bytes
// as literals, then refers back to them.
const memoWords = "memo of a drill "

// garbleCompressed overwrites the 16 bytes after the first occurrence of
// literals in a page: in a pglz stream they are control bytes and back
// references, which then point before the start of the output, and
// PostgreSQL refuses to decompress the value ("compressed pglz data is
// corrupt"). The page and the value's header are otherwise untouched.
func garbleCompressed(path string, block int64, literals []byte) error {
	return editPage(path, block, func(page []byte) error {
		at := bytes.Index(page, literals)
		if at < 0 || bytes.Contains(page[at+1:], literals) {
			return fmt.Errorf("%s block %d: %q is not in it once", path, block, literals)
		}
		for i := at + len(literals); i < at+len(literals)+16; i++ {
			page[i] = 0xff
		}
		return nil
	})
}

// pageSize is PostgreSQL's default block size.
const pageSize = 8192

// Page layout (src/include/storage/bufpage.h, itemid.h, htup_details.h):
// pd_lower at byte 12, line pointers from byte 24, 4 bytes each (lp_off:15,
// lp_flags:2, lp_len:15, little-endian); a heap tuple starts with t_xmin, and
// t_infomask is at byte 20 of it.
const (
	pdLowerAt        = 12
	linePointersAt   = 24
	tupleInfomaskAt  = 20
	xminHintBits     = 0x0100 | 0x0200 // HEAP_XMIN_COMMITTED | HEAP_XMIN_INVALID
	linePointerBytes = 4
)

// editPage reads a page of a relation file, lets edit change it, and
// writes it back.
func editPage(path string, block int64, edit func(page []byte) error) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	page := make([]byte, pageSize)
	if _, err := f.ReadAt(page, block*pageSize); err != nil {
		return err
	}
	if err := edit(page); err != nil {
		return err
	}
	if _, err := f.WriteAt(page, block*pageSize); err != nil {
		return err
	}
	return f.Close()
}

// setXmin gives the tuple of the middle line pointer of a heap page an xmin
// and clears its xmin hint bits, and returns the tuple's offset number.
func setXmin(path string, block int64, xmin uint32) (offset int, err error) {
	err = editPage(path, block, func(page []byte) error {
		items := (int(binary.LittleEndian.Uint16(page[pdLowerAt:])) - linePointersAt) / linePointerBytes
		if items < 3 {
			return fmt.Errorf("%s block %d has %d items", path, block, items)
		}
		offset = items / 2
		lp := binary.LittleEndian.Uint32(page[linePointersAt+(offset-1)*linePointerBytes:])
		tuple := int(lp & 0x7FFF)
		binary.LittleEndian.PutUint32(page[tuple:], xmin)
		infomask := binary.LittleEndian.Uint16(page[tuple+tupleInfomaskAt:])
		binary.LittleEndian.PutUint16(page[tuple+tupleInfomaskAt:], infomask&^xminHintBits)
		return nil
	})
	return offset, err
}

// swapItems swaps two line pointers (offset numbers from 1) of a page.
func swapItems(path string, block int64, a, b int) error {
	return editPage(path, block, func(page []byte) error {
		pa := page[linePointersAt+(a-1)*linePointerBytes:][:linePointerBytes]
		pb := page[linePointersAt+(b-1)*linePointerBytes:][:linePointerBytes]
		var tmp [linePointerBytes]byte
		copy(tmp[:], pa)
		copy(pa, pb)
		copy(pb, tmp[:])
		return nil
	})
}
