package drill

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/go-logr/logr"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
)

// Reconciler runs DrillRuns.
type Reconciler struct {
	// Client reads DrillRuns, RestoreDrills and the labelled sandbox
	// objects from the cache, and writes.
	Client client.Client
	// APIReader reads source objects, Secrets and events directly, so
	// that drillerd caches none of them cluster-wide.
	APIReader client.Reader
	Clock     clock.PassiveClock
	Recorder  events.EventRecorder
	// Database connects to a restored database to run its checks.
	Database Connector
	// Logs reads the end of a database's log when it does not start; nil
	// reads none (the verdict then says what the pod's status says).
	Logs restore.LogReader
	// DrillerdNamespace and DrillerdLabels are what sandbox NetworkPolicies admit.
	DrillerdNamespace string
	DrillerdLabels    map[string]string
	// SandboxLabels are added to every sandbox object (--sandbox-labels).
	SandboxLabels map[string]string
	// Gate, when set, holds reconciles back until Recovery has run.
	Gate *Gate
	// MaxInFlight bounds how many runs are past Pending at once; 0 = no bound.
	MaxInFlight int

	slots     admission
	access    accessStore
	writes    writeLog
	sightings sightings
}

// maxMessageBytes bounds messages and event notes (events.k8s.io allows
// 1 KiB).
const maxMessageBytes = 1024

// work is one reconcile of one run.
type work struct {
	run     *drillsv1.DrillRun
	drill   *drillsv1.RestoreDrill // nil when the RestoreDrill does not exist
	sandbox restore.Sandbox        // the run's sandbox; zero without a drill
	now     time.Time
	log     logr.Logger
	// saved is the status as last written (or read): save writes only a
	// status that differs from it.
	saved *drillsv1.DrillRunStatus
	// started and progress are what the next status write announces in
	// one event: the run's start, and the phases done since the last write.
	started  string
	progress []string
	// source is the source VolumeSnapshotContent as SelectingSnapshot read
	// it, for Provisioning in the same reconcile; nil otherwise.
	source *snapshotv1.VolumeSnapshotContent
}

// load reads the run and its drill; it returns nil work when the run is gone.
func (r *Reconciler) load(ctx context.Context, req ctrl.Request) (*work, error) {
	run := &drillsv1.DrillRun{}
	if err := r.Client.Get(ctx, req.NamespacedName, run); err != nil {
		return nil, client.IgnoreNotFound(err)
	}
	w := &work{
		run: run, now: r.Clock.Now(), saved: run.Status.DeepCopy(),
		log: ctrl.LoggerFrom(ctx).WithValues("run", run.Name, "drill", run.Spec.DrillName, "namespace", run.Namespace),
	}
	drill := &drillsv1.RestoreDrill{}
	key := types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.DrillName}
	err := r.Client.Get(ctx, key, drill)
	if apierrors.IsNotFound(err) {
		// The cache may not show yet a drill created a moment before its
		// run (kubectl create of both at once, drillerd run): whether the
		// drill exists is the API server's to say.
		err = r.APIReader.Get(ctx, key, drill)
	}
	switch {
	case apierrors.IsNotFound(err):
		return w, nil
	case err != nil:
		return nil, fmt.Errorf("while reading RestoreDrill %s: %w", run.Spec.DrillName, err)
	}
	w.drill = drill
	w.sandbox = restore.Sandbox{Run: run, Drill: drill, DrillerdNamespace: r.DrillerdNamespace, DrillerdLabels: r.DrillerdLabels, ExtraLabels: r.SandboxLabels}
	return w, nil
}

// save writes the run's status if it changed since it was last written,
// then announces what the write recorded: one event for the run's start
// and the phases done since the last write, and the verdict's events once
// the run is Done.
func (r *Reconciler) save(ctx context.Context, w *work) error {
	if equality.Semantic.DeepEqual(w.saved, &w.run.Status) {
		return nil
	}
	before := w.run.ResourceVersion
	if err := r.Client.Status().Update(ctx, w.run); err != nil {
		return fmt.Errorf("while writing DrillRun status: %w", err)
	}
	r.writes.note(w.run.UID, before)
	wasDone := w.saved.Phase == drillsv1.PhaseDone
	w.saved = w.run.Status.DeepCopy()
	r.announceProgress(w)
	if !wasDone && w.run.Status.Phase == drillsv1.PhaseDone {
		r.announce(w)
	}
	return nil
}

