package restore

import (
	"errors"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

type snapshotBuilder struct{ s snapshotv1.VolumeSnapshot }

func newSnapshot(name string) *snapshotBuilder {
	return &snapshotBuilder{s: snapshotv1.VolumeSnapshot{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "prod"},
		Spec:       snapshotv1.VolumeSnapshotSpec{Source: snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To("data-orders-0")}},
	}}
}

func (b *snapshotBuilder) ReadyAt(t time.Time) *snapshotBuilder {
	b.s.Status = &snapshotv1.VolumeSnapshotStatus{
		ReadyToUse: ptr.To(true), CreationTime: &metav1.Time{Time: t}, BoundVolumeSnapshotContentName: ptr.To("content-" + b.s.Name),
	}
	return b
}
func (b *snapshotBuilder) NotReady() *snapshotBuilder {
	b.s.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false)}
	return b
}
func (b *snapshotBuilder) Failed(msg string) *snapshotBuilder {
	b.s.Status = &snapshotv1.VolumeSnapshotStatus{ReadyToUse: ptr.To(false), Error: &snapshotv1.VolumeSnapshotError{Message: ptr.To(msg)}}
	return b
}
func (b *snapshotBuilder) Of(claim string) *snapshotBuilder {
	b.s.Spec.Source.PersistentVolumeClaimName = ptr.To(claim)
	return b
}
func (b *snapshotBuilder) Labeled(k, v string) *snapshotBuilder {
	if b.s.Labels == nil {
		b.s.Labels = map[string]string{}
	}
	b.s.Labels[k] = v
	return b
}
func (b *snapshotBuilder) Deleting() *snapshotBuilder {
	b.s.DeletionTimestamp = &metav1.Time{Time: t0}
	return b
}
func (b *snapshotBuilder) Result() snapshotv1.VolumeSnapshot { return b.s }

func TestSelectSnapshot(t *testing.T) {
	nightly := labels.SelectorFromSet(labels.Set{"backup": "nightly"})
	tests := []struct {
		name     string
		given    []snapshotv1.VolumeSnapshot
		selector labels.Selector
		pinned   string
		want     string
		wantErr  error
	}{
		{
			name:  "newest ready wins",
			given: []snapshotv1.VolumeSnapshot{newSnapshot("old").ReadyAt(t0.Add(-48 * time.Hour)).Result(), newSnapshot("new").ReadyAt(t0).Result(), newSnapshot("mid").ReadyAt(t0.Add(-24 * time.Hour)).Result()},
			want:  "new",
		},
		{
			name:  "not ready, failed and deleting snapshots are skipped",
			given: []snapshotv1.VolumeSnapshot{newSnapshot("ok").ReadyAt(t0.Add(-time.Hour)).Result(), newSnapshot("cutting").NotReady().Result(), newSnapshot("broken").Failed("disk on fire").Result(), newSnapshot("going").ReadyAt(t0).Deleting().Result()},
			want:  "ok",
		},
		{
			name:  "snapshots of other claims are ignored",
			given: []snapshotv1.VolumeSnapshot{newSnapshot("other").ReadyAt(t0).Of("data-users-0").Result(), newSnapshot("mine").ReadyAt(t0.Add(-time.Hour)).Result()},
			want:  "mine",
		},
		{
			name:     "label selector filters",
			given:    []snapshotv1.VolumeSnapshot{newSnapshot("hourly").ReadyAt(t0).Labeled("backup", "hourly").Result(), newSnapshot("nightly").ReadyAt(t0.Add(-time.Hour)).Labeled("backup", "nightly").Result()},
			selector: nightly,
			want:     "nightly",
		},
		{
			name:   "pinned snapshot overrides newest",
			given:  []snapshotv1.VolumeSnapshot{newSnapshot("new").ReadyAt(t0).Result(), newSnapshot("old").ReadyAt(t0.Add(-time.Hour)).Result()},
			pinned: "old",
			want:   "old",
		},
		{
			name:    "none ready",
			given:   []snapshotv1.VolumeSnapshot{newSnapshot("cutting").NotReady().Result(), newSnapshot("broken").Failed("disk on fire").Result()},
			wantErr: ErrNoReadySnapshot,
		},
		{
			name:    "no snapshots at all",
			wantErr: ErrNoReadySnapshot,
		},
		{
			name:    "pinned but missing",
			given:   []snapshotv1.VolumeSnapshot{newSnapshot("new").ReadyAt(t0).Result()},
			pinned:  "gone",
			wantErr: ErrSnapshotNotFound,
		},
		{
			name:    "pinned but not ready",
			given:   []snapshotv1.VolumeSnapshot{newSnapshot("cutting").NotReady().Result()},
			pinned:  "cutting",
			wantErr: ErrNoReadySnapshot,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := SelectSnapshot(tt.given, "data-orders-0", tt.selector, tt.pinned)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("err = %v, want %v", err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Name != tt.want {
				t.Fatalf("SelectSnapshot = %v, %v; want %s", got, err, tt.want)
			}
		})
	}
}

func TestSelectSnapshotExplainsWhatItSkipped(t *testing.T) {
	_, err := SelectSnapshot([]snapshotv1.VolumeSnapshot{newSnapshot("broken").Failed("disk on fire").Result()}, "data-orders-0", nil, "")
	if err == nil || !contains(err.Error(), "broken (error: disk on fire)") {
		t.Errorf("error %v does not explain the skipped snapshot", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
