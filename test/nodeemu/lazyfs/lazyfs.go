// Package lazyfs presents a volume restored from a snapshot that is
// hydrated lazily, as cloud block storage restores one: usable at once, but
// each block is fetched from the snapshot the first time it is needed, at a
// limited throughput, and is fast from then on.
//
// # Design
//
// A lazy volume is a FUSE loopback filesystem over an upper tree, the
// volume's own files. The files restored from the snapshot are in the upper
// tree from the start, with their size, mode, owner and times, but hold
// their data only where it was fetched (they begin as sparse files); for
// each, a source file holds the snapshot's data (package csistore links
// the snapshot's own file there). Every other operation passes through to
// the upper tree.
//
// Each such file is cut into blocks of Options.BlockSize (the last one
// shorter), tracked in a bitmap: a pending block is still only in the
// snapshot. A read that touches a pending block first fetches it: the
// block is copied from the source into the upper file, paced so that the
// volume's fetches together go no faster than Options.BytesPerSecond;
// reads of hydrated blocks go at the upper tree's speed. A write hydrates
// the blocks it touches: a block it covers in part is fetched first, a
// block it covers whole needs no fetch. A truncation hydrates the blocks it
// cuts off, after fetching the one the new end falls in. Blocks being
// fetched are waited for by every other request that needs them, so no one
// reads a block before its data is there.
//
// Files are known by their inode in the upper tree, so renames and hard
// links keep their state; an inode number reused by a new file (the old
// file was removed and closed) starts a file without lazy data.
//
// Stats counts what was fetched, when, and what each file still lacks, for
// tests to assert on: they are the emulated driver's ground truth.
//
// Mounting uses mount(2) and needs root and /dev/fuse (Available says
// whether both are there); no fusermount binary is needed. The mount is
// shared with other users (allow_other) and the kernel checks permissions
// against the files' modes (default_permissions); files and directories
// made through it are owned by their creator, as on any filesystem.
// Unmount ends the mount, also when files are still open (it is detached
// then, as umount -l does); UnmountBelow clears mounts a crashed process
// left.
package lazyfs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"syscall"
	"time"

	"github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// FSType is the filesystem type of lazy volumes in /proc/mounts, after
// "fuse.".
const FSType = "drillerd-lazy"

// DefaultBlockSize is the hydration granularity when Options.BlockSize is
// zero: 512 KiB, the block size of EBS snapshots.
const DefaultBlockSize = 512 << 10

// Bounds of Options.BlockSize.
const (
	MinBlockSize = 4 << 10
	MaxBlockSize = 64 << 20
)

// unmountWait bounds how long Unmount waits for a detached mount's last
// request.
const unmountWait = 10 * time.Second

// File is a file of the upper tree whose data is fetched lazily.
type File struct {
	// Ino is its inode number in the upper tree.
	Ino uint64 `json:"ino"`
	// Path is where it is, relative to the upper tree's root, when the
	// volume is restored; reported in Stats.
	Path string `json:"path"`
	// Size is how many bytes of it are fetched lazily, from offset 0.
	Size int64 `json:"size"`
	// Source holds the data: the file's bytes at the same offsets.
	Source string `json:"source"`
}

// Backing is what a lazy volume presents.
type Backing struct {
	// Upper is the directory tree the volume shows.
	Upper string
	// Files are its files whose data is still in Source files.
	Files []File
}

// Options tune a lazy volume.
type Options struct {
	// BlockSize is the hydration granularity in bytes; zero means
	// DefaultBlockSize.
	BlockSize int64
	// BytesPerSecond limits the fetches of pending blocks, together, for
	// the volume; zero or less means no limit (blocks are still counted).
	BytesPerSecond int64
	// Name is the mount's source in /proc/mounts, e.g. the volume's id.
	Name string
	// Log receives the FUSE server's warnings; nil discards them.
	Log *log.Logger
}

// Stats is what a lazy volume fetched, and when.
type Stats struct {
	BlockSize      int64 `json:"blockSize"`
	BytesPerSecond int64 `json:"bytesPerSecond"`
	// Mounted is when the volume became usable; Unmounted when it ended.
	Mounted   time.Time `json:"mounted"`
	Unmounted time.Time `json:"unmounted,omitzero"`
	// LazyBytes is the data the volume was restored with, none of it
	// present at the mount: LazyBytes = FetchedBytes + OverwrittenBytes +
	// PendingBytes.
	LazyBytes int64 `json:"lazyBytes"`
	// FetchedBytes were fetched from the snapshot, in FetchedBlocks
	// blocks, at the volume's pace.
	FetchedBytes  int64 `json:"fetchedBytes"`
	FetchedBlocks int64 `json:"fetchedBlocks"`
	// OverwrittenBytes never needed a fetch: their blocks were written
	// whole, or cut off by a truncation.
	OverwrittenBytes int64 `json:"overwrittenBytes"`
	// PendingBytes are still only in the snapshot.
	PendingBytes int64 `json:"pendingBytes"`
	// ReadBytes were read from files restored lazily, fetched or not.
	ReadBytes int64 `json:"readBytes"`
	// FirstFetch and LastFetch are when the first and the latest fetch
	// completed; zero before any.
	FirstFetch time.Time `json:"firstFetch,omitzero"`
	LastFetch  time.Time `json:"lastFetch,omitzero"`
	// Files are the files restored lazily, by path.
	Files []FileStats `json:"files"`
}

