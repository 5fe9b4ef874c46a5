package validate

import (
	"strings"
	"testing"
	"time"
)

func TestFreshness(t *testing.T) {
	sess := openSession(t, "postgres", "drill")
	newestOrder := time.Date(2026, 11, 21, 2, 40, 0, 0, time.UTC)
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		sql     string
		loc     *time.Location
		timeout time.Duration
		want    time.Time
		wantErr string
	}{
		{"timestamptz", "SELECT max(created_at) FROM orders", nil, time.Minute, newestOrder, ""},
		{"timestamptz ignores the zone", "SELECT max(created_at) FROM orders", berlin, time.Minute, newestOrder, ""},
		{"timestamp written in UTC", "SELECT max(created_at AT TIME ZONE 'UTC'), 'ignored' FROM orders", time.UTC, time.Minute, newestOrder, ""},
		{"timestamp written in Berlin", "SELECT max(created_at AT TIME ZONE 'Europe/Berlin') FROM orders", berlin, time.Minute, newestOrder, ""},
		{"timestamp without a zone is refused", "SELECT max(created_at AT TIME ZONE 'UTC') FROM orders", nil, time.Minute, time.Time{},
			"returned a timestamp without time zone, which names no instant: set spec.freshness.timeZone"},
		{"date", "SELECT max(at) FROM events", nil, 0, time.Date(2026, 3, 11, 0, 0, 0, 0, time.UTC), ""},
		{"NULL", "SELECT max(at) FROM empty_events", nil, time.Minute, time.Time{}, "the freshness query returned NULL"},
		{"no rows", "SELECT at FROM empty_events", nil, time.Minute, time.Time{}, "the freshness query returned no rows"},
		{"not a timestamp", "SELECT 'yesterday'", nil, time.Minute, time.Time{}, "the freshness query returned a text, want a timestamptz, timestamp or date"},
		{"infinity", "SELECT timestamptz 'infinity'", nil, time.Minute, time.Time{}, "not a point in time"},
		{"missing table", "SELECT max(at) FROM nowhere", nil, time.Minute, time.Time{}, `freshness query: relation "nowhere" does not exist (SQLSTATE 42P01)`},
		{"read-only", "SELECT now() FROM nextval('orders_id_seq')", nil, time.Minute, time.Time{}, "read-only transaction (SQLSTATE 25006)"},
		{"timeout", "SELECT now() FROM pg_sleep(2)", nil, 200 * time.Millisecond, time.Time{}, "statement timeout (SQLSTATE 57014)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := sess.Freshness(t.Context(), tt.sql, tt.loc, tt.timeout)
			if tt.wantErr == "" {
				if err != nil || !got.Equal(tt.want) {
					t.Errorf("Freshness = %v, %v; want %v", got, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Freshness = %v, %v; want an error containing %q", got, err, tt.wantErr)
			}
		})
	}
}
