package drill_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/report"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/nodeemu"
)

// slowRestoreClass makes restores take long enough that the RTO can be
// compared with the emulator's ground truth to a few percent.
const (
	slowRestoreClass = "hostpath-slow-restore"
	slowRestoreDelay = "20s"
)

// production is the database every drill here restores.
type production struct {
	env *fixture.Env
	ns  string
	pg  *fixture.PostgresStatefulSet
	c   client.Client
}

// TestDrills runs every scenario against one production database with two
// snapshots: "before-orders" (no orders table yet) and "nightly".
func TestDrills(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	env := fixture.New(t, cluster)
	p := setUpProduction(t, env)

	t.Run("passing drill measures the real RTO and RPO", p.passingDrill)
	t.Run("a passing drill costs drillerd at most 30 API requests, each naming its version, and asks for its claim once its snapshot is ready", p.apiCost)
	t.Run("wrong expected count fails naming the check", p.failingCheck)
	t.Run("snapshot whose data lacks a table fails", p.snapshotLackingTable)
	t.Run("no ready snapshot", p.noReadySnapshot)
	t.Run("freshness beyond the RPO target fails on RPO", p.freshnessBeyondRPO)
	t.Run("image that cannot start fails within the database timeout", p.imageCannotStart)
	t.Run("a sandbox the API server refuses ends APIError at once and is torn down", p.sandboxRefused)
	t.Run("a failed sandbox is kept for keepOnFailure with --sandbox-labels on each object, admits nobody without the run's key, then is removed", p.keepOnFailure)
	t.Run("checks that reach past reading end CheckRefused naming each", p.checksThatReachPastReading)
	t.Run("drillerd killed mid-drill: the run ends Interrupted and no sandbox remains", p.killedMidDrill)
	t.Run("with no drillerd serving, drillerd run explains the wait and serve without its namespace stops", p.noDrillerdServing)
	t.Run("metrics after a passed and a failed drill, and after a restart", p.metricsSurviveRestart)
	t.Run("three runs record what they restored and read, and forecast the RTO", p.rtoTrend)
	t.Run("HTTP API with ServiceAccount tokens and RBAC: 401, 403, 201, 409, 404", p.httpAPI)
	t.Run("readyz says ready only when the API and metrics listeners answer", p.readiness)
	t.Run("a sandbox held Terminating: the run ends with its verdict, the leak is named and the queue goes on", p.leakedSandbox)
	t.Run("objects that only look like drillerd's survive drills and the start-up sweep", p.guards)
	t.Run("the API server accepts IANA zones and refuses unknown ones naming the field", p.specValidation)
	t.Run("status page in headless Chromium", p.statusPage)
	t.Run("a schedule every minute yields one run per tick with two replicas", p.scheduleWithTwoReplicas)
	t.Run("a storage class that retains volumes leaves no restored volume behind", p.retainedVolumeIsRemoved)
	t.Run("deploy/ passes a server-side dry run, with and without monitoring", p.deployDryRun)
	t.Run("drillerd with deploy/'s ServiceAccount runs a drill and is refused nothing", p.serviceAccountDrill)
	t.Run("a real Prometheus with deploy/'s rules fires DrillFailed", p.alertsInPrometheus)
	t.Run("make demo's script drills the shop's database", p.demo)
}

