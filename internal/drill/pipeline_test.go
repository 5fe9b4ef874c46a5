package drill

import (
	"context"
	"crypto/x509"
	"errors"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/verdict"
)

func TestPipelineIsEveryPhaseOnceInOrder(t *testing.T) {
	want := []drillsv1.Phase{drillsv1.PhasePending, drillsv1.PhaseSelectingSnapshot, drillsv1.PhaseProvisioning,
		drillsv1.PhaseRestoringVolume, drillsv1.PhaseStartingDatabase, drillsv1.PhaseValidating, drillsv1.PhaseTearingDown, drillsv1.PhaseDone}
	if len(pipeline) != len(want) {
		t.Fatalf("pipeline has %d stages, want %d", len(pipeline), len(want))
	}
	for i, p := range want {
		if pipeline[i].phase != p || pipeline[i].step == nil {
			t.Errorf("stage %d is %s, want %s with a step", i, pipeline[i].phase, p)
		}
		if got := stageOf(p); got != i {
			t.Errorf("stageOf(%s) = %d, want %d", p, got, i)
		}
	}
	if stageOf("") != 0 || stageOf("Unknown") != -1 {
		t.Errorf("a new run must start at Pending and an unknown phase be refused")
	}
}

// TestADrillFromStartToFinish drives one run through the whole pipeline,
// playing the cluster's part between reconciles: the snapshot controller
// readies the copy, the PV controller binds the claim, the kubelet starts
// the database.
func TestADrillFromStartToFinish(t *testing.T) {
	drill := ordersDrill().Builtin(drillsv1.BuiltinTablesReadable).Freshness("SELECT max(created_at) FROM orders").
		Targets(15*time.Minute, 26*time.Hour).Obj()
	run := newRun("r1").Trigger(drillsv1.TriggerCLI).Obj()
	writes := 0
	funcs := interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
		if _, ok := obj.(*drillsv1.DrillRun); ok {
			writes++ // the test plays the kubelet and the PV controller with this client too
		}
		return c.SubResource(sub).Update(ctx, obj, opts...)
	}}
	e := newEngine(t, funcs, append(source(), drill, run)...)
	db := &fakeChecker{clock: e.clock, took: 3 * time.Second, newest: t0.Add(-2 * time.Hour), tables: ordersTable,
		read: 5 << 20, readBytes: 300 << 20, dbBytes: 512 << 20}
	e.r.Database = db.connect
	ns := sandboxOf(run)

	res := e.mustReconcile("r1")
	if got := e.run("r1"); got.Status.Phase != drillsv1.PhaseRestoringVolume || res.RequeueAfter == 0 {
		t.Fatalf("after the first reconcile: phase %s, requeue %s; want waiting in RestoringVolume", got.Status.Phase, res.RequeueAfter)
	}
	copyOf := &snapshotv1.VolumeSnapshot{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: restore.SourceSnapshotName}, copyOf); err != nil {
		t.Fatalf("the sandbox snapshot was not created: %v", err)
	}
	// The run's credentials: the database's half in the sandbox, the
	// client's key nowhere but in the reconciler.
	tlsSecret := &corev1.Secret{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: restore.TLSSecretName}, tlsSecret); err != nil {
		t.Fatalf("the sandbox's TLS Secret was not created: %v", err)
	}
	hba := &corev1.ConfigMap{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: restore.HBAConfigMapName}, hba); err != nil {
		t.Fatal(err)
	}
	access, ok := e.r.access.get(run)
	if !ok || !strings.Contains(hba.Data["pg_ident.conf"], `"`+access.CheckRole+`"`) ||
		!strings.Contains(hba.Data["pg_ident.conf"], `"`+access.Certificates.ClientName+`"`) {
		t.Fatalf("access %+v held %v; pg_ident.conf %q must map its client certificate to its check role", access, ok, hba.Data["pg_ident.conf"])
	}

	// The claim waits for its snapshot: a provisioner would refuse a claim
	// of a snapshot not ready yet and look again only after a while.
	claimKey := types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}
	if err := e.c.Get(context.Background(), claimKey, &corev1.PersistentVolumeClaim{}); !apierrors.IsNotFound(err) {
		t.Fatalf("the claim exists before its snapshot is ready (%v)", err)
	}
	copyOf.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptrTo(true)}
	e.update(copyOf)
	e.mustReconcile("r1")
	e.clock.Step(20 * time.Second) // the restore takes 20s
	claim := &corev1.PersistentVolumeClaim{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}, claim); err != nil {
		t.Fatal(err)
	}
	claim.Spec.VolumeName = "pv-restored"
	e.update(claim)
	claim.Status.Phase = corev1.ClaimBound
	claim.Status.Capacity = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}
	e.updateStatus(claim)
	e.mustReconcile("r1")
	if got := e.run("r1"); got.Status.Phase != drillsv1.PhaseStartingDatabase || got.Status.VolumeName != "pv-restored" {
		t.Fatalf("phase %s, volume %q; want StartingDatabase with the restored volume recorded", got.Status.Phase, got.Status.VolumeName)
	}

	e.clock.Step(5 * time.Second) // the database takes 5s to start
	pod := &corev1.Pod{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); err != nil {
		t.Fatal(err)
	}
	pod.Status = readyPod("127.0.3.4")
	e.updateStatus(pod)
	e.mustReconcile("r1")
	if got := e.run("r1"); got.Status.Phase != drillsv1.PhaseTearingDown || got.Status.Result != drillsv1.ResultSucceeded {
		t.Fatalf("phase %s, result %s; want the verdict given and teardown waiting for the deletions", got.Status.Phase, got.Status.Result)
	}
	e.mustReconcile("r1") // the namespace's deletion wakes the run

	got := e.run("r1")
	if got.Status.Result != drillsv1.ResultSucceeded || got.Status.Phase != drillsv1.PhaseDone {
		t.Fatalf("result %s (%s: %s) in %s, want Succeeded and Done", got.Status.Result, got.Status.Reason, got.Status.Message, got.Status.Phase)
	}
	want := []drillsv1.Phase{drillsv1.PhaseSelectingSnapshot, drillsv1.PhaseProvisioning, drillsv1.PhaseRestoringVolume,
		drillsv1.PhaseStartingDatabase, drillsv1.PhaseValidating, drillsv1.PhaseTearingDown}
	if g := phases(got); !equalPhases(g, want) {
		t.Errorf("timeline %v, want %v", g, want)
	}
	// RTO: restore 20s + start 5s + checks 3s, from the start of provisioning.
	if got.Status.RTO == nil || got.Status.RTO.Seconds != 28 || !got.Status.RTO.Met {
		t.Errorf("RTO %+v, want 28s, met", got.Status.RTO)
	}
	if got.Status.RPO == nil || got.Status.RPO.Basis != drillsv1.RPOBasisData || got.Status.RPO.Seconds != 7200 {
		t.Errorf("RPO %+v, want 2h on the data basis", got.Status.RPO)
	}
	if !got.Status.SandboxRemoved || !got.Status.Recorded || got.Status.CompletionTime == nil {
		t.Errorf("removed %v, recorded %v, completed %v: want the sandbox gone and the run counted", got.Status.SandboxRemoved, got.Status.Recorded, got.Status.CompletionTime)
	}
	if err := e.c.Get(context.Background(), types.NamespacedName{Name: ns}, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("sandbox namespace still there: %v", err)
	}
	stored := &drillsv1.RestoreDrill{}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(drill), stored); err != nil {
		t.Fatal(err)
	}
	if stored.Status.LastRun == nil || stored.Status.LastRun.Name != "r1" || stored.Status.LastSuccessTime == nil {
		t.Errorf("drill status %+v, want r1 recorded as the last, successful run", stored.Status)
	}
	// What was restored and read: the claim's capacity, the databases' size
	// and what the checks read since they began; 28s for 0.5 GiB.
	if size := got.Status.Size; size == nil || deref64(size.CapacityBytes) != 1<<30 || deref64(size.DatabaseBytes) != 512<<20 || deref64(size.ReadBytes) != 300<<20 {
		t.Errorf("size %+v, want 1Gi restored, 512 MiB of databases, 300 MiB read", size)
	}
	if perGiB := stored.Status.LastRun.RTOSecondsPerGiB; perGiB == nil || *perGiB != 56 {
		t.Errorf("RTO per GiB %v, want 56", perGiB)
	}
	if recent := stored.Status.RecentRuns; len(recent) != 1 || recent[0].Name != "r1" || deref64(recent[0].ReadBytes) != 300<<20 {
		t.Errorf("recent runs %+v, want r1 with what it read", recent)
	}
	if !db.closed || len(db.ran) != 1 || db.ran[0].Builtin != string(drillsv1.BuiltinTablesReadable) {
		t.Errorf("checker ran %+v, closed %v: want the drill's one check on a closed connection", db.ran, db.closed)
	}
	if db.restricted != access.CheckRole {
		t.Errorf("the drill's SQL ran as %q, want the check role %q pg_ident.conf admits", db.restricted, access.CheckRole)
	}
	if db.cfg.TLSConfig == nil || len(db.cfg.TLSConfig.Certificates) != 1 || len(db.cfg.Fallbacks) != 0 {
		t.Errorf("drillerd connected without the run's client certificate, or with a fallback: %+v", db.cfg)
	} else if err := verifiesAgainst(db.cfg.TLSConfig.Certificates[0].Leaf, tlsSecret.Data[restore.TLSCAKey]); err != nil {
		t.Errorf("the client certificate does not verify against the authority in the sandbox's Secret: %v", err)
	}
	if _, held := e.r.access.get(run); held {
		t.Error("the run's access is still held after its verdict")
	}
	// One status write per phase that waits or works long: the start
	// with the sandbox's name (before anything is created), the waits for
	// the volume and the database, the start of the checks, the verdict
	// (before teardown) and Done with the run counted. One event per
	// write that moved the run on, and the verdict on the run and drill.
	if writes != 6 {
		t.Errorf("%d status writes, want 6", writes)
	}
	ev := drainEvents(e)
	for _, want := range []string{
		"Normal Started drill orders-db started (trigger CLI); SelectingSnapshot done in 0.0s; Provisioning",
		"Normal RestoringVolume Provisioning done in 0.0s; RestoringVolume",
		"Normal StartingDatabase RestoringVolume done in 20.0s; StartingDatabase",
		"Normal Validating StartingDatabase done in 5.0s; Validating",
		"Normal Succeeded Succeeded: 1 check passed",
		"Normal RunSucceeded run r1: Succeeded: 1 check passed",
	} {
		if !strings.Contains(ev, want) {
			t.Errorf("events %q, want %q", ev, want)
		}
	}
	if n := strings.Count(ev, "\n") + 1; n != 6 {
		t.Errorf("%d events, want 6:\n%s", n, ev)
	}
}

