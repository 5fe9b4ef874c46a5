package validate

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestAmcheck(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	tests := []struct {
		db       string
		value    string
		finding  string
		message  string   // a prefix of Message; "" when it passes
		contains []string // further parts of Message
	}{
		// The indexes of orders, events_2026 and order_days, and the
		// TOAST indexes of orders, events_2026 and the oddly named table.
		{db: "drill", value: "5 tables, 7 indexes verified"},
		// A tuple header from the future, in the middle of the page.
		{db: "heapdamage", value: "0 tables, 2 indexes verified", finding: FindingDamaged,
			message: fmt.Sprintf("table public.orders in database heapdamage: verify_heapam: block %d, offset %d: xmin %d equals or exceeds next valid transaction ID 0:",
				damage.heap.block, damage.heap.offset, damage.heap.xmin)},
		// Two leaf items out of order, in a primary key and in a TOAST
		// table's index; verify_heapam follows the TOAST pointers too.
		{db: "indexdamage", value: "1 tables, 3 indexes verified", finding: FindingDamaged,
			message: fmt.Sprintf("table public.notes in database indexdamage: verify_heapam: block 0, offset 3, attribute 1: toast value %d index scan returned chunk 2 when expecting chunk 1", damage.toast.value),
			contains: []string{
				fmt.Sprintf(`index %s (TOAST of public.notes) in database indexdamage: item order invariant violated for index "%s" (SQLSTATE XX002)`,
					damage.toast.index, strings.TrimPrefix(damage.toast.index, "pg_toast.")),
				fmt.Sprintf("table public.permits in database indexdamage: verify_heapam: block 0, offset 3, attribute 2: toast value %d index scan returned chunk 2 when expecting chunk 1", damage.toastAsText.value),
				fmt.Sprintf(`index %s (TOAST of public.permits) in database indexdamage: item order invariant violated for index "%s" (SQLSTATE XX002)`,
					damage.toastAsText.index, strings.TrimPrefix(damage.toastAsText.index, "pg_toast.")),
				`index public.orders_pkey in database indexdamage: item order invariant violated for index "orders_pkey" (SQLSTATE XX002)`,
			}},
		{db: "byteadamage", value: "0 tables, 1 indexes verified", finding: FindingDamaged,
			message: fmt.Sprintf("table public.attachments in database byteadamage: verify_heapam: block 0, offset 3, attribute 1: toast value %d index scan returned chunk 2 when expecting chunk 1", damage.toastBytes.value),
			contains: []string{fmt.Sprintf(`index %s (TOAST of public.attachments) in database byteadamage: item order invariant violated for index "%s" (SQLSTATE XX002)`,
				damage.toastBytes.index, strings.TrimPrefix(damage.toastBytes.index, "pg_toast."))}},
		// verify_heapam does not decompress a value compressed in its row
		// (TablesReadable does).
		{db: "compressdamage", value: "1 tables, 2 indexes verified"},
		{db: "legacy", value: "1 tables, 2 indexes verified"},
		{db: "noext", value: "0 tables, 0 indexes verified"},
		{db: "postgres", value: "0 tables, 0 indexes verified"},
		{db: "private", value: "0 tables, 0 indexes verified"},
		// Every page and index entry left is sound: amcheck cannot see
		// what is missing (TablesReadable does).
		{db: "truncated", value: "1 tables, 2 indexes verified"},
		{db: "unlinked", value: "0 tables, 1 indexes verified", finding: FindingDamaged,
			message: fmt.Sprintf(`table public.orders in database unlinked: could not open file "%[1]s": No such file or directory (SQLSTATE 58P01); `+
				`index public.orders_pkey in database unlinked: could not open file "%[1]s": No such file or directory (SQLSTATE 58P01)`, damage.unlinkedFile)},
		{db: "widedamage", value: "0 tables, 1 indexes verified", finding: FindingDamaged,
			message: fmt.Sprintf("table public.wide in database widedamage: verify_heapam: block 0, offset 3, attribute 111: toast value %d index scan returned chunk 2 when expecting chunk 1", damage.toastWide.value),
			contains: []string{fmt.Sprintf(`index %s (TOAST of public.wide) in database widedamage: item order invariant violated for index "%s" (SQLSTATE XX002)`,
				damage.toastWide.index, strings.TrimPrefix(damage.toastWide.index, "pg_toast."))}},
	}
	results := byDatabase(t, sess.Run(t.Context(), []Check{{Name: "verify", Builtin: BuiltinAmcheck}}))
	if len(results) != len(tests) {
		t.Errorf("%d results, want one for each of %d databases", len(results), len(tests))
	}
	for _, tt := range tests {
		t.Run(tt.db, func(t *testing.T) {
			r := results[tt.db]
			if r.Name != "verify" || r.Passed != (tt.message == "") || r.Value != tt.value || r.Finding != tt.finding ||
				!strings.HasPrefix(r.Message, tt.message) || (r.Passed && r.Message != "") || r.Tables != nil {
				t.Errorf("Amcheck in %s = %+v\nwant value %q, finding %q, message starting %q", tt.db, r, tt.value, tt.finding, tt.message)
			}
			for _, part := range tt.contains {
				if !strings.Contains(r.Message, part) {
					t.Errorf("Amcheck in %s: message %q\nlacks %q", tt.db, r.Message, part)
				}
			}
			if r.Expected != "every table and btree index verified" || r.Duration <= 0 || r.Duration > 30*time.Second {
				t.Errorf("Expected = %q, Duration = %s", r.Expected, r.Duration)
			}
		})
	}
}

