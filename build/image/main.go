// Command image assembles drillerd's container image without a container
// engine (make image):
//
//	go run ./build/image [-version v0.1.0] [-platforms linux/amd64,linux/arm64] [-out bin/image]
//	go run ./build/image -rootfs DIR -platforms linux/arm64   # the same files into a directory (Dockerfile)
//
// For each platform it cross-compiles drillerd as a static binary
// (CGO_ENABLED=0) and puts it on a base shared by every platform: the host's
// CA bundle and time zone database, the user nonroot (65532) and its home,
// /tmp; no shell. The images run as 65532:65532 with entrypoint
// /usr/local/bin/drillerd and command serve, and carry the
// org.opencontainers.image labels and annotations. They are written as an
// OCI image layout whose index.json names one multi-platform index, tagged
// with the version (crane push bin/image REF; skopeo copy --all
// oci:bin/image:VERSION docker://REF), and the linux/amd64 image as a
// docker-archive tarball (docker load -i). Files, layers and configs are
// dated at the commit's time, so one commit makes one digest.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Options say what to build and where to put it.
type Options struct {
	Root          string // the drillerd repository
	Version       string
	Revision      string
	Created       time.Time
	Source        string
	Repository    string // the docker-archive's image name
	Platforms     []v1.Platform
	CABundle      string
	Zoneinfo      string
	Out           string // OCI layout directory; replaced
	DockerArchive string // docker-archive of the first platform; empty: none
	Rootfs        string // write the first platform's files here instead
}

func main() {
	opts := Options{Root: "."}
	var platforms string
	flag.StringVar(&opts.Version, "version", gitOr("dev", "describe", "--always", "--dirty"), "drillerd's version: main.version and the tag")
	flag.StringVar(&opts.Revision, "revision", gitOr("", "rev-parse", "HEAD"), "the commit built (org.opencontainers.image.revision)")
	flag.StringVar(&opts.Source, "source", "https://github.com/drillerd/drillerd", "org.opencontainers.image.source")
	flag.StringVar(&opts.Repository, "repository", "ghcr.io/drillerd/drillerd", "the image name in the docker-archive")
	flag.StringVar(&platforms, "platforms", "linux/amd64,linux/arm64", "comma-separated os/arch to build")
	flag.StringVar(&opts.CABundle, "ca-bundle", "/etc/ssl/certs/ca-certificates.crt", "CA certificates to include")
	flag.StringVar(&opts.Zoneinfo, "zoneinfo", "/usr/share/zoneinfo", "time zone database to include")
	flag.StringVar(&opts.Out, "out", "bin/image", "OCI image layout to write")
	flag.StringVar(&opts.DockerArchive, "docker-archive", "bin/drillerd-image.tar", "docker-archive tarball of the first platform; empty: none")
	flag.StringVar(&opts.Rootfs, "rootfs", "", "write the first platform's files into this directory instead of an image")
	flag.Parse()
	var err error
	if opts.Platforms, err = parsePlatforms(platforms); err != nil {
		fail(err)
	}
	if opts.Created, err = createdTime(); err != nil {
		fail(err)
	}
	if opts.Rootfs != "" {
		err = WriteRootfs(opts)
	} else {
		err = Build(opts)
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "image: %v\n", err)
	os.Exit(1)
}

func gitOr(fallback string, args ...string) string {
	out, err := exec.Command("git", args...).Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		return fallback
	}
	return strings.TrimSpace(string(out))
}

// createdTime is $SOURCE_DATE_EPOCH, else the commit's time, else the Unix epoch.
func createdTime() (time.Time, error) {
	s := os.Getenv("SOURCE_DATE_EPOCH")
	if s == "" {
		s = gitOr("0", "log", "-1", "--format=%ct")
	}
	sec, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since the Unix epoch", s)
	}
	return time.Unix(sec, 0).UTC(), nil
}

func parsePlatforms(s string) ([]v1.Platform, error) {
	var out []v1.Platform
	for _, p := range strings.Split(s, ",") {
		os, arch, ok := strings.Cut(strings.TrimSpace(p), "/")
		if !ok || os != "linux" || arch == "" {
			return nil, fmt.Errorf("-platforms: %q is not linux/ARCH (e.g. linux/amd64)", p)
		}
		out = append(out, v1.Platform{OS: os, Architecture: arch})
	}
	return out, nil
}

// Labels are the image's org.opencontainers.image labels, also annotated
// on its manifests and index.
func (o Options) Labels() map[string]string {
	l := map[string]string{
		"org.opencontainers.image.title":       "drillerd",
		"org.opencontainers.image.description": "Proves that databases restore from their Kubernetes VolumeSnapshots, and measures RTO and RPO",
		"org.opencontainers.image.source":      o.Source,
		"org.opencontainers.image.url":         o.Source,
		"org.opencontainers.image.version":     o.Version,
		"org.opencontainers.image.created":     o.Created.Format(time.RFC3339),
	}
	if o.Revision != "" {
		l["org.opencontainers.image.revision"] = o.Revision
	}
	return l
}

// buildBinary cross-compiles drillerd for p, as make build does but
// stripped, and returns it.
func buildBinary(o Options, p v1.Platform) ([]byte, error) {
	dir, err := os.MkdirTemp("", "drillerd-image-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	out := filepath.Join(dir, "drillerd")
	cmd := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w -X main.version="+o.Version, "-o", out, "./cmd/drillerd")
	cmd.Dir = o.Root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+p.OS, "GOARCH="+p.Architecture)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("go build for %s/%s: %v\n%s", p.OS, p.Architecture, err, stderr.String())
	}
	return os.ReadFile(out)
}

