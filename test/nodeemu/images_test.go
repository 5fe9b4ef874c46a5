package nodeemu

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestParsePostgresImage(t *testing.T) {
	tests := []struct {
		image               string
		wantOK              bool
		wantVersion, wantMj string
	}{
		{"postgres:16", true, "16", "16"},
		{"postgres:16.4", true, "16.4", "16"},
		{"postgres:16-alpine", true, "16", "16"},
		{"postgres:16.4-alpine3.20", true, "16.4", "16"},
		{"docker.io/library/postgres:15.8-bookworm", true, "15.8", "15"},
		{"localhost:5000/postgres:17", true, "17", "17"},
		{"postgres:9.6.24", true, "9.6.24", "9.6"},
		{"postgres", true, "", ""},
		{"postgres:latest", true, "", ""},
		{"postgres:alpine", true, "", ""},
		{"registry.example.com/postgres@sha256:abc", true, "", ""},
		{"postgres:16@sha256:abc", true, "16", "16"},
		{"bitnami/postgresql:15", true, "15", "15"},
		{"nginx:1.27", false, "", ""},
		{"postgres-exporter/exporter:1", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			img, ok := parsePostgresImage(tt.image)
			if ok != tt.wantOK || img.version != tt.wantVersion || img.major != tt.wantMj {
				t.Errorf("parsePostgresImage = %+v, %v; want version %q, major %q, %v", img, ok, tt.wantVersion, tt.wantMj, tt.wantOK)
			}
		})
	}
}

