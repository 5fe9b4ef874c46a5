// Package pgproc runs PostgreSQL server processes the way the official
// postgres container image does: it initialises an empty PGDATA like the
// image's docker-entrypoint.sh, then runs the server as an unprivileged user
// in a process group of its own, so that the whole "container" can be
// stopped, paused or killed at once.
//
// Differences from a real container, and why:
//
//   - Every client of an emulated pod connects from 127.0.0.1, which inside a
//     pod's network namespace would be a remote address. initdb's own
//     pg_hba.conf lines for 127.0.0.1/32 and ::1/128 therefore use the image's
//     host authentication method (initdb --auth-host) instead of trust;
//     otherwise any password would be accepted.
//   - A data directory copied from a running server (a snapshot) carries a
//     postmaster.pid whose PID, inside a container, would belong to another PID
//     namespace and be ignored; here it may be a live process on this host, so
//     Start removes it, unless that process really is a server running on the
//     very same data directory.
package pgproc

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Spec describes one database process as a pod asks for it.
type Spec struct {
	DataDir       string            // host path of PGDATA
	ListenAddress string            // e.g. "127.0.3.4"
	Port          int               // e.g. 5432
	Args          []string          // extra server arguments, e.g. ["-c", "max_connections=20"]; they come last and win
	Env           map[string]string // container environment (POSTGRES_USER, POSTGRES_PASSWORD, POSTGRES_DB, POSTGRES_HOST_AUTH_METHOD, POSTGRES_INITDB_ARGS, ...)
	UID, GID      uint32            // unprivileged identity to run as (postgres refuses to run as root)
	Groups        []uint32          // supplementary groups, as a pod's fsGroup and supplementalGroups give them
	RuntimeDir    string            // unix socket and scratch files; created if missing; keep it short (socket paths < 100 bytes)
	// Stdout and Stderr receive the container's output streams: the
	// entrypoint's messages, initdb's and the server's output, each on the
	// stream the image writes it to (the server logs to stderr); nil
	// discards it.
	Stdout, Stderr io.Writer
	BinDir         string // PostgreSQL binaries; "" means BinDir()
}

// DefaultHostAuthMethod is the image's pg_hba.conf method for remote hosts
// when POSTGRES_HOST_AUTH_METHOD is not set (password_encryption's default
// since PostgreSQL 14).
const DefaultHostAuthMethod = "scram-sha-256"

// ErrNoPassword is the image entrypoint's refusal to initialise a database
// without a superuser password unless host authentication is trust.
//
//lint:ignore ST1005 the image's own message, word for word
var ErrNoPassword = errors.New(`Database is uninitialized and superuser password is not specified.
       You must specify POSTGRES_PASSWORD to a non-empty value for the
       superuser. For example, "-e POSTGRES_PASSWORD=password" on "docker run".

       You may also use "POSTGRES_HOST_AUTH_METHOD=trust" to allow all
       connections without a password. This is *not* recommended.

       See PostgreSQL documentation about "trust":
       https://www.postgresql.org/docs/current/auth-trust.html`)

var discoverBinDir = sync.OnceValues(func() (string, error) {
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		dir := strings.TrimSpace(string(out))
		if isFile(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool { return majorVersion(dirs[i]) > majorVersion(dirs[j]) })
	for _, dir := range dirs {
		if isFile(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	if p, err := exec.LookPath("postgres"); err == nil {
		return filepath.Dir(p), nil
	}
	return "", errors.New("pgproc: no PostgreSQL server binaries found (pg_config --bindir, /usr/lib/postgresql/*/bin, PATH)")
})

// BinDir returns the directory of the PostgreSQL server binaries:
// `pg_config --bindir`, else the highest /usr/lib/postgresql/*/bin.
func BinDir() (string, error) { return discoverBinDir() }

func majorVersion(binDir string) float64 {
	v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(binDir)), 64)
	return v
}

func isFile(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular()
}

func (s Spec) binary(name string) (string, error) {
	dir := s.BinDir
	if dir == "" {
		var err error
		if dir, err = BinDir(); err != nil {
			return "", err
		}
	}
	p := filepath.Join(dir, name)
	if !isFile(p) {
		return "", fmt.Errorf("pgproc: %s not found", p)
	}
	return p, nil
}

// envOr returns the container variable key, or def when it is unset or empty
// (the entrypoint's ${VAR:-default}).
func (s Spec) envOr(key, def string) string {
	if v := s.Env[key]; v != "" {
		return v
	}
	return def
}

