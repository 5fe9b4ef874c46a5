package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"time"
)

// errUnmounted ends the fetches of a volume being unmounted.
var errUnmounted = errors.New("lazyfs: the volume is being unmounted")

// bitmap has one bit per block; a set bit is a pending block.
type bitmap []uint64

func newBitmap(blocks int64) bitmap {
	b := make(bitmap, (blocks+63)/64)
	for i := range b {
		b[i] = ^uint64(0)
	}
	if r := blocks % 64; r != 0 {
		b[len(b)-1] = 1<<r - 1
	}
	return b
}

func (b bitmap) has(i int64) bool { return b[i/64]&(1<<(i%64)) != 0 }
func (b bitmap) clear(i int64)    { b[i/64] &^= 1 << (i % 64) }

// pacer spaces fetches to rate bytes per second over the whole volume: each
// fetch reserves its bytes' share of time after those reserved before it,
// and waits until then. Idle time is not saved up for later.
type pacer struct {
	rate int64 // <= 0: no limit

	mu   sync.Mutex
	next time.Time // when the bytes reserved so far are due
}

// reserve returns how long a fetch of n bytes starting at now must wait.
func (p *pacer) reserve(now time.Time, n int64) time.Duration {
	if p.rate <= 0 {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.next.Before(now) {
		p.next = now
	}
	p.next = p.next.Add(time.Duration(float64(n) / float64(p.rate) * float64(time.Second)))
	return p.next.Sub(now)
}

// hydrator keeps the hydration state of one volume: which blocks of which
// files are still only in the snapshot, the pace of fetching them, and the
// counts the volume reports.
type hydrator struct {
	blockSize int64
	pace      pacer
	// now and sleep are the clock; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
	// done ends every wait for a fetch when the volume is unmounted.
	done    context.Context
	unmount context.CancelFunc
	buffers sync.Pool

	mu        sync.Mutex
	byInode   map[uint64]*fileState // files still restored lazily, by their inode in the upper tree
	files     []*fileState          // every file restored lazily, in the order given
	stats     Stats                 // the volume's counters (Files left empty)
	changes   uint64                // counts changes of stats
	mounted   time.Time
	unmounted time.Time
}

func newHydrator(files []File, blockSize, bytesPerSecond int64) *hydrator {
	h := &hydrator{
		blockSize: blockSize,
		pace:      pacer{rate: bytesPerSecond},
		now:       time.Now,
		sleep:     sleepContext,
		byInode:   map[uint64]*fileState{},
	}
	h.done, h.unmount = context.WithCancel(context.Background())
	h.buffers.New = func() any { b := make([]byte, blockSize); return &b }
	h.stats.BlockSize, h.stats.BytesPerSecond = blockSize, bytesPerSecond
	for _, f := range files {
		if f.Size <= 0 {
			continue // nothing to fetch
		}
		blocks := (f.Size + blockSize - 1) / blockSize
		st := &fileState{h: h, path: f.Path, size: f.Size, source: f.Source, blocks: blocks,
			pending: newBitmap(blocks), npending: blocks, pendingBytes: f.Size, busy: map[int64]chan struct{}{}}
		h.byInode[f.Ino] = st
		h.files = append(h.files, st)
		h.stats.LazyBytes += f.Size
		h.stats.PendingBytes += f.Size
	}
	return h
}

// lookup returns the state of the file with inode ino of the upper tree, or
// nil for a file that was not restored lazily.
func (h *hydrator) lookup(ino uint64) *fileState {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.byInode[ino]
}

// created tells the hydrator that a new file, directory, node or symbolic
// link got inode ino: a file restored lazily that had it is gone for good
// (its inode was freed and reused), and the new one holds only what is
// written to it.
func (h *hydrator) created(ino uint64) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.byInode, ino)
}

// close ends every fetch waiting for its turn, and those to come.
func (h *hydrator) close() { h.unmount() }

// wait sleeps d, or until ctx ends or the volume is unmounted.
func (h *hydrator) wait(ctx context.Context, d time.Duration) error {
	if h.done.Err() != nil {
		return errUnmounted
	}
	if d <= 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(h.done, cancel)
	defer stop()
	err := h.sleep(ctx, d)
	if h.done.Err() != nil {
		return errUnmounted
	}
	return err
}

// counted adds to the volume's counters under its lock.
func (h *hydrator) counted(update func(s *Stats)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	update(&h.stats)
	h.changes++
}