// drillClient is a client of the cluster that knows drillerd's kinds.
func drillClient(t *testing.T, env *fixture.Env) client.Client {
	t.Helper()
	scheme := runtime.NewScheme()
	if err := drillsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.New(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// newProduction starts a PostgreSQL StatefulSet name in a new namespace
// prefix-<random> and returns it with its Ready pod.
func newProduction(t *testing.T, env *fixture.Env, prefix, name string) (*production, *corev1.Pod) {
	t.Helper()
	ns := env.Namespace(prefix)
	p := &production{env: env, ns: ns, pg: fixture.NewPostgres(ns, name), c: drillClient(t, env)}
	return p, env.CreatePostgres(p.pg)
}

func setUpProduction(t *testing.T, env *fixture.Env) *production {
	c := drillClient(t, env)
	ensureSlowClass(t, env)

	ns := env.Namespace("prod")
	pg := fixture.NewPostgres(ns, "orders")
	pod := env.CreatePostgres(pg)
	db := env.Connect(pod)
	env.Exec(db, `CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL)`)
	env.Exec(db, `INSERT INTO customers (name) SELECT 'customer ' || g FROM generate_series(1, 50) g`)
	env.CreateSnapshot(ns, "before-orders", pg.ClaimName(), nil)

	env.Exec(db, `CREATE TABLE orders (id serial PRIMARY KEY, customer int NOT NULL, note text, created_at timestamptz NOT NULL DEFAULT now())`)
	env.Exec(db, `CREATE INDEX orders_created_at ON orders (created_at)`)
	env.Exec(db, `INSERT INTO orders (customer, note) SELECT g % 50 + 1, repeat('x', 3000) FROM generate_series(1, 1200) g`)
	env.Exec(db, `CREATE TABLE audit_log (id serial PRIMARY KEY, created_at timestamptz NOT NULL)`)
	env.Exec(db, `CREATE EXTENSION dblink`) // what a check could reach other servers with
	env.Exec(db, `INSERT INTO audit_log (created_at) SELECT now() - interval '30 hours' FROM generate_series(1, 10)`)
	time.Sleep(1100 * time.Millisecond) // the nightly snapshot must be the newest by creation time
	env.CreateSnapshot(ns, "nightly", pg.ClaimName(), nil)
	return &production{env: env, ns: ns, pg: pg, c: c}
}

func ensureSlowClass(t *testing.T, env *fixture.Env) {
	binding := storagev1.VolumeBindingImmediate
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: slowRestoreClass},
		Provisioner:       nodeemu.DriverName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: &binding,
		Parameters:        map[string]string{nodeemu.ParameterProvisionDelay: slowRestoreDelay},
	}
	if _, err := env.Client.StorageV1().StorageClasses().Create(env.Ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// drill builds a RestoreDrill of the production claim.
type drill struct{ d *drillsv1.RestoreDrill }

func (p *production) newDrill(name string) *drill {
	return &drill{d: &drillsv1.RestoreDrill{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: name},
		Spec: drillsv1.RestoreDrillSpec{
			Source: drillsv1.SourceSpec{PersistentVolumeClaimName: p.pg.ClaimName()},
			Database: drillsv1.DatabaseSpec{
				Image: fixture.PostgresImage, DataSubPath: "pgdata", DatabaseName: fixture.DBName,
				Auth: drillsv1.AuthSpec{Mode: drillsv1.AuthTrust, User: fixture.DBUser},
			},
			Timeouts: drillsv1.Timeouts{Database: &metav1.Duration{Duration: 60 * time.Second}},
		},
	}}
}

func (b *drill) check(name, sql string, expect drillsv1.Expectation) *drill {
	b.d.Spec.Checks = append(b.d.Spec.Checks, drillsv1.Check{Name: name, SQL: sql, Expect: &expect})
	return b
}
func (b *drill) builtin(which drillsv1.Builtin) *drill {
	b.d.Spec.Checks = append(b.d.Spec.Checks, drillsv1.Check{Builtin: which})
	return b
}
func (b *drill) freshness(sql string) *drill {
	b.d.Spec.Freshness = &drillsv1.FreshnessSpec{SQL: sql}
	return b
}
func (b *drill) targets(rtoTarget, rpoTarget time.Duration) *drill {
	b.d.Spec.Targets = drillsv1.Targets{RTO: &metav1.Duration{Duration: rtoTarget}, RPO: &metav1.Duration{Duration: rpoTarget}}
	return b
}
func (b *drill) secretAuth(name, userKey, passwordKey string) *drill {
	b.d.Spec.Database.Auth = drillsv1.AuthSpec{Mode: drillsv1.AuthSecret, SecretRef: &drillsv1.SecretCredentials{Name: name, UsernameKey: userKey, PasswordKey: passwordKey}}
	return b
}
func (b *drill) keepOnFailure(d time.Duration) *drill {
	b.d.Spec.Sandbox.KeepOnFailure = &metav1.Duration{Duration: d}
	return b
}
func (b *drill) source(claim string) *drill {
	b.d.Spec.Source.PersistentVolumeClaimName = claim
	return b
}
func (b *drill) image(image string) *drill { b.d.Spec.Database.Image = image; return b }
func (b *drill) args(args ...string) *drill {
	b.d.Spec.Database.Args = args
	return b
}
func (b *drill) storageClass(name string) *drill {
	b.d.Spec.Sandbox.StorageClassName = &name
	return b
}
func (b *drill) successWindow(d time.Duration) *drill {
	b.d.Spec.Targets.SuccessWindow = &metav1.Duration{Duration: d}
	return b
}
func (b *drill) resources(r corev1.ResourceRequirements) *drill {
	b.d.Spec.Sandbox.Resources = r
	return b
}
func (b *drill) databaseTimeout(d time.Duration) *drill {
	b.d.Spec.Timeouts.Database = &metav1.Duration{Duration: d}
	return b
}

// run creates the drill, runs `drillerd run` and returns the finished run
// and the command's exit code. Afterwards it checks that no sandbox is
// left and that no source object changed.
func (p *production) run(t *testing.T, b *drill, args ...string) (*drillsv1.DrillRun, int) {
	t.Helper()
	return p.runAs(t, cluster.Kubeconfig, b, args...)
}

// runAs is run with the credentials of kubeconfig.
func (p *production) runAs(t *testing.T, kubeconfig string, b *drill, args ...string) (*drillsv1.DrillRun, int) {
	t.Helper()
	env := p.env
	if err := p.c.Create(env.Ctx, b.d); err != nil {
		t.Fatalf("creating RestoreDrill: %v", err)
	}
	t.Cleanup(func() { _ = p.c.Delete(context.Background(), b.d) })
	return p.runAgain(t, kubeconfig, b, args...)
}

// runAgain is runAs of a drill that exists already.
func (p *production) runAgain(t *testing.T, kubeconfig string, b *drill, args ...string) (*drillsv1.DrillRun, int) {
	t.Helper()
	sources := p.sources(t)

	run, code := drillerdRun(t, kubeconfig, p.ns, b.d, append([]string{"--timeout", "5m"}, args...)...)
	if run.Status.SandboxExpiry == nil {
		p.assertNoSandboxLeft(t, run)
	}
	sources.AssertUntouched(drillerdUsers...)
	return run, code
}

// drillerdRun runs `drillerd run -o json` for drill d in ns with the
// credentials of kubeconfig and extra args, logs the run's report, and
// returns the finished run and the command's exit code.
func drillerdRun(t *testing.T, kubeconfig, ns string, d *drillsv1.RestoreDrill, args ...string) (*drillsv1.DrillRun, int) {
	t.Helper()
	cmdArgs := append([]string{"run", "--kubeconfig", kubeconfig, "-n", ns, d.Name, "--output", "json"}, args...)
	cmd := exec.CommandContext(t.Context(), drillerd, cmdArgs...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	code := 0
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		code = exitErr.ExitCode()
	} else if err != nil {
		t.Fatalf("drillerd run: %v", err)
	}
	run := &drillsv1.DrillRun{}
	if err := json.Unmarshal(out, run); err != nil {
		t.Fatalf("drillerd run printed no DrillRun (exit %d): %v\nstdout: %s\nstderr: %s", code, err, out, stderr.String())
	}
	if done := "  Done: " + string(run.Status.Result); !strings.Contains(stderr.String(), done) {
		t.Errorf("drillerd run's progress on stderr does not end with %q:\n%s", done, stderr.String())
	}
	var text strings.Builder
	report.Text(&text, d, run)
	t.Logf("drill %s (%s): drillerd run exited %d:\n%s", d.Name, strings.Join(args, " "), code, text.String())
	return run, code
}

// sources takes the production claim's source objects (claim, volume,
// snapshots, contents, physical snapshots) for sources.AssertUntouched.
func (p *production) sources(t *testing.T) *fixture.Sources {
	t.Helper()
	return p.env.Sources(p.ns, []string{p.pg.ClaimName()})
}

func (p *production) assertNoSandboxLeft(t *testing.T, run *drillsv1.DrillRun) {
	t.Helper()
	env := p.env
	if !run.Status.SandboxRemoved && run.Status.SandboxNamespace != "" {
		t.Errorf("run is Done but its sandbox %s is not removed", run.Status.SandboxNamespace)
	}
	owned := restore.LabelRun + "=" + string(run.UID)
	nss, err := env.Client.CoreV1().Namespaces().List(env.Ctx, metav1.ListOptions{LabelSelector: owned})
	if err != nil || len(nss.Items) > 0 {
		t.Errorf("sandbox namespaces left: %v %v", nss, err)
	}
	if _, err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Get(env.Ctx, "drill-"+string(run.UID), metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("content copy drill-%s left (%v)", run.UID, err)
	}
	if run.Status.SandboxNamespace == "" {
		return
	}
	env.WaitFor(fixture.ShortTimeout, "restored PVs to be deleted", func(ctx context.Context) (bool, error) {
		pvs, err := env.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, pv := range pvs.Items {
			if pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == run.Status.SandboxNamespace {
				return false, errors.New("PV " + pv.Name + " of the sandbox still exists")
			}
		}
		return true, nil
	})
}

func (p *production) passingDrill(t *testing.T) {
	d := p.newDrill("orders-db").
		check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1000")}).
		builtin(drillsv1.BuiltinTablesReadable).
		builtin(drillsv1.BuiltinAmcheck).
		freshness("SELECT max(created_at) FROM orders").
		targets(15*time.Minute, 26*time.Hour).
		storageClass(slowRestoreClass)
	run, code := p.run(t, d)
	if code != 0 || run.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("exit %d, result %s (%s: %s), want 0 and Succeeded", code, run.Status.Result, run.Status.Reason, run.Status.Message)
	}
	// The SQL check runs in the drill's database; the built-ins in every
	// database of the copy.
	ran := map[string]bool{}
	for _, c := range run.Status.Checks {
		ran[c.Name+"@"+c.Database] = true
		if !c.Passed {
			t.Errorf("check %s in %s did not pass: %+v", c.Name, c.Database, c)
		}
	}
	for _, want := range []string{"orders-present@" + fixture.DBName, "TablesReadable@" + fixture.DBName, "TablesReadable@postgres", "Amcheck@" + fixture.DBName, "Amcheck@postgres"} {
		if !ran[want] {
			t.Errorf("no result for %s among %v", want, ran)
		}
	}
	if len(run.Status.Checks) != 5 {
		t.Errorf("checks = %+v, want 5 results", run.Status.Checks)
	}
	if db := run.Status.Database; db == nil || db.SystemIdentifier == "" || db.ServerVersion == "" || db.WriteAcceptedTime == nil || db.ReadsAnsweredTime == nil {
		t.Errorf("database %+v, want the copy's identity and when it answered reads and accepted a write", db)
	}
	if run.Status.Snapshot == nil || run.Status.Snapshot.Name != "nightly" {
		t.Errorf("restored snapshot %+v, want the newest, nightly", run.Status.Snapshot)
	}

	// The RTO is the real time: compare with what the node saw, from the
	// start of the restore to the database's first accepted connection.
	volume, err := nodeemu.ReadVolumeTruth(cluster.GroundTruth, restoredPV(t, p.env, run))
	if err != nil {
		t.Fatal(err)
	}
	pod, err := nodeemu.ReadPodTruth(cluster.GroundTruth, run.Status.SandboxNamespace, restore.DatabasePodName)
	if err != nil || len(pod.Processes) == 0 {
		t.Fatalf("pod ground truth: %+v %v", pod, err)
	}
	span := pod.Processes[0].FirstAccepting.Sub(volume.ProvisionStarted).Seconds()
	// The RTO is that span plus the checks and the write probe, which
	// drillerd times itself (from the start of Validating to the accepted
	// write): what remains is drillerd's own overhead, readiness detection
	// included.
	validating, ok := phaseStart(run, drillsv1.PhaseValidating)
	if !ok || run.Status.Database == nil || run.Status.Database.WriteAcceptedTime == nil {
		t.Fatalf("no Validating phase or accepted write in %+v", run.Status)
	}
	checksAndWrite := run.Status.Database.WriteAcceptedTime.Sub(validating).Seconds()
	if overhead := run.Status.RTO.Seconds - checksAndWrite - span; math.Abs(overhead) > 0.05*span {
		t.Errorf("RTO %.2fs minus %.2fs of checks and write probe is not within 5%% of the ground-truth span %.2fs", run.Status.RTO.Seconds, checksAndWrite, span)
	}
	if !run.Status.RTO.Met || ptr.Deref(run.Status.RTO.TargetSeconds, 0) != 900 {
		t.Errorf("RTO %+v, want met against 900s", run.Status.RTO)
	}
	rpo := run.Status.RPO
	if rpo == nil || rpo.Basis != drillsv1.RPOBasisData || rpo.DataSeconds == nil || rpo.SnapshotSeconds == nil || !rpo.Met {
		t.Fatalf("RPO %+v, want basis Data with both values, met", rpo)
	}
	if *rpo.DataSeconds < *rpo.SnapshotSeconds || *rpo.DataSeconds > *rpo.SnapshotSeconds+600 {
		t.Errorf("data RPO %.1fs should be a little older than the snapshot's age %.1fs", *rpo.DataSeconds, *rpo.SnapshotSeconds)
	}

	// The drill's status summarises the run.
	stored := &drillsv1.RestoreDrill{}
	if err := p.c.Get(p.env.Ctx, client.ObjectKeyFromObject(d.d), stored); err != nil {
		t.Fatal(err)
	}
	if stored.Status.LastRun == nil || stored.Status.LastRun.Name != run.Name || stored.Status.LastSuccessTime == nil {
		t.Errorf("RestoreDrill status %+v does not record the run", stored.Status)
	}
}

