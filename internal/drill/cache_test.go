package drill

import (
	"context"
	"errors"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/interceptor"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

// countingReader is the API server as APIReader: it counts the reads that
// reach it.
type countingReader struct {
	client.Reader
	gets int
}

func (c *countingReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	c.gets++
	return c.Reader.Get(ctx, key, obj, opts...)
}

// lag is what a lagging cache shows instead of the API server's objects:
// nothing for a hidden key, an older copy for a stale one.
type lag struct {
	hidden map[types.NamespacedName]bool
	stale  map[types.NamespacedName]client.Object
}

// cacheEngine is an engine whose Client is a cache that lags as lag says,
// and whose APIReader counts the reads that reach the API server.
func cacheEngine(t *testing.T, l *lag, objs ...client.Object) (*engine, *countingReader) {
	t.Helper()
	e := newEngine(t, interceptor.Funcs{}, objs...)
	live := &countingReader{Reader: e.c}
	e.r.Client = interceptor.NewClient(e.c, interceptor.Funcs{
		Get: func(ctx context.Context, c client.WithWatch, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
			if l.hidden[key] {
				return apierrors.NewNotFound(schema.GroupResource{}, key.Name)
			}
			if old, ok := l.stale[key]; ok && sameKind(old, obj) {
				return c.Scheme().Convert(old.DeepCopyObject(), obj, nil)
			}
			return c.Get(ctx, key, obj, opts...)
		},
	})
	e.r.APIReader = live
	return e, live
}

func sameKind(a, b client.Object) bool {
	_, aIsNs := a.(*corev1.Namespace)
	_, bIsNs := b.(*corev1.Namespace)
	_, aIsRun := a.(*drillsv1.DrillRun)
	_, bIsRun := b.(*drillsv1.DrillRun)
	return aIsNs && bIsNs || aIsRun && bIsRun
}

func TestTeardownWaitsOnTheCache(t *testing.T) {
	tearingDown := func() *drillsv1.DrillRun {
		return newRun("r1").In(drillsv1.PhaseTearingDown).Result(drillsv1.ResultSucceeded).StartedAt(t0).Sandbox(sandboxName("r1")).Obj()
	}
	nsKey := types.NamespacedName{Name: sandboxName("r1")}

	t.Run("a namespace the cache has not shown yet is read from the API server and deleted", func(t *testing.T) {
		run := tearingDown()
		e, live := cacheEngine(t, &lag{hidden: map[types.NamespacedName]bool{nsKey: true}}, ordersDrill().Obj(), run, sandboxNamespace(run))
		e.mustReconcile("r1")
		if err := e.c.Get(context.Background(), nsKey, &corev1.Namespace{}); !apierrors.IsNotFound(err) {
			t.Errorf("the namespace the cache did not show is still there: %v", err)
		}
		if live.gets == 0 {
			t.Error("teardown took the cache's word that a namespace it never showed was gone")
		}
	})

	t.Run("once shown, a sandbox the cache no longer shows is gone, without asking the API server", func(t *testing.T) {
		run := tearingDown()
		claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Namespace: sandboxName("r1"), Name: restore.DataClaimName}}
		e, live := cacheEngine(t, &lag{}, ordersDrill().Obj(), run, sandboxNamespace(run), contentCopy(run), claim)
		e.mustReconcile("r1") // deletes them
		if err := e.c.Delete(context.Background(), claim); err != nil {
			t.Fatal(err) // the namespace controller's part
		}
		e.mustReconcile("r1") // the cache has seen them go
		if got := e.run("r1").Status; got.Phase != drillsv1.PhaseDone || !got.SandboxRemoved {
			t.Errorf("phase %s, removed %v: want Done with the sandbox removed", got.Phase, got.SandboxRemoved)
		}
		if live.gets != 0 {
			t.Errorf("%d reads reached the API server; the cache had shown everything", live.gets)
		}
	})

	t.Run("what the API server said is absent is not asked about again", func(t *testing.T) {
		run := tearingDown()
		ns := sandboxNamespace(run)
		ns.Finalizers = []string{"test.drillerd.dev/hold"}              // stays Terminating
		e, live := cacheEngine(t, &lag{}, ordersDrill().Obj(), run, ns) // no content copy, no claim
		e.mustReconcile("r1")
		first := live.gets
		for range 3 {
			e.mustReconcile("r1")
		}
		if first == 0 || live.gets != first {
			t.Errorf("%d reads reached the API server at first, %d more later; want some, then none", first, live.gets-first)
		}
	})

	t.Run("a deletion the API server accepted is not asked again while the cache lags", func(t *testing.T) {
		run := tearingDown()
		ns := sandboxNamespace(run)
		ns.Finalizers = []string{"test.drillerd.dev/hold"} // stays Terminating
		e, _ := cacheEngine(t, &lag{stale: map[types.NamespacedName]client.Object{nsKey: ns.DeepCopy()}}, ordersDrill().Obj(), run, ns)
		deletes := 0
		cache := e.r.Client
		e.r.Client = interceptor.NewClient(cache.(client.WithWatch), interceptor.Funcs{
			Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
				if _, ok := obj.(*corev1.Namespace); ok {
					deletes++
				}
				return c.Delete(ctx, obj, opts...)
			},
		})
		for range 3 {
			e.mustReconcile("r1")
		}
		if deletes != 1 {
			t.Errorf("the namespace was deleted %d times, want once", deletes)
		}
	})
}