func (s Spec) validate() error {
	switch {
	case s.DataDir == "" || !filepath.IsAbs(s.DataDir):
		return fmt.Errorf("pgproc: DataDir %q must be an absolute path", s.DataDir)
	case s.RuntimeDir == "" || !filepath.IsAbs(s.RuntimeDir):
		return fmt.Errorf("pgproc: RuntimeDir %q must be an absolute path", s.RuntimeDir)
	case s.UID == 0:
		return errors.New(`pgproc: UID 0: "root" execution of the PostgreSQL server is not permitted`)
	}
	return nil
}

// environ is the process environment: a minimal base, the container's
// variables, and PGDATA pointing at the host path.
func (s Spec) environ(binDir string) []string {
	env := map[string]string{
		"PATH": binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"LANG": "C.UTF-8",
		"HOME": s.RuntimeDir,
	}
	for k, v := range s.Env {
		env[k] = v
	}
	env["PGDATA"] = s.DataDir
	list := make([]string, 0, len(env))
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	sort.Strings(list)
	return list
}

// command prepares a command that runs as the database user in a process
// group of its own. Cancelling ctx sends SIGTERM to the group
// (initdb then cleans up after itself) and SIGKILL a little later.
func (s Spec) command(ctx context.Context, name string, args ...string) (*exec.Cmd, error) {
	bin, err := s.binary(name)
	if err != nil {
		return nil, err
	}
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 10 * time.Second
	cmd.Dir = s.RuntimeDir
	cmd.Env = s.environ(filepath.Dir(bin))
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid: true,
		// If the emulator dies, its databases die with it. (Delivered when
		// the forking OS thread exits, which Go threads only do when a
		// goroutine exits locked to it.)
		Pdeathsig:  syscall.SIGKILL,
		Credential: &syscall.Credential{Uid: s.UID, Gid: s.GID, Groups: s.Groups},
	}
	return cmd, nil
}

// stdout and stderr are the container's output streams.
func (s Spec) stdout() io.Writer { return writerOr(s.Stdout) }
func (s Spec) stderr() io.Writer { return writerOr(s.Stderr) }

func writerOr(w io.Writer) io.Writer {
	if w == nil {
		return io.Discard
	}
	return w
}

// say writes a line of the entrypoint's own output to w.
func say(w io.Writer, format string, args ...any) {
	fmt.Fprintf(w, format+"\n", args...)
}

func (s Spec) ensureRuntimeDir() error {
	if err := os.MkdirAll(s.RuntimeDir, 0o755); err != nil {
		return fmt.Errorf("pgproc: runtime dir: %w", err)
	}
	if err := os.Chown(s.RuntimeDir, int(s.UID), int(s.GID)); err != nil {
		return fmt.Errorf("pgproc: runtime dir: %w", err)
	}
	return s.reachable(s.RuntimeDir)
}

