// Package report renders a finished drill run for people.
package report

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
)

// Text writes the run's report: snapshot and the newer ones passed over,
// sandbox, phases, checks, RTO and RPO against their targets, and the
// verdict.
func Text(w io.Writer, drill *drillsv1.RestoreDrill, run *drillsv1.DrillRun) {
	s := run.Status
	fmt.Fprintf(w, "Drill %s/%s, run %s (trigger %s)\n", run.Namespace, run.Spec.DrillName, run.Name, run.Spec.Trigger)
	if sn := s.Snapshot; sn != nil {
		line := "Snapshot  " + sn.Name
		if sn.CreationTime != nil {
			line += fmt.Sprintf(", cut %s", sn.CreationTime.UTC().Format(time.RFC3339))
			if s.StartTime != nil {
				line += fmt.Sprintf(" (%s before the drill)", rto.Human(s.StartTime.Sub(sn.CreationTime.Time).Seconds()))
			}
		}
		if sn.RestoreSize != nil {
			line += ", restore size " + sn.RestoreSize.String()
		}
		fmt.Fprintln(w, line)
	}
	for _, sk := range s.SkippedSnapshots {
		fmt.Fprintf(w, "Skipped   %s\n", skippedLine(sk))
	}
	if s.SandboxNamespace != "" {
		state := "removed"
		switch {
		case meta.IsStatusConditionTrue(s.Conditions, drillsv1.ConditionSandboxLeaked) && !s.SandboxRemoved:
			state = "left behind: " + meta.FindStatusCondition(s.Conditions, drillsv1.ConditionSandboxLeaked).Message
		case s.SandboxExpiry != nil && !s.SandboxRemoved:
			state = "kept for debugging until " + s.SandboxExpiry.UTC().Format(time.RFC3339)
		case !s.SandboxRemoved:
			state = "not yet removed"
		}
		fmt.Fprintf(w, "Sandbox   %s (%s)\n", s.SandboxNamespace, state)
	}

	if len(s.Phases) > 0 {
		fmt.Fprintln(w, "\nPhases")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, p := range s.Phases {
			took := "running"
			if p.Seconds != nil {
				took = rto.Human(*p.Seconds)
			}
			fmt.Fprintf(tw, "  %s\t%s\n", p.Name, took)
		}
		tw.Flush()
	}
	if len(s.Checks) > 0 {
		fmt.Fprintln(w, "\nChecks")
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		for _, c := range s.Checks {
			mark := "PASS"
			if !c.Passed {
				mark = "FAIL"
			}
			detail := c.Value
			if c.Expected != "" {
				detail += " (want " + c.Expected + ")"
			}
			if !c.Passed && c.Message != "" {
				detail += ": " + c.Message
			}
			db := c.Database
			if db == "" {
				db = "-"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", mark, c.Name, db, rto.Human(c.Seconds), strings.TrimSpace(detail))
		}
		tw.Flush()
	}
	fmt.Fprintln(w)
	if m := s.RTO; m != nil {
		fmt.Fprintf(w, "RTO       %s%s\n", rto.Human(m.Seconds), target(m.TargetSeconds, m.Met))
	}
	if m := s.RPO; m != nil {
		fmt.Fprintf(w, "RPO       %s, basis %s%s%s\n", rto.Human(m.Seconds), m.Basis, bases(m), target(m.TargetSeconds, m.Met))
	}
	for _, c := range s.Conditions {
		if c.Status != "True" {
			fmt.Fprintf(w, "Warning   %s: %s\n", c.Type, c.Message)
		}
	}
	if line := sizeLine(s); line != "" {
		fmt.Fprintf(w, "Size      %s\n", line)
	}
	if d := s.Database; d != nil && d.SystemIdentifier != "" {
		fmt.Fprintf(w, "Copy      PostgreSQL %s, system identifier %s, data checksums %s\n", d.ServerVersion, d.SystemIdentifier, onOff(d.DataChecksums))
	}
	verdict := string(s.Result)
	if s.Reason != "" {
		verdict += " (" + s.Reason + ")"
	}
	fmt.Fprintf(w, "Verdict   %s: %s\n", verdict, s.Message)
}

// skippedLine says of a snapshot newer than the restored one why it was
// passed over, with the snapshot controller's error where there is one.
func skippedLine(sk drillsv1.SkippedSnapshot) string {
	line := sk.Name + ", newer, " + sk.Reason
	if sk.Message != "" {
		line += ": " + firstLine(sk.Message)
	}
	return line
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	return s
}

// bases shows both RPO bases when both are known.
func bases(m *drillsv1.RPOMeasurement) string {
	if m.DataSeconds == nil || m.SnapshotSeconds == nil {
		return ""
	}
	return fmt.Sprintf(" (data %s, snapshot %s)", rto.Human(*m.DataSeconds), rto.Human(*m.SnapshotSeconds))
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func target(seconds *float64, met bool) string {
	if seconds == nil {
		return ", no target"
	}
	word := "met"
	if !met {
		word = "MISSED"
	}
	return fmt.Sprintf(", target %s: %s", rto.Human(*seconds), word)
}

// sizeLine says what the run restored and read, and the RTO per GiB.
func sizeLine(s drillsv1.DrillRunStatus) string {
	z := s.Size
	if z == nil {
		return ""
	}
	var parts []string
	if z.DatabaseBytes != nil {
		part := "databases " + Bytes(*z.DatabaseBytes)
		if z.CapacityBytes != nil {
			part += " on a " + Bytes(*z.CapacityBytes) + " volume"
		}
		if s.RTO != nil && *z.DatabaseBytes > 0 {
			part += fmt.Sprintf(" (RTO %s per GiB)", rto.Human(s.RTO.Seconds/(float64(*z.DatabaseBytes)/drillsv1.GiB)))
		}
		parts = append(parts, part)
	} else if z.CapacityBytes != nil {
		parts = append(parts, "a "+Bytes(*z.CapacityBytes)+" volume")
	}
	if z.ReadBytes != nil {
		parts = append(parts, "checks read "+Bytes(*z.ReadBytes))
	}
	return strings.Join(parts, "; ")
}

// Bytes writes n bytes in binary units: 512 B, 3.2 MiB, 1.0 GiB.
func Bytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	v, i := float64(n)/unit, 0
	for v >= unit && i < 4 {
		v /= unit
		i++
	}
	return fmt.Sprintf("%.1f %ciB", v, "KMGTP"[i])
}
