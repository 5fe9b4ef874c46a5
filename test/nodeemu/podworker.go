package nodeemu

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

const (
	defaultPGDATA   = "/var/lib/postgresql/data"
	groundTruthPoll = 200 * time.Millisecond
	// minimumGracePeriodSeconds is the kubelet's floor for killing a
	// container.
	minimumGracePeriodSeconds = 2
	imagePullBackoff          = 10 * time.Second
	maxRestartBackoff         = 5 * time.Minute
	emulatedImageID           = "emulator://postgres@local"
)

// podWorker runs one pod: mounts its volumes, runs its containers, and
// reports their state as the pod's status.
type podWorker struct {
	k   *kubelet
	e   *Emulator
	pod *corev1.Pod
	key string
	ip  string
	dir string

	ctx       context.Context
	cancel    context.CancelFunc
	grace     atomic.Int64 // nanoseconds, read by containers when ctx ends
	apiWrites atomic.Bool  // false when the node, not the pod, is going away
	done      chan struct{}
	dirty     chan struct{}

	mu          sync.Mutex
	volumeIDs   []string
	volumePaths map[string]string // pod volume name → host directory
	sandboxUp   bool
	initDone    bool
	init        []*containerState
	containers  []*containerState
	truth       PodTruth
	startTime   metav1.Time
}

type containerState struct {
	spec        corev1.Container
	init        bool
	state       corev1.ContainerState
	last        corev1.ContainerState
	restarts    int32
	containerID string
	run         *containerRun             // the running container; nil otherwise
	results     map[probeKind]probeResult // probe results of containerID
	probes      map[probeKind]*probeWorker
}

// isStarted is the container status's Started: running, and its startup
// probe (if any) has succeeded.
func (cs *containerState) isStarted() bool {
	if cs.state.Running == nil {
		return false
	}
	return cs.init || cs.spec.StartupProbe == nil || cs.results[startupProbe] == resultSuccess
}

// isReady is the container status's Ready: an init container that
// completed; a started container without a readiness probe; else the
// readiness probe's result.
func (cs *containerState) isReady() bool {
	if cs.init {
		return cs.state.Terminated != nil && cs.state.Terminated.ExitCode == 0
	}
	if !cs.isStarted() {
		return false
	}
	return cs.spec.ReadinessProbe == nil || cs.results[readinessProbe] == resultSuccess
}

func (k *kubelet) newPodWorker(pod *corev1.Pod) *podWorker {
	ctx, cancel := context.WithCancel(context.Background())
	pw := &podWorker{
		k: k, e: k.e, pod: pod.DeepCopy(),
		key: pod.Namespace + "/" + pod.Name,
		ip:  k.allocateIP(),
		dir: k.e.podDir(pod.UID),
		ctx: ctx, cancel: cancel,
		done:        make(chan struct{}),
		dirty:       make(chan struct{}, 1),
		volumePaths: map[string]string{},
		startTime:   metav1.Now(),
	}
	pw.apiWrites.Store(true)
	pw.grace.Store(int64(30 * time.Second))
	waiting := corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	for _, c := range pod.Spec.InitContainers {
		pw.init = append(pw.init, &containerState{spec: c, init: true, state: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}},
			results: map[probeKind]probeResult{}, probes: map[probeKind]*probeWorker{}})
	}
	for _, c := range pod.Spec.Containers {
		pw.containers = append(pw.containers, &containerState{spec: c, state: waiting,
			results: map[probeKind]probeResult{}, probes: map[probeKind]*probeWorker{}})
	}
	pw.truth = PodTruth{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID), IP: pw.ip, Observed: time.Now()}
	return pw
}

// terminate stops the pod's containers with grace (pod deletion) and writes
// their final state.
func (pw *podWorker) terminate(grace time.Duration) {
	pw.grace.Store(int64(grace))
	pw.cancel()
	<-pw.done
}

// shutdown stops the containers without reporting to the API server.
func (pw *podWorker) shutdown(grace time.Duration) {
	pw.apiWrites.Store(false)
	pw.terminate(grace)
}

