package pgproc

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

const nobody = 65534

// fastArgs keep test servers small and quick; as pod arguments they come
// after ours.
var fastArgs = []string{"-c", "fsync=off", "-c", "shared_buffers=16MB", "-c", "max_connections=20"}

// requireServer fails unless the test can run PostgreSQL as another user,
// as the node emulator does; -short skips the tests that need it.
func requireServer(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs PostgreSQL; skipped with -short")
	}
	if os.Geteuid() != 0 {
		t.Fatal("needs root to run postgres as nobody, as the node emulator does; run as root or with -short")
	}
	if _, err := BinDir(); err != nil {
		t.Fatalf("%v: install PostgreSQL (make deps) or run with -short", err)
	}
}

// newSpec prepares a pod-like layout in a fresh temporary directory: a
// volume holding PGDATA, a container log and a short runtime directory.
func newSpec(t *testing.T, ip string, env map[string]string) Spec {
	t.Helper()
	requireServer(t)
	base := t.TempDir()
	// t.TempDir's directories are private (0700): let nobody traverse them.
	for _, dir := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	run, err := os.MkdirTemp("", "pgp") // short: the socket path must stay < 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	if env == nil {
		env = map[string]string{}
	}
	if _, ok := env["POSTGRES_INITDB_ARGS"]; !ok {
		env["POSTGRES_INITDB_ARGS"] = "--no-sync"
	}
	if err := os.MkdirAll(filepath.Join(base, "logs"), 0o755); err != nil {
		t.Fatal(err)
	}
	log, err := os.OpenFile(filepath.Join(base, "logs", "postgres.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { log.Close() })
	return Spec{
		DataDir:       filepath.Join(base, "volume", "pgdata"),
		ListenAddress: ip,
		Port:          freePort(t, ip),
		Args:          fastArgs,
		Env:           env,
		UID:           nobody,
		GID:           nobody,
		RuntimeDir:    run,
		Stdout:        log,
		Stderr:        log,
	}
}

func freePort(t *testing.T, ip string) int {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func addr(s Spec) string { return net.JoinHostPort(s.ListenAddress, strconv.Itoa(s.Port)) }

// logPath is the file newSpec sends the container's output to.
func logPath(s Spec) string { return s.Stdout.(*os.File).Name() }

// dumpLog shows the container log when a test fails.
func dumpLog(t *testing.T, s Spec) {
	t.Cleanup(func() {
		if t.Failed() {
			data, _ := os.ReadFile(logPath(s))
			t.Logf("container log %s:\n%s", logPath(s), data)
		}
	})
}

func initialize(t *testing.T, s Spec) {
	t.Helper()
	dumpLog(t, s)
	ok, err := Initialize(context.Background(), s)
	if err != nil || !ok {
		t.Fatalf("Initialize = %v, %v; want true, nil", ok, err)
	}
}

// start starts a server, stops it when the test ends and waits until it
// accepts connections.
func start(t *testing.T, s Spec) *Process {
	t.Helper()
	p, err := Start(s)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := p.Stop(10 * time.Second); err != nil {
			t.Errorf("Stop: %v", err)
		}
	})
	waitReady(t, p, addr(s))
	return p
}

