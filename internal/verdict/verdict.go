// Package verdict decides how a drill run ends: its result, the reason a
// person can look up in the runbooks, and a message saying what was found.
//
// The taxonomy:
//   - Succeeded only if every check passed and both targets were met.
//   - Failed is a finding about the backup or its data: it cannot be
//     restored, data is missing or damaged, a check failed, a target was
//     missed.
//   - Error is a drill that could not judge: the API server refused or was
//     unavailable, the cluster's snapshot controller did not run, the
//     drill's own configuration is wrong, drillerd stopped.
//
// Every reason has a runbook entry in docs/runbooks.md.
package verdict

import (
	"fmt"
	"sort"
	"strings"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
)

// Reasons of results other than Succeeded.
const (
	// Findings about the backup (Failed).
	ReasonNotTheBackup     = "NotTheBackup"
	ReasonIdentityChanged  = "IdentityChanged"
	ReasonEmptyDatabase    = "EmptyDatabase"
	ReasonDataDamaged      = "DataDamaged"
	ReasonDataMissing      = "DataMissing"
	ReasonNotWritable      = "NotWritable"
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
	ReasonCheckRefused  = "CheckRefused"
	ReasonInvalidSpec   = "InvalidSpec"
	ReasonAPIError      = "APIError"
	ReasonTimeout       = "Timeout"
	ReasonInterrupted   = "Interrupted"
	// ReasonSnapshotControllerUnavailable: no snapshot controller took the
	// sandbox's VolumeSnapshot in hand within timeouts.volume.
	ReasonSnapshotControllerUnavailable = "SnapshotControllerUnavailable"
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
	// NotTheBackup says why the copy is not the snapshot's data (a cluster
	// initialised after the snapshot was cut).
	NotTheBackup string
	// IdentityChanged says how the copy's system identifier differs from
	// the last Succeeded run's.
	IdentityChanged string
	// EmptyDatabase says the copy has no user table in any database.
	EmptyDatabase string
	// DataMissing lists tables that lost rows since the last Succeeded run.
	DataMissing []string
	// NotWritable says why the write probe failed.
	NotWritable string
	// FreshnessFailed says why the freshness query gave no timestamp.
	FreshnessFailed string
	// SnapshotTooOld says how much older than maxSnapshotAge the snapshot is.
	SnapshotTooOld string
}

// severity orders reasons, most serious first: a verdict's reason is its
// most serious finding.
var severity = []string{
	ReasonNotTheBackup, ReasonIdentityChanged, ReasonEmptyDatabase, ReasonDataDamaged, ReasonDataMissing,
	ReasonNotWritable, ReasonCheckFailed, ReasonFreshnessFailed, ReasonSnapshotTooOld,
	ReasonRPOTargetMissed, ReasonRTOTargetMissed,
}

func findingsOf(reason string, msgs []string) []finding {
	out := make([]finding, len(msgs))
	for i, m := range msgs {
		out[i] = finding{reason, m}
	}
	return out
}

// finding is one thing a run found, with the reason it supports.
type finding struct{ reason, msg string }

func rank(reason string) int {
	for i, r := range severity {
		if r == reason {
			return i
		}
	}
	return len(severity)
}

// Decide gives the verdict of a run whose database was restored and
// checked: a copy that is not the backup or changed identity, an empty
// copy, damaged or missing data, a copy that refuses writes, every failed
// check, a failed freshness query, a snapshot older than maxSnapshotAge and
// missed targets are findings; the reason is the most serious one and the
// message lists them all, most serious first.
func Decide(status drillsv1.DrillRunStatus, extra Findings) Verdict {
	var all []finding
	note := func(r, msg string) { all = append(all, finding{r, msg}) }
	if extra.NotTheBackup != "" {
		note(ReasonNotTheBackup, extra.NotTheBackup)
	}
	if extra.IdentityChanged != "" {
		note(ReasonIdentityChanged, extra.IdentityChanged)
	}
	if extra.EmptyDatabase != "" {
		note(ReasonEmptyDatabase, extra.EmptyDatabase)
	}
	var refused []string
	for _, c := range status.Checks {
		if c.Passed {
			continue
		}
		if c.Reason == ReasonCheckRefused {
			refused = append(refused, fmt.Sprintf("check %s was refused by the copy: %s", c.Name, c.Message))
			continue
		}
		msg := fmt.Sprintf("check %s failed", c.Name)
		if c.Database != "" {
			msg = fmt.Sprintf("check %s failed in database %s", c.Name, c.Database)
		}
		if c.Expected != "" && c.Reason == "" {
			msg += fmt.Sprintf(": got %q, want %s", c.Value, c.Expected)
		}
		if c.Message != "" {
			msg += ": " + c.Message
		}
		switch c.Reason {
		case ReasonDataDamaged, ReasonDataMissing:
			note(c.Reason, msg)
		default:
			note(ReasonCheckFailed, msg)
		}
	}
	for _, m := range extra.DataMissing {
		note(ReasonDataMissing, m)
	}
	if extra.NotWritable != "" {
		note(ReasonNotWritable, "the copy does not accept writes: "+extra.NotWritable)
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
	if len(all) == 0 && len(refused) > 0 {
		// Nothing wrong was found, but not everything could be judged: a
		// check asked for more than a read-only role may do.
		return Errored(ReasonCheckRefused, "%s; a check runs as a read-only role and may only read tables", strings.Join(refused, "; "))
	}
	all = append(all, findingsOf(ReasonCheckRefused, refused)...)
	if len(all) == 0 {
		msg := fmt.Sprintf("%d checks passed", len(status.Checks))
		if len(status.Checks) == 1 {
			msg = "1 check passed"
		}
		if status.RTO != nil {
			msg += fmt.Sprintf("; RTO %s", rto.Human(status.RTO.Seconds))
		}
		if status.RPO != nil {
			msg += fmt.Sprintf("; RPO %s (%s)", rto.Human(status.RPO.Seconds), status.RPO.Basis)
		}
		return Verdict{Result: drillsv1.ResultSucceeded, Message: msg}
	}
	sort.SliceStable(all, func(i, j int) bool { return rank(all[i].reason) < rank(all[j].reason) })
	msgs := make([]string, len(all))
	for i, f := range all {
		msgs[i] = f.msg
	}
	return Verdict{Result: drillsv1.ResultFailed, Reason: all[0].reason, Message: strings.Join(msgs, "; ")}
}

func deref(p *float64) float64 {
	if p == nil {
		return 0
	}
	return *p
}
