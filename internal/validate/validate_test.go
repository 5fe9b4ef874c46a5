package validate

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

func s(v string) *string { return &v }

func TestEvaluate(t *testing.T) {
	tests := []struct {
		name   string
		expect Expectation
		value  *string
		found  bool
		want   string // "" = holds; otherwise a part of the failure
	}{
		{"equals as text", Expectation{Equals: s("ok")}, s("ok"), true, ""},
		{"text is case sensitive", Expectation{Equals: s("ok")}, s("OK"), true, `value "OK" is not "ok"`},
		{"equals numerically", Expectation{Equals: s("1000")}, s("1000.0"), true, ""},
		{"equals with exponent", Expectation{Equals: s("1e3")}, s("1000"), true, ""},
		{"not equal numbers", Expectation{Equals: s("999")}, s("1200"), true, "value 1200 is not 999"},
		{"number against text", Expectation{Equals: s("10")}, s("ten"), true, `value "ten" is not "10"`},
		{"hex is text, not a number", Expectation{Equals: s("16")}, s("0x10"), true, "is not"},
		{"min holds", Expectation{Min: s("1000")}, s("1200"), true, ""},
		{"min is inclusive", Expectation{Min: s("1000")}, s("1000"), true, ""},
		{"below min", Expectation{Min: s("1000")}, s("999"), true, "value 999 < min 1000"},
		{"max is inclusive", Expectation{Max: s("5")}, s("5.000"), true, ""},
		{"above max", Expectation{Max: s("5")}, s("5.5"), true, "value 5.5 > max 5"},
		{"between", Expectation{Min: s("1"), Max: s("10")}, s("-3"), true, "value -3 < min 1"},
		{"all conditions must hold", Expectation{Min: s("1"), Max: s("10")}, s("11"), true, "value 11 > max 10"},
		{"min on text", Expectation{Min: s("1")}, s("abc"), true, `value "abc" is not a number`},
		{"max on empty", Expectation{Max: s("1")}, s(""), true, `value "" is not a number`},
		{"big numbers compare exactly", Expectation{Min: s("100000000000000000000000001")}, s("100000000000000000000000000"), true, "< min"},
		{"infinity above any max", Expectation{Max: s("1e300")}, s("Infinity"), true, "value Infinity > max 1e300"},
		{"regex matches", Expectation{Regex: s(`^v\d+\.\d+$`)}, s("v16.4"), true, ""},
		{"regex does not match", Expectation{Regex: s(`^v\d+$`)}, s("v16.4"), true, `value "v16.4" does not match ^v\d+$`},
		{"not empty holds", Expectation{NotEmpty: true}, s("x"), true, ""},
		{"empty string", Expectation{NotEmpty: true}, s(""), true, "the value is empty"},
		{"blank string", Expectation{NotEmpty: true}, s("  "), true, "the value is empty"},
		{"NULL with not empty", Expectation{NotEmpty: true}, nil, true, "the value is NULL"},
		{"NULL with min", Expectation{Min: s("0")}, nil, true, "the value is NULL"},
		{"no rows", Expectation{NotEmpty: true}, nil, false, "the query returned no rows"},
		{"no rows with equals", Expectation{Equals: s("0")}, nil, false, "no rows"},
		{"long values are shortened", Expectation{Equals: s("x")}, s(strings.Repeat("y", 1000)), true, strings.Repeat("y", maxShown) + "…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := tt.expect.Evaluate(tt.value, tt.found)
			if (got == "") != (tt.want == "") || !strings.Contains(got, tt.want) {
				t.Errorf("Evaluate = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDescribe(t *testing.T) {
	tests := []struct {
		expect Expectation
		want   string
	}{
		{Expectation{Min: s("1000")}, ">= 1000"},
		{Expectation{Equals: s("5")}, "= 5"},
		{Expectation{Min: s("1"), Max: s("9")}, ">= 1 and <= 9"},
		{Expectation{Regex: s("^ok$")}, "matches ^ok$"},
		{Expectation{NotEmpty: true}, "not empty"},
		{Expectation{Equals: s("a"), NotEmpty: true}, "= a and not empty"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := tt.expect.Describe(); got != tt.want {
				t.Errorf("Describe = %q, want %q", got, tt.want)
			}
		})
	}
	for builtin, want := range map[string]string{BuiltinTablesReadable: "every table readable", BuiltinAmcheck: "every btree index verified"} {
		if got := expected(Check{Builtin: builtin}); got != want {
			t.Errorf("expected(%s) = %q, want %q", builtin, got, want)
		}
	}
}

func TestCheckValidateNamesTheField(t *testing.T) {
	tests := []struct {
		name  string
		check Check
		want  string // "" = valid; otherwise the whole error text
	}{
		{"sql with min", Check{Name: "a", SQL: "SELECT 1", Expect: Expectation{Min: s("1")}}, ""},
		{"sql with not empty", Check{SQL: "SELECT 1", Expect: Expectation{NotEmpty: true}}, ""},
		{"builtin", Check{Builtin: BuiltinAmcheck}, ""},
		{"tables builtin", Check{Builtin: BuiltinTablesReadable, Timeout: time.Second}, ""},
		{"both", Check{SQL: "SELECT 1", Builtin: BuiltinAmcheck}, "checks[2].sql: give exactly one of sql or builtin, not both"},
		{"neither", Check{Name: "x"}, "checks[2].sql: give exactly one of sql or builtin"},
		{"blank sql", Check{SQL: "  \n", Expect: Expectation{NotEmpty: true}}, "checks[2].sql: give exactly one of sql or builtin"},
		{"unknown builtin", Check{Builtin: "Fsck"}, `checks[2].builtin: unknown builtin "Fsck"; use TablesReadable or Amcheck`},
		{"no expectation", Check{SQL: "SELECT 1"}, "checks[2].expect: a sql check needs an expectation (equals, min, max, regex or notEmpty)"},
		{"bad min", Check{SQL: "SELECT 1", Expect: Expectation{Min: s("abc")}}, `checks[2].expect.min: "abc" is not a number`},
		{"bad max", Check{SQL: "SELECT 1", Expect: Expectation{Max: s("1,5")}}, `checks[2].expect.max: "1,5" is not a number`},
		{"min above max", Check{SQL: "SELECT 1", Expect: Expectation{Min: s("10"), Max: s("9.5")}}, "checks[2].expect: min 10 is greater than max 9.5, so no value can pass"},
		{"bad regex", Check{SQL: "SELECT 1", Expect: Expectation{Regex: s("(")}}, "checks[2].expect.regex: error parsing regexp: missing closing ): `(`"},
		{"negative timeout", Check{Builtin: BuiltinAmcheck, Timeout: -time.Second}, "checks[2].timeout: -1s is negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.check.Validate(2)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("Validate = %v, want valid", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Errorf("Validate = %v, want %q", err, tt.want)
			}
		})
	}
}

// The tests below run against a real PostgreSQL, started once for the test
// binary (as nobody when the tests run as root) and stopped in TestMain.

var server struct {
	once    sync.Once
	url     string // postgres://postgres@127.0.0.1:port/
	err     error  // why there is no server
	missing string // why PostgreSQL cannot start here
	cmd     *exec.Cmd
	done    chan struct{}
	dir     string
}

func TestMain(m *testing.M) {
	code := m.Run()
	if server.cmd != nil {
		_ = server.cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-server.done:
		case <-time.After(15 * time.Second):
			_ = server.cmd.Process.Kill()
			<-server.done
		}
	}
	if server.dir != "" {
		_ = os.RemoveAll(server.dir)
	}
	os.Exit(code)
}