// verifiesAgainst verifies a client certificate against the authority in
// caPEM.
func verifiesAgainst(cert *x509.Certificate, caPEM []byte) error {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return errors.New("no certificate in the authority's PEM")
	}
	_, err := cert.Verify(x509.VerifyOptions{Roots: pool, CurrentTime: t0, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}})
	return err
}

func deref64(p *int64) int64 {
	if p == nil {
		return -1
	}
	return *p
}

func TestPermanentErrorEndsTheRunAtOnce(t *testing.T) {
	quota := apierrors.NewForbidden(schema.GroupResource{Resource: "pods"}, "db", errors.New("exceeded quota: sandbox-quota, requested: pods=1"))
	funcs := interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*corev1.Pod); ok {
			return quota
		}
		return c.Create(ctx, obj, opts...)
	}}
	e := newEngine(t, funcs, append(source(), ordersDrill().Obj(), newRun("r1").Obj())...)
	if _, err := e.reconcile("r1"); err != nil {
		t.Fatalf("a permanent error must be decided, not retried: %v", err)
	}
	got := e.run("r1")
	if got.Status.Result != drillsv1.ResultError || got.Status.Reason != verdict.ReasonAPIError {
		t.Fatalf("result %s/%s (%s), want Error/APIError", got.Status.Result, got.Status.Reason, got.Status.Message)
	}
	for _, want := range []string{"Provisioning", "exceeded quota"} {
		if !strings.Contains(got.Status.Message, want) {
			t.Errorf("message %q does not name %q", got.Status.Message, want)
		}
	}
	if got.Status.Phase != drillsv1.PhaseTearingDown && got.Status.Phase != drillsv1.PhaseDone {
		t.Errorf("phase %s, want the half-built sandbox torn down", got.Status.Phase)
	}
}

