package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"debug/elf"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net/http/httptest"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

const (
	testVersion  = "v0.0.0-test"
	testRevision = "0123456789abcdef0123456789abcdef01234567"
	testEpoch    = "1790000000" // 2026-09-21T14:13:20Z
)

// builder compiles this command once per test binary.
func builder(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "image")
	out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput()
	if err != nil {
		t.Fatalf("building build/image: %v\n%s", err, out)
	}
	return bin
}

// run runs the command from the repository root, as make image does.
func run(t *testing.T, bin string, args ...string) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = "../.."
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+testEpoch)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build/image %s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// TestImage builds the image for linux/amd64 and linux/arm64 and reads it
// back with nothing but the OCI image layout specification: the layout, the
// index, each platform's config and layers; then runs the drillerd taken out
// of the amd64 image, publishes the layout to a registry as crane push does,
// and checks that a rebuild makes the same digest and that -rootfs (the
// Dockerfile) writes the same files; skopeo, another implementation, reads
// the layout and the docker-archive.
func TestImage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds drillerd for two platforms")
	}
	bin := builder(t)
	dir := t.TempDir()
	out, archive := filepath.Join(dir, "image"), filepath.Join(dir, "drillerd.tar")
	run(t, bin, "-version", testVersion, "-revision", testRevision, "-out", out, "-docker-archive", archive)

	l := readLayout(t, out)
	if len(l.index.Manifests) != 1 || l.index.Manifests[0].MediaType != "application/vnd.oci.image.index.v1+json" ||
		l.index.Manifests[0].Annotations["org.opencontainers.image.ref.name"] != testVersion {
		t.Fatalf("index.json %+v: want one image index named %s", l.index, testVersion)
	}
	var multi ociIndex
	l.json(t, l.index.Manifests[0], &multi)
	if got := multi.Annotations["org.opencontainers.image.version"]; got != testVersion {
		t.Errorf("the index's annotation org.opencontainers.image.version = %q, want %q", got, testVersion)
	}
	var platforms []string
	images := map[string]builtImage{}
	for _, m := range multi.Manifests {
		if m.ArtifactType != "" {
			t.Errorf("the index says manifest %s is an artifact of type %s; want an image", m.Digest, m.ArtifactType)
		}
		p := m.Platform.OS + "/" + m.Platform.Architecture
		platforms = append(platforms, p)
		images[p] = l.image(t, m)
	}
	if want := []string{"linux/amd64", "linux/arm64"}; !reflect.DeepEqual(platforms, want) {
		t.Fatalf("the index holds %v, want %v", platforms, want)
	}

	ca, err := os.ReadFile("/etc/ssl/certs/ca-certificates.crt")
	if err != nil {
		t.Fatal(err)
	}
	for p, img := range images {
		t.Run(p, func(t *testing.T) {
			checkImage(t, p, img, ca)
		})
	}
	if a, b := images["linux/amd64"].layers[0], images["linux/arm64"].layers[0]; a != b {
		t.Errorf("the base layers differ between platforms (%s, %s): want one shared layer", a, b)
	}

	t.Run("drillerd version", func(t *testing.T) {
		exe := filepath.Join(t.TempDir(), "drillerd")
		if err := os.WriteFile(exe, images["linux/amd64"].files[binaryPath].data, 0o755); err != nil {
			t.Fatal(err)
		}
		got, err := exec.Command(exe, "version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(got)) != "drillerd "+testVersion {
			t.Errorf("drillerd version from the image: %q (%v), want %q", got, err, "drillerd "+testVersion)
		}
	})

	t.Run("docker-archive", func(t *testing.T) {
		checkDockerArchive(t, archive, images["linux/amd64"])
	})

	t.Run("push", func(t *testing.T) {
		// As crane push bin/image REF does: the layout's one index, to a registry.
		reg := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
		defer reg.Close()
		idx, err := layout.ImageIndexFromPath(out)
		if err != nil {
			t.Fatal(err)
		}
		desc, err := idx.IndexManifest()
		if err != nil {
			t.Fatal(err)
		}
		multiIdx, err := idx.ImageIndex(desc.Manifests[0].Digest)
		if err != nil {
			t.Fatal(err)
		}
		ref, err := name.ParseReference(strings.TrimPrefix(reg.URL, "http://") + "/drillerd/drillerd:" + testVersion)
		if err != nil {
			t.Fatal(err)
		}
		if err := remote.WriteIndex(ref, multiIdx); err != nil {
			t.Fatalf("pushing the layout's index: %v", err)
		}
		got, err := remote.Head(ref)
		if err != nil {
			t.Fatal(err)
		}
		if got.Digest.String() != l.index.Manifests[0].Digest {
			t.Errorf("the registry holds %s, want the layout's %s", got.Digest, l.index.Manifests[0].Digest)
		}
	})

	t.Run("skopeo", func(t *testing.T) {
		// Another implementation reads the layout and the archive as a
		// publisher would: skopeo copy --all oci:bin/image:VERSION ...
		skopeo, err := exec.LookPath("skopeo")
		if err != nil {
			t.Fatal("skopeo is not installed (make deps installs Debian's skopeo)")
		}
		dest := filepath.Join(t.TempDir(), "copy")
		if got, err := exec.Command(skopeo, "copy", "--all", "oci:"+out+":"+testVersion, "dir:"+dest).CombinedOutput(); err != nil {
			t.Fatalf("skopeo copy --all oci:%s:%s: %v\n%s", out, testVersion, err, got)
		}
		data, err := os.ReadFile(filepath.Join(dest, "manifest.json"))
		if err != nil {
			t.Fatal(err)
		}
		var copied ociIndex
		if err := json.Unmarshal(data, &copied); err != nil {
			t.Fatal(err)
		}
		if manifestDigests(copied) != manifestDigests(multi) {
			t.Errorf("skopeo copied the index of %s, want %s", manifestDigests(copied), manifestDigests(multi))
		}
		for _, ref := range []string{"docker-archive:" + archive, "oci:" + out + ":" + testVersion} {
			got, err := exec.Command(skopeo, "inspect", "--override-os", "linux", "--override-arch", "amd64", ref).Output()
			if err != nil {
				t.Fatalf("skopeo inspect %s: %v", ref, err)
			}
			var info struct {
				Architecture string
				Labels       map[string]string
			}
			if err := json.Unmarshal(got, &info); err != nil {
				t.Fatal(err)
			}
			if info.Architecture != "amd64" || info.Labels["org.opencontainers.image.version"] != testVersion {
				t.Errorf("skopeo inspect %s: architecture %q, version label %q; want amd64, %s", ref, info.Architecture, info.Labels["org.opencontainers.image.version"], testVersion)
			}
		}
	})

	t.Run("reproducible", func(t *testing.T) {
		again := filepath.Join(t.TempDir(), "image")
		run(t, bin, "-version", testVersion, "-revision", testRevision, "-out", again, "-docker-archive", "")
		if d := readLayout(t, again).index.Manifests[0].Digest; d != l.index.Manifests[0].Digest {
			t.Errorf("a second build of the same commit is %s, the first %s: want one digest", d, l.index.Manifests[0].Digest)
		}
	})

	t.Run("rootfs", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "rootfs")
		run(t, bin, "-version", testVersion, "-rootfs", root, "-platforms", "linux/amd64")
		got := readTree(t, root)
		want := images["linux/amd64"].files
		for p, w := range want {
			g, ok := got[p]
			if !ok {
				t.Errorf("-rootfs wrote no %s", p)
				continue
			}
			if os.Geteuid() != 0 {
				g.uid, w.uid = 0, 0
			}
			if g.mode != w.mode || g.uid != w.uid || g.link != w.link || !bytes.Equal(g.data, w.data) {
				t.Errorf("-rootfs %s: mode %v uid %d link %q (%d bytes), the image's: mode %v uid %d link %q (%d bytes)",
					p, g.mode, g.uid, g.link, len(g.data), w.mode, w.uid, w.link, len(w.data))
			}
		}
		for p := range got {
			if _, ok := want[p]; !ok {
				t.Errorf("-rootfs wrote %s, which the image does not hold", p)
			}
		}
	})
}

