package lazyfs

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

const testBlock = 4096

// fakeClock is a clock that stands still and a sleep that returns at once,
// recording how long each fetch would have waited.
type fakeClock struct {
	mu     sync.Mutex
	t      time.Time
	slept  []time.Duration
	inside chan struct{} // when set, sleep signals it and waits for ctx
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.slept = append(c.slept, d)
	inside := c.inside
	c.mu.Unlock()
	if inside != nil {
		inside <- struct{}{}
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

// lazyFile is one file restored lazily, outside any mount: source holds
// the data, upper starts as a sparse file of its size.
type lazyFile struct {
	data  []byte
	upper *os.File
	h     *hydrator
	state *fileState
	clock *fakeClock
}

func newLazyFile(t *testing.T, size int, rate int64) *lazyFile {
	t.Helper()
	dir := t.TempDir()
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(uint64(size), 7))
	for i := range data {
		data[i] = byte(rng.UintN(255) + 1) // never zero: a hole is told from data
	}
	source := filepath.Join(dir, "source")
	if err := os.WriteFile(source, data, 0o600); err != nil {
		t.Fatal(err)
	}
	upper, err := os.OpenFile(filepath.Join(dir, "upper"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { upper.Close() })
	if err := upper.Truncate(int64(size)); err != nil {
		t.Fatal(err)
	}
	clock := &fakeClock{t: time.Date(2026, 5, 1, 3, 0, 0, 0, time.UTC)}
	h := newHydrator([]File{{Ino: 42, Path: "pgdata/base/1/1259", Size: int64(size), Source: source}}, testBlock, rate)
	h.now, h.sleep = clock.now, clock.sleep
	return &lazyFile{data: data, upper: upper, h: h, state: h.lookup(42), clock: clock}
}

// contents is what the upper file holds.
func (l *lazyFile) contents(t *testing.T) []byte {
	t.Helper()
	info, err := l.upper.Stat()
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, info.Size())
	if _, err := l.upper.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

// hydratedBlocks lists the blocks whose bytes in the upper file are the
// source's.
func (l *lazyFile) hydratedBlocks(t *testing.T) []int64 {
	t.Helper()
	got := l.contents(t)
	var out []int64
	for b := int64(0); b*testBlock < int64(len(l.data)); b++ {
		start, end := b*testBlock, min((b+1)*testBlock, int64(len(l.data)))
		if end <= int64(len(got)) && bytes.Equal(got[start:end], l.data[start:end]) {
			out = append(out, b)
		}
	}
	return out
}

func (l *lazyFile) stats() Stats {
	s, _ := l.h.snapshot()
	return s
}

func TestReadsFetchPendingBlocksOnce(t *testing.T) {
	size := 3*testBlock + testBlock/2 // four blocks, the last one half
	steps := []struct {
		name        string
		off, n      int64
		wantFetched int64
		wantBlocks  []int64 // hydrated after the read
	}{
		{"a few bytes of block 1 fetch it whole", testBlock + 10, 100, testBlock, []int64{1}},
		{"the same bytes again fetch nothing", testBlock + 10, 100, testBlock, []int64{1}},
		{"a read across blocks 1 and 2 fetches only 2", 2*testBlock - 1, 2, 2 * testBlock, []int64{1, 2}},
		{"the short last block is fetched as long as it is", 3 * testBlock, testBlock, 2*testBlock + testBlock/2, []int64{1, 2, 3}},
		{"a read past the end fetches nothing", int64(size) + 1, testBlock, 2*testBlock + testBlock/2, []int64{1, 2, 3}},
		{"an empty read fetches nothing", 0, 0, 2*testBlock + testBlock/2, []int64{1, 2, 3}},
		{"a read of everything fetches only block 0", 0, int64(size) + testBlock, int64(size), []int64{0, 1, 2, 3}},
	}
	l := newLazyFile(t, size, 0)
	for _, step := range steps {
		if err := l.state.beforeRead(context.Background(), l.upper, step.off, step.n); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		s := l.stats()
		if s.FetchedBytes != step.wantFetched {
			t.Errorf("%s: fetched %d bytes, want %d", step.name, s.FetchedBytes, step.wantFetched)
		}
		if got := l.hydratedBlocks(t); !equalBlocks(got, step.wantBlocks) {
			t.Errorf("%s: the upper file holds the data of blocks %v, want %v", step.name, got, step.wantBlocks)
		}
		if s.LazyBytes != s.FetchedBytes+s.OverwrittenBytes+s.PendingBytes {
			t.Errorf("%s: lazy %d != fetched %d + overwritten %d + pending %d", step.name, s.LazyBytes, s.FetchedBytes, s.OverwrittenBytes, s.PendingBytes)
		}
	}
	s := l.stats()
	if s.FetchedBlocks != 4 || s.PendingBytes != 0 || s.Files[0].PendingBytes != 0 || s.Files[0].Hydrated.IsZero() {
		t.Errorf("after reading everything: %+v, want 4 blocks fetched, nothing pending, the file hydrated", s)
	}
}

func TestWritesHydrateTheBlocksTheyTouch(t *testing.T) {
	tests := []struct {
		name            string
		off             int64
		n               int
		wantFetched     int64
		wantOverwritten int64
	}{
		{"a write inside a block fetches it first", testBlock + 100, 200, testBlock, 0},
		{"a write of a whole block fetches nothing", testBlock, testBlock, 0, testBlock},
		{"a write covering block 1 and part of 2 fetches only 2", testBlock, testBlock + 10, testBlock, testBlock},
		{"a write from inside block 0 to inside block 2 fetches 0 and 2", 10, 2 * testBlock, 2 * testBlock, testBlock},
		{"a write over the short last block fetches nothing", 3 * testBlock, testBlock / 2, 0, testBlock / 2},
		{"a write extending the file past the end fetches nothing", 3 * testBlock, testBlock, 0, testBlock / 2},
		{"a write past the end fetches nothing", 5 * testBlock, 10, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLazyFile(t, 3*testBlock+testBlock/2, 0)
			data := bytes.Repeat([]byte{'w'}, tt.n)
			release, err := l.state.beforeWrite(context.Background(), l.upper, tt.off, int64(tt.n))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.upper.WriteAt(data, tt.off); err != nil {
				t.Fatal(err)
			}
			release(true)
			s := l.stats()
			if s.FetchedBytes != tt.wantFetched || s.OverwrittenBytes != tt.wantOverwritten {
				t.Errorf("fetched %d, overwritten %d; want %d and %d", s.FetchedBytes, s.OverwrittenBytes, tt.wantFetched, tt.wantOverwritten)
			}
			// What the file holds where it is hydrated is the file's
			// data with the write over it; a later read of the written
			// blocks fetches nothing more.
			want := append([]byte(nil), l.data...)
			if end := tt.off + int64(tt.n); end > int64(len(want)) {
				want = append(want, make([]byte, end-int64(len(want)))...)
			}
			copy(want[tt.off:], data)
			if err := l.state.beforeRead(context.Background(), l.upper, tt.off, int64(tt.n)); err != nil {
				t.Fatal(err)
			}
			if s2 := l.stats(); s2.FetchedBytes != tt.wantFetched {
				t.Errorf("reading the written bytes back fetched %d more", s2.FetchedBytes-tt.wantFetched)
			}
			got := l.contents(t)
			first, end := l.state.blockRange(tt.off, int64(tt.n))
			for b := first; b < end; b++ {
				start, stop := b*testBlock, min((b+1)*testBlock, int64(len(got)))
				if !bytes.Equal(got[start:stop], want[start:stop]) {
					t.Errorf("block %d holds %q..., want %q...", b, got[start:start+16], want[start:start+16])
				}
			}
		})
	}
}

func TestFailedWriteLeavesClaimedBlocksPending(t *testing.T) {
	l := newLazyFile(t, 2*testBlock, 0)
	release, err := l.state.beforeWrite(context.Background(), l.upper, 0, testBlock)
	if err != nil {
		t.Fatal(err)
	}
	release(false)
	if err := l.state.beforeRead(context.Background(), l.upper, 0, 1); err != nil {
		t.Fatal(err)
	}
	if s := l.stats(); s.FetchedBytes != testBlock || s.OverwrittenBytes != 0 {
		t.Errorf("fetched %d, overwritten %d: a block whose write failed must still be fetched", s.FetchedBytes, s.OverwrittenBytes)
	}
}

func TestTruncationHydratesWhatItCutsOff(t *testing.T) {
	tests := []struct {
		name            string
		size            int64
		wantFetched     int64
		wantOverwritten int64
		// wantFetchedAll is fetched once everything was read after the
		// file was extended again: the blocks left below the cut.
		wantFetchedAll int64
	}{
		{"inside block 1: block 1 is fetched, 2 and 3 are cut off", testBlock + 100, testBlock, testBlock + testBlock/2, 2 * testBlock},
		{"at the start of block 2: nothing is fetched", 2 * testBlock, 0, testBlock + testBlock/2, 2 * testBlock},
		{"to zero: everything is cut off", 0, 0, 3*testBlock + testBlock/2, 0},
		{"past the end: nothing changes", 10 * testBlock, 0, 0, 3*testBlock + testBlock/2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := newLazyFile(t, 3*testBlock+testBlock/2, 0)
			release, err := l.state.beforeTruncate(context.Background(), l.upper, tt.size)
			if err != nil {
				t.Fatal(err)
			}
			if err := l.upper.Truncate(tt.size); err != nil {
				t.Fatal(err)
			}
			release(true)
			s := l.stats()
			if s.FetchedBytes != tt.wantFetched || s.OverwrittenBytes != tt.wantOverwritten {
				t.Errorf("fetched %d, overwritten %d; want %d and %d", s.FetchedBytes, s.OverwrittenBytes, tt.wantFetched, tt.wantOverwritten)
			}
			// Extended again, the file holds its data up to the cut
			// and zeros after it; reading it all fetches only what was
			// left below the cut.
			if err := l.upper.Truncate(4 * testBlock); err != nil {
				t.Fatal(err)
			}
			if err := l.state.beforeRead(context.Background(), l.upper, 0, 4*testBlock); err != nil {
				t.Fatal(err)
			}
			got := l.contents(t)
			cut := min(tt.size, int64(len(l.data)))
			if !bytes.Equal(got[:cut], l.data[:cut]) || !bytes.Equal(got[cut:], make([]byte, len(got)-int(cut))) {
				t.Errorf("after cutting at %d and extending, the file is not its data then zeros", tt.size)
			}
			s = l.stats()
			if s.FetchedBytes != tt.wantFetchedAll || s.PendingBytes != 0 || s.LazyBytes != s.FetchedBytes+s.OverwrittenBytes {
				t.Errorf("after reading everything: fetched %d (want %d), overwritten %d, pending %d of %d", s.FetchedBytes, tt.wantFetchedAll, s.OverwrittenBytes, s.PendingBytes, s.LazyBytes)
			}
		})
	}
}

