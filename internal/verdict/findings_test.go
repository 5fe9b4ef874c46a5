package verdict

import (
	"strings"
	"testing"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

func TestShrunkTables(t *testing.T) {
	base := &drillsv1.Baseline{RunName: "nightly-1", ClaimName: "data-orders-0", Tables: []drillsv1.TableRows{
		{Database: "app", Table: "public.orders", Rows: 20000},
		{Database: "app", Table: "public.sessions", Rows: 5000},
		{Database: "app", Table: "public.countries", Rows: 40},
		{Database: "crm", Table: "public.customers", Rows: 3000},
	}}
	rows := func(orders, sessions, countries, customers int64) []drillsv1.TableRows {
		var out []drillsv1.TableRows
		for _, t := range []drillsv1.TableRows{
			{Database: "app", Table: "public.orders", Rows: orders}, {Database: "app", Table: "public.sessions", Rows: sessions},
			{Database: "app", Table: "public.countries", Rows: countries}, {Database: "crm", Table: "public.customers", Rows: customers},
		} {
			if t.Rows >= 0 {
				out = append(out, t)
			}
		}
		return out
	}
	tests := []struct {
		name     string
		now      []drillsv1.TableRows
		base     *drillsv1.Baseline
		claim    string
		max      int32
		volatile []string
		want     []string // substrings, one finding each
	}{
		{name: "grown and steady tables pass", now: rows(21000, 5000, 40, 3000), base: base, claim: "data-orders-0", max: 50},
		{name: "a table that lost 60% fails, naming both numbers", now: rows(8000, 5000, 40, 3000), base: base, claim: "data-orders-0", max: 50,
			want: []string{"table public.orders in database app has 8000 rows, 60% fewer than the 20000 run nightly-1 read"}},
		{name: "a loss within the allowed share passes", now: rows(12000, 5000, 40, 3000), base: base, claim: "data-orders-0", max: 50},
		{name: "a table of another database is compared in its own database", now: rows(20000, 5000, 40, 0), base: base, claim: "data-orders-0", max: 50,
			want: []string{"table public.customers in database crm has 0 rows"}},
		{name: "a missing table fails", now: rows(20000, 5000, 40, -1), base: base, claim: "data-orders-0", max: 50,
			want: []string{"table public.customers in database crm is missing; run nightly-1 read 3000 rows of it"}},
		{name: "a small table may lose its few rows", now: rows(20000, 5000, 0, 3000), base: base, claim: "data-orders-0", max: 50},
		{name: "a volatile table may shrink", now: rows(20000, 0, 40, 3000), base: base, claim: "data-orders-0", max: 50, volatile: []string{"public.sessions"}},
		{name: "without the volatile list it may not", now: rows(20000, 0, 40, 3000), base: base, claim: "data-orders-0", max: 50,
			want: []string{"public.sessions"}},
		{name: "100% turns the comparison off", now: rows(0, 0, 0, 0), base: base, claim: "data-orders-0", max: 100},
		{name: "no baseline yet: nothing to compare", now: rows(0, 0, 0, 0), claim: "data-orders-0", max: 50},
		{name: "a baseline of another claim says nothing", now: rows(0, 0, 0, 0), base: base, claim: "data-users-0", max: 50},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ShrunkTables(tt.now, tt.base, tt.claim, tt.max, tt.volatile)
			if len(got) != len(tt.want) {
				t.Fatalf("findings %q, want %d", got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("finding %q does not say %q", got[i], w)
				}
			}
		})
	}
}