// FileStats is the hydration of one file.
type FileStats struct {
	// Path is where the file was when the volume was restored.
	Path string `json:"path"`
	Size int64  `json:"size"`
	// FetchedBytes of it came from the snapshot; PendingBytes still are
	// only there.
	FetchedBytes int64 `json:"fetchedBytes"`
	PendingBytes int64 `json:"pendingBytes"`
	// Hydrated is when its last pending block was fetched, overwritten
	// or cut off; zero while some are pending.
	Hydrated time.Time `json:"hydrated,omitzero"`
}

// Available returns nil when this process can mount lazy volumes, else an
// error naming what is missing.
func Available() error {
	if uid := os.Geteuid(); uid != 0 {
		return fmt.Errorf("lazyfs: lazily hydrated volumes need root to mount with mount(2) (running as uid %d)", uid)
	}
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("lazyfs: lazily hydrated volumes need FUSE: %w (load the fuse kernel module: modprobe fuse)", err)
	}
	return f.Close()
}

// Volume is a mounted lazy volume.
type Volume struct {
	mountPoint string
	server     *fuse.Server
	h          *hydrator

	unmounted chan struct{} // closed when Unmount has finished
	err       error
}

// Mount mounts a lazy volume of b at mountPoint, an empty directory, and
// serves it until Unmount.
func Mount(mountPoint string, b Backing, opts Options) (*Volume, error) {
	return mount(mountPoint, b, opts, nil)
}

// mount is Mount with the hydrator's clock replaced by tune, for tests.
func mount(mountPoint string, b Backing, opts Options, tune func(*hydrator)) (*Volume, error) {
	if opts.BlockSize == 0 {
		opts.BlockSize = DefaultBlockSize
	}
	if opts.BlockSize < MinBlockSize || opts.BlockSize > MaxBlockSize {
		return nil, fmt.Errorf("lazyfs: block size %d is out of range: use %d to %d bytes", opts.BlockSize, MinBlockSize, MaxBlockSize)
	}
	if err := Available(); err != nil {
		return nil, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(b.Upper, &st); err != nil {
		return nil, fmt.Errorf("lazyfs: the volume's tree: %w", err)
	}
	h := newHydrator(b.Files, opts.BlockSize, opts.BytesPerSecond)
	if tune != nil {
		tune(h)
	}
	root := &node{LoopbackNode: &fs.LoopbackNode{RootData: &fs.LoopbackRoot{Path: b.Upper, Dev: uint64(st.Dev)}}, h: h}
	root.RootData.RootNode = root
	second := time.Second
	logger := opts.Log
	if logger == nil {
		logger = log.New(io.Discard, "", 0)
	}
	name := opts.Name
	if name == "" {
		name = FSType
	}
	server, err := fs.Mount(mountPoint, root, &fs.Options{
		EntryTimeout: &second,
		AttrTimeout:  &second,
		MountOptions: fuse.MountOptions{
			AllowOther:        true,
			DirectMountStrict: true,
			FsName:            name,
			Name:              FSType,
			Options:           []string{"default_permissions"},
			Logger:            logger,
		},
	})
	if err != nil {
		h.close()
		return nil, fmt.Errorf("lazyfs: mounting %s: %w", mountPoint, err)
	}
	h.mu.Lock()
	h.mounted = h.now()
	h.mu.Unlock()
	return &Volume{mountPoint: mountPoint, server: server, h: h, unmounted: make(chan struct{})}, nil
}

// MountPoint is where the volume is mounted.
func (v *Volume) MountPoint() string { return v.mountPoint }

// Stats returns what the volume fetched so far.
func (v *Volume) Stats() Stats {
	s, _ := v.h.snapshot()
	return s
}

// StatsSince returns the volume's stats and a generation that changes
// when they do: changed is false when nothing changed since generation
// since.
func (v *Volume) StatsSince(since uint64) (s Stats, generation uint64, changed bool) {
	s, generation = v.h.snapshot()
	return s, generation, generation != since
}

// Unmount ends the volume: fetches waiting for their turn fail, and the
// mount is removed; while files are still open it is detached (their
// requests fail) and Unmount waits up to 10s for the last one. Calling it
// again returns the first result.
func (v *Volume) Unmount() error {
	select {
	case <-v.unmounted:
		return v.err
	default:
	}
	defer close(v.unmounted)
	v.h.close()
	if err := v.server.Unmount(); err != nil {
		if derr := unix.Unmount(v.mountPoint, unix.MNT_DETACH); derr != nil && !errors.Is(derr, unix.EINVAL) {
			v.err = fmt.Errorf("lazyfs: unmounting %s: %w (detaching it: %v)", v.mountPoint, err, derr)
			return v.err
		}
		served := make(chan struct{})
		go func() { v.server.Wait(); close(served) }()
		select {
		case <-served:
		case <-time.After(unmountWait):
			v.err = fmt.Errorf("lazyfs: %s was detached with files still open: their requests fail (%v)", v.mountPoint, err)
		}
	}
	v.h.mu.Lock()
	v.h.unmounted = v.h.now()
	v.h.changes++
	v.h.mu.Unlock()
	return v.err
}

// fetchErrno is the errno of a request whose fetch failed: EINTR when the
// request was interrupted, else EIO.
func fetchErrno(ctx context.Context) syscall.Errno {
	if ctx.Err() != nil {
		return syscall.EINTR
	}
	return syscall.EIO
}
