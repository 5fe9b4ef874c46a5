package csistore

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// nobody owns the test data, as an unprivileged database user would; the
// tests run as root.
const nobody = 65534

func newStore(t testing.TB) *Store {
	t.Helper()
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// put writes a file owned by uid:gid with mode (chmod bits), creating
// missing directories.
func put(t testing.TB, path string, content []byte, mode fs.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, content, 0o600); err != nil {
		t.Fatal(err)
	}
	chownChmod(t, path, mode, uid, gid)
}

func putDir(t testing.TB, path string, mode fs.FileMode, uid, gid int) {
	t.Helper()
	if err := os.MkdirAll(path, 0o755); err != nil {
		t.Fatal(err)
	}
	chownChmod(t, path, mode, uid, gid)
}

func chownChmod(t testing.TB, path string, mode fs.FileMode, uid, gid int) {
	t.Helper()
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func putSymlink(t testing.TB, target, path string, uid, gid int) {
	t.Helper()
	if err := os.Symlink(target, path); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
}

func readString(t testing.TB, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// node is what a copy must keep of a directory entry.
type node struct {
	Kind     string // "file", "dir", "symlink" or "other"
	Content  string // a file's size and digest, a symlink's target
	Mode     fs.FileMode
	UID, GID uint32
	ModTime  int64 // nanoseconds; not kept for symlinks
}

// readTree describes every entry below root (root itself excluded).
func readTree(t testing.TB, root string) map[string]node {
	t.Helper()
	tree := map[string]node{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil || rel == "." {
			return err
		}
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st := info.Sys().(*syscall.Stat_t)
		n := node{Mode: chmodBits(info.Mode()), UID: st.Uid, GID: st.Gid, ModTime: info.ModTime().UnixNano()}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			n.Kind, n.ModTime = "symlink", 0
			if n.Content, err = os.Readlink(path); err != nil {
				return err
			}
		case info.IsDir():
			n.Kind = "dir"
		case info.Mode().IsRegular():
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			n.Kind, n.Content = "file", fmt.Sprintf("%d bytes, sha256 %x", len(data), sha256.Sum256(data))
		default:
			n.Kind = "other"
		}
		tree[rel] = n
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return tree
}

// compareTrees reports, one subtest per path, how got differs from want.
func compareTrees(t *testing.T, got, want map[string]node) {
	t.Helper()
	for path, w := range want {
		t.Run(path, func(t *testing.T) {
			g, ok := got[path]
			if !ok {
				t.Fatalf("missing")
			}
			if g != w {
				t.Errorf("got %+v, want %+v", g, w)
			}
		})
	}
	for path, g := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("unexpected %s: %+v", path, g)
		}
	}
}

