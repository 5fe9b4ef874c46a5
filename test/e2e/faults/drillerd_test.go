package faults_test

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/drillerd/drillerd/test/fixture"
)

// readyTimeout bounds how long a started drillerd may take to answer
// /readyz (its caches synced, its listeners up).
var readyTimeout = fixture.Scaled(60 * time.Second)

// startDrillerd starts `drillerd serve` with drillerd's credentials in
// kubeconfig and extra flags, waits until it is ready, and stops it when
// the test ends; a drillerd that exited on its own fails the test. Unless
// args say otherwise it runs without leader election (one replica) and
// with four drill slots.
func startDrillerd(t *testing.T, name, kubeconfig string, args ...string) *fixture.Drillerd {
	t.Helper()
	d := &fixture.Drillerd{
		Name: name, Binary: drillerdBinary, Kubeconfig: kubeconfig,
		Flags: append([]string{"--log-format", "console", "--namespace", drillerdNamespace,
			"--leader-elect=false", "--max-concurrent-drills", "4"}, args...),
		LogPath: filepath.Join(workDir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+name+".log"),
	}
	startReady(t, d)
	daemons.Store(d, true)
	t.Cleanup(func() {
		daemons.Delete(d)
		crashed := d.Crashed()
		d.Stop()
		if crashed != nil {
			t.Errorf("drillerd %s exited on its own: %v", d.Name, crashed)
		}
		if t.Failed() {
			t.Logf("the end of drillerd %s's log (%s):\n%s", d.Name, d.LogPath, tail(d.LogPath, 60))
		}
	})
	return d
}

// startReady starts d and waits until /readyz answers 200.
func startReady(t *testing.T, d *fixture.Drillerd) {
	t.Helper()
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if err := d.WaitReady(readyTimeout); err != nil {
		t.Fatalf("%v:\n%s", err, tail(d.LogPath, 40))
	}
}

// daemons are the drillerd processes of the running test.
var daemons sync.Map

// assertNoneCrashed fails the test at once if a drillerd of the running
// test exited on its own: nothing it should do will happen.
func assertNoneCrashed(t *testing.T) {
	t.Helper()
	daemons.Range(func(k, _ any) bool {
		d := k.(*fixture.Drillerd)
		if err := d.Crashed(); err != nil {
			t.Fatalf("drillerd %s exited on its own: %v\n%s", d.Name, err, tail(d.LogPath, 30))
		}
		return true
	})
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
