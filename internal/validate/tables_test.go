package validate

import (
	"testing"
	"time"
)

func TestTablesReadable(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	var toasted int
	var toastTable string
	if err := sess.conn.QueryRow(t.Context(), `SELECT reltoastrelid::regclass::text FROM pg_class WHERE oid = 'orders'::regclass`).Scan(&toastTable); err != nil {
		t.Fatal(err)
	}
	if err := sess.conn.QueryRow(t.Context(), "SELECT count(*) FROM "+toastTable).Scan(&toasted); err != nil || toasted == 0 {
		t.Fatalf("the fixture's notes are not TOASTed out of line: %d chunks in %s (%v)", toasted, toastTable, err)
	}

	tests := []struct {
		name    string
		user    string
		value   string
		message string // the whole Message; "" when it passes
	}{
		{"reads every table", "postgres", "5 tables, 1014 rows", ""},
		// Tables are read in order of schema and name: "Sales Data" first.
		{"names the table it cannot read", "nopriv", "0 tables, 0 rows", `table "Sales Data"."odd ""name""": permission denied for schema Sales Data (SQLSTATE 42501)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sess := openSession(t, tt.user, "drill")
			r := sess.Run(t.Context(), []Check{{Name: "tables", Builtin: BuiltinTablesReadable}})[0]
			if r.Name != "tables" || r.Passed != (tt.message == "") || r.Value != tt.value || r.Message != tt.message {
				t.Errorf("TablesReadable as %s = %+v, want value %q and message %q", tt.user, r, tt.value, tt.message)
			}
			if r.Expected != "every table readable" || r.Duration <= 0 || r.Duration > 30*time.Second {
				t.Errorf("Expected = %q, Duration = %s", r.Expected, r.Duration)
			}
		})
	}
}
