package nodeemu

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drillerd/drillerd/test/nodeemu/pgproc"
)

// mountVolumes makes every pod volume available as a directory, waiting
// (like the kubelet's volume manager) for claims to be bound. It returns an
// error only when the pod is stopped first.
func (pw *podWorker) mountVolumes() error {
	var lastErr string
	var firstFailure, lastEvent time.Time
	for {
		err := pw.tryMountVolumes()
		if err == nil {
			return nil
		}
		now := time.Now()
		if firstFailure.IsZero() {
			firstFailure = now
		}
		if err.Error() != lastErr || now.Sub(lastEvent) > time.Minute {
			if now.Sub(firstFailure) > 5*time.Second || err.Error() != lastErr && lastErr != "" {
				pw.event(corev1.EventTypeWarning, "FailedMount", "%v", err)
				lastEvent = now
			}
			lastErr = err.Error()
		}
		if sleepCtx(pw.ctx, 250*time.Millisecond) != nil {
			return pw.ctx.Err()
		}
	}
}

func (pw *podWorker) tryMountVolumes() error {
	ctx := pw.ctx
	paths := map[string]string{}
	var volumeIDs []string
	for _, v := range pw.pod.Spec.Volumes {
		own := filepath.Join(pw.dir, "volumes", v.Name)
		switch {
		case v.PersistentVolumeClaim != nil:
			claimName := v.PersistentVolumeClaim.ClaimName
			claim, err := pw.e.client.CoreV1().PersistentVolumeClaims(pw.pod.Namespace).Get(ctx, claimName, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("unable to attach or mount volumes: unmounted volumes=[%s]: persistentvolumeclaim %q not found", v.Name, claimName)
			}
			if claim.Spec.VolumeName == "" || claim.Status.Phase != corev1.ClaimBound {
				return fmt.Errorf("unable to attach or mount volumes: unmounted volumes=[%s]: persistentvolumeclaim %q is not bound", v.Name, claimName)
			}
			pv, err := pw.e.client.CoreV1().PersistentVolumes().Get(ctx, claim.Spec.VolumeName, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("MountVolume.SetUp failed for volume %q: %v", claim.Spec.VolumeName, err)
			}
			if pv.Spec.CSI == nil || pv.Spec.CSI.Driver != DriverName {
				return fmt.Errorf("MountVolume.MountDevice failed for volume %q: volume of an unsupported driver (only %s)", pv.Name, DriverName)
			}
			path, ok := pw.e.store.VolumePath(pv.Spec.CSI.VolumeHandle)
			if !ok {
				return fmt.Errorf("MountVolume.SetUp failed for volume %q: volume %s does not exist", pv.Name, pv.Spec.CSI.VolumeHandle)
			}
			paths[v.Name] = path
			volumeIDs = append(volumeIDs, pv.Spec.CSI.VolumeHandle)
		case v.EmptyDir != nil:
			if err := pw.ensureDir(own); err != nil {
				return err
			}
			paths[v.Name] = own
		case v.ConfigMap != nil:
			cm, err := pw.e.client.CoreV1().ConfigMaps(pw.pod.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				if !ptrValue(v.ConfigMap.Optional) {
					return fmt.Errorf("MountVolume.SetUp failed for volume %q : configmap %q not found", v.Name, v.ConfigMap.Name)
				}
				cm = &corev1.ConfigMap{}
			}
			if err := writeFiles(own, stringMapBytes(cm.Data), v.ConfigMap.Items, pw.e.uid, pw.e.gid); err != nil {
				return err
			}
			paths[v.Name] = own
		case v.Secret != nil:
			s, err := pw.e.client.CoreV1().Secrets(pw.pod.Namespace).Get(ctx, v.Secret.SecretName, metav1.GetOptions{})
			if err != nil {
				if !ptrValue(v.Secret.Optional) {
					return fmt.Errorf("MountVolume.SetUp failed for volume %q : secret %q not found", v.Name, v.Secret.SecretName)
				}
				s = &corev1.Secret{}
			}
			if err := writeFiles(own, s.Data, v.Secret.Items, pw.e.uid, pw.e.gid); err != nil {
				return err
			}
			paths[v.Name] = own
		case v.Projected != nil:
			if err := pw.ensureDir(own); err != nil {
				return err
			}
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					if cm, err := pw.e.client.CoreV1().ConfigMaps(pw.pod.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{}); err == nil {
						if err := writeFiles(own, stringMapBytes(cm.Data), src.ConfigMap.Items, pw.e.uid, pw.e.gid); err != nil {
							return err
						}
					}
				}
				if src.Secret != nil {
					if s, err := pw.e.client.CoreV1().Secrets(pw.pod.Namespace).Get(ctx, src.Secret.Name, metav1.GetOptions{}); err == nil {
						if err := writeFiles(own, s.Data, src.Secret.Items, pw.e.uid, pw.e.gid); err != nil {
							return err
						}
					}
				}
			}
			paths[v.Name] = own
		case v.HostPath != nil:
			paths[v.Name] = v.HostPath.Path
		default:
			return fmt.Errorf("MountVolume.SetUp failed for volume %q: volume type not supported by the node emulator", v.Name)
		}
	}
	pw.mu.Lock()
	pw.volumePaths = paths
	pw.volumeIDs = volumeIDs
	pw.mu.Unlock()
	return nil
}

