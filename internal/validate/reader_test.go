package validate

import (
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestRestrictedChecksCannotEscape runs the user's SQL as Restrict's role:
// it reads every table, and each way out of a read-only check is refused
// with FindingRefused, while the built-ins keep the session's role.
func TestRestrictedChecksCannotEscape(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	name := NewReaderRole()
	role, err := sess.Restrict(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	if role != name || !regexp.MustCompile(`^drillerd_checks_[0-9a-f]{8}$`).MatchString(role) {
		t.Fatalf("role %q, want %q, named drillerd_checks_ and 8 hexadecimal digits", role, name)
	}
	// The session logged in without a password, so the role has none:
	// it logs in as the session did.
	var hasPassword bool
	if err := sess.conn.QueryRow(t.Context(), "SELECT rolpassword IS NOT NULL FROM pg_authid WHERE rolname = $1", role).Scan(&hasPassword); err != nil || hasPassword {
		t.Errorf("role %s has a password (%v, %v); the session had none", role, hasPassword, err)
	}
	rows := "1000"
	tests := []struct {
		name        string
		sql         string
		expect      Expectation
		wantPassed  bool
		wantFinding string
		wantMsg     string
	}{
		{"reads a table", "SELECT count(*) FROM orders", Expectation{Min: &rows}, true, "", ""},
		{"is not the superuser", "SELECT current_user LIKE 'drillerd_checks_%' AND NOT rolsuper FROM pg_roles WHERE rolname = current_user", Expectation{Equals: ptrString("true")}, true, "", ""},
		{"reads no server file", "SELECT pg_read_file('/etc/hostname')", Expectation{NotEmpty: true}, false, FindingRefused, "permission denied for function pg_read_file (SQLSTATE 42501)"},
		{"lists no server directory", "SELECT count(*) FROM pg_ls_dir('.')", Expectation{NotEmpty: true}, false, FindingRefused, "permission denied for function pg_ls_dir (SQLSTATE 42501)"},
		{"runs no program", "COPY (SELECT 1) TO PROGRAM 'true'", Expectation{NotEmpty: true}, false, FindingRefused, "SQLSTATE 42501"},
		{"exports no large object to a server file", "SELECT lo_export(0, '/tmp/drillerd-lo')", Expectation{NotEmpty: true}, false, FindingRefused, "permission denied for function lo_export (SQLSTATE 42501)"},
		{"becomes no superuser", "SET ROLE postgres", Expectation{NotEmpty: true}, false, FindingRefused, `permission denied to set role "postgres" (SQLSTATE 42501)`},
		{"changes no session authorization", "SET SESSION AUTHORIZATION postgres", Expectation{NotEmpty: true}, false, FindingRefused, "SQLSTATE 42501"},
	}
	var checks []Check
	for _, tt := range tests {
		checks = append(checks, Check{Name: tt.name, SQL: tt.sql, Expect: tt.expect, Timeout: 10 * time.Second})
	}
	results := sess.Run(t.Context(), checks)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := results[i]
			if r.Passed != tt.wantPassed || r.Finding != tt.wantFinding || !strings.Contains(r.Message, tt.wantMsg) {
				t.Errorf("result %+v, want passed %v, finding %q, message with %q", r, tt.wantPassed, tt.wantFinding, tt.wantMsg)
			}
		})
	}
	// The built-ins still see everything as the session's role.
	builtins := sess.Run(t.Context(), []Check{{Name: "TablesReadable", Builtin: BuiltinTablesReadable}})
	for _, r := range builtins {
		if r.Database == "drill" && !r.Passed {
			t.Errorf("TablesReadable as the session's role: %+v", r)
		}
	}
}

func TestRestrictWantsADrillerdRoleName(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	if role, err := sess.Restrict(t.Context(), "postgres"); err == nil || role != "" || !strings.Contains(err.Error(), "drillerd_checks_") {
		t.Errorf("Restrict(postgres) = %q, %v; want a refusal naming the prefix", role, err)
	}
}

func TestRestrictLeavesAnUnprivilegedSessionAlone(t *testing.T) {
	sess := openSession(t, "nopriv", "drill")
	role, err := sess.Restrict(t.Context(), NewReaderRole())
	if err != nil || role != "" {
		t.Fatalf("Restrict = %q, %v; want the session left as it is", role, err)
	}
}

func ptrString(s string) *string { return &s }

// TestAStandbyRunsNoUserSQLAsTheSuperuser: no role can be created in a
// copy in recovery, so the drill's SQL and freshness query are not run at
// all rather than as the superuser.
func TestAStandbyRunsNoUserSQLAsTheSuperuser(t *testing.T) {
	sess := connect(t, replica.server(t, setupReplica), "postgres", "postgres", nil)
	role, err := sess.Restrict(t.Context(), NewReaderRole())
	if err != nil || role != "" {
		t.Fatalf("Restrict = %q, %v; want no role and no error", role, err)
	}
	r := sess.Run(t.Context(), []Check{{Name: "sneaky", SQL: "SELECT pg_read_file('/etc/hostname')", Expect: Expectation{NotEmpty: true}}})
	if len(r) != 1 || r[0].Passed || !strings.Contains(r[0].Message, "not run: the copy is in recovery") {
		t.Errorf("results %+v, want the check not run", r)
	}
	if _, err := sess.Freshness(t.Context(), "SELECT now()", nil, time.Second); err == nil || !strings.Contains(err.Error(), "not run") {
		t.Errorf("freshness error %v, want not run", err)
	}
}
