// Package rto measures a drill: the phase timeline, the recovery time (RTO)
// and the data-loss window (RPO), and the verdict against the targets.
//
// Definitions (DESIGN.md):
//   - RTO runs from the start of sandbox provisioning (the restore request)
//     to the moment the restored database has answered every check.
//     Teardown is not part of it.
//   - RPO is the drill's start minus the newest recoverable write: the
//     freshness query's value (basis Data) when there is one, else the
//     snapshot's creation time (basis Snapshot).
//   - Succeeded only if every check passed and both targets were met. A
//     finding about the backup is Failed; a drill that could not run is
//     Error. Every non-success has a reason.
package rto

import (
	"fmt"
	"strings"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// Reasons of results other than Succeeded.
const (
	// Findings about the backup (Failed).
	ReasonNoReadySnapshot  = "NoReadySnapshot"
	ReasonSnapshotNotFound = "SnapshotNotFound"
	ReasonSnapshotTooOld   = "SnapshotTooOld"
	ReasonRestoreFailed    = "RestoreFailed"
	ReasonDatabaseFailed   = "DatabaseFailed"
	ReasonCheckFailed      = "CheckFailed"
	ReasonFreshnessFailed  = "FreshnessFailed"
	ReasonRTOTargetMissed  = "RTOTargetMissed"
	ReasonRPOTargetMissed  = "RPOTargetMissed"
	// The drill could not run (Error).
	ReasonDrillNotFound = "DrillNotFound"
	ReasonInvalidSpec   = "InvalidSpec"
	ReasonAPIError      = "APIError"
	ReasonTimeout       = "Timeout"
	ReasonInterrupted   = "Interrupted"
)

// Targets are the objectives; zero means none.
type Targets struct {
	RTO, RPO time.Duration
}

// TargetsOf reads the targets of a drill spec.
func TargetsOf(spec drillsv1.RestoreDrillSpec) Targets {
	var t Targets
	if spec.Targets.RTO != nil {
		t.RTO = spec.Targets.RTO.Duration
	}
	if spec.Targets.RPO != nil {
		t.RPO = spec.Targets.RPO.Duration
	}
	return t
}

// MeasureRTO computes the RTO from the start of provisioning to the moment
// every check had answered.
func MeasureRTO(provisionStart, checksDone time.Time, target time.Duration) *drillsv1.RTOMeasurement {
	d := checksDone.Sub(provisionStart)
	m := &drillsv1.RTOMeasurement{Seconds: seconds(d), Met: target == 0 || d <= target}
	if target > 0 {
		m.TargetSeconds = ptr(seconds(target))
	}
	return m
}

// MeasureRPO computes the RPO from the drill's start. newestWrite is the
// freshness query's value (nil without one); snapshotCreated is the
// snapshot's creation time (zero if unknown).
func MeasureRPO(drillStart time.Time, newestWrite *time.Time, snapshotCreated time.Time, target time.Duration) *drillsv1.RPOMeasurement {
	m := &drillsv1.RPOMeasurement{}
	if !snapshotCreated.IsZero() {
		m.SnapshotSeconds = ptr(seconds(drillStart.Sub(snapshotCreated)))
		m.Seconds, m.Basis = *m.SnapshotSeconds, drillsv1.RPOBasisSnapshot
	}
	if newestWrite != nil {
		m.DataSeconds = ptr(seconds(drillStart.Sub(*newestWrite)))
		m.Seconds, m.Basis = *m.DataSeconds, drillsv1.RPOBasisData
	}
	if m.Basis == "" {
		return nil
	}
	m.Met = target == 0 || m.Seconds <= seconds(target)
	if target > 0 {
		m.TargetSeconds = ptr(seconds(target))
	}
	return m
}

// Verdict is a run's result with its reason and message.
type Verdict struct {
	Result  drillsv1.RunResult
	Reason  string
	Message string
}

// Failed is a finding about the backup.
func Failed(reason, format string, args ...any) Verdict {
	return Verdict{Result: drillsv1.ResultFailed, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Errored is a drill that could not run.
func Errored(reason, format string, args ...any) Verdict {
	return Verdict{Result: drillsv1.ResultError, Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Findings are what a run found besides its checks and measurements; an
// empty string is no finding.
type Findings struct {
	// FreshnessFailed says why the freshness query gave no timestamp.
	FreshnessFailed string
	// SnapshotTooOld says how much older than maxSnapshotAge the snapshot is.
	SnapshotTooOld string
}

// Decide gives the verdict of a run whose database was restored and
// checked: every failed check, a failed freshness query, a snapshot older
// than maxSnapshotAge and missed targets are findings; the reason is the
// most serious one and the message lists them all.
func Decide(status drillsv1.DrillRunStatus, extra Findings) Verdict {
	var findings []string
	reason := ""
	note := func(r, msg string) {
		if reason == "" {
			reason = r
		}
		findings = append(findings, msg)
	}
	for _, c := range status.Checks {
		if !c.Passed {
			msg := fmt.Sprintf("check %s failed", c.Name)
			if c.Expected != "" {
				msg += fmt.Sprintf(": got %q, want %s", c.Value, c.Expected)
			}
			if c.Message != "" {
				msg += ": " + c.Message
			}
			note(ReasonCheckFailed, msg)
		}
	}
	if extra.FreshnessFailed != "" {
		note(ReasonFreshnessFailed, "freshness query failed: "+extra.FreshnessFailed)
	}
	if extra.SnapshotTooOld != "" {
		note(ReasonSnapshotTooOld, extra.SnapshotTooOld)
	}
	if m := status.RPO; m != nil && !m.Met {
		note(ReasonRPOTargetMissed, fmt.Sprintf("RPO %s (basis %s) exceeds the target %s", human(m.Seconds), m.Basis, human(deref(m.TargetSeconds))))
	}
	if m := status.RTO; m != nil && !m.Met {
		note(ReasonRTOTargetMissed, fmt.Sprintf("RTO %s exceeds the target %s", human(m.Seconds), human(deref(m.TargetSeconds))))
	}
	if reason == "" {
		msg := fmt.Sprintf("%d checks passed", len(status.Checks))
		if status.RTO != nil {
			msg += fmt.Sprintf("; RTO %s", human(status.RTO.Seconds))
		}
		if status.RPO != nil {
			msg += fmt.Sprintf("; RPO %s (%s)", human(status.RPO.Seconds), status.RPO.Basis)
		}
		return Verdict{Result: drillsv1.ResultSucceeded, Message: msg}
	}
	return Verdict{Result: drillsv1.ResultFailed, Reason: reason, Message: strings.Join(findings, "; ")}
}

// StartPhase ends the running phase (if any) and starts phase name at now.
func StartPhase(status *drillsv1.DrillRunStatus, name drillsv1.Phase, now time.Time) {
	EndPhase(status, now)
	status.Phase = name
	status.Phases = append(status.Phases, drillsv1.PhaseTiming{Name: name, StartTime: metaTime(now)})
}

// EndPhase ends the running phase at now.
func EndPhase(status *drillsv1.DrillRunStatus, now time.Time) {
	if n := len(status.Phases); n > 0 && status.Phases[n-1].EndTime == nil {
		p := &status.Phases[n-1]
		end := metaTime(now)
		p.EndTime = &end
		p.Seconds = ptr(seconds(now.Sub(p.StartTime.Time)))
	}
}

// PhaseStart returns when phase name started, if it did.
func PhaseStart(status drillsv1.DrillRunStatus, name drillsv1.Phase) (time.Time, bool) {
	for _, p := range status.Phases {
		if p.Name == name {
			return p.StartTime.Time, true
		}
	}
	return time.Time{}, false
}

// Human formats seconds for reports ("2m05s", "1.4s").
func Human(s float64) string { return human(s) }

func human(s float64) string {
	d := time.Duration(s * float64(time.Second))
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%.1fs", s)
	case d < time.Hour:
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	default:
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
}

// seconds rounds to milliseconds, which status keeps.
func seconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func ptr[T any](v T) *T { return &v }

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
