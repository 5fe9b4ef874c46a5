package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"syscall"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// node is a loopback node whose files' reads, writes and truncations
// hydrate the blocks they touch first.
type node struct {
	*fs.LoopbackNode
	h *hydrator
}

var (
	_ fs.NodeWrapChilder = (*node)(nil)
	_ fs.NodeOpener      = (*node)(nil)
	_ fs.NodeCreater     = (*node)(nil)
	_ fs.NodeSetattrer   = (*node)(nil)
	_ fs.NodeMkdirer     = (*node)(nil)
	_ fs.NodeMknoder     = (*node)(nil)
	_ fs.NodeSymlinker   = (*node)(nil)
)

// WrapChild makes every node of the tree a node of the volume.
func (n *node) WrapChild(ctx context.Context, ops fs.InodeEmbedder) fs.InodeEmbedder {
	return &node{LoopbackNode: ops.(*fs.LoopbackNode), h: n.h}
}

// upperPath is the node's path in the upper tree.
func (n *node) upperPath() string {
	return filepath.Join(n.RootData.Path, n.Path(n.Root()))
}

// Open opens the upper file; a file restored lazily gets a handle that
// hydrates what it reads and writes.
func (n *node) Open(ctx context.Context, flags uint32) (fs.FileHandle, uint32, syscall.Errno) {
	// The kernel sends explicit offsets (O_APPEND), and does direct I/O
	// itself: the upper file is read and filled through its page cache.
	flags &^= syscall.O_APPEND | fuse.FMODE_EXEC | syscall.O_DIRECT
	f, err := os.OpenFile(n.upperPath(), int(flags)|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, 0, fs.ToErrno(err)
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, 0, fs.ToErrno(err)
	}
	return &handle{lf: fs.NewLoopbackFileFromOS(f), f: f, state: n.h.lookup(st.Ino), h: n.h}, 0, 0
}

// Create makes a new file, which holds only what is written to it.
func (n *node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fs.Inode, fs.FileHandle, uint32, syscall.Errno) {
	inode, fh, fuseFlags, errno := n.LoopbackNode.Create(ctx, name, flags, mode, out)
	if errno != 0 {
		return inode, fh, fuseFlags, errno
	}
	n.h.created(out.Attr.Ino)
	lf, ok := fh.(*fs.LoopbackFile)
	if !ok {
		return inode, fh, fuseFlags, 0
	}
	return inode, &handle{lf: lf, h: n.h}, fuseFlags, 0
}

// Mkdir, Mknod and Symlink make new inodes.

func (n *node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	inode, errno := n.LoopbackNode.Mkdir(ctx, name, mode, out)
	if errno == 0 {
		n.h.created(out.Attr.Ino)
	}
	return inode, errno
}

func (n *node) Mknod(ctx context.Context, name string, mode, rdev uint32, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	inode, errno := n.LoopbackNode.Mknod(ctx, name, mode, rdev, out)
	if errno == 0 {
		n.h.created(out.Attr.Ino)
	}
	return inode, errno
}

func (n *node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fs.Inode, syscall.Errno) {
	inode, errno := n.LoopbackNode.Symlink(ctx, target, name, out)
	if errno == 0 {
		n.h.created(out.Attr.Ino)
	}
	return inode, errno
}

// Setattr passes through; a truncation of a file restored lazily first
// fetches the block its new end falls in, and hydrates the blocks it cuts
// off.
func (n *node) Setattr(ctx context.Context, f fs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	inner := f
	hd, _ := f.(*handle)
	if hd != nil {
		inner = hd.lf
	}
	size, ok := in.GetSize()
	if !ok {
		return n.LoopbackNode.Setattr(ctx, inner, in, out)
	}
	var (
		state *fileState
		fill  filler
	)
	if hd != nil {
		state, fill = hd.state, hd
	} else {
		var st syscall.Stat_t
		if err := syscall.Lstat(n.upperPath(), &st); err != nil {
			return fs.ToErrno(err)
		}
		if state = n.h.lookup(st.Ino); state != nil {
			pf := &pathFiller{path: n.upperPath()}
			defer pf.close()
			fill = pf
		}
	}
	if state == nil {
		return n.LoopbackNode.Setattr(ctx, inner, in, out)
	}
	release, err := state.beforeTruncate(ctx, fill, int64(size))
	if err != nil {
		return fetchErrno(ctx)
	}
	errno := n.LoopbackNode.Setattr(ctx, inner, in, out)
	release(errno == 0)
	return errno
}

// pathFiller writes fetched blocks to an upper file opened by path, for a
// truncation without an open file.
type pathFiller struct {
	path string
	f    *os.File
}

