package faults_test

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/drillerd/drillerd/test/fixture"
)

// readyTimeout bounds how long a started drillerd may take to answer
// /readyz (its caches synced, its listeners up).
var readyTimeout = fixture.Scaled(60 * time.Second)

// drillerd is one `drillerd serve` process, which a test may kill and
// start again with the same flags and addresses.
type drillerd struct {
	name       string
	kubeconfig string
	args       []string
	logPath    string
	// Addresses, chosen at the first start.
	metrics, api, health string

	cmd      *exec.Cmd
	done     chan struct{}
	exitErr  error
	expected atomic.Bool // the test ended it
}

// startDrillerd starts `drillerd serve` with drillerd's credentials in
// kubeconfig and extra flags, waits until it is ready, and stops it when
// the test ends; a drillerd that exited on its own fails the test. Unless
// args say otherwise it runs without leader election (one replica) and
// with four drill slots.
func startDrillerd(t *testing.T, name, kubeconfig string, args ...string) *drillerd {
	t.Helper()
	d := &drillerd{
		name: name, kubeconfig: kubeconfig, args: args,
		logPath: filepath.Join(workDir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+name+".log"),
	}
	d.start(t)
	daemons.Store(d, true)
	t.Cleanup(func() {
		daemons.Delete(d)
		crashed := d.crashed()
		d.stop()
		if crashed != nil {
			t.Errorf("drillerd %s exited on its own: %v", d.name, crashed)
		}
		if t.Failed() {
			t.Logf("the end of drillerd %s's log (%s):\n%s", d.name, d.logPath, tail(d.logPath, 60))
		}
	})
	return d
}

// start starts the process and waits until /readyz answers 200.
func (d *drillerd) start(t *testing.T) {
	t.Helper()
	logFile, err := os.OpenFile(d.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	for _, addr := range []*string{&d.metrics, &d.api, &d.health} {
		if *addr == "" {
			*addr = freeAddress(t)
		}
	}
	args := []string{"serve", "--kubeconfig", d.kubeconfig, "--metrics-bind-address", d.metrics, "--api-bind-address", d.api,
		"--health-probe-bind-address", d.health, "--log-format", "console", "--namespace", drillerdNamespace,
		"--leader-elect=false", "--max-concurrent-drills", "4"}
	cmd := exec.Command(drillerdBinary, append(args, d.args...)...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if err := cmd.Start(); err != nil {
		logFile.Close()
		t.Fatal(err)
	}
	fmt.Fprintf(logFile, "=== drillerd %s started (pid %d) by the test\n", d.name, cmd.Process.Pid)
	d.cmd, d.done, d.exitErr = cmd, make(chan struct{}), nil
	d.expected.Store(false)
	go func() { d.exitErr = cmd.Wait(); logFile.Close(); close(d.done) }()
	deadline := time.Now().Add(readyTimeout)
	for !d.ready() {
		if err := d.crashed(); err != nil {
			t.Fatalf("drillerd %s exited while starting: %v\n%s", d.name, err, tail(d.logPath, 40))
		}
		if time.Now().After(deadline) {
			t.Fatalf("drillerd %s not ready within %s:\n%s", d.name, readyTimeout, tail(d.logPath, 40))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ready reports whether /readyz answers 200.
func (d *drillerd) ready() bool {
	c := http.Client{Timeout: time.Second}
	resp, err := c.Get("http://" + d.health + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// running reports whether the process runs.
func (d *drillerd) running() bool {
	select {
	case <-d.done:
		return false
	default:
		return true
	}
}

// daemons are the drillerd processes of the running test.
var daemons sync.Map

// assertNoneCrashed fails the test at once if a drillerd of the running
// test exited on its own: nothing it should do will happen.
func assertNoneCrashed(t *testing.T) {
	t.Helper()
	daemons.Range(func(k, _ any) bool {
		if err := k.(*drillerd).crashed(); err != nil {
			t.Fatalf("drillerd %s exited on its own: %v\n%s", k.(*drillerd).name, err, tail(k.(*drillerd).logPath, 30))
		}
		return true
	})
}

// crashed is why drillerd exited if it did so on its own, else nil.
func (d *drillerd) crashed() error {
	if d.running() || d.expected.Load() {
		return nil
	}
	return fmt.Errorf("%v (log %s)", d.exitErr, d.logPath)
}

// kill ends drillerd at once (SIGKILL), as a crash or a lost node would.
func (d *drillerd) kill() {
	d.expected.Store(true)
	_ = d.cmd.Process.Kill()
	<-d.done
}

// stop ends drillerd gracefully.
func (d *drillerd) stop() {
	if !d.running() {
		return
	}
	d.expected.Store(true)
	_ = d.cmd.Process.Signal(os.Interrupt)
	select {
	case <-d.done:
	case <-time.After(30 * time.Second):
		d.kill()
	}
}

func freeAddress(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// tail is the last n lines of a file.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