func TestBlockRange(t *testing.T) {
	tests := []struct {
		name      string
		size      int64
		off, n    int64
		wantFirst int64
		wantEnd   int64
	}{
		{"first byte", 10 * testBlock, 0, 1, 0, 1},
		{"last byte of block 0", 10 * testBlock, testBlock - 1, 1, 0, 1},
		{"first byte of block 1", 10 * testBlock, testBlock, 1, 1, 2},
		{"across a boundary", 10 * testBlock, testBlock - 1, 2, 0, 2},
		{"whole file", 10 * testBlock, 0, 10 * testBlock, 0, 10},
		{"past the end is cut at the end", 10 * testBlock, 9 * testBlock, 5 * testBlock, 9, 10},
		{"starting at the end", 10 * testBlock, 10 * testBlock, 1, 0, 0},
		{"empty", 10 * testBlock, 5, 0, 0, 0},
		{"negative offset", 10 * testBlock, -1, 5, 0, 0},
		{"short last block", testBlock + 1, testBlock, 100, 1, 2},
		{"file smaller than a block", 100, 0, testBlock, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHydrator([]File{{Ino: 1, Size: tt.size, Source: "unused"}}, testBlock, 0)
			first, end := h.lookup(1).blockRange(tt.off, tt.n)
			if first != tt.wantFirst || end != tt.wantEnd {
				t.Errorf("blockRange(%d, %d) of %d bytes = [%d, %d), want [%d, %d)", tt.off, tt.n, tt.size, first, end, tt.wantFirst, tt.wantEnd)
			}
		})
	}
}

