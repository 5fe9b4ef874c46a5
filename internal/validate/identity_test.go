package validate

import (
	"testing"
	"time"
)

func TestInitTimeOf(t *testing.T) {
	tests := []struct {
		name  string
		sysid uint64
		want  time.Time
	}{
		// 0x65f424d6_d3ce4400: seconds 0x65f424d6, microseconds 0xd3ce4, PID bits 0x400.
		{"an identifier initdb made", 7346537397243233280, time.Date(2024, 3, 15, 10, 37, 10, 867556000, time.UTC)},
		{"microseconds out of range", 0x65f424d6_fffff000, time.Time{}},
		{"no seconds", 0x00000000_00001234, time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := initTimeOf(tt.sysid); !got.Equal(tt.want) {
				t.Errorf("initTimeOf(%d) = %s, want %s", tt.sysid, got, tt.want)
			}
		})
	}
}

func TestIdentity(t *testing.T) {
	tests := []struct {
		name      string
		server    func(*testing.T) *cluster
		checksums bool
	}{
		{"primary without checksums", func(t *testing.T) *cluster { return primary.server(t, setupPrimary) }, false},
		{"standby with checksums", func(t *testing.T) *cluster { return replica.server(t, setupReplica) }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.server(t)
			id, err := connect(t, c, "postgres", "postgres", nil).Identity(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			sysid, err := c.controlData("Database system identifier")
			if err != nil {
				t.Fatal(err)
			}
			if id.SystemIdentifier != sysid || id.DataChecksums != tt.checksums || id.ServerVersion == "" {
				t.Errorf("Identity = %+v, want system identifier %s (pg_controldata) and checksums %v", id, sysid, tt.checksums)
			}
			if d := id.InitTime.Sub(c.initdbAt); d < 0 || d > time.Minute {
				t.Errorf("InitTime = %s, %s after initdb started at %s; want within a minute", id.InitTime, d, c.initdbAt)
			}
		})
	}
}