// snapshot returns the volume's counters with every file's, and the count
// of changes so far.
func (h *hydrator) snapshot() (Stats, uint64) {
	h.mu.Lock()
	s := h.stats
	changes := h.changes
	s.Mounted, s.Unmounted = h.mounted, h.unmounted
	files := h.files
	h.mu.Unlock()
	s.Files = make([]FileStats, 0, len(files))
	for _, f := range files {
		s.Files = append(s.Files, f.stats())
	}
	sort.Slice(s.Files, func(i, j int) bool { return s.Files[i].Path < s.Files[j].Path })
	return s, changes
}

// fileState is the hydration state of one file restored lazily. Its
// blocks cover [0, size): block b is [b*blockSize, min((b+1)*blockSize,
// size)). A pending block holds zeros in the upper file and its data only in
// source; it stops being pending once fetched, or overwritten whole, or cut
// off by a truncation. A block is busy while one request fetches or claims
// it; others wait for it.
type fileState struct {
	h      *hydrator
	path   string
	size   int64
	source string
	blocks int64

	mu           sync.Mutex
	pending      bitmap
	npending     int64
	pendingBytes int64
	busy         map[int64]chan struct{}
	fetched      int64
	hydrated     time.Time
}

func (f *fileState) stats() FileStats {
	f.mu.Lock()
	defer f.mu.Unlock()
	return FileStats{Path: f.path, Size: f.size, FetchedBytes: f.fetched, PendingBytes: f.pendingBytes, Hydrated: f.hydrated}
}

func (f *fileState) blockStart(b int64) int64 { return b * f.h.blockSize }
func (f *fileState) blockLen(b int64) int64 {
	return min(f.h.blockSize, f.size-f.blockStart(b))
}

// blockRange is the blocks that bytes [off, off+n) touch: [first, end).
func (f *fileState) blockRange(off, n int64) (first, end int64) {
	if n <= 0 || off >= f.size || off < 0 {
		return 0, 0
	}
	last := min(off+n, f.size) - 1
	return off / f.h.blockSize, last/f.h.blockSize + 1
}

// filler is where fetched data goes: the upper file.
type filler interface {
	WriteAt(p []byte, off int64) (int, error)
}

// ensure fetches every pending block among [first, end) into dst, waiting
// for blocks another request is fetching or claiming.
func (f *fileState) ensure(ctx context.Context, dst filler, first, end int64) error {
	for b := first; b < end; b++ {
		for {
			f.mu.Lock()
			if !f.pending.has(b) {
				f.mu.Unlock()
				break
			}
			if ch, ok := f.busy[b]; ok {
				f.mu.Unlock()
				if err := f.waitFor(ctx, ch); err != nil {
					return err
				}
				continue
			}
			ch := make(chan struct{})
			f.busy[b] = ch
			f.mu.Unlock()
			err := f.fetch(ctx, dst, b)
			f.mu.Lock()
			delete(f.busy, b)
			close(ch)
			f.mu.Unlock()
			if err != nil {
				return err
			}
			break
		}
	}
	return nil
}

func (f *fileState) waitFor(ctx context.Context, ch chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-f.h.done.Done():
		return errUnmounted
	}
}

// fetch copies block b from the source into dst at the volume's pace and
// marks it hydrated. The caller holds b busy.
func (f *fileState) fetch(ctx context.Context, dst filler, b int64) error {
	start, n := f.blockStart(b), f.blockLen(b)
	if err := f.h.wait(ctx, f.h.pace.reserve(f.h.now(), n)); err != nil {
		return err
	}
	bufp := f.h.buffers.Get().(*[]byte)
	defer f.h.buffers.Put(bufp)
	buf := (*bufp)[:n]
	src, err := os.Open(f.source)
	if err != nil {
		return fmt.Errorf("lazyfs: fetching block %d of %s: %w", b, f.path, err)
	}
	got, err := src.ReadAt(buf, start)
	src.Close()
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("lazyfs: fetching block %d of %s: %w", b, f.path, err)
	}
	// A source shorter than the file was restored with holds zeros
	// beyond its end, as the upper file does.
	if _, err := dst.WriteAt(buf[:got], start); err != nil {
		return fmt.Errorf("lazyfs: filling block %d of %s: %w", b, f.path, err)
	}
	now := f.h.now()
	f.mu.Lock()
	f.pending.clear(b)
	f.npending--
	f.pendingBytes -= n
	f.fetched += n
	if f.npending == 0 {
		f.hydrated = now
	}
	f.mu.Unlock()
	f.h.counted(func(s *Stats) {
		s.FetchedBytes += n
		s.FetchedBlocks++
		s.PendingBytes -= n
		if s.FirstFetch.IsZero() {
			s.FirstFetch = now
		}
		s.LastFetch = now
	})
	return nil
}

