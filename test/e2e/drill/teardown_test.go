package drill_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/fixture"
)

// holdFinalizer is a finalizer no controller removes: it keeps whatever
// carries it, and its namespace Terminating, until the test removes it.
const holdFinalizer = "e2e.drillerd.dev/hold"

// holdSandboxesOf makes every ConfigMap created in a sandbox namespace of
// drill carry holdFinalizer (a MutatingAdmissionPolicy), from the moment
// drillerd creates its ConfigMap during Provisioning: the sandbox's
// namespace cannot go away until the test lets it.
func holdSandboxesOf(t *testing.T, env *fixture.Env, drill string) {
	t.Helper()
	name := "e2e-hold-sandboxes-of-" + drill
	env.MutateOnCreate(t, name, "configmaps",
		admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{MatchLabels: map[string]string{restore.LabelDrill: drill}}},
		fmt.Sprintf(`Object{metadata: Object.metadata{finalizers: [%q]}}`, holdFinalizer))
	// The policy applies once the API server has loaded it: a ConfigMap
	// made in a namespace labelled like the sandboxes gets the finalizer.
	probe := env.Namespace("hold-probe")
	ns, err := env.Client.CoreV1().Namespaces().Get(env.Ctx, probe, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Labels[restore.LabelDrill] = drill
	if _, err := env.Client.CoreV1().Namespaces().Update(env.Ctx, ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { releaseConfigMaps(t, env, probe) })
	i := 0
	env.WaitFor(fixture.ShortTimeout, "the MutatingAdmissionPolicy to hold new ConfigMaps", func(ctx context.Context) (bool, error) {
		i++
		cm, err := env.Client.CoreV1().ConfigMaps(probe).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("probe-%d", i)}}, metav1.CreateOptions{})
		if err != nil {
			return false, err
		}
		return slices.Contains(cm.Finalizers, holdFinalizer), nil
	})
}

// releaseConfigMaps removes holdFinalizer from every ConfigMap in
// namespace, as whoever owns a forgotten finalizer does in the end.
func releaseConfigMaps(t *testing.T, env *fixture.Env, namespace string) {
	t.Helper()
	list, err := env.Client.CoreV1().ConfigMaps(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Errorf("listing ConfigMaps of %s: %v", namespace, err)
		return
	}
	for _, cm := range list.Items {
		if !slices.Contains(cm.Finalizers, holdFinalizer) {
			continue
		}
		cm.Finalizers = slices.DeleteFunc(cm.Finalizers, func(f string) bool { return f == holdFinalizer })
		if _, err := env.Client.CoreV1().ConfigMaps(namespace).Update(context.Background(), &cm, metav1.UpdateOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("releasing ConfigMap %s/%s: %v", namespace, cm.Name, err)
		}
	}
}

