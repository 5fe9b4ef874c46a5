package validate

import (
	"strings"
	"testing"
	"time"
)

func TestWriteProbe(t *testing.T) {
	tests := []struct {
		name    string
		server  func(*testing.T) *cluster
		params  map[string]string
		wantErr string // "" when the probe succeeds
	}{
		{name: "a primary serves writes", server: func(t *testing.T) *cluster { return primary.server(t, setupPrimary) }},
		{name: "a session that defaults to read-only does not",
			server: func(t *testing.T) *cluster { return primary.server(t, setupPrimary) }, params: map[string]string{"default_transaction_read_only": "on"},
			wantErr: "write probe: CREATE SCHEMA IF NOT EXISTS drillerd_probe: cannot execute CREATE SCHEMA in a read-only transaction (SQLSTATE 25006)"},
		{name: "a hot standby with no primary does not",
			server:  func(t *testing.T) *cluster { return replica.server(t, setupReplica) },
			wantErr: "write probe: CREATE SCHEMA IF NOT EXISTS drillerd_probe: cannot execute CREATE SCHEMA in a read-only transaction (SQLSTATE 25006)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := connect(t, tt.server(t), "postgres", "postgres", tt.params)
			err := sess.WriteProbe(t.Context(), 20*time.Second)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("WriteProbe = %v, want %q", err, tt.wantErr)
			}
			var left bool
			if err := sess.conn.QueryRow(t.Context(), "SELECT EXISTS (SELECT FROM pg_namespace WHERE nspname = 'drillerd_probe')").Scan(&left); err != nil || left {
				t.Errorf("schema drillerd_probe left behind: %v (%v)", left, err)
			}
		})
	}
}

func TestWriteProbeNamesTheStatementThatFailed(t *testing.T) {
	sess := openSession(t, "nopriv", "drill")
	err := sess.WriteProbe(t.Context(), 0)
	if err == nil || !strings.HasPrefix(err.Error(), "write probe: CREATE SCHEMA IF NOT EXISTS drillerd_probe: permission denied for database drill (SQLSTATE 42501)") {
		t.Errorf("WriteProbe as nopriv = %v", err)
	}
}

func TestWriteProbeLeavesWhatItDidNotCreate(t *testing.T) {
	c := primary.server(t, setupPrimary)
	// What an interrupted probe may have left.
	if err := c.exec("noext", "CREATE SCHEMA drillerd_probe", "CREATE TABLE drillerd_probe.probe_left (id int)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.exec("noext", "DROP SCHEMA drillerd_probe CASCADE") })
	sess := connect(t, c, "postgres", "noext", nil)
	if err := sess.WriteProbe(t.Context(), 0); err != nil {
		t.Fatalf("WriteProbe = %v", err)
	}
	var tables []string
	rows, _ := sess.conn.Query(t.Context(), "SELECT relname FROM pg_class WHERE relnamespace = 'drillerd_probe'::regnamespace AND relkind = 'r'")
	for rows.Next() {
		var name string
		_ = rows.Scan(&name)
		tables = append(tables, name)
	}
	if err := rows.Err(); err != nil || strings.Join(tables, " ") != "probe_left" {
		t.Errorf("tables in drillerd_probe after the probe: %v (%v); want only probe_left", tables, err)
	}
}