func binaryEntry(bin []byte) entry {
	return entry{path: binaryPath, mode: 0o755, data: bin}
}

// WriteRootfs writes the first platform's files into o.Rootfs.
func WriteRootfs(o Options) error {
	base, err := baseEntries(o.CABundle, o.Zoneinfo)
	if err != nil {
		return err
	}
	bin, err := buildBinary(o, o.Platforms[0])
	if err != nil {
		return err
	}
	return writeRootfs(o.Rootfs, append(base, binaryEntry(bin)))
}

// Build writes the OCI layout and the docker-archive.
func Build(o Options) error {
	base, err := baseEntries(o.CABundle, o.Zoneinfo)
	if err != nil {
		return err
	}
	baseLayer, err := layer(base, o.Created)
	if err != nil {
		return err
	}
	labels := o.Labels()
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	var first v1.Image
	for _, p := range o.Platforms {
		bin, err := buildBinary(o, p)
		if err != nil {
			return err
		}
		binLayer, err := layer([]entry{binaryEntry(bin)}, o.Created)
		if err != nil {
			return err
		}
		img, err := image(o, p, labels, baseLayer, binLayer)
		if err != nil {
			return fmt.Errorf("assembling the %s/%s image: %w", p.OS, p.Architecture, err)
		}
		if first == nil {
			first = img
		}
		platform := p
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: plainImage{img}, Descriptor: v1.Descriptor{Platform: &platform}})
	}
	idx = mutate.Annotations(idx, labels).(v1.ImageIndex)

	if err := os.RemoveAll(o.Out); err != nil {
		return err
	}
	l, err := layout.Write(o.Out, empty.Index)
	if err != nil {
		return err
	}
	if err := l.AppendIndex(idx, layout.WithAnnotations(map[string]string{"org.opencontainers.image.ref.name": o.Version})); err != nil {
		return fmt.Errorf("writing the OCI layout %s: %w", o.Out, err)
	}
	if o.DockerArchive != "" {
		tag, err := name.NewTag(o.Repository + ":" + tagOf(o.Version))
		if err != nil {
			return fmt.Errorf("-repository %q, -version %q: %w", o.Repository, o.Version, err)
		}
		if err := tarball.WriteToFile(o.DockerArchive, tag, first); err != nil {
			return fmt.Errorf("writing the docker-archive %s: %w", o.DockerArchive, err)
		}
	}
	return nil
}

// plainImage is an image whose descriptor in the index has no artifactType:
// it is an image, not an artifact (go-containerregistry would write the
// config's media type there, which some registries show as an artifact).
type plainImage struct{ v1.Image }

// Descriptor is the image's media type, digest and size.
func (p plainImage) Descriptor() (*v1.Descriptor, error) {
	mt, err := p.MediaType()
	if err != nil {
		return nil, err
	}
	digest, err := p.Digest()
	if err != nil {
		return nil, err
	}
	size, err := p.Size()
	if err != nil {
		return nil, err
	}
	return &v1.Descriptor{MediaType: mt, Digest: digest, Size: size}, nil
}

// tagOf makes a version a valid tag (git describe's + and such become -).
func tagOf(version string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '-' || r == '_' {
			return r
		}
		return '-'
	}, version)
}

func layer(entries []entry, modTime time.Time) (v1.Layer, error) {
	data, err := layerTar(entries, modTime)
	if err != nil {
		return nil, err
	}
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(data)), nil
	}, tarball.WithMediaType(types.OCILayer), tarball.WithCompressedCaching)
}

// image is one platform's image: the base layer, the binary's layer, and
// a config that runs drillerd serve as nonroot.
func image(o Options, p v1.Platform, labels map[string]string, base, bin v1.Layer) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.Append(img,
		mutate.Addendum{Layer: base, MediaType: types.OCILayer, History: v1.History{
			Created: v1.Time{Time: o.Created}, CreatedBy: "build/image: CA certificates, time zones, user nonroot (65532), /tmp",
		}},
		mutate.Addendum{Layer: bin, MediaType: types.OCILayer, History: v1.History{
			Created: v1.Time{Time: o.Created}, CreatedBy: fmt.Sprintf("build/image: drillerd %s for %s/%s (CGO_ENABLED=0)", o.Version, p.OS, p.Architecture),
		}},
	)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.OS, cf.Architecture, cf.Variant = p.OS, p.Architecture, p.Variant
	cf.Created = v1.Time{Time: o.Created}
	cf.Config = v1.Config{
		User:         fmt.Sprintf("%d:%d", uid, uid),
		Entrypoint:   []string{"/" + binaryPath},
		Cmd:          []string{"serve"},
		WorkingDir:   "/",
		Env:          []string{"PATH=/usr/local/bin", "HOME=/" + home, "SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt"},
		ExposedPorts: map[string]struct{}{"8443/tcp": {}, "8080/tcp": {}, "8081/tcp": {}},
		Labels:       labels,
	}
	img, err = mutate.ConfigFile(img, cf)
	if err != nil {
		return nil, err
	}
	annotated, ok := mutate.Annotations(img, labels).(v1.Image)
	if !ok {
		return nil, errors.New("annotating the image")
	}
	return annotated, nil
}