// postgresBinDir finds initdb and postgres: $PG_BINDIR, the Debian layout, or PATH.
func postgresBinDir() string {
	candidates := []string{os.Getenv("PG_BINDIR")}
	versions, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Sort(sort.Reverse(sort.StringSlice(versions)))
	candidates = append(candidates, versions...)
	if p, err := exec.LookPath("postgres"); err == nil {
		candidates = append(candidates, filepath.Dir(p))
	}
	for _, dir := range candidates {
		if dir == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(dir, "initdb")); err == nil {
			return dir
		}
	}
	return ""
}

func startServer() {
	bin := postgresBinDir()
	if bin == "" {
		server.missing = "no PostgreSQL binaries (set PG_BINDIR)"
		return
	}
	dir, err := os.MkdirTemp("", "validate-pg-")
	if err != nil {
		server.err = err
		return
	}
	server.dir = dir
	var cred *syscall.Credential
	if os.Geteuid() == 0 { // postgres refuses to run as root
		uid, gid := 65534, 65534
		if u, err := user.Lookup("nobody"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			server.err = err
			return
		}
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		server.err = err
		return
	}
	logFile, err := os.Create(filepath.Join(dir, "postgres.log"))
	if err != nil {
		server.err = err
		return
	}
	defer logFile.Close()
	command := func(name string, args ...string) *exec.Cmd {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Dir = dir
		cmd.Env = []string{"LANG=C", "LC_ALL=C", "TZ=UTC", "PATH=/usr/bin:/bin"}
		cmd.Stdout, cmd.Stderr = logFile, logFile
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
		return cmd
	}
	data := filepath.Join(dir, "data")
	if err := command("initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8").Run(); err != nil {
		server.err = fmt.Errorf("initdb: %v\n%s", err, readLog(dir))
		return
	}
	port, err := freePort()
	if err != nil {
		server.err = err
		return
	}
	cmd := command("postgres", "-D", data, "-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(port),
		"-c", "unix_socket_directories="+dir, "-c", "fsync=off", "-c", "timezone=UTC", "-c", "shared_buffers=16MB")
	if err := cmd.Start(); err != nil {
		server.err = err
		return
	}
	server.cmd, server.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(server.done) }()
	server.url = fmt.Sprintf("postgres://postgres@127.0.0.1:%d/", port)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		select {
		case <-server.done:
			server.err = fmt.Errorf("postgres exited:\n%s", readLog(dir))
			return
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, server.url+"postgres?sslmode=disable")
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			server.err = fmt.Errorf("postgres did not accept connections: %v\n%s", err, readLog(dir))
			return
		}
	}
	server.err = createFixture()
}

