package restore

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// Errors of snapshot selection.
var (
	ErrNoReadySnapshot  = errors.New("no ready snapshot")
	ErrSnapshotNotFound = errors.New("snapshot not found")
)

// SelectSnapshot returns the newest ready VolumeSnapshot of claim among
// snaps that selector matches, or the one named pinned. Snapshots that are
// not ready, failed, being deleted or not bound to a content are skipped.
func SelectSnapshot(snaps []snapshotv1.VolumeSnapshot, claim string, selector labels.Selector, pinned string) (*snapshotv1.VolumeSnapshot, error) {
	if selector == nil {
		selector = labels.Everything()
	}
	var ready []snapshotv1.VolumeSnapshot
	var skipped []string
	for _, s := range snaps {
		if s.Spec.Source.PersistentVolumeClaimName == nil || *s.Spec.Source.PersistentVolumeClaimName != claim {
			continue
		}
		if pinned != "" && s.Name != pinned {
			continue
		}
		if pinned == "" && !selector.Matches(labels.Set(s.Labels)) {
			continue
		}
		if why := notReady(s); why != "" {
			skipped = append(skipped, s.Name+" ("+why+")")
			continue
		}
		ready = append(ready, s)
	}
	if len(ready) == 0 {
		detail := ""
		if len(skipped) > 0 {
			detail = "; skipped: " + strings.Join(skipped, ", ")
		}
		if pinned != "" {
			if len(skipped) > 0 {
				return nil, fmt.Errorf("%w: snapshot %s of claim %s is not usable%s", ErrNoReadySnapshot, pinned, claim, detail)
			}
			return nil, fmt.Errorf("%w: no VolumeSnapshot %s of claim %s", ErrSnapshotNotFound, pinned, claim)
		}
		return nil, fmt.Errorf("%w of claim %s matches%s", ErrNoReadySnapshot, claim, detail)
	}
	sort.SliceStable(ready, func(i, j int) bool {
		ti, tj := SnapshotTime(&ready[i]), SnapshotTime(&ready[j])
		if !ti.Equal(tj) {
			return ti.After(tj)
		}
		return ready[i].Name > ready[j].Name
	})
	return &ready[0], nil
}

func notReady(s snapshotv1.VolumeSnapshot) string {
	switch {
	case s.DeletionTimestamp != nil:
		return "being deleted"
	case s.Status == nil:
		return "no status yet"
	case s.Status.Error != nil && s.Status.Error.Message != nil && (s.Status.ReadyToUse == nil || !*s.Status.ReadyToUse):
		return "error: " + *s.Status.Error.Message
	case s.Status.ReadyToUse == nil || !*s.Status.ReadyToUse:
		return "not ready"
	case s.Status.BoundVolumeSnapshotContentName == nil || *s.Status.BoundVolumeSnapshotContentName == "":
		return "not bound to a content"
	}
	return ""
}

// SnapshotTime is when a snapshot was cut: status.creationTime, else the
// object's creation.
func SnapshotTime(s *snapshotv1.VolumeSnapshot) time.Time {
	if s.Status != nil && s.Status.CreationTime != nil {
		return s.Status.CreationTime.Time
	}
	return s.CreationTimestamp.Time
}