// mountTable builds the container's view of its volume mounts.
func (pw *podWorker) mountTable(c *corev1.Container, env map[string]string) (mountTable, error) {
	rootfs := filepath.Join(pw.dir, "rootfs", c.Name)
	if err := pw.ensureDir(rootfs); err != nil {
		return mountTable{}, err
	}
	pw.mu.Lock()
	defer pw.mu.Unlock()
	var mounts []mount
	for _, vm := range c.VolumeMounts {
		host, ok := pw.volumePaths[vm.Name]
		if !ok {
			return mountTable{}, fmt.Errorf("volume %q of mount %s is not defined", vm.Name, vm.MountPath)
		}
		sub := vm.SubPath
		if vm.SubPathExpr != "" {
			sub = expand(vm.SubPathExpr, env)
		}
		if sub != "" {
			host = filepath.Join(host, filepath.Clean("/"+sub))
			if _, err := os.Stat(host); errors.Is(err, os.ErrNotExist) {
				if err := pw.ensureDir(host); err != nil {
					return mountTable{}, err
				}
			}
		}
		mounts = append(mounts, mount{containerPath: filepath.Clean(vm.MountPath), hostPath: host})
	}
	return newMountTable(rootfs, mounts), nil
}

// runContainer runs one container until the pod stops, or until it has
// finished and its restart policy does not bring it back.
func (pw *podWorker) runContainer(cs *containerState) {
	if !isPostgresImage(cs.spec.Image) {
		pw.imagePullLoop(cs)
		return
	}
	pw.event(corev1.EventTypeNormal, "Pulling", "Pulling image %q", cs.spec.Image)
	delay := durationKnob(pw.pod.Annotations, AnnotationStartDelay, pw.e.cfg.Defaults.StartDelay)
	if sleepCtx(pw.ctx, delay) != nil {
		pw.setTerminatedIfWaiting(cs)
		return
	}
	pw.event(corev1.EventTypeNormal, "Pulled", "Successfully pulled image %q in %s", cs.spec.Image, delay)
	backoff := pw.e.cfg.Defaults.RestartBackoff
	for {
		exitCode := pw.startAndWait(cs)
		if pw.ctx.Err() != nil {
			return
		}
		policy := pw.pod.Spec.RestartPolicy
		if policy == corev1.RestartPolicyNever || (policy == corev1.RestartPolicyOnFailure && exitCode == 0) {
			return
		}
		pw.mu.Lock()
		cs.last = cs.state
		cs.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{
			Reason:  "CrashLoopBackOff",
			Message: fmt.Sprintf("back-off %s restarting failed container=%s pod=%s_%s(%s)", backoff, cs.spec.Name, pw.pod.Name, pw.pod.Namespace, pw.pod.UID),
		}}
		pw.mu.Unlock()
		pw.markDirty()
		pw.event(corev1.EventTypeWarning, "BackOff", "Back-off restarting failed container %s in pod %s_%s(%s)", cs.spec.Name, pw.pod.Name, pw.pod.Namespace, pw.pod.UID)
		if sleepCtx(pw.ctx, backoff) != nil {
			return
		}
		backoff = min(2*backoff, maxRestartBackoff)
		pw.mu.Lock()
		cs.restarts++
		pw.mu.Unlock()
	}
}

