package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/verdict"
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
	// Recorder receives a SweepFailed event for every object the sweep
	// could not remove; nil sends none.
	Recorder events.EventRecorder
	// OrphanRemoved is called for every orphaned sandbox object deleted.
	OrphanRemoved func(kind string)
	// SweepFailed is called for every error of a sweep, with the kind of
	// sandbox object it was about.
	SweepFailed func(kind string)
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
			r.Log.Info("the sweep met errors (each logged above); the next sweep tries again", "next", interval.String())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(interval):
		}
	}
}

// MarkInterrupted ends every run that is past Pending but has no verdict.
// A run whose status changed meanwhile (a conflict) is read again and
// marked if it still needs it, until that is done or ctx ends: a run left
// unmarked would resume with timings that include the outage. Only the
// runs not Done are listed: a cluster's finished runs, thousands of them,
// need nothing, and reading them all would cost drillerd their whole list
// in memory at every start.
func (r *Recovery) MarkInterrupted(ctx context.Context) error {
	runs := &drillsv1.DrillRunList{}
	if err := r.APIReader.List(ctx, runs, notDone); err != nil {
		return fmt.Errorf("while listing DrillRuns: %w", err)
	}
	for i := range runs.Items {
		if err := r.markInterrupted(ctx, &runs.Items[i]); err != nil {
			return err
		}
	}
	return nil
}

// markInterrupted ends run as Interrupted if it needs it, reading it again
// after every conflict.
func (r *Recovery) markInterrupted(ctx context.Context, run *drillsv1.DrillRun) error {
	for {
		if !interrupted(run.Status) {
			return nil
		}
		phase := run.Status.Phase
		endRun(&run.Status, verdict.Errored(verdict.ReasonInterrupted, "drillerd stopped while the run was in phase %s; its timings would include the outage, so it has no verdict", phase), r.Clock.Now())
		err := r.Client.Status().Update(ctx, run)
		switch {
		case err == nil:
			r.Log.Info("run interrupted", "run", run.Name, "namespace", run.Namespace, "phase", phase)
			return nil
		case apierrors.IsNotFound(err):
			return nil
		case !apierrors.IsConflict(err):
			return fmt.Errorf("while marking %s/%s interrupted: %w", run.Namespace, run.Name, err)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("while marking %s/%s interrupted: %w", run.Namespace, run.Name, ctx.Err())
		}
		fresh := &drillsv1.DrillRun{}
		if err := r.APIReader.Get(ctx, client.ObjectKeyFromObject(run), fresh); err != nil {
			if apierrors.IsNotFound(err) {
				return nil
			}
			return fmt.Errorf("while reading %s/%s again after a conflict: %w", run.Namespace, run.Name, err)
		}
		*run = *fresh
	}
}

// interrupted reports whether a run found at start-up was cut off by the
// previous process: it started and has no verdict.
func interrupted(s drillsv1.DrillRunStatus) bool {
	return s.InFlight()
}