func (p *production) failingCheck(t *testing.T) {
	d := p.newDrill("wrong-count").check("orders-exact", "SELECT count(*) FROM orders", drillsv1.Expectation{Equals: ptr.To("999")})
	run, code := p.run(t, d)
	if code != 1 || run.Status.Result != drillsv1.ResultFailed || run.Status.Reason != "CheckFailed" {
		t.Fatalf("exit %d, %s/%s, want 1 and Failed/CheckFailed", code, run.Status.Result, run.Status.Reason)
	}
	if !strings.Contains(run.Status.Message, "orders-exact") || !strings.Contains(run.Status.Message, "1200") {
		t.Errorf("message %q does not name the check and the value", run.Status.Message)
	}
}

func (p *production) snapshotLackingTable(t *testing.T) {
	d := p.newDrill("old-snapshot").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")})
	run, code := p.run(t, d, "--snapshot", "before-orders")
	if code != 1 || run.Status.Result != drillsv1.ResultFailed || run.Status.Reason != "CheckFailed" {
		t.Fatalf("exit %d, %s/%s, want 1 and Failed/CheckFailed", code, run.Status.Result, run.Status.Reason)
	}
	if run.Status.Snapshot == nil || run.Status.Snapshot.Name != "before-orders" {
		t.Errorf("restored %+v, want the pinned before-orders", run.Status.Snapshot)
	}
	if !strings.Contains(run.Status.Message, `relation "orders" does not exist`) {
		t.Errorf("message %q does not say the table is missing", run.Status.Message)
	}
}

func (p *production) noReadySnapshot(t *testing.T) {
	d := p.newDrill("never-snapshotted").source("data-users-0").check("one", "SELECT 1", drillsv1.Expectation{Equals: ptr.To("1")})
	run, code := p.run(t, d)
	if code != 1 || run.Status.Result != drillsv1.ResultFailed || run.Status.Reason != "NoReadySnapshot" {
		t.Fatalf("exit %d, %s/%s, want 1 and Failed/NoReadySnapshot", code, run.Status.Result, run.Status.Reason)
	}
	if run.Status.SandboxNamespace != "" {
		t.Errorf("a sandbox %s was created without a snapshot", run.Status.SandboxNamespace)
	}
}

func (p *production) freshnessBeyondRPO(t *testing.T) {
	secret := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: "orders-db-credentials"},
		StringData: map[string]string{"user": fixture.DBUser, "password": fixture.DBPassword},
	}
	if _, err := p.env.Client.CoreV1().Secrets(p.ns).Create(p.env.Ctx, secret, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	d := p.newDrill("stale-audit").secretAuth(secret.Name, "user", "password").
		check("audit-present", "SELECT count(*) FROM audit_log", drillsv1.Expectation{Min: ptr.To("1")}).
		freshness("SELECT max(created_at) FROM audit_log").
		targets(15*time.Minute, 26*time.Hour)
	run, code := p.run(t, d)
	if code != 1 || run.Status.Result != drillsv1.ResultFailed || run.Status.Reason != "RPOTargetMissed" {
		t.Fatalf("exit %d, %s/%s, want 1 and Failed/RPOTargetMissed", code, run.Status.Result, run.Status.Reason)
	}
	if rpo := run.Status.RPO; rpo == nil || rpo.Basis != drillsv1.RPOBasisData || rpo.Met || rpo.Seconds < 30*3600 {
		t.Errorf("RPO %+v, want about 30h on basis Data, not met", rpo)
	}
}

func (p *production) imageCannotStart(t *testing.T) {
	d := p.newDrill("bad-image").image("mysql:8").databaseTimeout(15*time.Second).check("one", "SELECT 1", drillsv1.Expectation{Equals: ptr.To("1")})
	run, code := p.run(t, d)
	if code != 1 || run.Status.Result != drillsv1.ResultFailed || run.Status.Reason != "DatabaseFailed" {
		t.Fatalf("exit %d, %s/%s, want 1 and Failed/DatabaseFailed", code, run.Status.Result, run.Status.Reason)
	}
	if !strings.Contains(run.Status.Message, "ErrImagePull") && !strings.Contains(run.Status.Message, "ImagePullBackOff") {
		t.Errorf("message %q does not name the pod's reason", run.Status.Message)
	}
	start, ok := phaseStart(run, drillsv1.PhaseStartingDatabase)
	end, ok2 := phaseStart(run, drillsv1.PhaseTearingDown)
	if !ok || !ok2 || end.Sub(start) > 20*time.Second {
		t.Errorf("StartingDatabase lasted %s, want the 15s database timeout", end.Sub(start))
	}
}

func (p *production) sandboxRefused(t *testing.T) {
	// Requests above limits: the API server refuses the database pod as
	// invalid, however often it is retried.
	d := p.newDrill("refused").check("one", "SELECT 1", drillsv1.Expectation{Equals: ptr.To("1")}).
		resources(corev1.ResourceRequirements{
			Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("2")},
			Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")},
		})
	run, code := p.run(t, d) // run checks that no sandbox is left and the source is untouched
	if code != 2 || run.Status.Result != drillsv1.ResultError || run.Status.Reason != "APIError" {
		t.Fatalf("exit %d, %s/%s (%s): want exit 2, Error/APIError", code, run.Status.Result, run.Status.Reason, run.Status.Message)
	}
	if !strings.Contains(run.Status.Message, "Provisioning") || !strings.Contains(run.Status.Message, "limit") {
		t.Errorf("message %q: want the phase and the API server's refusal", run.Status.Message)
	}
	for _, ph := range run.Status.Phases {
		if ph.Name == drillsv1.PhaseRestoringVolume {
			t.Errorf("the run went on to %s after the refusal: %+v", ph.Name, run.Status.Phases)
		}
	}
}