func readLog(dir string) string {
	b, _ := os.ReadFile(filepath.Join(dir, "postgres.log"))
	return string(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// createFixture builds database drill: 1000 orders with an out-of-line
// TOASTed note, a partitioned table, materialized views and an oddly named
// table; plus role nopriv, which may read orders only, and an empty
// database noext owned by nobody special.
func createFixture() error {
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, server.url+"postgres?sslmode=disable")
	if err != nil {
		return err
	}
	defer admin.Close(ctx)
	for _, stmt := range []string{"CREATE DATABASE drill", "CREATE DATABASE noext", "CREATE ROLE nopriv LOGIN"} {
		if _, err := admin.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %v", stmt, err)
		}
	}
	conn, err := pgx.Connect(ctx, server.url+"drill?sslmode=disable")
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, stmt := range []string{
		`CREATE TABLE orders (id serial PRIMARY KEY, note text NOT NULL, created_at timestamptz NOT NULL)`,
		`CREATE INDEX orders_created ON orders (created_at)`,
		// md5 digests hardly compress: each note is stored out of line in TOAST.
		`INSERT INTO orders (note, created_at)
		 SELECT (SELECT string_agg(md5(g || '-' || i), '') FROM generate_series(1, 200) i),
		        timestamptz '2026-11-20 10:00:00+00' + g * interval '1 minute'
		 FROM generate_series(1, 1000) g`,
		`CREATE TABLE empty_events (at timestamptz)`,
		`CREATE TABLE events (id int, at date) PARTITION BY RANGE (at)`,
		`CREATE TABLE events_2026 PARTITION OF events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01')`,
		`CREATE INDEX events_id ON events (id)`, // partitioned index on the parent, a real one on the partition
		`INSERT INTO events SELECT g, date '2026-03-01' + g FROM generate_series(1, 10) g`,
		`CREATE MATERIALIZED VIEW order_days AS SELECT created_at::date AS day, count(*) AS n FROM orders GROUP BY 1`,
		`CREATE UNIQUE INDEX order_days_day ON order_days (day)`,
		`CREATE MATERIALIZED VIEW never_refreshed AS SELECT 1 AS one WITH NO DATA`,
		`CREATE SCHEMA "Sales Data"`,
		`CREATE TABLE "Sales Data"."odd ""name""" (x int)`,
		`INSERT INTO "Sales Data"."odd ""name""" VALUES (1), (2)`,
		`GRANT SELECT ON orders TO nopriv`,
	} {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %v", stmt, err)
		}
	}
	return nil
}