func waitReady(t *testing.T, p *Process, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		ready, detail := Probe(ctx, addr)
		cancel()
		if ready {
			return
		}
		select {
		case <-p.Done():
			t.Fatalf("server exited (code %d, signal %q) before accepting connections: %s", p.ExitCode(), p.ExitSignal(), detail)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server at %s not ready after 60s: %s", addr, detail)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func connect(ctx context.Context, s Spec, user, password, database string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig("sslmode=disable connect_timeout=5")
	if err != nil {
		return nil, err
	}
	cfg.Host, cfg.Port = s.ListenAddress, uint16(s.Port)
	cfg.User, cfg.Password, cfg.Database = user, password, database
	return pgx.ConnectConfig(ctx, cfg)
}

func mustConnect(t *testing.T, s Spec, user, password, database string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := connect(ctx, s, user, password, database)
	if err != nil {
		t.Fatalf("connect as %q to %q: %v", user, database, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func queryInt(t *testing.T, conn *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := conn.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

func exec1(t *testing.T, conn *pgx.Conn, sql string) {
	t.Helper()
	if _, err := conn.Exec(context.Background(), sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// groupAlive reports whether any non-zombie process of the group exists.
func groupAlive(pgid int) bool {
	for _, m := range groupMembers(pgid) {
		if m.state != 'Z' && m.state != 'X' {
			return true
		}
	}
	return false
}

func waitDone(t *testing.T, p *Process) {
	t.Helper()
	select {
	case <-p.Done():
	case <-time.After(30 * time.Second):
		t.Fatal("process did not exit")
	}
}

func TestInitializeStartConnect(t *testing.T) {
	tests := []struct {
		name           string
		ip             string
		env            map[string]string
		user, database string // what the image creates
		password       string // what a client must give; "" with trust
		wrongPassword  bool   // whether a wrong password is refused
	}{
		{
			name:     "password",
			ip:       "127.233.1.1",
			env:      map[string]string{"POSTGRES_USER": "orders", "POSTGRES_PASSWORD": "s3cret 'pw'", "POSTGRES_DB": "app"},
			user:     "orders",
			database: "app",
			password: "s3cret 'pw'", wrongPassword: true,
		},
		{
			name:     "trust",
			ip:       "127.233.1.2",
			env:      map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"},
			user:     "postgres",
			database: "postgres",
		},
		{
			name:     "odd names and initdb args",
			ip:       "127.233.1.3",
			env:      map[string]string{"POSTGRES_USER": "Odd User", "POSTGRES_PASSWORD": "pw", "POSTGRES_DB": "my db; \"x\"", "POSTGRES_INITDB_ARGS": `--no-sync --encoding=UTF8 --locale='C'`},
			user:     "Odd User", // initdb 15 does not escape '"' in the user name
			database: "my db; \"x\"",
			password: "pw", wrongPassword: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpec(t, tt.ip, tt.env)
			initialize(t, s)
			info, err := os.Stat(s.DataDir)
			if err != nil {
				t.Fatal(err)
			}
			if st := info.Sys().(*syscall.Stat_t); info.Mode().Perm() != 0o700 || st.Uid != nobody || st.Gid != nobody {
				t.Errorf("PGDATA mode %v owner %d:%d; want 0700 %d:%d", info.Mode().Perm(), st.Uid, st.Gid, nobody, nobody)
			}

			p := start(t, s)
			if ready, detail := Probe(context.Background(), addr(s)); !ready {
				t.Errorf("Probe = not ready (%s) on a running server", detail)
			}

			conn := mustConnect(t, s, tt.user, tt.password, tt.database)
			var user, database string
			if err := conn.QueryRow(context.Background(), "SELECT current_user, current_database()").Scan(&user, &database); err != nil {
				t.Fatal(err)
			}
			if user != tt.user || database != tt.database {
				t.Errorf("connected as %q to %q; want %q to %q", user, database, tt.user, tt.database)
			}
			if got := queryInt(t, conn, "SELECT setting::int FROM pg_settings WHERE name = 'max_connections'"); got != 20 {
				t.Errorf("max_connections = %d; want the pod's 20", got)
			}

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			bad, err := connect(ctx, s, tt.user, "wrong", tt.database)
			if tt.wrongPassword {
				var pgErr *pgconn.PgError
				if err == nil {
					bad.Close(ctx)
					t.Error("connecting with a wrong password succeeded")
				} else if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
					t.Errorf("wrong password: %v; want SQLSTATE 28P01", err)
				}
			} else if err != nil {
				t.Errorf("trust: connecting with any password: %v", err)
			} else {
				bad.Close(ctx)
			}
			conn.Close(context.Background())

			if err := p.Stop(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			waitDone(t, p)
			if p.ExitCode() != 0 || p.ExitSignal() != "" {
				t.Errorf("after Stop: exit code %d, signal %q; want 0, \"\"", p.ExitCode(), p.ExitSignal())
			}
			if groupAlive(p.Pid()) {
				t.Errorf("processes of group %d survive Stop", p.Pid())
			}
			if _, err := os.Stat(filepath.Join(s.DataDir, "postmaster.pid")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("postmaster.pid after a clean shutdown: %v", err)
			}
			if err := p.Stop(time.Second); err != nil {
				t.Errorf("second Stop: %v", err)
			}
			if ready, _ := Probe(context.Background(), addr(s)); ready {
				t.Error("Probe = ready after Stop")
			}
		})
	}
}

func TestInitializeRefusesWithoutPassword(t *testing.T) {
	tests := []struct {
		name string
		env  map[string]string
	}{
		{"no environment", map[string]string{}},
		{"md5 without password", map[string]string{"POSTGRES_HOST_AUTH_METHOD": "md5", "POSTGRES_USER": "app"}},
		{"empty password", map[string]string{"POSTGRES_PASSWORD": ""}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSpec(t, fmt.Sprintf("127.233.2.%d", i+1), tt.env)
			ok, err := Initialize(context.Background(), s)
			if ok || !errors.Is(err, ErrNoPassword) {
				t.Fatalf("Initialize = %v, %v; want false, ErrNoPassword", ok, err)
			}
			const want = "Database is uninitialized and superuser password is not specified."
			if !strings.HasPrefix(err.Error(), want) {
				t.Errorf("error %q does not start with the image's %q", err, want)
			}
			if log, _ := os.ReadFile(logPath(s)); !strings.Contains(string(log), "Error: "+want) {
				t.Errorf("container log lacks the message: %q", log)
			}
			if _, err := os.Stat(s.DataDir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("PGDATA was created: %v", err)
			}
		})
	}
}

func TestInitializeExistingDataIsNoop(t *testing.T) {
	s := newSpec(t, "127.233.3.1", map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"})
	initialize(t, s)
	before, err := os.ReadFile(filepath.Join(s.DataDir, "pg_hba.conf"))
	if err != nil {
		t.Fatal(err)
	}
	// Without password and trust, a fresh directory would be refused: an
	// existing one must not even be looked at.
	s.Env = map[string]string{"POSTGRES_DB": "other"}
	ok, err := Initialize(context.Background(), s)
	if ok || err != nil {
		t.Fatalf("Initialize on existing data = %v, %v; want false, nil", ok, err)
	}
	after, _ := os.ReadFile(filepath.Join(s.DataDir, "pg_hba.conf"))
	if string(before) != string(after) {
		t.Error("pg_hba.conf changed")
	}
	if strings.Count(string(after), "host all all all trust") != 1 {
		t.Errorf("pg_hba.conf lacks exactly one image line:\n%s", after)
	}
}

func TestStartOnCopyOfRunningServer(t *testing.T) {
	env := map[string]string{"POSTGRES_PASSWORD": "pw", "POSTGRES_DB": "app"}
	a := newSpec(t, "127.233.4.1", env)
	initialize(t, a)
	pa := start(t, a)
	conn := mustConnect(t, a, "postgres", "pw", "app")
	exec1(t, conn, "CREATE TABLE items (id int PRIMARY KEY)")
	exec1(t, conn, "INSERT INTO items SELECT generate_series(1, 1000)")

	// A second server on a data directory in use is refused.
	if p, err := Start(a); err == nil {
		p.Kill()
		t.Fatal("Start on the data directory of a running server succeeded")
	} else if !strings.Contains(err.Error(), "in use") {
		t.Errorf("Start on a data directory in use: %v", err)
	}

	// Snapshot: freeze, copy, thaw.
	if err := pa.Pause(); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	ready, detail := Probe(ctx, addr(a))
	cancel()
	if ready {
		t.Errorf("Probe = ready on a paused server (%s)", detail)
	}
	b := newSpec(t, "127.233.4.2", env)
	if err := os.MkdirAll(filepath.Dir(b.DataDir), 0o755); err != nil {
		t.Fatal(err)
	}
	out, cpErr := exec.Command("cp", "-a", a.DataDir, b.DataDir).CombinedOutput()
	if err := pa.Resume(); err != nil {
		t.Fatal(err)
	}
	if cpErr != nil {
		t.Fatalf("cp -a: %v: %s", cpErr, out)
	}
	exec1(t, conn, "INSERT INTO items SELECT generate_series(1001, 1500)") // after the snapshot

	pidFile, err := os.ReadFile(filepath.Join(b.DataDir, "postmaster.pid"))
	if err != nil {
		t.Fatalf("the copy has no postmaster.pid: %v", err)
	}
	if first, _, _ := strings.Cut(string(pidFile), "\n"); first != strconv.Itoa(pa.Pid()) {
		t.Fatalf("copied postmaster.pid names %q; want the live server's %d", first, pa.Pid())
	}

	initialized, err := Initialize(context.Background(), b)
	if err != nil || initialized {
		t.Fatalf("Initialize on the copy = %v, %v; want false, nil", initialized, err)
	}
	dumpLog(t, b)
	start(t, b)
	connB := mustConnect(t, b, "postgres", "pw", "app")
	if n := queryInt(t, connB, "SELECT count(*) FROM items"); n != 1000 {
		t.Errorf("copy has %d rows; want the 1000 written before the snapshot", n)
	}
	exec1(t, connB, "INSERT INTO items VALUES (5000)") // the copy is writable
	if n := queryInt(t, conn, "SELECT count(*) FROM items"); n != 1500 {
		t.Errorf("original has %d rows; want 1500", n)
	}
	if log, _ := os.ReadFile(logPath(b)); !strings.Contains(string(log), "automatic recovery in progress") {
		t.Errorf("the copy's log does not show crash recovery:\n%s", log)
	}
}

func TestKillAndRestart(t *testing.T) {
	s := newSpec(t, "127.233.5.1", map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"})
	initialize(t, s)
	p, err := Start(s)
	if err != nil {
		t.Fatal(err)
	}
	waitReady(t, p, addr(s))
	conn := mustConnect(t, s, "postgres", "", "postgres")
	exec1(t, conn, "CREATE TABLE t AS SELECT 1 AS x")
	if p.ExitCode() != -1 || p.ExitSignal() != "" {
		t.Errorf("while running: exit code %d, signal %q; want -1, \"\"", p.ExitCode(), p.ExitSignal())
	}

	if err := p.Kill(); err != nil {
		t.Fatal(err)
	}
	waitDone(t, p)
	if p.ExitSignal() != "killed" || p.ExitCode() != -1 {
		t.Errorf("after Kill: exit code %d, signal %q; want -1, \"killed\"", p.ExitCode(), p.ExitSignal())
	}
	if groupAlive(p.Pid()) {
		t.Errorf("processes of group %d survive Kill", p.Pid())
	}
	// The postmaster's children lead groups of their own: they must be gone
	// too, or a restart finds the old shared memory still attached.
	if left := slices.DeleteFunc(p.family(), func(m groupMember) bool { return !alive(m) }); len(left) > 0 {
		t.Errorf("server processes survive Kill: %+v", left)
	}
	for _, op := range []struct {
		name string
		f    func() error
	}{
		{"Kill", p.Kill}, {"Pause", p.Pause}, {"Resume", p.Resume}, {"Stop", func() error { return p.Stop(time.Second) }},
	} {
		if err := op.f(); err != nil {
			t.Errorf("%s after exit: %v", op.name, err)
		}
	}

	// Like a container restart after a crash: same data, recovery.
	p = start(t, s)
	conn = mustConnect(t, s, "postgres", "", "postgres")
	if n := queryInt(t, conn, "SELECT count(*) FROM t"); n != 1 {
		t.Errorf("after crash recovery: %d rows; want 1", n)
	}
	conn.Close(context.Background())

	// Pause freezes every server process, the postmaster's children (each
	// a group leader of its own) included, as a frozen file system would
	// stop their writes.
	if err := p.Pause(); err != nil {
		t.Fatal(err)
	}
	family := p.family()
	if len(family) < 3 {
		t.Errorf("server processes %+v: want the postmaster and its children", family)
	}
	for _, m := range family {
		if m.state != 'T' && m.state != 't' {
			t.Errorf("process %d (group %d) is %c while the server is paused", m.pid, m.pgrp, m.state)
		}
	}
	// A paused server still shuts down cleanly within the grace period.
	if err := p.Stop(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if p.ExitCode() != 0 || p.ExitSignal() != "" {
		t.Errorf("Stop of a paused server: exit code %d, signal %q; want 0, \"\"", p.ExitCode(), p.ExitSignal())
	}
}

func TestStartErrors(t *testing.T) {
	s := newSpec(t, "127.233.6.1", nil)
	tests := []struct {
		name   string
		modify func(*Spec)
		want   string
	}{
		{"root", func(s *Spec) { s.UID = 0 }, "root"},
		{"relative data dir", func(s *Spec) { s.DataDir = "pgdata" }, "absolute"},
		{"missing data dir", func(s *Spec) {}, "no such file"},
		{"long socket path", func(s *Spec) { s.RuntimeDir = "/tmp/" + strings.Repeat("r", 100) }, "too long"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := s
			tt.modify(&spec)
			p, err := Start(spec)
			if err == nil {
				p.Kill()
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Start: %v; want an error about %q", err, tt.want)
			}
		})
	}
}

func TestProbe(t *testing.T) {
	closed := net.JoinHostPort("127.233.7.1", strconv.Itoa(freePort(t, "127.233.7.1")))
	tests := []struct {
		name      string
		addr      string
		reply     []byte // what a fake server answers to a startup message; nil: no fake
		silent    bool   // a fake that accepts and never answers
		wantReady bool
		detail    string
	}{
		{name: "closed port", addr: closed, detail: "refused"},
		{name: "silent server", silent: true, detail: "timeout"},
		{name: "starting up", reply: errorResponse("57P03", "the database system is starting up"), detail: "starting up"},
		{name: "too many clients", reply: errorResponse("53300", "sorry, too many clients already"), wantReady: true, detail: "too many"},
		{name: "password request", reply: []byte{'R', 0, 0, 0, 8, 0, 0, 0, 10}, wantReady: true, detail: "accepting"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.addr
			if target == "" {
				target = fakeServer(t, tt.reply, tt.silent)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
			defer cancel()
			ready, detail := Probe(ctx, target)
			if ready != tt.wantReady || !strings.Contains(detail, tt.detail) {
				t.Errorf("Probe = %v, %q; want %v, …%s…", ready, detail, tt.wantReady, tt.detail)
			}
		})
	}
}

func errorResponse(code, message string) []byte {
	body := "SFATAL\x00C" + code + "\x00M" + message + "\x00\x00"
	return append(binary.BigEndian.AppendUint32([]byte{'E'}, uint32(4+len(body))), body...)
}

// fakeServer answers one startup message with reply (after checking it is
// a protocol 3.0 startup message for user postgres) and returns its address.
func fakeServer(t *testing.T, reply []byte, silent bool) string {
	l, err := net.Listen("tcp", "127.233.7.2:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		if silent {
			io.Copy(io.Discard, conn)
			return
		}
		var n [4]byte
		if _, err := io.ReadFull(conn, n[:]); err != nil {
			return
		}
		msg := make([]byte, binary.BigEndian.Uint32(n[:])-4)
		if _, err := io.ReadFull(conn, msg); err != nil {
			return
		}
		if binary.BigEndian.Uint32(msg) != 3<<16 || !strings.Contains(string(msg), "user\x00postgres\x00") {
			return
		}
		conn.Write(reply)
		io.Copy(io.Discard, conn) // until the client hangs up
	}()
	return l.Addr().String()
}

func TestShellFields(t *testing.T) {
	tests := []struct {
		in   string
		want []string
	}{
		{"", nil},
		{"  --data-checksums\t--no-sync ", []string{"--data-checksums", "--no-sync"}},
		{`--locale='en US' --x="a \"b\" \$c" d\ e`, []string{"--locale=en US", `--x=a "b" $c`, "d e"}},
		{`''`, []string{""}},
	}
	for _, tt := range tests {
		got, err := shellFields(tt.in)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(tt.want) || len(got) != len(tt.want) {
			t.Errorf("shellFields(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	if _, err := shellFields(`--x='open`); err == nil {
		t.Error("unterminated quote accepted")
	}
}

// TestKeyFileReadThroughASupplementaryGroup: as with a Secret volume and a
// pod's fsGroup, the server reads a TLS key owned by root through a
// supplementary group; PostgreSQL accepts such a key only with mode 0640 or
// stricter, and a server without the group cannot read it.
func TestKeyFileReadThroughASupplementaryGroup(t *testing.T) {
	s := newSpec(t, "127.233.7.1", map[string]string{"POSTGRES_HOST_AUTH_METHOD": "trust"})
	initialize(t, s)
	const group = 999
	certPEM, keyPEM := selfSigned(t)
	tests := []struct {
		name    string
		mode    os.FileMode
		groups  []uint32
		wantLog string // "" = the server starts and serves TLS
	}{
		{"0640 with the group", 0o640, []uint32{group}, ""},
		{"0640 without the group", 0o640, nil, "Permission denied"},
		{"0644: readable by anyone", 0o644, []uint32{group}, "has group or world access"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for _, d := range []string{filepath.Dir(dir), dir} { // private (0700) otherwise
				if err := os.Chmod(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
			for _, f := range []struct {
				path string
				data []byte
				mode os.FileMode
			}{{certFile, certPEM, 0o644}, {keyFile, keyPEM, tt.mode}} {
				if err := os.WriteFile(f.path, f.data, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(f.path, 0, group); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(f.path, f.mode); err != nil {
					t.Fatal(err)
				}
			}
			spec := s
			spec.Groups = tt.groups
			spec.Port = freePort(t, s.ListenAddress)
			spec.Args = append(slices.Clone(fastArgs), "-c", "ssl=on", "-c", "ssl_cert_file="+certFile, "-c", "ssl_key_file="+keyFile)
			if tt.wantLog == "" {
				start(t, spec)
				cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d sslmode=require connect_timeout=5 user=postgres dbname=postgres", spec.ListenAddress, spec.Port))
				if err != nil {
					t.Fatal(err)
				}
				conn, err := pgx.ConnectConfig(t.Context(), cfg)
				if err != nil {
					t.Fatalf("a TLS connection: %v", err)
				}
				defer conn.Close(context.Background())
				if queryInt(t, conn, "SELECT count(*) FROM pg_stat_ssl WHERE pid = pg_backend_pid() AND ssl") != 1 {
					t.Error("the server does not see a TLS connection")
				}
				return
			}
			logPath := filepath.Join(filepath.Dir(filepath.Dir(spec.DataDir)), "logs", "postgres.log") // where newSpec sends the output
			before, _ := os.ReadFile(logPath)
			p, err := Start(spec)
			if err != nil {
				t.Fatal(err)
			}
			waitDone(t, p)
			after, _ := os.ReadFile(logPath)
			output := string(after[len(before):])
			if p.ExitCode() == 0 || !strings.Contains(output, keyFile) || !strings.Contains(output, tt.wantLog) {
				t.Errorf("exit code %d, output %q: want the server to refuse the key with %q", p.ExitCode(), output, tt.wantLog)
			}
		})
	}
}

// selfSigned makes a certificate and its key, PEM-encoded.
func selfSigned(t *testing.T) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "db"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, template, template, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
}
