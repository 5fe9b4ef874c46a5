package nodeemu

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	testingclock "k8s.io/utils/clock/testing"
)

var t0 = time.Date(2026, 11, 23, 3, 0, 0, 0, time.UTC)

// fakeContainer is a probe target whose handler answers from a script.
type fakeContainer struct {
	clock *testingclock.FakeClock

	mu       sync.Mutex
	view     containerView
	script   []probeOutcome // one per handler call; the last one repeats
	calls    []time.Time    // the clock at each handler call
	results  []string       // "Kind=result" in the order set
	events   []string       // "Reason: message"
	probedCh chan time.Time
}

func newFakeContainer() *fakeContainer {
	clk := testingclock.NewFakeClock(t0)
	return &fakeContainer{
		clock:  clk,
		view:   containerView{id: "c1", running: true, startedAt: t0, started: true},
		script: []probeOutcome{{result: resultSuccess}},
	}
}

func (f *fakeContainer) answering(outcomes ...probeOutcome) *fakeContainer {
	f.script = outcomes
	return f
}

func (f *fakeContainer) notStarted() *fakeContainer { f.view.started = false; return f }

func (f *fakeContainer) container() containerView {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.view
}

func (f *fakeContainer) runProbe(ctx context.Context, kind probeKind, spec *corev1.Probe) probeOutcome {
	f.mu.Lock()
	now := f.clock.Now()
	f.calls = append(f.calls, now)
	out := f.script[0]
	if len(f.script) > 1 {
		f.script = f.script[1:]
	}
	probed := f.probedCh
	f.mu.Unlock()
	if probed != nil {
		probed <- now
	}
	return out
}

func (f *fakeContainer) setResult(kind probeKind, containerID string, r probeResult) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.results = append(f.results, kind.String()+"="+r.String())
}

func (f *fakeContainer) event(eventType, reason, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, reason+": "+message)
}

func (f *fakeContainer) callCount() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.calls)
}

var (
	success = probeOutcome{result: resultSuccess}
	failure = probeOutcome{result: resultFailure, output: "/var/run/postgresql:5432 - no response\n"}
	errored = probeOutcome{err: errors.New("failed to exec in container")}
)

