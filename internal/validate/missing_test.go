package validate

import (
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

func TestMissingData(t *testing.T) {
	orders := func(rows int64, catalogRows float64, pages, catalogPages int64) TableCount {
		return TableCount{Database: "app", Schema: "public", Name: "orders", Rows: rows, CatalogRows: catalogRows, Pages: pages, CatalogPages: catalogPages}
	}
	pkey := []catalogIndex{{rel: relation{"public", "orders_pkey"}, entries: 20000}}
	tests := []struct {
		name    string
		table   TableCount
		indexes []catalogIndex
		want    string
	}{
		{"as the catalog says", orders(20000, 20000, 250, 250), pkey, ""},
		{"within estimation noise", orders(16500, 20000, 240, 250), pkey, ""},
		{"grown since the last analyze", orders(90000, 20000, 1100, 250), pkey, ""},
		{"never analyzed", orders(0, -1, 0, 0), nil, ""},
		{"a small table emptied", orders(0, 999, 4, 11), nil, ""},
		{"just under half, but fewer than 1000 rows missing", orders(899, 1800, 11, 11), nil, ""},
		{"half the rows gone", orders(9000, 20000, 250, 250), nil,
			"9000 rows read, the catalog says about 20000 (pg_class.reltuples)"},
		{"the file cut short", orders(19000, 20000, 3, 250), nil,
			"3 pages on disk, the catalog says 250 (pg_class.relpages)"},
		{"just under half the pages, 8 missing", orders(20000, 20000, 7, 15), nil,
			"7 pages on disk, the catalog says 15 (pg_class.relpages)"},
		{"an index of dead entries while the table's estimate agrees", orders(5000, 5000, 40, 40), pkey, ""},
		{"only the index remembers the rows", orders(312, -1, 3, 0), pkey,
			"312 rows read, its index public.orders_pkey holds about 20000 entries (pg_class.reltuples)"},
		{"everything says so", orders(312, 20000, 3, 250), pkey,
			"312 rows read, the catalog says about 20000 (pg_class.reltuples); 3 pages on disk, the catalog says 250 (pg_class.relpages); " +
				"312 rows read, its index public.orders_pkey holds about 20000 entries (pg_class.reltuples)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := missingData(tt.table, tt.indexes); got != tt.want {
				t.Errorf("missingData = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestProblems(t *testing.T) {
	many := problems{}
	for i := range 7 {
		many = append(many, problem{text: fmt.Sprint("p", i)})
	}
	tests := []struct {
		name     string
		problems problems
		message  string
		finding  string
	}{
		{"none", nil, "", ""},
		{"plain", problems{{text: "a"}}, "a", ""},
		{"damage outranks the rest", problems{{text: "a", finding: FindingDataMissing}, {text: "b", finding: FindingDamaged}, {text: "c"}}, "a; b; c", FindingDamaged},
		{"missing data outranks a plain failure", problems{{text: "a"}, {text: "b", finding: FindingDataMissing}}, "a; b", FindingDataMissing},
		{"the first few are spelled out", many, "p0; p1; p2; p3; p4; and 2 more", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if m, f := tt.problems.message(), tt.problems.finding(); m != tt.message || f != tt.finding {
				t.Errorf("message, finding = %q, %q; want %q, %q", m, f, tt.message, tt.finding)
			}
		})
	}
}

func TestFindingOf(t *testing.T) {
	tests := []struct {
		err  error
		want string
	}{
		{&pgconn.PgError{Code: "XX001", Message: "invalid page in block 2 of relation base/5/16384"}, FindingDamaged},
		{&pgconn.PgError{Code: "XX002", Message: "item order invariant violated"}, FindingDamaged},
		{fmt.Errorf("reading: %w", &pgconn.PgError{Code: "58P01", Message: "could not open file"}), FindingDamaged},
		{&pgconn.PgError{Code: "42501", Message: "permission denied"}, ""},
		{&pgconn.PgError{Code: "57014", Message: "canceling statement due to statement timeout"}, ""},
		{fmt.Errorf("conn closed"), ""},
	}
	for _, tt := range tests {
		if got := findingOf(tt.err); got != tt.want {
			t.Errorf("findingOf(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestDisplayIdent(t *testing.T) {
	for name, want := range map[string]string{"orders": "orders", "order_2026$": "order_2026$", "Sales Data": `"Sales Data"`, `odd "name"`: `"odd ""name"""`, "2026": `"2026"`} {
		if got := displayIdent(name); got != want {
			t.Errorf("displayIdent(%q) = %s, want %s", name, got, want)
		}
	}
}
