package restore

import (
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drillerd/drillerd/internal/builder"
)

// sandboxNS is the sandbox namespace of the fixtures that need one.
const sandboxNS = "drill-orders-db-0a1b2c3d"

// copyOf starts the sandbox's VolumeSnapshot.
func copyOf() *builder.SnapshotBuilder { return builder.ForSnapshot(sandboxNS, SourceSnapshotName) }

func TestSnapshotCopyReady(t *testing.T) {
	errorWithoutMessage := copyOf().NotReady().Obj()
	errorWithoutMessage.Status.Error = &snapshotv1.VolumeSnapshotError{Time: &metav1.Time{Time: t0}}
	content := func() *builder.ContentBuilder {
		return builder.ForContent("drillerd-copy").BoundTo(sandboxNS, SourceSnapshotName)
	}
	tests := []struct {
		name    string
		vs      *snapshotv1.VolumeSnapshot
		content *snapshotv1.VolumeSnapshotContent
		want    SnapshotCopy
	}{
		{"no status yet", copyOf().Obj(), nil, SnapshotCopy{}},
		{"not ready", copyOf().NotReady().Obj(), content().Obj(), SnapshotCopy{}},
		{"ready", copyOf().ReadyAt(t0).Obj(), content().Ready().Obj(), SnapshotCopy{Ready: true}},
		{"error on both: the CSI side refused the snapshot",
			copyOf().Failed("handle snap-0abc not found").Obj(), content().Failed("handle snap-0abc not found").Obj(),
			SnapshotCopy{Refused: "handle snap-0abc not found"}},
		{"error on the VolumeSnapshot alone: the controller tries again",
			copyOf().Failed("VolumeSnapshotContent is missing").Obj(), content().Obj(),
			SnapshotCopy{Retrying: "VolumeSnapshotContent is missing"}},
		{"error while the copy is not known yet",
			copyOf().Failed("VolumeSnapshotContent is missing").Obj(), nil,
			SnapshotCopy{Retrying: "VolumeSnapshotContent is missing"}},
		{"error without a message", errorWithoutMessage, content().Failed("refused").Obj(), SnapshotCopy{}},
		{"an error on the copy not yet repeated on the VolumeSnapshot",
			copyOf().NotReady().Obj(), content().Failed("refused").Obj(), SnapshotCopy{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SnapshotCopyReady(tt.vs, tt.content); got != tt.want {
				t.Errorf("SnapshotCopyReady = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// dataClaim is the sandbox's data claim in phase, bound to volume if not "".
func dataClaim(phase corev1.PersistentVolumeClaimPhase, volume string) *corev1.PersistentVolumeClaim {
	return &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Namespace: sandboxNS, Name: DataClaimName},
		Spec:       corev1.PersistentVolumeClaimSpec{VolumeName: volume},
		Status:     corev1.PersistentVolumeClaimStatus{Phase: phase},
	}
}

func TestClaimBound(t *testing.T) {
	tests := []struct {
		name  string
		given *corev1.PersistentVolumeClaim
		want  bool
	}{
		{"pending", dataClaim(corev1.ClaimPending, ""), false},
		{"volume chosen, not yet bound", dataClaim(corev1.ClaimPending, "pvc-1"), false},
		{"bound", dataClaim(corev1.ClaimBound, "pvc-1"), true},
		{"bound phase without a volume", dataClaim(corev1.ClaimBound, ""), false},
		{"lost", dataClaim(corev1.ClaimLost, "pvc-1"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := ClaimBound(tt.given); got != tt.want {
				t.Errorf("ClaimBound = %v, want %v", got, tt.want)
			}
		})
	}
}

type podBuilder struct{ p corev1.Pod }

// newPod starts the sandbox's database pod, running, with no conditions
// and no container statuses.
func newPod() *podBuilder {
	return &podBuilder{p: corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: sandboxNS, Name: DatabasePodName},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning},
	}}
}

// Ready sets the Ready condition to status and the pod's IP to ip.
func (b *podBuilder) Ready(status corev1.ConditionStatus, ip string) *podBuilder {
	b.p.Status.Conditions = append(b.p.Status.Conditions, corev1.PodCondition{Type: corev1.PodReady, Status: status})
	b.p.Status.PodIP = ip
	return b
}

// Phase sets the pod's phase, with the reason and message the kubelet gives.
func (b *podBuilder) Phase(p corev1.PodPhase, reason, message string) *podBuilder {
	b.p.Status.Phase, b.p.Status.Reason, b.p.Status.Message = p, reason, message
	return b
}

func (b *podBuilder) Terminated(container, reason string, exitCode int32, message string) *podBuilder {
	return b.container(container, corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: reason, ExitCode: exitCode, Message: message}})
}

