package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/internal/rto"
)

// Gate holds the reconciler back until recovery has run on this leader.
type Gate struct {
	once sync.Once
	ch   chan struct{}
}

// NewGate returns a closed gate.
func NewGate() *Gate { return &Gate{ch: make(chan struct{})} }

// Open lets reconciles through.
func (g *Gate) Open() { g.once.Do(func() { close(g.ch) }) }

// IsOpen reports whether recovery has run.
func (g *Gate) IsOpen() bool {
	select {
	case <-g.ch:
		return true
	default:
		return false
	}
}

// Recovery runs on the leader: first it ends the runs a previous process
// left in progress (Error, reason Interrupted: their timings include the
// outage and cannot be trusted), then it sweeps orphaned sandboxes, at
// start and every SweepInterval.
type Recovery struct {
	Client        client.Client
	APIReader     client.Reader
	Clock         clock.PassiveClock
	Log           logr.Logger
	Gate          *Gate
	SweepInterval time.Duration
	// OrphanRemoved is called for every orphaned sandbox object deleted.
	OrphanRemoved func(kind string)
}

// NeedLeaderElection: only the leader recovers and sweeps.
func (r *Recovery) NeedLeaderElection() bool { return true }

// Start implements manager.Runnable.
func (r *Recovery) Start(ctx context.Context) error {
	for {
		err := r.MarkInterrupted(ctx)
		if err == nil {
			break
		}
		r.Log.Error(err, "while marking interrupted runs; retrying")
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(2 * time.Second):
		}
	}
	r.Gate.Open()
	interval := r.SweepInterval
	if interval <= 0 {
		interval = 10 * time.Minute
	}
	for {
		if err := r.Sweep(ctx); err != nil && ctx.Err() == nil {
			r.Log.Error(err, "while sweeping orphaned sandboxes")
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// MarkInterrupted ends every run that is past Pending but has no verdict.
func (r *Recovery) MarkInterrupted(ctx context.Context) error {
	runs := &drillsv1.DrillRunList{}
	if err := r.APIReader.List(ctx, runs); err != nil {
		return fmt.Errorf("while listing DrillRuns: %w", err)
	}
	now := r.Clock.Now()
	for i := range runs.Items {
		run := &runs.Items[i]
		s := &run.Status
		if s.Result != "" || s.Phase == "" || s.Phase == drillsv1.PhasePending || s.Phase == drillsv1.PhaseDone {
			continue
		}
		v := rto.Errored(rto.ReasonInterrupted, "drillerd stopped while the run was in phase %s; its timings would include the outage, so it has no verdict", s.Phase)
		s.Result, s.Reason, s.Message = v.Result, v.Reason, v.Message
		rto.StartPhase(s, drillsv1.PhaseTearingDown, now)
		if err := r.Client.Status().Update(ctx, run); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("while marking %s/%s interrupted: %w", run.Namespace, run.Name, err)
		}
		r.Log.Info("run interrupted", "run", run.Name, "namespace", run.Namespace, "phase", s.Phase)
	}
	return nil
}

// Sweep deletes sandbox namespaces and content copies whose run is gone, or
// finished and no longer keeping its sandbox.
func (r *Recovery) Sweep(ctx context.Context) error {
	owned := client.MatchingLabels{restore.LabelManagedBy: restore.ManagedByValue}
	namespaces := &corev1.NamespaceList{}
	if err := r.APIReader.List(ctx, namespaces, owned); err != nil {
		return fmt.Errorf("while listing sandbox namespaces: %w", err)
	}
	for i := range namespaces.Items {
		ns := &namespaces.Items[i]
		if !restore.IsOwnedSandbox(ns) {
			continue
		}
		orphan, err := r.orphaned(ctx, ns.Labels)
		if err != nil || !orphan {
			continue
		}
		if _, _, err := releaseVolume(ctx, r.APIReader, r.Client, ns.Name, ""); err != nil {
			return err
		}
		if ns.DeletionTimestamp != nil {
			continue
		}
		if err := r.Client.Delete(ctx, ns, client.Preconditions{UID: &ns.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("while deleting orphaned sandbox %s: %w", ns.Name, err)
		}
		r.removed("Namespace", ns.Name)
	}
	// Restored volumes labelled by their run (restore.IsSandboxVolume
	// gates them too): one of a Retain class whose sandbox is gone would
	// otherwise stay as a Released copy of production data.
	labelled := &corev1.PersistentVolumeList{}
	if err := r.APIReader.List(ctx, labelled, owned); err != nil {
		return fmt.Errorf("while listing restored volumes: %w", err)
	}
	for i := range labelled.Items {
		pv := &labelled.Items[i]
		if !restore.IsOwnedVolume(pv) || pv.Spec.PersistentVolumeReclaimPolicy != corev1.PersistentVolumeReclaimRetain {
			continue
		}
		orphan, err := r.orphaned(ctx, pv.Labels)
		if err != nil || !orphan {
			continue
		}
		if err := restore.ReleaseSandboxVolume(ctx, r.Client, pv); err != nil {
			return err
		}
		r.removed("PersistentVolume", pv.Name)
	}
	contents := &snapshotv1.VolumeSnapshotContentList{}
	if err := r.APIReader.List(ctx, contents, owned); err != nil {
		return fmt.Errorf("while listing content copies: %w", err)
	}
	for i := range contents.Items {
		c := &contents.Items[i]
		if !restore.IsOwnedContent(c) || c.DeletionTimestamp != nil {
			continue
		}
		orphan, err := r.orphaned(ctx, c.Labels)
		if err != nil || !orphan {
			continue
		}
		if err := r.Client.Delete(ctx, c, client.Preconditions{UID: &c.UID}); client.IgnoreNotFound(err) != nil {
			return fmt.Errorf("while deleting orphaned content copy %s: %w", c.Name, err)
		}
		r.removed("VolumeSnapshotContent", c.Name)
	}
	return nil
}

func (r *Recovery) removed(kind, name string) {
	r.Log.Info("orphaned sandbox object removed", "kind", kind, "name", name)
	if r.OrphanRemoved != nil {
		r.OrphanRemoved(kind)
	}
}

// orphaned decides from an object's run labels whether its run still needs it.
func (r *Recovery) orphaned(ctx context.Context, labels map[string]string) (bool, error) {
	run := &drillsv1.DrillRun{}
	err := r.APIReader.Get(ctx, restore.RunOf(labels), run)
	switch {
	case apierrors.IsNotFound(err):
		run = nil
	case err != nil:
		return false, err
	}
	return restore.StateOf(labels, run, r.Clock.Now()) == restore.SandboxOrphaned, nil
}
