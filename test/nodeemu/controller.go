package nodeemu

import (
	"context"
	"time"

	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
)

// reconciler is one role's sync function: it looks at the current state of
// the object named by key and returns how long to wait before looking again
// (0 = only on the next change).
type reconciler func(ctx context.Context, key string) (time.Duration, error)

// worker feeds keys of informer events to a reconciler, one key at a time per
// worker goroutine, retrying errors with exponential back-off.
type worker struct {
	name  string
	queue workqueue.TypedRateLimitingInterface[string]
	sync  reconciler
	e     *Emulator
}

func (e *Emulator) newWorker(name string, sync reconciler) *worker {
	limiter := workqueue.NewTypedItemExponentialFailureRateLimiter[string](100*time.Millisecond, 10*time.Second)
	return &worker{
		name:  name,
		queue: workqueue.NewTypedRateLimitingQueueWithConfig(limiter, workqueue.TypedRateLimitingQueueConfig[string]{Name: name}),
		sync:  sync,
		e:     e,
	}
}

// watch enqueues the key of every object informer reports.
func (w *worker) watch(informer cache.SharedIndexInformer) {
	w.watchNoting(informer, nil)
}

// watchNoting is watch that first hands each deleted object's last state
// to removed (when not nil), so that the sync of its key finds it.
func (w *worker) watchNoting(informer cache.SharedIndexInformer, removed func(obj any)) {
	enqueue := func(obj any) {
		if key, err := cache.DeletionHandlingMetaNamespaceKeyFunc(obj); err == nil {
			w.queue.Add(key)
		}
	}
	_, _ = informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    enqueue,
		UpdateFunc: func(_, obj any) { enqueue(obj) },
		DeleteFunc: func(obj any) {
			if removed != nil {
				removed(obj)
			}
			enqueue(obj)
		},
	})
}

func (w *worker) run(ctx context.Context, workers int) {
	go func() {
		<-ctx.Done()
		w.queue.ShutDown()
	}()
	done := make(chan struct{})
	for range workers {
		go func() {
			defer func() { done <- struct{}{} }()
			for w.next(ctx) {
			}
		}()
	}
	for range workers {
		<-done
	}
}

func (w *worker) next(ctx context.Context) bool {
	key, shutdown := w.queue.Get()
	if shutdown {
		return false
	}
	defer w.queue.Done(key)
	after, err := w.sync(ctx, key)
	switch {
	case err != nil:
		if ctx.Err() == nil {
			w.e.log.Printf("%s %s: %v", w.name, key, err)
		}
		w.queue.AddRateLimited(key)
	case after > 0:
		w.queue.Forget(key)
		w.queue.AddAfter(key, after)
	default:
		w.queue.Forget(key)
	}
	return true
}