// reachable checks that the database user may traverse every directory
// above dir, which a temporary directory of mode 0700 above a volume
// silently breaks.
func (s Spec) reachable(dir string) error {
	for d := filepath.Dir(filepath.Clean(dir)); ; d = filepath.Dir(d) {
		info, err := os.Stat(d)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		perm := info.Mode().Perm()
		var ok bool
		switch {
		case st.Uid == s.UID:
			ok = perm&0o100 != 0
		case st.Gid == s.GID || slices.Contains(s.Groups, st.Gid):
			ok = perm&0o010 != 0
		default:
			ok = perm&0o001 != 0
		}
		if !ok {
			return fmt.Errorf("pgproc: uid %d cannot reach %s: %s has mode %v (owner %d:%d)", s.UID, dir, d, perm, st.Uid, st.Gid)
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// ownDataDir does what the entrypoint does as root on every start:
// `find "$PGDATA" \! -user postgres -exec chown postgres '{}' +` and
// `chmod 00700 "$PGDATA"` (0750, group access, is left alone: postgres
// accepts it).
func (s Spec) ownDataDir() error {
	err := filepath.WalkDir(s.DataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if st := info.Sys().(*syscall.Stat_t); st.Uid != s.UID || st.Gid != s.GID {
			return os.Lchown(p, int(s.UID), int(s.GID))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("pgproc: taking ownership of PGDATA: %w", err)
	}
	info, err := os.Stat(s.DataDir)
	if err != nil {
		return err
	}
	if info.Mode().Perm()&0o027 != 0 || info.Mode().Perm()&0o700 != 0o700 {
		if err := os.Chmod(s.DataDir, 0o700); err != nil {
			return fmt.Errorf("pgproc: PGDATA mode: %w", err)
		}
	}
	return s.reachable(s.DataDir)
}

// Initialize does what the image's docker-entrypoint.sh does with an empty
// PGDATA: it creates the directory, runs initdb as the database user with
// POSTGRES_USER, POSTGRES_PASSWORD and POSTGRES_INITDB_ARGS, creates
// POSTGRES_DB, and lets every host in with POSTGRES_HOST_AUTH_METHOD
// (default scram-sha-256). It does nothing and returns false when PGDATA
// already holds a cluster (PG_VERSION exists). Without a password and
// without trust it refuses with ErrNoPassword, as the image does.
func Initialize(ctx context.Context, s Spec) (initialized bool, err error) {
	if err := s.validate(); err != nil {
		return false, err
	}
	if info, err := os.Stat(filepath.Join(s.DataDir, "PG_VERSION")); err == nil && info.Size() > 0 {
		return false, nil
	}
	password := s.Env["POSTGRES_PASSWORD"]
	method := s.envOr("POSTGRES_HOST_AUTH_METHOD", DefaultHostAuthMethod)
	if password == "" && method != "trust" {
		say(s.stderr(), "Error: %v", ErrNoPassword)
		return false, ErrNoPassword
	}
	initdbArgs, err := shellFields(s.Env["POSTGRES_INITDB_ARGS"])
	if err != nil {
		return false, fmt.Errorf("pgproc: POSTGRES_INITDB_ARGS: %w", err)
	}
	if err := s.ensureRuntimeDir(); err != nil {
		return false, err
	}
	// Parents as `mkdir -p` by root would make them, PGDATA itself private.
	if err := os.MkdirAll(filepath.Dir(s.DataDir), 0o755); err != nil {
		return false, fmt.Errorf("pgproc: creating PGDATA: %w", err)
	}
	if err := os.Mkdir(s.DataDir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return false, fmt.Errorf("pgproc: creating PGDATA: %w", err)
	}
	if err := s.ownDataDir(); err != nil {
		return false, err
	}

	user := s.envOr("POSTGRES_USER", "postgres")
	db := s.envOr("POSTGRES_DB", user)
	args := []string{"-D", s.DataDir, "--username=" + user, "--auth-local=trust", "--auth-host=" + method}
	if password != "" {
		pwfile := filepath.Join(s.RuntimeDir, ".pwfile")
		if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
			return false, err
		}
		defer os.Remove(pwfile)
		if err := os.Chown(pwfile, int(s.UID), int(s.GID)); err != nil {
			return false, err
		}
		args = append(args, "--pwfile="+pwfile)
	}
	if method == "trust" {
		say(s.stderr(), "%s", trustWarning)
	}
	args = append(args, initdbArgs...) // last, so that they win (e.g. --auth-host)
	if err := s.run(ctx, nil, "initdb", args...); err != nil {
		return false, fmt.Errorf("pgproc: initdb: %w", err)
	}

	if db != "postgres" {
		// The image runs psql against a temporary server on a unix socket;
		// a single-user backend does the same without any socket. -j: a
		// statement ends with ";" and an empty line, so quoted names may
		// hold newlines.
		stmt := "CREATE DATABASE " + quoteIdent(db) + " ;\n\n"
		if err := s.run(ctx, strings.NewReader(stmt), "postgres", "--single", "-j", "-D", s.DataDir,
			"-c", "exit_on_error=on", "-c", "listen_addresses=", "postgres"); err != nil {
			return false, fmt.Errorf("pgproc: creating database %s: %w", quoteIdent(db), err)
		}
	}

	var hba strings.Builder
	hba.WriteString("\n")
	if method == "trust" {
		hba.WriteString("# warning trust is enabled for all connections\n")
		hba.WriteString("# see https://www.postgresql.org/docs/current/auth-trust.html\n")
	}
	fmt.Fprintf(&hba, "host all all all %s\n", method)
	f, err := os.OpenFile(filepath.Join(s.DataDir, "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return false, fmt.Errorf("pgproc: pg_hba.conf: %w", err)
	}
	_, err = f.WriteString(hba.String())
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, fmt.Errorf("pgproc: pg_hba.conf: %w", err)
	}
	say(s.stdout(), "\nPostgreSQL init process complete; ready for start up.\n")
	return true, nil
}

const trustWarning = `********************************************************************************
WARNING: POSTGRES_HOST_AUTH_METHOD has been set to "trust". This will allow
         anyone with access to the Postgres port to access your database without
         a password, even if POSTGRES_PASSWORD is set.
********************************************************************************`

// run runs a command to completion with its output on the container's
// streams; the end of that output is part of the error when it fails.
func (s Spec) run(ctx context.Context, stdin io.Reader, name string, args ...string) error {
	cmd, err := s.command(ctx, name, args...)
	if err != nil {
		return err
	}
	var tail tailBuffer
	cmd.Stdin = stdin
	cmd.Stdout = io.MultiWriter(s.stdout(), &tail)
	cmd.Stderr = io.MultiWriter(s.stderr(), &tail)
	if name == "postgres" {
		cmd.Stdout = io.Discard // the single-user backend's banner and prompts
	}
	if err := cmd.Run(); err != nil {
		if ctx != nil && ctx.Err() != nil {
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if out := tail.lastLines(3); out != "" {
			return fmt.Errorf("%w: %s", err, out)
		}
		return err
	}
	return nil
}

// tailBuffer keeps the last few kilobytes written to it.
type tailBuffer struct {
	mu  sync.Mutex
	buf []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.buf = append(t.buf, p...)
	if len(t.buf) > 4096 {
		t.buf = t.buf[len(t.buf)-4096:]
	}
	return len(p), nil
}

func (t *tailBuffer) lastLines(n int) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	var lines []string
	for _, line := range strings.Split(string(t.buf), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			lines = append(lines, line)
		}
	}
	if len(lines) <= n {
		return strings.Join(lines, " | ")
	}
	last := lines[len(lines)-n:]
	// The reason is often a few lines up, followed by cleanup messages.
	for i := len(lines) - n - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "FATAL:") || strings.Contains(lines[i], "ERROR:") {
			last = append([]string{lines[i]}, last...)
			break
		}
	}
	return strings.Join(last, " | ")
}

