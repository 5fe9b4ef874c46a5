package faults_test

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/apigate"
	"github.com/drillerd/drillerd/test/fixture"
)

// slots is --max-concurrent-drills in TestConcurrency.
const slots = 3

// slowDelete is how long the API server takes to answer the first
// sandbox namespace deletion in TestConcurrency: a run then has its
// verdict while its sandbox still stands.
const slowDelete = 5 * time.Second

// TestConcurrency asks for ten drills at once over the HTTP API of a
// drillerd with three drill slots: every run passes, one per drill; never
// more than three sandboxes stand at once (a watch on drillerd's
// namespaces; the first teardown's namespace deletion is answered
// slowly); runs start in the order they were created. Then two replicas
// are asked for the same drill at the same instant, both deciding before
// either creates a run: one run is made.
func TestConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	p := setUpProduction(t)
	t.Run("ten drills asked for at once, three slots", p.tenAtOnce)
	t.Run("one drill asked of two replicas at the same instant", p.twoReplicasOneDrill)
	startDrillerd(t, "fresh", directKubeconfig)
	p.finish(t)
}

func (p *production) tenAtOnce(t *testing.T) {
	env := p.env
	sources := p.sources(t)
	d := startDrillerd(t, "slots", gatedKubeconfig, "--max-concurrent-drills", fmt.Sprint(slots))
	token := p.operator(t)
	var drills []*drillsv1.RestoreDrill
	for i := range 10 {
		drills = append(drills, p.create(t, p.newDrill(fmt.Sprintf("conc-%d", i))))
	}
	sandboxes := p.watchSandboxes(t)
	starts := p.watchStarts(t)

	// The API server answers the first sandbox deletion slowly.
	slow := gate.Hold("the first sandbox namespace deletion", apigate.BeforeServer, func(r apigate.Request) bool {
		return r.Verb == "delete" && r.Resource == "namespaces" && strings.HasPrefix(r.Name, restore.NamespacePrefix+"conc-")
	})
	go func() {
		select {
		case <-slow.Arrived():
			time.Sleep(slowDelete)
		case <-env.Ctx.Done():
		}
		slow.Release()
	}()
	t.Cleanup(slow.Release)

	// drillerd decides which run takes a slot on a list of every run from
	// the API server; the first such decision waits until all ten runs
	// exist, so that every decision is made knowing the whole queue.
	decide := gate.Hold("the first slot decision", apigate.BeforeServer, func(r apigate.Request) bool {
		return r.Verb == "list" && r.Resource == "drillruns" && r.Namespace == ""
	})
	t.Cleanup(decide.Release)

	var mu sync.Mutex
	created := map[string]string{} // drill → run
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, drill := range drills {
		wg.Go(func() {
			<-start
			code, body := p.post(d, drill.Name, token)
			mu.Lock()
			defer mu.Unlock()
			if code != http.StatusCreated {
				t.Errorf("POST runs of %s: %d %v, want 201", drill.Name, code, body)
				return
			}
			created[drill.Name] = body["name"].(string)
		})
	}
	close(start)
	wg.Wait()
	drillsCreated.Add(int64(len(created)))
	if len(created) != len(drills) {
		t.Fatalf("%d runs created for %d drills", len(created), len(drills))
	}
	env.WaitFor(fixture.ShortTimeout, "drillerd to decide on a slot", func(context.Context) (bool, error) {
		select {
		case <-decide.Arrived():
			return true, nil
		default:
			return false, nil
		}
	})
	decide.Release()

	var runs []*drillsv1.DrillRun
	for _, drill := range drills {
		run := p.waitDone(t, &drillsv1.DrillRun{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: created[drill.Name]}}, fixture.Scaled(10*time.Minute))
		if run.Status.Result != drillsv1.ResultSucceeded {
			t.Errorf("run %s of %s: %s/%s (%s), want Succeeded", run.Name, drill.Name, run.Status.Result, run.Status.Reason, run.Status.Message)
		}
		runs = append(runs, run)
	}
	for _, run := range runs {
		p.assertSandboxGone(t, run)
	}
	select {
	case <-slow.Arrived():
	default:
		t.Error("no sandbox namespace deletion was held: the test did not slow the API server")
	}

	// One run per drill, no more.
	list := &drillsv1.DrillRunList{}
	if err := p.c.List(env.Ctx, list, client.InNamespace(p.ns)); err != nil {
		t.Fatal(err)
	}
	perDrill := map[string]int{}
	for _, r := range list.Items {
		perDrill[r.Spec.DrillName]++
	}
	for _, drill := range drills {
		if perDrill[drill.Name] != 1 {
			t.Errorf("drill %s has %d runs, want 1", drill.Name, perDrill[drill.Name])
		}
	}

	most, at := sandboxes.most()
	t.Logf("at most %d sandboxes stood at once (%s); %d sandboxes in all", most, strings.Join(at, ", "), sandboxes.count())
	if most > slots {
		t.Errorf("%d sandboxes stood at once (%s), want at most %d", most, strings.Join(at, ", "), slots)
	}
	if most < slots {
		t.Errorf("at most %d sandboxes stood at once: the runs never used the %d slots", most, slots)
	}
	if n := sandboxes.count(); n != len(drills) {
		t.Errorf("%d sandboxes made for %d runs", n, len(drills))
	}

	// First come, first served: the queue is the order of creation
	// (creation time, which has seconds, then name). Runs admitted together
	// may record their start in either order, but when a run is seen
	// started, at most slots-1 runs created before it can still be unseen:
	// those admitted with it, each holding a slot.
	queue := slices.Clone(runs)
	slices.SortFunc(queue, func(a, b *drillsv1.DrillRun) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Name, b.Name)
	})
	order := starts.order()
	t.Logf("created %v", names(queue))
	t.Logf("started %v", order)
	for i, name := range order {
		pos := slices.IndexFunc(queue, func(r *drillsv1.DrillRun) bool { return r.Name == name })
		var unseen []string
		for _, ahead := range queue[:max(pos, 0)] {
			if !slices.Contains(order[:i], ahead.Name) {
				unseen = append(unseen, ahead.Name)
			}
		}
		if len(unseen) > slots-1 {
			t.Errorf("run %s started while %v, created before it, still waited", name, unseen)
		}
	}
	if len(order) != len(runs) {
		t.Errorf("%d runs seen starting, want %d", len(order), len(runs))
	}
	sources.AssertUntouched(drillerdUser)
}

