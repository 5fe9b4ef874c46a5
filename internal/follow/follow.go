// Package follow watches a DrillRun until it is Done, telling a person at a
// terminal what happens meanwhile: each phase the run enters, each error it
// retries, and, when the run stays unstarted or Pending for a while, why
// that may be: no drillerd holds the leader Lease, or every drill slot is
// busy, and with which runs.
//
// # Design
//
// The run is read once, then watched from that read's resourceVersion; a
// watch that ends (the API server closes watches after a while) is resumed
// the same way. A timer, restarted on every phase change, fires the
// explanation once per stall: a run that no drillerd has touched (no phase)
// is explained by the leader Lease; a run that is Pending by the slots in
// use. Reads that fail while explaining are reported in the explanation, not
// as errors: the run itself may still finish.
package follow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/clock"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/rto"
)

// DefaultExplainAfter is how long a run may stay unstarted or Pending before
// the Follower says why.
const DefaultExplainAfter = 30 * time.Second

// Follower waits for a run's verdict and narrates the wait.
type Follower struct {
	// Client reads and watches DrillRuns and reads the Lease.
	Client client.WithWatch
	// Clock times the progress lines and the explanation.
	Clock clock.Clock
	// Out receives one line per event.
	Out io.Writer
	// ExplainAfter is how long a run may go unstarted or stay Pending
	// before the Follower explains; 0 means DefaultExplainAfter.
	ExplainAfter time.Duration
	// Lease is drillerd's leader election Lease (serve's --namespace and
	// --leader-election-id).
	Lease types.NamespacedName

	start time.Time
}

// Wait follows run until it is Done and returns it. It ends early only when
// ctx does, or the run cannot be read or is deleted.
func (f *Follower) Wait(ctx context.Context, run *drillsv1.DrillRun) (*drillsv1.DrillRun, error) {
	f.start = f.Clock.Now()
	explainAfter := f.ExplainAfter
	if explainAfter <= 0 {
		explainAfter = DefaultExplainAfter
	}
	st := &state{explainAfter: explainAfter, timer: f.Clock.NewTimer(explainAfter)}
	defer st.timer.Stop()
	for {
		current := &drillsv1.DrillRun{}
		if err := f.Client.Get(ctx, client.ObjectKeyFromObject(run), current); err != nil {
			return nil, err
		}
		if f.observe(st, current) {
			return current, nil
		}
		w, err := f.Client.Watch(ctx, &drillsv1.DrillRunList{}, client.InNamespace(run.Namespace),
			client.MatchingFieldsSelector{Selector: fields.OneTermEqualSelector("metadata.name", run.Name)},
			&client.ListOptions{Raw: &metav1.ListOptions{ResourceVersion: current.ResourceVersion}})
		if err != nil {
			return nil, err
		}
		done, err := f.follow(ctx, st, w, run.Name)
		w.Stop()
		if done != nil || err != nil {
			return done, err
		}
	}
}

// state is what Wait knows of the run between events.
type state struct {
	seen         *drillsv1.DrillRun // the newest state reported
	explainAfter time.Duration
	timer        clock.Timer // fires explainAfter after the newest phase change
	explained    bool        // the current stall is explained
}

// observe reports what changed since the state seen, restarts the stall
// timer on a phase change, and says whether the run is Done.
func (f *Follower) observe(st *state, current *drillsv1.DrillRun) bool {
	if st.seen == nil || current.Status.Phase != st.seen.Status.Phase {
		st.timer.Reset(st.explainAfter)
		st.explained = false
	}
	f.report(st.seen, current)
	st.seen = current
	return current.Status.Phase == drillsv1.PhaseDone
}

// follow handles one watch's events until the run is Done (returned), the
// watch ends (nil, nil: resume with a fresh read) or ctx ends.
func (f *Follower) follow(ctx context.Context, st *state, w watch.Interface, name string) (*drillsv1.DrillRun, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-st.timer.C():
			if !st.explained && stalled(st.seen) {
				st.explained = true
				f.line("%s", f.Explain(ctx, st.seen))
			}
		case ev, ok := <-w.ResultChan():
			if !ok || ev.Type == watch.Error {
				return nil, nil
			}
			r, isRun := ev.Object.(*drillsv1.DrillRun)
			if !isRun || r.Name != name {
				continue
			}
			if ev.Type == watch.Deleted {
				return nil, fmt.Errorf("DrillRun %s/%s: %w", r.Namespace, r.Name, ErrDeleted)
			}
			if f.observe(st, r) {
				return r, nil
			}
		}
	}
}

// stalled says whether run is waiting to start: no drillerd has touched it,
// or it waits for a slot.
func stalled(run *drillsv1.DrillRun) bool {
	return run != nil && (run.Status.Phase == "" || run.Status.Phase == drillsv1.PhasePending)
}

// report writes a line for each change from before to now: the phase
// entered (with Pending's message, and the verdict when Done) and a new
// retried error.
func (f *Follower) report(before, now *drillsv1.DrillRun) {
	s := now.Status
	if before == nil || s.Phase != before.Status.Phase {
		switch s.Phase {
		case "":
			f.line("waiting for drillerd to pick the run up")
		case drillsv1.PhasePending:
			f.line("Pending: %s", orDefault(s.Message, "waiting for a drill slot"))
		case drillsv1.PhaseDone:
			verdict := string(s.Result)
			if s.Reason != "" {
				verdict += " (" + s.Reason + ")"
			}
			f.line("Done: %s", verdict)
		default:
			f.line("%s", s.Phase)
		}
	}
	if s.LastError != "" && (before == nil || s.LastError != before.Status.LastError) {
		f.line("retrying: %s", s.LastError)
	}
}

