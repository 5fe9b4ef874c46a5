package faults_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/fixture"
)

// Named timeouts of this package (DRILLERD_E2E_TIMEOUT_SCALE scales them).
var (
	// cleanupTimeout: what is left of an interrupted run's sandbox is gone
	// this long after drillerd is back (or the API server answers again).
	cleanupTimeout = fixture.Scaled(60 * time.Second)
	// drillTimeout bounds one whole drill.
	drillTimeout = fixture.Scaled(3 * time.Minute)
	// holdTimeout bounds how long runs take to reach the instants a test
	// stops them at.
	holdTimeout = fixture.Scaled(3 * time.Minute)
)

// drillsCreated counts the DrillRuns this package's tests created, each a
// drill against the production database (the figure make test reports).
var drillsCreated atomic.Int64

// productionsFinished counts the production databases whose sources were
// compared after the last drill of their test (finish).
var productionsFinished atomic.Int64

// production is the database every drill of a test restores: a
// PostgreSQL StatefulSet with an orders table and two snapshots, "older"
// and "nightly" (the newest).
type production struct {
	env *fixture.Env
	ns  string
	pg  *fixture.PostgresStatefulSet
	c   client.WithWatch
	// whole are the sources as they were before the test's first drill,
	// for finish.
	whole *fixture.Sources
}

func setUpProduction(t *testing.T) *production {
	t.Helper()
	env := fixture.New(t, cluster)
	scheme := runtime.NewScheme()
	if err := drillsv1.AddToScheme(scheme); err != nil {
		t.Fatal(err)
	}
	c, err := client.NewWithWatch(env.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	ns := env.Namespace("faults")
	pg := fixture.NewPostgres(ns, "orders")
	db := env.Connect(env.CreatePostgres(pg))
	env.Exec(db, `CREATE TABLE orders (id serial PRIMARY KEY, note text, created_at timestamptz NOT NULL DEFAULT now())`)
	env.Exec(db, `INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1, 1000) g`)
	older := env.CreateSnapshot(ns, "older", pg.ClaimName(), nil)
	env.Exec(db, `INSERT INTO orders (note) SELECT 'order ' || g FROM generate_series(1001, 1200) g`)
	// The nightly snapshot must be the newest by creation time, which
	// snapshots record to the second.
	cut := older.Status.CreationTime.Time
	env.WaitFor(fixture.ShortTimeout, "the second of the older snapshot's cut to pass", func(context.Context) (bool, error) {
		return time.Now().Truncate(time.Second).After(cut), nil
	})
	env.CreateSnapshot(ns, "nightly", pg.ClaimName(), nil)
	p := &production{env: env, ns: ns, pg: pg, c: c}
	p.whole = p.sources(t)
	return p
}

// finish ends a test: once every drill of it is over, whatever faults they
// went through, a fresh drill of the production database passes (a
// restore from its newest snapshot), and none of its source objects or
// physical snapshots changed, nor did drillerd write to one, since before
// the test's first drill. A drillerd must be running.
func (p *production) finish(t *testing.T) {
	t.Helper()
	p.passes(t, p.create(t, p.newDrill("fresh")), "fresh")
	p.whole.AssertUntouched(drillerdUser)
	productionsFinished.Add(1)
}

// sources takes the production claim's source objects and physical
// snapshots (hashed) for AssertUntouched.
func (p *production) sources(t *testing.T) *fixture.Sources {
	t.Helper()
	return p.env.Sources(p.ns, []string{p.pg.ClaimName()}, fixture.HashPhysicalSnapshots())
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
			Checks:   []drillsv1.Check{{Name: "orders-present", SQL: "SELECT count(*) FROM orders", Expect: &drillsv1.Expectation{Min: ptr.To("1000")}}},
			Targets:  drillsv1.Targets{RTO: &metav1.Duration{Duration: 15 * time.Minute}, RPO: &metav1.Duration{Duration: 26 * time.Hour}},
			Timeouts: drillsv1.Timeouts{Database: &metav1.Duration{Duration: 2 * time.Minute}},
		},
	}}
}

// create creates the RestoreDrill and deletes it when the test ends.
func (p *production) create(t *testing.T, b *drill) *drillsv1.RestoreDrill {
	t.Helper()
	if err := p.c.Create(p.env.Ctx, b.d); err != nil {
		t.Fatalf("creating RestoreDrill %s: %v", b.d.Name, err)
	}
	t.Cleanup(func() { _ = p.c.Delete(context.Background(), b.d) })
	return b.d
}