func phaseStart(run *drillsv1.DrillRun, name drillsv1.Phase) (time.Time, bool) {
	for _, p := range run.Status.Phases {
		if p.Name == name {
			return p.StartTime.Time, true
		}
	}
	return time.Time{}, false
}

// restoredPV finds the PV the run's claim was bound to, from the ground
// truth (the PV itself is gone after teardown).
func restoredPV(t *testing.T, env *fixture.Env, run *drillsv1.DrillRun) string {
	t.Helper()
	entries, err := nodeemu.ListVolumeTruth(cluster.GroundTruth)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range entries {
		if v.Claim == run.Status.SandboxNamespace+"/"+restore.DataClaimName {
			return v.PersistentVolume
		}
	}
	t.Fatalf("no ground truth for the claim of sandbox %s", run.Status.SandboxNamespace)
	return ""
}

// sandboxLabels are the cluster's own labels the kept sandbox's drillerd
// adds to every sandbox object (--sandbox-labels).
var sandboxLabels = map[string]string{"team": "dba", "policy.example.com/exempt": "restore-drills"}

func (p *production) keepOnFailure(t *testing.T) {
	restartDrillerd(t, "--sandbox-labels=team=dba,policy.example.com/exempt=restore-drills")
	d := p.newDrill("kept").keepOnFailure(fixture.Scaled(15*time.Second)).check("orders-exact", "SELECT count(*) FROM orders", drillsv1.Expectation{Equals: ptr.To("1")})
	run, code := p.run(t, d)
	if code != 1 || run.Status.Reason != "CheckFailed" || run.Status.SandboxExpiry == nil || run.Status.SandboxRemoved {
		t.Fatalf("exit %d, reason %s, expiry %v, removed %v: want a failed run with a kept sandbox", code, run.Status.Reason, run.Status.SandboxExpiry, run.Status.SandboxRemoved)
	}
	ns, err := p.env.Client.CoreV1().Namespaces().Get(p.env.Ctx, run.Status.SandboxNamespace, metav1.GetOptions{})
	if err != nil || ns.DeletionTimestamp != nil {
		t.Fatalf("kept sandbox %s is not there for debugging: %v", run.Status.SandboxNamespace, err)
	}
	pod, err := p.env.Client.CoreV1().Pods(ns.Name).Get(p.env.Ctx, restore.DatabasePodName, metav1.GetOptions{})
	if err != nil || pod.Status.PodIP == "" {
		t.Fatalf("the kept sandbox's database is not running: %v", err)
	}
	t.Run("every sandbox object carries --sandbox-labels", func(t *testing.T) { p.assertSandboxLabels(t, run) })
	t.Run("nobody gets in", func(t *testing.T) { p.keptSandboxAdmitsNobody(t, run) })
	current := &drillsv1.DrillRun{}
	p.env.WaitFor(fixture.Scaled(60*time.Second), "the kept sandbox to be removed after keepOnFailure", func(ctx context.Context) (bool, error) {
		if err := p.c.Get(ctx, client.ObjectKeyFromObject(run), current); err != nil {
			return false, err
		}
		return current.Status.SandboxRemoved, nil
	})
	if time.Now().Before(run.Status.SandboxExpiry.Time) {
		t.Errorf("sandbox removed before its expiry %s", run.Status.SandboxExpiry.Time)
	}
	p.assertNoSandboxLeft(t, current)
}

// assertSandboxLabels: the objects of run's kept sandbox, each created (or,
// for the restored volume, labelled) by drillerd through the admission
// policies, carry sandboxLabels besides drillerd's ownership labels.
func (p *production) assertSandboxLabels(t *testing.T, run *drillsv1.DrillRun) {
	ns := run.Status.SandboxNamespace
	labelsOf := map[string]func() (map[string]string, error){
		"Namespace": func() (map[string]string, error) {
			o, err := p.env.Client.CoreV1().Namespaces().Get(p.env.Ctx, ns, metav1.GetOptions{})
			return o.GetLabels(), err
		},
		"Pod": func() (map[string]string, error) {
			o, err := p.env.Client.CoreV1().Pods(ns).Get(p.env.Ctx, restore.DatabasePodName, metav1.GetOptions{})
			return o.GetLabels(), err
		},
		"PersistentVolumeClaim": func() (map[string]string, error) {
			o, err := p.env.Client.CoreV1().PersistentVolumeClaims(ns).Get(p.env.Ctx, restore.DataClaimName, metav1.GetOptions{})
			return o.GetLabels(), err
		},
		"PersistentVolume": func() (map[string]string, error) {
			o, err := p.env.Client.CoreV1().PersistentVolumes().Get(p.env.Ctx, run.Status.VolumeName, metav1.GetOptions{})
			return o.GetLabels(), err
		},
		"Secret": func() (map[string]string, error) {
			o, err := p.env.Client.CoreV1().Secrets(ns).Get(p.env.Ctx, restore.TLSSecretName, metav1.GetOptions{})
			return o.GetLabels(), err
		},
		"VolumeSnapshot": func() (map[string]string, error) {
			o, err := p.env.Snapshots.SnapshotV1().VolumeSnapshots(ns).Get(p.env.Ctx, restore.SourceSnapshotName, metav1.GetOptions{})
			return o.GetLabels(), err
		},
		"VolumeSnapshotContent": func() (map[string]string, error) {
			o, err := p.env.Snapshots.SnapshotV1().VolumeSnapshotContents().Get(p.env.Ctx, "drill-"+string(run.UID), metav1.GetOptions{})
			return o.GetLabels(), err
		},
	}
	for kind, get := range labelsOf {
		labels, err := get()
		if err != nil {
			t.Errorf("%s of the kept sandbox: %v", kind, err)
			continue
		}
		for k, v := range sandboxLabels {
			if labels[k] != v {
				t.Errorf("%s: label %s=%q, want %q (--sandbox-labels)", kind, k, labels[k], v)
			}
		}
		if labels[restore.LabelRun] != string(run.UID) {
			t.Errorf("%s: labels %v lack the run's ownership label", kind, labels)
		}
	}
}

func (p *production) killedMidDrill(t *testing.T) {
	d := p.newDrill("interrupted").storageClass(slowRestoreClass).check("one", "SELECT 1", drillsv1.Expectation{Equals: ptr.To("1")})
	if err := p.c.Create(p.env.Ctx, d.d); err != nil {
		t.Fatal(err)
	}
	sources := p.sources(t)
	run := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: "interrupted-1"},
		Spec:       drillsv1.DrillRunSpec{DrillName: d.d.Name, Trigger: drillsv1.TriggerManual},
	}
	if err := p.c.Create(p.env.Ctx, run); err != nil {
		t.Fatal(err)
	}
	p.env.WaitFor(fixture.ShortTimeout, "the run to restore its volume", func(ctx context.Context) (bool, error) {
		err := p.c.Get(ctx, client.ObjectKeyFromObject(run), run)
		return err == nil && run.Status.Phase == drillsv1.PhaseRestoringVolume, err
	})
	daemon.Kill()
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	p.env.WaitFor(fixture.Scaled(90*time.Second), "the interrupted run to be Done", func(ctx context.Context) (bool, error) {
		err := p.c.Get(ctx, client.ObjectKeyFromObject(run), run)
		return err == nil && run.Status.Phase == drillsv1.PhaseDone, err
	})
	if run.Status.Result != drillsv1.ResultError || run.Status.Reason != "Interrupted" {
		t.Errorf("result %s/%s (%s), want Error/Interrupted", run.Status.Result, run.Status.Reason, run.Status.Message)
	}
	p.assertNoSandboxLeft(t, run)
	sources.AssertUntouched(drillerdUsers...)
}

