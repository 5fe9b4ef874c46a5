package main

import (
	"maps"
	"strings"
	"testing"
	"time"
)

func TestServeConfigLeaderElection(t *testing.T) {
	tests := []struct {
		name                string
		lease, renew, retry time.Duration
		leaderElect         bool
		wantErr             string
	}{
		{name: "defaults", lease: DefaultLeaseDuration, renew: DefaultRenewDeadline, retry: DefaultRetryPeriod, leaderElect: true},
		{name: "client-go's common timings", lease: 15 * time.Second, renew: 10 * time.Second, retry: 2 * time.Second, leaderElect: true},
		{name: "lease not longer than the renew deadline", lease: 45 * time.Second, renew: 45 * time.Second, retry: 5 * time.Second, leaderElect: true, wantErr: "--leader-election-lease-duration=45s"},
		{name: "renew deadline within a jittered retry", lease: time.Minute, renew: 6 * time.Second, retry: 5 * time.Second, leaderElect: true, wantErr: "--leader-election-renew-deadline=6s"},
		{name: "no retry period", lease: time.Minute, renew: 45 * time.Second, retry: 0, leaderElect: true, wantErr: "--leader-election-retry-period=0s"},
		{name: "timings do not matter without leader election", lease: time.Second, renew: time.Minute, retry: 0, leaderElect: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := DefaultServeConfig()
			c.LeaderElect, c.LeaseDuration, c.RenewDeadline, c.RetryPeriod = tt.leaderElect, tt.lease, tt.renew, tt.retry
			err := c.Validate()
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Validate() = %v, want no error", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("Validate() = %v, want an error naming %s", err, tt.wantErr)
			}
		})
	}
}

// TestDefaultLeaderElectionOutlastsOutages: with the defaults the leader
// keeps trying to renew for longer than a control plane restart keeps the
// API server away (a minute would interrupt every run in progress at each
// upgrade), and a dead leader is replaced within about a minute.
func TestDefaultLeaderElectionOutlastsOutages(t *testing.T) {
	c := DefaultServeConfig()
	if !c.LeaderElect {
		t.Fatal("leader election is off by default")
	}
	// The leader's first try after its last renewal comes a retry period
	// later; it gives up RenewDeadline after that try began.
	if survives := c.RenewDeadline; survives < 30*time.Second {
		t.Errorf("the leader exits after %s without the API server, want at least 30s", survives)
	}
	if c.LeaseDuration > 2*time.Minute {
		t.Errorf("a dead leader is replaced after %s, want at most 2m", c.LeaseDuration)
	}
}

func TestSandboxLabels(t *testing.T) {
	tests := []struct {
		flag    string
		want    map[string]string
		wantErr []string // what the refusal must say
	}{
		{flag: "", want: nil},
		{flag: "team=dba,cost-center=db-ops", want: map[string]string{"team": "dba", "cost-center": "db-ops"}},
		{flag: "policy.example.com/exempt=restore-drills", want: map[string]string{"policy.example.com/exempt": "restore-drills"}},
		{flag: "team", wantErr: []string{"--sandbox-labels", "key=value"}},
		{flag: "team=d b a", wantErr: []string{"--sandbox-labels", "team"}},
		{flag: "bad key=x", wantErr: []string{"--sandbox-labels", `"bad key"`}},
		{flag: "drills.drillerd.dev/run=other", wantErr: []string{"--sandbox-labels", "drills.drillerd.dev/run", "choose another key"}},
		{flag: "app.kubernetes.io/managed-by=helm", wantErr: []string{"app.kubernetes.io/managed-by", "choose another key"}},
		{flag: "pod-security.kubernetes.io/enforce=privileged", wantErr: []string{"pod-security.kubernetes.io/enforce", "choose another key"}},
	}
	for _, tt := range tests {
		t.Run(tt.flag, func(t *testing.T) {
			c := DefaultServeConfig()
			c.SandboxLabels = tt.flag
			err := c.Validate()
			got, parseErr := sandboxLabels(tt.flag)
			if len(tt.wantErr) > 0 {
				if err == nil || parseErr == nil {
					t.Fatalf("Validate() = %v, sandboxLabels = %v; want a refusal", err, parseErr)
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("Validate() = %v; want it to say %s", err, w)
					}
				}
				return
			}
			if err != nil || parseErr != nil {
				t.Fatalf("Validate() = %v, sandboxLabels = %v; want no error", err, parseErr)
			}
			if !maps.Equal(got, tt.want) {
				t.Errorf("sandboxLabels(%q) = %v, want %v", tt.flag, got, tt.want)
			}
		})
	}
}

func TestKubeAPIRate(t *testing.T) {
	for _, tc := range []struct {
		qps     float64
		burst   int
		wantErr string
	}{
		{qps: 50, burst: 100},
		{qps: 0, burst: 100, wantErr: "--kube-api-qps=0"},
		{qps: 50, burst: 0, wantErr: "--kube-api-burst=0"},
	} {
		c := DefaultServeConfig()
		c.KubeAPIQPS, c.KubeAPIBurst = tc.qps, tc.burst
		err := c.Validate()
		if (tc.wantErr == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("qps %g burst %d: Validate() = %v, want %q", tc.qps, tc.burst, err, tc.wantErr)
		}
	}
}
