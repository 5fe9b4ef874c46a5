package validate

// The database tests run against a real PostgreSQL, started once for the
// test binary (as nobody when the tests run as root) and stopped in TestMain.

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

// openSession returns a Session on database db as user, starting the server
// on first use; database tests are skipped with -short.
func openSession(t *testing.T, user, db string) *Session {
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
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		t.Fatal(err)
	}
	sess, err := Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	return sess
}
