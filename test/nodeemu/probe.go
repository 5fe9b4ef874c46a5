package nodeemu

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/clock"
)

// Probes are run as the kubelet's prober runs them (pkg/kubelet/prober,
// worker.go and prober.go): one worker per container and probe kind, a
// probe every periodSeconds, none before initialDelaySeconds (counted in
// whole seconds since the container started), readiness and liveness only
// once the startup probe has succeeded, a result only after
// successThreshold or failureThreshold equal results in a row, a handler
// error thrown away (the result stays), an Unhealthy event for every
// failure. The container's Ready comes from the readiness result alone.

type probeKind int

const (
	readinessProbe probeKind = iota
	livenessProbe
	startupProbe
)

// String is the kubelet's name of the probe type, as events say it.
func (k probeKind) String() string {
	switch k {
	case readinessProbe:
		return "Readiness"
	case livenessProbe:
		return "Liveness"
	default:
		return "Startup"
	}
}

func (k probeKind) of(c *corev1.Container) *corev1.Probe {
	switch k {
	case readinessProbe:
		return c.ReadinessProbe
	case livenessProbe:
		return c.LivenessProbe
	default:
		return c.StartupProbe
	}
}

// initialValue is the result a kind has for a new container until its
// thresholds say otherwise: not ready, alive, not yet started.
func (k probeKind) initialValue() probeResult {
	switch k {
	case readinessProbe:
		return resultFailure
	case livenessProbe:
		return resultSuccess
	default:
		return resultUnknown
	}
}

type probeResult int

const (
	resultUnknown probeResult = iota
	resultSuccess
	resultFailure
)

func (r probeResult) String() string {
	switch r {
	case resultSuccess:
		return "success"
	case resultFailure:
		return "failure"
	default:
		return "unknown"
	}
}

// probeOutcome is what one run of a probe's handler found.
type probeOutcome struct {
	result  probeResult // resultSuccess or resultFailure
	warning bool        // success, with a warning (a redirect not followed)
	output  string      // the handler's output or the failure's reason
	// err means the handler could not run the probe: the kubelet throws
	// such a result away (it does not count towards a threshold).
	err error
}

// containerView is what a probe worker knows of its container: what the
// kubelet's status manager holds.
type containerView struct {
	id          string // empty until the container was created
	running     bool
	startedAt   time.Time
	started     bool // running, and its startup probe (if any) succeeded
	terminated  bool
	restartable bool // the pod's restart policy brings a terminated container back
}

// probeTarget is the container a worker probes and the kubelet around it.
type probeTarget interface {
	container() containerView
	runProbe(ctx context.Context, kind probeKind, spec *corev1.Probe) probeOutcome
	// setResult records a probe result of the container with this id; the
	// kubelet acts on it (readiness, a kill, started).
	setResult(kind probeKind, containerID string, r probeResult)
	event(eventType, reason, message string)
}

// maxProbeRetries is how often the kubelet retries a handler that errored
// before it gives up on this probe.
const maxProbeRetries = 3

type probeWorker struct {
	kind    probeKind
	spec    corev1.Probe
	clock   clock.WithTicker
	target  probeTarget
	trigger chan struct{}
	// waiting, if set, is called each time the worker waits for its next
	// period (tests synchronise on it).
	waiting func()

	containerID string
	lastResult  probeResult
	resultRun   int
	onHold      bool
}

func newProbeWorker(kind probeKind, spec *corev1.Probe, clk clock.WithTicker, target probeTarget) *probeWorker {
	return &probeWorker{kind: kind, spec: withProbeDefaults(spec), clock: clk, target: target, trigger: make(chan struct{}, 1)}
}

// withProbeDefaults applies the API server's defaults (the emulator may see
// objects that did not go through it, e.g. in tests).
func withProbeDefaults(p *corev1.Probe) corev1.Probe {
	out := *p
	if out.PeriodSeconds <= 0 {
		out.PeriodSeconds = 10
	}
	if out.TimeoutSeconds <= 0 {
		out.TimeoutSeconds = 1
	}
	if out.SuccessThreshold <= 0 {
		out.SuccessThreshold = 1
	}
	if out.FailureThreshold <= 0 {
		out.FailureThreshold = 3
	}
	return out
}

// triggerNow asks for a probe at once, as the kubelet does for a readiness
// probe that has not succeeded yet when it syncs the pod (after a
// container start, or once the container has started).
func (w *probeWorker) triggerNow() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// run probes until ctx ends or the container has terminated for good: at
// once, then every period from the worker's start (as a ticker: a probe that
// overran its period is followed by one at once), and at once when
// triggered, which starts a new period.
func (w *probeWorker) run(ctx context.Context) {
	period := time.Duration(w.spec.PeriodSeconds) * time.Second
	next := w.clock.Now()
	for w.doProbe(ctx) {
		now := w.clock.Now()
		next = next.Add(period)
		if !next.After(now) {
			for !next.After(now) {
				next = next.Add(period)
			}
			continue
		}
		timer := w.clock.NewTimer(next.Sub(now))
		if w.waiting != nil {
			w.waiting()
		}
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C():
		case <-w.trigger:
			timer.Stop()
			next = w.clock.Now()
		}
	}
}

// doProbe probes once, if the container is there to be probed, and records
// the result; it returns whether the worker should go on.
func (w *probeWorker) doProbe(ctx context.Context) bool {
	if ctx.Err() != nil {
		return false
	}
	c := w.target.container()
	if c.id == "" {
		return true // not created yet
	}
	if c.id != w.containerID {
		w.containerID = c.id
		w.target.setResult(w.kind, c.id, w.kind.initialValue())
		w.onHold = false // a new container: probe again
	}
	if w.onHold {
		return true
	}
	if !c.running {
		w.target.setResult(w.kind, c.id, resultFailure)
		return !c.terminated || c.restartable
	}
	if int32(w.clock.Since(c.startedAt).Seconds()) < w.spec.InitialDelaySeconds {
		return true
	}
	if c.started == (w.kind == startupProbe) {
		// The startup probe runs until the container has started; the
		// others from then on.
		return true
	}

	var out probeOutcome
	for range maxProbeRetries {
		out = w.target.runProbe(ctx, w.kind, &w.spec)
		if out.err == nil || ctx.Err() != nil {
			break
		}
	}
	if ctx.Err() != nil {
		return false
	}
	switch {
	case out.err != nil:
		w.target.event(corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe errored and resulted in unknown state: %v", w.kind, out.err))
		return true
	case out.result == resultFailure:
		w.target.event(corev1.EventTypeWarning, "Unhealthy", fmt.Sprintf("%s probe failed: %s", w.kind, out.output))
	case out.warning:
		w.target.event(corev1.EventTypeWarning, "ProbeWarning", fmt.Sprintf("%s probe warning: %s", w.kind, out.output))
	}

	if w.lastResult == out.result {
		w.resultRun++
	} else {
		w.lastResult, w.resultRun = out.result, 1
	}
	if (out.result == resultFailure && w.resultRun < int(w.spec.FailureThreshold)) ||
		(out.result == resultSuccess && w.resultRun < int(w.spec.SuccessThreshold)) {
		return true // below the threshold: the result stands
	}
	w.target.setResult(w.kind, c.id, out.result)
	if (w.kind == livenessProbe && out.result == resultFailure) || w.kind == startupProbe {
		// The container will be killed, or has started: nothing more to
		// probe until a new container.
		w.onHold = true
		w.resultRun = 0
	}
	return true
}