func (p *production) scheduleWithTwoReplicas(t *testing.T) {
	// Only the two leader-electing replicas may run drills here.
	daemon.Stop()
	defer func() {
		if err := daemon.Start(); err != nil {
			t.Fatal(err)
		}
	}()
	var replicas []*fixture.Drillerd
	for i := range 2 {
		r := newDrillerd(fmt.Sprintf("replica-%d", i), daemon.Kubeconfig, fmt.Sprintf("%s.replica-%d", daemon.LogPath, i), "--leader-elect")
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
		replicas = append(replicas, r)
	}
	defer func() {
		for _, r := range replicas {
			r.Stop()
		}
	}()

	d := p.newDrill("every-minute").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")})
	d.d.Spec.Schedule = "* * * * *"
	if err := p.c.Create(p.env.Ctx, d.d); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.c.Delete(context.Background(), d.d) }()

	var runs []drillsv1.DrillRun
	p.env.WaitFor(fixture.Scaled(200*time.Second), "two scheduled runs to finish", func(ctx context.Context) (bool, error) {
		list := &drillsv1.DrillRunList{}
		if err := p.c.List(ctx, list, client.InNamespace(p.ns)); err != nil {
			return false, err
		}
		runs = runs[:0]
		done := 0
		for _, r := range list.Items {
			if r.Spec.DrillName == d.d.Name {
				runs = append(runs, r)
				if r.Status.Phase == drillsv1.PhaseDone {
					done++
				}
			}
		}
		return done >= 2, nil
	})
	ticks := map[time.Time]int{}
	for _, r := range runs {
		if r.Spec.Trigger != drillsv1.TriggerSchedule || r.Spec.ScheduledTime == nil {
			t.Errorf("run %s: trigger %s, scheduledTime %v", r.Name, r.Spec.Trigger, r.Spec.ScheduledTime)
			continue
		}
		tick := r.Spec.ScheduledTime.Time
		ticks[tick]++
		if tick.Second() != 0 || r.Name != fmt.Sprintf("%s-%d", d.d.Name, tick.Unix()) {
			t.Errorf("run %s for tick %s: want the tick's deterministic name", r.Name, tick)
		}
		if r.Status.Phase == drillsv1.PhaseDone && r.Status.Result != drillsv1.ResultSucceeded {
			t.Errorf("scheduled run %s: %s %s", r.Name, r.Status.Result, r.Status.Message)
		}
	}
	for tick, n := range ticks {
		if n != 1 {
			t.Errorf("tick %s has %d runs, want exactly 1", tick, n)
		}
	}
	// Only the leader ran drills: one replica's log has every verdict, the
	// other's none.
	var verdicts []int
	for _, r := range replicas {
		log, err := os.ReadFile(r.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		verdicts = append(verdicts, strings.Count(string(log), "\tverdict\t"))
	}
	if (verdicts[0] == 0) == (verdicts[1] == 0) {
		t.Errorf("verdicts per replica %v: want all from one replica, the leader", verdicts)
	}
	lease, err := p.env.Client.CoordinationV1().Leases("drillerd-system").Get(p.env.Ctx, "drillerd.drills.drillerd.dev", metav1.GetOptions{})
	if err != nil || ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
		t.Errorf("no leader holds the Lease: %v", err)
	}
	stored := &drillsv1.RestoreDrill{}
	if err := p.c.Get(p.env.Ctx, client.ObjectKeyFromObject(d.d), stored); err != nil {
		t.Fatal(err)
	}
	if stored.Status.NextScheduleTime == nil || stored.Status.LastRun == nil {
		t.Errorf("drill status %+v lacks nextScheduleTime or lastRun", stored.Status)
	}
	// Every minute from the first tick to the last has a run or a counted skip.
	var first, last time.Time
	for tick := range ticks {
		if first.IsZero() || tick.Before(first) {
			first = tick
		}
		if tick.After(last) {
			last = tick
		}
	}
	minutes := int(last.Sub(first)/time.Minute) + 1
	if accounted := int64(len(ticks)) + stored.Status.SkippedTicks["AlreadyRunning"]; accounted < int64(minutes) {
		t.Errorf("%d ticks from %s to %s, but only %d runs and %d skips", minutes, first, last, len(ticks), stored.Status.SkippedTicks["AlreadyRunning"])
	}
}

func (p *production) metricsSurviveRestart(t *testing.T) {
	pass := p.newDrill("metrics-pass").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")}).targets(15*time.Minute, 26*time.Hour)
	fail := p.newDrill("metrics-fail").check("orders-exact", "SELECT count(*) FROM orders", drillsv1.Expectation{Equals: ptr.To("1")})
	passed, _ := p.run(t, pass)
	failed, _ := p.run(t, fail)

	series := func(name, drill string, extra ...string) string {
		labels := []string{"drill=" + drill, "namespace=" + p.ns}
		return name + "{" + strings.Join(append(labels, extra...), ",") + "}"
	}
	want := map[string]float64{
		series("drillerd_drill_last_result", "metrics-pass"):                    1,
		series("drillerd_drill_last_result", "metrics-fail"):                    0,
		series("drillerd_drill_runs_total", "metrics-pass", "result=Succeeded"): 1,
		series("drillerd_drill_runs_total", "metrics-fail", "result=Failed"):    1,
		series("drillerd_drill_runs_total", "metrics-fail", "result=Succeeded"): 0,
		series("drillerd_drill_rto_seconds", "metrics-pass"):                    passed.Status.RTO.Seconds,
		series("drillerd_drill_rto_seconds", "metrics-fail"):                    failed.Status.RTO.Seconds,
		series("drillerd_drill_rpo_seconds", "metrics-pass"):                    passed.Status.RPO.Seconds,
		series("drillerd_drill_rto_target_seconds", "metrics-pass"):             900,
		series("drillerd_drill_rpo_target_seconds", "metrics-pass"):             93600,
		series("drillerd_drill_last_success_timestamp_seconds", "metrics-pass"): float64(passed.Status.CompletionTime.Unix()),
		series("drillerd_drill_last_run_timestamp_seconds", "metrics-fail"):     float64(failed.Status.CompletionTime.Unix()),
	}
	check := func(stage string) {
		got := scrape(t, daemon.Metrics)
		for k, v := range want {
			if g, ok := got[k]; !ok || g != v {
				t.Errorf("%s: %s = %v (present %v), want %v", stage, k, g, ok, v)
			}
		}
		if _, ok := got[series("drillerd_drill_last_success_timestamp_seconds", "metrics-fail")]; ok {
			t.Errorf("%s: a drill that never succeeded has a last-success time", stage)
		}
		if got[`drillerd_drill_phase_duration_seconds_count{phase=Validating}`] < 2 {
			t.Errorf("%s: phase histogram does not count the runs' Validating phases", stage)
		}
	}
	check("before the restart")
	daemon.Kill()
	if err := daemon.Start(); err != nil {
		t.Fatal(err)
	}
	p.env.WaitFor(fixture.ShortTimeout, "drillerd's metrics to be served again", func(ctx context.Context) (bool, error) {
		_, err := tryScrape(daemon.Metrics)
		return err == nil, err
	})
	check("after the restart")
}