// startRun creates a DrillRun of drill (trigger Manual), as kubectl create
// would; snapshot pins a snapshot when not empty.
func (p *production) startRun(t *testing.T, drill *drillsv1.RestoreDrill, name, snapshot string) *drillsv1.DrillRun {
	t.Helper()
	run := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: name},
		Spec:       drillsv1.DrillRunSpec{DrillName: drill.Name, Trigger: drillsv1.TriggerManual, SnapshotName: snapshot},
	}
	if err := p.c.Create(p.env.Ctx, run); err != nil {
		t.Fatalf("creating DrillRun %s: %v", name, err)
	}
	drillsCreated.Add(1)
	return run
}

// get reads a run.
func (p *production) get(ctx context.Context, run *drillsv1.DrillRun) (*drillsv1.DrillRun, error) {
	got := &drillsv1.DrillRun{}
	err := p.c.Get(ctx, client.ObjectKeyFromObject(run), got)
	return got, err
}

// waitDone waits until a run is Done and returns it.
func (p *production) waitDone(t *testing.T, run *drillsv1.DrillRun, timeout time.Duration) *drillsv1.DrillRun {
	t.Helper()
	var got *drillsv1.DrillRun
	p.env.WaitFor(timeout, "run "+run.Name+" to be Done", func(ctx context.Context) (bool, error) {
		assertNoneCrashed(t)
		var err error
		got, err = p.get(ctx, run)
		if err != nil {
			return false, err
		}
		return got.Status.Phase == drillsv1.PhaseDone, fmt.Errorf("phase %s", got.Status.Phase)
	})
	return got
}

// passes runs drill once more and checks that it passes: the next drill
// after a fault.
func (p *production) passes(t *testing.T, drill *drillsv1.RestoreDrill, name string) *drillsv1.DrillRun {
	t.Helper()
	run := p.waitDone(t, p.startRun(t, drill, name, ""), drillTimeout)
	if run.Status.Result != drillsv1.ResultSucceeded {
		t.Errorf("the next drill %s: %s/%s (%s), want Succeeded", run.Name, run.Status.Result, run.Status.Reason, run.Status.Message)
	}
	p.assertSandboxGone(t, run)
	return run
}

// assertSandboxGone waits, at most cleanupTimeout, until nothing of a run's
// sandbox remains: its namespace, content copy, VolumeSnapshots and
// restored volume.
func (p *production) assertSandboxGone(t *testing.T, run *drillsv1.DrillRun) {
	t.Helper()
	p.env.WaitFor(cleanupTimeout, "the sandbox of run "+run.Name+" to be gone", func(ctx context.Context) (bool, error) {
		err := p.sandboxLeft(ctx, run)
		return err == nil, err
	})
}

// sandboxLeft names what remains of a run's sandbox, or returns nil.
func (p *production) sandboxLeft(ctx context.Context, run *drillsv1.DrillRun) error {
	env := p.env
	owned := metav1.ListOptions{LabelSelector: restore.LabelRun + "=" + string(run.UID)}
	sandbox := restore.NamespaceName(run.Spec.DrillName, string(run.UID))
	var left []string
	nss, err := env.Client.CoreV1().Namespaces().List(ctx, owned)
	if err != nil {
		return err
	}
	for _, ns := range nss.Items {
		left = append(left, "namespace "+ns.Name)
	}
	if _, err := env.Client.CoreV1().Namespaces().Get(ctx, sandbox, metav1.GetOptions{}); !apierrors.IsNotFound(err) && !slices.Contains(left, "namespace "+sandbox) {
		left = append(left, fmt.Sprintf("namespace %s (%v)", sandbox, err))
	}
	contents, err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().List(ctx, owned)
	if err != nil {
		return err
	}
	for _, c := range contents.Items {
		left = append(left, "content "+c.Name)
	}
	if _, err := env.Snapshots.SnapshotV1().VolumeSnapshotContents().Get(ctx, "drill-"+string(run.UID), metav1.GetOptions{}); !apierrors.IsNotFound(err) && len(contents.Items) == 0 {
		left = append(left, fmt.Sprintf("content drill-%s (%v)", run.UID, err))
	}
	snaps, err := env.Snapshots.SnapshotV1().VolumeSnapshots("").List(ctx, owned)
	if err != nil {
		return err
	}
	for _, s := range snaps.Items {
		left = append(left, "VolumeSnapshot "+s.Namespace+"/"+s.Name)
	}
	pvs, err := env.Client.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	for _, pv := range pvs.Items {
		if pv.Labels[restore.LabelRun] == string(run.UID) || pv.Spec.ClaimRef != nil && pv.Spec.ClaimRef.Namespace == sandbox {
			left = append(left, fmt.Sprintf("PersistentVolume %s (%s)", pv.Name, pv.Status.Phase))
		}
	}
	if len(left) > 0 {
		return errors.New(strings.Join(left, ", "))
	}
	return nil
}

