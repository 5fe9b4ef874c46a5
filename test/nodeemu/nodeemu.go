// Package nodeemu emulates one Kubernetes node and a hostpath CSI driver for
// the local test cluster, where no container engine is available.
//
// # Design
//
// The emulator plays five roles that a real cluster runs as separate
// processes, and nothing else; everything around it (scheduler, PV
// controller, snapshot-controller, namespace controller) is the real thing:
//
//   - node agent (kubelet): registers the Node and its CSINode, renews its
//     Lease, runs pods bound to it. A container whose image is postgres*
//     runs the machine's PostgreSQL of the image's major version
//     (/usr/lib/postgresql/<major>/bin; an image without a version, or
//     "latest", the newest installed) as an unprivileged user on the pod's
//     volume, listening on a loopback address of its own (127.0.x.y) that
//     becomes status.podIP. Container paths (PGDATA, args such as
//     hba_file=...) are translated through the pod's volume mounts. Any
//     other image ends in ErrImagePull / ImagePullBackOff.
//   - external-provisioner: a claim of a StorageClass of DriverName gets a PV
//     backed by a new directory, cloned from the physical snapshot when the
//     claim's dataSource is a VolumeSnapshot. Released PVs with reclaim
//     policy Delete are removed with their directory.
//   - csi-snapshotter: a dynamic VolumeSnapshotContent of DriverName gets a
//     physical copy of its source volume, taken while the database process
//     is stopped (SIGSTOP, like fsfreeze), then its status; a pre-provisioned
//     content gets its status from the physical copy its handle names.
//     Deleting a content with policy Delete removes the physical copy, even
//     when other contents share the handle; Retain keeps it.
//   - kubelet API: an HTTPS server for what the API server asks a kubelet
//     for pods/log (kubeletserver.go), on the port the Node advertises in
//     status.daemonEndpoints, with a serving certificate of the cluster CA;
//     it authenticates client certificates of that CA and authorizes each
//     request with a SubjectAccessReview (nodes/proxy), as a kubelet with
//     webhook authorization does, and answers nobody else. Container output
//     is kept as a container runtime keeps it (crilog.go): a file per run in
//     the CRI log format, timestamped per line and per stream, rotated at
//     10 MiB, the current and the previous run's kept.
//   - ground truth: for each volume and pod it records, as JSON under
//     GroundTruthDir, when the volume became usable, when each database
//     process started, when it first accepted connections (the emulator's
//     own measurement, which nothing in the cluster sees) and when it
//     exited.
//
// # Lazily hydrated volumes
//
// A claim restored from a snapshot with a hydration rate (the
// hydrate-bytes-per-second knob) is provisioned as cloud block storage
// restores one: no data is copied, the volume is usable at once, and each
// block (512 KiB unless hydrate-block-size says otherwise) is fetched from
// the snapshot the first time it is read, or written in part, at that rate
// for the volume; blocks read once are read at full speed (lazyvolumes.go,
// package lazyfs: a FUSE filesystem mounted on the volume's directory,
// which needs root and /dev/fuse). Its ground truth adds what was fetched
// and when, per file. The mount ends when the volume is deleted or the
// emulator stops; New detaches mounts a crashed emulator left.
//
// # Probes and readiness
//
// Readiness, liveness and startup probes run as the kubelet's prober runs
// them (probe.go): periods, initial delays, thresholds, timeouts, the
// Unhealthy events, a kill for a failed liveness or startup probe. A
// container is Ready only when its readiness probe says so, or, without
// one, once it runs; the pod's Ready and ContainersReady conditions follow.
// Handlers: exec, tcpSocket and httpGet; grpc is not supported and errors
// (an Unhealthy event says so; like any errored probe it never succeeds).
// The kubelet probes readiness once at once after a container starts, then
// every period; it also probes again on other pod syncs, which the emulator
// does not have, so its Ready may come a period later than a kubelet's, never
// earlier.
//
// An exec probe runs its command on this machine in the container's view:
// as the database user, with the container's environment (the image's PATH
// with /usr/lib/postgresql/<major>/bin first, PGDATA, PG_MAJOR, then the
// container's own variables), absolute container paths in arguments and
// variables translated through the mounts, and the pod's network reached
// the way the image reaches it. The postgres image's server and libpq meet
// on the unix socket in /var/run/postgresql; here that directory is the
// container's own runtime directory, and the exec gets PGHOST naming it
// unless the container sets PGHOST, so `pg_isready -p 5432` asks the pod's
// own server and no other. The emulator has no network namespaces: an exec
// that names localhost or 127.0.0.1 reaches this machine's loopback, not
// the pod's address (use the default socket, or the pod's IP from the
// downward API: sh -c 'pg_isready -h "$POD_IP"').
//
// # Versions
//
// The image's major version must be installed here. When it is not, the
// container still starts as far as the data directory can tell: on a data
// directory of another major version it prints what that server would
// (FATAL:  database files are incompatible with server, with the DETAIL of
// both versions; the server's version is the tag's, e.g. 16 or 16.4) and
// exits with 1; on an empty data directory, or one of its own major version,
// the emulator cannot play the server and the container fails with
// StartError naming the missing installation. A container's termination
// message is what it wrote to its terminationMessagePath, or with
// terminationMessagePolicy FallbackToLogsOnError and a failure, the end of
// its log, as the kubelet reports it.
//
// Fault knobs are annotations (see the Annotation* constants) or Defaults.
package nodeemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	snapshotclient "github.com/kubernetes-csi/external-snapshotter/client/v8/clientset/versioned"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/record"
	"k8s.io/utils/clock"

	"github.com/drillerd/drillerd/test/nodeemu/csistore"
	"github.com/drillerd/drillerd/test/nodeemu/lazyfs"
)

