package drill

import (
	"context"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/verdict"
)

// restoringRun is a run that started restoring its volume at t0, with
// timeouts.total ending at total.
func restoringRun(total time.Time) *drillsv1.DrillRun {
	run := newRun("r1").In(drillsv1.PhaseRestoringVolume).StartedAt(t0).Deadline(total).
		PhaseTiming(drillsv1.PhaseRestoringVolume, t0, time.Time{}).Obj()
	run.Status.SandboxNamespace = sandboxOf(run)
	return run
}

func boundClaim(ns, volume string) *corev1.PersistentVolumeClaim {
	c := builder.ForClaim(ns, restore.DataClaimName).Obj()
	c.Spec.VolumeName, c.Status.Phase = volume, corev1.ClaimBound
	return c
}

func pendingClaim(ns string) *corev1.PersistentVolumeClaim {
	c := builder.ForClaim(ns, restore.DataClaimName).Obj()
	c.Status.Phase = corev1.ClaimPending
	return c
}

func warning(ns, kind, name, reason, msg string, at time.Time) *corev1.Event {
	return &corev1.Event{
		ObjectMeta:     metav1.ObjectMeta{Namespace: ns, Name: name + "." + reason},
		InvolvedObject: corev1.ObjectReference{Kind: kind, Namespace: ns, Name: name},
		Type:           corev1.EventTypeWarning, Reason: reason, Message: msg, LastTimestamp: metav1.NewTime(at),
	}
}