func (pw *podWorker) run() {
	defer close(pw.done)
	defer removeAllQuiet(filepath.Join(pw.dir, "run"))
	stopStatus := make(chan struct{})
	statusDone := make(chan struct{})
	go pw.statusLoop(stopStatus, statusDone)
	pw.markDirty()

	if err := pw.mountVolumes(); err == nil {
		// The pod's IP reaches its status when the kubelet's relist
		// finds the sandbox; its containers start meanwhile.
		go func() {
			if pw.k.awaitRelist(pw.ctx) {
				pw.mu.Lock()
				pw.sandboxUp = true
				pw.mu.Unlock()
				pw.markDirty()
			}
		}()
		if pw.runInitContainers() {
			pw.mu.Lock()
			pw.initDone = true
			pw.mu.Unlock()
			pw.markDirty()
			var wg sync.WaitGroup
			for _, cs := range pw.containers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					pw.runContainer(cs)
				}()
			}
			wg.Wait()
		}
	}
	close(stopStatus)
	<-statusDone
	if pw.apiWrites.Load() {
		pw.writeStatus()
	}
}

func (pw *podWorker) runInitContainers() bool {
	for _, cs := range pw.init {
		pw.runContainer(cs)
		pw.mu.Lock()
		ok := cs.state.Terminated != nil && cs.state.Terminated.ExitCode == 0
		pw.mu.Unlock()
		if !ok || pw.ctx.Err() != nil {
			return false
		}
	}
	return true
}

func (pw *podWorker) markDirty() {
	select {
	case pw.dirty <- struct{}{}:
	default:
	}
}

// statusRetryPeriod is how long after a failed status write the pod's
// status is written again: the kubelet's status manager syncs every pod
// whose status the API server does not have yet every 10 seconds, so a
// status that changed while the API server was away reaches it when it is
// back.
var statusRetryPeriod = 10 * time.Second

// statusLoop writes the pod's status when it changed, and again after a
// failed write until one succeeds.
func (pw *podWorker) statusLoop(stop, done chan struct{}) {
	defer close(done)
	var retry <-chan time.Time
	for {
		select {
		case <-stop:
			return
		case <-pw.dirty:
			time.Sleep(20 * time.Millisecond) // coalesce bursts
		case <-retry:
		}
		retry = nil
		if pw.apiWrites.Load() && pw.writeStatus() != nil {
			retry = time.After(statusRetryPeriod)
		}
	}
}

func (pw *podWorker) writeStatus() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := pw.e.updatePodStatus(ctx, pw.pod.Namespace, pw.pod.Name, pw.pod.UID, pw.fillStatus)
	if err != nil && pw.apiWrites.Load() {
		pw.e.log.Printf("pod %s: status: %v", pw.key, err)
	}
	return err
}

// fillStatus computes the pod status from the containers' states, the way
// the kubelet's status manager does.
func (pw *podWorker) fillStatus(s *corev1.PodStatus) {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	now := metav1.Now()
	s.HostIP, s.HostIPs = hostIP, []corev1.HostIP{{IP: hostIP}}
	s.StartTime = &pw.startTime
	if pw.sandboxUp {
		s.PodIP, s.PodIPs = pw.ip, []corev1.PodIP{{IP: pw.ip}}
	}
	s.InitContainerStatuses = pw.containerStatuses(pw.init)
	s.ContainerStatuses = pw.containerStatuses(pw.containers)

	allReady := len(pw.containers) > 0
	for _, cs := range pw.containers {
		allReady = allReady && cs.isReady()
	}
	s.Phase = pw.phase()
	terminal := s.Phase == corev1.PodSucceeded || s.Phase == corev1.PodFailed
	allReady = allReady && !terminal
	setCondition(s, corev1.PodReadyToStartContainers, pw.sandboxUp && !terminal, "", now)
	setCondition(s, corev1.PodInitialized, pw.initDone || len(pw.init) == 0, reasonIf(!pw.initDone && len(pw.init) > 0, "ContainersNotInitialized"), now)
	setCondition(s, corev1.ContainersReady, allReady, reasonIf(!allReady, "ContainersNotReady"), now)
	setCondition(s, corev1.PodReady, allReady, reasonIf(!allReady, "ContainersNotReady"), now)
}

