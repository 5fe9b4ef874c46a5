package restore

import (
	"fmt"
	"sort"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
)

// SnapshotCopyReady reports whether the sandbox's VolumeSnapshot is ready,
// and the snapshot-controller's error when it failed.
func SnapshotCopyReady(vs *snapshotv1.VolumeSnapshot) (ready bool, failure string) {
	if vs.Status == nil {
		return false, ""
	}
	if vs.Status.ReadyToUse != nil && *vs.Status.ReadyToUse {
		return true, ""
	}
	if vs.Status.Error != nil && vs.Status.Error.Message != nil {
		return false, *vs.Status.Error.Message
	}
	return false, ""
}

// ClaimBound reports whether the restored claim is bound to a volume.
func ClaimBound(pvc *corev1.PersistentVolumeClaim) bool {
	return pvc.Status.Phase == corev1.ClaimBound && pvc.Spec.VolumeName != ""
}

// PodProgress is what the database pod says about its start.
type PodProgress struct {
	// Ready: the kubelet's readiness probe passed and the pod has an IP.
	Ready bool
	// Running: the database container runs and the pod has an IP, so
	// drillerd can try to connect (its own readiness, without waiting for
	// the probe's next period).
	Running bool
	// Terminated: the database exited; Failure says how.
	Terminated bool
	// Failure describes a terminated container, or a container stuck
	// waiting for a reason that needs a person (ErrImagePull, ...).
	Failure string
}

// stuckReasons are waiting reasons that do not go away by waiting.
var stuckReasons = map[string]bool{
	"ErrImagePull": true, "ImagePullBackOff": true, "InvalidImageName": true, "ErrImageNeverPull": true,
	"CrashLoopBackOff": true, "CreateContainerConfigError": true, "CreateContainerError": true, "RunContainerError": true,
}

// DatabasePodProgress reads the database pod's status.
func DatabasePodProgress(pod *corev1.Pod) PodProgress {
	var p PodProgress
	for _, cs := range pod.Status.ContainerStatuses {
		if cs.Name != DatabaseContainerName {
			continue
		}
		if cs.State.Running != nil && pod.Status.PodIP != "" {
			p.Running = true
		}
		if t := cs.State.Terminated; t != nil {
			p.Terminated = true
			p.Failure = fmt.Sprintf("container %s terminated: %s (exit code %d)", cs.Name, t.Reason, t.ExitCode)
			if t.Message != "" {
				p.Failure += ": " + whyItStopped(t.Message)
			}
		}
		if w := cs.State.Waiting; w != nil && stuckReasons[w.Reason] {
			p.Failure = fmt.Sprintf("container %s is waiting: %s", cs.Name, w.Reason)
			if w.Message != "" {
				p.Failure += ": " + firstLine(w.Message)
			}
		}
	}
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		p.Terminated = true
		if p.Failure == "" {
			p.Failure = fmt.Sprintf("pod %s: %s %s", pod.Status.Phase, pod.Status.Reason, pod.Status.Message)
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && pod.Status.PodIP != "" {
			p.Ready = true
		}
	}
	return p
}

// LastEvent is "Reason: message" of the newest warning in events, else of
// the newest event; empty when there is none. A warning says more about why
// an object is stuck than a later normal event.
func LastEvent(events []corev1.Event) string {
	if len(events) == 0 {
		return ""
	}
	sorted := append([]corev1.Event(nil), events...)
	sort.SliceStable(sorted, func(i, j int) bool {
		wi, wj := sorted[i].Type == corev1.EventTypeWarning, sorted[j].Type == corev1.EventTypeWarning
		if wi != wj {
			return wi
		}
		return eventTime(sorted[i]).After(eventTime(sorted[j]))
	})
	return sorted[0].Reason + ": " + firstLine(sorted[0].Message)
}

func eventTime(e corev1.Event) time.Time {
	switch {
	case !e.LastTimestamp.IsZero():
		return e.LastTimestamp.Time
	case !e.EventTime.IsZero():
		return e.EventTime.Time
	}
	return e.CreationTimestamp.Time
}

// whyItStopped picks from a terminated container's message (with
// FallbackToLogsOnError, the tail of its log) what says why: PostgreSQL's
// PANIC line, else its first FATAL line that is not a connection turned
// away (a probe or client knocking while the server starts or stops), each
// with the DETAIL and HINT lines after it; else the first line saying
// "Error:" (an entrypoint's refusal); else the last line.
func whyItStopped(msg string) string {
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	withDetail := func(i int) string {
		why := []string{strings.TrimSpace(lines[i])}
		for _, next := range lines[i+1:] {
			if !strings.Contains(next, "DETAIL:") && !strings.Contains(next, "HINT:") {
				break
			}
			why = append(why, strings.TrimSpace(next))
		}
		return strings.Join(why, " ")
	}
	for i, l := range lines {
		if strings.Contains(l, "PANIC:") {
			return withDetail(i)
		}
	}
	for i, l := range lines {
		if strings.Contains(l, "FATAL:") && !turnedAway(l) {
			return withDetail(i)
		}
	}
	for _, l := range lines {
		if strings.Contains(l, "Error:") || strings.Contains(l, "error:") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// turnedAwayFatals are FATAL messages about one connection, not the server.
var turnedAwayFatals = []string{
	"the database system is starting up", "the database system is not yet accepting connections",
	"the database system is shutting down", "the database system is in recovery mode",
	"password authentication failed", "no pg_hba.conf entry", "does not exist", "terminating connection",
}

func turnedAway(line string) bool {
	for _, f := range turnedAwayFatals {
		if strings.Contains(line, f) {
			return true
		}
	}
	return false
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
