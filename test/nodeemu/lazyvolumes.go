package nodeemu

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"

	"github.com/drillerd/drillerd/test/nodeemu/lazyfs"
)

// Lazy hydration: a claim restored from a snapshot with a hydration rate is
// provisioned without copying the snapshot's data, as cloud block storage
// restores a volume (EBS, GCE PD): the volume is usable at once, and each
// block is fetched from the snapshot the first time it is read, at that
// rate for the volume, then read at full speed (package lazyfs, a FUSE
// filesystem mounted on the volume's directory). The volume's ground truth
// records what was fetched and when (VolumeTruth.Hydration).
const (
	// AnnotationHydrateBytesPerSecond on a PVC restored from a snapshot
	// makes its volume lazily hydrated, its first reads of each block
	// limited to this many bytes per second for the volume.
	AnnotationHydrateBytesPerSecond = annotationPrefix + "hydrate-bytes-per-second"
	// AnnotationHydrateBlockSize on such a PVC sets the hydration
	// granularity in bytes (default lazyfs.DefaultBlockSize, 512 KiB).
	AnnotationHydrateBlockSize = annotationPrefix + "hydrate-block-size"
	// ParameterHydrateBytesPerSecond and ParameterHydrateBlockSize are
	// the same knobs as StorageClass parameters.
	ParameterHydrateBytesPerSecond = "hydrateBytesPerSecond"
	ParameterHydrateBlockSize      = "hydrateBlockSize"
)

// hydrationTruthPeriod is how often the ground truth of a lazy volume is
// rewritten while its hydration goes on; it is written once more when the
// volume is unmounted.
const hydrationTruthPeriod = time.Second

// lazyVolumes are the lazy volumes this emulator has mounted, by volume id.
type lazyVolumes struct {
	mu   sync.Mutex
	byID map[string]*lazyVolume
}

type lazyVolume struct {
	fs *lazyfs.Volume

	mu      sync.Mutex
	truth   *VolumeTruth // once provisioned
	written uint64       // the stats' generation last written
}

// hydrationKnobs reads the hydration rate and block size of a claim of
// class; a rate of zero means a full copy.
func (e *Emulator) hydrationKnobs(class *storagev1.StorageClass, claim *corev1.PersistentVolumeClaim) (rate, blockSize int64) {
	rate = int64Knob(class.Parameters, ParameterHydrateBytesPerSecond, e.cfg.Defaults.HydrateBytesPerSecond)
	rate = int64Knob(claim.Annotations, AnnotationHydrateBytesPerSecond, rate)
	blockSize = int64Knob(class.Parameters, ParameterHydrateBlockSize, e.cfg.Defaults.HydrateBlockSize)
	blockSize = int64Knob(claim.Annotations, AnnotationHydrateBlockSize, blockSize)
	return rate, blockSize
}

// restoreLazily provisions volume id from snapshot handle without copying
// its data and mounts it; it returns the volume's path. A volume that
// cannot be mounted is removed again, so nothing uses its empty directory.
func (e *Emulator) restoreLazily(ctx context.Context, id, handle string, rate, blockSize int64) (string, error) {
	e.lazy.mu.Lock()
	v, ok := e.lazy.byID[id]
	e.lazy.mu.Unlock()
	if ok {
		return v.fs.MountPoint(), nil
	}
	lv, err := e.store.CloneVolumeLazy(ctx, id, handle, int(e.uid), int(e.gid))
	if err != nil {
		return "", err
	}
	files := make([]lazyfs.File, len(lv.Files))
	var bytes int64
	for i, f := range lv.Files {
		files[i] = lazyfs.File{Ino: f.Ino, Path: f.Path, Size: f.Size, Source: f.Source}
		bytes += f.Size
	}
	vol, err := lazyfs.Mount(lv.MountPoint, lazyfs.Backing{Upper: lv.Upper, Files: files},
		lazyfs.Options{BlockSize: blockSize, BytesPerSecond: rate, Name: id, Log: e.log})
	if err != nil {
		if derr := e.store.DeleteVolume(id); derr != nil {
			err = errors.Join(err, derr)
		}
		return "", err
	}
	e.lazy.mu.Lock()
	e.lazy.byID[id] = &lazyVolume{fs: vol}
	e.lazy.mu.Unlock()
	e.log.Printf("volume %s restored lazily from snapshot %s: %d files, %d bytes to hydrate at %d bytes/s in blocks of %d",
		id, handle, len(files), bytes, rate, vol.Stats().BlockSize)
	return lv.MountPoint, nil
}

