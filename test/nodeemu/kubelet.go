package nodeemu

import (
	"context"
	"fmt"
	"hash/fnv"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
)

// kubelet runs the pods bound to the emulated node: one podWorker per pod.
type kubelet struct {
	e    *Emulator
	pods cache.Indexer

	mu      sync.Mutex
	workers map[string]*podWorker // namespace/name → worker
	ipBase  int
	nextIP  int
	usedIPs map[string]bool
	// removed is the last state of each pod the API server removed before
	// the worker saw its deletion (a deletion with no grace period): the
	// kubelet stops such a pod's containers with what that state says.
	removed map[string]*corev1.Pod
	// relistStart is when the kubelet began relisting containers, every
	// Defaults.RelistPeriod.
	relistStart time.Time
}

// awaitRelist waits for the kubelet's next relist, when it learns of a
// container that started or exited since the last one; false when ctx
// ended first.
func (k *kubelet) awaitRelist(ctx context.Context) bool {
	period := k.e.cfg.Defaults.RelistPeriod
	if period <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(period - time.Since(k.relistStart)%period)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func (e *Emulator) runKubelet(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(e.client, 10*time.Minute,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("spec.nodeName", e.cfg.NodeName).String()
		}))
	informer := factory.Core().V1().Pods().Informer()
	h := fnv.New32a()
	h.Write([]byte(e.cfg.StateDir))
	k := &kubelet{e: e, pods: informer.GetIndexer(), workers: map[string]*podWorker{}, usedIPs: map[string]bool{},
		ipBase: 10 + int(h.Sum32()%200), removed: map[string]*corev1.Pod{}, relistStart: time.Now()}
	e.setKubelet(k)
	w := e.newWorker("pod", k.syncPod)
	w.watchNoting(informer, k.noteRemoved)
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	w.run(ctx, 4)

	// The node is going away: stop every database process, leave the API alone.
	k.mu.Lock()
	workers := make([]*podWorker, 0, len(k.workers))
	for _, pw := range k.workers {
		workers = append(workers, pw)
	}
	k.mu.Unlock()
	for _, pw := range workers {
		pw.shutdown(5 * time.Second)
	}
	return ctx.Err()
}

func (e *Emulator) setKubelet(k *kubelet) {
	e.kubeletMu.Lock()
	e.kubelet = k
	e.kubeletMu.Unlock()
}

// syncPod starts a worker for a new pod, and terminates the worker of a
// pod being deleted (then deletes the pod object, as the kubelet does).
func (k *kubelet) syncPod(ctx context.Context, key string) (time.Duration, error) {
	obj, exists, err := k.pods.GetByKey(key)
	if err != nil {
		return 0, err
	}
	k.mu.Lock()
	pw := k.workers[key]
	k.mu.Unlock()

	if !exists {
		last := k.takeRemoved(key)
		if pw != nil {
			if last == nil || last.UID != pw.pod.UID {
				last = pw.pod
			}
			pw.shutdown(effectiveGracePeriod(last))
			k.forget(key, pw)
		}
		return 0, nil
	}
	pod := obj.(*corev1.Pod)
	if pw != nil && pw.pod.UID != pod.UID {
		pw.shutdown(0)
		k.forget(key, pw)
		pw = nil
	}
	if pod.DeletionTimestamp != nil {
		if pw != nil {
			pw.terminate(effectiveGracePeriod(pod))
			k.forget(key, pw)
		}
		err := k.e.client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
			GracePeriodSeconds: new(int64),
			Preconditions:      &metav1.Preconditions{UID: &pod.UID},
		})
		if err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return 0, fmt.Errorf("while deleting terminated pod: %w", err)
		}
		return 0, nil
	}
	if pw == nil {
		if pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed {
			return 0, nil
		}
		pw = k.newPodWorker(pod)
		k.mu.Lock()
		k.workers[key] = pw
		k.mu.Unlock()
		go pw.run()
	}
	return 0, nil
}

// effectiveGracePeriod is how long the kubelet gives a deleted pod's
// containers to stop before it kills them: the deletion's grace period, else
// the pod's, and never less than a second (the kubelet's pod workers,
// calculateEffectiveGracePeriod). A pod deleted with no grace period is
// gone from the API server at once; its containers still get that second.
func effectiveGracePeriod(pod *corev1.Pod) time.Duration {
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	switch {
	case pod.DeletionGracePeriodSeconds != nil:
		grace = *pod.DeletionGracePeriodSeconds
	case pod.Spec.TerminationGracePeriodSeconds != nil:
		grace = *pod.Spec.TerminationGracePeriodSeconds
	}
	return time.Duration(max(grace, 1)) * time.Second
}

// noteRemoved keeps the last state of a pod the API server removed.
func (k *kubelet) noteRemoved(obj any) {
	if tomb, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = tomb.Obj
	}
	pod, ok := obj.(*corev1.Pod)
	if !ok {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	k.removed[pod.Namespace+"/"+pod.Name] = pod
}

func (k *kubelet) takeRemoved(key string) *corev1.Pod {
	k.mu.Lock()
	defer k.mu.Unlock()
	pod := k.removed[key]
	delete(k.removed, key)
	return pod
}

func (k *kubelet) forget(key string, pw *podWorker) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.workers[key] == pw {
		delete(k.workers, key)
	}
	delete(k.usedIPs, pw.ip)
}

// allocateIP hands out a loopback address of its own to each pod.
func (k *kubelet) allocateIP() string {
	k.mu.Lock()
	defer k.mu.Unlock()
	for {
		k.nextIP++
		n := k.nextIP % (254 * 254)
		ip := fmt.Sprintf("127.%d.%d.%d", k.ipBase, 1+n/254, 1+n%254)
		if !k.usedIPs[ip] {
			k.usedIPs[ip] = true
			return ip
		}
	}
}

// workersUsing returns the workers whose pods mount volume volumeID.
func (k *kubelet) workersUsing(volumeID string) []*podWorker {
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []*podWorker
	for _, pw := range k.workers {
		if pw.usesVolume(volumeID) {
			out = append(out, pw)
		}
	}
	return out
}

// freezeVolume stops (SIGSTOP) every database process that uses volumeID and
// returns the function that resumes them, like fsfreeze around a snapshot.
func (e *Emulator) freezeVolume(volumeID string) (func(), error) {
	e.kubeletMu.Lock()
	k := e.kubelet
	e.kubeletMu.Unlock()
	if k == nil {
		return func() {}, nil
	}
	var paused []*podWorker
	for _, pw := range k.workersUsing(volumeID) {
		if err := pw.pauseProcesses(); err != nil {
			for _, p := range paused {
				p.resumeProcesses()
			}
			return nil, err
		}
		paused = append(paused, pw)
	}
	return func() {
		for _, p := range paused {
			p.resumeProcesses()
		}
	}, nil
}

// podDir is where a pod's volumes of its own, container roots and logs live.
func (e *Emulator) podDir(uid types.UID) string {
	return filepath.Join(e.cfg.StateDir, "pods", string(uid))
}

// updatePodStatus writes status, keeping the scheduler's PodScheduled
// condition and anything the API server set.
func (e *Emulator) updatePodStatus(ctx context.Context, namespace, name string, uid types.UID, mutate func(*corev1.PodStatus)) error {
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		pod, err := e.client.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if pod.UID != uid {
			return nil
		}
		mutate(&pod.Status)
		_, err = e.client.CoreV1().Pods(namespace).UpdateStatus(ctx, pod, metav1.UpdateOptions{})
		return err
	})
}

func removeAllQuiet(path string) { _ = os.RemoveAll(path) }