func TestAStaleCopyOfTheRunIsNotActedOn(t *testing.T) {
	run := newRun("r1").Obj()
	l := &lag{stale: map[types.NamespacedName]client.Object{}}
	e, _ := cacheEngine(t, l, append(source(), ordersDrill().Obj(), run)...)
	e.mustReconcile("r1") // provisions, waits for the volume
	first := e.run("r1")
	// The cache still shows the run as it was before those writes.
	l.stale[client.ObjectKeyFromObject(run)] = run
	creates := 0
	cache := e.r.Client
	e.r.Client = interceptor.NewClient(cache.(client.WithWatch), interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			creates++
			return c.Create(ctx, obj, opts...)
		},
	})
	res := e.mustReconcile("r1")
	if res.RequeueAfter != staleRecheck || creates != 0 {
		t.Errorf("requeue %s, %d creates: want nothing done until the cache has the run's status", res.RequeueAfter, creates)
	}
	if got := e.run("r1"); got.ResourceVersion != first.ResourceVersion {
		t.Errorf("the run was written from a stale copy")
	}
	delete(l.stale, client.ObjectKeyFromObject(run)) // the cache catches up
	e.mustReconcile("r1")
	if creates != 0 {
		t.Errorf("%d creates after the cache caught up: provisioning happened again", creates)
	}
}