func (p *production) twoReplicasOneDrill(t *testing.T) {
	env := p.env
	token := p.operator(t)
	// The drill's claim has no snapshot: each run ends at once, Failed
	// (NoReadySnapshot), and the next round can ask again.
	drill := p.create(t, p.newDrill("race").source("data-nothing-0"))
	replicas := []*fixture.Drillerd{
		startDrillerd(t, "replica-0", gatedKubeconfig, "--leader-elect"),
		startDrillerd(t, "replica-1", gatedKubeconfig, "--leader-elect"),
	}
	const rounds = 3
	for round := range rounds {
		// Both replicas list the drill's runs before either creates one.
		holds := []*apigate.Hold{}
		for i := range 2 {
			holds = append(holds, gate.Hold(fmt.Sprintf("replica list %d of round %d", i, round), apigate.BeforeServer, func(r apigate.Request) bool {
				return r.Verb == "list" && r.Resource == "drillruns" && r.Namespace == p.ns
			}))
		}
		codes := make([]int, 2)
		bodies := make([]map[string]any, 2)
		var wg sync.WaitGroup
		for i, r := range replicas {
			wg.Go(func() { codes[i], bodies[i] = p.post(r, drill.Name, token) })
		}
		for _, h := range holds {
			env.WaitFor(fixture.ShortTimeout, "both replicas to list the drill's runs", func(context.Context) (bool, error) {
				select {
				case <-h.Arrived():
					return true, nil
				default:
					return false, nil
				}
			})
		}
		for _, h := range holds {
			h.Release()
		}
		wg.Wait()
		slices.Sort(codes)
		if !slices.Equal(codes, []int{http.StatusCreated, http.StatusConflict}) {
			t.Errorf("round %d: answers %v %v, want one 201 and one 409", round, codes, bodies)
		}
		list := &drillsv1.DrillRunList{}
		if err := p.c.List(env.Ctx, list, client.InNamespace(p.ns)); err != nil {
			t.Fatal(err)
		}
		var mine []drillsv1.DrillRun
		for _, r := range list.Items {
			if r.Spec.DrillName == drill.Name {
				mine = append(mine, r)
			}
		}
		drillsCreated.Add(1)
		if len(mine) != round+1 {
			t.Fatalf("round %d: drill %s has %d runs, want %d", round, drill.Name, len(mine), round+1)
		}
		for _, r := range mine {
			p.waitDone(t, &r, drillTimeout)
		}
	}
}