// line writes one progress line, prefixed with the time since Wait began.
func (f *Follower) line(format string, args ...any) {
	elapsed := f.Clock.Since(f.start).Seconds()
	fmt.Fprintf(f.Out, "%7.1fs  %s\n", elapsed, fmt.Sprintf(format, args...))
}

// Explain says why run may not have started: for a run without a phase,
// who holds drillerd's leader Lease; for a Pending run, which runs hold the
// drill slots.
func (f *Follower) Explain(ctx context.Context, run *drillsv1.DrillRun) string {
	waited := rto.Human(f.Clock.Since(f.start).Seconds())
	if run.Status.Phase == drillsv1.PhasePending {
		return fmt.Sprintf("still Pending after %s: %s", waited, f.explainSlots(ctx, run))
	}
	return fmt.Sprintf("no drillerd has picked the run up after %s: %s", waited, f.explainLease(ctx))
}

// explainLease says who holds drillerd's leader Lease, and since when, or
// that nobody does.
func (f *Follower) explainLease(ctx context.Context) string {
	ref := f.Lease.Namespace + "/" + f.Lease.Name
	look := fmt.Sprintf("is drillerd serving? kubectl -n %s get pods,events; kubectl -n %s logs deploy/drillerd "+
		"(a drillerd started with another --namespace or --leader-election-id: give them to drillerd run as --drillerd-namespace and --leader-election-id)",
		f.Lease.Namespace, f.Lease.Namespace)
	lease := &coordinationv1.Lease{}
	err := f.Client.Get(ctx, f.Lease, lease)
	switch {
	case apierrors.IsNotFound(err):
		return fmt.Sprintf("no drillerd holds the leader Lease %s: it does not exist, so no drillerd with leader election has started there; %s", ref, look)
	case err != nil:
		return fmt.Sprintf("cannot read drillerd's leader Lease %s to tell whether a drillerd is serving (%v); %s", ref, err, look)
	}
	now := f.Clock.Now()
	spec := lease.Spec
	holder := ""
	if spec.HolderIdentity != nil {
		holder = *spec.HolderIdentity
	}
	if holder == "" {
		when := ""
		if spec.RenewTime != nil {
			when = fmt.Sprintf(" at %s (%s ago)", spec.RenewTime.UTC().Format(time.RFC3339), ago(now, spec.RenewTime.Time))
		}
		return fmt.Sprintf("no drillerd holds the leader Lease %s: a drillerd that stopped released it%s, and nobody has taken it since; %s", ref, when, look)
	}
	if spec.RenewTime == nil {
		return fmt.Sprintf("the leader Lease %s names %s but was never renewed; %s", ref, holder, look)
	}
	duration := 15 * time.Second
	if spec.LeaseDurationSeconds != nil {
		duration = time.Duration(*spec.LeaseDurationSeconds) * time.Second
	}
	renewed := spec.RenewTime.Time
	if now.Sub(renewed) > duration {
		return fmt.Sprintf("no drillerd holds the leader Lease %s: its last holder, %s, renewed it at %s (%s ago), and it lapses %s after a renewal; %s",
			ref, holder, renewed.UTC().Format(time.RFC3339), ago(now, renewed), duration, look)
	}
	since := ""
	if spec.AcquireTime != nil {
		since = fmt.Sprintf(" since %s", spec.AcquireTime.UTC().Format(time.RFC3339))
	}
	pod, _, _ := strings.Cut(holder, "_") // controller-runtime's identity: hostname_uuid
	return fmt.Sprintf("the leader Lease %s is held by %s%s (renewed %s ago), yet that drillerd has not taken the run up; see its log: kubectl -n %s logs %s",
		ref, holder, since, ago(now, renewed), f.Lease.Namespace, pod)
}

// explainSlots lists the runs in progress, which hold the drill slots.
func (f *Follower) explainSlots(ctx context.Context, run *drillsv1.DrillRun) string {
	why := orDefault(run.Status.Message, "waiting for a drill slot")
	runs := &drillsv1.DrillRunList{}
	scope := ""
	err := f.Client.List(ctx, runs)
	if apierrors.IsForbidden(err) {
		scope = fmt.Sprintf(" in namespace %s (you may not list drillruns in every namespace)", run.Namespace)
		err = f.Client.List(ctx, runs, client.InNamespace(run.Namespace))
	}
	if err != nil {
		return fmt.Sprintf("%s; cannot list the runs in progress: %v", why, err)
	}
	now := f.Clock.Now()
	var busy []string
	for _, r := range runs.Items {
		p := r.Status.Phase
		if p == "" || p == drillsv1.PhasePending || p == drillsv1.PhaseDone {
			continue
		}
		entry := fmt.Sprintf("%s/%s (drill %s, %s", r.Namespace, r.Name, r.Spec.DrillName, p)
		if n := len(r.Status.Phases); n > 0 {
			entry += " for " + ago(now, r.Status.Phases[n-1].StartTime.Time)
		}
		busy = append(busy, entry+")")
	}
	if len(busy) == 0 {
		return fmt.Sprintf("%s; no run in progress%s holds one now, so the slot should free up at drillerd's next look", why, scope)
	}
	return fmt.Sprintf("%s; the slots are held by the runs in progress%s: %s", why, scope, strings.Join(busy, ", "))
}

func ago(now, then time.Time) string {
	return rto.Human(max(now.Sub(then), 0).Seconds())
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// ErrDeleted is returned when the followed run disappears.
var ErrDeleted = errors.New("the DrillRun was deleted before its verdict")
