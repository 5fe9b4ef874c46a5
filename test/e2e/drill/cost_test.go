package drill_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/test/fixture"
)

// maxRequestsPerDrill is the most API requests one passing drill may cost
// drillerd, its leader-election lease aside (README: API cost).
const maxRequestsPerDrill = 30

// apiCost runs one passing drill and reads in the API server's audit log
// what it cost drillerd: at most maxRequestsPerDrill requests, each saying
// in its user agent which drillerd made it; and that the restored claim
// was asked for only once its snapshot was ready.
func (p *production) apiCost(t *testing.T) {
	env := p.env
	d := p.newDrill("api-cost").
		check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1000")}).
		builtin(drillsv1.BuiltinTablesReadable).builtin(drillsv1.BuiltinAmcheck).
		freshness("SELECT max(created_at) FROM orders").targets(15*time.Minute, 26*time.Hour)
	if err := p.c.Create(env.Ctx, d.d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.c.Delete(context.Background(), d.d) })
	// What the new drill costs before its first run (its Ready condition)
	// is not the run's.
	env.WaitFor(fixture.ShortTimeout, "the new RestoreDrill to be Ready", func(ctx context.Context) (bool, error) {
		stored := &drillsv1.RestoreDrill{}
		if err := p.c.Get(ctx, client.ObjectKeyFromObject(d.d), stored); err != nil {
			return false, err
		}
		return meta.IsStatusConditionTrue(stored.Status.Conditions, "Ready"), nil
	})

	start := time.Now()
	run, code := drillerdRun(t, cluster.Kubeconfig, p.ns, d.d, "--timeout", "5m")
	if code != 0 || run.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("exit %d, %s (%s: %s): want a passing drill", code, run.Status.Result, run.Status.Reason, run.Status.Message)
	}
	p.assertNoSandboxLeft(t, run)
	// The verdict's events are the drill's last requests; they are sent
	// after its last status write.
	env.WaitFor(fixture.ShortTimeout, "the verdict's event on the drill", func(context.Context) (bool, error) {
		for _, e := range env.Events(p.ns, "RestoreDrill", d.d.Name) {
			if strings.HasPrefix(e, "RunSucceeded:") {
				return true, nil
			}
		}
		return false, nil
	})

	out, err := exec.Command(drillerd, "version").Output()
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimPrefix(strings.TrimSpace(string(out)), "drillerd ")
	if version == "" || version == "dev" {
		t.Fatalf("drillerd version says %q: the tests build it with its version", out)
	}
	wantAgent := "drillerd/" + version + " ("

	// From the run's start on, every request of drillerd's: not its
	// lease, not its informers' watches (renewed every few minutes
	// whatever the drills do) and not the periodic sweep's cluster-wide
	// lists, which are no drill's.
	perKind := map[string]int{}
	requests, excluded := 0, 0
	// Once each: a watch is logged when it starts and when it ends.
	auditedRequests(t, drillerdUsers[0], start, fixture.OncePerRequest(func(ev fixture.AuditEvent) {
		if !strings.HasPrefix(ev.UserAgent, wantAgent) || !strings.Contains(ev.UserAgent, ") serve") {
			t.Errorf("%s %s: user agent %q, want %q…) serve…", ev.Verb, ev.RequestURI, ev.UserAgent, wantAgent)
		}
		resource, namespaced := "", false
		if ev.ObjectRef != nil {
			resource, namespaced = ev.ObjectRef.Resource, ev.ObjectRef.Namespace != ""
			if ev.ObjectRef.Subresource != "" {
				resource += "/" + ev.ObjectRef.Subresource
			}
		}
		if resource == "leases" || ev.Verb == "watch" || ev.Verb == "list" && !namespaced {
			excluded++
			return
		}
		requests++
		perKind[ev.Verb+" "+resource]++
	}))
	var breakdown []string
	for k, n := range perKind {
		breakdown = append(breakdown, fmt.Sprintf("%d %s", n, k))
	}
	sort.Strings(breakdown)
	t.Logf("drill %s cost %d API requests (%d more of the lease, watches and the sweep): %s", run.Name, requests, excluded, strings.Join(breakdown, ", "))
	if requests > maxRequestsPerDrill {
		t.Errorf("a passing drill cost %d API requests, want at most %d: %s", requests, maxRequestsPerDrill, strings.Join(breakdown, ", "))
	}
	if requests < 10 {
		t.Errorf("the audit log shows only %d requests of %s for the drill: was it drillerd's?", requests, drillerdUsers[0])
	}
	claimWaitsForItsSnapshot(t, run, start)
}

// claimWaitsForItsSnapshot reads in the API server's audit log that
// drillerd asked for the run's restored claim only once the snapshot
// controller had written the sandbox's VolumeSnapshot ready: after the API
// server received that status write. (Its response completes only after
// the write reaches watchers, so a claim asked for at once can come before
// that response does.) A CSI provisioner that sees a claim of a snapshot
// not yet ready refuses it and tries again only after its back-off, which
// the run's RTO would pay.
func claimWaitsForItsSnapshot(t *testing.T, run *drillsv1.DrillRun, since time.Time) {
	t.Helper()
	sandbox := run.Status.SandboxNamespace
	if sandbox == "" {
		t.Fatalf("run %s names no sandbox namespace", run.Name)
	}
	var ready, claimAsked time.Time // the first status write saying readyToUse, received; drillerd's request for the claim
	readyBy := ""
	err := fixture.AuditedResponses(cluster.AuditLog, nil, since, time.Time{}, func(ev fixture.AuditEvent) {
		ref := ev.ObjectRef
		if ev.Stage != "ResponseComplete" || ref == nil || ref.Namespace != sandbox || ev.ResponseStatus == nil || ev.ResponseStatus.Code >= 300 {
			return
		}
		switch {
		case ref.Resource == "volumesnapshots" && ref.Subresource == "status" && ready.IsZero():
			var vs struct {
				Status struct {
					ReadyToUse *bool `json:"readyToUse"`
				} `json:"status"`
			}
			if json.Unmarshal(ev.ResponseObject, &vs) == nil && vs.Status.ReadyToUse != nil && *vs.Status.ReadyToUse {
				ready, readyBy = ev.RequestReceivedTimestamp.Time, ev.User.Username
			}
		case ref.Resource == "persistentvolumeclaims" && ref.Subresource == "" && ev.Verb == "create" && slices.Contains(drillerdUsers, ev.User.Username):
			claimAsked = ev.RequestReceivedTimestamp.Time
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case ready.IsZero():
		t.Errorf("the audit log has no status write making a VolumeSnapshot in %s ready", sandbox)
	case claimAsked.IsZero():
		t.Errorf("the audit log has no request of drillerd's creating a claim in %s", sandbox)
	case claimAsked.Before(ready):
		t.Errorf("drillerd asked for the restored claim in %s at %s, %s before %s asked to write its VolumeSnapshot ready",
			sandbox, claimAsked.Format(time.StampMicro), ready.Sub(claimAsked), readyBy)
	default:
		t.Logf("the claim in %s was asked for %s after its VolumeSnapshot was written ready", sandbox, claimAsked.Sub(ready))
	}
}