// TestProbeWorkerFollowsTheKubeletsRules drives one worker probe by probe
// (doProbe is one tick of the kubelet's worker) and compares the handler
// calls, the results set and the events with what the kubelet does.
func TestProbeWorkerFollowsTheKubeletsRules(t *testing.T) {
	tests := []struct {
		name        string
		kind        probeKind
		spec        corev1.Probe
		container   *fakeContainer
		ticks       int
		wantCalls   int
		wantResults []string
		wantEvents  []string
	}{
		{
			name: "readiness starts as failure; one failure is below failureThreshold, a success is set",
			kind: readinessProbe, container: newFakeContainer().answering(failure, success),
			ticks: 3, wantCalls: 3,
			wantResults: []string{"Readiness=failure", "Readiness=success", "Readiness=success"},
			wantEvents:  []string{"Unhealthy: Readiness probe failed: /var/run/postgresql:5432 - no response\n"},
		},
		{
			name: "successThreshold: ready after that many successes in a row",
			kind: readinessProbe, spec: corev1.Probe{SuccessThreshold: 3},
			container: newFakeContainer().answering(success, success, failure, success),
			ticks:     6, wantCalls: 6,
			// failure at the third probe is the first of a new run: set at once
			// only when failureThreshold is 1; here (3) it is below the threshold.
			wantResults: []string{"Readiness=failure", "Readiness=success"},
			wantEvents:  []string{"Unhealthy: Readiness probe failed: /var/run/postgresql:5432 - no response\n"},
		},
		{
			name: "liveness: failures below failureThreshold leave the container alive, the threshold holds further probes",
			kind: livenessProbe, spec: corev1.Probe{FailureThreshold: 3},
			container: newFakeContainer().answering(failure, failure, success, failure, failure, failure),
			ticks:     9, wantCalls: 6,
			wantResults: []string{"Liveness=success", "Liveness=success", "Liveness=failure"},
			wantEvents:  slices.Repeat([]string{"Unhealthy: Liveness probe failed: /var/run/postgresql:5432 - no response\n"}, 5),
		},
		{
			name: "no probe before initialDelaySeconds",
			kind: readinessProbe, spec: corev1.Probe{InitialDelaySeconds: 30},
			container: newFakeContainer(), ticks: 3, wantCalls: 0,
			wantResults: []string{"Readiness=failure"},
		},
		{
			name: "readiness and liveness wait for the container to have started",
			kind: readinessProbe, container: newFakeContainer().notStarted(),
			ticks: 2, wantCalls: 0, wantResults: []string{"Readiness=failure"},
		},
		{
			name: "the startup probe runs until the container has started, then holds",
			kind: startupProbe, container: newFakeContainer().notStarted().answering(failure, success),
			ticks: 4, wantCalls: 2,
			wantResults: []string{"Startup=unknown", "Startup=success"},
			wantEvents:  []string{"Unhealthy: Startup probe failed: /var/run/postgresql:5432 - no response\n"},
		},
		{
			name: "a handler error is retried, said in an event and thrown away",
			kind: readinessProbe, container: newFakeContainer().answering(errored, errored, errored, success),
			ticks: 2, wantCalls: 4,
			wantResults: []string{"Readiness=failure", "Readiness=success"},
			wantEvents:  []string{"Unhealthy: Readiness probe errored and resulted in unknown state: failed to exec in container"},
		},
		{
			name: "an errored liveness probe never kills",
			kind: livenessProbe, container: newFakeContainer().answering(errored),
			ticks: 5, wantCalls: 15,
			wantResults: []string{"Liveness=success"},
			wantEvents:  slices.Repeat([]string{"Unhealthy: Liveness probe errored and resulted in unknown state: failed to exec in container"}, 5),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.container
			w := newProbeWorker(tt.kind, &tt.spec, f.clock, f)
			for i := range tt.ticks {
				if !w.doProbe(context.Background()) {
					t.Fatalf("worker stopped at tick %d", i)
				}
				f.clock.Step(time.Second)
			}
			if got := f.callCount(); got != tt.wantCalls {
				t.Errorf("handler called %d times, want %d", got, tt.wantCalls)
			}
			if !slices.Equal(f.results, tt.wantResults) {
				t.Errorf("results = %q, want %q", f.results, tt.wantResults)
			}
			if !slices.Equal(f.events, tt.wantEvents) {
				t.Errorf("events = %q, want %q", f.events, tt.wantEvents)
			}
		})
	}
}

func TestProbeWorkerInitialDelayCountsWholeSeconds(t *testing.T) {
	f := newFakeContainer()
	w := newProbeWorker(readinessProbe, &corev1.Probe{InitialDelaySeconds: 5}, f.clock, f)
	f.clock.Step(4*time.Second + 999*time.Millisecond)
	w.doProbe(context.Background())
	if f.callCount() != 0 {
		t.Fatalf("probed %v after the start, before initialDelaySeconds 5", f.clock.Since(t0))
	}
	f.clock.Step(time.Millisecond)
	w.doProbe(context.Background())
	if f.callCount() != 1 {
		t.Errorf("not probed 5s after the start")
	}
}

