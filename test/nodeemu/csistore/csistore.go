// Package csistore keeps the emulated CSI driver's volumes and snapshots as
// directories.
//
// Layout below the root:
//
//	volumes/<id>/               a volume: the directory pods mount
//	snapshots/<handle>/data/    a physical snapshot: a copy of a volume
//	snapshots/<handle>/meta.json  its source volume, creation time and size
//	*.partial                   a copy in progress; removed by Open
//
// Every copy lands in a .partial directory first and is renamed into place,
// so a volume or a snapshot exists completely or not at all. Copies keep
// modes, ownership, modification times and symbolic links.
package csistore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrSnapshotNotFound is returned for a snapshot handle the store does not have.
var ErrSnapshotNotFound = errors.New("snapshot not found")

const partialSuffix = ".partial"

// Snapshot describes a physical snapshot.
type Snapshot struct {
	Handle         string    `json:"handle"`
	SourceVolumeID string    `json:"sourceVolumeID"`
	CreationTime   time.Time `json:"creationTime"` // the moment the copy was cut
	SizeBytes      int64     `json:"sizeBytes"`    // bytes of file data
}

// Store is the driver's storage on this machine.
type Store struct {
	root  string
	mu    sync.Mutex
	locks map[string]*sync.Mutex
	// now and sleep are the throttle's clock; tests replace them.
	now   func() time.Time
	sleep func(time.Duration)
}

// Open opens (and creates) a store at root, removing leftovers of copies
// interrupted by a crash.
func Open(root string) (*Store, error) {
	for _, d := range []string{root, filepath.Join(root, "volumes"), filepath.Join(root, "snapshots")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("csistore: %w", err)
		}
		// Database processes run unprivileged and must reach their volumes.
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, fmt.Errorf("csistore: %w", err)
		}
	}
	for _, d := range []string{"volumes", "snapshots"} {
		entries, err := os.ReadDir(filepath.Join(root, d))
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), partialSuffix) {
				_ = os.RemoveAll(filepath.Join(root, d, e.Name()))
			}
		}
	}
	return &Store{root: root, locks: map[string]*sync.Mutex{}, now: time.Now, sleep: time.Sleep}, nil
}

// lock serialises operations on one volume or snapshot.
func (s *Store) lock(key string) func() {
	s.mu.Lock()
	l, ok := s.locks[key]
	if !ok {
		l = &sync.Mutex{}
		s.locks[key] = l
	}
	s.mu.Unlock()
	l.Lock()
	return l.Unlock
}

func validName(kind, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\\\x00") || strings.HasSuffix(name, partialSuffix) {
		return fmt.Errorf("csistore: invalid %s %q: want a non-empty name without path separators", kind, name)
	}
	return nil
}

func (s *Store) volumeDir(id string) string       { return filepath.Join(s.root, "volumes", id) }
func (s *Store) snapshotDir(handle string) string { return filepath.Join(s.root, "snapshots", handle) }