func checkImage(t *testing.T, platform string, img builtImage, ca []byte) {
	c := img.config
	arch := strings.TrimPrefix(platform, "linux/")
	for _, tc := range []struct {
		what      string
		got, want any
	}{
		{"os/architecture", c.OS + "/" + c.Architecture, platform},
		{"user", c.Config.User, "65532:65532"},
		{"entrypoint", c.Config.Entrypoint, []string{"/usr/local/bin/drillerd"}},
		{"cmd", c.Config.Cmd, []string{"serve"}},
		{"label source", c.Config.Labels["org.opencontainers.image.source"], "https://github.com/drillerd/drillerd"},
		{"label version", c.Config.Labels["org.opencontainers.image.version"], testVersion},
		{"label revision", c.Config.Labels["org.opencontainers.image.revision"], testRevision},
		{"label created", c.Config.Labels["org.opencontainers.image.created"], "2026-09-21T14:13:20Z"},
		{"manifest annotation revision", img.manifest.Annotations["org.opencontainers.image.revision"], testRevision},
		{"layers", len(img.layers), 2},
	} {
		if !reflect.DeepEqual(tc.got, tc.want) {
			t.Errorf("%s = %#v, want %#v", tc.what, tc.got, tc.want)
		}
	}

	for p, f := range img.files {
		base := path.Base(p)
		switch base {
		case "sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish", "busybox", "toybox":
			t.Errorf("the image holds a shell: /%s", p)
		}
		if top := strings.SplitN(p, "/", 2)[0]; top == "bin" || top == "sbin" || strings.HasPrefix(p, "usr/bin") || strings.HasPrefix(p, "usr/sbin") {
			t.Errorf("the image holds /%s: want no system binaries, only /usr/local/bin/drillerd", p)
		}
		if f.mode&(fs.ModeSetuid|fs.ModeSetgid) != 0 {
			t.Errorf("/%s is setuid or setgid", p)
		}
		if f.mode.IsRegular() && f.mode&0o111 != 0 && p != binaryPath {
			t.Errorf("/%s is executable; want only drillerd", p)
		}
	}

	want := map[string]func(f file) error{
		binaryPath: func(f file) error {
			if f.mode != 0o755 {
				return fmt.Errorf("mode %v, want 0755", f.mode)
			}
			return staticELF(f.data, arch)
		},
		"etc/ssl/certs/ca-certificates.crt": func(f file) error {
			if !bytes.Equal(f.data, ca) {
				return fmt.Errorf("differs from the host's CA bundle")
			}
			return nil
		},
		"etc/passwd": func(f file) error {
			if !strings.Contains(string(f.data), "nonroot:x:65532:65532:") {
				return fmt.Errorf("no user nonroot 65532: %q", f.data)
			}
			return nil
		},
		"usr/share/zoneinfo/Europe/Berlin": func(f file) error {
			if !bytes.HasPrefix(f.data, []byte("TZif")) {
				return fmt.Errorf("not a TZif file")
			}
			return nil
		},
		"tmp": func(f file) error {
			if f.mode != fs.ModeDir|fs.ModeSticky|0o777 {
				return fmt.Errorf("mode %v, want drwxrwxrwt", f.mode)
			}
			return nil
		},
		home: func(f file) error {
			if f.uid != uid {
				return fmt.Errorf("owned by %d, want %d", f.uid, uid)
			}
			return nil
		},
	}
	for p, check := range want {
		f, ok := img.files[p]
		if !ok {
			t.Errorf("the image has no /%s", p)
			continue
		}
		if err := check(f); err != nil {
			t.Errorf("/%s: %v", p, err)
		}
	}
}