// fakePostgresRoot lays out /usr/lib/postgresql with server binaries for
// the given majors, and a client-only directory.
func fakePostgresRoot(t *testing.T, majors ...string) hostPostgres {
	t.Helper()
	root := t.TempDir()
	for _, m := range majors {
		bin := filepath.Join(root, m, "bin")
		if err := os.MkdirAll(bin, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(bin, "postgres"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(filepath.Join(root, "18", "bin"), 0o755); err != nil { // client only
		t.Fatal(err)
	}
	return hostPostgres{root: root}
}

func TestServerForAnImage(t *testing.T) {
	host := fakePostgresRoot(t, "9.6", "13", "15")
	tests := []struct {
		image     string
		wantMajor string
		wantOK    bool
	}{
		{"postgres:15", "15", true},
		{"postgres:15.8-alpine", "15", true},
		{"postgres:9.6", "9.6", true},
		{"postgres:16", "16", false},
		{"postgres:18", "18", false}, // client programs only
		{"postgres:latest", "15", true},
		{"postgres", "15", true},
		{"postgres@sha256:abc", "15", true},
	}
	for _, tt := range tests {
		t.Run(tt.image, func(t *testing.T) {
			img, _ := parsePostgresImage(tt.image)
			major, binDir, ok := host.serverFor(img)
			if major != tt.wantMajor || ok != tt.wantOK {
				t.Fatalf("serverFor = %q, %q, %v; want %q, %v", major, binDir, ok, tt.wantMajor, tt.wantOK)
			}
			if ok && binDir != filepath.Join(host.root, major, "bin") {
				t.Errorf("binDir = %q, want %s/%s/bin", binDir, host.root, major)
			}
		})
	}
	if _, _, ok := fakePostgresRoot(t).serverFor(postgresImage{}); ok {
		t.Error("an image without a version runs on a machine without PostgreSQL")
	}
}

// The words of PostgreSQL 16 started on a data directory of 15
// (ValidatePgVersion), with the default log_line_prefix '%m [%p] '.
func TestIncompatibleDataDirLog(t *testing.T) {
	dir := t.TempDir()
	conf := "# comment\n#log_timezone = 'Asia/Tokyo'\nlog_timezone = 'Europe/Berlin'\t# set by initdb\n"
	if err := os.WriteFile(filepath.Join(dir, "postgresql.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "PG_VERSION"), []byte("15\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := dataDirMajor(dir); got != "15" {
		t.Fatalf("dataDirMajor = %q, want 15", got)
	}
	got := incompatibleDataDirLog(dir, dataDirMajor(dir), "16.4", time.Date(2026, 11, 23, 3, 0, 1, 234e6, time.UTC))
	want := "2026-11-23 04:00:01.234 CET [1] FATAL:  database files are incompatible with server\n" +
		"2026-11-23 04:00:01.234 CET [1] DETAIL:  The data directory was initialized by PostgreSQL version 15, which is not compatible with this version 16.4.\n"
	if got != want {
		t.Errorf("log =\n%s\nwant\n%s", got, want)
	}
	if dataDirMajor(t.TempDir()) != "" {
		t.Error("an empty directory has a major version")
	}
}

func TestTerminationMessage(t *testing.T) {
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	// containerOutput is a run's log with output written to stderr.
	containerOutput := func(name, output string) string {
		t.Helper()
		log, err := createContainerLog(filepath.Join(dir, name), time.Now)
		if err != nil {
			t.Fatal(err)
		}
		stderr := log.stream(streamStderr)
		if _, err := stderr.Write([]byte(output)); err != nil {
			t.Fatal(err)
		}
		if err := stderr.flush(); err != nil {
			t.Fatal(err)
		}
		if err := log.close(); err != nil {
			t.Fatal(err)
		}
		return log.path
	}
	logLines := func(n, width int) string {
		var b strings.Builder
		for i := range n {
			fmt.Fprintf(&b, "%0*d\n", width-1, i)
		}
		return b.String()
	}
	refusal := "FATAL:  database files are incompatible with server\n"
	logPath := containerOutput("1.log", refusal)
	shortLines := logLines(100, 10) // 80 lines are 800 bytes: the line limit cuts
	longLines := logLines(100, 100) // 80 lines are 8000 bytes: the byte limit cuts
	empty := file("termination-log", "")
	written := file("termination-log-written", "the application's own words")
	fallback := corev1.TerminationMessageFallbackToLogsOnError
	thisRun := containerRun{terminationLog: empty, logPath: logPath}
	tests := []struct {
		name   string
		policy corev1.TerminationMessagePolicy
		run    containerRun
		code   int32
		want   string
	}{
		{"policy File, nothing written: empty", corev1.TerminationMessageReadFile, thisRun, 1, ""},
		{"fallback to this run's log on error", fallback, thisRun, 1, refusal},
		{"no fallback on success", fallback, thisRun, 0, ""},
		{"the termination log wins", fallback, containerRun{terminationLog: written, logPath: logPath}, 1, "the application's own words"},
		{"the last 80 lines", fallback, containerRun{terminationLog: empty, logPath: containerOutput("short.log", shortLines)}, 1, shortLines[20*10:]},
		{"the last 2048 bytes", fallback, containerRun{terminationLog: empty, logPath: containerOutput("long.log", longLines)}, 1, longLines[len(longLines)-2048:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := &corev1.Container{TerminationMessagePolicy: tt.policy}
			if got := terminationMessage(c, &tt.run, tt.code); got != tt.want {
				t.Errorf("terminationMessage = %q, want %q", got, tt.want)
			}
		})
	}
}

// Ready and Started come from the probes' results, as the kubelet's
// UpdatePodStatus computes them.
func TestContainerReadyComesFromTheReadinessProbe(t *testing.T) {
	running := corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}
	probe := &corev1.Probe{}
	tests := []struct {
		name        string
		spec        corev1.Container
		state       corev1.ContainerState
		results     map[probeKind]probeResult
		wantStarted bool
		wantReady   bool
	}{
		{"running, no readiness probe: ready", corev1.Container{}, running, nil, true, true},
		{"running, readiness probe not yet succeeded", corev1.Container{ReadinessProbe: probe}, running, map[probeKind]probeResult{readinessProbe: resultFailure}, true, false},
		{"running, readiness probe succeeded", corev1.Container{ReadinessProbe: probe}, running, map[probeKind]probeResult{readinessProbe: resultSuccess}, true, true},
		{"startup probe pending: neither started nor ready", corev1.Container{StartupProbe: probe}, running, nil, false, false},
		{"startup probe succeeded, no readiness probe", corev1.Container{StartupProbe: probe}, running, map[probeKind]probeResult{startupProbe: resultSuccess}, true, true},
		{"terminated, readiness success left over", corev1.Container{ReadinessProbe: probe}, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{}}, map[probeKind]probeResult{readinessProbe: resultSuccess}, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := &containerState{spec: tt.spec, state: tt.state, results: tt.results}
			if cs.isStarted() != tt.wantStarted || cs.isReady() != tt.wantReady {
				t.Errorf("started %v, ready %v; want %v, %v", cs.isStarted(), cs.isReady(), tt.wantStarted, tt.wantReady)
			}
		})
	}
}
