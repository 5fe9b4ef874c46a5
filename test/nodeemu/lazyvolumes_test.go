package nodeemu

import (
	"bytes"
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"

	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/drillerd/drillerd/test/nodeemu/csistore"
	"github.com/drillerd/drillerd/test/nodeemu/lazyfs"
)

func TestHydrationKnobs(t *testing.T) {
	tests := []struct {
		name                   string
		defaults               Defaults
		parameters, annotation map[string]string
		wantRate, wantBlock    int64
	}{
		{"nothing set: a copy", Defaults{}, nil, nil, 0, 0},
		{"the emulator's defaults", Defaults{HydrateBytesPerSecond: 100, HydrateBlockSize: 8192}, nil, nil, 100, 8192},
		{"the class's parameters win over the defaults", Defaults{HydrateBytesPerSecond: 100},
			map[string]string{ParameterHydrateBytesPerSecond: "200", ParameterHydrateBlockSize: "65536"}, nil, 200, 65536},
		{"the claim's annotations win over the class", Defaults{},
			map[string]string{ParameterHydrateBytesPerSecond: "200"},
			map[string]string{AnnotationHydrateBytesPerSecond: "300", AnnotationHydrateBlockSize: "4096"}, 300, 4096},
		{"an annotation of 0 makes a copy on a lazy class", Defaults{},
			map[string]string{ParameterHydrateBytesPerSecond: "200"}, map[string]string{AnnotationHydrateBytesPerSecond: "0"}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := &Emulator{cfg: Config{Defaults: tt.defaults}}
			class := &storagev1.StorageClass{Parameters: tt.parameters}
			claim := &corev1.PersistentVolumeClaim{ObjectMeta: metav1.ObjectMeta{Annotations: tt.annotation}}
			rate, block := e.hydrationKnobs(class, claim)
			if rate != tt.wantRate || block != tt.wantBlock {
				t.Errorf("rate %d, block size %d; want %d and %d", rate, block, tt.wantRate, tt.wantBlock)
			}
		})
	}
}

// newLazyEmulator is an emulator with only its storage and ground truth,
// and a snapshot "snap" of a volume holding pgdata/base/1/1259.
func newLazyEmulator(t *testing.T) (*Emulator, string, []byte) {
	t.Helper()
	if err := lazyfs.Available(); err != nil {
		t.Fatalf("%v\n(the lazy volume tests mount FUSE filesystems: run them as root on a machine with /dev/fuse)", err)
	}
	dir := t.TempDir()
	store, err := csistore.Open(filepath.Join(dir, CSIStoreDir))
	if err != nil {
		t.Fatal(err)
	}
	truth, err := newGroundTruth(filepath.Join(dir, GroundTruthDir))
	if err != nil {
		t.Fatal(err)
	}
	e := &Emulator{store: store, truth: truth, log: log.New(io.Discard, "", 0), uid: 65534, gid: 65534,
		lazy: lazyVolumes{byID: map[string]*lazyVolume{}}}
	src, err := store.CreateVolume("pvc-src", 65534, 65534)
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("heap page "), 200_000)
	if err := os.MkdirAll(filepath.Join(src, "pgdata", "base", "1"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "pgdata", "base", "1", "1259"), data, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := store.CreateSnapshot(t.Context(), "snap", "pvc-src", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := e.unmountAllLazy(); err != nil {
			t.Error(err)
		}
	})
	return e, dir, data
}

func TestLazyVolumeLifecycle(t *testing.T) {
	e, dir, data := newLazyEmulator(t)
	path, err := e.restoreLazily(t.Context(), "pvc-a", "snap", 1<<40, 64<<10)
	if err != nil {
		t.Fatal(err)
	}
	// A retry of the provisioning finds it mounted, once.
	if again, err := e.restoreLazily(t.Context(), "pvc-a", "snap", 1<<40, 64<<10); err != nil || again != path {
		t.Errorf("restoring again: %s %v, want %s", again, err, path)
	}
	if mounts, err := lazyfs.MountsBelow(dir); err != nil || len(mounts) != 1 || mounts[0] != path {
		t.Fatalf("mounts %v (%v), want %s once", mounts, err, path)
	}

	if err := e.recordVolume(VolumeTruth{PersistentVolume: "pvc-a", Claim: "ns/data"}); err != nil {
		t.Fatal(err)
	}
	truth, err := ReadVolumeTruth(filepath.Join(dir, GroundTruthDir), "pvc-a")
	if err != nil {
		t.Fatal(err)
	}
	if h := truth.Hydration; h == nil || h.LazyBytes != int64(len(data)) || h.FetchedBytes != 0 {
		t.Fatalf("ground truth at provisioning: %+v, want %d bytes to fetch, none fetched", h, len(data))
	}

	got, err := os.ReadFile(filepath.Join(path, "pgdata", "base", "1", "1259"))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("reading the volume: %v; its data: %v", err, bytes.Equal(got, data))
	}
	// The ground truth follows the hydration, and ends with the unmount.
	for _, v := range e.lazyList() {
		if err := e.writeHydration(v, false); err != nil {
			t.Fatal(err)
		}
	}
	truth, _ = ReadVolumeTruth(filepath.Join(dir, GroundTruthDir), "pvc-a")
	if h := truth.Hydration; h.FetchedBytes != int64(len(data)) || !h.Unmounted.IsZero() {
		t.Errorf("ground truth while mounted: fetched %d, unmounted %v; want all %d fetched, still mounted", h.FetchedBytes, h.Unmounted, len(data))
	}
	if err := e.unmountAllLazy(); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := lazyfs.MountsBelow(dir); len(mounts) != 0 {
		t.Errorf("mounted after the emulator unmounted everything: %v", mounts)
	}
	truth, _ = ReadVolumeTruth(filepath.Join(dir, GroundTruthDir), "pvc-a")
	if h := truth.Hydration; h.Unmounted.IsZero() || truth.Claim != "ns/data" {
		t.Errorf("final ground truth %+v does not record the unmount", truth)
	}
	if err := e.store.DeleteVolume("pvc-a"); err != nil {
		t.Errorf("deleting the unmounted volume: %v", err)
	}
}

func TestAbandonedLazyVolumeIsRemoved(t *testing.T) {
	e, dir, _ := newLazyEmulator(t)
	if _, err := e.restoreLazily(t.Context(), "pvc-b", "snap", 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := e.abandonLazy("pvc-b"); err != nil {
		t.Fatal(err)
	}
	if mounts, _ := lazyfs.MountsBelow(dir); len(mounts) != 0 {
		t.Errorf("an abandoned volume is still mounted: %v", mounts)
	}
	if _, ok, err := e.store.LazyVolume("pvc-b"); ok || err != nil {
		t.Errorf("an abandoned volume is still there (%v)", err)
	}
	if _, err := ReadVolumeTruth(filepath.Join(dir, GroundTruthDir), "pvc-b"); err == nil {
		t.Errorf("a volume that was never provisioned has ground truth")
	}
	if err := e.abandonLazy("pvc-never"); err != nil {
		t.Errorf("abandoning a volume that is not lazy: %v", err)
	}
}
