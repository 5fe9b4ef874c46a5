package restore

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	"k8s.io/apimachinery/pkg/labels"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
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

// SkippedNewer lists the snapshots of claim that selector matches, created
// after chosen, that are not ready or have failed: a snapshot schedule that
// has stopped producing usable snapshots. Snapshots being deleted are left
// out (somebody meant that). At most maxSkipped are listed, newest first.
func SkippedNewer(snaps []snapshotv1.VolumeSnapshot, claim string, selector labels.Selector, chosen *snapshotv1.VolumeSnapshot) []drillsv1.SkippedSnapshot {
	if selector == nil {
		selector = labels.Everything()
	}
	var newer []snapshotv1.VolumeSnapshot
	for _, s := range snaps {
		if s.Spec.Source.PersistentVolumeClaimName == nil || *s.Spec.Source.PersistentVolumeClaimName != claim ||
			!selector.Matches(labels.Set(s.Labels)) || s.DeletionTimestamp != nil || s.Name == chosen.Name ||
			!s.CreationTimestamp.After(chosen.CreationTimestamp.Time) {
			continue
		}
		newer = append(newer, s)
	}
	sort.SliceStable(newer, func(i, j int) bool { return newer[i].CreationTimestamp.After(newer[j].CreationTimestamp.Time) })
	var out []drillsv1.SkippedSnapshot
	for _, s := range newer {
		if len(out) == maxSkipped {
			break
		}
		switch {
		case s.Status != nil && s.Status.Error != nil && (s.Status.ReadyToUse == nil || !*s.Status.ReadyToUse):
			msg := ""
			if s.Status.Error.Message != nil {
				msg = *s.Status.Error.Message
			}
			out = append(out, drillsv1.SkippedSnapshot{Name: s.Name, Reason: drillsv1.SnapshotFailed, Message: msg})
		case notReady(s) != "":
			out = append(out, drillsv1.SkippedSnapshot{Name: s.Name, Reason: drillsv1.SnapshotNotReady, Message: notReady(s)})
		}
	}
	return out
}

// maxSkipped bounds the snapshots SkippedNewer lists.
const maxSkipped = 20

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