// fillPostgresLike writes a small tree with the kinds of entries a
// PostgreSQL volume has, and some it does not, and returns its file bytes.
func fillPostgresLike(t testing.TB, vol string) {
	t.Helper()
	old := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	putDir(t, filepath.Join(vol, "pgdata"), 0o700, nobody, nobody)
	put(t, filepath.Join(vol, "pgdata", "PG_VERSION"), []byte("16\n"), 0o600, nobody, nobody)
	if err := os.Chtimes(filepath.Join(vol, "pgdata", "PG_VERSION"), old, old); err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(vol, "pgdata", "base", "1", "1259"), bytes.Repeat([]byte("heap page "), 30_000), 0o600, nobody, nobody)
	chownChmod(t, filepath.Join(vol, "pgdata", "base"), 0o700, nobody, nobody)
	chownChmod(t, filepath.Join(vol, "pgdata", "base", "1"), 0o700, nobody, nobody)
	put(t, filepath.Join(vol, "pgdata", "postmaster.opts"), []byte("postgres\n"), 0o644, 0, nobody)
	put(t, filepath.Join(vol, "pgdata", "empty-file"), nil, 0o600, nobody, nobody)
	putSymlink(t, "PG_VERSION", filepath.Join(vol, "pgdata", "link"), nobody, nobody)
	putSymlink(t, "/nonexistent/target", filepath.Join(vol, "dangling"), 0, 0)
	putDir(t, filepath.Join(vol, "shared"), fs.ModeSetgid|0o775, nobody, nobody)
	put(t, filepath.Join(vol, "shared", "tool"), []byte("#!/bin/sh\n"), fs.ModeSetuid|0o755, nobody, nobody)
	putDir(t, filepath.Join(vol, "tmp"), fs.ModeSticky|0o777, 0, 0)
	putDir(t, filepath.Join(vol, "readonly"), 0o555, nobody, nobody)
	if err := syscall.Mkfifo(filepath.Join(vol, "pgdata", "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
}

func TestCloneHasTheSnapshotTimeContent(t *testing.T) {
	s := newStore(t)
	vol, err := s.CreateVolume("pvc-1", nobody, nobody)
	if err != nil {
		t.Fatal(err)
	}
	fillPostgresLike(t, vol)

	var want map[string]node
	var froze, thawed int
	partialData := filepath.Join(s.root, snapshotsDir, "snap-1."+strconv.Itoa(os.Getpid())+partialSuffix, snapshotData)
	snap, err := s.CreateSnapshot(t.Context(), "snap-1", "pvc-1", func() (func(), error) {
		froze++
		// Written while frozen: in the snapshot.
		put(t, filepath.Join(vol, "pgdata", "written-while-frozen"), []byte("yes"), 0o600, nobody, nobody)
		want = readTree(t, vol)
		return func() {
			thawed++
			if got := readTree(t, partialData); len(got) != len(want)-1 { // without the FIFO
				t.Errorf("thawed with %d of %d entries copied", len(got), len(want)-1)
			}
			put(t, filepath.Join(vol, "pgdata", "written-after-thaw"), []byte("no"), 0o600, nobody, nobody)
		}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if froze != 1 || thawed != 1 {
		t.Errorf("freeze called %d times, thaw %d times; want once each", froze, thawed)
	}
	var size int64
	for _, n := range want {
		if n.Kind == "file" {
			var b int64
			fmt.Sscanf(n.Content, "%d", &b)
			size += b
		}
	}
	if snap.Handle != "snap-1" || snap.SourceVolumeID != "pvc-1" || snap.SizeBytes != size || time.Since(snap.CreationTime) > time.Minute {
		t.Errorf("snapshot = %+v, want handle snap-1, source pvc-1, %d bytes, created just now", snap, size)
	}
	delete(want, filepath.Join("pgdata", "fifo")) // FIFOs hold no data and are not copied

	// Changes after the snapshot must not reach the clone.
	put(t, filepath.Join(vol, "pgdata", "PG_VERSION"), []byte("17\n"), 0o600, nobody, nobody)
	chownChmod(t, filepath.Join(vol, "pgdata"), 0o750, 0, 0)
	if err := os.Remove(filepath.Join(vol, "pgdata", "base", "1", "1259")); err != nil {
		t.Fatal(err)
	}

	clone, err := s.CloneVolume(t.Context(), "pvc-2", "snap-1", nobody, nobody, 0)
	if err != nil {
		t.Fatal(err)
	}
	if clone != filepath.Join(s.root, volumesDir, "pvc-2") {
		t.Errorf("clone at %s", clone)
	}
	compareTrees(t, readTree(t, clone), want)
	info, err := os.Stat(clone)
	if err != nil {
		t.Fatal(err)
	}
	if st := info.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody || info.Mode().Perm() != 0o755 {
		t.Errorf("clone's top directory: %d:%d %v, want %d:%d 0755", st.Uid, st.Gid, info.Mode(), nobody, nobody)
	}

	ids, err := s.ListVolumes()
	if err != nil || strings.Join(ids, ",") != "pvc-1,pvc-2" {
		t.Errorf("ListVolumes = %v, %v", ids, err)
	}
	snaps, err := s.ListSnapshots()
	if err != nil || len(snaps) != 1 || snaps[0] != snap {
		t.Errorf("ListSnapshots = %+v, %v; want [%+v]", snaps, err, snap)
	}
	if got, ok, err := s.GetSnapshot("snap-1"); !ok || err != nil || got != snap {
		t.Errorf("GetSnapshot = %+v %v %v, want %+v", got, ok, err, snap)
	}
}

func TestSnapshotHandlesAreIndependent(t *testing.T) {
	s := newStore(t)
	vol, err := s.CreateVolume("pvc-1", nobody, nobody)
	if err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(vol, "v"), []byte("a"), 0o600, nobody, nobody)
	a, err := s.CreateSnapshot(t.Context(), "a", "pvc-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	put(t, filepath.Join(vol, "v"), []byte("b"), 0o600, nobody, nobody)
	b, err := s.CreateSnapshot(t.Context(), "b", "pvc-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if b.CreationTime.Before(a.CreationTime) {
		t.Errorf("b cut at %s before a at %s", b.CreationTime, a.CreationTime)
	}

	for _, tt := range []struct{ id, handle, want string }{
		{"from-a", "a", "a"},
		{"from-b", "b", "b"},
	} {
		t.Run(tt.id, func(t *testing.T) {
			path, err := s.CloneVolume(t.Context(), tt.id, tt.handle, nobody, nobody, 0)
			if err != nil {
				t.Fatal(err)
			}
			if got := readString(t, filepath.Join(path, "v")); got != tt.want {
				t.Errorf("clone of %s holds %q, want %q", tt.handle, got, tt.want)
			}
		})
	}

	if err := s.DeleteSnapshot("a"); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := s.GetSnapshot("a"); ok || err != nil {
		t.Errorf("deleted snapshot a: ok %v, %v", ok, err)
	}
	if entries, _ := os.ReadDir(filepath.Join(s.root, snapshotsDir)); len(entries) != 1 {
		t.Errorf("snapshots directory holds %d entries after deleting a, want only b", len(entries))
	}
	_, err = s.CloneVolume(t.Context(), "from-a-again", "a", nobody, nobody, 0)
	if !errors.Is(err, ErrSnapshotNotFound) || !strings.Contains(err.Error(), `snapshot a`) {
		t.Errorf("clone of a deleted snapshot: %v, want ErrSnapshotNotFound naming the handle", err)
	}
	if _, ok := s.VolumePath("from-a-again"); ok {
		t.Error("a failed clone left a volume")
	}
	path, err := s.CloneVolume(t.Context(), "from-b-again", "b", nobody, nobody, 0)
	if err != nil || readString(t, filepath.Join(path, "v")) != "b" {
		t.Errorf("deleting a broke b: %v", err)
	}
	if snaps, err := s.ListSnapshots(); err != nil || len(snaps) != 1 || snaps[0] != b {
		t.Errorf("ListSnapshots = %+v, %v; want [%+v]", snaps, err, b)
	}
}

func TestOperationsAreIdempotent(t *testing.T) {
	tests := []struct {
		name string
		run  func(t *testing.T, s *Store, vol string)
	}{
		{"CreateVolume returns the existing volume as it is", func(t *testing.T, s *Store, vol string) {
			path, err := s.CreateVolume("pvc-1", 0, 0)
			if err != nil || path != vol {
				t.Fatalf("CreateVolume again = %s, %v; want %s", path, err, vol)
			}
			if readString(t, filepath.Join(vol, "v")) != "1" {
				t.Error("CreateVolume again changed the content")
			}
			info, _ := os.Stat(vol)
			if st := info.Sys().(*syscall.Stat_t); st.Uid != nobody {
				t.Errorf("CreateVolume again changed the owner to %d", st.Uid)
			}
		}},
		{"CloneVolume returns the existing volume without copying", func(t *testing.T, s *Store, vol string) {
			first, err := s.CloneVolume(t.Context(), "pvc-2", "snap", nobody, nobody, 0)
			if err != nil {
				t.Fatal(err)
			}
			put(t, filepath.Join(first, "v"), []byte("written in the clone"), 0o600, nobody, nobody)
			if err := s.DeleteSnapshot("snap"); err != nil {
				t.Fatal(err)
			}
			again, err := s.CloneVolume(t.Context(), "pvc-2", "snap", nobody, nobody, 0)
			if err != nil || again != first {
				t.Fatalf("CloneVolume again = %s, %v; want %s", again, err, first)
			}
			if got := readString(t, filepath.Join(first, "v")); got != "written in the clone" {
				t.Errorf("CloneVolume again replaced the content with %q", got)
			}
		}},
		{"CreateSnapshot returns the existing snapshot unchanged", func(t *testing.T, s *Store, vol string) {
			first, _, _ := s.GetSnapshot("snap")
			put(t, filepath.Join(vol, "v"), []byte("2"), 0o600, nobody, nobody)
			froze := 0
			again, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", func() (func(), error) { froze++; return func() {}, nil })
			if err != nil || again != first {
				t.Errorf("CreateSnapshot again = %+v, %v; want %+v", again, err, first)
			}
			if froze != 0 {
				t.Errorf("CreateSnapshot of an existing handle froze the volume %d times", froze)
			}
			clone, err := s.CloneVolume(t.Context(), "pvc-2", "snap", nobody, nobody, 0)
			if err != nil || readString(t, filepath.Join(clone, "v")) != "1" {
				t.Errorf("the snapshot changed: %v", err)
			}
		}},
		{"DeleteVolume of a missing volume succeeds", func(t *testing.T, s *Store, vol string) {
			for range 2 {
				if err := s.DeleteVolume("pvc-1"); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.DeleteVolume("never-created"); err != nil {
				t.Fatal(err)
			}
			if _, ok := s.VolumePath("pvc-1"); ok {
				t.Error("the volume survived DeleteVolume")
			}
			if ids, err := s.ListVolumes(); err != nil || len(ids) != 0 {
				t.Errorf("ListVolumes = %v, %v", ids, err)
			}
		}},
		{"DeleteSnapshot of a missing snapshot succeeds", func(t *testing.T, s *Store, vol string) {
			for range 2 {
				if err := s.DeleteSnapshot("snap"); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.DeleteSnapshot("never-created"); err != nil {
				t.Fatal(err)
			}
			if snaps, err := s.ListSnapshots(); err != nil || len(snaps) != 0 {
				t.Errorf("ListSnapshots = %v, %v", snaps, err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			vol, err := s.CreateVolume("pvc-1", nobody, nobody)
			if err != nil {
				t.Fatal(err)
			}
			put(t, filepath.Join(vol, "v"), []byte("1"), 0o600, nobody, nobody)
			if _, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", nil); err != nil {
				t.Fatal(err)
			}
			tt.run(t, s, vol)
			assertNoPartials(t, s)
		})
	}
}

func assertNoPartials(t *testing.T, s *Store) {
	t.Helper()
	for _, d := range []string{volumesDir, snapshotsDir} {
		entries, err := os.ReadDir(filepath.Join(s.root, d))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), partialSuffix) {
				t.Errorf("left behind %s/%s", d, e.Name())
			}
		}
	}
}

func TestInvalidNamesAreRefused(t *testing.T) {
	s := newStore(t)
	if _, err := s.CreateVolume("pvc-1", nobody, nobody); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", nil); err != nil {
		t.Fatal(err)
	}
	names := []string{"", ".", "..", "a/b", "../escape", "/abs", `a\b`, "a..b", "x.partial", "x.123.partial", "nul\x00", strings.Repeat("a", maxNameLength+1)}
	ops := []struct {
		name string
		call func(name string) error
	}{
		{"CreateVolume", func(n string) error { _, err := s.CreateVolume(n, 0, 0); return err }},
		{"CloneVolume id", func(n string) error { _, err := s.CloneVolume(t.Context(), n, "snap", 0, 0, 0); return err }},
		{"CloneVolume handle", func(n string) error { _, err := s.CloneVolume(t.Context(), "pvc-2", n, 0, 0, 0); return err }},
		{"DeleteVolume", func(n string) error { return s.DeleteVolume(n) }},
		{"CreateSnapshot handle", func(n string) error { _, err := s.CreateSnapshot(t.Context(), n, "pvc-1", nil); return err }},
		{"CreateSnapshot volume", func(n string) error { _, err := s.CreateSnapshot(t.Context(), "snap-2", n, nil); return err }},
		{"GetSnapshot", func(n string) error { _, _, err := s.GetSnapshot(n); return err }},
		{"DeleteSnapshot", func(n string) error { return s.DeleteSnapshot(n) }},
	}
	for _, op := range ops {
		for _, name := range names {
			t.Run(fmt.Sprintf("%s(%.12q)", op.name, name), func(t *testing.T) {
				err := op.call(name)
				if !errors.Is(err, ErrInvalidName) || !strings.HasPrefix(err.Error(), "csistore: ") {
					t.Errorf("%s(%q) = %v, want ErrInvalidName", op.name, name, err)
				}
			})
		}
	}
	for _, name := range names {
		if _, ok := s.VolumePath(name); ok {
			t.Errorf("VolumePath(%q) found a volume", name)
		}
	}
	if _, err := os.Lstat(filepath.Join(filepath.Dir(s.root), "escape")); err == nil {
		t.Error("a name escaped the store")
	}
	if _, err := s.CreateVolume(strings.Repeat("a", maxNameLength), 0, 0); err != nil {
		t.Errorf("the longest valid name is refused: %v", err)
	}
	if _, ok := s.VolumePath("snap"); ok {
		t.Error("VolumePath found a snapshot")
	}
}

func TestFailedSnapshotsLeaveNothing(t *testing.T) {
	errFreeze := errors.New("cannot stop the database")
	canceled, cancel := context.WithCancel(t.Context())
	cancel()
	tests := []struct {
		name       string
		ctx        context.Context
		volume     string
		freezeErr  error
		want       error
		wantFrozen int
	}{
		{"unknown volume", t.Context(), "nope", nil, ErrVolumeNotFound, 0},
		{"freeze fails", t.Context(), "pvc-1", errFreeze, errFreeze, 1},
		{"context canceled", canceled, "pvc-1", nil, context.Canceled, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			vol, err := s.CreateVolume("pvc-1", nobody, nobody)
			if err != nil {
				t.Fatal(err)
			}
			put(t, filepath.Join(vol, "v"), []byte("1"), 0o600, nobody, nobody)
			froze := 0
			_, err = s.CreateSnapshot(tt.ctx, "snap", tt.volume, func() (func(), error) {
				froze++
				if tt.freezeErr != nil {
					return nil, tt.freezeErr
				}
				return func() {}, nil
			})
			if !errors.Is(err, tt.want) {
				t.Errorf("CreateSnapshot = %v, want %v", err, tt.want)
			}
			if froze != tt.wantFrozen {
				t.Errorf("froze %d times, want %d", froze, tt.wantFrozen)
			}
			if _, ok, err := s.GetSnapshot("snap"); ok || err != nil {
				t.Errorf("a failed CreateSnapshot left a snapshot (%v)", err)
			}
			if entries, _ := os.ReadDir(filepath.Join(s.root, snapshotsDir)); len(entries) != 0 {
				t.Errorf("snapshots directory holds %d entries", len(entries))
			}
		})
	}
}

func TestCanceledCloneLeavesNoVolume(t *testing.T) {
	tests := []struct {
		name string
		// cancelDuring cancels while the throttled copy waits, rather than
		// before the clone starts.
		cancelDuring bool
	}{
		{"canceled before the copy", false},
		{"canceled during the copy", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			vol, err := s.CreateVolume("pvc-1", nobody, nobody)
			if err != nil {
				t.Fatal(err)
			}
			put(t, filepath.Join(vol, "a", "big"), make([]byte, 1<<20), 0o600, nobody, nobody)
			put(t, filepath.Join(vol, "b", "big"), make([]byte, 1<<20), 0o600, nobody, nobody)
			if _, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", nil); err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			waits := 0
			s.sleep = func(ctx context.Context, d time.Duration) error {
				waits++
				cancel()
				return ctx.Err()
			}
			if !tt.cancelDuring {
				cancel()
			}
			_, err = s.CloneVolume(ctx, "pvc-2", "snap", nobody, nobody, 1<<20)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("canceled clone: %v, want context.Canceled", err)
			}
			if tt.cancelDuring != (waits == 1) {
				t.Errorf("the throttle waited %d times", waits)
			}
			if _, ok := s.VolumePath("pvc-2"); ok {
				t.Error("a canceled clone left a volume")
			}
			if ids, _ := s.ListVolumes(); len(ids) != 1 {
				t.Errorf("volumes = %v, want only pvc-1", ids)
			}
			assertNoPartials(t, s)
		})
	}
}

