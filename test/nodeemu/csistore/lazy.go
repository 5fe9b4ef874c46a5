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
	"syscall"
)

// A volume restored lazily copies no data: its tree is built with every
// file at its size but holding none of its data (a sparse file), and a
// filesystem mounted at the volume's directory fetches each file's data
// from the snapshot when it is first needed (package lazyfs). Its backing
// directory:
//
//	lazy/<id>/upper/        the volume's tree, as the mount presents it
//	lazy/<id>/lower/<ino>   the snapshot's data of the upper file with inode <ino>: a hard
//	                        link to the snapshot's file, so the data outlives the snapshot
//	lazy/<id>/files.json    the manifest: each such file's inode, path, size and source
//
// The backing directory is built in a .partial directory and renamed into
// place like any volume; the volume's directory (volumes/<id>) is then an
// empty mount point, useless until the filesystem is mounted there.

const (
	lazyDir      = "lazy"
	lazyUpper    = "upper"
	lazyLower    = "lower"
	lazyManifest = "files.json"
)

// ErrNotLazy is returned for a lazy restore of a volume that exists,
// restored in full.
var ErrNotLazy = errors.New("volume exists and was not restored lazily")

// LazyFile is a file of a lazily restored volume whose data is still only
// in the snapshot.
type LazyFile struct {
	// Ino is its inode number in the upper tree.
	Ino uint64 `json:"ino"`
	// Path is where it is in the volume.
	Path string `json:"path"`
	// Size is how many bytes it has in the snapshot.
	Size int64 `json:"size"`
	// Source holds its data: an absolute path in a LazyVolume, relative
	// to the backing directory in the manifest.
	Source string `json:"source"`
}

// LazyVolume is a volume restored lazily.
type LazyVolume struct {
	ID             string
	SnapshotHandle string
	// MountPoint is the volume's directory: a filesystem presenting
	// Upper must be mounted there before the volume is used.
	MountPoint string
	// Upper is the volume's tree.
	Upper string
	// Files are the files whose data is still in the snapshot.
	Files []LazyFile
}

type lazyManifestFile struct {
	SnapshotHandle string     `json:"snapshotHandle"`
	Files          []LazyFile `json:"files"`
}

func (s *Store) lazyBacking(id string) string { return filepath.Join(s.root, lazyDir, id) }

// CloneVolumeLazy restores volume id from snapshot snapshotHandle without
// copying its data: see the layout above. The volume's top directory is
// owned by uid/gid; everything inside keeps the snapshot's ownership, mode
// and times. An existing lazy volume is returned as it is; a volume
// restored in full yields ErrNotLazy, an unknown handle ErrSnapshotNotFound.
func (s *Store) CloneVolumeLazy(ctx context.Context, id, snapshotHandle string, uid, gid int) (LazyVolume, error) {
	if err := validateName("volume id", id); err != nil {
		return LazyVolume{}, err
	}
	if err := validateName("snapshot handle", snapshotHandle); err != nil {
		return LazyVolume{}, err
	}
	defer s.lockVolume(id)()
	fail := func(err error) (LazyVolume, error) {
		return LazyVolume{}, fmt.Errorf("csistore: restoring volume %s lazily from snapshot %s: %w", id, snapshotHandle, err)
	}
	if v, ok, err := s.readLazyVolume(id); ok || err != nil {
		if err == nil {
			err = s.ensureMountPoint(id)
		}
		return v, err
	}
	if ok, err := isDir(s.volumeDir(id)); ok || err != nil {
		if err == nil {
			err = ErrNotLazy
		}
		return fail(err)
	}
	defer s.lockSnapshot(snapshotHandle, true)()
	data := filepath.Join(s.snapshotDir(snapshotHandle), snapshotData)
	switch ok, err := isDir(data); {
	case err != nil:
		return fail(err)
	case !ok:
		return fail(ErrSnapshotNotFound)
	}
	backing := s.lazyBacking(id)
	tmp := s.partialName(backing)
	if err := os.RemoveAll(tmp); err != nil {
		return fail(err)
	}
	err := func() error {
		if err := os.Mkdir(tmp, 0o700); err != nil {
			return err
		}
		seeder := &lazySeeder{upper: filepath.Join(tmp, lazyUpper), lower: filepath.Join(tmp, lazyLower)}
		if err := os.Mkdir(seeder.lower, 0o700); err != nil {
			return err
		}
		c := newCopier(ctx, false)
		defer c.release()
		c.lazy = seeder
		if err := c.copyTree(data, seeder.upper); err != nil {
			return err
		}
		info, err := os.Stat(seeder.upper)
		if err != nil {
			return err
		}
		if err := os.Chown(seeder.upper, uid, gid); err != nil {
			return err
		}
		if err := os.Chmod(seeder.upper, chmodBits(info.Mode())); err != nil {
			return err
		}
		// Database processes run unprivileged and must reach the tree
		// the mount presents; the snapshot's data stays private.
		if err := os.Chmod(tmp, 0o755); err != nil {
			return err
		}
		manifest, err := json.MarshalIndent(lazyManifestFile{SnapshotHandle: snapshotHandle, Files: seeder.files}, "", "  ")
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(tmp, lazyManifest), append(manifest, '\n'), 0o644)
	}()
	if err == nil {
		_, err = publish(tmp, backing)
	}
	if err == nil {
		err = s.ensureMountPoint(id)
	}
	if err != nil {
		_ = os.RemoveAll(tmp)
		return fail(err)
	}
	v, _, err := s.readLazyVolume(id)
	return v, err
}