// quoteIdent quotes an SQL identifier.
func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// shellFields splits words as the entrypoint's eval of POSTGRES_INITDB_ARGS
// would: blanks separate words, single and double quotes and backslashes
// quote. Expansions ($VAR, globs) are not performed.
func shellFields(s string) ([]string, error) {
	var (
		words  []string
		cur    strings.Builder
		inWord bool
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\':
			inWord = true
			if i+1 < len(s) {
				i++
				if s[i] != '\n' {
					cur.WriteByte(s[i])
				}
			}
		case c == '\'':
			inWord = true
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+end])
			i += 1 + end
		case c == '"':
			inWord = true
			for i++; ; i++ {
				if i >= len(s) {
					return nil, errors.New("unterminated double quote")
				}
				if s[i] == '"' {
					break
				}
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\\\"$`\n", s[i+1]) >= 0 {
					i++
					if s[i] == '\n' {
						continue
					}
				}
				cur.WriteByte(s[i])
			}
		default:
			inWord = true
			cur.WriteByte(c)
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}

// Process is a running server, the emulated container's main process.
type Process struct {
	cmd      *exec.Cmd
	pgid     int
	dataDir  os.FileInfo // PGDATA, where every server process works
	started  time.Time
	done     chan struct{}
	exitCode int
	signal   string
	stopOnce sync.Once
}