// CreateVolume creates an empty volume owned by uid/gid; an existing volume
// is returned as it is.
func (s *Store) CreateVolume(id string, uid, gid int) (string, error) {
	if err := validName("volume id", id); err != nil {
		return "", err
	}
	defer s.lock("volume/" + id)()
	dir := s.volumeDir(id)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	tmp := dir + partialSuffix
	_ = os.RemoveAll(tmp)
	if err := os.Mkdir(tmp, 0o755); err != nil {
		return "", err
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// CloneVolume creates volume id from the data of snapshot handle, at most
// bytesPerSecond fast when that is positive. The volume root is owned by
// uid/gid; everything inside keeps the snapshot's ownership.
func (s *Store) CloneVolume(ctx context.Context, id, handle string, uid, gid int, bytesPerSecond int64) (string, error) {
	if err := validName("volume id", id); err != nil {
		return "", err
	}
	if err := validName("snapshot handle", handle); err != nil {
		return "", err
	}
	defer s.lock("volume/" + id)()
	dir := s.volumeDir(id)
	if _, err := os.Stat(dir); err == nil {
		return dir, nil
	}
	unlockSnapshot := s.lock("snapshot/" + handle)
	defer unlockSnapshot()
	if _, err := os.Stat(filepath.Join(s.snapshotDir(handle), "data")); err != nil {
		return "", fmt.Errorf("csistore: restoring %s: snapshot %s: %w", id, handle, ErrSnapshotNotFound)
	}
	tmp := dir + partialSuffix
	_ = os.RemoveAll(tmp)
	c := &copier{ctx: ctx, rate: bytesPerSecond, now: s.now, sleep: s.sleep, start: s.now()}
	if err := c.tree(filepath.Join(s.snapshotDir(handle), "data"), tmp); err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("csistore: restoring %s from %s: %w", id, handle, err)
	}
	if err := os.Chown(tmp, uid, gid); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	if err := os.Rename(tmp, dir); err != nil {
		_ = os.RemoveAll(tmp)
		return "", err
	}
	return dir, nil
}

// VolumePath returns the directory of volume id.
func (s *Store) VolumePath(id string) (string, bool) {
	if validName("volume id", id) != nil {
		return "", false
	}
	dir := s.volumeDir(id)
	if _, err := os.Stat(dir); err != nil {
		return "", false
	}
	return dir, true
}

// DeleteVolume removes volume id; a missing volume is not an error.
func (s *Store) DeleteVolume(id string) error {
	if err := validName("volume id", id); err != nil {
		return err
	}
	defer s.lock("volume/" + id)()
	return os.RemoveAll(s.volumeDir(id))
}

// ListVolumes returns the ids of all volumes.
func (s *Store) ListVolumes() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "volumes"))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		if e.IsDir() && !strings.HasSuffix(e.Name(), partialSuffix) {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// CreateSnapshot cuts a physical snapshot handle of volume volumeID. freeze,
// if not nil, is called right before the copy and the function it returns
// right after it. An existing handle is returned unchanged.
func (s *Store) CreateSnapshot(ctx context.Context, handle, volumeID string, freeze func() (thaw func(), err error)) (Snapshot, error) {
	if err := validName("snapshot handle", handle); err != nil {
		return Snapshot{}, err
	}
	if err := validName("volume id", volumeID); err != nil {
		return Snapshot{}, err
	}
	defer s.lock("snapshot/" + handle)()
	if snap, ok, err := s.readSnapshot(handle); ok || err != nil {
		return snap, err
	}
	source := s.volumeDir(volumeID)
	if _, err := os.Stat(source); err != nil {
		return Snapshot{}, fmt.Errorf("csistore: volume %s does not exist", volumeID)
	}
	tmp := s.snapshotDir(handle) + partialSuffix
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return Snapshot{}, err
	}
	thaw := func() {}
	if freeze != nil {
		t, err := freeze()
		if err != nil {
			_ = os.RemoveAll(tmp)
			return Snapshot{}, fmt.Errorf("csistore: freezing volume %s: %w", volumeID, err)
		}
		thaw = t
	}
	cut := s.now()
	c := &copier{ctx: ctx, now: s.now, sleep: s.sleep, start: cut}
	err := c.tree(source, filepath.Join(tmp, "data"))
	thaw()
	if err != nil {
		_ = os.RemoveAll(tmp)
		return Snapshot{}, fmt.Errorf("csistore: copying volume %s: %w", volumeID, err)
	}
	snap := Snapshot{Handle: handle, SourceVolumeID: volumeID, CreationTime: cut.UTC(), SizeBytes: c.copied}
	meta, err := json.MarshalIndent(snap, "", "  ")
	if err != nil {
		return Snapshot{}, err
	}
	if err := os.WriteFile(filepath.Join(tmp, "meta.json"), meta, 0o644); err != nil {
		_ = os.RemoveAll(tmp)
		return Snapshot{}, err
	}
	if err := os.Rename(tmp, s.snapshotDir(handle)); err != nil {
		_ = os.RemoveAll(tmp)
		return Snapshot{}, err
	}
	return snap, nil
}

