package restore

import (
	"errors"
	"strings"
	"testing"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/drillerd/drillerd/internal/builder"
)

var t0 = time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)

// snapshot starts a VolumeSnapshot of the drilled claim, data-orders-0.
func snapshot(name string) *builder.SnapshotBuilder {
	return builder.ForSnapshot("prod", name).Of("data-orders-0")
}

// list is the snapshots as the API server lists them.
func list(snaps ...*snapshotv1.VolumeSnapshot) []snapshotv1.VolumeSnapshot {
	out := make([]snapshotv1.VolumeSnapshot, 0, len(snaps))
	for _, s := range snaps {
		out = append(out, *s)
	}
	return out
}

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
			given: list(snapshot("old").ReadyAt(t0.Add(-48*time.Hour)).Obj(), snapshot("new").ReadyAt(t0).Obj(), snapshot("mid").ReadyAt(t0.Add(-24*time.Hour)).Obj()),
			want:  "new",
		},
		{
			name:  "not ready, failed and deleting snapshots are skipped",
			given: list(snapshot("ok").ReadyAt(t0.Add(-time.Hour)).Obj(), snapshot("cutting").NotReady().Obj(), snapshot("broken").Failed("disk on fire").Obj(), snapshot("going").ReadyAt(t0).Deleting().Obj()),
			want:  "ok",
		},
		{
			name:  "snapshots of other claims are ignored",
			given: list(snapshot("other").ReadyAt(t0).Of("data-users-0").Obj(), snapshot("mine").ReadyAt(t0.Add(-time.Hour)).Obj()),
			want:  "mine",
		},
		{
			name:     "label selector filters",
			given:    list(snapshot("hourly").ReadyAt(t0).Labeled("backup", "hourly").Obj(), snapshot("nightly").ReadyAt(t0.Add(-time.Hour)).Labeled("backup", "nightly").Obj()),
			selector: nightly,
			want:     "nightly",
		},
		{
			name:   "pinned snapshot overrides newest",
			given:  list(snapshot("new").ReadyAt(t0).Obj(), snapshot("old").ReadyAt(t0.Add(-time.Hour)).Obj()),
			pinned: "old",
			want:   "old",
		},
		{
			name:    "none ready",
			given:   list(snapshot("cutting").NotReady().Obj(), snapshot("broken").Failed("disk on fire").Obj()),
			wantErr: ErrNoReadySnapshot,
		},
		{
			name:    "no snapshots at all",
			wantErr: ErrNoReadySnapshot,
		},
		{
			name:    "pinned but missing",
			given:   list(snapshot("new").ReadyAt(t0).Obj()),
			pinned:  "gone",
			wantErr: ErrSnapshotNotFound,
		},
		{
			name:    "pinned but not ready",
			given:   list(snapshot("cutting").NotReady().Obj()),
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
	_, err := SelectSnapshot(list(snapshot("broken").Failed("disk on fire").Obj()), "data-orders-0", nil, "")
	if err == nil || !strings.Contains(err.Error(), "broken (error: disk on fire)") {
		t.Errorf("error %v does not explain the skipped snapshot", err)
	}
}