// Start starts `postgres -D DataDir -c listen_addresses=ListenAddress
// -c port=Port -c unix_socket_directories=RuntimeDir Args...` as UID:GID in
// a process group of its own, its output on Stdout and Stderr. Like the image's
// entrypoint running as root, it first gives the database user everything
// in PGDATA and makes PGDATA's mode acceptable. A postmaster.pid left in
// PGDATA is removed, unless its process is alive and serving this very
// data directory.
func Start(s Spec) (*Process, error) {
	if err := s.validate(); err != nil {
		return nil, err
	}
	socket := filepath.Join(s.RuntimeDir, fmt.Sprintf(".s.PGSQL.%d", s.Port))
	if len(socket) >= 100 {
		return nil, fmt.Errorf("pgproc: unix socket path %s is too long (%d bytes, at most 99)", socket, len(socket))
	}
	if _, err := os.Stat(s.DataDir); err != nil {
		return nil, fmt.Errorf("pgproc: PGDATA: %w", err)
	}
	if err := s.ensureRuntimeDir(); err != nil {
		return nil, err
	}
	if err := s.ownDataDir(); err != nil {
		return nil, err
	}
	if err := s.removeStalePidFile(); err != nil {
		return nil, err
	}
	args := []string{"-D", s.DataDir,
		"-c", "listen_addresses=" + s.ListenAddress,
		"-c", "port=" + strconv.Itoa(s.Port),
		"-c", "unix_socket_directories=" + s.RuntimeDir,
	}
	args = append(args, s.Args...)
	cmd, err := s.command(context.Background(), "postgres", args...)
	if err != nil {
		return nil, err
	}
	stdout, err := newOutputPipe(s.Stdout)
	if err != nil {
		return nil, err
	}
	stderr, err := newOutputPipe(s.Stderr)
	if err != nil {
		stdout.abandon()
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = stdout.child, stderr.child
	err = cmd.Start()
	stdout.started()
	stderr.started()
	if err != nil {
		stdout.abandon()
		stderr.abandon()
		return nil, fmt.Errorf("pgproc: starting postgres: %w", err)
	}
	p := &Process{cmd: cmd, pgid: cmd.Process.Pid, started: time.Now(), done: make(chan struct{})}
	p.dataDir, _ = os.Stat(s.DataDir)
	go func() {
		_ = cmd.Wait()
		st := cmd.ProcessState
		code, sig := st.ExitCode(), ""
		if ws, ok := st.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			sig = ws.Signal().String()
		}
		// The container is gone with its main process: so is every process
		// in it. Wait (a little) until the backends have really died.
		p.signalFamily(syscall.SIGKILL)
		p.waitFamilyGone(10 * time.Second)
		// Every writer is gone: what they wrote reaches the streams.
		stdout.drain(outputDrainTimeout)
		stderr.drain(outputDrainTimeout)
		p.exitCode, p.signal = code, sig
		close(p.done)
	}()
	return p, nil
}

// outputDrainTimeout bounds how long a stopped server's output may take to
// reach its streams once its processes are gone (a process that left the
// server's family, e.g. a daemonised archive_command, may keep the pipe
// open).
const outputDrainTimeout = 2 * time.Second

// outputPipe carries one output stream of the server to its writer, as a
// container runtime's shim does: every server process writes to the pipe,
// which ends when the last of them exits.
type outputPipe struct {
	child  *os.File // the server's end; nil when the stream is discarded
	parent *os.File
	done   chan struct{}
}

func newOutputPipe(w io.Writer) (*outputPipe, error) {
	if w == nil {
		return &outputPipe{}, nil
	}
	r, wr, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("pgproc: output pipe: %w", err)
	}
	o := &outputPipe{child: wr, parent: r, done: make(chan struct{})}
	go func() {
		defer close(o.done)
		_, _ = io.Copy(w, r)
	}()
	return o, nil
}

// started closes this process's copy of the server's end, so that the
// pipe ends with the server's processes.
func (o *outputPipe) started() {
	if o.child != nil {
		o.child.Close()
	}
}

// abandon ends the pipe of a server that did not start.
func (o *outputPipe) abandon() {
	if o.parent == nil {
		return
	}
	o.child.Close()
	<-o.done
	o.parent.Close()
}

// drain waits until everything written has been copied, for at most timeout.
func (o *outputPipe) drain(timeout time.Duration) {
	if o.parent == nil {
		return
	}
	select {
	case <-o.done:
	case <-time.After(timeout):
	}
	o.parent.Close()
}

// removeStalePidFile removes PGDATA/postmaster.pid unless the process it
// names is alive with PGDATA as its working directory (postgres chdirs
// there), i.e. really is a server on this data directory.
func (s Spec) removeStalePidFile() error {
	pidFile := filepath.Join(s.DataDir, "postmaster.pid")
	data, err := os.ReadFile(pidFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pgproc: %w", err)
	}
	first, _, _ := strings.Cut(string(data), "\n")
	if pid, err := strconv.Atoi(strings.TrimSpace(first)); err == nil && pid != 0 {
		if pid < 0 {
			pid = -pid // a single-user backend's lock
		}
		cwd, cwdErr := os.Stat(fmt.Sprintf("/proc/%d/cwd", pid))
		dataDir, dirErr := os.Stat(s.DataDir)
		if cwdErr == nil && dirErr == nil && os.SameFile(cwd, dataDir) {
			return fmt.Errorf("pgproc: PGDATA %s is in use by a running server (pid %d)", s.DataDir, pid)
		}
	}
	if err := os.Remove(pidFile); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pgproc: removing stale postmaster.pid: %w", err)
	}
	return nil
}

