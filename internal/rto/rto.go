// Package rto measures a drill: the phase timeline, the recovery time (RTO)
// and the data-loss window (RPO) against their targets. Package verdict
// turns the measurements and findings into the run's result.
//
// Definitions:
//   - RTO runs from the start of sandbox provisioning (the restore request)
//     to the moment the restored database has answered every check.
//     Teardown is not part of it.
//   - RPO is the drill's start minus the newest recoverable write: the
//     older of the freshness query's value (basis Data) and the snapshot's
//     creation time (basis Snapshot); data later than the snapshot's cut
//     is not trusted.
package rto

import (
	"fmt"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
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
// snapshot's creation time (zero if unknown). Both bases are recorded and
// the larger counts: newest data cannot be older than what the snapshot
// holds, and a data RPO smaller than the snapshot's age only says the clocks
// disagree. Newest data later than the cut plus skew cannot have been in the
// snapshot (a writer's clock ahead, a row dated in the future): the data
// basis is not used and untrusted says why.
func MeasureRPO(drillStart time.Time, newestWrite *time.Time, snapshotCreated time.Time, target, skew time.Duration) (m *drillsv1.RPOMeasurement, untrusted string) {
	m = &drillsv1.RPOMeasurement{}
	if !snapshotCreated.IsZero() {
		m.SnapshotSeconds = ptr(seconds(drillStart.Sub(snapshotCreated)))
		m.Seconds, m.Basis = *m.SnapshotSeconds, drillsv1.RPOBasisSnapshot
	}
	if newestWrite != nil {
		m.DataSeconds = ptr(seconds(drillStart.Sub(*newestWrite)))
		switch {
		case !snapshotCreated.IsZero() && newestWrite.After(snapshotCreated.Add(skew)):
			untrusted = fmt.Sprintf("the newest data (%s) is later than the snapshot's cut (%s) plus the allowed clock skew %s, so it cannot have been in the snapshot; the RPO is the snapshot's age",
				newestWrite.UTC().Format(time.RFC3339), snapshotCreated.UTC().Format(time.RFC3339), skew)
		case m.Basis == "" || *m.DataSeconds >= m.Seconds:
			m.Seconds, m.Basis = *m.DataSeconds, drillsv1.RPOBasisData
		}
	}
	if m.Basis == "" {
		return nil, untrusted
	}
	m.Met = target == 0 || m.Seconds <= seconds(target)
	if target > 0 {
		m.TargetSeconds = ptr(seconds(target))
	}
	return m, untrusted
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