func (b *podBuilder) Waiting(container, reason, message string) *podBuilder {
	return b.container(container, corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: message}})
}

func (b *podBuilder) container(name string, state corev1.ContainerState) *podBuilder {
	b.p.Status.ContainerStatuses = append(b.p.Status.ContainerStatuses, corev1.ContainerStatus{Name: name, State: state})
	return b
}

func (b *podBuilder) Obj() *corev1.Pod { return &b.p }

type podCase struct {
	name  string
	given *corev1.Pod
	want  PodProgress
}

func TestDatabasePodProgress(t *testing.T) {
	db := DatabaseContainerName
	tests := []podCase{
		{"ready with an IP", newPod().Ready(corev1.ConditionTrue, "10.1.2.3").Obj(), PodProgress{Ready: true}},
		{"ready without an IP", newPod().Ready(corev1.ConditionTrue, "").Obj(), PodProgress{}},
		{"not ready", newPod().Ready(corev1.ConditionFalse, "10.1.2.3").Obj(), PodProgress{}},
		{"running, no conditions yet", newPod().Obj(), PodProgress{}},
		{
			"terminated with a message: its FATAL line",
			newPod().Terminated(db, "Error", 1, "FATAL:  could not locate a valid checkpoint record\nLOG:  startup process exited").Obj(),
			PodProgress{Terminated: true, Failure: "container database terminated: Error (exit code 1): FATAL:  could not locate a valid checkpoint record"},
		},
		{
			"a log tail: the PANIC line with its detail, not the lines around it",
			newPod().Terminated(db, "Error", 1, "2026-11-30 03:00:01 UTC [1] LOG:  starting PostgreSQL 15.8\n"+
				"2026-11-30 03:00:01 UTC [7] LOG:  database system was interrupted; last known up at 2026-11-30 02:59:00 UTC\n"+
				"2026-11-30 03:00:01 UTC [7] PANIC:  could not locate a valid checkpoint record\n"+
				"2026-11-30 03:00:01 UTC [7] DETAIL:  the WAL segment 000000010000000000000003 is missing\n"+
				"2026-11-30 03:00:01 UTC [1] LOG:  startup process (PID 7) was terminated by signal 6: Aborted\n"+
				"2026-11-30 03:00:01 UTC [1] LOG:  database system is shut down\n").Obj(),
			PodProgress{Terminated: true, Failure: "container database terminated: Error (exit code 1): 2026-11-30 03:00:01 UTC [7] PANIC:  could not locate a valid checkpoint record " +
				"2026-11-30 03:00:01 UTC [7] DETAIL:  the WAL segment 000000010000000000000003 is missing"},
		},
		{
			"a probe's turned-away connection is not why the server stopped",
			newPod().Terminated(db, "Error", 1, "LOG:  database system was interrupted\n"+
				"FATAL:  the database system is starting up\n"+
				"FATAL:  could not access status of transaction 818\n"+
				"DETAIL:  Could not open file \"pg_xact/0000\": No such file or directory.\n"+
				"LOG:  startup process (PID 7) exited with exit code 1\n").Obj(),
			PodProgress{Terminated: true, Failure: `container database terminated: Error (exit code 1): FATAL:  could not access status of transaction 818 DETAIL:  Could not open file "pg_xact/0000": No such file or directory.`},
		},
		{
			"an entrypoint's refusal: its Error line, not the link at the end",
			newPod().Terminated(db, "Error", 1, "Error: Database is uninitialized and superuser password is not specified.\n"+
				"       You must specify POSTGRES_PASSWORD to a non-empty value for the superuser.\n"+
				"       https://www.postgresql.org/docs/current/auth-trust.html\n").Obj(),
			PodProgress{Terminated: true, Failure: "container database terminated: Error (exit code 1): Error: Database is uninitialized and superuser password is not specified."},
		},
		{
			"a log tail without FATAL or an error: its last line",
			newPod().Terminated(db, "Error", 1, "starting\nsegmentation fault (core dumped)\n").Obj(),
			PodProgress{Terminated: true, Failure: "container database terminated: Error (exit code 1): segmentation fault (core dumped)"},
		},
		{
			"terminated without a message",
			newPod().Terminated(db, "OOMKilled", 137, "").Obj(),
			PodProgress{Terminated: true, Failure: "container database terminated: OOMKilled (exit code 137)"},
		},
		{
			"terminated in a Failed pod: the container says more",
			newPod().Phase(corev1.PodFailed, "", "").Terminated(db, "Error", 2, "").Obj(),
			PodProgress{Terminated: true, Failure: "container database terminated: Error (exit code 2)"},
		},
		{"waiting, transient: ContainerCreating", newPod().Waiting(db, "ContainerCreating", "").Obj(), PodProgress{}},
		{"waiting, transient: PodInitializing", newPod().Waiting(db, "PodInitializing", "").Obj(), PodProgress{}},
		{
			"Failed pod without container statuses",
			newPod().Phase(corev1.PodFailed, "Evicted", "The node was low on resource: ephemeral-storage.").Obj(),
			PodProgress{Terminated: true, Failure: "pod Failed: Evicted The node was low on resource: ephemeral-storage."},
		},
		{
			"Succeeded pod without container statuses",
			newPod().Phase(corev1.PodSucceeded, "", "").Obj(),
			PodProgress{Terminated: true, Failure: "pod Succeeded:  "},
		},
		{
			"stuck waiting, no message",
			newPod().Waiting(db, "ErrImagePull", "").Obj(),
			PodProgress{Failure: "container database is waiting: ErrImagePull"},
		},
		{
			"other containers are ignored",
			newPod().Ready(corev1.ConditionTrue, "10.1.2.3").Waiting("log-shipper", "ImagePullBackOff", "").Terminated("init-perms", "Error", 1, "denied").Obj(),
			PodProgress{Ready: true},
		},
	}
	for _, reason := range []string{
		"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull",
		"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError",
	} {
		tests = append(tests, podCase{
			"stuck waiting: " + reason,
			newPod().Waiting(db, reason, "back-off 20s\nrestarting failed container").Obj(),
			PodProgress{Failure: "container database is waiting: " + reason + ": back-off 20s"},
		})
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DatabasePodProgress(tt.given)
			got := PodProgress{Ready: p.Ready, Running: p.Running, Terminated: p.Terminated, Failure: p.Failure}
			if got != tt.want {
				t.Errorf("DatabasePodProgress = %+v, want %+v", got, tt.want)
			}
		})
	}
}

