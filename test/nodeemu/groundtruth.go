package nodeemu

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/drillerd/drillerd/test/nodeemu/lazyfs"
)

// VolumeTruth records what happened to one provisioned volume.
type VolumeTruth struct {
	PersistentVolume string    `json:"persistentVolume"`
	Claim            string    `json:"claim"` // namespace/name
	SnapshotHandle   string    `json:"snapshotHandle,omitempty"`
	ProvisionStarted time.Time `json:"provisionStarted"`
	// Usable is when the volume could be used: for a copy, when its data
	// was complete (the restore finished); for a lazily hydrated volume,
	// when it was mounted, its data still in the snapshot.
	Usable time.Time `json:"usable"`
	// Hydration is what a lazily hydrated volume fetched from its
	// snapshot, and when; nil for a copy.
	Hydration *lazyfs.Stats `json:"hydration,omitempty"`
}

// ProcessTruth records one start of a database process.
type ProcessTruth struct {
	Container string    `json:"container"`
	Started   time.Time `json:"started"`
	// FirstAccepting is when it first accepted connections; zero if never.
	FirstAccepting time.Time `json:"firstAccepting,omitzero"`
	// Reported is when the kubelet learned that it runs (its relist) and
	// so the pod's status came to say Running; zero if never.
	Reported time.Time `json:"reported,omitzero"`
	Exited   time.Time `json:"exited,omitzero"`
	ExitCode int       `json:"exitCode,omitempty"`
}

// PodTruth records what the node did for one pod.
type PodTruth struct {
	Namespace string         `json:"namespace"`
	Name      string         `json:"name"`
	UID       string         `json:"uid"`
	IP        string         `json:"ip"`
	Observed  time.Time      `json:"observed"`
	Processes []ProcessTruth `json:"processes"`
}

type groundTruth struct {
	dir string
	mu  sync.Mutex
}

func newGroundTruth(dir string) (*groundTruth, error) {
	for _, d := range []string{filepath.Join(dir, "volumes"), filepath.Join(dir, "pods")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	return &groundTruth{dir: dir}, nil
}

func (g *groundTruth) writeVolume(v VolumeTruth) error {
	return g.write(filepath.Join(g.dir, "volumes", v.PersistentVolume+".json"), v)
}

func (g *groundTruth) writePod(p PodTruth) error {
	return g.write(filepath.Join(g.dir, "pods", p.Namespace+"_"+p.Name+".json"), p)
}

func (g *groundTruth) write(path string, v any) error {
	g.mu.Lock()
	defer g.mu.Unlock()
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadPodTruth reads the ground truth of a pod from a cluster's ground-truth
// directory.
func ReadPodTruth(dir, namespace, name string) (PodTruth, error) {
	var p PodTruth
	return p, readJSON(filepath.Join(dir, "pods", namespace+"_"+name+".json"), &p)
}

// ReadVolumeTruth reads the ground truth of a provisioned volume.
func ReadVolumeTruth(dir, persistentVolume string) (VolumeTruth, error) {
	var v VolumeTruth
	return v, readJSON(filepath.Join(dir, "volumes", persistentVolume+".json"), &v)
}

func readJSON(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("no ground truth at %s: %w", path, err)
	}
	return json.Unmarshal(data, v)
}

// ListVolumeTruth reads the ground truth of every provisioned volume.
func ListVolumeTruth(dir string) ([]VolumeTruth, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "volumes", "*.json"))
	if err != nil {
		return nil, err
	}
	var out []VolumeTruth
	for _, p := range paths {
		var v VolumeTruth
		if err := readJSON(p, &v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, nil
}