// announceProgress sends one event for what the last status write
// recorded: the run's start and the phases done since the write before.
func (r *Reconciler) announceProgress(w *work) {
	steps := w.progress
	phase := w.run.Status.Phase
	if len(steps) > 0 && phase != drillsv1.PhaseTearingDown && phase != drillsv1.PhaseDone {
		steps = append(steps, string(phase))
	}
	switch {
	case w.started != "":
		note := strings.Join(append([]string{w.started}, steps...), "; ")
		r.Recorder.Eventf(w.run, nil, corev1.EventTypeNormal, "Started", "Start", "%s", boundMessage(note))
	case len(steps) > 0:
		r.Recorder.Eventf(w.run, nil, corev1.EventTypeNormal, string(phase), "Progress", "%s", boundMessage(strings.Join(steps, "; ")))
	}
	w.started, w.progress = "", nil
}

// forget drops what this process holds for a run that is gone.
func (r *Reconciler) forget(key types.NamespacedName) {
	r.access.forget(key)
	r.sightings.forget(key)
}

// writeLog remembers, for each run whose status this process wrote, the
// resourceVersions its writes replaced, until the cache shows a newer one.
type writeLog struct {
	mu         sync.Mutex
	superseded map[types.UID]map[string]bool
}

func (l *writeLog) note(uid types.UID, replaced string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.superseded == nil {
		l.superseded = map[types.UID]map[string]bool{}
	}
	if l.superseded[uid] == nil {
		l.superseded[uid] = map[string]bool{}
	}
	l.superseded[uid][replaced] = true
}

// stale reports whether run, as the cache has it, is a version that one of
// this process's status writes replaced. Once the cache shows another
// version, the writes are forgotten.
func (l *writeLog) stale(run *drillsv1.DrillRun) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	replaced, ok := l.superseded[run.UID]
	if !ok {
		return false
	}
	if replaced[run.ResourceVersion] {
		return true
	}
	delete(l.superseded, run.UID)
	return false
}

// phaseDeadline is when the current phase times out, d after it started.
func phaseDeadline(w *work, d time.Duration) time.Time {
	start, ok := rto.PhaseStart(w.run.Status, w.run.Status.Phase)
	if !ok {
		start = w.now
	}
	return start.Add(d)
}

// wakeAt is when a waiting phase looks again without a watch event: its own
// deadline, or the run's timeouts.total if that comes first.
func wakeAt(w *work, phaseDeadline time.Time) time.Time {
	if d := w.run.Status.Deadline; d != nil && d.Time.Before(phaseDeadline) {
		return d.Time
	}
	return phaseDeadline
}

// lastEvent describes the newest event about an object, for messages that
// name why something is stuck.
func (r *Reconciler) lastEvent(ctx context.Context, obj client.Object, kind string) string {
	list := &corev1.EventList{}
	err := r.APIReader.List(ctx, list, client.InNamespace(obj.GetNamespace()),
		client.MatchingFields{"involvedObject.kind": kind, "involvedObject.name": obj.GetName()})
	if err != nil {
		return ""
	}
	return restore.LastEvent(list.Items)
}

func withEvent(msg, event string) string {
	if event == "" {
		return msg
	}
	return msg + ": " + event
}

func totalTimeout(d *drillsv1.RestoreDrill) time.Duration {
	if d == nil {
		return drillsv1.DefaultTotalTimeout
	}
	return d.Spec.TotalTimeout()
}

func durationOr(d *metav1.Duration, def time.Duration) time.Duration {
	if d != nil && d.Duration > 0 {
		return d.Duration
	}
	return def
}

// phaseTook is how long the last timing of phase took, for events.
func phaseTook(s drillsv1.DrillRunStatus, phase drillsv1.Phase) string {
	for i := len(s.Phases) - 1; i >= 0; i-- {
		if p := s.Phases[i]; p.Name == phase && p.Seconds != nil {
			return rto.Human(*p.Seconds)
		}
	}
	return "?"
}

// boundMessage cuts a message or event note to maxMessageBytes, at a rune
// boundary, marking the cut with "…".
func boundMessage(s string) string {
	if len(s) <= maxMessageBytes {
		return s
	}
	cut := maxMessageBytes - len("…")
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "…"
}

func reasonOr(reason, def string) string {
	if reason == "" {
		return def
	}
	return reason
}