func TestProbeWorkerStopsWithTheContainer(t *testing.T) {
	tests := []struct {
		name        string
		view        containerView
		wantGoOn    bool
		wantResults []string
	}{
		{"not created yet", containerView{}, true, nil},
		{"waiting to restart", containerView{id: "c1", restartable: true}, true, []string{"Readiness=failure", "Readiness=failure"}},
		{"terminated, restart policy Never", containerView{id: "c1", terminated: true}, false, []string{"Readiness=failure", "Readiness=failure"}},
		{"terminated, will restart", containerView{id: "c1", terminated: true, restartable: true}, true, []string{"Readiness=failure", "Readiness=failure"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFakeContainer()
			f.view = tt.view
			w := newProbeWorker(readinessProbe, &corev1.Probe{}, f.clock, f)
			if got := w.doProbe(context.Background()); got != tt.wantGoOn {
				t.Errorf("doProbe = %v, want %v", got, tt.wantGoOn)
			}
			if f.callCount() != 0 {
				t.Errorf("probed a container that is not running")
			}
			if !slices.Equal(f.results, tt.wantResults) {
				t.Errorf("results = %q, want %q", f.results, tt.wantResults)
			}
		})
	}
}

func TestProbeWorkerStartsOverWithANewContainer(t *testing.T) {
	f := newFakeContainer().answering(failure)
	w := newProbeWorker(livenessProbe, &corev1.Probe{FailureThreshold: 1}, f.clock, f)
	w.doProbe(context.Background())
	w.doProbe(context.Background())
	if f.callCount() != 1 {
		t.Fatalf("probed %d times after the liveness failure, want the worker on hold", f.callCount())
	}
	f.mu.Lock()
	f.view.id, f.view.startedAt = "c2", f.clock.Now()
	f.mu.Unlock()
	w.doProbe(context.Background())
	if f.callCount() != 2 {
		t.Errorf("the new container was not probed")
	}
	want := []string{"Liveness=success", "Liveness=failure", "Liveness=success", "Liveness=failure"}
	if !slices.Equal(f.results, want) {
		t.Errorf("results = %q, want %q", f.results, want)
	}
}

// TestProbeWorkerProbesEveryPeriod runs the worker's loop on a fake clock:
// a probe at once, then one per periodSeconds, and a manual trigger (the
// kubelet's, when a container starts) probes at once and starts a new
// period.
func TestProbeWorkerProbesEveryPeriod(t *testing.T) {
	f := newFakeContainer().answering(failure)
	f.probedCh = make(chan time.Time) // the handler waits for the test
	w := newProbeWorker(readinessProbe, &corev1.Probe{PeriodSeconds: 3}, f.clock, f)
	waiting := make(chan struct{})
	w.waiting = func() { waiting <- struct{}{} }
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.run(ctx)
	}()
	defer func() {
		cancel()
		<-done
	}()

	// probed returns when the worker probed (at the clock's time) and is
	// waiting again.
	probed := func() time.Duration {
		t.Helper()
		at := <-f.probedCh
		<-waiting
		return at.Sub(t0)
	}
	// step moves the clock a second at a time until the worker probes.
	// The worker's only waiter on the clock is its timer: when a step
	// fires it, the worker is bound to probe, and cannot arm the next
	// timer before the handler returns.
	step := func() time.Duration {
		t.Helper()
		for f.clock.Since(t0) < time.Minute {
			f.clock.Step(time.Second)
			if !f.clock.HasWaiters() {
				return probed()
			}
		}
		t.Fatal("no probe within a minute")
		return 0
	}
	if got := probed(); got != 0 {
		t.Fatalf("first probe at %v, want at once", got)
	}
	for _, want := range []time.Duration{3 * time.Second, 6 * time.Second} {
		if got := step(); got != want {
			t.Errorf("probe at %v, want at %v (periodSeconds 3)", got, want)
		}
	}
	f.clock.Step(time.Second) // 7s: no probe due
	if !f.clock.HasWaiters() {
		t.Fatal("the worker's timer fired 1s into a 3s period")
	}
	w.triggerNow()
	if got := probed(); got != 7*time.Second {
		t.Errorf("triggered probe at %v, want at once (7s)", got)
	}
	if got := step(); got != 10*time.Second {
		t.Errorf("probe at %v after the trigger at 7s, want at 10s", got)
	}
	if n := strings.Count(strings.Join(f.events, "\n"), "Readiness probe failed"); n != f.callCount() {
		t.Errorf("%d Unhealthy events for %d failed probes", n, f.callCount())
	}
}
