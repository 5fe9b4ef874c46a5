package drill

import (
	"context"
	"fmt"
	"sync"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// sightings remembers, per run, which of its sandbox objects this process
// has seen in its cache, and which it has deleted. Teardown waits on the
// cache, which costs no API request, but the cache can lag behind the API
// server: an object created a moment ago may not be in it yet, one just
// deleted may still show no deletion. An object the cache showed and no
// longer shows is gone (the informer saw it deleted); one it never showed
// is read from the API server until it has; one whose deletion the API
// server accepted is not deleted again.
type sightings struct {
	mu   sync.Mutex
	runs map[types.NamespacedName]sighted
}

type sighted struct {
	uid  types.UID
	keys map[string]bool
}

// reader is the cache-first reader of run's sandbox objects: cache is the
// manager's cached client, live the API server.
func (s *sightings) reader(run *drillsv1.DrillRun, cache, live client.Reader) client.Reader {
	return sightedReader{s: s, run: run, cache: cache, live: live}
}

// forget drops what was seen of the objects of the run named key (its
// sandbox is gone, or the run is).
func (s *sightings) forget(key types.NamespacedName) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.runs, key)
}

func (s *sightings) seen(run *drillsv1.DrillRun, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	got, ok := s.runs[client.ObjectKeyFromObject(run)]
	return ok && got.uid == run.UID && got.keys[id]
}

// deleted records that the API server accepted the deletion of obj, one of
// run's sandbox objects.
func (s *sightings) deleted(run *drillsv1.DrillRun, obj client.Object) {
	s.see(run, deletedID(obj))
}

// wasDeleted reports whether this process deleted obj already.
func (s *sightings) wasDeleted(run *drillsv1.DrillRun, obj client.Object) bool {
	return s.seen(run, deletedID(obj))
}

func deletedID(obj client.Object) string {
	return fmt.Sprintf("deleted %T %s/%s %s", obj, obj.GetNamespace(), obj.GetName(), obj.GetUID())
}

func (s *sightings) see(run *drillsv1.DrillRun, id string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.runs == nil {
		s.runs = map[types.NamespacedName]sighted{}
	}
	key := client.ObjectKeyFromObject(run)
	got, ok := s.runs[key]
	if !ok || got.uid != run.UID {
		got = sighted{uid: run.UID, keys: map[string]bool{}}
		s.runs[key] = got
	}
	got.keys[id] = true
}

type sightedReader struct {
	s           *sightings
	run         *drillsv1.DrillRun
	cache, live client.Reader
}

// Get reads obj from the cache; an object the cache does not hold and has
// never shown is read from the API server. What the API server says is
// absent is not asked about again: nothing creates sandbox objects after
// Provisioning, which ended before teardown began.
func (r sightedReader) Get(ctx context.Context, key client.ObjectKey, obj client.Object, opts ...client.GetOption) error {
	id := fmt.Sprintf("%T %s", obj, key)
	err := r.cache.Get(ctx, key, obj, opts...)
	switch {
	case err == nil:
		r.s.see(r.run, id)
		return nil
	case !apierrors.IsNotFound(err) || r.s.seen(r.run, id):
		return err
	}
	err = r.live.Get(ctx, key, obj, opts...)
	if apierrors.IsNotFound(err) {
		r.s.see(r.run, id)
	}
	return err
}

// List is not used by teardown; it reads the API server.
func (r sightedReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	return r.live.List(ctx, list, opts...)
}