// ensureMountPoint makes the empty directory a lazy volume is mounted on.
func (s *Store) ensureMountPoint(id string) error {
	err := os.Mkdir(s.volumeDir(id), 0o755)
	if errors.Is(err, fs.ErrExist) {
		return nil
	}
	return err
}

// LazyVolume returns volume id if it was restored lazily.
func (s *Store) LazyVolume(id string) (LazyVolume, bool, error) {
	if err := validateName("volume id", id); err != nil {
		return LazyVolume{}, false, err
	}
	return s.readLazyVolume(id)
}

func (s *Store) readLazyVolume(id string) (LazyVolume, bool, error) {
	backing := s.lazyBacking(id)
	data, err := os.ReadFile(filepath.Join(backing, lazyManifest))
	if errors.Is(err, fs.ErrNotExist) {
		return LazyVolume{}, false, nil
	}
	if err != nil {
		return LazyVolume{}, false, fmt.Errorf("csistore: lazy volume %s: %w", id, err)
	}
	var m lazyManifestFile
	if err := json.Unmarshal(data, &m); err != nil {
		return LazyVolume{}, false, fmt.Errorf("csistore: lazy volume %s: %s: %w", id, lazyManifest, err)
	}
	v := LazyVolume{ID: id, SnapshotHandle: m.SnapshotHandle, MountPoint: s.volumeDir(id), Upper: filepath.Join(backing, lazyUpper), Files: m.Files}
	for i := range v.Files {
		v.Files[i].Source = filepath.Join(backing, v.Files[i].Source)
	}
	return v, true, nil
}

// isMountPoint reports whether something is mounted on dir: it is on
// another device than its parent, or cannot even be looked at (a
// filesystem whose server is gone).
func isMountPoint(dir string) (bool, error) {
	var st, parent syscall.Stat_t
	if err := syscall.Lstat(dir, &st); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		if errors.Is(err, syscall.ENOTCONN) {
			return true, nil
		}
		return false, err
	}
	if err := syscall.Lstat(filepath.Dir(dir), &parent); err != nil {
		return false, err
	}
	return st.Dev != parent.Dev, nil
}

// lazySeeder builds the upper and lower trees of a lazy volume: the copier
// hands it each regular file it would copy.
type lazySeeder struct {
	upper, lower string
	files        []LazyFile
}

// seed makes out, the upper file at dst, a sparse file of src's size and
// links src into the lower tree under out's inode number.
func (l *lazySeeder) seed(src, dst string, out *os.File, info fs.FileInfo) error {
	size := info.Size()
	if size == 0 {
		return nil // nothing to fetch
	}
	if err := out.Truncate(size); err != nil {
		return err
	}
	var st syscall.Stat_t
	if err := syscall.Fstat(int(out.Fd()), &st); err != nil {
		return err
	}
	name := strconv.FormatUint(st.Ino, 10)
	if err := os.Link(src, filepath.Join(l.lower, name)); err != nil {
		// Another filesystem, or links refused: keep a copy instead.
		if err := copyPlain(src, filepath.Join(l.lower, name)); err != nil {
			return err
		}
	}
	rel, err := filepath.Rel(l.upper, dst)
	if err != nil {
		return err
	}
	l.files = append(l.files, LazyFile{Ino: st.Ino, Path: rel, Size: size, Source: filepath.Join(lazyLower, name)})
	return nil
}

// copyPlain copies the data of file src to a new private file dst.
func copyPlain(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