func TestWhatIsRestoredFromTheCopyGoesWithIt(t *testing.T) {
	var deleteOpts []client.DeleteOption
	funcs := interceptor.Funcs{
		Create: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.CreateOption) error {
			if _, ok := obj.(*snapshotv1.VolumeSnapshotContent); ok {
				obj.SetUID("uid-of-the-copy") // as the API server gives it one
			}
			return c.Create(ctx, obj, opts...)
		},
		Delete: func(ctx context.Context, c client.WithWatch, obj client.Object, opts ...client.DeleteOption) error {
			if _, ok := obj.(*snapshotv1.VolumeSnapshotContent); ok {
				deleteOpts = opts
			}
			return c.Delete(ctx, obj, opts...)
		},
	}
	run := newRun("r1").Obj()
	e := newEngine(t, funcs, append(source(), ordersDrill().Obj(), run)...)
	e.mustReconcile("r1")
	ns := sandboxOf(run)
	copyName := restore.Sandbox{Run: run}.ContentName()
	// The snapshot controller makes the sandbox's snapshot ready; the
	// claim and the pod follow.
	ready := &snapshotv1.VolumeSnapshot{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: restore.SourceSnapshotName}, ready); err != nil {
		t.Fatal(err)
	}
	ready.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptrTo(true)}
	e.update(ready)
	e.mustReconcile("r1")
	for _, obj := range []client.Object{&snapshotv1.VolumeSnapshot{}, &corev1.PersistentVolumeClaim{}, &corev1.Pod{}} {
		name := map[string]string{"*v1.VolumeSnapshot": restore.SourceSnapshotName, "*v1.PersistentVolumeClaim": restore.DataClaimName, "*v1.Pod": restore.DatabasePodName}[typeName(obj)]
		if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: name}, obj); err != nil {
			t.Fatal(err)
		}
		refs := obj.GetOwnerReferences()
		if len(refs) != 1 || refs[0].Kind != "VolumeSnapshotContent" || refs[0].UID != "uid-of-the-copy" || refs[0].Name != copyName ||
			refs[0].Controller != nil || refs[0].BlockOwnerDeletion != nil {
			t.Errorf("%s %s is owned by %+v, want by the content copy alone, neither controlling nor blocking", typeName(obj), name, refs)
		}
	}
	pod := &corev1.Pod{}
	if err := e.c.Get(context.Background(), types.NamespacedName{Namespace: ns, Name: restore.DatabasePodName}, pod); err != nil {
		t.Fatal(err)
	}
	if g := pod.Spec.TerminationGracePeriodSeconds; g == nil || *g != 0 {
		t.Errorf("the database pod's grace period is %v, want 0: a throwaway copy is not shut down", g)
	}

	// The run ends (its drill is deleted): the copy is deleted in the
	// foreground, so that the garbage collector takes what it owns.
	drill := ordersDrill().Obj()
	if err := e.c.Delete(context.Background(), drill); err != nil {
		t.Fatal(err)
	}
	e.mustReconcile("r1")
	opts := &client.DeleteOptions{}
	opts.ApplyOptions(deleteOpts)
	if opts.PropagationPolicy == nil || *opts.PropagationPolicy != metav1.DeletePropagationForeground {
		t.Errorf("the content copy was deleted with propagation %v, want Foreground", opts.PropagationPolicy)
	}
}

func typeName(obj client.Object) string {
	switch obj.(type) {
	case *snapshotv1.VolumeSnapshot:
		return "*v1.VolumeSnapshot"
	case *corev1.PersistentVolumeClaim:
		return "*v1.PersistentVolumeClaim"
	case *corev1.Pod:
		return "*v1.Pod"
	}
	return ""
}

func TestASecretLoginIsReadOnce(t *testing.T) {
	run := newRun("r1").In(drillsv1.PhaseStartingDatabase).StartedAt(t0).Deadline(t0.Add(time.Hour)).
		PhaseTiming(drillsv1.PhaseStartingDatabase, t0, time.Time{}).Obj()
	run.Status.SandboxNamespace = sandboxOf(run)
	pod := databasePod(run)
	pod.Status.Conditions = nil // running, not probed ready yet
	secret := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "prod", Name: "creds"},
		Data: map[string][]byte{"user": []byte("app"), "password": []byte("s3cret")}}
	e, live := cacheEngine(t, &lag{}, ordersDrill().AuthSecret("creds", "user", "password").Obj(), run, pod, secret)
	refused := repeat(errRefused, 200)
	db := &fakeChecker{clock: e.clock, tables: ordersTable, startup: refused}
	e.r.Database = db.connect
	for range 3 {
		e.mustReconcile("r1")
	}
	if db.attempts < 3 || db.cfg.User != "app" || db.cfg.Password != "s3cret" {
		t.Fatalf("%d attempts as %q: want several, with the Secret's login", db.attempts, db.cfg.User)
	}
	if live.gets != 1 {
		t.Errorf("the Secret was read %d times for %d connection attempts, want once", live.gets, db.attempts)
	}
}

var errRefused = errors.New("dial tcp 127.0.3.4:5432: connect: connection refused")

// contentCopy is run's VolumeSnapshotContent copy, as provisioning makes it.
func contentCopy(run *drillsv1.DrillRun) *snapshotv1.VolumeSnapshotContent {
	c := &snapshotv1.VolumeSnapshotContent{}
	c.Name = restore.Sandbox{Run: run}.ContentName()
	c.Labels = sandboxLabels(run)
	c.Spec.DeletionPolicy = snapshotv1.VolumeSnapshotContentRetain
	return c
}