// imagePullLoop reports an image the emulator cannot run, alternating
// ErrImagePull and ImagePullBackOff as the kubelet does.
func (pw *podWorker) imagePullLoop(cs *containerState) {
	backoff := imagePullBackoff
	msg := fmt.Sprintf("failed to pull and unpack image %q: the node emulator runs only postgres images", cs.spec.Image)
	for {
		pw.event(corev1.EventTypeNormal, "Pulling", "Pulling image %q", cs.spec.Image)
		pw.setWaiting(cs, "ErrImagePull", msg)
		pw.event(corev1.EventTypeWarning, "Failed", "Failed to pull image %q: %s", cs.spec.Image, msg)
		pw.event(corev1.EventTypeWarning, "Failed", "Error: ErrImagePull")
		if sleepCtx(pw.ctx, time.Second) != nil {
			break
		}
		pw.setWaiting(cs, "ImagePullBackOff", fmt.Sprintf("Back-off pulling image %q: ErrImagePull: %s", cs.spec.Image, msg))
		pw.event(corev1.EventTypeNormal, "BackOff", "Back-off pulling image %q", cs.spec.Image)
		pw.event(corev1.EventTypeWarning, "Failed", "Error: ImagePullBackOff")
		if sleepCtx(pw.ctx, backoff) != nil {
			break
		}
		backoff = min(2*backoff, maxRestartBackoff)
	}
	pw.setTerminatedIfWaiting(cs)
}

func (pw *podWorker) setWaiting(cs *containerState, reason, message string) {
	pw.mu.Lock()
	cs.state = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}}
	pw.mu.Unlock()
	pw.markDirty()
}

// setTerminatedIfWaiting records the end of a container that never ran.
func (pw *podWorker) setTerminatedIfWaiting(cs *containerState) {
	pw.mu.Lock()
	if cs.state.Waiting != nil {
		cs.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
			ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "The container could not be located when the pod was terminated",
			FinishedAt: metav1.Now(),
		}}
	}
	pw.mu.Unlock()
	pw.markDirty()
}

