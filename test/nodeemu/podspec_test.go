package nodeemu

import (
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"

	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
)

func TestMountTableTranslatesContainerPaths(t *testing.T) {
	table := newMountTable("/node/pods/u1/rootfs/postgres", []mount{
		{containerPath: "/var/lib/postgresql/data", hostPath: "/node/csi/volumes/pvc-1"},
		{containerPath: "/etc/drillerd", hostPath: "/node/pods/u1/volumes/hba"},
		{containerPath: "/var/lib/postgresql/data/conf", hostPath: "/node/pods/u1/volumes/conf"},
	})
	tests := []struct {
		name, given, want string
	}{
		{"mount point itself", "/var/lib/postgresql/data", "/node/csi/volumes/pvc-1"},
		{"below a mount", "/var/lib/postgresql/data/pgdata", "/node/csi/volumes/pvc-1/pgdata"},
		{"longest mount wins", "/var/lib/postgresql/data/conf/x.conf", "/node/pods/u1/volumes/conf/x.conf"},
		{"prefix of a name is not a mount", "/var/lib/postgresql/database", "/node/pods/u1/rootfs/postgres/var/lib/postgresql/database"},
		{"unmounted path lands in the container root", "/tmp/x", "/node/pods/u1/rootfs/postgres/tmp/x"},
		{"dot-dot cannot escape", "/etc/drillerd/../../root", "/node/pods/u1/rootfs/postgres/root"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := table.hostPath(tt.given); got != tt.want {
				t.Errorf("hostPath(%q) = %q, want %q", tt.given, got, tt.want)
			}
		})
	}

	args := []struct{ given, want string }{
		{"hba_file=/etc/drillerd/pg_hba.conf", "hba_file=/node/pods/u1/volumes/hba/pg_hba.conf"},
		{"/etc/drillerd/postgresql.conf", "/node/pods/u1/volumes/hba/postgresql.conf"},
		{"max_connections=20", "max_connections=20"},
		{"-c", "-c"},
	}
	for _, a := range args {
		if got := table.translateArg(a.given); got != a.want {
			t.Errorf("translateArg(%q) = %q, want %q", a.given, got, a.want)
		}
	}
}