// DriverName is the CSI driver the emulator implements.
const DriverName = "hostpath.csi.drillerd.dev"

// GroundTruthDir is the directory, below Config.StateDir, of the ground-truth
// records (volumes/<pv>.json, pods/<namespace>_<pod>.json).
const GroundTruthDir = "groundtruth"

// CSIStoreDir is the directory, below Config.StateDir, of the emulated
// driver's volumes and physical snapshots (package csistore).
const CSIStoreDir = "csi"

// Fault knobs. Durations use Go syntax ("1.5s"); rates are bytes per second.
const (
	annotationPrefix = "emulator.drillerd.dev/"
	// AnnotationStartDelay on a Pod delays every container start (image pull).
	AnnotationStartDelay = annotationPrefix + "start-delay"
	// AnnotationCrashAfter on a Pod kills each database process this long
	// after it started, as a crash would.
	AnnotationCrashAfter = annotationPrefix + "crash-after"
	// AnnotationProvisionDelay on a PVC delays its provisioning.
	AnnotationProvisionDelay = annotationPrefix + "provision-delay"
	// AnnotationRestoreBytesPerSecond on a PVC limits how fast a volume is
	// restored from a snapshot.
	AnnotationRestoreBytesPerSecond = annotationPrefix + "restore-bytes-per-second"
	// AnnotationSnapshotDelay on a VolumeSnapshot delays cutting it.
	AnnotationSnapshotDelay = annotationPrefix + "snapshot-delay"
	// AnnotationSnapshotError on a VolumeSnapshot makes cutting it fail with
	// the annotation's value as the driver's error.
	AnnotationSnapshotError = annotationPrefix + "snapshot-error"
)

// StorageClass parameters of the emulated driver: the same knobs for every
// claim of the class (a claim's annotation wins).
const (
	ParameterProvisionDelay        = "provisionDelay"
	ParameterRestoreBytesPerSecond = "restoreBytesPerSecond"
)

// Defaults apply where an object carries no knob annotation.
type Defaults struct {
	StartDelay            time.Duration
	ProvisionDelay        time.Duration
	SnapshotDelay         time.Duration
	RestoreBytesPerSecond int64
	// HydrateBytesPerSecond > 0 restores volumes lazily at this rate;
	// HydrateBlockSize is their hydration granularity.
	HydrateBytesPerSecond int64
	HydrateBlockSize      int64
	// RestartBackoff is the first crash-loop back-off; default 10s as the
	// kubelet's, doubling up to 5 minutes.
	RestartBackoff time.Duration
	// RelistPeriod is how often the kubelet lists the runtime's containers
	// to learn which started and which exited on their own (its pod
	// lifecycle event generator; default 1s as the kubelet's generic
	// relist): such a change reaches the pod's status, and starts the
	// container's probes, only at the relist after it. Negative: at once.
	RelistPeriod time.Duration
}

// Config configures an Emulator.
type Config struct {
	RestConfig *rest.Config
	NodeName   string
	// StateDir holds volumes, snapshots, pod runtime directories and ground truth.
	StateDir string
	// LogPath receives the emulator's log; empty means stderr.
	LogPath string
	// RunAs is the unprivileged user database processes run as; default nobody.
	RunAs    string
	Defaults Defaults
	// Serving configures the kubelet API (container logs).
	Serving KubeletServing
}

// Emulator is a running node emulator.
type Emulator struct {
	cfg       Config
	client    kubernetes.Interface
	snapshots snapshotclient.Interface
	store     *csistore.Store
	truth     *groundTruth
	log       *log.Logger
	logFile   io.Closer
	recorders map[string]record.EventRecorder
	events    record.EventBroadcaster
	uid, gid  uint32

	clock    clock.WithTicker
	postgres hostPostgres

	kubeletMu sync.Mutex
	kubelet   *kubelet
	// kubeletPort is the kubelet API's port, as the Node advertises it.
	kubeletPort int32

	lazy lazyVolumes
}