func TestNotTheBackupAndIdentityChanged(t *testing.T) {
	cut := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	if msg := NotTheBackup(cut.Add(-30*24*time.Hour), cut, 5*time.Minute); msg != "" {
		t.Errorf("a cluster initialised before the cut is the backup, got %q", msg)
	}
	if msg := NotTheBackup(cut.Add(2*time.Minute), cut, 5*time.Minute); msg != "" {
		t.Errorf("within the clock skew, got %q", msg)
	}
	if msg := NotTheBackup(cut.Add(time.Hour), cut, 5*time.Minute); !strings.Contains(msg, "initialised (initdb) at 2026-11-22T04:00:00Z, after the snapshot was cut at 2026-11-22T03:00:00Z") {
		t.Errorf("a cluster initialised after the cut: %q", msg)
	}
	if msg := NotTheBackup(time.Time{}, cut, 0); msg != "" {
		t.Errorf("an unknown init time is no finding, got %q", msg)
	}
	base := &drillsv1.Baseline{RunName: "nightly-1", ClaimName: "data-orders-0", SystemIdentifier: "7311111111111111111"}
	for _, tt := range []struct {
		id, claim string
		base      *drillsv1.Baseline
		want      string
	}{
		{"7311111111111111111", "data-orders-0", base, ""},
		{"7322222222222222222", "data-orders-0", base, "system identifier is 7322222222222222222, but run nightly-1 restored 7311111111111111111"},
		{"7322222222222222222", "data-users-0", base, ""},
		{"7322222222222222222", "data-orders-0", nil, ""},
		{"", "data-orders-0", base, ""},
	} {
		if got := IdentityChanged(tt.id, tt.base, tt.claim); (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("IdentityChanged(%s, %s) = %q, want %q", tt.id, tt.claim, got, tt.want)
		}
	}
}

func TestLargestTablesIsBoundedAndOrdered(t *testing.T) {
	var many []drillsv1.TableRows
	for i := range maxBaselineTables + 50 {
		many = append(many, drillsv1.TableRows{Database: "app", Table: "public.t" + string(rune('a'+i%26)) + string(rune('a'+i/26)), Rows: int64(i)})
	}
	got := LargestTables(many)
	if len(got) != maxBaselineTables {
		t.Fatalf("%d tables kept, want %d", len(got), maxBaselineTables)
	}
	for _, tr := range got {
		if tr.Rows < 50 {
			t.Fatalf("table %s with %d rows kept over larger ones", tr.Table, tr.Rows)
		}
	}
	for i := 1; i < len(got); i++ {
		if got[i-1].Table > got[i].Table {
			t.Fatalf("not in table order at %d: %s > %s", i, got[i-1].Table, got[i].Table)
		}
	}
}

func TestDecideRanksTheMostSeriousFindingFirst(t *testing.T) {
	status := drillsv1.DrillRunStatus{Checks: []drillsv1.CheckResult{
		{Name: "orders-present", Passed: false, Value: "0", Expected: ">= 1000"},
		{Name: "TablesReadable", Database: "app", Passed: false, Reason: ReasonDataMissing, Value: "3 tables", Expected: "every table readable",
			Message: "table public.orders in database app: 3 pages on disk, the catalog says 250"},
		{Name: "Amcheck", Database: "app", Passed: false, Reason: ReasonDataDamaged, Message: "index public.orders_pkey: corrupted"},
	}}
	v := Decide(status, Findings{NotWritable: "cannot execute CREATE TABLE in a read-only transaction", IdentityChanged: "system identifier is 2"})
	if v.Result != drillsv1.ResultFailed || v.Reason != ReasonIdentityChanged {
		t.Fatalf("verdict %s/%s, want Failed/IdentityChanged", v.Result, v.Reason)
	}
	order := []string{"system identifier is 2", "check Amcheck failed in database app: index public.orders_pkey", "check TablesReadable failed in database app: table public.orders",
		"the copy does not accept writes", "check orders-present failed: got \"0\", want >= 1000"}
	last := -1
	for _, o := range order {
		i := strings.Index(v.Message, o)
		if i < 0 || i < last {
			t.Fatalf("message %q: %q missing or out of order", v.Message, o)
		}
		last = i
	}
	if strings.Contains(v.Message, `got "3 tables"`) {
		t.Errorf("a built-in's finding quotes its summary as a value: %q", v.Message)
	}
}
