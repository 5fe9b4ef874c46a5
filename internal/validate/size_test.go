package validate

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// sized is a cluster of its own for measuring reads: shared buffers start
// empty after its restart.
var sized started

// setupSized makes table reads (about 12 MB) and stops and starts the
// server, so that no page of it is in shared buffers.
func setupSized() (*cluster, error) {
	c, err := newCluster()
	if err != nil {
		return c, err
	}
	if err := c.start(); err != nil {
		return c, err
	}
	if err := c.exec("postgres", `CREATE TABLE reads AS SELECT g AS id, repeat(md5(g::text), 16) AS pad FROM generate_series(1, 20000) g`,
		`CREATE DATABASE other`, `CHECKPOINT`); err != nil {
		return c, err
	}
	if err := c.stop(); err != nil {
		return c, err
	}
	return c, c.start()
}

func TestBytesReadCountsWhatTheChecksRead(t *testing.T) {
	c := sized.server(t, setupSized)
	defer func() { // the tests of the shared clusters know nothing of this one
		_ = c.stop()
		_ = os.RemoveAll(c.dir)
	}()
	sess := connect(t, c, "postgres", "postgres", nil)
	if _, err := sess.Restrict(t.Context(), NewReaderRole()); err != nil {
		t.Fatal(err)
	}
	var relBytes int64
	if err := sess.conn.QueryRow(t.Context(), `SELECT pg_relation_size('reads')`).Scan(&relBytes); err != nil {
		t.Fatal(err)
	}
	before, err := sess.BytesRead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// The user's SQL reads the table on the restricted reader's connection.
	var n int64
	if err := sess.forChecks().conn.QueryRow(t.Context(), `SELECT count(*) FROM reads`).Scan(&n); err != nil || n != 20000 {
		t.Fatalf("count = %d, %v", n, err)
	}
	after, err := sess.BytesRead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	// Every page of the table came from outside shared buffers; catalog
	// pages the new connection looked up add a little.
	if read := after - before; read < relBytes || read > relBytes+2<<20 {
		t.Errorf("read %d bytes while the table of %d bytes was scanned, want at least its size and at most 2 MiB more", read, relBytes)
	}
	// Read again, the table is not read anew: its pages that stayed in
	// shared buffers are hits, the others are read again (a large table's
	// scan uses a small ring of buffers), never more than the table.
	if err := sess.forChecks().conn.QueryRow(t.Context(), `SELECT count(*) FROM reads`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	again, err := sess.BytesRead(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if read := again - after; read > relBytes+1<<20 {
		t.Errorf("a second scan read %d bytes, more than the table's %d", read, relBytes)
	}
}

func TestDatabaseBytesIsTheDatabasesOnDisk(t *testing.T) {
	c := primary.server(t, setupPrimary)
	// Connected first: a backend's first connection to a database writes
	// its relation cache file there.
	super, nopriv := openSession(t, "postgres", "postgres"), openSession(t, "nopriv", "drill")
	var onDisk int64
	dirs, err := os.ReadDir(filepath.Join(c.data, "base"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if _, err := strconv.ParseUint(d.Name(), 10, 32); err != nil || !d.IsDir() {
			continue // e.g. pgsql_tmp
		}
		files, err := os.ReadDir(filepath.Join(c.data, "base", d.Name()))
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range files {
			if info, err := f.Info(); err == nil && !f.IsDir() {
				onDisk += info.Size()
			}
		}
	}
	all, err := super.DatabaseBytes(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if all != onDisk {
		t.Errorf("DatabaseBytes as the superuser = %d, want %d: the files under base/", all, onDisk)
	}
	var private int64
	if err := c.query("postgres", `SELECT pg_database_size('private')`, &private); err != nil {
		t.Fatal(err)
	}
	mine, err := nopriv.DatabaseBytes(t.Context())
	if err != nil {
		t.Fatalf("DatabaseBytes as a role that may not connect to every database: %v", err)
	}
	if mine != all-private {
		t.Errorf("DatabaseBytes as nopriv = %d, want %d: all but database private, which it may not connect to", mine, all-private)
	}
}