// connect returns a connection to database db as user, starting the server
// on first use; database tests are skipped with -short.
func connect(t *testing.T, user, db string) *pgx.Conn {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped with -short")
	}
	server.once.Do(startServer)
	if server.missing != "" {
		// Not a skip: a machine without PostgreSQL must not pass these tests.
		t.Fatalf("%s: install PostgreSQL (make deps) or run with -short", server.missing)
	}
	if server.err != nil {
		t.Fatalf("cannot start PostgreSQL: %v", server.err)
	}
	url := strings.Replace(server.url, "postgres@", user+"@", 1) + db + "?sslmode=disable"
	conn, err := pgx.Connect(t.Context(), url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

func TestRunAgainstPostgres(t *testing.T) {
	conn := connect(t, "postgres", "drill")
	var toasted int
	var toastTable string
	if err := conn.QueryRow(t.Context(), `SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'orders'::regclass`).Scan(&toastTable); err != nil {
		t.Fatal(err)
	}
	if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM "+toastTable).Scan(&toasted); err != nil || toasted == 0 {
		t.Fatalf("the fixture's notes are not TOASTed out of line: %d chunks in %s (%v)", toasted, toastTable, err)
	}

	tests := []struct {
		check   Check
		passed  bool
		value   string
		message string // a part of Message; "" when passed
	}{
		{Check{Name: "enough-orders", SQL: "SELECT count(*) FROM orders", Expect: Expectation{Min: s("1000")}}, true, "1000", ""},
		{Check{Name: "too-few-orders", SQL: "SELECT count(*) FROM orders", Expect: Expectation{Min: s("1001")}}, false, "1000", "value 1000 < min 1001"},
		{Check{Name: "missing-table", SQL: "SELECT count(*) FROM invoices", Expect: Expectation{Min: s("1")}}, false, "", `relation "invoices" does not exist (SQLSTATE 42P01)`},
		{Check{Name: "runs-after-a-failure", SQL: "SELECT 'ok'", Expect: Expectation{Regex: s("^ok$")}}, true, "ok", ""},
		{Check{Name: "sneaky-insert", SQL: "INSERT INTO orders (note, created_at) VALUES ('x', now()) RETURNING 1", Expect: Expectation{Equals: s("1")}}, false, "", "cannot execute INSERT in a read-only transaction (SQLSTATE 25006)"},
		{Check{Name: "sneaky-nextval", SQL: "SELECT pg_catalog.nextval('orders_id_seq')", Expect: Expectation{Min: s("1")}}, false, "", "read-only transaction (SQLSTATE 25006)"},
		{Check{Name: "escape-the-transaction", SQL: "COMMIT; DELETE FROM orders; SELECT 1", Expect: Expectation{Equals: s("1")}}, false, "", "cannot insert multiple commands into a prepared statement (SQLSTATE 42601)"},
		{Check{Name: "slow", SQL: "SELECT pg_sleep(2)", Expect: Expectation{NotEmpty: true}, Timeout: 200 * time.Millisecond}, false, "", "canceling statement due to statement timeout (SQLSTATE 57014); the check's timeout is 200ms"},
		{Check{Name: "numeric", SQL: "SELECT 1000.0::numeric", Expect: Expectation{Equals: s("1000")}}, true, "1000.0", ""},
		{Check{Name: "boolean", SQL: "SELECT count(*) = 1000 FROM orders", Expect: Expectation{Equals: s("true")}}, true, "true", ""},
		{Check{Name: "toasted", SQL: "SELECT min(length(note)) FROM orders", Expect: Expectation{Equals: s("6400")}}, true, "6400", ""},
		{Check{Name: "null", SQL: "SELECT NULL::text", Expect: Expectation{NotEmpty: true}}, false, "NULL", "the value is NULL"},
		{Check{Name: "no-rows", SQL: "SELECT 1 WHERE false", Expect: Expectation{NotEmpty: true}}, false, "", "the query returned no rows"},
		{Check{Name: "invalid", SQL: "SELECT 1"}, false, "", "invalid check: checks[13].expect: a sql check needs an expectation"},
		{Check{Name: "tables", Builtin: BuiltinTablesReadable}, true, "5 tables, 1014 rows", ""},
		{Check{Name: "indexes", Builtin: BuiltinAmcheck}, true, "4 indexes verified", ""},
	}
	checks := make([]Check, len(tests))
	for i, tt := range tests {
		checks[i] = tt.check
	}
	results := Run(t.Context(), conn, checks)
	if len(results) != len(checks) {
		t.Fatalf("%d results for %d checks", len(results), len(checks))
	}
	for i, tt := range tests {
		t.Run(tt.check.Name, func(t *testing.T) {
			r := results[i]
			if r.Name != tt.check.Name || r.Passed != tt.passed || r.Value != tt.value || !strings.Contains(r.Message, tt.message) || (tt.passed && r.Message != "") {
				t.Errorf("got passed=%v value=%q message=%q; want passed=%v value=%q message containing %q",
					r.Passed, r.Value, r.Message, tt.passed, tt.value, tt.message)
			}
			if r.Expected != expected(tt.check) {
				t.Errorf("Expected = %q, want %q", r.Expected, expected(tt.check))
			}
			if (r.Duration <= 0 && tt.check.Name != "invalid") || r.Duration > 30*time.Second {
				t.Errorf("Duration = %s", r.Duration)
			}
		})
	}
	if d := results[7].Duration; d > 1500*time.Millisecond {
		t.Errorf("the 200ms check took %s", d)
	}
	var count, last int64
	if err := conn.QueryRow(t.Context(), "SELECT (SELECT count(*) FROM orders), (SELECT last_value FROM orders_id_seq)").Scan(&count, &last); err != nil || count != 1000 || last != 1000 {
		t.Errorf("the read-only checks wrote: %d orders, sequence at %d (%v)", count, last, err)
	}
}

