package scheduler

import (
	"context"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/controller/controllerutil"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// concurrentDrillReconciles is how many drills are reconciled at once.
const concurrentDrillReconciles = 32

// DrillNameField indexes DrillRuns by spec.drillName.
const DrillNameField = "spec.drillName"

// DefaultStartingDeadline is how late a tick may still start a run.
const DefaultStartingDeadline = 10 * time.Minute

// Skip reasons: the keys of status.skippedTicks and the reasons of the
// drillerd_drill_skipped_total metric.
const (
	// SkipAlreadyRunning: a run of the drill was still in progress.
	SkipAlreadyRunning = "AlreadyRunning"
	// SkipMissedDeadline: the tick was handled more than the starting
	// deadline after it (drillerd was down).
	SkipMissedDeadline = "MissedDeadline"
)

// Controller reconciles RestoreDrills: schedule ticks, history, status.
type Controller struct {
	// Client reads drills and runs, creates and prunes runs and writes the
	// drill's status.
	Client client.Client
	// Clock says when now is.
	Clock clock.PassiveClock
	// Recorder receives a RunSkipped event per skipped tick.
	Recorder events.EventRecorder
	// StartingDeadline is how late a tick may still start a run; a tick
	// handled later is skipped as MissedDeadline. Zero means
	// DefaultStartingDeadline.
	StartingDeadline time.Duration
}

// Reconcile handles the drill's newest due tick and prunes its history.
func (c *Controller) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	drill := &drillsv1.RestoreDrill{}
	if err := c.Client.Get(ctx, req.NamespacedName, drill); err != nil {
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	log := ctrl.LoggerFrom(ctx).WithValues("drill", drill.Name, "namespace", drill.Namespace)
	now := c.Clock.Now()
	// The runs are only read: the cache's own objects, not copies of them.
	runs := &drillsv1.DrillRunList{}
	if err := c.Client.List(ctx, runs, client.InNamespace(drill.Namespace), client.MatchingFields{DrillNameField: drill.Name}, client.UnsafeDisableDeepCopy); err != nil {
		return ctrl.Result{}, fmt.Errorf("while listing the drill's runs: %w", err)
	}
	if err := c.pruneHistory(ctx, drill, runs.Items); err != nil {
		return ctrl.Result{}, err
	}

	orig := drill.DeepCopy()
	status := &drill.Status
	status.ObservedGeneration = drill.Generation
	var requeue time.Duration
	switch sched, err := Parse(drill.Spec.Schedule, ptr.Deref(drill.Spec.TimeZone, "")); {
	case drill.Spec.Schedule == "":
		status.NextScheduleTime = nil
		setReady(drill, metav1.ConditionTrue, "OnDemand", "no schedule: runs start on demand")
	case err != nil:
		status.NextScheduleTime = nil
		setReady(drill, metav1.ConditionFalse, "InvalidSchedule", err.Error())
	case drill.Spec.Suspend:
		status.NextScheduleTime = nil
		setReady(drill, metav1.ConditionTrue, "Suspended", "spec.suspend is true: scheduled runs are off")
	default:
		after := drill.CreationTimestamp.Time
		if status.LastScheduleTime != nil {
			after = status.LastScheduleTime.Time
		}
		if tick, due := sched.LatestTick(after, now); due {
			created, err := c.handleTick(ctx, drill, runs.Items, tick, now)
			if err != nil {
				return ctrl.Result{}, err
			}
			log.Info("schedule tick handled", "tick", tick, "runCreated", created)
			if created {
				// The run first, the drill's status after: of many drills
				// due at one minute, every run is created before any of
				// their statuses is written. The run's creation wakes
				// the drill again, which then finds the run and records
				// the tick.
				return ctrl.Result{RequeueAfter: tickRecordRecheck}, nil
			}
			status.LastScheduleTime = &metav1.Time{Time: tick}
		}
		next := sched.Next(now)
		status.NextScheduleTime = &metav1.Time{Time: next}
		setReady(drill, metav1.ConditionTrue, "Scheduled", "next run at "+next.UTC().Format(time.RFC3339))
		// The queue wakes the drill no earlier than the tick: it is due
		// then, and a clock stepped back only makes it wait again.
		requeue = next.Sub(now)
	}
	if !equality.Semantic.DeepEqual(orig.Status, drill.Status) {
		if err := c.Client.Status().Patch(ctx, drill, client.MergeFrom(orig)); err != nil {
			return ctrl.Result{}, fmt.Errorf("while writing RestoreDrill status: %w", err)
		}
	}
	return ctrl.Result{RequeueAfter: requeue}, nil
}

// tickRecordRecheck is when a drill whose tick created a run looks again to
// record the tick, should the run's creation not wake it first.
const tickRecordRecheck = time.Second

// handleTick starts the run of a tick, or records why it was skipped. It
// reports whether it created the run; a run found already there (made by
// an earlier attempt or another replica) is not.
func (c *Controller) handleTick(ctx context.Context, drill *drillsv1.RestoreDrill, runs []drillsv1.DrillRun, tick, now time.Time) (bool, error) {
	name := RunName(drill.Name, tick)
	deadline := c.StartingDeadline
	if deadline <= 0 {
		deadline = DefaultStartingDeadline
	}
	skip := func(reason, format string, args ...any) {
		c.Recorder.Eventf(drill, nil, corev1.EventTypeWarning, "RunSkipped", "Schedule", format, args...)
		if drill.Status.SkippedTicks == nil {
			drill.Status.SkippedTicks = map[string]int64{}
		}
		drill.Status.SkippedTicks[reason]++
	}
	if now.Sub(tick) > deadline {
		skip(SkipMissedDeadline, "the tick of %s was missed by %s (more than %s late)", tick.UTC().Format(time.RFC3339), now.Sub(tick).Round(time.Second), deadline)
		return false, nil
	}
	for _, r := range runs {
		if r.Name == name {
			return false, nil // this tick's run exists: created by an earlier attempt or another replica
		}
	}
	for _, r := range runs {
		if !r.Status.Concluded() {
			skip(SkipAlreadyRunning, "the tick of %s was skipped: run %s is still in progress", tick.UTC().Format(time.RFC3339), r.Name)
			return false, nil
		}
	}
	run := &drillsv1.DrillRun{
		ObjectMeta: metav1.ObjectMeta{Namespace: drill.Namespace, Name: name, Labels: map[string]string{drillsv1.LabelDrill: drill.Name}},
		Spec:       drillsv1.DrillRunSpec{DrillName: drill.Name, Trigger: drillsv1.TriggerSchedule, ScheduledTime: &metav1.Time{Time: tick}},
	}
	if err := controllerutil.SetControllerReference(drill, run, c.Client.Scheme()); err != nil {
		return false, err
	}
	switch err := c.Client.Create(ctx, run); {
	case apierrors.IsAlreadyExists(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("while creating scheduled run %s: %w", name, err)
	}
	return true, nil
}

// pruneHistory deletes the oldest finished runs beyond spec.historyLimit.
func (c *Controller) pruneHistory(ctx context.Context, drill *drillsv1.RestoreDrill, runs []drillsv1.DrillRun) error {
	limit := int(ptr.Deref(drill.Spec.HistoryLimit, 10))
	var done []drillsv1.DrillRun
	for _, r := range runs {
		// A run whose sandbox is not gone (kept for keepOnFailure, or
		// leaked past timeouts.teardown) stays until it is: it says what
		// the sandbox is, and its SandboxLeaked condition feeds the alert.
		holdsSandbox := !r.Status.SandboxRemoved && r.Status.SandboxNamespace != ""
		if r.Status.Phase == drillsv1.PhaseDone && r.DeletionTimestamp == nil && !holdsSandbox {
			done = append(done, r)
		}
	}
	if len(done) <= limit {
		return nil
	}
	sort.Slice(done, func(i, j int) bool { return done[i].CreationTimestamp.Before(&done[j].CreationTimestamp) })
	for _, r := range done[:len(done)-limit] {
		if err := c.Client.Delete(ctx, &r, client.Preconditions{UID: &r.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("while pruning run %s: %w", r.Name, err)
		}
	}
	return nil
}

func setReady(drill *drillsv1.RestoreDrill, status metav1.ConditionStatus, reason, message string) {
	meta.SetStatusCondition(&drill.Status.Conditions, metav1.Condition{
		Type: "Ready", Status: status, Reason: reason, Message: message, ObservedGeneration: drill.Generation,
	})
}

// IndexDrillName registers the spec.drillName index of DrillRuns.
func IndexDrillName(ctx context.Context, mgr ctrl.Manager) error {
	return mgr.GetFieldIndexer().IndexField(ctx, &drillsv1.DrillRun{}, DrillNameField, func(o client.Object) []string {
		return []string{o.(*drillsv1.DrillRun).Spec.DrillName}
	})
}

// SetupWithManager registers the controller; a run's changes wake its drill.
func (c *Controller) SetupWithManager(mgr ctrl.Manager) error {
	toDrill := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, o client.Object) []reconcile.Request {
		run := o.(*drillsv1.DrillRun)
		return []reconcile.Request{{NamespacedName: types.NamespacedName{Namespace: run.Namespace, Name: run.Spec.DrillName}}}
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("restoredrill").
		For(&drillsv1.RestoreDrill{}).
		Watches(&drillsv1.DrillRun{}, toDrill).
		// Drills are independent and a reconcile holds no state of its
		// own: many drills due at one minute are handled side by side,
		// not one after the other.
		WithOptions(controller.Options{MaxConcurrentReconciles: concurrentDrillReconciles}).
		Complete(c)
}