// leakedSandbox: a sandbox namespace held Terminating by a finalizer that
// nobody removes (its controller is gone) neither stalls the queue nor
// keeps its run from ending. With one drill slot, another drill runs
// start to finish while the stuck run tears down, and the stuck drill can
// be run again over HTTP; past timeouts.teardown both runs are Done with
// their verdict, a SandboxLeaked condition, event and metric naming what
// is left; once the finalizer is removed, nothing of them remains.
func (p *production) leakedSandbox(t *testing.T) {
	env := p.env
	const drillName = "leaky"
	holdSandboxesOf(t, env, drillName)
	restartDrillerd(t, "--max-concurrent-drills", "1")
	sources := p.sources(t)

	// An hour to tear down: the run stays TearingDown while the other
	// drills run, whatever the machine's speed; shortening it later ends it.
	leaky := p.newDrill(drillName).check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")})
	leaky.d.Spec.Timeouts.Teardown = &metav1.Duration{Duration: time.Hour}
	if err := p.c.Create(env.Ctx, leaky.d); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.c.Delete(context.Background(), leaky.d) })
	first := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: "leaky-1"},
		Spec:       drillsv1.DrillRunSpec{DrillName: drillName, Trigger: drillsv1.TriggerManual},
	}
	if err := p.c.Create(env.Ctx, first); err != nil {
		t.Fatal(err)
	}
	stuckTearingDown := func(run *drillsv1.DrillRun) {
		t.Helper()
		env.WaitFor(fixture.Scaled(90*time.Second), "run "+run.Name+" to have its verdict and its sandbox to be held Terminating", func(ctx context.Context) (bool, error) {
			if err := p.c.Get(ctx, client.ObjectKeyFromObject(run), run); err != nil || run.Status.Phase != drillsv1.PhaseTearingDown || run.Status.SandboxNamespace == "" {
				return false, err
			}
			ns, err := env.Client.CoreV1().Namespaces().Get(ctx, run.Status.SandboxNamespace, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			// The namespace controller has found what holds it.
			for _, c := range ns.Status.Conditions {
				if c.Type == corev1.NamespaceFinalizersRemaining && c.Status == corev1.ConditionTrue {
					return ns.DeletionTimestamp != nil, nil
				}
			}
			return false, fmt.Errorf("namespace %s: %+v", ns.Name, ns.Status.Conditions)
		})
		if run.Status.Result != drillsv1.ResultSucceeded {
			t.Fatalf("run %s: %s/%s %s, want Succeeded before teardown", run.Name, run.Status.Result, run.Status.Reason, run.Status.Message)
		}
	}
	stuckTearingDown(first)

	// The only slot is free: another drill runs start to finish.
	other, code := p.run(t, p.newDrill("while-leaking").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")}))
	if code != 0 || other.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("the other drill: exit %d, %s/%s %s", code, other.Status.Result, other.Status.Reason, other.Status.Message)
	}
	if err := p.c.Get(env.Ctx, client.ObjectKeyFromObject(first), first); err != nil || first.Status.Phase != drillsv1.PhaseTearingDown {
		t.Fatalf("the stuck run is %s (%v): the other drill did not run while it tore down", first.Status.Phase, err)
	}

	// The stuck drill itself can be run again: no 409 for a run with a verdict.
	second := &drillsv1.DrillRun{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: runOverHTTP(t, p, drillName)}}
	stuckTearingDown(second)

	// Past timeouts.teardown both are Done, their verdict kept, the leak named.
	if err := p.c.Get(env.Ctx, client.ObjectKeyFromObject(leaky.d), leaky.d); err != nil {
		t.Fatal(err)
	}
	leaky.d.Spec.Timeouts.Teardown = &metav1.Duration{Duration: time.Second}
	if err := p.c.Update(env.Ctx, leaky.d); err != nil {
		t.Fatal(err)
	}
	for _, run := range []*drillsv1.DrillRun{first, second} {
		env.WaitFor(fixture.ShortTimeout, "run "+run.Name+" to be Done", func(ctx context.Context) (bool, error) {
			err := p.c.Get(ctx, client.ObjectKeyFromObject(run), run)
			return err == nil && run.Status.Phase == drillsv1.PhaseDone, err
		})
		s := run.Status
		leak := meta.FindStatusCondition(s.Conditions, drillsv1.ConditionSandboxLeaked)
		if s.Result != drillsv1.ResultSucceeded || s.CompletionTime == nil || s.SandboxRemoved || leak == nil || leak.Status != metav1.ConditionTrue {
			t.Fatalf("run %s: %s in %s, completed %v, removed %v, condition %+v: want Done, Succeeded, SandboxLeaked", run.Name, s.Result, s.Phase, s.CompletionTime, s.SandboxRemoved, leak)
		}
		left := "Namespace " + s.SandboxNamespace + " (Terminating: "
		if !strings.Contains(leak.Message, left) || !strings.Contains(leak.Message, holdFinalizer) || !strings.Contains(leak.Message, "timeouts.teardown (1s)") {
			t.Errorf("run %s: SandboxLeaked says %q, want it to name %q... and the finalizer %s", run.Name, leak.Message, left, holdFinalizer)
		}
		if !env.HasEvent(p.ns, "DrillRun", run.Name, "SandboxLeaked", s.SandboxNamespace) {
			t.Errorf("run %s: no SandboxLeaked event naming %s; events: %q", run.Name, s.SandboxNamespace, env.Events(p.ns, "DrillRun", run.Name))
		}
	}
	leakedSeries := "drillerd_sandboxes_leaked{drill=" + drillName + ",namespace=" + p.ns + "}"
	if got := scrape(t, daemon.Metrics)[leakedSeries]; got != 2 {
		t.Errorf("%s = %v, want 2", leakedSeries, got)
	}

	// The finalizer's owner lets go: what was left goes, and the runs say so.
	for _, run := range []*drillsv1.DrillRun{first, second} {
		releaseConfigMaps(t, env, run.Status.SandboxNamespace)
	}
	for _, run := range []*drillsv1.DrillRun{first, second} {
		env.WaitFor(fixture.NamespaceGoneTimeout, "the leaked sandbox of "+run.Name+" to be gone and the run to say so", func(ctx context.Context) (bool, error) {
			err := p.c.Get(ctx, client.ObjectKeyFromObject(run), run)
			return err == nil && run.Status.SandboxRemoved, err
		})
		if leak := meta.FindStatusCondition(run.Status.Conditions, drillsv1.ConditionSandboxLeaked); leak == nil || leak.Status != metav1.ConditionFalse || leak.Reason != "SandboxRemoved" {
			t.Errorf("run %s: condition %+v, want SandboxLeaked=False (SandboxRemoved)", run.Name, leak)
		}
		p.assertNoSandboxLeft(t, run)
	}
	if got := scrape(t, daemon.Metrics)[leakedSeries]; got != 0 {
		t.Errorf("%s = %v once the sandboxes are gone, want 0", leakedSeries, got)
	}
	sources.AssertUntouched(drillerdUsers...)
}

