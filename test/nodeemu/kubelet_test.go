package nodeemu

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

func TestEffectiveGracePeriodIsTheKubelets(t *testing.T) {
	tests := []struct {
		name           string
		spec, deletion *int64
		want           time.Duration
	}{
		{"the deletion's grace period", ptr.To(int64(30)), ptr.To(int64(5)), 5 * time.Second},
		{"deleted with no grace period: the pod is gone, its containers get a second", ptr.To(int64(30)), ptr.To(int64(0)), time.Second},
		{"a pod with no grace period, deleted with the default", ptr.To(int64(0)), ptr.To(int64(0)), time.Second},
		{"no deletion grace known: the pod's", ptr.To(int64(7)), nil, 7 * time.Second},
		{"neither: Kubernetes' default", nil, nil, 30 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pod := &corev1.Pod{}
			pod.Spec.TerminationGracePeriodSeconds = tt.spec
			pod.DeletionGracePeriodSeconds = tt.deletion
			if got := effectiveGracePeriod(pod); got != tt.want {
				t.Errorf("effectiveGracePeriod = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestReadyWatcherNotesTheServersReadyLine(t *testing.T) {
	line := "2026-11-30 03:00:02.118 UTC [1] LOG:  database system is ready to accept connections\n"
	tests := []struct {
		name   string
		writes []string
		want   bool
	}{
		{"in one write", []string{"LOG:  redo done\n", line}, true},
		{"split across writes", []string{line[:50], line[50:70], line[70:]}, true},
		{"a hot standby", []string{"LOG:  database system is ready to accept read-only connections\n"}, true},
		{"still starting", []string{"LOG:  database system was interrupted; last known up at …\n", "LOG:  redo starts at 0/1A2B3C4\n"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			ready := make(chan time.Time, 1)
			w := &readyWatcher{w: &out, ready: ready}
			for _, s := range tt.writes {
				if _, err := w.Write([]byte(s)); err != nil {
					t.Fatal(err)
				}
			}
			if out.String() != strings.Join(tt.writes, "") {
				t.Errorf("the log was changed on its way: %q", out.String())
			}
			select {
			case <-ready:
				if !tt.want {
					t.Error("ready before the server said so")
				}
			default:
				if tt.want {
					t.Error("the server's ready line went unnoticed")
				}
			}
		})
	}
}

// TestContainerChangesWaitForTheNextRelist: the kubelet learns of a
// container's start or exit at its relist, every RelistPeriod from its
// start, never before; a pod that goes away ends the wait.
func TestContainerChangesWaitForTheNextRelist(t *testing.T) {
	const period = 300 * time.Millisecond
	k := &kubelet{e: &Emulator{cfg: Config{Defaults: Defaults{RelistPeriod: period}}}, relistStart: time.Now()}
	for relist := 1; relist <= 2; relist++ {
		if !k.awaitRelist(t.Context()) {
			t.Fatal("awaitRelist reports that its context ended; it did not")
		}
		if since := time.Since(k.relistStart); since < time.Duration(relist)*period {
			t.Errorf("relist %d came %s after the kubelet started, before its period %s had passed", relist, since, time.Duration(relist)*period)
		}
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if k.awaitRelist(ctx) {
		t.Error("awaitRelist on an ended context reports a relist")
	}
	k.e.cfg.Defaults.RelistPeriod = -1
	if !k.awaitRelist(t.Context()) {
		t.Error("with a negative period, awaitRelist reports no relist")
	}
}