func TestAmcheckWithoutPrivileges(t *testing.T) {
	sess := openSession(t, "nopriv", "noext")
	results := byDatabase(t, sess.Run(t.Context(), []Check{{Name: "verify", Builtin: BuiltinAmcheck}}))
	tests := []struct {
		db      string
		message string // a part of Message
	}{
		// nopriv may neither create the extension nor run its functions
		// (whether TestAmcheck created it in drill first or not).
		{"drill", "(SQLSTATE 42501)"},
		{"private", `cannot connect to database private as nopriv: permission denied for database "private" (SQLSTATE 42501)`},
	}
	for _, tt := range tests {
		t.Run(tt.db, func(t *testing.T) {
			if r := results[tt.db]; r.Passed || r.Finding != "" || !strings.Contains(r.Message, tt.message) {
				t.Errorf("Amcheck as nopriv in %s = %+v, want a plain failure saying %q", tt.db, r, tt.message)
			}
		})
	}
}

func TestAmcheckOnAStandbyWithChecksums(t *testing.T) {
	// The extension exists, so Amcheck needs no write; the page fails its
	// checksum both when verify_heapam reads it and when bt_index_check
	// reads the heap for heapallindexed; the TOAST table's index is sound.
	sess := connect(t, replica.server(t, setupReplica), "postgres", "postgres", nil)
	r := sess.Run(t.Context(), []Check{{Name: "verify", Builtin: BuiltinAmcheck}})[0]
	complaint := fmt.Sprintf("invalid page in block %d of relation %s (SQLSTATE XX001)", replicaDamage.block, replicaDamage.file)
	want := "table public.accounts in database postgres: " + complaint + "; index public.accounts_pkey in database postgres: " + complaint
	if r.Database != "postgres" || r.Passed || r.Finding != FindingDamaged || r.Message != want || r.Value != "0 tables, 1 indexes verified" {
		t.Errorf("Amcheck = %+v\nwant finding %s, message %q", r, FindingDamaged, want)
	}
}

func TestAmcheckSummary(t *testing.T) {
	tests := []struct {
		name      string
		heapCheck bool
		version   serverVersion
		want      string
	}{
		{"with verify_heapam", true, serverVersion{150004, "15.4"}, "3 tables, 2 indexes verified"},
		{"before PostgreSQL 14", false, serverVersion{130012, "13.12"}, "2 indexes verified; tables not verified: verify_heapam needs PostgreSQL 14 or later, this is 13.12"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := amcheckSummary(tt.heapCheck, 3, 2, tt.version); got != tt.want {
				t.Errorf("amcheckSummary = %q, want %q", got, tt.want)
			}
		})
	}
}
