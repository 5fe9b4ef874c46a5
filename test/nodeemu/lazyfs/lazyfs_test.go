package lazyfs

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// These tests mount real FUSE filesystems: they need root and /dev/fuse,
// and fail, naming what is missing, without them.

func TestMain(m *testing.M) {
	detachDeadMounts(os.TempDir())
	os.Exit(m.Run())
}

// detachDeadMounts detaches the lazy volumes below dir whose server is
// gone: those of a run of these tests that was killed (a timeout) before
// its cleanups. A live mount, another run's, answers and is left alone.
func detachDeadMounts(dir string) {
	points, _ := MountsBelow(dir)
	for _, p := range points {
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); errors.Is(err, syscall.ENOTCONN) {
			_ = unix.Unmount(p, unix.MNT_DETACH)
		}
	}
}

const mountedBlock = 64 << 10

// testVolume is a mounted lazy volume over files of random data.
type testVolume struct {
	dir  string
	mnt  string
	data map[string][]byte // by path in the volume
	vol  *Volume
}

func requireFUSE(t *testing.T) {
	t.Helper()
	if err := Available(); err != nil {
		t.Fatalf("%v\n(the lazy volume tests mount FUSE filesystems: run them as root on a machine with /dev/fuse)", err)
	}
}

// mountTestVolume restores files of the given sizes lazily and mounts them.
func mountTestVolume(t *testing.T, sizes map[string]int, opts Options, tune func(*hydrator)) *testVolume {
	t.Helper()
	requireFUSE(t)
	dir := t.TempDir()
	tv := &testVolume{dir: dir, mnt: filepath.Join(dir, "mnt"), data: map[string][]byte{}}
	var files []File
	paths := make([]string, 0, len(sizes))
	for p := range sizes {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for i, p := range paths {
		data := make([]byte, sizes[p])
		rng := rand.New(rand.NewPCG(uint64(i), 11))
		for j := range data {
			data[j] = byte(rng.UintN(255) + 1)
		}
		tv.data[p] = data
		source := filepath.Join(dir, "lower", p)
		upper := filepath.Join(dir, "upper", p)
		for _, f := range []string{source, upper} {
			if err := os.MkdirAll(filepath.Dir(f), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(source, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(upper, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(upper, int64(len(data))); err != nil {
			t.Fatal(err)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(upper, &st); err != nil {
			t.Fatal(err)
		}
		files = append(files, File{Ino: st.Ino, Path: p, Size: int64(len(data)), Source: source})
	}
	if err := os.Mkdir(tv.mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	vol, err := mount(tv.mnt, Backing{Upper: filepath.Join(dir, "upper"), Files: files}, opts, tune)
	if err != nil {
		t.Fatal(err)
	}
	tv.vol = vol
	t.Cleanup(func() {
		if err := vol.Unmount(); err != nil {
			t.Errorf("unmounting: %v", err)
		}
		if left, err := MountsBelow(dir); err != nil || len(left) > 0 {
			t.Errorf("mounts left below %s: %v %v", dir, left, err)
		}
	})
	return tv
}

func (tv *testVolume) path(p string) string { return filepath.Join(tv.mnt, p) }

// readDirect reads n bytes at off with O_DIRECT, so that the kernel asks
// the volume for exactly those bytes (no page cache, no read-ahead).
func (tv *testVolume) readDirect(t *testing.T, p string, off int64, n int) []byte {
	t.Helper()
	f, err := os.OpenFile(tv.path(p), os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := alignedBuffer(n)
	got, err := f.ReadAt(buf, off)
	if err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reading %d bytes of %s at %d: %v", n, p, off, err)
	}
	return buf[:got]
}

// alignedBuffer is n bytes at a page boundary, as O_DIRECT wants them.
func alignedBuffer(n int) []byte {
	const page = 4096
	b := make([]byte, n+page)
	skip := (page - int(uintptr(unsafe.Pointer(&b[0]))%page)) % page
	return b[skip : skip+n]
}

func TestMountedReadsFetchEachBlockOnce(t *testing.T) {
	const file = "pgdata/base/5/16384"
	size := 3*mountedBlock + mountedBlock/2
	tv := mountTestVolume(t, map[string]int{file: size}, Options{BlockSize: mountedBlock}, nil)
	data := tv.data[file]

	info, err := os.Stat(tv.path(file))
	if err != nil || info.Size() != int64(size) {
		t.Fatalf("the file shows %v (%v), want %d bytes before anything is fetched", info, err, size)
	}
	steps := []struct {
		name        string
		off         int64
		n           int
		wantFetched int64
	}{
		{"a page of block 1 fetches block 1", mountedBlock, 4096, mountedBlock},
		{"the same page again fetches nothing", mountedBlock, 4096, mountedBlock},
		{"pages of blocks 1 and 2 fetch block 2", 2*mountedBlock - 4096, 8192, 2 * mountedBlock},
		{"the last, short block", 3 * mountedBlock, mountedBlock, 2*mountedBlock + mountedBlock/2},
		{"past the end", int64(size) + mountedBlock, 4096, 2*mountedBlock + mountedBlock/2},
		{"everything fetches block 0", 0, 4 * mountedBlock, int64(size)},
	}
	var read int64
	for _, s := range steps {
		got := tv.readDirect(t, file, s.off, s.n)
		want := data[min(s.off, int64(size)):min(s.off+int64(s.n), int64(size))]
		if !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes that are not the file's data (want %d)", s.name, len(got), len(want))
		}
		read += int64(len(want))
		st := tv.vol.Stats()
		if st.FetchedBytes != s.wantFetched {
			t.Errorf("%s: fetched %d bytes, want %d", s.name, st.FetchedBytes, s.wantFetched)
		}
		if st.ReadBytes != read {
			t.Errorf("%s: the volume served %d bytes, want %d: every read must reach it", s.name, st.ReadBytes, read)
		}
	}
	// Read through the page cache, as a database reads, the file is
	// the file.
	got, err := os.ReadFile(tv.path(file))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("reading the whole file: %v; equal to its data: %v", err, bytes.Equal(got, data))
	}
	st := tv.vol.Stats()
	if len(st.Files) != 1 || st.Files[0].PendingBytes != 0 || st.Files[0].FetchedBytes != int64(size) || st.Files[0].Hydrated.Before(st.Mounted) {
		t.Errorf("file stats %+v, want all %d bytes fetched after the mount at %v", st.Files, size, st.Mounted)
	}
}

func TestMountedWritesHydrate(t *testing.T) {
	const file = "pgdata/base/5/16385"
	tv := mountTestVolume(t, map[string]int{file: 4 * mountedBlock}, Options{BlockSize: mountedBlock}, nil)
	want := append([]byte(nil), tv.data[file]...)
	f, err := os.OpenFile(tv.path(file), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	steps := []struct {
		name            string
		off             int64
		n               int
		wantFetched     int64
		wantOverwritten int64
	}{
		{"a page inside block 1 fetches it first", mountedBlock + 8192, 8192, mountedBlock, 0},
		{"block 2 written whole is not fetched", 2 * mountedBlock, mountedBlock, mountedBlock, mountedBlock},
		{"a page of the hydrated block 1 fetches nothing", mountedBlock, 8192, mountedBlock, mountedBlock},
		{"a page appended past the end fetches nothing", 4 * mountedBlock, 8192, mountedBlock, mountedBlock},
	}
	for i, s := range steps {
		data := bytes.Repeat([]byte{byte('a' + i)}, s.n)
		if _, err := f.WriteAt(data, s.off); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if end := s.off + int64(s.n); end > int64(len(want)) {
			want = append(want, make([]byte, end-int64(len(want)))...)
		}
		copy(want[s.off:], data)
		st := tv.vol.Stats()
		if st.FetchedBytes != s.wantFetched || st.OverwrittenBytes != s.wantOverwritten {
			t.Errorf("%s: fetched %d, overwritten %d; want %d and %d", s.name, st.FetchedBytes, st.OverwrittenBytes, s.wantFetched, s.wantOverwritten)
		}
	}
	got, err := os.ReadFile(tv.path(file))
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("the file after the writes: %v; as written over its data: %v", err, bytes.Equal(got, want))
	}
	if st := tv.vol.Stats(); st.PendingBytes != 0 || st.FetchedBytes != 3*mountedBlock {
		t.Errorf("after reading it all: fetched %d, pending %d; want blocks 0, 1 and 3 fetched, none pending", st.FetchedBytes, st.PendingBytes)
	}
}

func TestMountedTruncation(t *testing.T) {
	const byPath, byHandle = "by-path", "by-handle"
	tv := mountTestVolume(t, map[string]int{byPath: 3 * mountedBlock, byHandle: 3 * mountedBlock}, Options{BlockSize: mountedBlock}, nil)
	cut := int64(mountedBlock + 100)
	if err := os.Truncate(tv.path(byPath), cut); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(tv.path(byHandle), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(cut); err != nil {
		t.Fatal(err)
	}
	f.Close()
	st := tv.vol.Stats()
	if st.FetchedBytes != 2*mountedBlock || st.OverwrittenBytes != 2*mountedBlock {
		t.Errorf("fetched %d, overwritten %d: each cut must fetch the block it falls in and cut off the one after", st.FetchedBytes, st.OverwrittenBytes)
	}
	for _, p := range []string{byPath, byHandle} {
		if err := os.Truncate(tv.path(p), 3*mountedBlock); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(tv.path(p))
		want := append(append([]byte(nil), tv.data[p][:cut]...), make([]byte, 3*mountedBlock-cut)...)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s cut and extended: %v; its data up to the cut, then zeros: %v", p, err, bytes.Equal(got, want))
		}
	}
}

func TestMountedRenamesAndNewFiles(t *testing.T) {
	const old = "pg_wal/000000010000000000000001"
	tv := mountTestVolume(t, map[string]int{old: 2 * mountedBlock}, Options{BlockSize: mountedBlock}, nil)
	renamed := "pg_wal/000000010000000000000002"
	if err := os.Rename(tv.path(old), tv.path(renamed)); err != nil {
		t.Fatal(err)
	}
	if got := tv.readDirect(t, renamed, 0, 4096); !bytes.Equal(got, tv.data[old][:4096]) {
		t.Errorf("a renamed file does not read as its data")
	}
	if st := tv.vol.Stats(); st.FetchedBytes != mountedBlock || st.Files[0].Path != old {
		t.Errorf("fetched %d bytes of %+v: a renamed file keeps its lazy data, reported under its path at restore", st.FetchedBytes, st.Files)
	}
	fresh := []byte("written after the restore")
	if err := os.WriteFile(tv.path("pg_wal/new"), fresh, 0o600); err != nil {
		t.Fatal(err)
	}
	before := tv.vol.Stats()
	if got, err := os.ReadFile(tv.path("pg_wal/new")); err != nil || !bytes.Equal(got, fresh) {
		t.Errorf("a new file reads %q (%v), want %q", got, err, fresh)
	}
	if after := tv.vol.Stats(); after.FetchedBytes != before.FetchedBytes || after.ReadBytes != before.ReadBytes {
		t.Errorf("a new file has nothing to fetch: fetched %d → %d, read %d → %d", before.FetchedBytes, after.FetchedBytes, before.ReadBytes, after.ReadBytes)
	}
}

func TestThrottledFetchesAreCounted(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)}
	tv := mountTestVolume(t, map[string]int{"a": 2 * mountedBlock, "b": 2 * mountedBlock}, Options{BlockSize: mountedBlock, BytesPerSecond: mountedBlock}, func(h *hydrator) {
		h.now, h.sleep = clock.now, clock.sleep
	})
	for _, p := range []string{"a", "b"} {
		if _, err := os.ReadFile(tv.path(p)); err != nil {
			t.Fatal(err)
		}
	}
	// The clock stands still: four blocks at a block a second are due
	// one, two, three and four seconds from the first.
	clock.mu.Lock()
	defer clock.mu.Unlock()
	var longest int64
	for _, d := range clock.slept {
		longest = max(longest, int64(d.Seconds()))
	}
	if len(clock.slept) != 4 || longest != 4 {
		t.Errorf("waits %v, want four, the last 4s", clock.slept)
	}
}

func TestUnmountEndsAThrottledRead(t *testing.T) {
	clock := &fakeClock{t: time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC), inside: make(chan struct{})}
	tv := mountTestVolume(t, map[string]int{"slow": mountedBlock}, Options{BlockSize: mountedBlock, BytesPerSecond: 1}, func(h *hydrator) {
		h.now, h.sleep = clock.now, clock.sleep
	})
	f, err := os.Open(tv.path("slow"))
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		_, err := f.ReadAt(make([]byte, 4096), 0)
		f.Close()
		read <- err
	}()
	<-clock.inside // the read waits for its block
	if err := tv.vol.Unmount(); err != nil {
		t.Errorf("unmounting during a read: %v", err)
	}
	if err := <-read; err == nil {
		t.Errorf("the read went on after the unmount")
	}
	if left, err := MountsBelow(tv.dir); err != nil || len(left) > 0 {
		t.Errorf("mounts left: %v %v", left, err)
	}
	if st := tv.vol.Stats(); st.FetchedBytes != 0 || st.Unmounted.IsZero() {
		t.Errorf("stats %+v, want nothing fetched and the unmount recorded", st)
	}
}

func TestUnmountWithAFileOpen(t *testing.T) {
	tv := mountTestVolume(t, map[string]int{"open": mountedBlock}, Options{BlockSize: mountedBlock}, nil)
	f, err := os.Open(tv.path("open"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tv.vol.Unmount() }()
	// The mount is gone from the tree even while the file is open.
	waitUntil(t, func() bool { left, _ := MountsBelow(tv.dir); return len(left) == 0 })
	f.Close()
	if err := <-done; err != nil {
		t.Errorf("unmounting with a file open: %v", err)
	}
}

func TestUnmountBelowClearsAbandonedMounts(t *testing.T) {
	first := mountTestVolume(t, map[string]int{"x": 4096}, Options{}, nil)
	parent := filepath.Dir(first.dir)
	// A second mount inside the first's directory.
	inner := filepath.Join(first.dir, "inner")
	if err := os.Mkdir(inner, 0o755); err != nil {
		t.Fatal(err)
	}
	second, err := mount(inner, Backing{Upper: filepath.Join(first.dir, "upper")}, Options{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	points, err := MountsBelow(first.dir)
	if err != nil || len(points) != 2 || points[0] != inner || points[1] != first.mnt {
		t.Fatalf("mounts below %s: %v %v, want %s then %s (deepest first)", first.dir, points, err, inner, first.mnt)
	}
	if others, _ := MountsBelow(filepath.Join(parent, "elsewhere")); len(others) != 0 {
		t.Errorf("mounts below another directory: %v", others)
	}
	detached, err := UnmountBelow(first.dir)
	if err != nil || len(detached) != 2 {
		t.Fatalf("UnmountBelow: %v %v", detached, err)
	}
	if left, _ := MountsBelow(first.dir); len(left) != 0 {
		t.Errorf("mounts left: %v", left)
	}
	// The volumes' own unmount finds them gone and ends their servers.
	if err := second.Unmount(); err != nil {
		t.Errorf("unmounting a detached volume: %v", err)
	}
}

// waitUntil polls cond until it holds, for at most 10s.
func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for !cond() {
		if ctx.Err() != nil {
			t.Fatal("condition not met within 10s")
		}
		_ = sleepContext(ctx, 10*time.Millisecond)
	}
}