func TestTransientErrorIsRetriedAndRemembered(t *testing.T) {
	funcs := interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		if _, ok := obj.(*snapshotv1.VolumeSnapshot); ok {
			return apierrors.NewServiceUnavailable("etcd leader change")
		}
		return c.Create(ctx, obj, opts...)
	}}
	e := newEngine(t, funcs, append(source(), ordersDrill().Obj(), newRun("r1").Obj())...)
	if _, err := e.reconcile("r1"); err == nil {
		t.Fatal("a transient error must be returned for a retry")
	}
	got := e.run("r1")
	if got.Status.Result != "" || got.Status.Phase != drillsv1.PhaseProvisioning || !strings.Contains(got.Status.LastError, "etcd leader change") {
		t.Errorf("status %s/%s, lastError %q: want still provisioning with the error remembered", got.Status.Phase, got.Status.Result, got.Status.LastError)
	}
	// When timeouts.total passes, the verdict names that error.
	e.clock.Step(drillsv1.DefaultTotalTimeout + time.Second)
	_, _ = e.reconcile("r1")
	got = e.run("r1")
	if got.Status.Reason != verdict.ReasonTimeout || !strings.Contains(got.Status.Message, "etcd leader change") || !strings.Contains(got.Status.Message, "phase Provisioning") {
		t.Errorf("%s: %s, want a Timeout naming the phase and the last error", got.Status.Reason, got.Status.Message)
	}
}