// groupMember is a process found in /proc.
type groupMember struct {
	pid   int
	pgrp  int
	state byte // R, S, D, T, t, Z, X, ...
}

// groupMembers lists the processes of a process group.
func groupMembers(pgid int) []groupMember {
	entries, _ := os.ReadDir("/proc")
	var members []groupMember
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if m, ok := readMember(pid); ok && m.pgrp == pgid {
			members = append(members, m)
		}
	}
	return members
}

// readMember reads a process's state and process group from /proc.
func readMember(pid int) (groupMember, bool) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return groupMember{}, false
	}
	// pid (comm) state ppid pgrp ...; comm may contain anything.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return groupMember{}, false
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 3 || len(fields[0]) == 0 {
		return groupMember{}, false
	}
	g, err := strconv.Atoi(fields[2])
	if err != nil {
		return groupMember{}, false
	}
	return groupMember{pid: pid, pgrp: g, state: fields[0][0]}, true
}

// family lists the server's processes: its process group, and every other
// process working in its data directory. PostgreSQL makes each child of the
// postmaster the leader of a session and process group of its own
// (InitPostmasterChild calls setsid), so the postmaster's group holds the
// postmaster alone; every server process runs in PGDATA, before and after
// the postmaster is gone.
func (p *Process) family() []groupMember {
	members := groupMembers(p.pgid)
	if p.dataDir == nil {
		return members
	}
	in := map[int]bool{}
	for _, m := range members {
		in[m.pid] = true
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || in[pid] {
			continue
		}
		cwd, err := os.Stat("/proc/" + e.Name() + "/cwd")
		if err != nil || !os.SameFile(cwd, p.dataDir) {
			continue
		}
		if m, ok := readMember(pid); ok {
			members = append(members, m)
		}
	}
	return members
}

// signalFamily signals the server's process group and the group of every
// other process of the server (each a group leader; its group also holds
// what it runs, e.g. an archive_command).
func (p *Process) signalFamily(sig syscall.Signal) {
	_ = syscall.Kill(-p.pgid, sig)
	for _, m := range p.family() {
		if m.pid == p.pgid {
			continue
		}
		if m.pgrp == m.pid {
			_ = syscall.Kill(-m.pid, sig)
		} else {
			_ = syscall.Kill(m.pid, sig)
		}
	}
}

