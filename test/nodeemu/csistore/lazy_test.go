package csistore

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// withoutData keeps what a lazy restore must copy of a tree: everything
// but the files' data, of which only the size is kept.
func withoutData(tree map[string]node) map[string]node {
	out := map[string]node{}
	for path, n := range tree {
		if n.Kind == "file" {
			n.Content, _, _ = strings.Cut(n.Content, ",")
		}
		out[path] = n
	}
	return out
}

func snapshotOfPostgresLikeVolume(t *testing.T, s *Store) string {
	t.Helper()
	vol, err := s.CreateVolume("pvc-1", nobody, nobody)
	if err != nil {
		t.Fatal(err)
	}
	fillPostgresLike(t, vol)
	if _, err := s.CreateSnapshot(t.Context(), "snap-1", "pvc-1", nil); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(s.root, snapshotsDir, "snap-1", snapshotData)
}

func TestLazyCloneCopiesNoData(t *testing.T) {
	s := newStore(t)
	data := snapshotOfPostgresLikeVolume(t, s)
	want := readTree(t, data)

	v, err := s.CloneVolumeLazy(t.Context(), "pvc-2", "snap-1", nobody, nobody)
	if err != nil {
		t.Fatal(err)
	}
	if v.MountPoint != filepath.Join(s.root, volumesDir, "pvc-2") || v.SnapshotHandle != "snap-1" {
		t.Errorf("lazy volume %+v", v)
	}
	if entries, err := os.ReadDir(v.MountPoint); err != nil || len(entries) != 0 {
		t.Errorf("the mount point holds %v (%v), want an empty directory", entries, err)
	}
	if path, ok := s.VolumePath("pvc-2"); !ok || path != v.MountPoint {
		t.Errorf("VolumePath = %s %v, want the mount point", path, ok)
	}

	// The upper tree is the snapshot's, entry for entry, without data.
	compareTrees(t, withoutData(readTree(t, v.Upper)), withoutData(want))
	info, err := os.Stat(v.Upper)
	if err != nil {
		t.Fatal(err)
	}
	if st := info.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody {
		t.Errorf("the volume's top directory is owned by %d:%d, want %d:%d", st.Uid, st.Gid, nobody, nobody)
	}

	// Every file with data is in the manifest; its upper file has no
	// block allocated, its source is the snapshot's own file.
	listed := map[string]LazyFile{}
	for _, f := range v.Files {
		listed[f.Path] = f
	}
	for path, n := range want {
		if n.Kind != "file" {
			continue
		}
		var size int64
		fmt.Sscanf(n.Content, "%d", &size)
		f, ok := listed[path]
		if size == 0 {
			if ok {
				t.Errorf("%s is empty: nothing to fetch, but listed", path)
			}
			continue
		}
		if !ok || f.Size != size {
			t.Errorf("%s (%d bytes): listed as %+v", path, size, f)
			continue
		}
		var st syscall.Stat_t
		if err := syscall.Stat(filepath.Join(v.Upper, path), &st); err != nil {
			t.Fatal(err)
		}
		if st.Ino != f.Ino || st.Size != size || st.Blocks != 0 {
			t.Errorf("%s in the upper tree: inode %d (listed %d), %d bytes, %d blocks allocated; want no data", path, st.Ino, f.Ino, st.Size, st.Blocks)
		}
		src, err := os.Stat(f.Source)
		if err != nil {
			t.Fatal(err)
		}
		orig, err := os.Stat(filepath.Join(data, path))
		if err != nil {
			t.Fatal(err)
		}
		if !os.SameFile(src, orig) {
			t.Errorf("the source of %s is not the snapshot's file", path)
		}
	}
	if len(listed) != 4 {
		t.Errorf("%d files listed, want the 4 with data: %+v", len(listed), v.Files)
	}

	// Again: the same volume.
	again, err := s.CloneVolumeLazy(t.Context(), "pvc-2", "snap-1", nobody, nobody)
	if err != nil || again.Upper != v.Upper || len(again.Files) != len(v.Files) {
		t.Errorf("a second restore: %+v %v, want the first", again, err)
	}
	if got, ok, err := s.LazyVolume("pvc-2"); err != nil || !ok || got.Upper != v.Upper {
		t.Errorf("LazyVolume = %+v %v %v", got, ok, err)
	}
	if _, ok, err := s.LazyVolume("pvc-1"); ok || err != nil {
		t.Errorf("a volume restored in full is not lazy: %v %v", ok, err)
	}

	// The data outlives the snapshot, as a cloud volume's does.
	heap := listed[filepath.Join("pgdata", "base", "1", "1259")]
	if err := s.DeleteSnapshot("snap-1"); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(heap.Source); err != nil || !bytes.Equal(got, bytes.Repeat([]byte("heap page "), 30_000)) {
		t.Errorf("after the snapshot was deleted the source of %s reads %d bytes (%v)", heap.Path, len(got), err)
	}

	if err := s.DeleteVolume("pvc-2"); err != nil {
		t.Fatal(err)
	}
	for _, gone := range []string{v.MountPoint, filepath.Join(s.root, lazyDir, "pvc-2")} {
		if _, err := os.Lstat(gone); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s is left after the volume was deleted (%v)", gone, err)
		}
	}
}

func TestLazyCloneRefusals(t *testing.T) {
	s := newStore(t)
	snapshotOfPostgresLikeVolume(t, s)
	if _, err := s.CloneVolume(t.Context(), "pvc-full", "snap-1", nobody, nobody, 0); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, id, handle string
		want             error
	}{
		{"unknown snapshot", "pvc-2", "snap-404", ErrSnapshotNotFound},
		{"a volume restored in full", "pvc-full", "snap-1", ErrNotLazy},
		{"invalid volume id", "../x", "snap-1", ErrInvalidName},
		{"invalid handle", "pvc-2", "a/b", ErrInvalidName},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := s.CloneVolumeLazy(t.Context(), tt.id, tt.handle, nobody, nobody); !errors.Is(err, tt.want) {
				t.Errorf("err = %v, want %v", err, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, lazyDir)); len(entries) != 0 {
		t.Errorf("refused restores left %v", entries)
	}
}

func TestDeleteVolumeRefusesAMountedVolume(t *testing.T) {
	s := newStore(t)
	snapshotOfPostgresLikeVolume(t, s)
	v, err := s.CloneVolumeLazy(t.Context(), "pvc-2", "snap-1", nobody, nobody)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", v.MountPoint, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mounting a tmpfs on the volume (the tests run as root): %v", err)
	}
	mounted := true
	t.Cleanup(func() {
		if mounted {
			_ = unix.Unmount(v.MountPoint, unix.MNT_DETACH)
		}
	})
	if err := s.DeleteVolume("pvc-2"); err == nil || !strings.Contains(err.Error(), "still mounted") {
		t.Fatalf("deleting a mounted volume: %v, want a refusal", err)
	}
	if _, ok, _ := s.LazyVolume("pvc-2"); !ok {
		t.Errorf("the refused delete removed the volume's backing")
	}
	if err := unix.Unmount(v.MountPoint, 0); err != nil {
		t.Fatal(err)
	}
	mounted = false
	if err := s.DeleteVolume("pvc-2"); err != nil {
		t.Errorf("deleting the unmounted volume: %v", err)
	}
}
