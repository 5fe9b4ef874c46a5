package verdict

import (
	"strings"
	"testing"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func ptr[T any](v T) *T { return &v }

func TestDecide(t *testing.T) {
	passed := drillsv1.CheckResult{Name: "orders-present", Passed: true, Value: "1200", Expected: ">= 1000"}
	failed := drillsv1.CheckResult{Name: "orders-present", Passed: false, Value: "999", Expected: ">= 1000"}
	rtoMet := &drillsv1.RTOMeasurement{Seconds: 60, TargetSeconds: ptr(900.0), Met: true}
	rtoMissed := &drillsv1.RTOMeasurement{Seconds: 1000, TargetSeconds: ptr(900.0), Met: false}
	rpoMet := &drillsv1.RPOMeasurement{Seconds: 3600, TargetSeconds: ptr(93600.0), Met: true, Basis: drillsv1.RPOBasisData}
	rpoMissed := &drillsv1.RPOMeasurement{Seconds: 100000, TargetSeconds: ptr(93600.0), Met: false, Basis: drillsv1.RPOBasisData}

	tests := []struct {
		name         string
		status       drillsv1.DrillRunStatus
		findings     Findings
		wantResult   drillsv1.RunResult
		wantReason   string
		wantMentions []string
	}{
		{"everything held", drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{passed}, RTO: rtoMet, RPO: rpoMet}, Findings{}, drillsv1.ResultSucceeded, "", []string{"1 check passed", "RTO 1m00s", "RPO 1h00m (Data)"}},
		{"a failed check names the check", drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{failed}, RTO: rtoMet, RPO: rpoMet}, Findings{}, drillsv1.ResultFailed, ReasonCheckFailed, []string{"check orders-present failed", `got "999", want >= 1000`}},
		{"missed RPO", drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{passed}, RTO: rtoMet, RPO: rpoMissed}, Findings{}, drillsv1.ResultFailed, ReasonRPOTargetMissed, []string{"RPO 27h46m (basis Data) exceeds the target 26h00m"}},
		{"missed RTO", drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{passed}, RTO: rtoMissed, RPO: rpoMet}, Findings{}, drillsv1.ResultFailed, ReasonRTOTargetMissed, []string{"RTO 16m40s exceeds the target 15m00s"}},
		{"check failure outranks targets; all are listed", drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{failed}, RTO: rtoMissed, RPO: rpoMissed}, Findings{}, drillsv1.ResultFailed, ReasonCheckFailed, []string{"check orders-present", "RPO", "RTO"}},
		{"an old snapshot is a finding", drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{passed}, RTO: rtoMet, RPO: rpoMet}, Findings{SnapshotTooOld: "newest snapshot is 50h old"}, drillsv1.ResultFailed, ReasonSnapshotTooOld, []string{"50h old"}},
		{"no checks, no targets", drillsv1.DrillRunStatus{}, Findings{}, drillsv1.ResultSucceeded, "", []string{"0 checks passed"}},
		{"a failed freshness query is a finding", drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{passed}, RTO: rtoMet, RPO: rpoMet}, Findings{FreshnessFailed: "relation \"orders\" does not exist"}, drillsv1.ResultFailed, ReasonFreshnessFailed, []string{"freshness query failed: relation"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := Decide(tt.status, tt.findings)
			if v.Result != tt.wantResult || v.Reason != tt.wantReason {
				t.Errorf("Decide = %s/%s (%s), want %s/%s", v.Result, v.Reason, v.Message, tt.wantResult, tt.wantReason)
			}
			for _, m := range tt.wantMentions {
				if !strings.Contains(v.Message, m) {
					t.Errorf("message %q does not mention %q", v.Message, m)
				}
			}
		})
	}
}