// waitFamilyGone waits until no process of the server is alive (zombies
// waiting for their reaper do not count), for at most timeout.
func (p *Process) waitFamilyGone(timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if !slices.ContainsFunc(p.family(), alive) {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(m groupMember) bool { return m.state != 'Z' && m.state != 'X' }

// Pid is the postmaster's process id (also the process group id).
func (p *Process) Pid() int { return p.pgid }

// StartedAt is when the process was started.
func (p *Process) StartedAt() time.Time { return p.started }

// Done is closed when the process has exited and the rest of its process
// group is gone.
func (p *Process) Done() <-chan struct{} { return p.done }

func (p *Process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// ExitCode is the exit status once Done is closed: -1 when killed by a
// signal or still running.
func (p *Process) ExitCode() int {
	if !p.exited() {
		return -1
	}
	return p.exitCode
}

// ExitSignal names the signal that killed the process (e.g. "killed"),
// or "" when it exited by itself or is still running.
func (p *Process) ExitSignal() string {
	if !p.exited() {
		return ""
	}
	return p.signal
}

// Stop asks for a fast shutdown with SIGINT, the image's STOPSIGNAL, and
// kills the whole process group after grace; it returns when the process
// has exited. As with `docker stop`, the signal goes to the main process
// only: the postmaster shuts its children down itself (and SIGINT means
// something else to them, e.g. "checkpoint now" to the checkpointer).
// A paused server is resumed first. Stop may be called any number of times.
func (p *Process) Stop(grace time.Duration) error {
	if p.exited() {
		return nil
	}
	p.stopOnce.Do(func() {
		_ = p.signalGroup(syscall.SIGCONT)
		_ = p.cmd.Process.Signal(syscall.SIGINT)
	})
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
		return p.Kill()
	}
}

// Kill kills the whole process group with SIGKILL, as a crashing
// container dies, and waits until it is gone.
func (p *Process) Kill() error {
	err := p.signalGroup(syscall.SIGKILL)
	<-p.done
	return err
}

// Pause stops (SIGSTOP) every process of the server and returns once all of
// them are stopped, so that none is still in the middle of a write: the
// data directory can then be copied like a frozen file system.
func (p *Process) Pause() error {
	if err := p.signalGroup(syscall.SIGSTOP); err != nil {
		return err
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if p.exited() {
			return nil
		}
		running := slices.ContainsFunc(p.family(), func(m groupMember) bool {
			return m.state != 'T' && m.state != 't' && m.state != 'Z' && m.state != 'X'
		})
		if !running {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("pgproc: process group %d did not stop within 5s", p.pgid)
		}
		time.Sleep(time.Millisecond)
	}
}

// Resume continues a paused server (SIGCONT to the group).
func (p *Process) Resume() error { return p.signalGroup(syscall.SIGCONT) }

// signalGroup signals every process of the server (see family), unless the
// server is already gone (its ids could have been reused by then).
func (p *Process) signalGroup(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(-p.pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("pgproc: signal %v to process group %d: %w", sig, p.pgid, err)
	}
	p.signalFamily(sig)
	return nil
}

// Probe reports whether the server at addr ("host:port") accepts
// connections, as pg_isready does: it sends a protocol 3.0 startup message
// (user and database "postgres") and reads the first reply. An
// authentication request, or any error other than SQLSTATE 57P03
// (cannot_connect_now: starting up, shutting down, in recovery), means the
// server is accepting connections. No credentials are needed. Without a
// deadline in ctx, Probe gives up after 3 seconds.
func Probe(ctx context.Context, addr string) (ready bool, detail string) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 3*time.Second)
		defer cancel()
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false, "no response: " + err.Error()
	}
	defer conn.Close()
	deadline, _ := ctx.Deadline()
	_ = conn.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	params := "user\x00postgres\x00database\x00postgres\x00application_name\x00pgproc probe\x00\x00"
	msg := binary.BigEndian.AppendUint32(nil, uint32(8+len(params)))
	msg = binary.BigEndian.AppendUint32(msg, 3<<16) // protocol 3.0
	msg = append(msg, params...)
	if _, err := conn.Write(msg); err != nil {
		return false, "no response: " + err.Error()
	}
	for {
		var header [5]byte
		if _, err := io.ReadFull(conn, header[:]); err != nil {
			return false, "no response: " + err.Error()
		}
		length := int(binary.BigEndian.Uint32(header[1:])) - 4
		if length < 0 || length > 1<<16 {
			return false, fmt.Sprintf("malformed response (type %q, length %d)", header[0], length+4)
		}
		payload := make([]byte, length)
		if _, err := io.ReadFull(conn, payload); err != nil {
			return false, "no response: " + err.Error()
		}
		switch header[0] {
		case 'R':
			// AuthenticationOk (trust): end the session cleanly. An
			// authentication request: hang up, as pg_isready does without a
			// password; the server takes the end of the connection silently
			// (a Terminate there would be logged as a FATAL protocol error).
			if length >= 4 && binary.BigEndian.Uint32(payload) == 0 {
				_, _ = conn.Write([]byte{'X', 0, 0, 0, 4})
			}
			return true, "accepting connections"
		case 'E':
			code, message := errorFields(payload)
			if code == "57P03" {
				return false, "rejecting connections: " + message
			}
			return true, fmt.Sprintf("accepting connections (%s: %s)", code, message)
		case 'N': // a notice before the answer
			continue
		default:
			_, _ = conn.Write([]byte{'X', 0, 0, 0, 4})
			return true, fmt.Sprintf("accepting connections (first message %q)", header[0])
		}
	}
}

// errorFields extracts SQLSTATE and message of an ErrorResponse body.
func errorFields(payload []byte) (code, message string) {
	for len(payload) > 1 {
		field := payload[0]
		end := bytes.IndexByte(payload[1:], 0)
		if end < 0 {
			break
		}
		value := string(payload[1 : 1+end])
		switch field {
		case 'C':
			code = value
		case 'M':
			message = value
		}
		payload = payload[2+end:]
	}
	return code, message
}