// scrape reads /metrics into "name{label=value,...}" → value, labels sorted.
func scrape(t *testing.T, addr string) map[string]float64 {
	t.Helper()
	m, err := tryScrape(addr)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func tryScrape(addr string) (map[string]float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.Metric {
			var labels []string
			for _, l := range m.Label {
				labels = append(labels, l.GetName()+"="+l.GetValue())
			}
			sort.Strings(labels)
			key := name + "{" + strings.Join(labels, ",") + "}"
			switch {
			case m.Gauge != nil:
				out[key] = m.Gauge.GetValue()
			case m.Counter != nil:
				out[key] = m.Counter.GetValue()
			case m.Histogram != nil:
				out[name+"_count{"+strings.Join(labels, ",")+"}"] = float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return out, nil
}

func (p *production) httpAPI(t *testing.T) {
	env := p.env
	env.GrantRole(t, p.ns, "operator", "drill-runner",
		rbacv1.PolicyRule{APIGroups: []string{drillsv1.GroupVersion.Group}, Resources: []string{"drillruns"}, Verbs: []string{"create", "get"}})
	if _, err := env.Client.CoreV1().ServiceAccounts(p.ns).Create(env.Ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "intern"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	operator, intern := mintToken(t, env, p.ns, "operator", apiAudience), mintToken(t, env, p.ns, "intern", apiAudience)
	// Valid tokens of the same ServiceAccount, minted for someone else.
	operatorForAPIServer, operatorForGrafana := mintToken(t, env, p.ns, "operator"), mintToken(t, env, p.ns, "operator", "grafana")

	d := p.newDrill("http-drill").storageClass(slowRestoreClass).check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")})
	if err := p.c.Create(env.Ctx, d.d); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = p.c.Delete(context.Background(), d.d) }()

	// The API's certificate is self-signed here (no --tls-cert-file).
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	call := func(method, path, bearer string) (int, map[string]any, http.Header) {
		t.Helper()
		req, _ := http.NewRequestWithContext(env.Ctx, method, "https://"+daemon.API+path, nil)
		if bearer != "" {
			req.Header.Set("Authorization", "Bearer "+bearer)
		}
		resp, err := httpc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body := map[string]any{}
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Errorf("%s %s: the answer is not JSON: %v", method, path, err)
		}
		return resp.StatusCode, body, resp.Header
	}
	runs := "/api/v1/namespaces/" + p.ns + "/restoredrills/http-drill/runs"
	tests := []struct {
		name, token string
		want        int
	}{
		{"no token", "", http.StatusUnauthorized},
		{"invalid token", "not-a-token", http.StatusUnauthorized},
		{"a token for the API server's audience", operatorForAPIServer, http.StatusUnauthorized},
		{"a token for another audience", operatorForGrafana, http.StatusUnauthorized},
		{"no RBAC", intern, http.StatusForbidden},
	}
	for _, tt := range tests {
		if code, body, _ := call(http.MethodPost, runs, tt.token); code != tt.want || body["error"] == nil {
			t.Errorf("%s: %d %v, want %d with an error", tt.name, code, body, tt.want)
		}
	}
	if code, body, _ := call(http.MethodPost, runs+"?access_token="+operator, ""); code != http.StatusBadRequest || !strings.Contains(fmt.Sprint(body["error"]), "Authorization header") {
		t.Errorf("a token in the URL: %d %v, want 400 pointing to the Authorization header", code, body)
	}
	code, body, header := call(http.MethodPost, runs, operator)
	if code != http.StatusCreated || body["name"] == nil {
		t.Fatalf("operator: %d %v, want 201 with the run's name", code, body)
	}
	name := body["name"].(string)
	if loc := header.Get("Location"); loc != "/api/v1/namespaces/"+p.ns+"/drillruns/"+name {
		t.Errorf("Location %q", loc)
	}
	if code, body, _ := call(http.MethodPost, runs, operator); code != http.StatusConflict {
		t.Errorf("second request while the first run is in progress: %d %v, want 409", code, body)
	}
	if code, _, _ := call(http.MethodPost, "/api/v1/namespaces/"+p.ns+"/restoredrills/no-such-drill/runs", operator); code != http.StatusNotFound {
		t.Errorf("unknown drill: %d, want 404", code)
	}
	if code, body, _ := call(http.MethodGet, header.Get("Location"), operator); code != http.StatusOK || body["kind"] != "DrillRun" {
		t.Errorf("GET the run: %d %v", code, body)
	}
	if code, _, _ := call(http.MethodGet, header.Get("Location"), intern); code != http.StatusForbidden {
		t.Errorf("GET the run without RBAC: %d, want 403", code)
	}
	run := &drillsv1.DrillRun{}
	env.WaitFor(fixture.Scaled(90*time.Second), "the HTTP-triggered run to finish", func(ctx context.Context) (bool, error) {
		err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: name}, run)
		return err == nil && run.Status.Phase == drillsv1.PhaseDone, err
	})
	if run.Spec.Trigger != drillsv1.TriggerHTTP || run.Status.Result != drillsv1.ResultSucceeded {
		t.Errorf("run %s: trigger %s, result %s %s", name, run.Spec.Trigger, run.Status.Result, run.Status.Message)
	}
	if run.Annotations["drills.drillerd.dev/requested-by"] != "system:serviceaccount:"+p.ns+":operator" {
		t.Errorf("run does not record who asked for it: %v", run.Annotations)
	}
	p.assertNoSandboxLeft(t, run)
}