func TestBuiltinsReportTheFailingRelation(t *testing.T) {
	conn := connect(t, "nopriv", "drill")
	results := Run(t.Context(), conn, []Check{{Name: "tables", Builtin: BuiltinTablesReadable}})
	// Tables are read in order of schema and name: "Sales Data" first.
	want := `table "Sales Data"."odd ""name""": permission denied for schema Sales Data (SQLSTATE 42501)`
	if r := results[0]; r.Passed || r.Message != want || r.Value != "0 tables, 0 rows" {
		t.Errorf("TablesReadable without privileges = %+v, want message %q", r, want)
	}

	conn = connect(t, "nopriv", "noext")
	results = Run(t.Context(), conn, []Check{{Name: "indexes", Builtin: BuiltinAmcheck}})
	if r := results[0]; r.Passed || !strings.Contains(r.Message, "cannot create the amcheck extension") || !strings.Contains(r.Message, "SQLSTATE 42501") {
		t.Errorf("Amcheck without the right to create the extension = %+v", r)
	}
}

func TestFreshnessAgainstPostgres(t *testing.T) {
	conn := connect(t, "postgres", "drill")
	newestOrder := time.Date(2026, 11, 21, 2, 40, 0, 0, time.UTC)
	tests := []struct {
		name    string
		sql     string
		timeout time.Duration
		want    time.Time
		wantErr string
	}{
		{"timestamptz", "SELECT max(created_at) FROM orders", time.Minute, newestOrder, ""},
		{"timestamp as UTC", "SELECT max(created_at AT TIME ZONE 'UTC'), 'ignored' FROM orders", time.Minute, newestOrder, ""},
		{"date", "SELECT max(at) FROM events", 0, time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), ""},
		{"NULL", "SELECT max(at) FROM empty_events", time.Minute, time.Time{}, "the freshness query returned NULL"},
		{"no rows", "SELECT at FROM empty_events", time.Minute, time.Time{}, "the freshness query returned no rows"},
		{"not a timestamp", "SELECT 'yesterday'", time.Minute, time.Time{}, "the freshness query returned a text, want a timestamptz, timestamp or date"},
		{"infinity", "SELECT timestamptz 'infinity'", time.Minute, time.Time{}, "not a point in time"},
		{"missing table", "SELECT max(at) FROM nowhere", time.Minute, time.Time{}, `freshness query: relation "nowhere" does not exist (SQLSTATE 42P01)`},
		{"read-only", "SELECT now() FROM nextval('orders_id_seq')", time.Minute, time.Time{}, "read-only transaction (SQLSTATE 25006)"},
		{"timeout", "SELECT now() FROM pg_sleep(2)", 200 * time.Millisecond, time.Time{}, "statement timeout (SQLSTATE 57014)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Freshness(t.Context(), conn, tt.sql, tt.timeout)
			if tt.wantErr == "" {
				if err != nil || !got.Equal(tt.want) {
					t.Errorf("Freshness = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Freshness = %v, %v; want an error containing %q", got, err, tt.wantErr)
			}
		})
	}
}

func TestRunStopsWhenTheContextEnds(t *testing.T) {
	conn := connect(t, "postgres", "drill")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	results := Run(ctx, conn, []Check{
		{Name: "a", SQL: "SELECT 1", Expect: Expectation{Equals: s("1")}},
		{Name: "b", Builtin: BuiltinTablesReadable},
	})
	for i, want := range []Result{
		{Name: "a", Expected: "= 1", Message: "not run: context canceled"},
		{Name: "b", Expected: "every table readable", Message: "not run: context canceled"},
	} {
		if results[i] != want {
			t.Errorf("results[%d] = %+v, want %+v", i, results[i], want)
		}
	}
	if got := Run(t.Context(), conn, []Check{{Name: "a", SQL: "SELECT 1", Expect: Expectation{Equals: s("1")}}}); !got[0].Passed {
		t.Errorf("the connection is unusable after a canceled run: %+v", got[0])
	}
}
