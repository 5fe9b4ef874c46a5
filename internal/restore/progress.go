package restore

import (
	"fmt"
	"sort"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
)

// SnapshotCopy is what the sandbox's VolumeSnapshot and its content copy
// say about the snapshot the drill restores from.
type SnapshotCopy struct {
	// Ready: the snapshot controller wrote the VolumeSnapshot readyToUse.
	Ready bool
	// Refused is the error that ends the run: the snapshot controller's
	// error on the VolumeSnapshot while the content copy carries an error
	// too, which is the CSI side's answer about the snapshot (the sidecar
	// writes it; the controller repeats it).
	Refused string
	// Retrying is an error on the VolumeSnapshot alone: the snapshot
	// controller's own, about binding the two, such as "VolumeSnapshotContent
	// is missing" while its cache has not yet seen the copy drillerd made
	// (after an API server outage, say). The controller tries again, so the
	// run waits for it, and the volume timeout's message names this error.
	Retrying string
}

// SnapshotCopyReady reads the sandbox's VolumeSnapshot and its content copy
// (nil when the copy is not known yet).
func SnapshotCopyReady(vs *snapshotv1.VolumeSnapshot, content *snapshotv1.VolumeSnapshotContent) SnapshotCopy {
	switch {
	case vs.Status == nil:
		return SnapshotCopy{}
	case vs.Status.ReadyToUse != nil && *vs.Status.ReadyToUse:
		return SnapshotCopy{Ready: true}
	case vs.Status.Error == nil || vs.Status.Error.Message == nil || *vs.Status.Error.Message == "":
		return SnapshotCopy{}
	case content != nil && content.Status != nil && content.Status.Error != nil:
		return SnapshotCopy{Refused: *vs.Status.Error.Message}
	}
	return SnapshotCopy{Retrying: *vs.Status.Error.Message}
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
	// State is Failure without what the container's status says about it
	// (its termination message, its waiting message).
	State string
	// TerminationMessage is the terminated container's termination
	// message: with FallbackToLogsOnError, the end of its log.
	TerminationMessage string
	// HasLog: the database container has run, so it has a log to read.
	HasLog bool
	// Restarted: the database container has run more than once; its
	// previous run's log may say why the current one does not start.
	Restarted bool
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
		p.HasLog = cs.ContainerID != "" || cs.LastTerminationState.Terminated != nil && cs.LastTerminationState.Terminated.ContainerID != ""
		p.Restarted = cs.RestartCount > 0
		if cs.State.Running != nil && pod.Status.PodIP != "" {
			p.Running = true
		}
		if t := cs.State.Terminated; t != nil {
			p.Terminated = true
			p.State = fmt.Sprintf("container %s terminated: %s (exit code %d)", cs.Name, t.Reason, t.ExitCode)
			p.Failure, p.TerminationMessage = p.State, t.Message
			if t.Message != "" {
				p.Failure += ": " + whyItStopped(t.Message)
			}
		}
		if w := cs.State.Waiting; w != nil && stuckReasons[w.Reason] {
			p.State = fmt.Sprintf("container %s is waiting: %s", cs.Name, w.Reason)
			p.Failure = p.State
			if w.Message != "" {
				p.Failure += ": " + firstLine(w.Message)
			}
		}
	}
	if pod.Status.Phase == corev1.PodFailed || pod.Status.Phase == corev1.PodSucceeded {
		p.Terminated = true
		if p.Failure == "" {
			p.Failure = fmt.Sprintf("pod %s: %s %s", pod.Status.Phase, pod.Status.Reason, pod.Status.Message)
			p.State = p.Failure
		}
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue && pod.Status.PodIP != "" {
			p.Ready = true
		}
	}
	return p
}

// WhyNotStarted says why the database did not start, from its pod's status
// and the end of its log (empty when it could not be read): where the
// termination message or the log holds PostgreSQL's own words (DatabaseSaid),
// the container's state with those words; else what the status says.
func (p PodProgress) WhyNotStarted(log string) string {
	said := DatabaseSaid(p.TerminationMessage, log)
	switch {
	case said == "":
		return p.Failure
	case p.State == "":
		return said
	}
	return p.State + ": " + said
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
// own words (DatabaseSaid); else the first line saying "Error:" (an
// entrypoint's refusal); else the last line.
func whyItStopped(msg string) string {
	if said := DatabaseSaid(msg); said != "" {
		return said
	}
	lines := strings.Split(strings.TrimSpace(msg), "\n")
	for _, l := range lines {
		if strings.Contains(l, "Error:") || strings.Contains(l, "error:") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(lines[len(lines)-1])
}

// DatabaseSaid picks PostgreSQL's own words for why a database stopped or
// does not start from the ends of its log (a termination message, a log
// tail), each with the DETAIL and HINT lines after it: the first PANIC line
// in any of them; else the first FATAL line about the server, in the first
// text that has one; else the first refusal of every connection (a standby
// that does not serve reads); "" when there is none. Connections turned
// away while the server starts or stops (a probe, drillerd itself
// knocking) are not why.
func DatabaseSaid(texts ...string) string {
	var all [][]string
	for _, t := range texts {
		if t = strings.TrimSpace(t); t != "" {
			all = append(all, strings.Split(t, "\n"))
		}
	}
	for _, pick := range []func(string) bool{
		func(l string) bool { return strings.Contains(l, "PANIC:") },
		func(l string) bool { return strings.Contains(l, "FATAL:") && !turnedAway(l) && !refusesAll(l) },
		func(l string) bool { return strings.Contains(l, "FATAL:") && refusesAll(l) },
	} {
		for _, lines := range all {
			for i, l := range lines {
				if pick(l) {
					return withDetail(lines, i)
				}
			}
		}
	}
	return ""
}

// withDetail is line i with the DETAIL and HINT lines that follow it.
func withDetail(lines []string, i int) string {
	why := []string{strings.TrimSpace(lines[i])}
	for _, next := range lines[i+1:] {
		if !strings.Contains(next, "DETAIL:") && !strings.Contains(next, "HINT:") {
			break
		}
		why = append(why, strings.TrimSpace(next))
	}
	return strings.Join(why, " ")
}

// turnedAwayFatals are FATAL messages about one connection, not the server.
var turnedAwayFatals = []string{
	"the database system is starting up", "the database system is not yet accepting connections",
	"the database system is shutting down", "the database system is in recovery mode",
	"password authentication failed", "no pg_hba.conf entry", "pg_hba.conf rejects connection", "does not exist",
	"terminating connection",
}

func turnedAway(line string) bool {
	for _, f := range turnedAwayFatals {
		if strings.Contains(line, f) {
			return true
		}
	}
	return false
}

// refusesAll is the FATAL of a server that refuses every connection until
// someone changes it: a standby with hot_standby off ("Hot standby mode is
// disabled."). It is said to each connection, but it is why the database
// never answers.
func refusesAll(line string) bool {
	return strings.Contains(line, "the database system is not accepting connections")
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}