// runOverHTTP asks drillerd's HTTP API for a run of drill as a
// ServiceAccount that may create runs, and returns the run's name; the
// request must be accepted.
func runOverHTTP(t *testing.T, p *production, drill string) string {
	t.Helper()
	env := p.env
	const sa = "leak-operator"
	env.GrantRole(t, p.ns, sa, sa,
		rbacv1.PolicyRule{APIGroups: []string{drillsv1.GroupVersion.Group}, Resources: []string{"drillruns"}, Verbs: []string{"create", "get"}})
	token := mintToken(t, env, p.ns, sa, apiAudience)
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, _ := http.NewRequestWithContext(env.Ctx, http.MethodPost, "https://"+daemon.API+"/api/v1/namespaces/"+p.ns+"/restoredrills/"+drill+"/runs", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST a run of %s: %d %s, want 201", drill, resp.StatusCode, body)
	}
	var created struct{ Name string }
	if err := json.Unmarshal(body, &created); err != nil || created.Name == "" {
		t.Fatalf("POST a run of %s: %s (%v)", drill, body, err)
	}
	return created.Name
}

// readiness: the first 200 of /readyz means every listener answers. It
// restarts drillerd with its health listener and, from the moment /readyz
// first says ready, the API (over TLS) and /metrics must answer at once.
func (p *production) readiness(t *testing.T) {
	health := freeAddress(t)
	restartDrillerd(t, "--health-probe-bind-address", health)
	httpc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	get := func(url string) (int, string, error) {
		resp, err := httpc.Get(url)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body), err
	}
	var verbose string
	p.env.WaitFor(fixture.ShortTimeout, "/readyz to answer 200", func(ctx context.Context) (bool, error) {
		code, body, err := get("http://" + health + "/readyz?verbose")
		verbose = body
		return code == http.StatusOK, err
	})
	if code, body, err := get("https://" + daemon.API + "/api/v1/namespaces/" + p.ns + "/drillruns/none"); err != nil || code != http.StatusUnauthorized {
		t.Errorf("ready, but the API answered %d %s (%v), want 401 for a request without a token", code, body, err)
	}
	if code, _, err := get("http://" + daemon.Metrics + "/metrics"); err != nil || code != http.StatusOK {
		t.Errorf("ready, but /metrics answered %d (%v)", code, err)
	}
	for _, check := range []string{"[+]api ok", "[+]metrics ok", "[+]caches ok"} {
		if !strings.Contains(verbose, check) {
			t.Errorf("/readyz?verbose does not report %q:\n%s", check, verbose)
		}
	}
}