func TestDrillDeletedDuringTheRun(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseRestoringVolume).StartedAt(t0).Sandbox(sandboxName("r1")).Obj()
	ns := sandboxNamespace(run)
	e := newEngine(t, interceptor.Funcs{}, run, ns) // no RestoreDrill
	for range 3 {
		e.mustReconcile("r1")
	}
	got := e.run("r1")
	if got.Status.Result != drillsv1.ResultError || got.Status.Reason != verdict.ReasonDrillNotFound || !strings.Contains(got.Status.Message, "deleted during the run") {
		t.Errorf("result %s/%s (%s), want Error/DrillNotFound", got.Status.Result, got.Status.Reason, got.Status.Message)
	}
	if err := e.c.Get(context.Background(), client.ObjectKeyFromObject(ns), &corev1.Namespace{}); !apierrors.IsNotFound(err) {
		t.Errorf("the sandbox namespace was not torn down: %v", err)
	}
}

func TestNoReadySnapshotGoesStraightToTeardown(t *testing.T) {
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), newRun("r1").Obj()) // no snapshots at all
	e.mustReconcile("r1")
	got := e.run("r1")
	want := []drillsv1.Phase{drillsv1.PhaseSelectingSnapshot, drillsv1.PhaseTearingDown}
	if got.Status.Reason != verdict.ReasonNoReadySnapshot || got.Status.Phase != drillsv1.PhaseDone || !equalPhases(phases(got), want) {
		t.Errorf("reason %s, phase %s, timeline %v: want NoReadySnapshot, Done after %v", got.Status.Reason, got.Status.Phase, phases(got), want)
	}
	if got.Status.RTO != nil {
		t.Errorf("RTO %+v measured although nothing was restored", got.Status.RTO)
	}
}

func TestEndRunKeepsTheFirstVerdict(t *testing.T) {
	s := newRun("r1").In(drillsv1.PhaseValidating).Obj().Status
	if !endRun(&s, verdict.Failed(verdict.ReasonCheckFailed, "check a failed"), t0) {
		t.Fatal("the first verdict was not given")
	}
	if endRun(&s, verdict.Errored(verdict.ReasonTimeout, "late"), t0.Add(time.Minute)) {
		t.Error("a second verdict was given")
	}
	if s.Result != drillsv1.ResultFailed || s.Reason != verdict.ReasonCheckFailed || s.Phase != drillsv1.PhaseTearingDown || len(s.Phases) != 1 {
		t.Errorf("status %s/%s in %s with %d timings, want the first verdict and one move to TearingDown", s.Result, s.Reason, s.Phase, len(s.Phases))
	}
}

