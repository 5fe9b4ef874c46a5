// Package csistore keeps the emulated CSI driver's volumes and snapshots as
// directories.
//
// Layout below the root:
//
//	volumes/<id>/                     a volume: the directory pods use
//	snapshots/<handle>/data/          a physical snapshot: a copy of a volume
//	snapshots/<handle>/meta.json      its handle, source volume, creation time and size
//	lazy/<id>/                        the backing of a volume restored lazily (lazy.go)
//	volumes/<id>.<pid>.partial/       a volume being built (or deleted) by process <pid>
//	snapshots/<handle>.<pid>.partial/ a snapshot being cut (or deleted) by process <pid>
//	lazy/<id>.<pid>.partial/          a lazy volume's backing being built (or deleted)
//
// A volume is created, cloned or deleted and a snapshot is cut or deleted
// in a .partial directory that is renamed into place (or out of it), so to
// every reader a volume or a snapshot exists completely or not at all.
// Open removes the .partial directories of processes that are gone, the
// leftovers of a crash; those of live processes are copies in progress (the
// end-to-end tests open the store the emulator is using) and are kept.
// Nothing is fsynced: a machine crash may lose recent copies.
//
// Copies keep the content, mode (with setuid, setgid and sticky bits),
// ownership and modification time of regular files and directories, and
// copy symbolic links as links with their ownership. Sockets, FIFOs and
// devices are skipped. Several VolumeSnapshotContents may name one handle
// and so share one physical copy.
//
// Volume ids and snapshot handles come from Kubernetes objects and become
// directory names; names that are empty, contain a path separator or
// "..", or end in ".partial" are refused with ErrInvalidName.
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
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var (
	// ErrSnapshotNotFound is returned for a snapshot handle the store does
	// not have.
	ErrSnapshotNotFound = errors.New("snapshot not found")
	// ErrVolumeNotFound is returned when the volume to snapshot does not
	// exist.
	ErrVolumeNotFound = errors.New("volume not found")
	// ErrInvalidName is returned for a volume id or snapshot handle that
	// cannot be a directory name.
	ErrInvalidName = errors.New("invalid name")
)

const (
	volumesDir     = "volumes"
	snapshotsDir   = "snapshots"
	snapshotData   = "data"
	snapshotMeta   = "meta.json"
	partialSuffix  = ".partial"
	maxNameLength  = 200 // leaves room for ".<pid>.partial" within NAME_MAX
	copyBufferSize = 256 << 10
)

// Snapshot describes a physical snapshot.
type Snapshot struct {
	Handle         string    `json:"handle"`
	SourceVolumeID string    `json:"sourceVolumeID"`
	CreationTime   time.Time `json:"creationTime"` // when the copy was cut: the moment of the freeze
	SizeBytes      int64     `json:"sizeBytes"`    // bytes of file data in the copy
}

// Store is the driver's storage on this machine. Its methods may be called
// from several goroutines.
type Store struct {
	root string
	pid  int // names this process's .partial directories

	mu    sync.Mutex
	locks map[string]*nameLock

	// now and sleep drive the restore throttle; tests replace them.
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// nameLock serialises the operations on one volume or snapshot; holders
// counts the goroutines holding or waiting for it.
type nameLock struct {
	sync.RWMutex
	holders int
}

// Open opens the store at root, creating root/volumes and root/snapshots,
// and removes the .partial directories of processes that no longer run.
func Open(root string) (*Store, error) {
	s := &Store{
		root:  root,
		pid:   os.Getpid(),
		locks: map[string]*nameLock{},
		now:   time.Now,
		sleep: sleepContext,
	}
	for _, d := range []string{root, filepath.Join(root, volumesDir), filepath.Join(root, snapshotsDir), filepath.Join(root, lazyDir)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("csistore: %w", err)
		}
		// Databases run unprivileged and must reach their volumes,
		// whatever the umask was.
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, fmt.Errorf("csistore: %w", err)
		}
	}
	for _, d := range []string{volumesDir, snapshotsDir, lazyDir} {
		if err := s.removeAbandonedPartials(filepath.Join(root, d)); err != nil {
			return nil, fmt.Errorf("csistore: %w", err)
		}
	}
	return s, nil
}