func TestBitmapBounds(t *testing.T) {
	for _, blocks := range []int64{1, 63, 64, 65, 128, 200} {
		b := newBitmap(blocks)
		if len(b) != int((blocks+63)/64) {
			t.Errorf("%d blocks: %d words", blocks, len(b))
		}
		for i := int64(0); i < blocks; i++ {
			if !b.has(i) {
				t.Errorf("%d blocks: block %d is not pending at the start", blocks, i)
			}
		}
		// No bit beyond the last block is set: a full count of set
		// bits is the block count.
		var set int64
		for _, w := range b {
			for ; w != 0; w &= w - 1 {
				set++
			}
		}
		if set != blocks {
			t.Errorf("%d blocks: %d bits set", blocks, set)
		}
		b.clear(blocks - 1)
		if b.has(blocks-1) || (blocks > 1 && !b.has(blocks-2)) {
			t.Errorf("%d blocks: clearing the last block cleared the wrong bit", blocks)
		}
	}
}

func TestEmptyFilesAreNotLazy(t *testing.T) {
	h := newHydrator([]File{{Ino: 1, Path: "empty", Size: 0, Source: "x"}, {Ino: 2, Path: "data", Size: 10, Source: "y"}}, testBlock, 0)
	if h.lookup(1) != nil || h.lookup(2) == nil {
		t.Errorf("an empty file must have nothing to fetch, a file with data must")
	}
	if s, _ := h.snapshot(); s.LazyBytes != 10 || len(s.Files) != 1 {
		t.Errorf("stats %+v, want 10 lazy bytes in one file", s)
	}
}