// TestConcurrentSnapshotsWithOneHandleCutOneCopy races CreateSnapshot
// calls with one handle, of one volume and of two.
func TestConcurrentSnapshotsWithOneHandleCutOneCopy(t *testing.T) {
	s := newStore(t)
	for _, id := range []string{"pvc-1", "pvc-2"} {
		vol, err := s.CreateVolume(id, nobody, nobody)
		if err != nil {
			t.Fatal(err)
		}
		put(t, filepath.Join(vol, "data"), bytes.Repeat([]byte("x"), 1<<20), 0o600, nobody, nobody)
	}
	var froze atomic.Int32
	freeze := func() (func(), error) { froze.Add(1); return func() {}, nil }

	const n = 8
	snaps := make([]Snapshot, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		volume := []string{"pvc-1", "pvc-2"}[i%2]
		wg.Go(func() { snaps[i], errs[i] = s.CreateSnapshot(t.Context(), "snap", volume, freeze) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil || snaps[i] != snaps[0] {
			t.Errorf("call %d: %+v, %v; want %+v", i, snaps[i], errs[i], snaps[0])
		}
	}
	if froze.Load() != 1 {
		t.Errorf("froze %d times, want once", froze.Load())
	}
	if snaps[0].SizeBytes != 1<<20 {
		t.Errorf("snapshot holds %d bytes, want %d", snaps[0].SizeBytes, 1<<20)
	}
	clone, err := s.CloneVolume(t.Context(), "clone", "snap", nobody, nobody, 0)
	if err != nil || readString(t, filepath.Join(clone, "data")) != strings.Repeat("x", 1<<20) {
		t.Errorf("clone of the concurrently cut snapshot: %v", err)
	}
	assertNoPartials(t, s)
	if len(s.locks) != 0 {
		t.Errorf("%d locks kept after all calls returned", len(s.locks))
	}
}

// TestClonesShareASnapshot checks that a slow clone does not hold up
// another clone from the same snapshot, while DeleteSnapshot waits for it.
func TestClonesShareASnapshot(t *testing.T) {
	s := newStore(t)
	vol, err := s.CreateVolume("pvc-1", nobody, nobody)
	if err != nil {
		t.Fatal(err)
	}
	// The slow clone waits inside file a; a DeleteSnapshot that did not
	// wait for it would remove b.
	put(t, filepath.Join(vol, "a"), []byte("shared"), 0o600, nobody, nobody)
	put(t, filepath.Join(vol, "b"), []byte("shared"), 0o600, nobody, nobody)
	if _, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", nil); err != nil {
		t.Fatal(err)
	}
	inside, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	s.sleep = func(ctx context.Context, d time.Duration) error {
		once.Do(func() { close(inside) })
		<-release
		return nil
	}
	slow := make(chan error, 1)
	go func() {
		_, err := s.CloneVolume(t.Context(), "slow", "snap", nobody, nobody, 1) // throttled: waits in s.sleep
		slow <- err
	}()
	<-inside

	fast := make(chan error, 1)
	go func() {
		_, err := s.CloneVolume(t.Context(), "fast", "snap", nobody, nobody, 0)
		fast <- err
	}()
	select {
	case err := <-fast:
		if err != nil {
			t.Errorf("fast clone: %v", err)
		}
	case <-time.After(30 * time.Second):
		close(release)
		t.Fatal("a clone waited for another clone from the same snapshot")
	}

	deleted := make(chan error, 1)
	go func() { deleted <- s.DeleteSnapshot("snap") }()
	time.Sleep(50 * time.Millisecond) // time for a DeleteSnapshot that did not wait to break the slow clone
	close(release)
	if err := <-slow; err != nil {
		t.Errorf("slow clone: %v", err)
	}
	if err := <-deleted; err != nil {
		t.Errorf("DeleteSnapshot: %v", err)
	}
	for _, id := range []string{"slow", "fast"} {
		path, ok := s.VolumePath(id)
		if !ok {
			t.Errorf("clone %s is missing", id)
			continue
		}
		if got := readTree(t, path); len(got) != 2 {
			t.Errorf("clone %s holds %v, want a and b", id, got)
		}
	}
	if _, ok, _ := s.GetSnapshot("snap"); ok {
		t.Error("the snapshot survived DeleteSnapshot")
	}
}

func TestOpenRemovesLeftoversOfGoneProcesses(t *testing.T) {
	root := t.TempDir()
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	const gonePID = 999_999_999 // above any pid_max
	self := strconv.Itoa(os.Getpid())
	tests := []struct {
		path string
		kept bool
	}{
		{"volumes/pvc-1", true},
		{"volumes/pvc-2.partial", false}, // no owner
		{fmt.Sprintf("volumes/pvc-3.%d.partial", gonePID), false},
		{"volumes/pvc-4." + self + ".partial", true}, // another Store of this process
		{"volumes/pvc-5.1.partial", true},            // pid 1 always runs
		{fmt.Sprintf("snapshots/snap-1.%d.partial", gonePID), false},
		{"snapshots/snap-2.partial", false},
	}
	for _, tt := range tests {
		put(t, filepath.Join(root, tt.path, "file"), []byte("x"), 0o600, nobody, nobody)
	}
	if _, err := Open(root); err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			_, err := os.Stat(filepath.Join(root, tt.path, "file"))
			if kept := err == nil; kept != tt.kept {
				t.Errorf("kept = %v, want %v", kept, tt.kept)
			}
		})
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
		{"negative rate is unthrottled", 1 << 30, -1, 0, 0},
		{"ahead of the rate waits", 2 << 20, 1 << 20, time.Second, time.Second},
		{"partly ahead waits the rest", 3 << 20, 2 << 20, time.Second, 500 * time.Millisecond},
		{"on schedule", 1 << 20, 1 << 20, time.Second, 0},
		{"behind schedule never waits", 1 << 20, 1 << 20, 3 * time.Second, 0},
		{"terabytes do not overflow", 1 << 40, 1 << 30, 0, 1024 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := throttleDelay(tt.copied, tt.rate, tt.elapsed); got != tt.want {
				t.Errorf("throttleDelay(%d, %d, %s) = %s, want %s", tt.copied, tt.rate, tt.elapsed, got, tt.want)
			}
		})
	}
}