func TestWaitingWritesNoUnchangedStatus(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).StartedAt(t0).Sandbox(sandboxName("r1")).Obj()
	ns := sandboxNamespace(run)
	ns.Finalizers = []string{"test.drillerd.dev/hold"} // the namespace stays Terminating
	writes := 0
	funcs := interceptor.Funcs{SubResourceUpdate: func(ctx context.Context, c client.Client, sub string, obj client.Object, opts ...client.SubResourceUpdateOption) error {
		writes++
		return c.SubResource(sub).Update(ctx, obj, opts...)
	}}
	e := newEngine(t, funcs, ordersDrill().Obj(), run, ns)
	for range 3 {
		if res := e.mustReconcile("r1"); res.RequeueAfter != teardownRecheck {
			t.Fatalf("requeue %s, want the teardown recheck", res.RequeueAfter)
		}
	}
	if writes != 0 {
		t.Errorf("%d status writes while nothing changed", writes)
	}
}

func equalPhases(a, b []drillsv1.Phase) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// drainEvents returns the events recorded so far, one per line.
func drainEvents(e *engine) string {
	var out []string
	for {
		select {
		case ev := <-e.events.Events:
			out = append(out, ev)
		default:
			return strings.Join(out, "\n")
		}
	}
}

// readyPod is the status a kubelet gives a running, ready database pod.
func readyPod(ip string) corev1.PodStatus {
	return corev1.PodStatus{
		Phase: corev1.PodRunning, PodIP: ip,
		Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: restore.DatabaseContainerName, Ready: true,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}},
	}
}

func ptrTo[T any](v T) *T { return &v }

func TestNewerSnapshotsThatFailedAreReported(t *testing.T) {
	objs := append(source(),
		builder.ForSnapshot("prod", "hourly-failed").Of("data-orders-0").Created(t0.Add(-30*time.Minute)).Failed("rate limited by the storage API").Obj(),
		builder.ForSnapshot("prod", "hourly-pending").Of("data-orders-0").Created(t0.Add(-time.Minute)).NotReady().Obj(),
		builder.ForSnapshot("prod", "older-failed").Of("data-orders-0").Created(t0.Add(-48*time.Hour)).Failed("old news").Obj(),
		ordersDrill().Obj(), newRun("r1").Obj())
	e := newEngine(t, interceptor.Funcs{}, objs...)
	e.mustReconcile("r1")
	got := e.run("r1").Status
	if got.Snapshot == nil || got.Snapshot.Name != "nightly" {
		t.Fatalf("restored %+v, want the newest ready snapshot", got.Snapshot)
	}
	want := []drillsv1.SkippedSnapshot{
		{Name: "hourly-pending", Reason: drillsv1.SnapshotNotReady, Message: "not ready"},
		{Name: "hourly-failed", Reason: drillsv1.SnapshotFailed, Message: "rate limited by the storage API"},
	}
	if len(got.SkippedSnapshots) != len(want) || got.SkippedSnapshots[0] != want[0] || got.SkippedSnapshots[1] != want[1] {
		t.Errorf("skipped %+v, want %+v", got.SkippedSnapshots, want)
	}
	if ev := drainEvents(e); !strings.Contains(ev, "Warning SnapshotsSkipped restoring nightly; 2 newer snapshots were passed over: hourly-pending (NotReady), hourly-failed (Failed)") {
		t.Errorf("events %q, want a SnapshotsSkipped warning", ev)
	}
}

// TestADrillTheCacheDoesNotShowYetIsReadFromTheAPIServer: a run created a
// moment after its drill may be reconciled before the cache shows the
// drill; the API server has it, so the run starts instead of ending
// DrillNotFound.
func TestADrillTheCacheDoesNotShowYetIsReadFromTheAPIServer(t *testing.T) {
	funcs := interceptor.Funcs{Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
		if _, ok := obj.(*drillsv1.RestoreDrill); ok {
			return apierrors.NewNotFound(drillsv1.GroupVersion.WithResource("restoredrills").GroupResource(), key.Name)
		}
		return c.Get(ctx, key, obj, opts...)
	}}
	e := newEngine(t, funcs, append(source(), ordersDrill().Obj(), newRun("r1").Obj())...)
	e.r.APIReader = fake.NewClientBuilder().WithScheme(testScheme(t)).WithObjects(append(source(), ordersDrill().Obj())...).Build()
	e.mustReconcile("r1")
	if s := e.run("r1").Status; s.Result != "" || s.Phase != drillsv1.PhaseRestoringVolume {
		t.Errorf("run %s/%s (%s) in %s, want it started and waiting in RestoringVolume", s.Result, s.Reason, s.Message, s.Phase)
	}
}
