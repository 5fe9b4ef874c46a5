package drill

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/go-logr/logr"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
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
		phase := s.Phase
		endRun(s, verdict.Errored(verdict.ReasonInterrupted, "drillerd stopped while the run was in phase %s; its timings would include the outage, so it has no verdict", phase), now)
		if err := r.Client.Status().Update(ctx, run); err != nil && !apierrors.IsNotFound(err) && !apierrors.IsConflict(err) {
			return fmt.Errorf("while marking %s/%s interrupted: %w", run.Namespace, run.Name, err)
		}
		r.Log.Info("run interrupted", "run", run.Name, "namespace", run.Namespace, "phase", phase)
	}
	return nil
}
