package nodeemu

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// stepClock is a clock that advances a second at each reading.
type stepClock struct{ t time.Time }

func (c *stepClock) now() time.Time {
	c.t = c.t.Add(time.Second)
	return c.t
}

var logT0 = time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)

// writeLog writes output to a new container log, each piece to the
// stream it names ("stdout:..." or "stderr:..."), then ends the streams.
func writeLog(t *testing.T, path string, pieces ...string) *containerLog {
	t.Helper()
	clock := &stepClock{t: logT0}
	log, err := createContainerLog(path, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	streams := map[string]*logStream{streamStdout: log.stream(streamStdout), streamStderr: log.stream(streamStderr)}
	for _, p := range pieces {
		name, text, _ := strings.Cut(p, ":")
		if _, err := streams[name].Write([]byte(text)); err != nil {
			t.Fatal(err)
		}
	}
	for _, s := range streams {
		if err := s.flush(); err != nil {
			t.Fatal(err)
		}
	}
	return log
}

func TestContainerLogIsInCRIFormat(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	long := strings.Repeat("x", maxLogLineBytes+10)
	log := writeLog(t, path, "stdout:first\nsecond ", "stderr:FATAL:  oops\n", "stdout:line\n", "stdout:"+long+"\n", "stdout:no newline")
	if err := log.close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	want := "2026-11-30T03:00:01.000000000Z stdout F first\n" +
		"2026-11-30T03:00:02.000000000Z stderr F FATAL:  oops\n" +
		"2026-11-30T03:00:03.000000000Z stdout F second line\n" +
		"2026-11-30T03:00:04.000000000Z stdout P " + long[:maxLogLineBytes] + "\n" +
		"2026-11-30T03:00:05.000000000Z stdout F " + long[maxLogLineBytes:] + "\n" +
		"2026-11-30T03:00:06.000000000Z stdout P no newline\n"
	if string(data) != want {
		t.Errorf("log file =\n%.400s\nwant\n%.400s", data, want)
	}
}

func TestContainerLogIsBounded(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "0.log")
	clock := &stepClock{t: logT0}
	log, err := createContainerLog(path, clock.now)
	if err != nil {
		t.Fatal(err)
	}
	log.maxSize = 1000
	stdout := log.stream(streamStdout)
	for i := range 200 {
		if _, err := stdout.Write([]byte(strings.Repeat("y", 40) + "\n")); err != nil {
			t.Fatalf("line %d: %v", i, err)
		}
	}
	if _, err := stdout.Write([]byte("the last line\n")); err != nil {
		t.Fatal(err)
	}
	if err := log.close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != containerLogMaxFiles {
		t.Errorf("files %v, want %d (the log and its rotated files)", files, containerLogMaxFiles)
	}
	for _, f := range files {
		if info, err := os.Stat(f); err != nil || info.Size() > log.maxSize {
			t.Errorf("%s: %v, size %d; want at most %d bytes", f, err, info.Size(), log.maxSize)
		}
	}
	// Only the newest file is read back.
	got := readLog(t, path, logOptions{tailLines: 1, limitBytes: -1, stdout: true, stderr: true})
	if got != "the last line\n" {
		t.Errorf("last line read back = %q", got)
	}
}

func readLog(t *testing.T, path string, opts logOptions) string {
	t.Helper()
	var out strings.Builder
	if err := readContainerLog(context.Background(), path, opts, func() bool { return false }, &out); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// The kubelet's ReadLogs semantics: tailLines counts the file's lines
// whatever their stream; since drops older lines; limitBytes cuts
// anywhere; timestamps prefix whole lines only.
func TestReadContainerLog(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	// Times: one second apart, from 03:00:01.
	writeLog(t, path, "stdout:starting\n", "stderr:LOG:  redo starts\n", "stderr:PANIC:  could not locate a valid checkpoint record\n",
		"stdout:"+strings.Repeat("z", maxLogLineBytes)+"end\n", "stderr:LOG:  aborting startup\n").close()
	long := strings.Repeat("z", maxLogLineBytes) + "end\n"
	all := "starting\nLOG:  redo starts\nPANIC:  could not locate a valid checkpoint record\n" + long + "LOG:  aborting startup\n"
	opts := func(f func(*logOptions)) logOptions {
		o := logOptions{tailLines: -1, limitBytes: -1, stdout: true, stderr: true}
		if f != nil {
			f(&o)
		}
		return o
	}
	tests := []struct {
		name string
		opts logOptions
		want string
	}{
		{"everything", opts(nil), all},
		{"the last two lines", opts(func(o *logOptions) { o.tailLines = 2 }), "end\nLOG:  aborting startup\n"},
		{"tail 0", opts(func(o *logOptions) { o.tailLines = 0 }), ""},
		{"more lines than there are", opts(func(o *logOptions) { o.tailLines = 50 }), all},
		{"limitBytes cuts mid-line", opts(func(o *logOptions) { o.limitBytes = 12 }), "starting\nLOG"},
		{"tail counts file lines, a cut line is two", opts(func(o *logOptions) { o.tailLines = 4; o.limitBytes = 20 }), "PANIC:  could not lo"},
		{"stderr only", opts(func(o *logOptions) { o.stdout = false }), "LOG:  redo starts\nPANIC:  could not locate a valid checkpoint record\nLOG:  aborting startup\n"},
		{"since drops older lines", opts(func(o *logOptions) { o.since = logT0.Add(3 * time.Second) }), "PANIC:  could not locate a valid checkpoint record\n" + long + "LOG:  aborting startup\n"},
		{
			"timestamps on whole lines only", opts(func(o *logOptions) { o.tailLines = 3; o.timestamps = true }),
			"2026-11-30T03:00:04.000000000Z " + long[:maxLogLineBytes] + "end\n" + "2026-11-30T03:00:06.000000000Z LOG:  aborting startup\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := readLog(t, path, tt.opts); got != tt.want {
				t.Errorf("read %q\nwant %q", shorten(got), shorten(tt.want))
			}
		})
	}
}

func shorten(s string) string {
	return strings.ReplaceAll(s, strings.Repeat("z", maxLogLineBytes), "z…z")
}

// Following a log returns what the container writes until it stops.
func TestReadContainerLogFollows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "0.log")
	log := writeLog(t, path, "stderr:LOG:  database system is ready to accept connections\n")
	stderr := log.stream(streamStderr)
	checks := 0
	running := func() bool {
		checks++
		if checks == 1 { // the container writes while it is followed, then stops
			if _, err := stderr.Write([]byte("FATAL:  terminating connection due to administrator command\n")); err != nil {
				t.Error(err)
			}
			return true
		}
		return false
	}
	var out strings.Builder
	opts := logOptions{tailLines: 1, limitBytes: -1, follow: true, stdout: true, stderr: true}
	if err := readContainerLog(context.Background(), path, opts, running, &out); err != nil {
		t.Fatal(err)
	}
	want := "LOG:  database system is ready to accept connections\nFATAL:  terminating connection due to administrator command\n"
	if out.String() != want {
		t.Errorf("followed %q, want %q", out.String(), want)
	}
}