// startAndWait starts the database once and waits for it to exit or for
// the pod to stop; it returns the exit code.
func (pw *podWorker) startAndWait(cs *containerState) int32 {
	c := &cs.spec
	var env map[string]string
	for {
		var err error
		env, err = pw.e.resolveEnv(pw.ctx, pw.pod, c, pw.ip)
		if err == nil {
			break
		}
		pw.setWaiting(cs, "CreateContainerConfigError", err.Error())
		pw.event(corev1.EventTypeWarning, "Failed", "Error: %v", err)
		if sleepCtx(pw.ctx, 2*time.Second) != nil {
			pw.setTerminatedIfWaiting(cs)
			return 137
		}
	}
	args, err := serverArgs(c, env)
	if err != nil {
		return pw.containerFailed(cs, 128, "StartError", err)
	}
	table, err := pw.mountTable(c, env)
	if err != nil {
		return pw.containerFailed(cs, 128, "StartError", err)
	}
	for i := range args {
		args[i] = table.translateArg(args[i])
		// In a pod's network namespace every address (*, 0.0.0.0) is the
		// pod's own; here that is its loopback address.
		if strings.HasPrefix(args[i], "listen_addresses=") {
			args[i] = "listen_addresses=" + pw.ip
		}
	}
	pgdata := env["PGDATA"]
	if pgdata == "" {
		pgdata = defaultPGDATA
	}
	env["PGDATA"] = table.hostPath(pgdata)
	runDir := filepath.Join(pw.dir, "run", c.Name)
	if err := pw.ensureDir(filepath.Dir(runDir)); err != nil {
		return pw.containerFailed(cs, 128, "StartError", err)
	}
	socketDir, err := os.MkdirTemp("", "pg")
	if err != nil {
		return pw.containerFailed(cs, 128, "StartError", err)
	}
	defer os.RemoveAll(socketDir)
	logDir := filepath.Join(pw.dir, "logs")
	_ = os.MkdirAll(logDir, 0o755)
	port := serverPort(args, env)
	spec := pgproc.Spec{
		DataDir:       env["PGDATA"],
		ListenAddress: pw.ip,
		Port:          port,
		Args:          args,
		Env:           env,
		UID:           pw.e.uid,
		GID:           pw.e.gid,
		RuntimeDir:    socketDir,
		LogPath:       filepath.Join(logDir, c.Name+".log"),
	}
	if _, err := pgproc.Initialize(pw.ctx, spec); err != nil {
		if pw.ctx.Err() != nil {
			pw.setTerminatedIfWaiting(cs)
			return 137
		}
		return pw.containerFailed(cs, 1, "Error", err)
	}
	proc, err := pgproc.Start(spec)
	if err != nil {
		return pw.containerFailed(cs, 1, "Error", err)
	}
	started := metav1.NewTime(proc.StartedAt())
	pw.mu.Lock()
	cs.proc = proc
	cs.started = true
	cs.ready = false
	cs.containerID = fmt.Sprintf("emulator://%s-%s-%d", pw.pod.UID, c.Name, cs.restarts)
	cs.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
	pw.truth.Processes = append(pw.truth.Processes, ProcessTruth{Container: c.Name, Started: proc.StartedAt()})
	run := len(pw.truth.Processes) - 1
	pw.mu.Unlock()
	pw.writeTruth()
	pw.markDirty()
	pw.event(corev1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	pw.event(corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	pw.e.log.Printf("pod %s: started %s (pid %d) on %s:%d", pw.key, c.Name, proc.Pid(), pw.ip, port)

	probeCtx, stopProbe := context.WithCancel(pw.ctx)
	defer stopProbe()
	go pw.probe(probeCtx, cs, run, net.JoinHostPort(pw.ip, strconv.Itoa(port)))
	if after, ok := pw.pod.Annotations[AnnotationCrashAfter]; ok {
		if d, err := time.ParseDuration(after); err == nil {
			crash := time.AfterFunc(d, func() { _ = proc.Kill() })
			defer crash.Stop()
		}
	}

	select {
	case <-proc.Done():
	case <-pw.ctx.Done():
		pw.event(corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
		_ = proc.Stop(time.Duration(pw.grace.Load()))
	}
	stopProbe()
	code := int32(proc.ExitCode())
	if proc.ExitSignal() != "" {
		code = 137
	}
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	pw.mu.Lock()
	cs.proc = nil
	cs.ready = false
	cs.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, StartedAt: started, FinishedAt: metav1.Now(), ContainerID: cs.containerID,
	}}
	pw.truth.Processes[run].Exited = time.Now()
	pw.truth.Processes[run].ExitCode = int(code)
	pw.mu.Unlock()
	pw.writeTruth()
	pw.markDirty()
	return code
}

func (pw *podWorker) containerFailed(cs *containerState, code int32, reason string, err error) int32 {
	now := metav1.Now()
	pw.mu.Lock()
	cs.started = false
	cs.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: err.Error(), StartedAt: now, FinishedAt: now,
	}}
	pw.mu.Unlock()
	pw.markDirty()
	pw.event(corev1.EventTypeWarning, "Failed", "Error: %v", err)
	return code
}

// probe keeps the container's readiness equal to "accepts connections".
func (pw *podWorker) probe(ctx context.Context, cs *containerState, run int, addr string) {
	interval := probeUntilReady
	for {
		probeCtx, cancel := context.WithTimeout(ctx, time.Second)
		ready, _ := pgproc.Probe(probeCtx, addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		pw.mu.Lock()
		changed := cs.ready != ready
		cs.ready = ready
		first := ready && pw.truth.Processes[run].FirstAccepting.IsZero()
		if first {
			pw.truth.Processes[run].FirstAccepting = time.Now()
		}
		pw.mu.Unlock()
		if first {
			pw.writeTruth()
			interval = probeWhenReady
		}
		if changed {
			pw.markDirty()
		}
		if sleepCtx(ctx, interval) != nil {
			return
		}
	}
}

func (pw *podWorker) writeTruth() {
	pw.mu.Lock()
	t := pw.truth
	t.Processes = append([]ProcessTruth(nil), t.Processes...)
	pw.mu.Unlock()
	if err := pw.e.truth.writePod(t); err != nil {
		pw.e.log.Printf("pod %s: ground truth: %v", pw.key, err)
	}
}