func TestServerArgsAcceptOnlyThePostgresEntrypoint(t *testing.T) {
	tests := []struct {
		name    string
		command []string
		args    []string
		want    []string
		wantErr bool
	}{
		{name: "image default", want: nil},
		{name: "args only", args: []string{"-c", "fsync=off"}, want: []string{"-c", "fsync=off"}},
		{name: "postgres as first arg", args: []string{"postgres", "-c", "port=5433"}, want: []string{"-c", "port=5433"}},
		{name: "entrypoint command", command: []string{"docker-entrypoint.sh"}, args: []string{"postgres", "-p", "6000"}, want: []string{"-p", "6000"}},
		{name: "absolute postgres command", command: []string{"/usr/lib/postgresql/16/bin/postgres"}, args: []string{"-c", "x=1"}, want: []string{"-c", "x=1"}},
		{name: "env reference expanded", args: []string{"-c", "work_mem=$(WORK_MEM)"}, want: []string{"-c", "work_mem=4MB"}},
		{name: "shell command refused", command: []string{"sh", "-c", "sleep 1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := serverArgs(&corev1.Container{Command: tt.command, Args: tt.args}, map[string]string{"WORK_MEM": "4MB"})
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, wantErr %v", err, tt.wantErr)
			}
			if !tt.wantErr && !slices.Equal(got, tt.want) {
				t.Errorf("serverArgs = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestServerPort(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want int
	}{
		{"default", nil, nil, 5432},
		{"PGPORT", nil, map[string]string{"PGPORT": "6543"}, 6543},
		{"-p", []string{"-p", "7000"}, nil, 7000},
		{"-c port=", []string{"-c", "port=7001"}, map[string]string{"PGPORT": "6543"}, 7001},
		{"--port=", []string{"--port=7002"}, nil, 7002},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := serverPort(tt.args, tt.env); got != tt.want {
				t.Errorf("serverPort = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestExpand(t *testing.T) {
	env := map[string]string{"A": "1", "B": "two"}
	tests := []struct{ given, want string }{
		{"plain", "plain"},
		{"$(A)-$(B)", "1-two"},
		{"$(MISSING)", "$(MISSING)"},
		{"$$(A)", "$(A)"},
		{"$(A", "$(A"},
	}
	for _, tt := range tests {
		if got := expand(tt.given, env); got != tt.want {
			t.Errorf("expand(%q) = %q, want %q", tt.given, got, tt.want)
		}
	}
}

// The csi-snapshotter's rule for when a deleted content's physical snapshot
// may go: never while a CreateSnapshot call may still be in flight.
func TestShouldDeleteFollowsTheSidecar(t *testing.T) {
	now := metav1.Now()
	tests := []struct {
		name    string
		content *snapshotv1.VolumeSnapshotContent
		want    bool
	}{
		{"not deleted", newContent().Result(), false},
		{"deleted, unbound pre-provisioned", newContent().Deleted(now).PreProvisioned("h").Result(), true},
		{"deleted, bound pre-provisioned without annotation", newContent().Deleted(now).PreProvisioned("h").BoundTo("uid").Result(), false},
		{"deleted by the snapshot controller", newContent().Deleted(now).Annotated(annVolumeSnapshotBeingDeleted).Result(), true},
		{"deleted while being created", newContent().Deleted(now).Annotated(annVolumeSnapshotBeingDeleted).Annotated(annVolumeSnapshotBeingCreated).Result(), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := shouldDelete(tt.content); got != tt.want {
				t.Errorf("shouldDelete = %v, want %v", got, tt.want)
			}
		})
	}
}

type contentBuilder struct {
	c *snapshotv1.VolumeSnapshotContent
}

func newContent() *contentBuilder {
	return &contentBuilder{c: &snapshotv1.VolumeSnapshotContent{
		ObjectMeta: metav1.ObjectMeta{Name: "content"},
		Spec:       snapshotv1.VolumeSnapshotContentSpec{Driver: DriverName, Source: snapshotv1.VolumeSnapshotContentSource{VolumeHandle: ptr.To("pvc-1")}},
	}}
}

func (b *contentBuilder) Deleted(at metav1.Time) *contentBuilder {
	b.c.DeletionTimestamp = &at
	return b
}
func (b *contentBuilder) PreProvisioned(handle string) *contentBuilder {
	b.c.Spec.Source = snapshotv1.VolumeSnapshotContentSource{SnapshotHandle: ptr.To(handle)}
	return b
}
func (b *contentBuilder) BoundTo(uid string) *contentBuilder {
	b.c.Spec.VolumeSnapshotRef.UID = types.UID(uid)
	return b
}
func (b *contentBuilder) Annotated(key string) *contentBuilder {
	metav1.SetMetaDataAnnotation(&b.c.ObjectMeta, key, "yes")
	return b
}
func (b *contentBuilder) Result() *snapshotv1.VolumeSnapshotContent { return b.c }

// TestFileVolumesAsTheKubeletWritesThem: modes from items and defaultMode,
// files owned by root, and an fsGroup's group with group read added, so
// that a server whose process has the fsGroup reads a root-owned key of
// mode 0640, which PostgreSQL accepts.
func TestFileVolumesAsTheKubeletWritesThem(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the kubelet's owner is root: needs root to chown")
	}
	data := map[string][]byte{"tls.key": []byte("key"), "tls.crt": []byte("crt")}
	tests := []struct {
		name        string
		volume      fileVolume
		items       []corev1.KeyToPath
		wantFiles   map[string]os.FileMode // path → mode
		wantGroup   uint32
		wantDirMode os.FileMode // of subdirectories
	}{
		{"no defaultMode, no fsGroup: 0644 root:root", fileVolume{}, nil,
			map[string]os.FileMode{"tls.key": 0o644, "tls.crt": 0o644}, 0, 0},
		{"defaultMode 0640 without fsGroup: root:root, unreadable to the server", fileVolume{defaultMode: ptr.To[int32](0o640)}, nil,
			map[string]os.FileMode{"tls.key": 0o640, "tls.crt": 0o640}, 0, 0},
		{"defaultMode 0640 with fsGroup: root:fsGroup 0640", fileVolume{defaultMode: ptr.To[int32](0o640), fsGroup: ptr.To[int64](999)}, nil,
			map[string]os.FileMode{"tls.key": 0o640, "tls.crt": 0o640}, 999, 0},
		{"defaultMode 0600 with fsGroup gains group read", fileVolume{defaultMode: ptr.To[int32](0o600), fsGroup: ptr.To[int64](999)}, nil,
			map[string]os.FileMode{"tls.key": 0o640, "tls.crt": 0o640}, 999, 0},
		{"the default 0644 with fsGroup stays world-readable", fileVolume{fsGroup: ptr.To[int64](999)}, nil,
			map[string]os.FileMode{"tls.key": 0o644, "tls.crt": 0o644}, 999, 0},
		{"items: their paths and modes, others left out", fileVolume{defaultMode: ptr.To[int32](0o644), fsGroup: ptr.To[int64](70)},
			[]corev1.KeyToPath{{Key: "tls.key", Path: "private/server.key", Mode: ptr.To[int32](0o400)}, {Key: "missing", Path: "x"}},
			map[string]os.FileMode{"private/server.key": 0o440}, 70, os.ModeDir | os.ModeSetgid | 0o755},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "volume")
			if err := tt.volume.writeFiles(dir, data, tt.items); err != nil {
				t.Fatal(err)
			}
			var got []string
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil || p == dir {
					return err
				}
				rel, _ := filepath.Rel(dir, p)
				info, err := os.Lstat(p)
				if err != nil {
					return err
				}
				st := info.Sys().(*syscall.Stat_t)
				if st.Uid != 0 || st.Gid != tt.wantGroup {
					t.Errorf("%s owned by %d:%d, want 0:%d", rel, st.Uid, st.Gid, tt.wantGroup)
				}
				if d.IsDir() {
					if info.Mode() != tt.wantDirMode {
						t.Errorf("directory %s has mode %v, want %v", rel, info.Mode(), tt.wantDirMode)
					}
					return nil
				}
				got = append(got, rel)
				if want, ok := tt.wantFiles[rel]; !ok || info.Mode() != want {
					t.Errorf("%s has mode %v, want %v (expected: %v)", rel, info.Mode(), want, ok)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.wantFiles) {
				t.Errorf("files %v, want %v", got, tt.wantFiles)
			}
		})
	}
}

func TestPodGroups(t *testing.T) {
	pod := &corev1.Pod{Spec: corev1.PodSpec{SecurityContext: &corev1.PodSecurityContext{FSGroup: ptr.To[int64](999), SupplementalGroups: []int64{5, 6}}}}
	if got := podGroups(pod); !slices.Equal(got, []uint32{999, 5, 6}) {
		t.Errorf("podGroups = %v, want the fsGroup and the supplemental groups", got)
	}
	if got := podGroups(&corev1.Pod{}); len(got) != 0 {
		t.Errorf("podGroups without a security context = %v", got)
	}
}
