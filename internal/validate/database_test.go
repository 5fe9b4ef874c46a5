package validate

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/drillerd/drillerd/test/nodeemu/pgproc"
)

// startPostgres runs a real PostgreSQL for the test (as nobody; the tests run
// as root here) and returns a connection to database app.
func startPostgres(t *testing.T) *pgx.Conn {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skip("no user nobody to run PostgreSQL as")
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	dir, err := os.MkdirTemp("", "validate-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	port := 20000 + os.Getpid()%20000
	spec := pgproc.Spec{
		DataDir:       filepath.Join(dir, "data"),
		ListenAddress: "127.0.0.1",
		Port:          port,
		Args:          []string{"-c", "fsync=off", "-c", "shared_buffers=16MB"},
		Env:           map[string]string{"POSTGRES_USER": "app", "POSTGRES_DB": "app", "POSTGRES_HOST_AUTH_METHOD": "trust"},
		UID:           uint32(uid), GID: uint32(gid),
		RuntimeDir: filepath.Join(dir, "run"),
		LogPath:    filepath.Join(dir, "postgres.log"),
	}
	ctx := t.Context()
	if _, err := pgproc.Initialize(ctx, spec); err != nil {
		t.Fatalf("initdb: %v", err)
	}
	proc, err := pgproc.Start(spec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proc.Stop(10 * time.Second) })
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	for deadline := time.Now().Add(30 * time.Second); ; {
		if ready, _ := pgproc.Probe(ctx, addr); ready {
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(spec.LogPath)
			t.Fatalf("postgres did not start:\n%s", log)
		}
		time.Sleep(100 * time.Millisecond)
	}
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@%s/app?sslmode=disable", addr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	for _, stmt := range []string{
		`CREATE TABLE orders (id serial PRIMARY KEY, note text, created_at timestamptz NOT NULL)`,
		`CREATE INDEX orders_created ON orders (created_at)`,
		`INSERT INTO orders (note, created_at) SELECT repeat('n', 5000), timestamptz '2026-11-20 10:00:00+00' + (g || ' minutes')::interval FROM generate_series(1, 1000) g`,
		`CREATE TABLE empty_events (at timestamptz)`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			t.Fatalf("%s: %v", stmt, err)
		}
	}
	return conn
}

func TestRunAgainstPostgres(t *testing.T) {
	conn := startPostgres(t)
	checks := []Check{
		{Name: "enough-orders", SQL: "SELECT count(*) FROM orders", Expect: Expectation{Min: s("1000")}},
		{Name: "too-few-orders", SQL: "SELECT count(*) FROM orders", Expect: Expectation{Min: s("1001")}},
		{Name: "missing-table", SQL: "SELECT count(*) FROM invoices", Expect: Expectation{Min: s("1")}},
		{Name: "sneaky-write", SQL: "INSERT INTO orders (note, created_at) VALUES ('x', now()) RETURNING 1", Expect: Expectation{Equals: s("1")}},
		{Name: "slow", SQL: "SELECT pg_sleep(5)", Expect: Expectation{NotEmpty: true}, Timeout: 200 * time.Millisecond},
		{Name: "tables", Builtin: BuiltinTablesReadable},
		{Name: "indexes", Builtin: BuiltinAmcheck},
	}
	results := Run(t.Context(), conn, checks)
	want := []struct {
		passed  bool
		value   string
		message string
	}{
		{true, "1000", ""},
		{false, "1000", "value 1000 < 1001"},
		{false, "", `relation "invoices" does not exist (SQLSTATE 42P01)`},
		{false, "", "read-only transaction (SQLSTATE 25006)"},
		{false, "", "statement timeout (SQLSTATE 57014)"},
		{true, "2 tables, 1000 rows", ""},
		{true, "2 indexes verified", ""},
	}
	if len(results) != len(want) {
		t.Fatalf("%d results for %d checks", len(results), len(want))
	}
	for i, r := range results {
		w := want[i]
		if r.Name != checks[i].Name || r.Passed != w.passed || r.Value != w.value || !strings.Contains(r.Message, w.message) {
			t.Errorf("%s: got passed=%v value=%q message=%q; want passed=%v value=%q message containing %q",
				checks[i].Name, r.Passed, r.Value, r.Message, w.passed, w.value, w.message)
		}
	}
	var count int
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM orders").Scan(&count); err != nil || count != 1000 {
		t.Errorf("the read-only check wrote: %d orders (%v)", count, err)
	}
}

func TestFreshnessAgainstPostgres(t *testing.T) {
	conn := startPostgres(t)
	newest, err := Freshness(t.Context(), conn, "SELECT max(created_at) FROM orders", time.Minute)
	if want := time.Date(2026, 11, 21, 2, 40, 0, 0, time.UTC); err != nil || !newest.Equal(want) {
		t.Errorf("Freshness = %v, %v; want %v", newest, err, want)
	}
	if _, err := Freshness(t.Context(), conn, "SELECT max(at) FROM empty_events", time.Minute); err == nil || !strings.Contains(err.Error(), "NULL") {
		t.Errorf("Freshness on an empty table = %v, want an error saying NULL", err)
	}
	if _, err := Freshness(t.Context(), conn, "SELECT 'yesterday'", time.Minute); err == nil {
		t.Error("Freshness of a non-timestamp succeeded")
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	conn := startPostgres(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results := Run(ctx, conn, []Check{{Name: "a", SQL: "SELECT 1", Expect: Expectation{Equals: s("1")}}})
	if len(results) != 1 || results[0].Passed || !strings.Contains(results[0].Message, "not run") {
		t.Errorf("results = %+v, want one check not run", results)
	}
}
