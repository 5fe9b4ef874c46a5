package drill_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/localcluster"
	"github.com/drillerd/drillerd/test/nodeemu"
)

// serviceAccount is the identity deploy/ gives drillerd.
const serviceAccount = "system:serviceaccount:drillerd-system:drillerd"

func kubectl(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(cluster.KubectlBinary, append([]string{"--kubeconfig", cluster.Kubeconfig}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

func repoPath(t *testing.T, parts ...string) string {
	t.Helper()
	root, err := localcluster.RepoRoot()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(append([]string{root}, parts...)...)
}

// deployDryRun: the API server accepts every object of deploy/, and of
// deploy/ with the monitoring component once the Prometheus Operator's CRDs
// are installed.
func (p *production) deployDryRun(t *testing.T) {
	out := kubectl(t, "apply", "--dry-run=server", "-k", repoPath(t, "deploy"))
	for _, want := range []string{"clusterrole.rbac.authorization.k8s.io/drillerd", "deployment.apps/drillerd", "networkpolicy.networking.k8s.io/drillerd"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run does not mention %s:\n%s", want, out)
		}
	}
	for _, resource := range []string{"servicemonitors", "prometheusrules"} {
		crd, err := fixture.PrometheusOperatorCRD(resource)
		if err != nil {
			t.Fatal(err)
		}
		kubectl(t, "apply", "--server-side", "-f", crd)
		kubectl(t, "wait", "--for=condition=Established", "--timeout=30s", "crd/"+resource+".monitoring.coreos.com")
	}
	out = kubectl(t, "apply", "--dry-run=server", "-k", repoPath(t, "test", "e2e", "drill", "testdata", "monitoring"))
	for _, want := range []string{"servicemonitor.monitoring.coreos.com/drillerd", "prometheusrule.monitoring.coreos.com/drillerd", "configmap/drillerd-dashboard"} {
		if !strings.Contains(out, want) {
			t.Errorf("the dry run with the monitoring component does not mention %s:\n%s", want, out)
		}
	}
}

// serviceAccountDrill installs deploy/ and runs drillerd, `drillerd serve`
// and `drillerd run` alike, with the ServiceAccount's own token: a passing
// drill, and one whose database will not start (drillerd reads its log),
// prove the ClusterRole suffices, the audit log that the API server
// refused drillerd nothing, and access reviews that it may not touch what
// it must not.
func (p *production) serviceAccountDrill(t *testing.T) {
	env := p.env
	installDeploy(t, env)
	tr, err := env.Client.CoreV1().ServiceAccounts("drillerd-system").CreateToken(env.Ctx, "drillerd",
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: ptr.To(int64(3600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "drillerd.kubeconfig")
	writeTokenKubeconfig(t, kubeconfig, tr.Status.Token)

	started := time.Now()
	sa := replaceDaemon(t, "serviceaccount", kubeconfig)

	d := p.newDrill("least-privilege").
		check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1000")}).
		builtin(drillsv1.BuiltinTablesReadable).builtin(drillsv1.BuiltinAmcheck).
		freshness("SELECT max(created_at) FROM orders").targets(15*time.Minute, 26*time.Hour)
	run, code := p.runAs(t, kubeconfig, d)
	if code != 0 || run.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("exit %d, %s (%s: %s): want a passing drill with the ServiceAccount's permissions (log %s)", code, run.Status.Result, run.Status.Reason, run.Status.Message, sa.LogPath)
	}
	if run.Status.Snapshot == nil || run.Status.SandboxNamespace == "" || run.Status.VolumeName == "" {
		t.Errorf("status %+v: want the snapshot, the sandbox and the restored volume recorded", run.Status)
	}
	env.WaitFor(fixture.ShortTimeout, "the run to be summarised in the RestoreDrill's status", func(ctx context.Context) (bool, error) {
		stored := &drillsv1.RestoreDrill{}
		if err := p.c.Get(ctx, client.ObjectKeyFromObject(d.d), stored); err != nil {
			return false, err
		}
		last := stored.Status.LastRun
		return last != nil && last.Name == run.Name && stored.Status.RunCounts[drillsv1.ResultSucceeded] == 1, nil
	})

	// A database that refuses its settings: drillerd reads why from its
	// log, which the ServiceAccount may do.
	bad := p.newDrill("least-privilege-bad-setting").args("-c", "shared_buffers=lots").
		check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1000")})
	failed, code := p.runAs(t, kubeconfig, bad)
	const refusal = `FATAL:  invalid value for parameter "shared_buffers": "lots"`
	if code != 1 || failed.Status.Reason != "DatabaseFailed" || !strings.Contains(failed.Status.Message, refusal) {
		t.Errorf("exit %d, %s/%s (%s): want Failed/DatabaseFailed naming %q", code, failed.Status.Result, failed.Status.Reason, failed.Status.Message, refusal)
	}
	logReads := 0
	auditedRequests(t, serviceAccount, started, func(ev fixture.AuditEvent) {
		if ev.Verb == "get" && ev.ObjectRef != nil && ev.ObjectRef.Resource == "pods" && ev.ObjectRef.Subresource == "log" &&
			ev.ObjectRef.Namespace == failed.Status.SandboxNamespace && ev.ResponseStatus != nil && ev.ResponseStatus.Code == 200 {
			logReads++
		}
	})
	if logReads == 0 {
		t.Errorf("the audit log shows no pods/log read of sandbox %s by %s", failed.Status.SandboxNamespace, serviceAccount)
	}

	requests, refused := auditOf(t, serviceAccount, started)
	if requests < 20 {
		t.Errorf("the audit log shows only %d requests by %s: was drillerd using its token?", requests, serviceAccount)
	}
	for _, r := range refused {
		t.Errorf("the API server refused drillerd: %s", r)
	}

	// What the ServiceAccount may not do.
	denied := []authorizationv1.ResourceAttributes{
		{Namespace: p.ns, Verb: "delete", Resource: "persistentvolumeclaims"},
		{Namespace: p.ns, Verb: "delete", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshots"},
		{Verb: "update", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshotcontents"},
		{Verb: "patch", Group: "snapshot.storage.k8s.io", Resource: "volumesnapshotcontents"},
		{Namespace: p.ns, Verb: "list", Resource: "secrets"},
		{Namespace: p.ns, Verb: "get", Resource: "secrets"},
		{Verb: "get", Resource: "secrets"},
		{Namespace: p.ns, Verb: "update", Resource: "secrets"},
		{Namespace: p.ns, Verb: "delete", Resource: "secrets"},
		{Namespace: p.ns, Verb: "delete", Resource: "pods"},
		{Verb: "delete", Resource: "persistentvolumes"},
		{Namespace: p.ns, Verb: "update", Group: "drills.drillerd.dev", Resource: "restoredrills"},
		{Verb: "create", Group: "rbac.authorization.k8s.io", Resource: "clusterrolebindings"},
	}
	for _, attr := range denied {
		review, err := env.Client.AuthorizationV1().SubjectAccessReviews().Create(env.Ctx, &authorizationv1.SubjectAccessReview{
			Spec: authorizationv1.SubjectAccessReviewSpec{User: serviceAccount, ResourceAttributes: &attr},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if review.Status.Allowed {
			t.Errorf("drillerd's ServiceAccount may %s %s.%s in %q; it must not", attr.Verb, attr.Resource, attr.Group, attr.Namespace)
		}
	}
}

// installDeploy applies deploy/ as testdata/install does, and waits until
// the API server's authorizer applies its ServiceAccount's bindings.
func installDeploy(t *testing.T, env *fixture.Env) {
	t.Helper()
	kubectl(t, "apply", "--server-side", "--force-conflicts", "-k", repoPath(t, "test", "e2e", "drill", "testdata", "install"))
	for _, attr := range []authorizationv1.ResourceAttributes{
		{Verb: "watch", Group: drillsv1.GroupVersion.Group, Resource: "drillruns"},
		{Namespace: "drillerd-system", Verb: "update", Group: "coordination.k8s.io", Resource: "leases"},
	} {
		if err := fixture.AwaitAllowed(env.Ctx, env.Client, serviceAccount, attr); err != nil {
			t.Fatal(err)
		}
	}
}

// writeTokenKubeconfig writes a kubeconfig for the local cluster that
// authenticates with token only.
func writeTokenKubeconfig(t *testing.T, path, token string) {
	t.Helper()
	if err := fixture.WriteTokenKubeconfig(cluster.Kubeconfig, path, token, "drillerd-system"); err != nil {
		t.Fatal(err)
	}
}

// auditedRequests calls visit for each event of a response to user in the
// audit log since since: once for most requests, twice for a long-running
// one (when its response started and when it completed).
func auditedRequests(t *testing.T, user string, since time.Time, visit func(fixture.AuditEvent)) {
	t.Helper()
	if err := fixture.AuditedResponses(cluster.AuditLog, []string{user}, since, time.Time{}, visit); err != nil {
		t.Fatal(err)
	}
}

// auditOf counts user's requests in the audit log since since and lists
// those the API server refused with 401 or 403.
func auditOf(t *testing.T, user string, since time.Time) (requests int, refused []string) {
	t.Helper()
	auditedRequests(t, user, since, func(ev fixture.AuditEvent) {
		requests++
		if ev.ResponseStatus != nil && (ev.ResponseStatus.Code == 401 || ev.ResponseStatus.Code == 403) {
			refused = append(refused, fmt.Sprintf("%s %s: %d %s", ev.Verb, ev.RequestURI, ev.ResponseStatus.Code, ev.ResponseStatus.Message))
		}
	})
	return requests, refused
}

// alertsInPrometheus runs a real Prometheus with deploy/monitoring's rules
// against drillerd: a failed drill fires DrillFailed naming the drill and
// the reason, a passing one fires nothing, and every dashboard query is
// valid PromQL that finds drillerd's series.
func (p *production) alertsInPrometheus(t *testing.T) {
	env := p.env
	rules, err := fixture.RuleFile(repoPath(t, "deploy", "monitoring", "prometheusrule.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	prom := env.StartPrometheus("drillerd", []string{daemon.Metrics}, rules)

	// alert-fail may go a second without a success, so it soon has gone
	// longer; alert-pass has an hour and succeeds.
	pass := p.newDrill("alert-pass").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")}).
		targets(15*time.Minute, 26*time.Hour).successWindow(time.Hour)
	fail := p.newDrill("alert-fail").check("orders-exact", "SELECT count(*) FROM orders", drillsv1.Expectation{Equals: ptr.To("3")}).
		successWindow(time.Second)
	if run, _ := p.run(t, pass); run.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("alert-pass: %s %s", run.Status.Result, run.Status.Message)
	}
	if run, _ := p.run(t, fail); run.Status.Reason != "CheckFailed" {
		t.Fatalf("alert-fail: %s/%s, want Failed/CheckFailed", run.Status.Result, run.Status.Reason)
	}

	var firing fixture.Alert
	env.WaitFor(fixture.Scaled(60*time.Second), "DrillFailed and DrillNotSucceededRecently to fire in Prometheus for alert-fail", func(ctx context.Context) (bool, error) {
		alerts, err := prom.Alerts(ctx)
		if err != nil {
			return false, err
		}
		stale := false
		for _, a := range alerts {
			if a.Labels["drill"] != "alert-fail" || a.State != "firing" {
				continue
			}
			switch a.Labels["alertname"] {
			case "DrillFailed":
				firing = a
			case "DrillNotSucceededRecently":
				stale = true
			}
		}
		return firing.Labels != nil && stale, fmt.Errorf("alerts now: %v", alerts)
	})
	if firing.Labels["namespace"] != p.ns || firing.Labels["reason"] != "CheckFailed" || firing.Labels["severity"] != "critical" {
		t.Errorf("DrillFailed labels %v: want namespace %s, reason CheckFailed, severity critical", firing.Labels, p.ns)
	}
	if want := "Restore drill " + p.ns + "/alert-fail failed: CheckFailed"; firing.Annotations["summary"] != want {
		t.Errorf("summary %q, want %q", firing.Annotations["summary"], want)
	}
	alerts, err := prom.Alerts(env.Ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alerts {
		if a.Labels["drill"] == "alert-pass" || a.Labels["alertname"] == "DrillerdDown" {
			t.Errorf("unexpected alert %s for %s (%s)", a.Labels["alertname"], a.Labels["drill"], a.State)
		}
	}

	// The dashboard's queries, with its variables set to this namespace.
	panels, err := fixture.DashboardPanels(repoPath(t, "deploy", "monitoring", "dashboard.json"))
	if err != nil {
		t.Fatal(err)
	}
	vars := strings.NewReplacer("$namespace", regexp.QuoteMeta(p.ns), "$drill", "alert-.*")
	for _, panel := range panels {
		found := false
		for _, query := range panel.Queries {
			samples, err := prom.Query(env.Ctx, vars.Replace(query))
			if err != nil {
				t.Errorf("dashboard panel %q: %v", panel.Title, err)
			}
			found = found || len(samples) > 0
		}
		// Ticks are skipped only by schedules, and a forecast needs three runs.
		if !found && panel.Title != "Skipped schedule ticks (per day)" && panel.Title != "RTO forecast against target" {
			t.Errorf("dashboard panel %q shows no data after two drills", panel.Title)
		}
	}
}

// retainedVolumeIsRemoved: restoring onto a storage class whose volumes are
// retained must still leave no copy of production data behind.
func (p *production) retainedVolumeIsRemoved(t *testing.T) {
	env := p.env
	binding := storagev1.VolumeBindingImmediate
	class := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: "hostpath-retain"},
		Provisioner:       nodeemu.DriverName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimRetain),
		VolumeBindingMode: &binding,
	}
	if _, err := env.Client.StorageV1().StorageClasses().Create(env.Ctx, class, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
	d := p.newDrill("retain-class").storageClass(class.Name).check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")})
	run, code := p.run(t, d) // run checks that no PV of the sandbox is left
	if code != 0 || run.Status.VolumeName == "" {
		t.Fatalf("exit %d, volume %q: %s", code, run.Status.VolumeName, run.Status.Message)
	}
	if _, err := env.Client.CoreV1().PersistentVolumes().Get(env.Ctx, run.Status.VolumeName, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("the restored volume %s of a Retain class outlived the drill (%v)", run.Status.VolumeName, err)
	}
}

// demo runs `make demo`'s script on this cluster: it must install drillerd,
// drill the shop's database as the ServiceAccount and print a passing
// report with a working status page link.
func (p *production) demo(t *testing.T) {
	env := p.env
	daemon.Stop() // the demo runs its own drillerd
	defer func() {
		if err := daemon.Start(); err != nil {
			t.Fatal(err)
		}
	}()
	dir := t.TempDir()
	localclusterBin := filepath.Join(dir, "localcluster")
	build := exec.Command("go", "build", "-o", localclusterBin, "./test/cmd/localcluster")
	build.Dir = repoPath(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building localcluster: %v\n%s", err, out)
	}
	defer func() {
		for _, pidFile := range []string{"drillerd.pid", "writer.pid"} {
			data, err := os.ReadFile(filepath.Join(cluster.StateDir, pidFile))
			if err != nil {
				continue
			}
			var pid int
			if _, err := fmt.Sscan(string(data), &pid); err == nil && pid > 0 {
				if proc, err := os.FindProcess(pid); err == nil {
					_ = proc.Signal(syscall.SIGTERM)
				}
			}
			_ = os.Remove(filepath.Join(cluster.StateDir, pidFile))
		}
	}()
	ctx, cancel := context.WithTimeout(env.Ctx, fixture.Scaled(5*time.Minute))
	defer cancel()
	cmd := exec.CommandContext(ctx, repoPath(t, "test", "demo", "demo.sh"))
	cmd.Dir = repoPath(t)
	cmd.Env = append(os.Environ(), "DEMO_STATE_DIR="+cluster.StateDir, "DRILLERD="+drillerd, "LOCALCLUSTER="+localclusterBin,
		"DEMO_API_ADDRESS="+freeAddress(t), "DEMO_METRICS_ADDRESS="+freeAddress(t), "DEMO_PROBE_ADDRESS="+freeAddress(t))
	out, err := cmd.CombinedOutput()
	t.Logf("demo output:\n%s", out)
	if err != nil {
		t.Fatalf("the demo failed: %v", err)
	}
	text := string(out)
	for _, want := range []string{"Verdict   Succeeded: 7 checks passed", "PASS  every-order-has-items", "RPO", "(data ", "restoredrill.drills.drillerd.dev/orders-db", "Stop everything:     make cluster-down"} {
		if !strings.Contains(text, want) {
			t.Errorf("the demo's output lacks %q", want)
		}
	}
	// The status page it prints takes the token it prints and shows the drill.
	m := regexp.MustCompile(`Status page \(self-signed certificate\): (https://127\.0\.0\.1:[0-9]+)/\n.*\n\s*(\S+)\n`).FindStringSubmatch(text)
	if m == nil {
		t.Fatal("the demo prints no status page address and token")
	}
	page := newBrowser(t).signIn(m[1], m[2])
	if !strings.Contains(page, "shop/orders-db") || !strings.Contains(page, "Succeeded") {
		t.Errorf("the demo's status page does not show shop/orders-db succeeding:\n%s", page)
	}
}

// freeAddress is a loopback address with a port nothing listens on now.
func freeAddress(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
