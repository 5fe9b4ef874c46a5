package faults_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/drillerd/drillerd/test/fixture"
)

// leaseName is drillerd's leader election Lease (--leader-election-id).
const leaseName = "drillerd.drills.drillerd.dev"

// leaderRetryPeriod is how often drillerd's replicas try to acquire or
// renew the Lease (--leader-election-retry-period's default); client-go
// jitters each wait by up to leaderJitter times more.
const (
	leaderRetryPeriod = 5 * time.Second
	leaderJitter      = 1.2
)

// TestLeaderKilled runs two replicas with leader election, as deploy/
// does, and kills the leader (SIGKILL) while one run waits for its
// database and another runs its checks: the other replica acquires the
// Lease once it has expired, ends both runs Error, Interrupted, removes
// their sandboxes, and the next drill passes.
func TestLeaderKilled(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	p := setUpProduction(t)
	replicas := []*fixture.Drillerd{
		startDrillerd(t, "replica-0", directKubeconfig, "--leader-elect"),
		startDrillerd(t, "replica-1", directKubeconfig, "--leader-elect"),
	}
	leader := p.waitLeader(t, replicas)
	cases := p.reach(t, "leader", []crashPoint{insides[3], insides[4]})

	before, err := p.env.Client.CoordinationV1().Leases(drillerdNamespace).Get(p.env.Ctx, leaseName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	leader.Kill()
	killed := time.Now()
	lastRenew := before.Spec.RenewTime.Time
	var after *coordinationv1.Lease
	leaseDuration := time.Duration(ptr.Deref(before.Spec.LeaseDurationSeconds, 0)) * time.Second
	p.env.WaitFor(fixture.Scaled(3*leaseDuration), "the other replica to acquire the Lease", func(ctx context.Context) (bool, error) {
		l, err := p.env.Client.CoordinationV1().Leases(drillerdNamespace).Get(ctx, leaseName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		if ptr.Deref(l.Spec.HolderIdentity, "") == ptr.Deref(before.Spec.HolderIdentity, "") {
			lastRenew = l.Spec.RenewTime.Time // renewed once more before the kill
			return false, nil
		}
		after = l
		return true, nil
	})
	acquired := after.Spec.AcquireTime.Time
	t.Logf("the leader was killed %s after its last renewal; the other replica acquired the Lease %s after that renewal (lease duration %s)",
		killed.Sub(lastRenew).Round(time.Millisecond), acquired.Sub(lastRenew).Round(time.Millisecond), leaseDuration)
	// A replica takes an expired Lease at its next try: the lease duration
	// after it last saw the Lease change, which it sees at its next try
	// after the renewal; a try comes at most a jittered retry period after
	// the one before.
	retry := time.Duration(float64(leaderRetryPeriod) * (1 + leaderJitter))
	if bound := leaseDuration + 2*retry; acquired.Sub(lastRenew) > bound {
		t.Errorf("the Lease was acquired %s after the dead leader's last renewal, want within %s", acquired.Sub(lastRenew), bound)
	}
	p.judge(t, cases)
	p.finish(t)
}

// waitLeader waits until one of replicas says it acquired the Lease and
// returns it.
func (p *production) waitLeader(t *testing.T, replicas []*fixture.Drillerd) *fixture.Drillerd {
	t.Helper()
	var leader *fixture.Drillerd
	p.env.WaitFor(fixture.Scaled(60*time.Second), "a replica to become the leader", func(context.Context) (bool, error) {
		for _, r := range replicas {
			log, err := os.ReadFile(r.LogPath)
			if err != nil {
				return false, err
			}
			if strings.Contains(strings.ToLower(string(log)), "successfully acquired lease") {
				leader = r
				return true, nil
			}
		}
		return false, fmt.Errorf("no replica holds the Lease")
	})
	return leader
}