func TestAReusedInodeIsANewFile(t *testing.T) {
	l := newLazyFile(t, 2*testBlock, 0)
	l.h.created(42)
	if l.h.lookup(42) != nil {
		t.Fatal("a file created with the inode of a removed lazy file must hold only what is written to it")
	}
	if s := l.stats(); len(s.Files) != 1 || s.Files[0].Path != "pgdata/base/1/1259" {
		t.Errorf("the removed file must still be reported: %+v", s.Files)
	}
}

func TestFetchesArePacedForTheWholeVolume(t *testing.T) {
	const rate = 4 * testBlock // four blocks a second
	l := newLazyFile(t, 8*testBlock, rate)
	// The clock stands still: each fetch waits for the ones reserved
	// before it.
	for b := int64(0); b < 8; b++ {
		if err := l.state.beforeRead(context.Background(), l.upper, b*testBlock, 1); err != nil {
			t.Fatal(err)
		}
	}
	want := []time.Duration{250 * time.Millisecond, 500 * time.Millisecond, 750 * time.Millisecond, time.Second,
		1250 * time.Millisecond, 1500 * time.Millisecond, 1750 * time.Millisecond, 2 * time.Second}
	if !equalDurations(l.clock.slept, want) {
		t.Errorf("waits %v, want %v", l.clock.slept, want)
	}
}

func TestPacerSavesNoIdleTime(t *testing.T) {
	p := pacer{rate: 1000}
	t0 := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	steps := []struct {
		at   time.Duration
		n    int64
		want time.Duration
	}{
		{0, 1000, time.Second},
		{0, 500, 1500 * time.Millisecond},     // queued behind the first
		{10 * time.Second, 1000, time.Second}, // idle since: no credit
		{10*time.Second + 500*time.Millisecond, 1000, 1500 * time.Millisecond},
	}
	for i, s := range steps {
		if got := p.reserve(t0.Add(s.at), s.n); got != s.want {
			t.Errorf("step %d: wait %v, want %v", i, got, s.want)
		}
	}
	if got := (&pacer{}).reserve(t0, 1<<40); got != 0 {
		t.Errorf("no rate: wait %v, want none", got)
	}
}

func TestConcurrentReadersOfABlockFetchItOnce(t *testing.T) {
	l := newLazyFile(t, 2*testBlock, testBlock)
	l.clock.inside = make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	first := make(chan error, 1)
	go func() { first <- l.state.beforeRead(ctx, l.upper, 0, 1) }()
	<-l.clock.inside // the first reader is fetching block 0
	second := make(chan error, 1)
	go func() { second <- l.state.beforeRead(context.Background(), l.upper, 100, 1) }()
	l.clock.mu.Lock()
	l.clock.inside = nil
	l.clock.mu.Unlock()
	cancel() // the first reader's request is interrupted
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted fetch: %v, want context.Canceled", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the second reader: %v", err)
	}
	if s := l.stats(); s.FetchedBlocks != 1 || s.FetchedBytes != testBlock {
		t.Errorf("%d blocks fetched (%d bytes), want block 0 once: by the second reader, after the first gave up", s.FetchedBlocks, s.FetchedBytes)
	}
}

func TestUnmountEndsWaitingFetches(t *testing.T) {
	l := newLazyFile(t, 2*testBlock, 1)
	l.clock.inside = make(chan struct{})
	done := make(chan error, 1)
	go func() { done <- l.state.beforeRead(context.Background(), l.upper, 0, 1) }()
	<-l.clock.inside
	l.h.close()
	if err := <-done; !errors.Is(err, errUnmounted) {
		t.Fatalf("fetch during unmount: %v, want errUnmounted", err)
	}
	if s := l.stats(); s.FetchedBytes != 0 || s.PendingBytes != 2*testBlock {
		t.Errorf("stats %+v: an aborted fetch hydrates nothing", s)
	}
	if err := l.state.beforeRead(context.Background(), l.upper, testBlock, 1); !errors.Is(err, errUnmounted) {
		t.Errorf("fetch after unmount: %v, want errUnmounted", err)
	}
}

func equalBlocks(a, b []int64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func equalDurations(a, b []time.Duration) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