// claim takes every pending block among [first, end) that match selects,
// in ascending order, waiting for busy ones; blocks that stop being pending
// meanwhile are passed over. The returned release gives the blocks back:
// done marks them hydrated without a fetch (overwritten or cut off),
// otherwise they stay pending.
func (f *fileState) claim(ctx context.Context, first, end int64) (release func(done bool), err error) {
	var claimed []int64
	release = func(done bool) {
		now := f.h.now()
		var bytes int64
		f.mu.Lock()
		for _, b := range claimed {
			if done {
				f.pending.clear(b)
				f.npending--
				n := f.blockLen(b)
				f.pendingBytes -= n
				bytes += n
			}
			close(f.busy[b])
			delete(f.busy, b)
		}
		if done && len(claimed) > 0 && f.npending == 0 {
			f.hydrated = now
		}
		f.mu.Unlock()
		if bytes > 0 {
			f.h.counted(func(s *Stats) {
				s.OverwrittenBytes += bytes
				s.PendingBytes -= bytes
			})
		}
	}
	for b := first; b < end; b++ {
		for {
			f.mu.Lock()
			if !f.pending.has(b) {
				f.mu.Unlock()
				break
			}
			if ch, ok := f.busy[b]; ok {
				f.mu.Unlock()
				if err := f.waitFor(ctx, ch); err != nil {
					release(false)
					return nil, err
				}
				continue
			}
			f.busy[b] = make(chan struct{})
			claimed = append(claimed, b)
			f.mu.Unlock()
			break
		}
	}
	return release, nil
}

// beforeRead makes bytes [off, off+n) of the upper file hold the file's
// data: it fetches the pending blocks they touch.
func (f *fileState) beforeRead(ctx context.Context, dst filler, off, n int64) error {
	first, end := f.blockRange(off, n)
	return f.ensure(ctx, dst, first, end)
}

// beforeWrite prepares a write of bytes [off, off+n): a pending block the
// write covers only in part is fetched first (the rest of it must be the
// file's data); blocks it covers whole are claimed, so that no read sees
// them before the write lands. Call release with whether the write
// succeeded.
func (f *fileState) beforeWrite(ctx context.Context, dst filler, off, n int64) (release func(done bool), err error) {
	first, end := f.blockRange(off, n)
	if first == end {
		return func(bool) {}, nil
	}
	covered := func(b int64) bool { return off <= f.blockStart(b) && off+n >= f.blockStart(b)+f.blockLen(b) }
	for _, b := range []int64{first, end - 1} {
		if !covered(b) {
			if err := f.ensure(ctx, dst, b, b+1); err != nil {
				return nil, err
			}
		}
	}
	return f.claim(ctx, first, end) // the partial ones are no longer pending
}

// beforeTruncate prepares cutting the file to size: the block the new end
// falls inside is fetched (its head is the file's data), the blocks past
// it are claimed. Call release with whether the truncation succeeded: they
// are then hydrated, as zeros.
func (f *fileState) beforeTruncate(ctx context.Context, dst filler, size int64) (release func(done bool), err error) {
	if size < 0 {
		size = 0
	}
	if size >= f.size {
		return func(bool) {}, nil
	}
	b := size / f.h.blockSize
	if size%f.h.blockSize != 0 {
		if err := f.ensure(ctx, dst, b, b+1); err != nil {
			return nil, err
		}
		b++
	}
	return f.claim(ctx, b, f.blocks)
}

// hydrateAll fetches every pending block: before an operation that moves or
// zeroes data in ways blocks cannot follow (fallocate's punch, zero,
// collapse and insert modes).
func (f *fileState) hydrateAll(ctx context.Context, dst filler) error {
	return f.ensure(ctx, dst, 0, f.blocks)
}

// hasPending reports whether some block is still only in the snapshot.
func (f *fileState) hasPending() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.npending > 0
}

func sleepContext(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
