package nodeemu

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestTCPProbe(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedPort := closed.Addr().(*net.TCPAddr).Port
	closed.Close()

	if out := tcpProbe("127.0.0.1", l.Addr().(*net.TCPAddr).Port, 30*time.Second); out.result != resultSuccess {
		t.Errorf("listening port: %+v, want success", out)
	}
	out := tcpProbe("127.0.0.1", closedPort, 30*time.Second)
	if out.result != resultFailure || !strings.Contains(out.output, "connection refused") {
		t.Errorf("closed port: %+v, want a failure saying connection refused", out)
	}
}

func TestHTTPProbe(t *testing.T) {
	var userAgent string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/healthz":
			userAgent = r.Header.Get("User-Agent")
			io.WriteString(w, "ok")
		case "/moved":
			http.Redirect(w, r, "http://elsewhere.invalid/", http.StatusFound)
		case "/local-redirect":
			http.Redirect(w, r, "/healthz", http.StatusFound)
		default:
			http.Error(w, "broken", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	host, portText, _ := net.SplitHostPort(strings.TrimPrefix(srv.URL, "http://"))
	port, _ := strconv.Atoi(portText)
	container := &corev1.Container{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: int32(port)}}}

	tests := []struct {
		name        string
		path        string
		port        intstr.IntOrString
		want        probeResult
		wantWarning bool
		wantOutput  string
		wantErr     bool
	}{
		{name: "200", path: "/healthz", port: intstr.FromInt32(int32(port)), want: resultSuccess, wantOutput: "ok"},
		{name: "named port", path: "/healthz", port: intstr.FromString("http"), want: resultSuccess, wantOutput: "ok"},
		{name: "503", path: "/broken", port: intstr.FromInt32(int32(port)), want: resultFailure, wantOutput: "HTTP probe failed with statuscode: 503"},
		{name: "redirect to another host is not followed", path: "/moved", port: intstr.FromInt32(int32(port)), want: resultSuccess, wantWarning: true, wantOutput: "Probe terminated redirects"},
		{name: "redirect on the same host is followed", path: "/local-redirect", port: intstr.FromInt32(int32(port)), want: resultSuccess, wantOutput: "ok"},
		{name: "unknown port name", path: "/healthz", port: intstr.FromString("metrics"), wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// No host: the pod's IP.
			out := httpProbe(&corev1.HTTPGetAction{Path: tt.path, Port: tt.port}, container, host, 30*time.Second)
			if tt.wantErr {
				if out.err == nil {
					t.Errorf("outcome %+v, want an error", out)
				}
				return
			}
			if out.err != nil || out.result != tt.want || out.warning != tt.wantWarning || !strings.Contains(out.output, tt.wantOutput) {
				t.Errorf("outcome %+v, want %v (warning %v) with output %q", out, tt.want, tt.wantWarning, tt.wantOutput)
			}
		})
	}
	if userAgent != "kube-probe/1.37" {
		t.Errorf("User-Agent %q, want the kubelet's kube-probe/1.37", userAgent)
	}
}

// newExecView lays out a container: its root, a volume mounted at
// /var/lib/postgresql/data and its socket directory.
func newExecView(t *testing.T, env map[string]string) (execView, string) {
	t.Helper()
	base := t.TempDir()
	rootfs, volume := filepath.Join(base, "rootfs"), filepath.Join(base, "volume")
	sockets, err := os.MkdirTemp("", "pg") // short: unix socket paths stay < 100 bytes
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockets) })
	for _, d := range []string{rootfs, volume} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	table := newMountTable(rootfs, []mount{{containerPath: "/var/lib/postgresql/data", hostPath: volume}}).with(socketDir, sockets)
	binDir := "/usr/lib/postgresql/15/bin"
	return execView{
		containerID: "emulator://test", env: imageEnv("15", binDir, env), table: table, workDir: "/",
		uid: uint32(os.Getuid()), gid: uint32(os.Getgid()),
	}, sockets
}