// abandonLazy unmounts and removes lazy volume id, whose PV could not be
// created: nothing stays mounted for a claim that may be gone by the
// retry, which restores it anew (lazily, that costs no copy).
func (e *Emulator) abandonLazy(id string) error {
	e.lazy.mu.Lock()
	_, ok := e.lazy.byID[id]
	e.lazy.mu.Unlock()
	if !ok {
		return nil
	}
	if err := e.unmountLazy(id); err != nil {
		return err
	}
	return e.store.DeleteVolume(id)
}

// recordVolume writes the ground truth of a provisioned volume, with the
// hydration of a lazy one (rewritten as it goes on).
func (e *Emulator) recordVolume(truth VolumeTruth) error {
	e.lazy.mu.Lock()
	v, ok := e.lazy.byID[truth.PersistentVolume]
	e.lazy.mu.Unlock()
	if !ok {
		return e.truth.writeVolume(truth)
	}
	v.mu.Lock()
	v.truth = &truth
	v.mu.Unlock()
	return e.writeHydration(v, true)
}

// writeHydration writes a lazy volume's ground truth when its hydration
// changed since the last write, or always with force.
func (e *Emulator) writeHydration(v *lazyVolume, force bool) error {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.truth == nil {
		return nil // not provisioned (yet)
	}
	stats, generation, changed := v.fs.StatsSince(v.written)
	if !changed && !force {
		return nil
	}
	truth := *v.truth
	truth.Hydration = &stats
	if err := e.truth.writeVolume(truth); err != nil {
		return err
	}
	v.written = generation
	return nil
}

// recordHydration rewrites the ground truth of lazy volumes whose
// hydration goes on, until ctx ends.
func (e *Emulator) recordHydration(ctx context.Context) error {
	tick := time.NewTicker(hydrationTruthPeriod)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
		for _, v := range e.lazyList() {
			if err := e.writeHydration(v, false); err != nil {
				e.log.Printf("ground truth of a lazy volume: %v", err)
			}
		}
	}
}

func (e *Emulator) lazyList() []*lazyVolume {
	e.lazy.mu.Lock()
	defer e.lazy.mu.Unlock()
	ids := make([]string, 0, len(e.lazy.byID))
	for id := range e.lazy.byID {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	out := make([]*lazyVolume, len(ids))
	for i, id := range ids {
		out[i] = e.lazy.byID[id]
	}
	return out
}

// unmountLazy unmounts lazy volume id, if this emulator mounted it, and
// writes its final ground truth. Should the mount survive a failed
// unmount, csistore refuses to delete the volume.
func (e *Emulator) unmountLazy(id string) error {
	e.lazy.mu.Lock()
	v, ok := e.lazy.byID[id]
	delete(e.lazy.byID, id)
	e.lazy.mu.Unlock()
	if !ok {
		return nil
	}
	err := v.fs.Unmount()
	if werr := e.writeHydration(v, true); werr != nil {
		e.log.Printf("ground truth of lazy volume %s: %v", id, werr)
	}
	if err != nil {
		return fmt.Errorf("unmounting lazy volume %s: %w", id, err)
	}
	st := v.fs.Stats()
	e.log.Printf("unmounted lazy volume %s: %d of %d bytes fetched, %d overwritten, %d never needed", id, st.FetchedBytes, st.LazyBytes, st.OverwrittenBytes, st.PendingBytes)
	return nil
}

// unmountAllLazy unmounts every lazy volume: the emulator is stopping and
// nothing may stay mounted after it.
func (e *Emulator) unmountAllLazy() error {
	e.lazy.mu.Lock()
	ids := make([]string, 0, len(e.lazy.byID))
	for id := range e.lazy.byID {
		ids = append(ids, id)
	}
	e.lazy.mu.Unlock()
	var errs []error
	for _, id := range ids {
		if err := e.unmountLazy(id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
