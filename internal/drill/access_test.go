package drill

import (
	"context"
	"errors"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/verdict"
)

// TestARunWhoseKeyIsGoneEndsInterrupted: a run this process did not
// provision (its Access went with the process that did) cannot reach its
// database, whatever phase it is in.
func TestARunWhoseKeyIsGoneEndsInterrupted(t *testing.T) {
	for _, phase := range []drillsv1.Phase{drillsv1.PhaseProvisioning, drillsv1.PhaseStartingDatabase, drillsv1.PhaseValidating} {
		t.Run(string(phase), func(t *testing.T) {
			run := validatingRun()
			run.Status.Phase = phase
			e := newEngine(t, interceptor.Funcs{}, append(source(), ordersDrill().Obj(), run, databasePod(run))...)
			e.r.access.forget(client.ObjectKeyFromObject(run)) // as after a restart
			db := &fakeChecker{clock: e.clock}
			e.r.Database = db.connect
			e.mustReconcile("r1")
			got := e.run("r1").Status
			if got.Result != drillsv1.ResultError || got.Reason != verdict.ReasonInterrupted || !strings.Contains(got.Message, "client key") {
				t.Errorf("%s/%s %q, want Error/Interrupted saying the client key is gone", got.Result, got.Reason, got.Message)
			}
			if db.attempts != 0 {
				t.Errorf("%d connections tried without the run's key", db.attempts)
			}
		})
	}
}

// TestProvisioningAgainAdoptsTheTLSSecretUnread: drillerd may not read
// Secrets, so a retried Provisioning takes the run's own TLS Secret as it
// is, with the Access it was made from.
func TestProvisioningAgainAdoptsTheTLSSecretUnread(t *testing.T) {
	snapshotFailures := 1
	funcs := interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*snapshotv1.VolumeSnapshot); ok && snapshotFailures > 0 {
				snapshotFailures--
				return apierrors.NewServiceUnavailable("etcd leader change")
			}
			return c.Create(ctx, obj, opts...)
		},
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if _, ok := obj.(*corev1.Secret); ok && strings.HasPrefix(key.Namespace, restore.NamespacePrefix) {
				return apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, key.Name, errors.New("drillerd may not get secrets"))
			}
			return c.Get(ctx, key, obj, opts...)
		},
	}
	run := newRun("r1").Obj()
	e := newEngine(t, funcs, append(source(), ordersDrill().Obj(), run)...)
	if _, err := e.reconcile("r1"); err == nil {
		t.Fatal("the snapshot's transient error must be retried")
	}
	before, ok := e.r.access.get(run)
	if !ok {
		t.Fatal("no Access held for the run being provisioned")
	}
	e.clock.Step(time.Second)
	e.mustReconcile("r1")
	if got := e.run("r1").Status; got.Phase != drillsv1.PhaseRestoringVolume || got.Result != "" {
		t.Fatalf("phase %s result %s (%s), want on to RestoringVolume", got.Phase, got.Result, got.Message)
	}
	if after, _ := e.r.access.get(run); after.Certificates != before.Certificates || after.CheckRole != before.CheckRole {
		t.Error("the retry made a new Access: the Secret holds the old one's authority")
	}
}

// TestAGoneRunsKeyIsDropped: the Access of a run deleted mid-run does not
// stay in memory.
func TestAGoneRunsKeyIsDropped(t *testing.T) {
	run := validatingRun()
	e := newEngine(t, interceptor.Funcs{}, ordersDrill().Obj(), run)
	if _, ok := e.r.access.get(run); !ok {
		t.Fatal("no Access held for a run in Validating")
	}
	if err := e.c.Delete(context.Background(), run); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile("r1")
	e.r.access.mu.Lock()
	defer e.r.access.mu.Unlock()
	if _, held := e.r.access.runs[types.NamespacedName{Namespace: run.Namespace, Name: run.Name}]; held {
		t.Error("the deleted run's Access is still held")
	}
}