// operator is a ServiceAccount of the production namespace that may start
// drills (create and get drillruns); it returns a token for drillerd's
// audience.
func (p *production) operator(t *testing.T) string {
	t.Helper()
	env := p.env
	name := "operator"
	env.GrantRole(t, p.ns, name, "drill-runner",
		rbacv1.PolicyRule{APIGroups: []string{drillsv1.GroupVersion.Group}, Resources: []string{"drillruns"}, Verbs: []string{"create", "get"}})
	tr, err := env.Client.CoreV1().ServiceAccounts(p.ns).CreateToken(env.Ctx, name,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: []string{"drillerd"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// post asks drillerd's HTTP API for a run of drill.
func (p *production) post(d *fixture.Drillerd, drill, token string) (int, map[string]any) {
	// drillerd's API certificate is self-signed here (no --tls-cert-file).
	c := &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	req, err := http.NewRequestWithContext(p.env.Ctx, http.MethodPost, "https://"+d.API+"/api/v1/namespaces/"+p.ns+"/restoredrills/"+drill+"/runs", nil)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := c.Do(req)
	if err != nil {
		return 0, map[string]any{"error": err.Error()}
	}
	defer resp.Body.Close()
	body := map[string]any{}
	_ = json.NewDecoder(resp.Body).Decode(&body)
	return resp.StatusCode, body
}

func names(runs []*drillsv1.DrillRun) []string {
	out := make([]string, len(runs))
	for i, r := range runs {
		out[i] = r.Name
	}
	return out
}

// sandboxWatch follows the sandbox namespaces of the production
// namespace's runs, as a watch reports them: a sandbox stands from its
// creation until its deletion is asked for.
type sandboxWatch struct {
	mu       sync.Mutex
	standing map[string]bool
	seen     map[string]bool
	peak     []string
}

func (p *production) watchSandboxes(t *testing.T) *sandboxWatch {
	t.Helper()
	selector := restore.LabelRunNamespace + "=" + p.ns
	w, err := p.env.Client.CoreV1().Namespaces().Watch(p.env.Ctx, metav1.ListOptions{LabelSelector: selector})
	if err != nil {
		t.Fatal(err)
	}
	s := &sandboxWatch{standing: map[string]bool{}, seen: map[string]bool{}}
	go func() {
		for ev := range w.ResultChan() {
			ns, ok := ev.Object.(*corev1.Namespace)
			if !ok {
				continue
			}
			s.mu.Lock()
			s.seen[ns.Name] = true
			if ev.Type == watch.Deleted || ns.DeletionTimestamp != nil {
				delete(s.standing, ns.Name)
			} else {
				s.standing[ns.Name] = true
			}
			if len(s.standing) > len(s.peak) {
				s.peak = slices.Sorted(func(yield func(string) bool) {
					for n := range s.standing {
						if !yield(n) {
							return
						}
					}
				})
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(w.Stop)
	return s
}

// most is the largest number of sandboxes that stood at once, and which.
func (s *sandboxWatch) most() (int, []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.peak), s.peak
}

// count is how many sandboxes were seen.
func (s *sandboxWatch) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.seen)
}

// startWatch records the order in which a watch shows runs of the
// production namespace leave Pending.
type startWatch struct {
	mu      sync.Mutex
	started []string
}

func (p *production) watchStarts(t *testing.T) *startWatch {
	t.Helper()
	w, err := p.c.Watch(p.env.Ctx, &drillsv1.DrillRunList{}, client.InNamespace(p.ns))
	if err != nil {
		t.Fatal(err)
	}
	s := &startWatch{}
	go func() {
		for ev := range w.ResultChan() {
			run, ok := ev.Object.(*drillsv1.DrillRun)
			if !ok || run.Status.StartTime == nil {
				continue
			}
			s.mu.Lock()
			if !slices.Contains(s.started, run.Name) {
				s.started = append(s.started, run.Name)
			}
			s.mu.Unlock()
		}
	}()
	t.Cleanup(w.Stop)
	return s
}

func (s *startWatch) order() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.started)
}