// WhyNotStarted puts PostgreSQL's own words, from the termination message
// or from the end of the log drillerd read, after the container's state;
// without them, it says what the status says.
func TestWhyNotStarted(t *testing.T) {
	db := DatabaseContainerName
	const (
		panicLine  = "2026-11-30 03:00:01 UTC [7] PANIC:  could not locate a valid checkpoint record"
		fatalLine  = "2026-11-30 03:00:01 UTC [7] FATAL:  could not access status of transaction 818"
		detail     = `2026-11-30 03:00:01 UTC [7] DETAIL:  Could not open file "pg_xact/0000": No such file or directory.`
		standby    = "2026-11-30 03:00:09 UTC [41] FATAL:  the database system is not accepting connections"
		hotOff     = "2026-11-30 03:00:09 UTC [41] DETAIL:  Hot standby mode is disabled."
		startingUp = "2026-11-30 03:00:02 UTC [12] FATAL:  the database system is starting up"
	)
	lines := func(l ...string) string { return strings.Join(l, "\n") + "\n" }
	// noise is 80 lines of a server shutting down, enough to push what
	// came before out of a termination message.
	noise := strings.Repeat("2026-11-30 03:00:01 UTC [1] DEBUG:  shmem_exit(1): 1 before_shmem_exit callbacks to make\n", 80)
	tests := []struct {
		name string
		pod  *corev1.Pod
		log  string
		want string
	}{
		{
			"terminated, no log read: the termination message's words",
			newPod().Terminated(db, "Error", 1, lines(fatalLine, detail)).Obj(), "",
			"container database terminated: Error (exit code 1): " + fatalLine + " " + detail,
		},
		{
			"terminated, the termination message cut before the FATAL: the log's",
			newPod().Terminated(db, "Error", 1, noise).Obj(), lines(fatalLine, detail) + noise,
			"container database terminated: Error (exit code 1): " + fatalLine + " " + detail,
		},
		{
			"terminated, a PANIC in the log wins over a FATAL in the message",
			newPod().Terminated(db, "Error", 1, lines(fatalLine)).Obj(), lines(panicLine, fatalLine),
			"container database terminated: Error (exit code 1): " + panicLine,
		},
		{
			"terminated without a message, nothing in the log either: the state",
			newPod().Terminated(db, "OOMKilled", 137, "").Obj(), "LOG:  checkpoint starting: time\n",
			"container database terminated: OOMKilled (exit code 137)",
		},
		{
			"running, never ready: the log's refusal, not the starting-up knocks",
			newPod().Obj(), lines("LOG:  entering standby mode", startingUp, standby, hotOff, standby, hotOff),
			standby + " " + hotOff,
		},
		{
			"running, never ready, only knocks in the log: nothing to say",
			newPod().Obj(), lines(startingUp, startingUp), "",
		},
		{
			// The sandbox's pg_hba.conf admits only the run's certificate: a
			// readiness probe's connection is turned away, which says
			// nothing about the server.
			"killed, only its probes turned away in the log: the state",
			newPod().Terminated(db, "Error", 137, "").Obj(),
			lines(`2026-11-30 03:00:05 UTC [517] FATAL:  pg_hba.conf rejects connection for host "127.0.0.1", user "postgres", database "postgres", no encryption`),
			"container database terminated: Error (exit code 137)",
		},
		{
			"restarted and waiting: the state with the log's FATAL",
			newPod().Waiting(db, "CrashLoopBackOff", "back-off 40s restarting failed container").Obj(), lines(fatalLine, detail),
			"container database is waiting: CrashLoopBackOff: " + fatalLine + " " + detail,
		},
		{
			"waiting for an image: what the status says",
			newPod().Waiting(db, "ImagePullBackOff", "Back-off pulling image").Obj(), "",
			"container database is waiting: ImagePullBackOff: Back-off pulling image",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := DatabasePodProgress(tt.pod).WhyNotStarted(tt.log); got != tt.want {
				t.Errorf("WhyNotStarted =\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// Which log of the database container drillerd can read.
func TestDatabasePodProgressLog(t *testing.T) {
	db := DatabaseContainerName
	withStatus := func(cs corev1.ContainerStatus) *corev1.Pod {
		cs.Name = db
		p := newPod().Obj()
		p.Status.ContainerStatuses = []corev1.ContainerStatus{cs}
		return p
	}
	terminated := &corev1.ContainerStateTerminated{ExitCode: 1, ContainerID: "containerd://1"}
	tests := []struct {
		name              string
		pod               *corev1.Pod
		hasLog, restarted bool
	}{
		{"creating: no log yet", newPod().Waiting(db, "ContainerCreating", "").Obj(), false, false},
		{"image not pulled: never ran", newPod().Waiting(db, "ImagePullBackOff", "").Obj(), false, false},
		{"running", withStatus(corev1.ContainerStatus{ContainerID: "containerd://0", State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}), true, false},
		{"terminated", withStatus(corev1.ContainerStatus{ContainerID: "containerd://0", State: corev1.ContainerState{Terminated: terminated}}), true, false},
		{
			"restarted, waiting to run again",
			withStatus(corev1.ContainerStatus{RestartCount: 1, State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}},
				LastTerminationState: corev1.ContainerState{Terminated: terminated}}),
			true, true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := DatabasePodProgress(tt.pod)
			if p.HasLog != tt.hasLog || p.Restarted != tt.restarted {
				t.Errorf("HasLog %v, Restarted %v; want %v, %v", p.HasLog, p.Restarted, tt.hasLog, tt.restarted)
			}
		})
	}
}

type eventBuilder struct{ e corev1.Event }

func newEvent(typ, reason, message string) *eventBuilder {
	return &eventBuilder{e: corev1.Event{Type: typ, Reason: reason, Message: message}}
}

// LastSeen sets lastTimestamp (core/v1 events from a recorder).
func (b *eventBuilder) LastSeen(t time.Time) *eventBuilder {
	b.e.LastTimestamp = metav1.NewTime(t)
	return b
}

// At sets eventTime (events written through events.k8s.io).
func (b *eventBuilder) At(t time.Time) *eventBuilder {
	b.e.EventTime = metav1.NewMicroTime(t)
	return b
}

// Created sets metadata.creationTimestamp.
func (b *eventBuilder) Created(t time.Time) *eventBuilder {
	b.e.CreationTimestamp = metav1.NewTime(t)
	return b
}

func (b *eventBuilder) Obj() corev1.Event { return b.e }

func TestLastEvent(t *testing.T) {
	normal, warning := corev1.EventTypeNormal, corev1.EventTypeWarning
	tests := []struct {
		name  string
		given []corev1.Event
		want  string
	}{
		{"no events", nil, ""},
		{
			"a warning wins over a newer normal event",
			[]corev1.Event{
				newEvent(warning, "FailedMount", "MountVolume.SetUp failed").LastSeen(t0).Obj(),
				newEvent(normal, "Pulled", "image already present").LastSeen(t0.Add(time.Minute)).Obj(),
			},
			"FailedMount: MountVolume.SetUp failed",
		},
		{
			"the newest of the warnings",
			[]corev1.Event{
				newEvent(warning, "FailedScheduling", "0/3 nodes are available").LastSeen(t0).Obj(),
				newEvent(warning, "FailedMount", "MountVolume.SetUp failed").LastSeen(t0.Add(time.Minute)).Obj(),
			},
			"FailedMount: MountVolume.SetUp failed",
		},
		{
			"newest by lastTimestamp",
			[]corev1.Event{
				newEvent(normal, "Scheduled", "assigned").LastSeen(t0).Obj(),
				newEvent(normal, "Started", "started container").LastSeen(t0.Add(2 * time.Minute)).Obj(),
				newEvent(normal, "Pulled", "image already present").LastSeen(t0.Add(time.Minute)).Obj(),
			},
			"Started: started container",
		},
		{
			"newest by eventTime",
			[]corev1.Event{
				newEvent(normal, "Started", "started container").At(t0.Add(time.Minute)).Obj(),
				newEvent(normal, "Scheduled", "assigned").At(t0).Obj(),
			},
			"Started: started container",
		},
		{
			"newest by creationTimestamp",
			[]corev1.Event{
				newEvent(normal, "Scheduled", "assigned").Created(t0).Obj(),
				newEvent(normal, "Started", "started container").Created(t0.Add(time.Minute)).Obj(),
			},
			"Started: started container",
		},
		{
			"lastTimestamp counts before eventTime and creationTimestamp",
			[]corev1.Event{
				newEvent(normal, "Pulling", "pulling image").LastSeen(t0).At(t0.Add(time.Hour)).Created(t0.Add(time.Hour)).Obj(),
				newEvent(normal, "Started", "started container").LastSeen(t0.Add(time.Minute)).Obj(),
			},
			"Started: started container",
		},
		{
			"the first line of a multi-line message",
			[]corev1.Event{newEvent(warning, "Failed", "  Error: ErrImagePull\nfailed to pull and unpack image\n").LastSeen(t0).Obj()},
			"Failed: Error: ErrImagePull",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := LastEvent(tt.given); got != tt.want {
				t.Errorf("LastEvent = %q, want %q", got, tt.want)
			}
		})
	}
}