func (pw *podWorker) phase() corev1.PodPhase {
	if !pw.initDone && len(pw.init) > 0 {
		for _, cs := range pw.init {
			if t := cs.state.Terminated; t != nil && t.ExitCode != 0 && pw.pod.Spec.RestartPolicy == corev1.RestartPolicyNever {
				return corev1.PodFailed
			}
		}
		return corev1.PodPending
	}
	var waiting, running, terminated, failed int
	for _, cs := range pw.containers {
		switch {
		case cs.state.Running != nil:
			running++
		case cs.state.Terminated != nil:
			terminated++
			if cs.state.Terminated.ExitCode != 0 {
				failed++
			}
		case cs.state.Waiting != nil && cs.last.Terminated == nil:
			waiting++
		default:
			running++ // restarting after a crash
		}
	}
	stopping := pw.ctx.Err() != nil
	switch {
	case waiting > 0 && !stopping:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case terminated > 0 && (pw.pod.Spec.RestartPolicy != corev1.RestartPolicyAlways || stopping) && waiting == 0:
		if failed > 0 {
			return corev1.PodFailed
		}
		return corev1.PodSucceeded
	case stopping:
		return corev1.PodFailed
	}
	return corev1.PodPending
}

func (pw *podWorker) containerStatuses(states []*containerState) []corev1.ContainerStatus {
	var out []corev1.ContainerStatus
	for _, cs := range states {
		st := corev1.ContainerStatus{
			Name:                 cs.spec.Name,
			Image:                cs.spec.Image,
			State:                cs.state,
			LastTerminationState: cs.last,
			Ready:                cs.isReady(),
			RestartCount:         cs.restarts,
			Started:              ptr.To(cs.isStarted()),
			ContainerID:          cs.containerID,
		}
		if isPostgresImage(cs.spec.Image) {
			st.ImageID = emulatedImageID
		}
		out = append(out, st)
	}
	return out
}

func setCondition(s *corev1.PodStatus, t corev1.PodConditionType, ok bool, reason string, now metav1.Time) {
	status := corev1.ConditionFalse
	if ok {
		status = corev1.ConditionTrue
	}
	for i, c := range s.Conditions {
		if c.Type == t {
			if c.Status != status {
				s.Conditions[i].LastTransitionTime = now
			}
			s.Conditions[i].Status, s.Conditions[i].Reason = status, reason
			return
		}
	}
	s.Conditions = append(s.Conditions, corev1.PodCondition{Type: t, Status: status, Reason: reason, LastTransitionTime: now})
}

func reasonIf(cond bool, reason string) string {
	if cond {
		return reason
	}
	return ""
}

func (pw *podWorker) usesVolume(volumeID string) bool {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	return slices.Contains(pw.volumeIDs, volumeID)
}

func (pw *podWorker) pauseProcesses() error {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for _, cs := range pw.containers {
		if cs.run != nil {
			if err := cs.run.proc.Pause(); err != nil {
				return fmt.Errorf("pausing %s/%s: %w", pw.key, cs.spec.Name, err)
			}
		}
	}
	return nil
}

func (pw *podWorker) resumeProcesses() {
	pw.mu.Lock()
	defer pw.mu.Unlock()
	for _, cs := range pw.containers {
		if cs.run != nil {
			_ = cs.run.proc.Resume()
		}
	}
}

func (pw *podWorker) event(eventType, reason, format string, args ...any) {
	if pw.apiWrites.Load() {
		pw.e.kubeletEvents().Eventf(pw.pod, eventType, reason, format, args...)
	}
}

// containerEvent records an event about one container of the pod, with
// its field path as the kubelet's container reference has it.
func (pw *podWorker) containerEvent(cs *containerState, eventType, reason, format string, args ...any) {
	if !pw.apiWrites.Load() {
		return
	}
	field := "spec.containers{" + cs.spec.Name + "}"
	if cs.init {
		field = "spec.initContainers{" + cs.spec.Name + "}"
	}
	ref := &corev1.ObjectReference{
		Kind: "Pod", APIVersion: "v1", Namespace: pw.pod.Namespace, Name: pw.pod.Name, UID: pw.pod.UID,
		ResourceVersion: pw.pod.ResourceVersion, FieldPath: field,
	}
	pw.e.kubeletEvents().Eventf(ref, eventType, reason, format, args...)
}

// ensureDir creates dir owned by the database user.
func (pw *podWorker) ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return os.Chown(dir, int(pw.e.uid), int(pw.e.gid))
}
