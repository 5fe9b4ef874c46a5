package csistore

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

const nobody = 65534

func writeFile(t *testing.T, path, content string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, nobody, nobody); err != nil {
		t.Fatal(err)
	}
}

func owner(t *testing.T, path string) (uint32, os.FileMode) {
	t.Helper()
	info, err := os.Lstat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Sys().(*syscall.Stat_t).Uid, info.Mode()
}

func TestSnapshotThenCloneKeepsTheSnapshotTimeContent(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	vol, err := s.CreateVolume("pvc-1", nobody, nobody)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(vol, "pgdata", "PG_VERSION"), "16\n", 0o600)
	if err := os.Chown(filepath.Join(vol, "pgdata"), nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("PG_VERSION", filepath.Join(vol, "pgdata", "link")); err != nil {
		t.Fatal(err)
	}

	froze, thawed := 0, 0
	snap, err := s.CreateSnapshot(t.Context(), "snap-1", "pvc-1", func() (func(), error) {
		froze++
		return func() { thawed++ }, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if froze != 1 || thawed != 1 {
		t.Errorf("freeze called %d times, thaw %d times; want once each", froze, thawed)
	}
	if snap.SourceVolumeID != "pvc-1" || snap.SizeBytes != 3 || snap.CreationTime.IsZero() {
		t.Errorf("snapshot = %+v", snap)
	}

	writeFile(t, filepath.Join(vol, "pgdata", "PG_VERSION"), "17\n", 0o600) // after the snapshot

	clone, err := s.CloneVolume(t.Context(), "pvc-2", "snap-1", nobody, nobody, 0)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(clone, "pgdata", "PG_VERSION"))
	if err != nil || string(data) != "16\n" {
		t.Errorf("clone has %q (%v), want the snapshot-time content", data, err)
	}
	if uid, mode := owner(t, filepath.Join(clone, "pgdata")); uid != nobody || mode.Perm() != 0o700 {
		t.Errorf("pgdata in the clone: uid %d mode %v, want nobody 0700", uid, mode)
	}
	if uid, mode := owner(t, filepath.Join(clone, "pgdata", "PG_VERSION")); uid != nobody || mode.Perm() != 0o600 {
		t.Errorf("PG_VERSION in the clone: uid %d mode %v, want nobody 0600", uid, mode)
	}
	if target, err := os.Readlink(filepath.Join(clone, "pgdata", "link")); err != nil || target != "PG_VERSION" {
		t.Errorf("symlink in the clone: %q %v", target, err)
	}

	again, err := s.CreateSnapshot(t.Context(), "snap-1", "pvc-1", nil)
	if err != nil || again != snap {
		t.Errorf("a second CreateSnapshot with the same handle = %+v %v, want the first unchanged", again, err)
	}
}

func TestDeletedSnapshotCannotBeRestored(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVolume("pvc-1", nobody, nobody); err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"a", "b"} {
		if _, err := s.CreateSnapshot(t.Context(), h, "pvc-1", nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteSnapshot("a"); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteSnapshot("a"); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
	if _, err := s.CloneVolume(t.Context(), "pvc-2", "a", nobody, nobody, 0); !errors.Is(err, ErrSnapshotNotFound) {
		t.Errorf("clone of a deleted snapshot: %v, want ErrSnapshotNotFound", err)
	}
	if _, ok, _ := s.GetSnapshot("b"); !ok {
		t.Error("deleting one snapshot removed another")
	}
	list, err := s.ListSnapshots()
	if err != nil || len(list) != 1 || list[0].Handle != "b" {
		t.Errorf("ListSnapshots = %+v, %v", list, err)
	}
}

func TestCanceledCloneLeavesNoVolume(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	vol, _ := s.CreateVolume("pvc-1", nobody, nobody)
	writeFile(t, filepath.Join(vol, "big"), string(make([]byte, 1<<20)), 0o600)
	if _, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if _, err := s.CloneVolume(ctx, "pvc-2", "snap", nobody, nobody, 0); !errors.Is(err, context.Canceled) {
		t.Errorf("canceled clone: %v", err)
	}
	if _, ok := s.VolumePath("pvc-2"); ok {
		t.Error("a canceled clone left a volume")
	}
	entries, _ := os.ReadDir(filepath.Join(s.root, "volumes"))
	if len(entries) != 1 {
		t.Errorf("volumes dir holds %d entries, want only pvc-1", len(entries))
	}
}

func TestInvalidNamesAreRefused(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"", ".", "..", "a/b", "../etc", "x.partial"} {
		if _, err := s.CreateVolume(name, 0, 0); err == nil {
			t.Errorf("CreateVolume(%q) succeeded", name)
		}
		if _, err := s.CreateSnapshot(t.Context(), name, "v", nil); err == nil {
			t.Errorf("CreateSnapshot(%q) succeeded", name)
		}
	}
}

func TestThrottleDelay(t *testing.T) {
	tests := []struct {
		name    string
		copied  int64
		rate    int64
		elapsed time.Duration
		want    time.Duration
	}{
		{"unthrottled", 1 << 30, 0, 0, 0},
		{"ahead of the rate waits", 2 << 20, 1 << 20, time.Second, time.Second},
		{"on schedule", 1 << 20, 1 << 20, time.Second, 0},
		{"behind schedule never waits", 1 << 20, 1 << 20, 3 * time.Second, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := throttleDelay(tt.copied, tt.rate, tt.elapsed); got != tt.want {
				t.Errorf("throttleDelay = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestThrottledCloneSleepsForTheWholeSize(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var slept time.Duration
	clock := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return clock }
	s.sleep = func(d time.Duration) { slept += d; clock = clock.Add(d) }
	vol, _ := s.CreateVolume("pvc-1", nobody, nobody)
	writeFile(t, filepath.Join(vol, "data"), string(make([]byte, 4<<20)), 0o600)
	if _, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CloneVolume(t.Context(), "pvc-2", "snap", nobody, nobody, 2<<20); err != nil {
		t.Fatal(err)
	}
	// 4 MiB at 2 MiB/s is 2 s of restore (the fake clock stands still while copying).
	if slept < 1900*time.Millisecond || slept > 2*time.Second {
		t.Errorf("throttled clone slept %s, want about 2s", slept)
	}
}

func BenchmarkCloneVolume(b *testing.B) {
	s, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	vol, _ := s.CreateVolume("pvc-1", 0, 0)
	for i := range 16 {
		if err := os.WriteFile(filepath.Join(vol, "seg"+string(rune('a'+i))), make([]byte, 1<<20), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := s.CreateSnapshot(b.Context(), "snap", "pvc-1", nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(16 << 20)
	for i := 0; b.Loop(); i++ {
		id := "clone-" + string(rune('a'+i%26)) + time.Now().Format("150405.000000000")
		if _, err := s.CloneVolume(b.Context(), id, "snap", 0, 0, 0); err != nil {
			b.Fatal(err)
		}
		_ = s.DeleteVolume(id)
	}
}