// staticELF: a Linux executable for arch that loads no shared library.
func staticELF(data []byte, arch string) error {
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return err
	}
	machine := map[string]elf.Machine{"amd64": elf.EM_X86_64, "arm64": elf.EM_AARCH64}[arch]
	if f.Machine != machine {
		return fmt.Errorf("machine %v, want %v", f.Machine, machine)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP || p.Type == elf.PT_DYNAMIC {
			return fmt.Errorf("dynamically linked (program header %v): want CGO_ENABLED=0", p.Type)
		}
	}
	return nil
}

// The OCI image layout, read with the specification alone.

type descriptor struct {
	MediaType    string            `json:"mediaType"`
	ArtifactType string            `json:"artifactType"`
	Digest       string            `json:"digest"`
	Size         int64             `json:"size"`
	Annotations  map[string]string `json:"annotations"`
	Platform     *struct {
		OS           string `json:"os"`
		Architecture string `json:"architecture"`
	} `json:"platform"`
}

type ociIndex struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType"`
	Manifests     []descriptor      `json:"manifests"`
	Annotations   map[string]string `json:"annotations"`
}

type ociManifest struct {
	MediaType   string            `json:"mediaType"`
	Config      descriptor        `json:"config"`
	Layers      []descriptor      `json:"layers"`
	Annotations map[string]string `json:"annotations"`
}

