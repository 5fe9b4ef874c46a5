package metrics

import (
	"context"
	"sync"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/restore"
)

var (
	snapshotsSkipped = prometheus.NewDesc("drillerd_drill_snapshots_skipped_total",
		"Snapshots newer than the one a run restored that were passed over, by reason (NotReady, Failed), from status.skippedSnapshots.",
		[]string{"namespace", "drill", "reason"}, nil)
	newestSnapshotAge = prometheus.NewDesc("drillerd_drill_newest_snapshot_age_seconds",
		"Age of the newest ready VolumeSnapshot a run of the drill would restore now; absent when there is none. Read from the API server at most once per snapshotRefresh.",
		[]string{"namespace", "drill"}, nil)
)

// snapshotRefresh is how long the snapshots read for
// drillerd_drill_newest_snapshot_age_seconds are reused: scrapes do not
// each list every namespace's snapshots.
const snapshotRefresh = time.Minute

// snapshotCache holds the VolumeSnapshots of the drills' namespaces.
type snapshotCache struct {
	mu   sync.Mutex
	read time.Time
	byNS map[string][]snapshotv1.VolumeSnapshot
}

func collectSkipped(ch chan<- prometheus.Metric, d drillsv1.RestoreDrill) {
	for _, reason := range []string{drillsv1.SnapshotNotReady, drillsv1.SnapshotFailed} {
		ch <- prometheus.MustNewConstMetric(snapshotsSkipped, prometheus.CounterValue, float64(d.Status.SkippedSnapshots[reason]), d.Namespace, d.Name, reason)
	}
}

// collectSnapshotAges exports, for every drill, the age of the newest ready
// snapshot it would restore, so that a snapshot schedule that stopped is
// seen between drills.
func (c *Collector) collectSnapshotAges(ctx context.Context, ch chan<- prometheus.Metric, drills []drillsv1.RestoreDrill, now time.Time) {
	if c.Snapshots == nil {
		return
	}
	byNS := c.snapshots.get(ctx, c.Snapshots, drills, now)
	for _, d := range drills {
		snaps, ok := byNS[d.Namespace]
		if !ok {
			continue
		}
		selector := labels.Everything()
		if sel := d.Spec.Source.SnapshotSelector; sel != nil {
			s, err := metav1.LabelSelectorAsSelector(sel)
			if err != nil {
				continue
			}
			selector = s
		}
		newest, err := restore.SelectSnapshot(snaps, d.Spec.Source.PersistentVolumeClaimName, selector, "")
		if err != nil {
			continue
		}
		ch <- prometheus.MustNewConstMetric(newestSnapshotAge, prometheus.GaugeValue, now.Sub(restore.SnapshotTime(newest)).Seconds(), d.Namespace, d.Name)
	}
}

// get returns the snapshots of every namespace with a drill, read again
// when the last read is older than snapshotRefresh. A namespace that could
// not be read is missing.
func (s *snapshotCache) get(ctx context.Context, r client.Reader, drills []drillsv1.RestoreDrill, now time.Time) map[string][]snapshotv1.VolumeSnapshot {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.byNS != nil && now.Sub(s.read) < snapshotRefresh {
		return s.byNS
	}
	s.byNS, s.read = map[string][]snapshotv1.VolumeSnapshot{}, now
	for _, d := range drills {
		if _, done := s.byNS[d.Namespace]; done {
			continue
		}
		list := &snapshotv1.VolumeSnapshotList{}
		if err := r.List(ctx, list, client.InNamespace(d.Namespace)); err != nil {
			continue // no age for its drills: the metric is absent, not wrong
		}
		s.byNS[d.Namespace] = list.Items
	}
	return s.byNS
}