// holdFinalizer is a finalizer no controller removes: it keeps whatever
// carries it, and its namespace Terminating, until the test removes it.
const holdFinalizer = "faults.e2e.drillerd.dev/hold"

// annotateDatabasePods makes the cluster's admission (a
// MutatingAdmissionPolicy) add annotations to every pod drillerd creates
// for drill: the node emulator's fault knobs, as a cluster's own webhooks
// would add theirs.
func annotateDatabasePods(t *testing.T, env *fixture.Env, drill string, annotations map[string]string) {
	t.Helper()
	var fields []string
	for k, v := range annotations {
		fields = append(fields, fmt.Sprintf("%q: %q", k, v))
	}
	slices.Sort(fields)
	probe := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default", Labels: map[string]string{restore.LabelDrill: drill}},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: fixture.PostgresImage}}},
	}
	admit(t, env, "annotate-pods-of-"+drill, drill, "pods",
		"Object{metadata: Object.metadata{annotations: {"+strings.Join(fields, ", ")+"}}}",
		func(ctx context.Context) (bool, error) {
			got, err := env.Client.CoreV1().Pods(probe.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				return false, err
			}
			for k, v := range annotations {
				if got.Annotations[k] != v {
					return false, nil
				}
			}
			return true, nil
		})
}

// holdSandboxesOf makes the cluster's admission give every ConfigMap
// drillerd creates for drill holdFinalizer: the sandbox namespace stays
// Terminating until releaseSandboxesOf.
func holdSandboxesOf(t *testing.T, env *fixture.Env, drill string) {
	t.Helper()
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: "default", Labels: map[string]string{restore.LabelDrill: drill}}}
	admit(t, env, "hold-sandboxes-of-"+drill, drill, "configmaps",
		fmt.Sprintf(`Object{metadata: Object.metadata{finalizers: [%q]}}`, holdFinalizer),
		func(ctx context.Context) (bool, error) {
			got, err := env.Client.CoreV1().ConfigMaps(probe.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
			if err != nil {
				return false, err
			}
			return slices.Contains(got.Finalizers, holdFinalizer), nil
		})
	t.Cleanup(func() { releaseSandboxesOf(t, env, drill) })
}

// releaseSandboxesOf removes holdFinalizer from the ConfigMaps of drill's
// sandboxes, as whoever owns a forgotten finalizer does in the end.
func releaseSandboxesOf(t *testing.T, env *fixture.Env, drill string) {
	t.Helper()
	list, err := env.Client.CoreV1().ConfigMaps("").List(context.Background(), metav1.ListOptions{LabelSelector: restore.LabelDrill + "=" + drill})
	if err != nil {
		t.Errorf("listing held ConfigMaps: %v", err)
		return
	}
	for _, cm := range list.Items {
		if !slices.Contains(cm.Finalizers, holdFinalizer) {
			continue
		}
		patch := []byte(`{"metadata":{"finalizers":null}}`)
		if _, err := env.Client.CoreV1().ConfigMaps(cm.Namespace).Patch(context.Background(), cm.Name, types.MergePatchType, patch, metav1.PatchOptions{}); err != nil && !apierrors.IsNotFound(err) {
			t.Errorf("releasing ConfigMap %s/%s: %v", cm.Namespace, cm.Name, err)
		}
	}
}

// admit installs a MutatingAdmissionPolicy that applies expression to
// every resource created with drillerd's label of drill, waits until
// applied says the API server applies it (a dry-run create), and removes
// it when the test ends.
func admit(t *testing.T, env *fixture.Env, name, drill, resource, expression string, applied func(context.Context) (bool, error)) {
	t.Helper()
	name = "faults-" + name
	env.MutateOnCreate(t, name, resource,
		admissionregistrationv1.MatchResources{ObjectSelector: &metav1.LabelSelector{MatchLabels: map[string]string{restore.LabelDrill: drill}}},
		expression)
	env.WaitFor(fixture.ShortTimeout, "the API server to apply the MutatingAdmissionPolicy "+name, applied)
}