func (p *pathFiller) WriteAt(b []byte, off int64) (int, error) {
	if p.f == nil {
		f, err := os.OpenFile(p.path, os.O_WRONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return 0, err
		}
		p.f = f
	}
	return p.f.WriteAt(b, off)
}

func (p *pathFiller) close() {
	if p.f != nil {
		p.f.Close()
	}
}

// handle is an open file of the volume. For a file restored lazily (state
// set) reads, writes and hole-punching hydrate first; everything passes
// through to the upper file. It offers no passthrough descriptor, so the
// kernel sends every read here.
type handle struct {
	lf    *fs.LoopbackFile
	f     *os.File   // the upper file, when opened here
	state *fileState // nil: no data left to fetch
	h     *hydrator

	fillMu sync.Mutex
	fill   *os.File // the upper file opened for writing fetched blocks
}

var (
	_ fs.FileReader    = (*handle)(nil)
	_ fs.FileWriter    = (*handle)(nil)
	_ fs.FileGetattrer = (*handle)(nil)
	_ fs.FileFlusher   = (*handle)(nil)
	_ fs.FileFsyncer   = (*handle)(nil)
	_ fs.FileReleaser  = (*handle)(nil)
	_ fs.FileLseeker   = (*handle)(nil)
	_ fs.FileAllocater = (*handle)(nil)
)

// WriteAt writes a fetched block into the upper file, through a
// descriptor of its own (the file may be open read-only, or for direct
// I/O).
func (hd *handle) WriteAt(b []byte, off int64) (int, error) {
	hd.fillMu.Lock()
	defer hd.fillMu.Unlock()
	if hd.fill == nil {
		if hd.f == nil {
			return 0, errors.New("lazyfs: no upper file to fill")
		}
		f, err := os.OpenFile(fmt.Sprintf("/proc/self/fd/%d", hd.f.Fd()), os.O_WRONLY, 0)
		if err != nil {
			return 0, err
		}
		hd.fill = f
	}
	return hd.fill.WriteAt(b, off)
}

func (hd *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	if hd.state == nil {
		return hd.lf.Read(ctx, dest, off)
	}
	if err := hd.state.beforeRead(ctx, hd, off, int64(len(dest))); err != nil {
		return nil, fetchErrno(ctx)
	}
	n, err := hd.f.ReadAt(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fs.ToErrno(err)
	}
	hd.h.counted(func(s *Stats) { s.ReadBytes += int64(n) })
	return fuse.ReadResultData(dest[:n]), 0
}

func (hd *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if hd.state == nil {
		return hd.lf.Write(ctx, data, off)
	}
	release, err := hd.state.beforeWrite(ctx, hd, off, int64(len(data)))
	if err != nil {
		return 0, fetchErrno(ctx)
	}
	n, errno := hd.lf.Write(ctx, data, off)
	release(errno == 0 && int(n) == len(data))
	return n, errno
}

// Lseek answers SEEK_DATA and SEEK_HOLE as if the file had no holes while
// some of its data is still in the snapshot (the upper file's holes are
// not the file's).
func (hd *handle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	if hd.state == nil || (whence != unix.SEEK_DATA && whence != unix.SEEK_HOLE) || !hd.state.hasPending() {
		return hd.lf.Lseek(ctx, off, whence)
	}
	info, err := hd.f.Stat()
	if err != nil {
		return 0, fs.ToErrno(err)
	}
	size := uint64(info.Size())
	switch {
	case off >= size:
		return 0, syscall.ENXIO
	case whence == unix.SEEK_DATA:
		return off, 0
	default:
		return size, 0
	}
}

// Allocate passes through; a mode that zeroes or moves data (punching,
// zeroing, collapsing, inserting) first hydrates the whole file.
func (hd *handle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	if hd.state != nil && mode&^unix.FALLOC_FL_KEEP_SIZE != 0 {
		if err := hd.state.hydrateAll(ctx, hd); err != nil {
			return fetchErrno(ctx)
		}
	}
	return hd.lf.Allocate(ctx, off, size, mode)
}

func (hd *handle) Getattr(ctx context.Context, out *fuse.AttrOut) syscall.Errno {
	return hd.lf.Getattr(ctx, out)
}

func (hd *handle) Flush(ctx context.Context) syscall.Errno { return hd.lf.Flush(ctx) }

func (hd *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return hd.lf.Fsync(ctx, flags)
}

func (hd *handle) Release(ctx context.Context) syscall.Errno {
	hd.fillMu.Lock()
	if hd.fill != nil {
		hd.fill.Close()
		hd.fill = nil
	}
	hd.fillMu.Unlock()
	return hd.lf.Release(ctx)
}