func (p *production) statusPage(t *testing.T) {
	env := p.env
	env.GrantRole(t, p.ns, "viewer", "drill-viewer",
		rbacv1.PolicyRule{APIGroups: []string{drillsv1.GroupVersion.Group}, Resources: []string{"restoredrills", "drillruns"}, Verbs: []string{"get", "list"}})
	viewer, stranger := mintToken(t, env, p.ns, "viewer", apiAudience), mintToken(t, env, p.ns, "default", apiAudience)
	viewerForAPIServer := mintToken(t, env, p.ns, "viewer")

	good := p.newDrill("page-pass").check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To("1")}).targets(15*time.Minute, 26*time.Hour)
	bad := p.newDrill("page-fail").check("orders-exact", "SELECT count(*) FROM orders", drillsv1.Expectation{Equals: ptr.To("7")})
	passed, _ := p.run(t, good)
	p.run(t, bad)

	site := "https://" + daemon.API
	b := newBrowser(t)
	if page := b.open(site + "/"); !strings.Contains(page, `<form id="login"`) || strings.Contains(page, "page-pass") {
		t.Errorf("without a token the page is not the login form, or shows drills:\n%s", page)
	}
	// Sign in as a person would: type the token into the form and press Enter.
	page := b.signIn(site, viewer)
	for _, want := range []string{
		p.ns + "/page-pass", p.ns + "/page-fail", "Signed in as system:serviceaccount:" + p.ns + ":viewer",
		`class="Succeeded">Succeeded`, `class="Failed">Failed (CheckFailed)`, "check orders-exact failed",
		passed.Name, rto.Human(passed.Status.RTO.Seconds) + " / 15m00s", "on demand",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if n := strings.Count(page, `class="waterfall"`); n < 2 {
		t.Errorf("the page draws %d phase waterfalls, want one per run", n)
	}
	// Each drill's one run: an RTO and an RPO chart with one point each and
	// the targets page-pass has, and a strip of one entry in its result.
	if n := strings.Count(page, `<svg class="chart rto-chart"`); n != 2 {
		t.Errorf("the page draws %d RTO charts, want one per drill", n)
	}
	if !strings.Contains(page, `<title>target 15m00s</title>`) || !strings.Contains(page, `<title>target 26h00m</title>`) {
		t.Error("page-pass's charts have no target lines")
	}
	for _, want := range []string{`<a class="cell Succeeded" role="listitem" href="/runs/` + p.ns + `/` + passed.Name + `"`, `<a class="cell Failed" role="listitem" href="/runs/` + p.ns + `/page-fail-`} {
		if !strings.Contains(page, want) {
			t.Errorf("the results strip lacks %s", want)
		}
	}
	// The viewer may read, not start runs: the button is disabled, and its
	// form, sent all the same, is refused by a SubjectAccessReview.
	if !strings.Contains(page, "system:serviceaccount:"+p.ns+":viewer may not create drillruns in namespace "+p.ns) || !strings.Contains(page, `<button type="submit" disabled="">Run now</button>`) {
		t.Error("the viewer, who may not create drillruns, is offered Run now")
	}
	if code, body := postRunNow(t, site, p.ns, "page-pass", viewer, formTokenIn(t, page)); code != http.StatusForbidden || !strings.Contains(body, "may not create drillruns.drills.drillerd.dev in namespace "+p.ns) {
		t.Errorf("the viewer's Run now: %d, want 403:\n%s", code, body)
	}
	for _, phase := range []string{"SelectingSnapshot", "Provisioning", "RestoringVolume", "StartingDatabase", "Validating", "TearingDown"} {
		if !strings.Contains(page, "<title>"+phase+": ") {
			t.Errorf("the waterfall has no bar for %s", phase)
		}
	}
	cookies := b.cookies(site)
	if len(cookies) != 1 || cookies[0].Name != "drillerd_token" || !cookies[0].HTTPOnly || !cookies[0].Secure || cookies[0].SameSite != "Strict" || cookies[0].Path != "/" ||
		cookies[0].Session || time.Until(time.Unix(int64(cookies[0].Expires), 0)) > time.Hour {
		t.Errorf("the browser keeps %+v, want one drillerd_token cookie: HttpOnly, Secure, SameSite=Strict, Path=/, expiring within the hour", cookies)
	}
	for _, u := range b.history() {
		if strings.Contains(u, viewer) || strings.Contains(u, "token=") {
			t.Errorf("the browser's history holds the token: %s", u)
		}
	}
	shot := filepath.Join(t.TempDir(), "page.png")
	b.screenshot(shot)
	if info, err := os.Stat(shot); err != nil || info.Size() < 10000 {
		t.Errorf("no screenshot of the page: %v", err)
	} else if out := os.Getenv("DRILLERD_SCREENSHOT"); out != "" {
		data, _ := os.ReadFile(shot)
		_ = os.WriteFile(out, data, 0o644)
	}
	if page := b.submit("form.inline button"); !strings.Contains(page, `<form id="login"`) || len(b.cookies(site)) != 0 {
		t.Errorf("signing out leaves the cookie %v or shows no login form:\n%s", b.cookies(site), page)
	}
	if page := b.open(site + "/"); strings.Contains(page, "page-pass") {
		t.Error("the page shows drills after signing out")
	}

	if hidden := b.signIn(site, stranger); strings.Contains(hidden, "page-pass") || !strings.Contains(hidden, "in namespaces you may not list are hidden") {
		t.Error("a user without RBAC sees the drills")
	}
	b.submit("form.inline button")
	if page := b.signIn(site, viewerForAPIServer); !strings.Contains(page, "--audience "+apiAudience) || strings.Contains(page, "page-pass") || len(b.cookies(site)) != 0 {
		t.Errorf("a token for the API server's audience signs in (cookies %v):\n%s", b.cookies(site), page)
	}
	if page := b.open(site + "/?token=" + viewer); !strings.Contains(page, "tokens in URLs are refused") || strings.Contains(page, "page-pass") || len(b.cookies(site)) != 0 {
		t.Errorf("a token in the URL is not refused:\n%s", page)
	}
	// Another site's form that posts a token to /login (login CSRF): the
	// browser sends Origin: null from a data: page, and drillerd refuses it.
	b.open(`data:text/html,<form method="post" action="` + site + `/login"><input id="token" name="token"></form>`)
	if page := b.typeAndEnter("#token", viewer); !strings.Contains(page, "refused: a POST here must come from this page") || len(b.cookies(site)) != 0 {
		t.Errorf("a cross-site login is not refused (cookies %v):\n%s", b.cookies(site), page)
	}

	// Someone who may start runs presses Run now: the run is created with
	// their name and the browser lands on its page, which links to the drill.
	env.GrantRole(t, p.ns, "runner", "drill-starter",
		rbacv1.PolicyRule{APIGroups: []string{drillsv1.GroupVersion.Group}, Resources: []string{"restoredrills", "drillruns"}, Verbs: []string{"get", "list"}},
		rbacv1.PolicyRule{APIGroups: []string{drillsv1.GroupVersion.Group}, Resources: []string{"drillruns"}, Verbs: []string{"create"}})
	b.signIn(site, mintToken(t, env, p.ns, "runner", apiAudience))
	runPage := b.submit("#" + p.ns + "-page-pass form.run-now button")
	name := regexp.MustCompile(`Run ` + regexp.QuoteMeta(p.ns) + `/(page-pass-http-[a-z0-9]+)`).FindStringSubmatch(runPage)
	if name == nil || !strings.Contains(runPage, `<a href="/drills/`+p.ns+`/page-pass">`) {
		t.Fatalf("Run now did not lead to the new run's page linking to its drill:\n%s", runPage)
	}
	started := &drillsv1.DrillRun{}
	p.env.WaitFor(fixture.Scaled(3*time.Minute), "the run started from the page to finish", func(ctx context.Context) (bool, error) {
		err := p.c.Get(ctx, client.ObjectKey{Namespace: p.ns, Name: name[1]}, started)
		return err == nil && started.Status.Phase == drillsv1.PhaseDone, err
	})
	if started.Spec.Trigger != drillsv1.TriggerHTTP || started.Annotations["drills.drillerd.dev/requested-by"] != "system:serviceaccount:"+p.ns+":runner" || started.Status.Result != drillsv1.ResultSucceeded {
		t.Errorf("the run from the page: trigger %s, requested by %q, %s; want HTTP, the runner, Succeeded", started.Spec.Trigger,
			started.Annotations["drills.drillerd.dev/requested-by"], started.Status.Result)
	}
	if drillPage := b.open(site + "/drills/" + p.ns + "/page-pass"); !strings.Contains(drillPage, `<a href="/runs/`+p.ns+`/`+name[1]+`">`) || !strings.Contains(drillPage, `<a href="/runs/`+p.ns+`/`+passed.Name+`">`) {
		t.Errorf("the drill's page does not link to both its runs:\n%s", drillPage)
	}
}

// formTokenIn is the form token of the first Run now form of a page.
func formTokenIn(t *testing.T, page string) string {
	t.Helper()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindStringSubmatch(page)
	if m == nil {
		t.Fatal("the page has no Run now form")
	}
	return m[1]
}

