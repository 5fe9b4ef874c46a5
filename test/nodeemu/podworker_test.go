package nodeemu

import (
	"errors"
	"io"
	"log"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// TestStatusReachesAnAPIServerThatWasAway: a status that changed while the
// API server refused connections is written once it answers again, as the
// kubelet's status manager does, without a further change to the pod.
func TestStatusReachesAnAPIServerThatWasAway(t *testing.T) {
	defer func(d time.Duration) { statusRetryPeriod = d }(statusRetryPeriod)
	statusRetryPeriod = 10 * time.Millisecond

	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: "db", UID: "uid-1"}}
	client := fake.NewClientset(pod)
	var away atomic.Bool
	away.Store(true)
	client.PrependReactor("*", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		if away.Load() {
			return true, nil, errors.New("dial tcp 127.0.0.1:6443: connect: connection refused")
		}
		return false, nil, nil
	})
	e := &Emulator{client: client, log: log.New(io.Discard, "", 0)}
	pw := &podWorker{e: e, pod: pod, key: "ns/db", ip: "127.0.0.9", sandboxUp: true, dirty: make(chan struct{}, 1), ctx: t.Context()}
	pw.apiWrites.Store(true)
	stop, done := make(chan struct{}), make(chan struct{})
	go pw.statusLoop(stop, done)
	defer func() { close(stop); <-done }()

	pw.markDirty() // the pod got its IP while the API server was away
	time.Sleep(50 * time.Millisecond)
	away.Store(false)
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, err := client.CoreV1().Pods("ns").Get(t.Context(), "db", metav1.GetOptions{})
		if err == nil && got.Status.PodIP == "127.0.0.9" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the pod's status never reached the API server once it answered again: %+v, %v", got.Status, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
