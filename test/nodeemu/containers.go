package nodeemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

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
	var fsGroup *int64
	if sc := pw.pod.Spec.SecurityContext; sc != nil {
		fsGroup = sc.FSGroup
	}
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
			if err := (fileVolume{v.ConfigMap.DefaultMode, fsGroup}).writeFiles(own, stringMapBytes(cm.Data), v.ConfigMap.Items); err != nil {
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
			if err := (fileVolume{v.Secret.DefaultMode, fsGroup}).writeFiles(own, s.Data, v.Secret.Items); err != nil {
				return err
			}
			paths[v.Name] = own
		case v.Projected != nil:
			files := fileVolume{v.Projected.DefaultMode, fsGroup}
			if err := files.ensureDir(own); err != nil {
				return err
			}
			for _, src := range v.Projected.Sources {
				if src.ConfigMap != nil {
					if cm, err := pw.e.client.CoreV1().ConfigMaps(pw.pod.Namespace).Get(ctx, src.ConfigMap.Name, metav1.GetOptions{}); err == nil {
						if err := files.writeFiles(own, stringMapBytes(cm.Data), src.ConfigMap.Items); err != nil {
							return err
						}
					}
				}
				if src.Secret != nil {
					if s, err := pw.e.client.CoreV1().Secrets(pw.pod.Namespace).Get(ctx, src.Secret.Name, metav1.GetOptions{}); err == nil {
						if err := files.writeFiles(own, s.Data, src.Secret.Items); err != nil {
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
	if !cs.init {
		stop := pw.startProbes(cs)
		defer stop()
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
		exitCode, killedByProbe := pw.startAndWait(cs)
		if pw.ctx.Err() != nil {
			return
		}
		// A container killed for a failed probe is restarted unless the
		// policy is Never, whatever its exit code (the kubelet's
		// shouldRestartOnFailure).
		switch policy := pw.pod.Spec.RestartPolicy; {
		case policy == corev1.RestartPolicyNever:
			return
		case policy == corev1.RestartPolicyOnFailure && exitCode == 0 && !killedByProbe:
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

// startProbes starts a worker for each probe of the container, as the
// kubelet's probe manager does when a pod is added; the returned function
// stops them.
func (pw *podWorker) startProbes(cs *containerState) (stop func()) {
	ctx, cancel := context.WithCancel(pw.ctx)
	var wg sync.WaitGroup
	for _, kind := range []probeKind{startupProbe, readinessProbe, livenessProbe} {
		spec := kind.of(&cs.spec)
		if spec == nil {
			continue
		}
		w := newProbeWorker(kind, spec, pw.e.clock, containerProber{pw: pw, cs: cs})
		pw.mu.Lock()
		cs.probes[kind] = w
		pw.mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			w.run(ctx)
		}()
	}
	return func() {
		cancel()
		wg.Wait()
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

// containerRun is one start of a container: its main process, what an exec
// into it sees, and where its output and termination message go.
type containerRun struct {
	proc           *pgproc.Process
	view           execView
	logPath        string        // the run's log file (CRI format)
	log            *containerLog // nil once the run has ended
	stdout, stderr *logStream
	terminationLog string // host file behind terminationMessagePath
	killedByProbe  bool
}

// openLog starts the run's log, as the runtime does when it creates the
// container.
func (run *containerRun) openLog(now func() time.Time) error {
	log, err := createContainerLog(run.logPath, now)
	if err != nil {
		return err
	}
	run.log, run.stdout, run.stderr = log, log.stream(streamStdout), log.stream(streamStderr)
	return nil
}

// closeLog ends the run's log once its processes are gone.
func (run *containerRun) closeLog() {
	if run.log == nil {
		return
	}
	_ = run.stdout.flush()
	_ = run.stderr.flush()
	_ = run.log.close()
	run.log = nil
}

// emulatedContainerID names one run of a container; the kubelet reports it
// as the container status's containerID.
func emulatedContainerID(uid types.UID, container string, restarts int32) string {
	return fmt.Sprintf("emulator://%s-%s-%d", uid, container, restarts)
}

// containerLogPath is where the log of the run that containerID names
// lives: pods/<uid>/logs/<container>/<restarts>.log, as the kubelet's
// /var/log/pods/<namespace>_<pod>_<uid>/<container>/<restarts>.log.
func (e *Emulator) containerLogPath(uid types.UID, container, containerID string) (string, bool) {
	n, ok := strings.CutPrefix(containerID, fmt.Sprintf("emulator://%s-%s-", uid, container))
	if !ok {
		return "", false
	}
	restarts, err := strconv.ParseInt(n, 10, 32)
	if err != nil || restarts < 0 {
		return "", false
	}
	return runLogPath(e.podDir(uid), container, int32(restarts)), true
}

func runLogPath(podDir, container string, restarts int32) string {
	return filepath.Join(podDir, "logs", container, fmt.Sprintf("%d.log", restarts))
}

// removeOldLogs removes the logs of a container's runs before the previous
// one, as the kubelet's garbage collection removes dead containers with
// their logs (it keeps one per container for --previous).
func removeOldLogs(podDir, container string, restarts int32) {
	for n := restarts - 2; n >= 0; n-- {
		path := runLogPath(podDir, container, n)
		rotated, _ := filepath.Glob(path + ".*")
		for _, p := range append(rotated, path) {
			_ = os.Remove(p)
		}
	}
}

// startAndWait starts the container's server once and waits for it to
// exit or for the pod to stop; it returns the exit code and whether the
// kubelet killed it for a failed liveness or startup probe.
func (pw *podWorker) startAndWait(cs *containerState) (int32, bool) {
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
			return 137, false
		}
	}
	img, _ := parsePostgresImage(c.Image)
	major, binDir, haveServer := pw.e.postgres.serverFor(img)
	args, err := serverArgs(c, env)
	if err != nil {
		return pw.containerFailed(cs, 128, "StartError", err), false
	}
	table, err := pw.mountTable(c, env)
	if err != nil {
		return pw.containerFailed(cs, 128, "StartError", err), false
	}
	runtimeDir, err := os.MkdirTemp("", "pg")
	if err != nil {
		return pw.containerFailed(cs, 128, "StartError", err), false
	}
	defer os.RemoveAll(runtimeDir)
	containerID := emulatedContainerID(pw.pod.UID, c.Name, cs.restarts)
	terminationLog, err := pw.terminationLogFile(c.Name, cs.restarts)
	if err != nil {
		return pw.containerFailed(cs, 128, "StartError", err), false
	}
	terminationPath := c.TerminationMessagePath
	if terminationPath == "" {
		terminationPath = corev1.TerminationMessagePathDefault
	}
	// The image's server keeps its socket in /var/run/postgresql; here
	// that is the container's runtime directory.
	table = table.with(socketDir, runtimeDir).with(terminationPath, terminationLog)
	groups := podGroups(pw.pod)
	view := execView{
		containerID: containerID, env: imageEnv(major, binDir, env), table: table,
		workDir: c.WorkingDir, uid: pw.e.uid, gid: pw.e.gid, groups: groups,
	}
	if view.workDir == "" {
		view.workDir = "/"
	}
	if err := pw.ensureDir(table.hostPath(view.workDir)); err != nil {
		return pw.containerFailed(cs, 128, "StartError", err), false
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
	removeOldLogs(pw.dir, c.Name, cs.restarts)
	run := &containerRun{view: view, logPath: runLogPath(pw.dir, c.Name, cs.restarts), terminationLog: terminationLog}
	if err := run.openLog(pw.e.clock.Now); err != nil {
		return pw.containerFailed(cs, 128, "StartError", err), false
	}
	defer run.closeLog()

	if !haveServer {
		fileMajor := dataDirMajor(env["PGDATA"])
		if major == "" || fileMajor == "" || fileMajor == major {
			installed := strings.Join(pw.e.postgres.majors(), ", ")
			return pw.containerFailed(cs, 128, "StartError", fmt.Errorf(
				"the node emulator cannot run %s: this machine has no PostgreSQL %s server (%s/%s/bin/postgres); installed: %s",
				c.Image, major, pw.e.postgres.root, major, installed)), false
		}
		// The image's server starts, finds a data directory of another
		// major version, says so and exits with 1.
		version := img.version
		if version == "" {
			version = major
		}
		return pw.refuseDataDir(cs, run, containerID, incompatibleDataDirLog(env["PGDATA"], fileMajor, version, time.Now())), false
	}

	port := serverPort(args, env)
	spec := pgproc.Spec{
		DataDir:       env["PGDATA"],
		ListenAddress: pw.ip,
		Port:          port,
		Args:          args,
		Env:           env,
		UID:           pw.e.uid,
		GID:           pw.e.gid,
		Groups:        groups,
		RuntimeDir:    runtimeDir,
		Stdout:        run.stdout,
		Stderr:        run.stderr,
		BinDir:        binDir,
	}
	if _, err := pgproc.Initialize(pw.ctx, spec); err != nil {
		if pw.ctx.Err() != nil {
			pw.setTerminatedIfWaiting(cs)
			return 137, false
		}
		// The entrypoint ran, said why on its output and exited 1: the
		// kubelet reports what the termination message policy gives.
		run.closeLog()
		pw.k.awaitRelist(pw.ctx) // when the kubelet sees it exited
		return pw.containerExited(cs, containerID, 1, "Error", terminationMessage(c, run, 1)), false
	}
	// The server's own word for the moment it accepts connections is its
	// log line; the probe below is the fallback (a configuration that logs
	// elsewhere).
	ready := make(chan time.Time, 1)
	spec.Stderr = &readyWatcher{w: run.stderr, ready: ready}
	proc, err := pgproc.Start(spec)
	if err != nil {
		return pw.containerFailed(cs, 1, "Error", err), false
	}
	run.proc = proc
	started := metav1.NewTime(proc.StartedAt())
	pw.mu.Lock()
	cs.run = run // the runtime's: a paused node pauses it
	pw.truth.Processes = append(pw.truth.Processes, ProcessTruth{Container: c.Name, Started: proc.StartedAt()})
	truthIndex := len(pw.truth.Processes) - 1
	pw.mu.Unlock()
	pw.writeTruth()
	pw.containerEvent(cs, corev1.EventTypeNormal, "Created", "Created container: %s", c.Name)
	pw.containerEvent(cs, corev1.EventTypeNormal, "Started", "Started container %s", c.Name)
	pw.e.log.Printf("pod %s: started %s (pid %d, PostgreSQL %s) on %s:%d", pw.key, c.Name, proc.Pid(), major, pw.ip, port)

	exitedAt := make(chan time.Time, 1) // when the process exited, whenever the kubelet learns of it
	go func() {
		<-proc.Done()
		exitedAt <- time.Now()
	}()
	truthCtx, stopTruth := context.WithCancel(pw.ctx)
	defer stopTruth()
	go pw.recordFirstAccepting(truthCtx, truthIndex, net.JoinHostPort(pw.ip, strconv.Itoa(port)), ready)
	if after, ok := pw.pod.Annotations[AnnotationCrashAfter]; ok {
		if d, err := time.ParseDuration(after); err == nil {
			crash := time.AfterFunc(d, func() { _ = proc.Kill() })
			defer crash.Stop()
		}
	}

	// The kubelet learns of the container at its next relist: the pod's
	// status names it Running, and its probes begin, only then. A process
	// that exited before is seen exited, never running.
	exited := false
	relisted := pw.k.awaitRelist(pw.ctx)
	pw.mu.Lock()
	cs.containerID = containerID
	pw.mu.Unlock()
	if relisted {
		select {
		case <-proc.Done():
			exited = true
		default:
			pw.mu.Lock()
			cs.results = map[probeKind]probeResult{}
			cs.state = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
			pw.truth.Processes[truthIndex].Reported = time.Now()
			startedNow := cs.isStarted()
			pw.mu.Unlock()
			pw.writeTruth()
			pw.markDirty()
			if startedNow {
				pw.triggerReadiness(cs)
			}
		}
	}

	switch {
	case exited:
	case pw.ctx.Err() != nil:
		pw.containerEvent(cs, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
		_ = proc.Stop(time.Duration(pw.grace.Load()))
	default:
		select {
		case <-proc.Done():
			// Exited on its own: the kubelet sees it at its next relist.
			pw.k.awaitRelist(pw.ctx)
		case <-pw.ctx.Done():
			pw.containerEvent(cs, corev1.EventTypeNormal, "Killing", "Stopping container %s", c.Name)
			_ = proc.Stop(time.Duration(pw.grace.Load()))
		}
	}
	stopTruth()
	code := int32(proc.ExitCode())
	if proc.ExitSignal() != "" {
		code = 137
	}
	exitTime := <-exitedAt
	pw.mu.Lock()
	pw.truth.Processes[truthIndex].Exited = exitTime
	pw.truth.Processes[truthIndex].ExitCode = int(code)
	killed := run.killedByProbe
	pw.mu.Unlock()
	pw.finishRun(cs, run, code, started)
	return code, killed
}

// podGroups are the supplementary groups the container runtime gives a
// pod's processes: its fsGroup and supplementalGroups.
func podGroups(pod *corev1.Pod) []uint32 {
	sc := pod.Spec.SecurityContext
	if sc == nil {
		return nil
	}
	var groups []uint32
	if sc.FSGroup != nil {
		groups = append(groups, uint32(*sc.FSGroup))
	}
	for _, g := range sc.SupplementalGroups {
		groups = append(groups, uint32(g))
	}
	return groups
}

// refuseDataDir plays a server that exits at once with the given output.
func (pw *podWorker) refuseDataDir(cs *containerState, run *containerRun, containerID, output string) int32 {
	_, _ = io.WriteString(run.stderr, output)
	now := time.Now()
	started := metav1.NewTime(now)
	pw.mu.Lock()
	cs.containerID = containerID
	cs.results = map[probeKind]probeResult{}
	pw.truth.Processes = append(pw.truth.Processes, ProcessTruth{Container: cs.spec.Name, Started: now, Exited: now, ExitCode: 1})
	pw.mu.Unlock()
	pw.containerEvent(cs, corev1.EventTypeNormal, "Created", "Created container: %s", cs.spec.Name)
	pw.containerEvent(cs, corev1.EventTypeNormal, "Started", "Started container %s", cs.spec.Name)
	pw.e.log.Printf("pod %s: %s: the server of %s refuses its data directory", pw.key, cs.spec.Name, cs.spec.Image)
	pw.k.awaitRelist(pw.ctx) // when the kubelet sees it exited
	pw.finishRun(cs, run, 1, started)
	return 1
}

// finishRun records a run's end as the kubelet reports it, with the
// termination message.
func (pw *podWorker) finishRun(cs *containerState, run *containerRun, code int32, started metav1.Time) {
	reason := "Completed"
	if code != 0 {
		reason = "Error"
	}
	run.closeLog()
	message := terminationMessage(&cs.spec, run, code)
	pw.mu.Lock()
	cs.run = nil
	cs.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: message, StartedAt: started, FinishedAt: metav1.Now(), ContainerID: cs.containerID,
	}}
	pw.mu.Unlock()
	pw.writeTruth()
	pw.markDirty()
}

func (pw *podWorker) containerFailed(cs *containerState, code int32, reason string, err error) int32 {
	now := metav1.Now()
	pw.mu.Lock()
	cs.run = nil
	cs.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: err.Error(), StartedAt: now, FinishedAt: now,
	}}
	pw.mu.Unlock()
	pw.markDirty()
	pw.containerEvent(cs, corev1.EventTypeWarning, "Failed", "Error: %v", err)
	return code
}

// containerExited records a container whose process ran and exited with
// code before it served, with the termination message the kubelet reports.
func (pw *podWorker) containerExited(cs *containerState, containerID string, code int32, reason, message string) int32 {
	now := metav1.Now()
	pw.mu.Lock()
	cs.run = nil
	cs.containerID = containerID
	cs.state = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: code, Reason: reason, Message: message, StartedAt: now, FinishedAt: now, ContainerID: containerID,
	}}
	pw.mu.Unlock()
	pw.markDirty()
	return code
}

// terminationLogFile creates the empty file the kubelet mounts at a
// container's terminationMessagePath.
func (pw *podWorker) terminationLogFile(container string, restarts int32) (string, error) {
	dir := filepath.Join(pw.dir, "containers", container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, fmt.Sprintf("termination-log.%d", restarts))
	if err := os.WriteFile(p, nil, 0o666); err != nil {
		return "", err
	}
	return p, os.Chown(p, int(pw.e.uid), int(pw.e.gid))
}

// Limits of a termination message (pkg/kubelet/container).
const (
	maxTerminationMessage         = 4 * 1024
	maxTerminationMessageLogBytes = 2 * 1024
	maxTerminationMessageLogLines = 80
)

// terminationMessage is what the kubelet reports for a finished run: what
// the container wrote to its terminationMessagePath; else, with policy
// FallbackToLogsOnError and a non-zero exit code, the end of the run's log;
// else nothing.
func terminationMessage(c *corev1.Container, run *containerRun, code int32) string {
	if data := readTail(run.terminationLog, maxTerminationMessage); len(data) > 0 {
		return string(data)
	}
	if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError || code == 0 {
		return ""
	}
	return lastLogLines(run.logPath, maxTerminationMessageLogLines, maxTerminationMessageLogBytes)
}

// readTail reads at most the last limit bytes of a file.
func readTail(path string, limit int64) []byte {
	f, err := os.Open(path)
	if err != nil {
		return nil
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil
	}
	start := max(0, info.Size()-limit)
	data, _ := io.ReadAll(io.NewSectionReader(f, start, info.Size()-start))
	return data
}

// imageEnv is the container's environment as the postgres image defines
// it, overridden by the container's own. PATH starts with the binaries of
// the image's major version: in the image, nothing else in PATH holds a
// PostgreSQL program; on this machine /usr/bin holds Debian's wrappers.
func imageEnv(major, binDir string, container map[string]string) map[string]string {
	env := map[string]string{
		"PATH":   binDir + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"PGDATA": defaultPGDATA,
		"LANG":   "C.UTF-8",
		"HOME":   "/root",
	}
	if major != "" {
		env["PG_MAJOR"] = major
	}
	for k, v := range container {
		env[k] = v
	}
	return env
}

// recordFirstAccepting records in the ground truth when the server first
// accepted connections: the moment it logged so (ready), else the first
// probe (a startup packet every groundTruthPoll) it did not turn away. It
// is the emulator's own measurement, for tests; readiness comes from the
// pod's readiness probe only.
func (pw *podWorker) recordFirstAccepting(ctx context.Context, truthIndex int, addr string, ready <-chan time.Time) {
	record := func(at time.Time) {
		pw.mu.Lock()
		pw.truth.Processes[truthIndex].FirstAccepting = at
		pw.mu.Unlock()
		pw.writeTruth()
	}
	for {
		select {
		case at := <-ready:
			record(at)
			return
		default:
		}
		probeCtx, cancel := context.WithTimeout(ctx, time.Second)
		accepting, _ := pgproc.Probe(probeCtx, addr)
		cancel()
		if ctx.Err() != nil {
			return
		}
		if accepting {
			at := time.Now()
			select {
			case logged := <-ready:
				at = logged
			default:
			}
			record(at)
			return
		}
		t := time.NewTimer(groundTruthPoll)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case at := <-ready:
			t.Stop()
			record(at)
			return
		case <-t.C:
		}
	}
}

// readyLine is what PostgreSQL logs the moment it accepts connections
// ("database system is ready to accept connections", or "… read-only
// connections" for a hot standby).
const readyLine = "database system is ready to accept"

// readyWatcher passes a server's log on to w and sends, once, the time the
// server logged readyLine.
type readyWatcher struct {
	w     io.Writer
	ready chan<- time.Time
	tail  []byte
	seen  bool
}

func (r *readyWatcher) Write(p []byte) (int, error) {
	if !r.seen {
		now := time.Now()
		buf := append(r.tail, p...)
		if bytes.Contains(buf, []byte(readyLine)) {
			r.seen = true
			select {
			case r.ready <- now:
			default:
			}
		}
		r.tail = append(r.tail[:0], buf[max(0, len(buf)-len(readyLine)):]...)
	}
	return r.w.Write(p)
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

// triggerReadiness asks for a readiness probe now, as the kubelet's pod
// sync does for a started container that is not ready yet.
func (pw *podWorker) triggerReadiness(cs *containerState) {
	pw.mu.Lock()
	w := cs.probes[readinessProbe]
	pw.mu.Unlock()
	if w != nil {
		w.triggerNow()
	}
}

// containerProber is a container as its probe workers see it: the
// kubelet's status manager, prober and results managers.
type containerProber struct {
	pw *podWorker
	cs *containerState
}

func (p containerProber) container() containerView {
	p.pw.mu.Lock()
	defer p.pw.mu.Unlock()
	cs := p.cs
	v := containerView{
		id:          cs.containerID,
		started:     cs.isStarted(),
		terminated:  cs.state.Terminated != nil,
		restartable: p.pw.pod.Spec.RestartPolicy != corev1.RestartPolicyNever,
	}
	if r := cs.state.Running; r != nil {
		v.running, v.startedAt = true, r.StartedAt.Time
	}
	return v
}

func (p containerProber) runProbe(ctx context.Context, kind probeKind, spec *corev1.Probe) probeOutcome {
	p.pw.mu.Lock()
	run := p.cs.run
	p.pw.mu.Unlock()
	if run == nil {
		return probeOutcome{err: errors.New("container is not running")}
	}
	c := &p.cs.spec
	timeout := time.Duration(spec.TimeoutSeconds) * time.Second
	switch {
	case spec.Exec != nil:
		// Only the container's literal variables are expanded in the
		// command (ExpandContainerCommandOnlyStatic).
		static := map[string]string{}
		for _, e := range c.Env {
			if e.ValueFrom == nil {
				static[e.Name] = e.Value
			}
		}
		command := make([]string, len(spec.Exec.Command))
		for i, a := range spec.Exec.Command {
			command[i] = expand(a, static)
		}
		return run.view.execProbe(ctx, command, timeout)
	case spec.HTTPGet != nil:
		return httpProbe(spec.HTTPGet, c, p.pw.ip, timeout)
	case spec.TCPSocket != nil:
		port, err := resolveProbePort(spec.TCPSocket.Port, c)
		if err != nil {
			return probeOutcome{err: err}
		}
		host := spec.TCPSocket.Host
		if host == "" {
			host = p.pw.ip
		}
		return tcpProbe(host, port, timeout)
	case spec.GRPC != nil:
		return probeOutcome{err: errors.New("gRPC probes are not supported by the node emulator")}
	}
	return probeOutcome{err: fmt.Errorf("missing probe handler for %s:%s", p.pw.key, c.Name)}
}

func (p containerProber) setResult(kind probeKind, containerID string, r probeResult) {
	pw, cs := p.pw, p.cs
	pw.mu.Lock()
	if containerID != cs.containerID {
		pw.mu.Unlock()
		return
	}
	before := cs.results[kind]
	wasStarted := cs.isStarted()
	cs.results[kind] = r
	startedNow := !wasStarted && cs.isStarted()
	run := cs.run
	pw.mu.Unlock()
	if before != r {
		pw.markDirty()
	}
	if startedNow {
		pw.triggerReadiness(cs)
	}
	if r == resultFailure && (kind == livenessProbe || kind == startupProbe) && run != nil {
		go pw.killForProbe(cs, run, kind)
	}
}

func (p containerProber) event(eventType, reason, message string) {
	p.pw.containerEvent(p.cs, eventType, reason, "%s", message)
}

// killForProbe stops a container that failed its liveness or startup
// probe, with the probe's termination grace period, else the pod's.
func (pw *podWorker) killForProbe(cs *containerState, run *containerRun, kind probeKind) {
	spec := kind.of(&cs.spec)
	grace := int64(corev1.DefaultTerminationGracePeriodSeconds)
	if g := pw.pod.Spec.TerminationGracePeriodSeconds; g != nil {
		grace = *g
	}
	if spec != nil && spec.TerminationGracePeriodSeconds != nil {
		grace = *spec.TerminationGracePeriodSeconds
	}
	grace = max(grace, minimumGracePeriodSeconds)
	message := fmt.Sprintf("Container %s failed %s probe", cs.spec.Name, strings.ToLower(kind.String()))
	if pw.pod.Spec.RestartPolicy != corev1.RestartPolicyNever {
		message += ", will be restarted"
	}
	pw.mu.Lock()
	run.killedByProbe = true
	pw.mu.Unlock()
	pw.containerEvent(cs, corev1.EventTypeNormal, "Killing", "%s", message)
	_ = run.proc.Stop(time.Duration(grace) * time.Second)
}