func TestExecProbe(t *testing.T) {
	view, _ := newExecView(t, map[string]string{"PGDATA": "/var/lib/postgresql/data/pgdata", "GREETING": "hello"})
	if err := os.WriteFile(filepath.Join(view.table.hostPath("/var/lib/postgresql/data"), "marker"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		command    []string
		want       probeResult
		wantOutput string
		wantErr    string
		timeout    time.Duration // default: long enough for any command here on a loaded machine
	}{
		{name: "exit 0", command: []string{"true"}, want: resultSuccess},
		{name: "exit 1 with its output, stdout then stderr", command: []string{"sh", "-c", "echo to-stderr >&2; echo to-stdout; exit 1"}, want: resultFailure, wantOutput: "to-stdout\nto-stderr\n"},
		{name: "the container's environment", command: []string{"sh", "-c", `test "$GREETING" = hello`}, want: resultSuccess},
		{name: "container paths on a volume are translated", command: []string{"test", "-f", "/var/lib/postgresql/data/marker"}, want: resultSuccess},
		{name: "PGDATA is the volume's directory", command: []string{"sh", "-c", `test "$PGDATA" = "$1/pgdata"`, "sh", "/var/lib/postgresql/data"}, want: resultSuccess},
		{name: "the image's major version comes first in PATH", command: []string{"sh", "-c", `case "$PATH" in /usr/lib/postgresql/15/bin:*) exit 0;; esac; exit 1`}, want: resultSuccess},
		{name: "timeout", command: []string{"sleep", "60"}, timeout: 100 * time.Millisecond, want: resultFailure, wantOutput: `command timed out: "sleep 60" timed out after 100ms`},
		{name: "no such command", command: []string{"no-such-command"}, wantErr: `exec: "no-such-command": executable file not found in $PATH`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := tt.timeout
			if timeout == 0 {
				timeout = 30 * time.Second
			}
			out := view.execProbe(context.Background(), tt.command, timeout)
			if tt.wantErr != "" {
				if out.err == nil || !strings.Contains(out.err.Error(), tt.wantErr) {
					t.Errorf("outcome %+v, want an error saying %q", out, tt.wantErr)
				}
				return
			}
			if out.err != nil || out.result != tt.want || (tt.wantOutput != "" && out.output != tt.wantOutput) {
				t.Errorf("outcome %+v, want %v with output %q", out, tt.want, tt.wantOutput)
			}
		})
	}
}

// TestExecPgIsreadyReachesItsOwnPod: two pods, only one with a server on its
// socket; pg_isready without a host, exec'd in each, answers for its own
// pod only (libpq's default socket directory is the pod's).
func TestExecPgIsreadyReachesItsOwnPod(t *testing.T) {
	if _, err := exec.LookPath("/usr/lib/postgresql/15/bin/pg_isready"); err != nil {
		t.Skip("needs PostgreSQL 15's pg_isready")
	}
	up, upSockets := newExecView(t, nil)
	down, _ := newExecView(t, nil)
	serveStartupReplies(t, filepath.Join(upSockets, ".s.PGSQL.5432"))

	command := []string{"pg_isready", "-p", "5432"}
	if out := up.execProbe(context.Background(), command, 5*time.Second); out.err != nil || out.result != resultSuccess {
		t.Errorf("pg_isready in the pod with a server: %+v, want success", out)
	}
	out := down.execProbe(context.Background(), command, 5*time.Second)
	if out.err != nil || out.result != resultFailure || !strings.Contains(out.output, "no response") {
		t.Errorf("pg_isready in the pod without a server: %+v, want a failure saying no response", out)
	}
}

// serveStartupReplies answers every connection on a unix socket as a
// server accepting connections does: an authentication request.
func serveStartupReplies(t *testing.T, path string) {
	t.Helper()
	l, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var n [4]byte
				if _, err := io.ReadFull(c, n[:]); err != nil {
					return
				}
				if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(n[:]))-4); err != nil {
					return
				}
				// AuthenticationCleartextPassword
				c.Write([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
				io.Copy(io.Discard, c)
			}()
		}
	}()
}