func (s *Store) removeAbandonedPartials(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), partialSuffix) {
			continue
		}
		if pid, ok := partialOwner(e.Name()); ok && (pid == s.pid || processRuns(pid)) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

// partialName is the temporary name this process uses for name.
func (s *Store) partialName(path string) string {
	return path + "." + strconv.Itoa(s.pid) + partialSuffix
}

// partialOwner returns the process id in a "<name>.<pid>.partial" name.
func partialOwner(name string) (int, bool) {
	rest := strings.TrimSuffix(name, partialSuffix)
	dot := strings.LastIndexByte(rest, '.')
	if dot < 0 {
		return 0, false
	}
	pid, err := strconv.Atoi(rest[dot+1:])
	return pid, err == nil && pid > 0
}

func processRuns(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// lock takes the lock of key, shared or exclusive, and returns its release.
// Callers that take two locks take the volume's before the snapshot's.
func (s *Store) lock(key string, shared bool) (unlock func()) {
	s.mu.Lock()
	l := s.locks[key]
	if l == nil {
		l = &nameLock{}
		s.locks[key] = l
	}
	l.holders++
	s.mu.Unlock()
	if shared {
		l.RLock()
	} else {
		l.Lock()
	}
	return func() {
		if shared {
			l.RUnlock()
		} else {
			l.Unlock()
		}
		s.mu.Lock()
		if l.holders--; l.holders == 0 {
			delete(s.locks, key)
		}
		s.mu.Unlock()
	}
}

func (s *Store) lockVolume(id string) func() { return s.lock("volume/"+id, false) }
func (s *Store) lockSnapshot(handle string, shared bool) func() {
	return s.lock("snapshot/"+handle, shared)
}

func validateName(kind, name string) error {
	var problem string
	switch {
	case name == "":
		problem = "is empty"
	case name == ".":
		problem = `is "."`
	case strings.Contains(name, ".."):
		problem = `contains ".."`
	case strings.ContainsAny(name, `/\`):
		problem = "contains a path separator"
	case strings.ContainsRune(name, 0):
		problem = "contains a NUL byte"
	case strings.HasSuffix(name, partialSuffix):
		problem = "ends in " + partialSuffix
	case len(name) > maxNameLength:
		problem = fmt.Sprintf("is longer than %d bytes", maxNameLength)
	default:
		return nil
	}
	return fmt.Errorf("csistore: %s %q %s: %w", kind, name, problem, ErrInvalidName)
}

func (s *Store) volumeDir(id string) string       { return filepath.Join(s.root, volumesDir, id) }
func (s *Store) snapshotDir(handle string) string { return filepath.Join(s.root, snapshotsDir, handle) }

func isDir(path string) (bool, error) {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return info.IsDir(), nil
}

// publish renames the finished tmp to path. When path appeared meanwhile
// (another process made it), tmp is dropped and existed reports so.
func publish(tmp, path string) (existed bool, err error) {
	err = os.Rename(tmp, path)
	if err == nil {
		return false, nil
	}
	_ = os.RemoveAll(tmp)
	if ok, _ := isDir(path); ok {
		return true, nil
	}
	return false, err
}

// removeAtomically renames path to a .partial name and then removes it, so
// readers see it either complete or gone. A missing path is not an error.
func (s *Store) removeAtomically(path string) error {
	tmp := s.partialName(path)
	if err := os.RemoveAll(tmp); err != nil {
		return err
	}
	err := os.Rename(path, tmp)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		// A mount point cannot be renamed; remove it in place.
		return os.RemoveAll(path)
	}
	return os.RemoveAll(tmp)
}

// CreateVolume creates an empty volume, a directory with mode 0755 owned by
// uid/gid, and returns its path. An existing volume is returned as it is.
func (s *Store) CreateVolume(id string, uid, gid int) (path string, err error) {
	if err := validateName("volume id", id); err != nil {
		return "", err
	}
	defer s.lockVolume(id)()
	dir := s.volumeDir(id)
	if ok, err := isDir(dir); ok || err != nil {
		return dir, err
	}
	tmp := s.partialName(dir)
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("csistore: creating volume %s: %w", id, err)
	}
	err = func() error {
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return err
		}
		if err := os.Chown(tmp, uid, gid); err != nil {
			return err
		}
		return os.Chmod(tmp, 0o755) // whatever the umask
	}()
	if err == nil {
		_, err = publish(tmp, dir)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("csistore: creating volume %s: %w", id, err)
	}
	return dir, nil
}

// CloneVolume creates volume id with a copy of the data of snapshot
// snapshotHandle and returns its path. The volume's top directory is owned
// by uid/gid; everything inside keeps the snapshot's ownership. With
// bytesPerSecond > 0 the copy is throttled to that rate, like a cloud disk
// hydrated lazily from object storage. The copy lands in a .partial
// directory renamed into place when complete; when ctx ends first, the
// partial copy is removed and ctx's error returned. An existing volume is
// returned as it is; an unknown handle yields ErrSnapshotNotFound.
// Clones from one snapshot run in parallel.
func (s *Store) CloneVolume(ctx context.Context, id, snapshotHandle string, uid, gid int, bytesPerSecond int64) (path string, err error) {
	if err := validateName("volume id", id); err != nil {
		return "", err
	}
	if err := validateName("snapshot handle", snapshotHandle); err != nil {
		return "", err
	}
	defer s.lockVolume(id)()
	dir := s.volumeDir(id)
	if ok, err := isDir(dir); ok || err != nil {
		return dir, err
	}
	defer s.lockSnapshot(snapshotHandle, true)()
	data := filepath.Join(s.snapshotDir(snapshotHandle), snapshotData)
	switch ok, err := isDir(data); {
	case err != nil:
		return "", fmt.Errorf("csistore: restoring volume %s from snapshot %s: %w", id, snapshotHandle, err)
	case !ok:
		return "", fmt.Errorf("csistore: restoring volume %s: snapshot %s: %w", id, snapshotHandle, ErrSnapshotNotFound)
	}
	tmp := s.partialName(dir)
	if err := os.RemoveAll(tmp); err != nil {
		return "", fmt.Errorf("csistore: restoring volume %s from snapshot %s: %w", id, snapshotHandle, err)
	}
	err = func() error {
		c := newCopier(ctx, false)
		defer c.release()
		if bytesPerSecond > 0 {
			c.throttle = &throttle{rate: bytesPerSecond, start: s.now(), now: s.now, sleep: s.sleep}
		}
		if err := c.copyTree(data, tmp); err != nil {
			return err
		}
		info, err := os.Stat(tmp)
		if err != nil {
			return err
		}
		if err := os.Chown(tmp, uid, gid); err != nil {
			return err
		}
		return os.Chmod(tmp, chmodBits(info.Mode()))
	}()
	if err == nil {
		_, err = publish(tmp, dir)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return "", fmt.Errorf("csistore: restoring volume %s from snapshot %s: %w", id, snapshotHandle, err)
	}
	return dir, nil
}

// VolumePath returns the directory of volume id, if it exists.
func (s *Store) VolumePath(id string) (path string, ok bool) {
	if validateName("volume id", id) != nil {
		return "", false
	}
	dir := s.volumeDir(id)
	if ok, _ := isDir(dir); !ok {
		return "", false
	}
	return dir, true
}

// DeleteVolume removes volume id, and the backing of a lazy volume; a
// missing volume is not an error. A volume with a filesystem still mounted
// on it is refused: unmount it first.
func (s *Store) DeleteVolume(id string) error {
	if err := validateName("volume id", id); err != nil {
		return err
	}
	defer s.lockVolume(id)()
	dir := s.volumeDir(id)
	switch mounted, err := isMountPoint(dir); {
	case err != nil:
		return fmt.Errorf("csistore: deleting volume %s: %w", id, err)
	case mounted:
		return fmt.Errorf("csistore: deleting volume %s: a filesystem is still mounted on %s: unmount it first", id, dir)
	}
	if err := s.removeAtomically(dir); err != nil {
		return fmt.Errorf("csistore: deleting volume %s: %w", id, err)
	}
	if err := s.removeAtomically(s.lazyBacking(id)); err != nil {
		return fmt.Errorf("csistore: deleting volume %s: %w", id, err)
	}
	return nil
}

// ListVolumes returns the ids of all volumes, sorted.
func (s *Store) ListVolumes() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, volumesDir))
	if err != nil {
		return nil, fmt.Errorf("csistore: %w", err)
	}
	ids := []string{}
	for _, e := range entries {
		if e.IsDir() && validateName("volume id", e.Name()) == nil {
			ids = append(ids, e.Name())
		}
	}
	return ids, nil
}

// CreateSnapshot copies volume volumeID into a new physical snapshot
// handle. freeze, when not nil, is called right before the copy and the
// function it returns right after it (the emulator stops the database's
// processes meanwhile, as fsfreeze would); CreationTime is the moment after
// the freeze. The copy and its metadata land in a .partial directory
// renamed into place when complete. An existing handle is returned
// unchanged, without a freeze. Snapshots of one volume are cut one at a
// time. An unknown volume yields ErrVolumeNotFound.
func (s *Store) CreateSnapshot(ctx context.Context, handle, volumeID string, freeze func() (thaw func(), err error)) (Snapshot, error) {
	if err := validateName("snapshot handle", handle); err != nil {
		return Snapshot{}, err
	}
	if err := validateName("volume id", volumeID); err != nil {
		return Snapshot{}, err
	}
	defer s.lockVolume(volumeID)()
	defer s.lockSnapshot(handle, false)()
	if snap, ok, err := s.readSnapshot(handle); ok || err != nil {
		return snap, err
	}
	source := s.volumeDir(volumeID)
	switch ok, err := isDir(source); {
	case err != nil:
		return Snapshot{}, fmt.Errorf("csistore: snapshot %s of volume %s: %w", handle, volumeID, err)
	case !ok:
		return Snapshot{}, fmt.Errorf("csistore: snapshot %s: volume %s: %w", handle, volumeID, ErrVolumeNotFound)
	}
	dir := s.snapshotDir(handle)
	tmp := s.partialName(dir)
	if err := os.RemoveAll(tmp); err != nil {
		return Snapshot{}, fmt.Errorf("csistore: snapshot %s of volume %s: %w", handle, volumeID, err)
	}
	snap, err := func() (Snapshot, error) {
		if err := os.Mkdir(tmp, 0o755); err != nil {
			return Snapshot{}, err
		}
		if err := os.Chmod(tmp, 0o755); err != nil {
			return Snapshot{}, err
		}
		cut, size, err := s.copyFrozen(ctx, source, filepath.Join(tmp, snapshotData), freeze)
		if err != nil {
			return Snapshot{}, err
		}
		snap := Snapshot{Handle: handle, SourceVolumeID: volumeID, CreationTime: cut.UTC(), SizeBytes: size}
		meta, err := json.MarshalIndent(snap, "", "  ")
		if err != nil {
			return Snapshot{}, err
		}
		if err := os.WriteFile(filepath.Join(tmp, snapshotMeta), append(meta, '\n'), 0o644); err != nil {
			return Snapshot{}, err
		}
		if existed, err := publish(tmp, dir); existed || err != nil {
			if err != nil {
				return Snapshot{}, err
			}
			snap, _, err = s.readSnapshot(handle) // cut by another process meanwhile
			return snap, err
		}
		return snap, nil
	}()
	if err != nil {
		_ = os.RemoveAll(tmp)
		return Snapshot{}, fmt.Errorf("csistore: snapshot %s of volume %s: %w", handle, volumeID, err)
	}
	return snap, nil
}

// copyFrozen copies source to dst between freeze and thaw and returns the
// moment of the cut and the bytes of file data copied.
func (s *Store) copyFrozen(ctx context.Context, source, dst string, freeze func() (func(), error)) (cut time.Time, size int64, err error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, 0, err // do not stop the database for nothing
	}
	if freeze != nil {
		thaw, err := freeze()
		if err != nil {
			return time.Time{}, 0, fmt.Errorf("freezing: %w", err)
		}
		if thaw != nil {
			defer thaw()
		}
	}
	cut = s.now()
	c := newCopier(ctx, true)
	defer c.release()
	if err := c.copyTree(source, dst); err != nil {
		return time.Time{}, 0, err
	}
	return cut, c.copied, nil
}

// GetSnapshot returns snapshot handle and whether the store has it.
func (s *Store) GetSnapshot(handle string) (Snapshot, bool, error) {
	if err := validateName("snapshot handle", handle); err != nil {
		return Snapshot{}, false, err
	}
	return s.readSnapshot(handle)
}

func (s *Store) readSnapshot(handle string) (Snapshot, bool, error) {
	data, err := os.ReadFile(filepath.Join(s.snapshotDir(handle), snapshotMeta))
	if errors.Is(err, fs.ErrNotExist) {
		return Snapshot{}, false, nil
	}
	if err != nil {
		return Snapshot{}, false, fmt.Errorf("csistore: snapshot %s: %w", handle, err)
	}
	var snap Snapshot
	if err := json.Unmarshal(data, &snap); err != nil {
		return Snapshot{}, false, fmt.Errorf("csistore: snapshot %s: %s: %w", handle, snapshotMeta, err)
	}
	return snap, true, nil
}

// DeleteSnapshot removes the physical copy of handle, which every
// VolumeSnapshotContent naming the handle shares; a missing one is not an
// error. It waits for clones in progress from the snapshot.
func (s *Store) DeleteSnapshot(handle string) error {
	if err := validateName("snapshot handle", handle); err != nil {
		return err
	}
	defer s.lockSnapshot(handle, false)()
	if err := s.removeAtomically(s.snapshotDir(handle)); err != nil {
		return fmt.Errorf("csistore: deleting snapshot %s: %w", handle, err)
	}
	return nil
}

// ListSnapshots returns every physical snapshot, sorted by handle.
func (s *Store) ListSnapshots() ([]Snapshot, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, snapshotsDir))
	if err != nil {
		return nil, fmt.Errorf("csistore: %w", err)
	}
	snaps := []Snapshot{}
	for _, e := range entries {
		if !e.IsDir() || validateName("snapshot handle", e.Name()) != nil {
			continue
		}
		snap, ok, err := s.readSnapshot(e.Name())
		if err != nil {
			return nil, err
		}
		if ok { // not deleted since ReadDir
			snaps = append(snaps, snap)
		}
	}
	return snaps, nil
}

// throttle paces a copy to rate bytes per second: a token bucket that
// starts empty at start and holds no burst, so after n bytes the copy has
// taken at least n/rate seconds.
type throttle struct {
	rate  int64
	start time.Time
	now   func() time.Time
	sleep func(ctx context.Context, d time.Duration) error
}

// chunk is how many bytes to copy between waits: a tenth of a second's
// worth keeps the pace smooth.
func (t *throttle) chunk(limit int) int {
	if n := t.rate / 10; n < int64(limit) {
		return int(max(n, 1))
	}
	return limit
}

// wait sleeps until copied bytes are due.
func (t *throttle) wait(ctx context.Context, copied int64) error {
	if d := throttleDelay(copied, t.rate, t.now().Sub(t.start)); d > 0 {
		return t.sleep(ctx, d)
	}
	return nil
}

// throttleDelay is how long a copy that has copied bytes in elapsed must
// wait to keep to rate bytes per second; rate <= 0 means no limit.
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

func sleepContext(ctx context.Context, d time.Duration) error {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

var copyBuffers = sync.Pool{New: func() any { b := make([]byte, copyBufferSize); return &b }}

// copier copies directory trees with one reusable buffer, counting the
// bytes of file data.
type copier struct {
	ctx      context.Context
	throttle *throttle // nil: as fast as possible
	// lazy, when set, gets each regular file instead of its data being
	// copied (a lazy restore).
	lazy *lazySeeder
	// live says the source is a volume in use, whose files may vanish
	// while they are copied; vanished files are skipped. A snapshot's
	// files do not vanish, and a copy of one missing files is an error.
	live   bool
	buf    *[]byte
	copied int64
}

func newCopier(ctx context.Context, live bool) *copier {
	return &copier{ctx: ctx, live: live, buf: copyBuffers.Get().(*[]byte)}
}

func (c *copier) release() {
	copyBuffers.Put(c.buf)
	c.buf = nil
}

// copyTree copies directory src to dst, which must not exist.
func (c *copier) copyTree(src, dst string) error {
	info, err := os.Lstat(src)
	if err != nil {
		return err
	}
	if !info.IsDir() {
		return fmt.Errorf("%s is not a directory", src)
	}
	return c.copyEntry(src, dst, info)
}

// chmodBits are the bits of mode that chmod sets.
func chmodBits(mode fs.FileMode) fs.FileMode {
	return mode & (fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
}

func owner(info fs.FileInfo) (uid, gid int, ok bool) {
	st, ok := info.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), int(st.Gid), true
}

func (c *copier) copyEntry(src, dst string, info fs.FileInfo) error {
	if err := c.ctx.Err(); err != nil {
		return err
	}
	switch {
	case info.Mode()&fs.ModeSymlink != 0:
		return c.copySymlink(src, dst, info)
	case info.IsDir():
		return c.copyDir(src, dst, info)
	case info.Mode().IsRegular():
		return c.copyFile(src, dst, info)
	default:
		return nil // sockets, FIFOs and devices hold no data
	}
}

func (c *copier) copyDir(src, dst string, info fs.FileInfo) error {
	// Private and writable while filling; mode and owner come last, so a
	// read-only directory can be filled and chown cannot clear setgid.
	if err := os.Mkdir(dst, 0o700); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		child, err := os.Lstat(filepath.Join(src, e.Name()))
		if c.live && errors.Is(err, fs.ErrNotExist) {
			continue // removed from the volume since ReadDir
		}
		if err != nil {
			return err
		}
		if err := c.copyEntry(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name()), child); err != nil {
			return err
		}
	}
	if uid, gid, ok := owner(info); ok {
		if err := os.Lchown(dst, uid, gid); err != nil {
			return err
		}
	}
	if err := os.Chmod(dst, chmodBits(info.Mode())); err != nil {
		return err
	}
	return os.Chtimes(dst, info.ModTime(), info.ModTime())
}

func (c *copier) copySymlink(src, dst string, info fs.FileInfo) error {
	target, err := os.Readlink(src)
	if c.live && errors.Is(err, fs.ErrNotExist) {
		return nil // removed from the volume
	}
	if err != nil {
		return err
	}
	if err := os.Symlink(target, dst); err != nil {
		return err
	}
	if uid, gid, ok := owner(info); ok {
		return os.Lchown(dst, uid, gid)
	}
	return nil
}

func (c *copier) copyFile(src, dst string, info fs.FileInfo) error {
	in, err := os.Open(src)
	if c.live && errors.Is(err, fs.ErrNotExist) {
		return nil // removed from the volume
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if c.lazy != nil {
		err = c.lazy.seed(src, dst, out, info)
	} else {
		err = c.copyData(in, out)
	}
	if err != nil {
		out.Close()
		return err
	}
	if uid, gid, ok := owner(info); ok {
		if err := out.Chown(uid, gid); err != nil {
			out.Close()
			return err
		}
	}
	if err := out.Chmod(chmodBits(info.Mode())); err != nil { // after chown, which clears setuid
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chtimes(dst, info.ModTime(), info.ModTime())
}

func (c *copier) copyData(in io.Reader, out io.Writer) error {
	buf := *c.buf
	if c.throttle != nil {
		buf = buf[:c.throttle.chunk(len(buf))]
	}
	for {
		if err := c.ctx.Err(); err != nil {
			return err
		}
		n, rerr := in.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				return err
			}
			c.copied += int64(n)
			if c.throttle != nil {
				if err := c.throttle.wait(c.ctx, c.copied); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			return nil
		}
		if rerr != nil {
			return rerr
		}
	}
}
