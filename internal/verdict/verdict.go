// Package verdict decides how a drill run ends: its result, the reason a
// person can look up in the runbooks, and a message saying what was found.
//
// The taxonomy:
//   - Succeeded only if every check passed and both targets were met.
//   - Failed is a finding about the backup or its data: it cannot be
//     restored, data is missing or damaged, a check failed, a target was
//     missed.
//   - Error is a drill that could not judge: the API server refused or was
//     unavailable, the drill's own configuration is wrong, drillerd stopped.
//
// Every reason has a runbook entry in docs/runbooks.md.
package verdict

import (
	"fmt"
	"strings"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
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
		note(ReasonRPOTargetMissed, fmt.Sprintf("RPO %s (basis %s) exceeds the target %s", rto.Human(m.Seconds), m.Basis, rto.Human(deref(m.TargetSeconds))))
	}
	if m := status.RTO; m != nil && !m.Met {
		note(ReasonRTOTargetMissed, fmt.Sprintf("RTO %s exceeds the target %s", rto.Human(m.Seconds), rto.Human(deref(m.TargetSeconds))))
	}
	if reason == "" {
		msg := fmt.Sprintf("%d checks passed", len(status.Checks))
		if status.RTO != nil {
			msg += fmt.Sprintf("; RTO %s", rto.Human(status.RTO.Seconds))
		}
		if status.RPO != nil {
			msg += fmt.Sprintf("; RPO %s (%s)", rto.Human(status.RPO.Seconds), status.RPO.Basis)
		}
		return Verdict{Result: drillsv1.ResultSucceeded, Message: msg}
	}
	return Verdict{Result: drillsv1.ResultFailed, Reason: reason, Message: strings.Join(findings, "; ")}
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