func TestRestoringVolumeWaitsAndTimesOut(t *testing.T) {
	const volumeTimeout = 10 * time.Minute
	ns := sandboxOf(newRun("r1").Obj())
	copyOf := func() *builder.SnapshotBuilder { return builder.ForSnapshot(ns, restore.SourceSnapshotName) }
	// The content copy as provisioning made it, and as the CSI snapshotter
	// sidecar marks a driver's refusal.
	copyContent := func() *snapshotv1.VolumeSnapshotContent { return contentCopy(restoringRun(t0)) }
	refusedContent := func(msg string) *snapshotv1.VolumeSnapshotContent {
		c := copyContent()
		c.Status = builder.ForContent(c.Name).Failed(msg).Obj().Status
		return c
	}
	tests := []struct {
		name        string
		at          time.Duration // since the phase started
		total       time.Duration // timeouts.total, since the phase started
		objects     []client.Object
		wantPhase   drillsv1.Phase
		wantRequeue time.Duration
		wantReason  string
		wantInMsg   string
		// wantLastError is status.lastError while the run waits.
		wantLastError string
	}{
		{name: "copy not ready: waits until the volume timeout", at: time.Minute, total: time.Hour,
			objects:   []client.Object{copyOf().NotReady().Obj(), pendingClaim(ns)},
			wantPhase: drillsv1.PhaseRestoringVolume, wantRequeue: 9 * time.Minute},
		{name: "timeouts.total comes first: waits until then", at: time.Minute, total: 5 * time.Minute,
			objects:   []client.Object{copyOf().NotReady().Obj(), pendingClaim(ns)},
			wantPhase: drillsv1.PhaseRestoringVolume, wantRequeue: 4 * time.Minute},
		{name: "ready and bound: the database starts", at: time.Minute, total: time.Hour,
			objects:   []client.Object{copyOf().ReadyAt(t0).Obj(), boundClaim(ns, "pv-1")},
			wantPhase: drillsv1.PhaseStartingDatabase},
		{name: "the copy failed: Failed at once with the controller's words", at: time.Minute, total: time.Hour,
			objects: []client.Object{copyOf().Failed("snapshot handle snap-1 not found").Obj(), pendingClaim(ns),
				refusedContent("snapshot handle snap-1 not found")},
			// The verdict is in; the content copy is being deleted.
			wantPhase: drillsv1.PhaseTearingDown, wantReason: verdict.ReasonRestoreFailed, wantInMsg: "failed: snapshot handle snap-1 not found"},
		// The snapshot controller's cache has not seen the copy yet: it
		// says so, and tries again.
		{name: "the snapshot controller cannot find the content copy yet: waits", at: time.Minute, total: time.Hour,
			objects:   []client.Object{copyOf().Failed("VolumeSnapshotContent is missing").Obj(), pendingClaim(ns), copyContent()},
			wantPhase: drillsv1.PhaseRestoringVolume, wantRequeue: 9 * time.Minute,
			wantLastError: "VolumeSnapshot " + ns + "/source: the snapshot controller says: VolumeSnapshotContent is missing"},
		{name: "drillerd's cache has not seen the copy's refusal yet: waits", at: time.Minute, total: time.Hour,
			objects:   []client.Object{copyOf().Failed("snapshot handle snap-1 not found").Obj(), pendingClaim(ns)},
			wantPhase: drillsv1.PhaseRestoringVolume, wantRequeue: 9 * time.Minute,
			wantLastError: "VolumeSnapshot " + ns + "/source: the snapshot controller says: snapshot handle snap-1 not found"},
		{name: "the snapshot controller's error at the volume timeout: Failed, naming it", at: volumeTimeout, total: time.Hour,
			objects:   []client.Object{copyOf().Failed("VolumeSnapshotContent is missing").Obj(), pendingClaim(ns), copyContent()},
			wantPhase: drillsv1.PhaseTearingDown, wantReason: verdict.ReasonRestoreFailed,
			wantInMsg: "VolumeSnapshot " + ns + "/source not ready after 10m0s: the snapshot controller says: VolumeSnapshotContent is missing"},
		{name: "copy not ready at the volume timeout: Failed, naming the last warning", at: volumeTimeout, total: time.Hour,
			objects: []client.Object{copyOf().NotReady().Obj(), pendingClaim(ns),
				warning(ns, "VolumeSnapshot", restore.SourceSnapshotName, "SnapshotContentCheckandUpdateFailed", "driver busy", t0)},
			wantPhase: drillsv1.PhaseDone, wantReason: verdict.ReasonRestoreFailed,
			wantInMsg: "VolumeSnapshot " + ns + "/source not ready after 10m0s: SnapshotContentCheckandUpdateFailed: driver busy"},
		{name: "no snapshot controller gave the copy a status by the volume timeout: Error, nothing is known of the backup", at: volumeTimeout, total: time.Hour,
			objects:   []client.Object{copyOf().Obj(), pendingClaim(ns)},
			wantPhase: drillsv1.PhaseDone, wantReason: verdict.ReasonSnapshotControllerUnavailable,
			wantInMsg: "VolumeSnapshot " + ns + "/source has no status after 10m0s: no snapshot controller took it in hand"},
		{name: "a copy without a status before the volume timeout: waits", at: time.Minute, total: time.Hour,
			objects:   []client.Object{copyOf().Obj(), pendingClaim(ns)},
			wantPhase: drillsv1.PhaseRestoringVolume, wantRequeue: 9 * time.Minute},
		{name: "claim not bound at the volume timeout: Failed, naming the last warning", at: volumeTimeout + time.Second, total: time.Hour,
			objects: []client.Object{copyOf().ReadyAt(t0).Obj(), pendingClaim(ns),
				warning(ns, "PersistentVolumeClaim", restore.DataClaimName, "ProvisioningFailed", "no space left", t0)},
			wantPhase: drillsv1.PhaseDone, wantReason: verdict.ReasonRestoreFailed,
			wantInMsg: "PVC " + ns + "/data not bound after 10m0s: ProvisioningFailed: no space left"},
		{name: "timeouts.total passed: Error Timeout naming the phase", at: 5 * time.Minute, total: 5 * time.Minute,
			objects:   []client.Object{copyOf().NotReady().Obj(), pendingClaim(ns)},
			wantPhase: drillsv1.PhaseDone, wantReason: verdict.ReasonTimeout, wantInMsg: "it was in phase RestoringVolume"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := append([]client.Object{ordersDrill().VolumeTimeout(volumeTimeout).Obj(), restoringRun(t0.Add(tt.total))}, tt.objects...)
			e := newEngine(t, interceptor.Funcs{}, objs...)
			e.r.Database = (&fakeChecker{clock: e.clock, connectErr: errStopHere}).connect
			e.clock.SetTime(t0.Add(tt.at))
			res := e.mustReconcile("r1")
			got := e.run("r1").Status
			if tt.wantPhase == drillsv1.PhaseStartingDatabase {
				if !containsPhase(got.Phases, drillsv1.PhaseStartingDatabase) || got.VolumeName != "pv-1" {
					t.Errorf("timeline %v, volume %q: want StartingDatabase reached with the volume recorded", got.Phases, got.VolumeName)
				}
				return
			}
			if got.Phase != tt.wantPhase || got.Reason != tt.wantReason || !strings.Contains(got.Message, tt.wantInMsg) {
				t.Errorf("phase %s, %s %q; want %s, %s mentioning %q", got.Phase, got.Reason, got.Message, tt.wantPhase, tt.wantReason, tt.wantInMsg)
			}
			if got.Phase == drillsv1.PhaseRestoringVolume && got.LastError != tt.wantLastError {
				t.Errorf("lastError %q while waiting, want %q", got.LastError, tt.wantLastError)
			}
			if tt.wantRequeue != 0 && res.RequeueAfter != tt.wantRequeue {
				t.Errorf("requeue after %s, want %s", res.RequeueAfter, tt.wantRequeue)
			}
		})
	}
}

