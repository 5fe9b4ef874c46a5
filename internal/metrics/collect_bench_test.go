package metrics

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clocktesting "k8s.io/utils/clock/testing"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/builder"
)

// cacheReader lists objects as controller-runtime's cache does: a deep
// copy of each, unless the caller asks for none (UnsafeDisableDeepCopy).
type cacheReader struct {
	drills []drillsv1.RestoreDrill
	runs   []drillsv1.DrillRun
}

func (r *cacheReader) Get(context.Context, client.ObjectKey, client.Object, ...client.GetOption) error {
	return fmt.Errorf("not in the benchmark")
}

func (r *cacheReader) List(_ context.Context, list client.ObjectList, opts ...client.ListOption) error {
	o := &client.ListOptions{}
	o.ApplyOptions(opts)
	shared := o.UnsafeDisableDeepCopy != nil && *o.UnsafeDisableDeepCopy
	switch l := list.(type) {
	case *drillsv1.RestoreDrillList:
		l.Items = copied(r.drills, shared)
	case *drillsv1.DrillRunList:
		l.Items = copied(r.runs, shared)
	}
	return nil // no sandbox objects: none are in flight
}

func copied[T any, P interface {
	*T
	DeepCopyInto(*T)
}](items []T, shared bool) []T {
	out := make([]T, len(items))
	if shared {
		copy(out, items)
		return out
	}
	for i := range items {
		P(&items[i]).DeepCopyInto(&out[i])
	}
	return out
}

// BenchmarkCollect is one scrape of /metrics with 1,000 drills and 10,000
// finished runs in the cluster.
func BenchmarkCollect(b *testing.B) {
	now := time.Date(2026, 11, 30, 3, 0, 0, 0, time.UTC)
	r := &cacheReader{}
	for i := range 1000 {
		done := metav1.NewTime(now.Add(-time.Duration(i) * time.Minute))
		var h drillsv1.PhaseHistogram
		for _, s := range []float64{0.3, 2, 20, 45} {
			h.Observe(s)
		}
		d := builder.ForDrill(fmt.Sprintf("ns-%02d", i%50), fmt.Sprintf("drill-%04d", i)).Schedule("0 3 * * *").
			Targets(15*time.Minute, 26*time.Hour).Status(func(s *drillsv1.RestoreDrillStatus) {
			s.RunCounts = map[drillsv1.RunResult]int64{drillsv1.ResultSucceeded: 9, drillsv1.ResultFailed: 1}
			s.LastSuccessTime = &done
			s.LastRun = &drillsv1.RunSummary{Name: "r", Result: drillsv1.ResultSucceeded, RTOSeconds: ptr.To(25.4), RPOSeconds: ptr.To(7200.0), CompletionTime: &done}
			s.PhaseDurations = map[drillsv1.Phase]drillsv1.PhaseHistogram{drillsv1.PhaseRestoringVolume: h, drillsv1.PhaseValidating: h}
		}).Obj()
		r.drills = append(r.drills, *d)
		for j := range 10 {
			start := now.Add(-time.Duration(j) * 24 * time.Hour)
			run := builder.ForRun(d.Namespace, fmt.Sprintf("%s-%d", d.Name, j)).Of(d.Name).In(drillsv1.PhaseDone).
				Result(drillsv1.ResultSucceeded).StartedAt(start).CompletedAt(start.Add(31*time.Second)).
				PhaseTiming(drillsv1.PhaseRestoringVolume, start, start.Add(20*time.Second)).
				PhaseTiming(drillsv1.PhaseValidating, start.Add(22*time.Second), start.Add(25*time.Second)).
				RTO(25.4, ptr.To(900.0), true).RPO(7200, ptr.To(93600.0), true, drillsv1.RPOBasisSnapshot).SandboxRemoved().Recorded().Obj()
			r.runs = append(r.runs, *run)
		}
	}
	c := NewCollector(r, clocktesting.NewFakePassiveClock(now), logr.Discard())
	b.ReportAllocs()
	for b.Loop() {
		ch := make(chan prometheus.Metric, 1024)
		done := make(chan int)
		go func() {
			n := 0
			for range ch {
				n++
			}
			done <- n
		}()
		c.Collect(ch)
		close(ch)
		if n := <-done; n < 10000 {
			b.Fatalf("%d metrics, want one set per drill", n)
		}
	}
}
