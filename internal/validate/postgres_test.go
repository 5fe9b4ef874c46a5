package validate

// The database tests run against real PostgreSQL servers, started on first
// use (as nobody when the tests run as root) and stopped in TestMain:
//
//   - primary: a cluster without data checksums holding the undamaged
//     fixture and databases the fixture damages on disk while the server is
//     stopped (fixture_test.go);
//   - replica: a cluster with data checksums, a heap page overwritten on
//     disk, started with standby.signal and no primary: a copy restored from
//     a replica's volume, which reads but cannot write (replica_test.go).

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

// cluster is a PostgreSQL server of the tests.
type cluster struct {
	bin, dir, data string
	cred           *syscall.Credential
	port           int
	initdbAt       time.Time // just before initdb ran
	cmd            *exec.Cmd
	done           chan struct{}
}

// A started cluster, or why there is none.
type started struct {
	once    sync.Once
	c       *cluster
	err     error  // why there is no server
	missing string // why PostgreSQL cannot start here
}

var primary, replica started

func TestMain(m *testing.M) {
	code := m.Run()
	for _, s := range []*started{&primary, &replica} {
		if s.c != nil {
			_ = s.c.stop()
			_ = os.RemoveAll(s.c.dir)
		}
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

// newCluster makes a cluster with initdb and its extra arguments.
func newCluster(initdbArgs ...string) (*cluster, error) {
	c := &cluster{bin: postgresBinDir()}
	dir, err := os.MkdirTemp("", "validate-pg-")
	if err != nil {
		return nil, err
	}
	c.dir, c.data = dir, filepath.Join(dir, "data")
	if os.Geteuid() == 0 { // postgres refuses to run as root
		uid, gid := 65534, 65534
		if u, err := user.Lookup("nobody"); err == nil {
			uid, _ = strconv.Atoi(u.Uid)
			gid, _ = strconv.Atoi(u.Gid)
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return c, err
		}
		c.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if err := os.Chmod(dir, 0o755); err != nil {
		return c, err
	}
	c.initdbAt = time.Now()
	args := append([]string{"-D", c.data, "-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"}, initdbArgs...)
	if out, err := c.command("initdb", args...).CombinedOutput(); err != nil {
		return c, fmt.Errorf("initdb: %v\n%s", err, out)
	}
	return c, nil
}

func (c *cluster) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(c.bin, name), args...)
	cmd.Dir = c.dir
	cmd.Env = []string{"LANG=C", "LC_ALL=C", "TZ=UTC", "PATH=/usr/bin:/bin"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred, Setpgid: true}
	return cmd
}

// start starts the server and waits until it accepts connections.
// Autovacuum is off so that nothing but the tests touches the damaged
// relations.
func (c *cluster) start() error {
	if c.port == 0 {
		port, err := freePort()
		if err != nil {
			return err
		}
		c.port = port
	}
	logFile, err := os.OpenFile(filepath.Join(c.dir, "postgres.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	defer logFile.Close()
	cmd := c.command("postgres", "-D", c.data, "-c", "listen_addresses=127.0.0.1", "-c", "port="+strconv.Itoa(c.port),
		"-c", "unix_socket_directories="+c.dir, "-c", "fsync=off", "-c", "timezone=UTC", "-c", "shared_buffers=16MB",
		"-c", "autovacuum=off")
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		return err
	}
	c.cmd, c.done = cmd, make(chan struct{})
	go func() { _ = cmd.Wait(); close(c.done) }()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		select {
		case <-c.done:
			return fmt.Errorf("postgres exited:\n%s", c.log())
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, c.url("postgres", "postgres"))
		cancel()
		if err == nil {
			return conn.Close(context.Background())
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres did not accept connections: %v\n%s", err, c.log())
		}
	}
}

// stop shuts the server down cleanly (a fast shutdown writes a checkpoint,
// so every page is in its file).
func (c *cluster) stop() error {
	if c.cmd == nil {
		return nil
	}
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(15 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	c.cmd = nil
	if !strings.Contains(c.log(), "database system is shut down") {
		return fmt.Errorf("postgres did not shut down cleanly:\n%s", c.log())
	}
	return nil
}

func (c *cluster) log() string {
	b, _ := os.ReadFile(filepath.Join(c.dir, "postgres.log"))
	return string(b)
}

func (c *cluster) url(user, db string) string {
	return fmt.Sprintf("postgres://%s@127.0.0.1:%d/%s?sslmode=disable", user, c.port, db)
}

// exec runs statements in database db, one at a time.
func (c *cluster) exec(db string, stmts ...string) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.url("postgres", db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	for _, stmt := range stmts {
		if _, err := conn.Exec(ctx, stmt); err != nil {
			return fmt.Errorf("%s: %v", stmt, err)
		}
	}
	return nil
}

// query scans the one row of a query in database db into dest.
func (c *cluster) query(db, sql string, dest ...any) error {
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, c.url("postgres", db))
	if err != nil {
		return err
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, sql).Scan(dest...); err != nil {
		return fmt.Errorf("%s: %v", sql, err)
	}
	return nil
}

// controlData is a field of pg_controldata's report, e.g. "Database system identifier".
func (c *cluster) controlData(field string) (string, error) {
	out, err := c.command("pg_controldata", "-D", c.data).Output()
	if err != nil {
		return "", fmt.Errorf("pg_controldata: %v", err)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && name == field {
			return strings.TrimSpace(value), nil
		}
	}
	return "", fmt.Errorf("pg_controldata reports no %q:\n%s", field, out)
}

// file is the path of a relation file named relative to the data directory
// (pg_relation_filepath).
func (c *cluster) file(rel string) string { return filepath.Join(c.data, rel) }

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// start makes and starts the cluster with setup, once.
func (s *started) start(setup func() (*cluster, error)) {
	s.once.Do(func() {
		if postgresBinDir() == "" {
			s.missing = "no PostgreSQL binaries (set PG_BINDIR)"
			return
		}
		s.c, s.err = setup()
	})
}

// server returns the cluster, made on first use by setup; database tests
// are skipped with -short.
func (s *started) server(t *testing.T, setup func() (*cluster, error)) *cluster {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped with -short")
	}
	s.start(setup)
	if s.missing != "" {
		// Not a skip: a machine without PostgreSQL must not pass these tests.
		t.Fatalf("%s: install PostgreSQL (make deps) or run with -short", s.missing)
	}
	if s.err != nil {
		t.Fatalf("cannot start PostgreSQL: %v", s.err)
	}
	return s.c
}

// connect returns a Session on database db of cluster c as user, with
// extra run-time parameters.
func connect(t *testing.T, c *cluster, user, db string, params map[string]string) *Session {
	t.Helper()
	cfg, err := pgx.ParseConfig(c.url(user, db))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range params {
		cfg.RuntimeParams[k] = v
	}
	sess, err := Connect(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sess.Close(context.Background()) })
	return sess
}

// openSession returns a Session on database db of the primary as user.
func openSession(t *testing.T, user, db string) *Session {
	t.Helper()
	return connect(t, primary.server(t, setupPrimary), user, db, nil)
}