func containsPhase(timeline []drillsv1.PhaseTiming, p drillsv1.Phase) bool {
	for _, t := range timeline {
		if t.Name == p {
			return true
		}
	}
	return false
}

// errStopHere ends a run at Validating, for tests of earlier phases.
var errStopHere = &stopHere{}

type stopHere struct{}

func (*stopHere) Error() string { return "not reached in this test" }

// TestAPodRefusedAfterItsClaimIsCreatedOnTheNextTry: a transient failure
// between the claim and the pod does not leave the claim without the pod
// that has it provisioned.
func TestAPodRefusedAfterItsClaimIsCreatedOnTheNextTry(t *testing.T) {
	podFailures := 1
	funcs := interceptor.Funcs{Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
		dryRun := len((&client.CreateOptions{}).ApplyOptions(opts).DryRun) > 0
		if _, ok := obj.(*corev1.Pod); ok && !dryRun && podFailures > 0 {
			podFailures--
			return apierrors.NewServiceUnavailable("etcd leader change")
		}
		return c.Create(ctx, obj, opts...)
	}}
	run := newRun("r1").Obj()
	e := newEngine(t, funcs, append(source(), ordersDrill().Obj(), run)...)
	e.r.Database = (&fakeChecker{clock: e.clock, connectErr: errStopHere}).connect
	e.mustReconcile("r1")
	ns := sandboxOf(run)
	ctx := context.Background()
	snapshotCopy := &snapshotv1.VolumeSnapshot{}
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.SourceSnapshotName}, snapshotCopy); err != nil {
		t.Fatal(err)
	}
	snapshotCopy.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptrTo(true)}
	e.update(snapshotCopy)
	if _, err := e.reconcile("r1"); err == nil {
		t.Fatal("the pod's transient error must be returned for a retry")
	}
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DataClaimName}, &corev1.PersistentVolumeClaim{}); err != nil {
		t.Fatalf("the claim was not created before the pod's failure: %v", err)
	}
	e.mustReconcile("r1")
	if err := e.c.Get(ctx, types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, &corev1.Pod{}); err != nil {
		t.Fatalf("the database pod was not created on the next try: %v", err)
	}
}