type ociConfig struct {
	OS           string `json:"os"`
	Architecture string `json:"architecture"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
	RootFS struct {
		DiffIDs []string `json:"diff_ids"`
	} `json:"rootfs"`
}

type file struct {
	mode fs.FileMode
	uid  int
	data []byte
	link string
}

// builtImage is one platform's image as read from the layout.
type builtImage struct {
	manifest ociManifest
	config   ociConfig
	layers   []string        // digests
	files    map[string]file // the layers applied in order
}

type ociLayout struct {
	dir   string
	index ociIndex
}

func readLayout(t *testing.T, dir string) ociLayout {
	t.Helper()
	marker, err := os.ReadFile(filepath.Join(dir, "oci-layout"))
	if err != nil || !strings.Contains(string(marker), `"imageLayoutVersion": "1.0.0"`) && !strings.Contains(string(marker), `"imageLayoutVersion":"1.0.0"`) {
		t.Fatalf("%s/oci-layout = %q (%v): not an OCI image layout", dir, marker, err)
	}
	l := ociLayout{dir: dir}
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &l.index); err != nil {
		t.Fatal(err)
	}
	return l
}

// blob reads the blob d names and checks its digest and size.
func (l ociLayout) blob(t *testing.T, d descriptor) []byte {
	t.Helper()
	algo, hexDigest, _ := strings.Cut(d.Digest, ":")
	data, err := os.ReadFile(filepath.Join(l.dir, "blobs", algo, hexDigest))
	if err != nil {
		t.Fatalf("blob %s: %v", d.Digest, err)
	}
	sum := sha256.Sum256(data)
	if algo != "sha256" || hex.EncodeToString(sum[:]) != hexDigest || int64(len(data)) != d.Size {
		t.Fatalf("blob %s: %d bytes, sha256 %x; the descriptor says %d bytes", d.Digest, len(data), sum, d.Size)
	}
	return data
}

func (l ociLayout) json(t *testing.T, d descriptor, v any) {
	t.Helper()
	if err := json.Unmarshal(l.blob(t, d), v); err != nil {
		t.Fatalf("blob %s: %v", d.Digest, err)
	}
}

func (l ociLayout) image(t *testing.T, d descriptor) builtImage {
	t.Helper()
	var img builtImage
	if d.MediaType != "application/vnd.oci.image.manifest.v1+json" {
		t.Fatalf("manifest %s has media type %s, want an OCI image manifest", d.Digest, d.MediaType)
	}
	l.json(t, d, &img.manifest)
	if img.manifest.Config.MediaType != "application/vnd.oci.image.config.v1+json" {
		t.Errorf("config media type %s, want OCI's", img.manifest.Config.MediaType)
	}
	l.json(t, img.manifest.Config, &img.config)
	img.files = map[string]file{}
	for i, layer := range img.manifest.Layers {
		if layer.MediaType != "application/vnd.oci.image.layer.v1.tar+gzip" {
			t.Errorf("layer %s has media type %s, want an OCI gzip layer", layer.Digest, layer.MediaType)
		}
		img.layers = append(img.layers, layer.Digest)
		zr, err := gzip.NewReader(bytes.NewReader(l.blob(t, layer)))
		if err != nil {
			t.Fatal(err)
		}
		raw, err := io.ReadAll(zr)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(raw)
		if i >= len(img.config.RootFS.DiffIDs) || img.config.RootFS.DiffIDs[i] != "sha256:"+hex.EncodeToString(sum[:]) {
			t.Errorf("layer %d's diff ID is not the config's rootfs.diff_ids[%d]", i, i)
		}
		tr := tar.NewReader(bytes.NewReader(raw))
		for {
			h, err := tr.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatal(err)
			}
			data, err := io.ReadAll(tr)
			if err != nil {
				t.Fatal(err)
			}
			img.files[strings.TrimSuffix(path.Clean(h.Name), "/")] = file{mode: h.FileInfo().Mode(), uid: h.Uid, data: data, link: h.Linkname}
		}
	}
	return img
}

// readTree reads a directory as the image's files.
func readTree(t *testing.T, root string) map[string]file {
	t.Helper()
	out := map[string]file{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		f := file{mode: info.Mode()}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			f.uid = int(st.Uid)
		}
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			f.link, err = os.Readlink(p)
		case info.Mode().IsRegular():
			f.data, err = os.ReadFile(p)
		}
		out[filepath.ToSlash(rel)] = f
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// manifestDigests lists an index's platforms and manifests.
func manifestDigests(idx ociIndex) string {
	var out []string
	for _, m := range idx.Manifests {
		p := "?"
		if m.Platform != nil {
			p = m.Platform.OS + "/" + m.Platform.Architecture
		}
		out = append(out, p+"="+m.Digest)
	}
	return strings.Join(out, " ")
}

// checkDockerArchive: docker load's format, tagged with the version, holding
// the amd64 image's config and layers.
func checkDockerArchive(t *testing.T, archive string, amd64 builtImage) {
	f, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	entries := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		entries[h.Name] = data
	}
	var manifest []struct {
		Config   string
		RepoTags []string
		Layers   []string
	}
	if err := json.Unmarshal(entries["manifest.json"], &manifest); err != nil {
		t.Fatalf("manifest.json: %v", err)
	}
	if len(manifest) != 1 || !reflect.DeepEqual(manifest[0].RepoTags, []string{"ghcr.io/drillerd/drillerd:" + testVersion}) {
		t.Fatalf("manifest.json %+v: want one image tagged ghcr.io/drillerd/drillerd:%s", manifest, testVersion)
	}
	sum := sha256.Sum256(entries[manifest[0].Config])
	if "sha256:"+hex.EncodeToString(sum[:]) != amd64.manifest.Config.Digest {
		t.Errorf("the archive's config is not the linux/amd64 image's")
	}
	if len(manifest[0].Layers) != len(amd64.layers) {
		t.Errorf("the archive has %d layers, the image %d", len(manifest[0].Layers), len(amd64.layers))
	}
}