// New prepares an emulator; Run starts it.
func New(cfg Config) (*Emulator, error) {
	if cfg.RestConfig == nil || cfg.NodeName == "" || cfg.StateDir == "" {
		return nil, errors.New("nodeemu: RestConfig, NodeName and StateDir are required")
	}
	if err := cfg.Serving.validate(); err != nil {
		return nil, err
	}
	if cfg.RunAs == "" {
		cfg.RunAs = "nobody"
	}
	if cfg.Defaults.RestartBackoff == 0 {
		cfg.Defaults.RestartBackoff = 10 * time.Second
	}
	if cfg.Defaults.RelistPeriod == 0 {
		cfg.Defaults.RelistPeriod = time.Second
	}
	u, err := user.Lookup(cfg.RunAs)
	if err != nil {
		return nil, fmt.Errorf("nodeemu: while looking up the database user %q: %w", cfg.RunAs, err)
	}
	uid, _ := strconv.ParseUint(u.Uid, 10, 32)
	gid, _ := strconv.ParseUint(u.Gid, 10, 32)

	restCfg := rest.CopyConfig(cfg.RestConfig)
	restCfg.QPS, restCfg.Burst = 50, 100
	restCfg.UserAgent = "nodeemu/" + cfg.NodeName
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	snaps, err := snapshotclient.NewForConfig(restCfg)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{cfg.StateDir, filepath.Join(cfg.StateDir, "pods")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Lazy volumes of an emulator that ended without unmounting them can
	// no longer be served: nothing may find them mounted.
	if _, err := lazyfs.UnmountBelow(cfg.StateDir); err != nil {
		return nil, err
	}
	store, err := csistore.Open(filepath.Join(cfg.StateDir, CSIStoreDir))
	if err != nil {
		return nil, err
	}
	truth, err := newGroundTruth(filepath.Join(cfg.StateDir, GroundTruthDir))
	if err != nil {
		return nil, err
	}
	var out io.Writer = os.Stderr
	var closer io.Closer
	if cfg.LogPath != "" {
		f, err := os.OpenFile(cfg.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, err
		}
		out, closer = f, f
	}
	e := &Emulator{
		cfg: cfg, client: client, snapshots: snaps, store: store, truth: truth,
		log: log.New(out, "", log.LstdFlags|log.Lmicroseconds), logFile: closer,
		recorders: map[string]record.EventRecorder{},
		uid:       uint32(uid), gid: uint32(gid),
		clock:    clock.RealClock{},
		postgres: hostPostgres{root: defaultPostgresRoot},
		lazy:     lazyVolumes{byID: map[string]*lazyVolume{}},
	}
	e.events = record.NewBroadcaster()
	e.events.StartRecordingToSink(&typedcorev1.EventSinkImpl{Interface: client.CoreV1().Events("")})
	for _, component := range []string{"kubelet", DriverName + "_csi-provisioner", "csi-snapshotter " + DriverName} {
		e.recorders[component] = e.events.NewRecorder(scheme.Scheme, corev1.EventSource{Component: component, Host: cfg.NodeName})
	}
	return e, nil
}

func (e *Emulator) kubeletEvents() record.EventRecorder { return e.recorders["kubelet"] }
func (e *Emulator) provisionerEvents() record.EventRecorder {
	return e.recorders[DriverName+"_csi-provisioner"]
}
func (e *Emulator) snapshotterEvents() record.EventRecorder {
	return e.recorders["csi-snapshotter "+DriverName]
}

// Run registers the node and runs every role until ctx is canceled; then it
// stops every database process it started, unmounts every lazy volume and
// returns.
func (e *Emulator) Run(ctx context.Context) error {
	defer func() {
		e.events.Shutdown()
		if e.logFile != nil {
			e.logFile.Close()
		}
	}()
	api, err := e.listenKubelet()
	if err != nil {
		return err
	}
	e.kubeletPort = int32(api.Addr().(*net.TCPAddr).Port)
	if err := e.registerNode(ctx); err != nil {
		api.Close()
		return err
	}
	e.log.Printf("node %s registered, kubelet API on %s", e.cfg.NodeName, api.Addr())

	var wg sync.WaitGroup
	errs := make(chan error, 5)
	run := func(name string, f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil && !errors.Is(err, context.Canceled) {
				errs <- fmt.Errorf("%s: %w", name, err)
			}
		}()
	}
	run("node heartbeat", e.heartbeat)
	run("kubelet", e.runKubelet)
	run("kubelet API", func(ctx context.Context) error { return e.serveKubelet(ctx, api) })
	run("provisioner", e.runProvisioner)
	run("snapshotter", e.runSnapshotter)
	run("hydration ground truth", e.recordHydration)
	wg.Wait()
	close(errs)
	var all []error
	for err := range errs {
		all = append(all, err)
	}
	if err := e.unmountAllLazy(); err != nil {
		all = append(all, err)
	}
	return errors.Join(all...)
}

// durationKnob reads a duration annotation, falling back to def.
func durationKnob(annotations map[string]string, key string, def time.Duration) time.Duration {
	if v, ok := annotations[key]; ok {
		if d, err := time.ParseDuration(v); err == nil && d >= 0 {
			return d
		}
	}
	return def
}

func int64Knob(annotations map[string]string, key string, def int64) int64 {
	if v, ok := annotations[key]; ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return def
}

// sleepCtx waits d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