// postRunNow sends the Run now form of drill in ns as a browser on site
// would, with token in the Authorization header.
func postRunNow(t *testing.T, site, ns, drill, token, formToken string) (int, string) {
	t.Helper()
	httpc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequest(http.MethodPost, site+"/drills/"+ns+"/"+drill+"/runs", strings.NewReader("csrf="+url.QueryEscape(formToken)))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", site)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := httpc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// apiAudience is the audience drillerd's API accepts by default.
const apiAudience = "drillerd"

// mintToken is a token of ServiceAccount sa from the TokenRequest API, for
// audiences; none means the API server's own audience.
func mintToken(t *testing.T, env *fixture.Env, ns, sa string, audiences ...string) string {
	t.Helper()
	tr, err := env.Client.CoreV1().ServiceAccounts(ns).CreateToken(env.Ctx, sa, &authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return tr.Status.Token
}

// browserTimeout bounds each step of a browser session.
var browserTimeout = fixture.Scaled(60 * time.Second)

// browser is Debian's headless Chromium driven over the DevTools protocol
// on a pipe (--remote-debugging-pipe: commands on its fd 3, answers and
// events on its fd 4, each message JSON ended by a NUL byte), so that a test
// can type into the login form and press Enter as a person would.
type browser struct {
	t       *testing.T
	cmd     *exec.Cmd
	send    *os.File
	msgs    chan devtoolsMessage
	stderr  *strings.Builder
	nextID  int
	session string
	events  []devtoolsMessage // arrived while an answer was awaited
}

type devtoolsMessage struct {
	ID        int             `json:"id,omitempty"`
	Method    string          `json:"method,omitempty"`
	SessionID string          `json:"sessionId,omitempty"`
	Result    json.RawMessage `json:"result,omitempty"`
	Error     *struct {
		Message string `json:"message"`
	} `json:"error,omitempty"`
}

// browserCookie is a cookie as the browser keeps it.
type browserCookie struct {
	Name, Path, SameSite string
	Expires              float64
	HTTPOnly             bool `json:"httpOnly"`
	Secure, Session      bool
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	bin, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium is not installed (make deps installs Debian's chromium)")
	}
	commands, send, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	receive, answers, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	b := &browser{t: t, send: send, msgs: make(chan devtoolsMessage, 1024), stderr: &strings.Builder{}}
	b.cmd = exec.Command(bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--ignore-certificate-errors",
		"--remote-debugging-pipe", "--user-data-dir="+t.TempDir(), "about:blank")
	b.cmd.ExtraFiles = []*os.File{commands, answers} // fd 3 and 4
	b.cmd.Stderr = b.stderr
	if err := b.cmd.Start(); err != nil {
		t.Fatalf("chromium: %v", err)
	}
	commands.Close()
	answers.Close()
	go func() {
		defer close(b.msgs)
		r := bufio.NewReader(receive)
		for {
			data, err := r.ReadBytes(0)
			if err != nil {
				return
			}
			var m devtoolsMessage
			if json.Unmarshal(data[:len(data)-1], &m) == nil {
				b.msgs <- m
			}
		}
	}()
	t.Cleanup(func() {
		_ = b.command("", "Browser.close", nil, nil)
		send.Close()
		done := make(chan struct{})
		go func() { _ = b.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(browserTimeout):
			_ = b.cmd.Process.Kill()
			<-done
		}
		receive.Close()
	})
	var target struct {
		TargetID string `json:"targetId"`
	}
	b.do("", "Target.createTarget", map[string]any{"url": "about:blank"}, &target)
	var attached struct {
		SessionID string `json:"sessionId"`
	}
	b.do("", "Target.attachToTarget", map[string]any{"targetId": target.TargetID, "flatten": true}, &attached)
	b.session = attached.SessionID
	b.do(b.session, "Page.enable", nil, nil)
	b.do(b.session, "Emulation.setDeviceMetricsOverride", map[string]any{"width": 1200, "height": 1600, "deviceScaleFactor": 1, "mobile": false}, nil)
	return b
}

// command sends one DevTools command and waits for its answer; events that
// arrive meanwhile are kept for awaitEvent.
func (b *browser) command(session, method string, params, result any) error {
	if params == nil {
		params = map[string]any{}
	}
	b.nextID++
	msg := map[string]any{"id": b.nextID, "method": method, "params": params}
	if session != "" {
		msg["sessionId"] = session
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if _, err := b.send.Write(append(data, 0)); err != nil {
		return fmt.Errorf("%s: %w", method, err)
	}
	timeout := time.After(browserTimeout)
	for {
		select {
		case m, ok := <-b.msgs:
			if !ok {
				return fmt.Errorf("%s: chromium exited: %s", method, b.stderr)
			}
			if m.ID != b.nextID {
				if m.Method != "" {
					b.events = append(b.events, m)
				}
				continue
			}
			if m.Error != nil {
				return fmt.Errorf("%s: %s", method, m.Error.Message)
			}
			if result != nil {
				return json.Unmarshal(m.Result, result)
			}
			return nil
		case <-timeout:
			return fmt.Errorf("%s: no answer within %s", method, browserTimeout)
		}
	}
}

func (b *browser) do(session, method string, params, result any) {
	b.t.Helper()
	if err := b.command(session, method, params, result); err != nil {
		b.t.Fatal(err)
	}
}

// awaitEvent waits for the page's event method, kept or still to come.
func (b *browser) awaitEvent(method string) {
	b.t.Helper()
	for i, m := range b.events {
		if m.Method == method && m.SessionID == b.session {
			b.events = b.events[i+1:]
			return
		}
	}
	b.events = nil
	timeout := time.After(browserTimeout)
	for {
		select {
		case m, ok := <-b.msgs:
			if !ok {
				b.t.Fatalf("chromium exited: %s", b.stderr)
			}
			if m.Method == method && m.SessionID == b.session {
				return
			}
		case <-timeout:
			b.t.Fatalf("no %s within %s", method, browserTimeout)
		}
	}
}

// open loads url and returns its HTML.
func (b *browser) open(url string) string {
	b.t.Helper()
	b.events = nil
	var nav struct {
		ErrorText string `json:"errorText"`
	}
	b.do(b.session, "Page.navigate", map[string]any{"url": url}, &nav)
	if nav.ErrorText != "" {
		b.t.Fatalf("opening %s: %s", url, nav.ErrorText)
	}
	b.awaitEvent("Page.loadEventFired")
	return b.html()
}

// signIn opens the login form of site, types token and presses Enter.
func (b *browser) signIn(site, token string) string {
	b.t.Helper()
	b.open(site + "/login")
	return b.typeAndEnter("#token", token)
}

// typeAndEnter types text into the field selector names and presses Enter,
// which submits its form; it returns the HTML of the page that follows.
func (b *browser) typeAndEnter(selector, text string) string {
	b.t.Helper()
	b.do(b.session, "DOM.focus", map[string]any{"nodeId": b.node(selector)}, nil)
	b.do(b.session, "Input.insertText", map[string]any{"text": text}, nil)
	return b.pressEnter()
}

// submit focuses the button selector names and presses Enter.
func (b *browser) submit(selector string) string {
	b.t.Helper()
	b.do(b.session, "DOM.focus", map[string]any{"nodeId": b.node(selector)}, nil)
	return b.pressEnter()
}

func (b *browser) pressEnter() string {
	b.t.Helper()
	b.events = nil
	enter := func(kind string) map[string]any {
		e := map[string]any{"type": kind, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13, "nativeVirtualKeyCode": 13}
		if kind == "keyDown" {
			e["text"] = "\r"
		}
		return e
	}
	b.do(b.session, "Input.dispatchKeyEvent", enter("keyDown"), nil)
	b.do(b.session, "Input.dispatchKeyEvent", enter("keyUp"), nil)
	b.awaitEvent("Page.loadEventFired")
	return b.html()
}

// node is the DOM node selector names in the current page.
func (b *browser) node(selector string) int {
	b.t.Helper()
	var doc struct {
		Root struct {
			NodeID int `json:"nodeId"`
		} `json:"root"`
	}
	b.do(b.session, "DOM.getDocument", nil, &doc)
	var found struct {
		NodeID int `json:"nodeId"`
	}
	b.do(b.session, "DOM.querySelector", map[string]any{"nodeId": doc.Root.NodeID, "selector": selector}, &found)
	if found.NodeID == 0 {
		b.t.Fatalf("the page has no %s:\n%s", selector, b.html())
	}
	return found.NodeID
}

// html is the current page's DOM.
func (b *browser) html() string {
	b.t.Helper()
	var doc struct {
		Root struct {
			NodeID int `json:"nodeId"`
		} `json:"root"`
	}
	b.do(b.session, "DOM.getDocument", nil, &doc)
	var out struct {
		OuterHTML string `json:"outerHTML"`
	}
	b.do(b.session, "DOM.getOuterHTML", map[string]any{"nodeId": doc.Root.NodeID}, &out)
	return out.OuterHTML
}

// cookies are those the browser would send to site.
func (b *browser) cookies(site string) []browserCookie {
	b.t.Helper()
	var out struct{ Cookies []browserCookie }
	b.do(b.session, "Network.getCookies", map[string]any{"urls": []string{site + "/"}}, &out)
	return out.Cookies
}

// history are the URLs of the tab's history.
func (b *browser) history() []string {
	b.t.Helper()
	var out struct {
		Entries []struct{ URL string }
	}
	b.do(b.session, "Page.getNavigationHistory", nil, &out)
	var urls []string
	for _, e := range out.Entries {
		urls = append(urls, e.URL)
	}
	return urls
}

// screenshot saves the page as a PNG.
func (b *browser) screenshot(path string) {
	b.t.Helper()
	var out struct{ Data []byte }
	b.do(b.session, "Page.captureScreenshot", map[string]any{"format": "png"}, &out)
	if err := os.WriteFile(path, out.Data, 0o644); err != nil {
		b.t.Fatal(err)
	}
}