func TestThrottleChunk(t *testing.T) {
	tests := []struct {
		rate int64
		want int
	}{
		{2 << 20, (2 << 20) / 10},
		{5, 1},
		{1 << 30, copyBufferSize},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(tt.rate, 10), func(t *testing.T) {
			if got := (&throttle{rate: tt.rate}).chunk(copyBufferSize); got != tt.want {
				t.Errorf("chunk = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestThrottledClonePacesTheCopy restores 4 MiB at 2 MiB/s on a fake clock:
// the restore takes 2 s of it, whatever share of that the copy itself
// takes, and waits at most a tenth of a second at a time.
func TestThrottledClonePacesTheCopy(t *testing.T) {
	const size, rate = 4 << 20, 2 << 20
	const want = 2 * time.Second
	tests := []struct {
		name string
		// perChunk is how far the fake clock moves while a chunk is
		// copied (the throttle reads the clock once per chunk).
		perChunk  time.Duration
		wantSleep func(slept time.Duration) bool
		wantTotal time.Duration
	}{
		{"instant copy sleeps the whole time", 0, func(d time.Duration) bool { return near(d, want) }, want},
		{"copy at half the rate sleeps the other half", 50 * time.Millisecond, func(d time.Duration) bool { return d > want/3 && d < want*2/3 }, want},
		{"copy slower than the rate never sleeps", 200 * time.Millisecond, func(d time.Duration) bool { return d == 0 }, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			vol, err := s.CreateVolume("pvc-1", nobody, nobody)
			if err != nil {
				t.Fatal(err)
			}
			put(t, filepath.Join(vol, "wal", "1"), make([]byte, size/2), 0o600, nobody, nobody)
			put(t, filepath.Join(vol, "wal", "2"), make([]byte, size/2), 0o600, nobody, nobody)
			if _, err := s.CreateSnapshot(t.Context(), "snap", "pvc-1", nil); err != nil {
				t.Fatal(err)
			}
			clock := time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)
			start := clock
			var slept, longest time.Duration
			s.now = func() time.Time { clock = clock.Add(tt.perChunk); return clock }
			s.sleep = func(ctx context.Context, d time.Duration) error {
				slept += d
				longest = max(longest, d)
				clock = clock.Add(d)
				return nil
			}
			if _, err := s.CloneVolume(t.Context(), "pvc-2", "snap", nobody, nobody, rate); err != nil {
				t.Fatal(err)
			}
			if !tt.wantSleep(slept) {
				t.Errorf("slept %s", slept)
			}
			if total := clock.Sub(start); tt.wantTotal > 0 && !near(total, tt.wantTotal) {
				t.Errorf("restore took %s of the fake clock, want %s ± 5%%", total, tt.wantTotal)
			}
			if longest > 105*time.Millisecond {
				t.Errorf("longest wait %s, want at most a tenth of a second", longest)
			}
		})
	}
}

// near reports whether got is within 5 % of want.
func near(got, want time.Duration) bool {
	return got >= want*95/100 && got <= want*105/100
}

// BenchmarkCloneVolume restores, unthrottled, a snapshot shaped like a
// small PostgreSQL data directory: one WAL segment and many 8 KiB files.
func BenchmarkCloneVolume(b *testing.B) {
	s := newStore(b)
	vol, err := s.CreateVolume("pvc-1", nobody, nobody)
	if err != nil {
		b.Fatal(err)
	}
	const segment, pages, page = 16 << 20, 512, 8 << 10
	put(b, filepath.Join(vol, "pgdata", "pg_wal", "000000010000000000000001"), make([]byte, segment), 0o600, nobody, nobody)
	for i := range pages {
		put(b, filepath.Join(vol, "pgdata", "base", "1", strconv.Itoa(16384+i)), bytes.Repeat([]byte{byte(i)}, page), 0o600, nobody, nobody)
	}
	if _, err := s.CreateSnapshot(b.Context(), "snap", "pvc-1", nil); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(segment + pages*page)
	for i := 0; b.Loop(); i++ {
		id := "clone-" + strconv.Itoa(i)
		if _, err := s.CloneVolume(b.Context(), id, "snap", nobody, nobody, 0); err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := s.DeleteVolume(id); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
}