// GetSnapshot returns snapshot handle, if the store has it.
func (s *Store) GetSnapshot(handle string) (Snapshot, bool, error) {
	if err := validName("snapshot handle", handle); err != nil {
		return Snapshot{}, false, err
	}
	return s.readSnapshot(handle)
}

func (s *Store) readSnapshot(handle string) (Snapshot, bool, error) {
	data, err := os.ReadFile(filepath.Join(s.snapshotDir(handle), "meta.json"))
	if errors.Is(err, os.ErrNotExist) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, err
	}
	var snap Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return Snapshot{}, false, fmt.Errorf("csistore: snapshot %s: %w", handle, err)
	}
	return snap, true, nil
}

// DeleteSnapshot removes the physical copy; a missing one is not an error.
func (s *Store) DeleteSnapshot(handle string) error {
	if err := validName("snapshot handle", handle); err != nil {
		return err
	}
	defer s.lock("snapshot/" + handle)()
	return os.RemoveAll(s.snapshotDir(handle))
}

// ListSnapshots returns every physical snapshot.
func (s *Store) ListSnapshots() ([]Snapshot, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "snapshots"))
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, e := range entries {
		if !e.IsDir() || strings.HasSuffix(e.Name(), partialSuffix) {
			continue
		}
		snap, ok, err := s.readSnapshot(e.Name())
		if err != nil {
			return nil, err
		}
		if ok {
			out = append(out, snap)
		}
	}
	return out, nil
}

// copier copies directory trees, optionally throttled to rate bytes per
// second measured from start.
type copier struct {
	ctx    context.Context
	rate   int64
	now    func() time.Time
	sleep  func(time.Duration)
	start  time.Time
	copied int64
	buf    []byte
}

// throttleDelay is how long to wait so that copied bytes since start do not
// exceed rate.
func throttleDelay(copied, rate int64, elapsed time.Duration) time.Duration {
	if rate <= 0 {
		return 0
	}
	due := time.Duration(float64(copied) / float64(rate) * float64(time.Second))
	if due > elapsed {
		return due - elapsed
	}
	return 0
}

func (c *copier) tree(src, dst string) error {
	return filepath.WalkDir(src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if err := c.ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(src, path)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		info, err := os.Lstat(path)
		if err != nil {
			return err
		}
		st, _ := info.Sys().(*syscall.Stat_t)
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(path)
			if err != nil {
				return err
			}
			if err := os.Symlink(link, target); err != nil {
				return err
			}
			if st != nil {
				return os.Lchown(target, int(st.Uid), int(st.Gid))
			}
			return nil
		case info.IsDir():
			if err := os.Mkdir(target, info.Mode().Perm()); err != nil && !(rel == "." && errors.Is(err, os.ErrExist)) {
				return err
			}
		case info.Mode().IsRegular():
			if err := c.file(path, target, info.Mode().Perm()); err != nil {
				return err
			}
		default:
			return nil // sockets, fifos and devices are not data
		}
		if st != nil {
			if err := os.Lchown(target, int(st.Uid), int(st.Gid)); err != nil {
				return err
			}
		}
		if err := os.Chmod(target, info.Mode().Perm()); err != nil {
			return err
		}
		if !info.IsDir() {
			return os.Chtimes(target, info.ModTime(), info.ModTime())
		}
		return nil
	})
}

func (c *copier) file(src, dst string, mode fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if c.buf == nil {
		c.buf = make([]byte, 256<<10)
	}
	for {
		if err := c.ctx.Err(); err != nil {
			out.Close()
			return err
		}
		chunk := c.buf
		if c.rate > 0 && int64(len(chunk)) > c.rate/10+1 {
			chunk = chunk[:c.rate/10+1] // ~10 waits a second keep the rate smooth
		}
		n, rerr := in.Read(chunk)
		if n > 0 {
			if _, err := out.Write(chunk[:n]); err != nil {
				out.Close()
				return err
			}
			c.copied += int64(n)
			if d := throttleDelay(c.copied, c.rate, c.now().Sub(c.start)); d > 0 {
				c.sleep(d)
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			out.Close()
			return rerr
		}
	}
	return out.Close()
}
