package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// The user drillerd runs as: distroless's nonroot.
const (
	uid  = 65532
	home = "home/nonroot"
)

// binaryPath is where the image holds drillerd; its entrypoint.
const binaryPath = "usr/local/bin/drillerd"

// An entry is one file, directory or symbolic link of the image, by its
// path without the leading slash.
type entry struct {
	path string
	mode fs.FileMode // permissions, with fs.ModeDir or fs.ModeSymlink
	uid  int
	data []byte
	link string
}

// baseEntries are the files every platform shares: the CA bundle, the time
// zones (drillerd's schedules and freshness queries name IANA zones), the
// user and group nonroot, its home and /tmp. No shell, no package manager.
func baseEntries(caBundle, zoneinfo string) ([]entry, error) {
	ca, err := os.ReadFile(caBundle)
	if err != nil {
		return nil, fmt.Errorf("reading the CA bundle: %w (Debian: apt-get install ca-certificates)", err)
	}
	entries := []entry{
		{path: "etc", mode: fs.ModeDir | 0o755},
		{path: "etc/passwd", mode: 0o644, data: []byte("root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n")},
		{path: "etc/group", mode: 0o644, data: []byte("root:x:0:\nnonroot:x:65532:\n")},
		{path: "etc/nsswitch.conf", mode: 0o644, data: []byte("hosts: files dns\n")},
		{path: "etc/ssl", mode: fs.ModeDir | 0o755},
		{path: "etc/ssl/certs", mode: fs.ModeDir | 0o755},
		{path: "etc/ssl/certs/ca-certificates.crt", mode: 0o644, data: ca},
		{path: "home", mode: fs.ModeDir | 0o755},
		{path: home, mode: fs.ModeDir | 0o700, uid: uid},
		{path: "tmp", mode: fs.ModeDir | fs.ModeSticky | 0o777},
		{path: "usr", mode: fs.ModeDir | 0o755},
		{path: "usr/local", mode: fs.ModeDir | 0o755},
		{path: "usr/local/bin", mode: fs.ModeDir | 0o755},
		{path: "usr/share", mode: fs.ModeDir | 0o755},
	}
	zones, err := zoneEntries(zoneinfo)
	if err != nil {
		return nil, err
	}
	return append(entries, zones...), nil
}

// zoneEntries copies the time zone database under usr/share/zoneinfo,
// without links that leave it (Debian's localtime points to /etc).
func zoneEntries(root string) ([]entry, error) {
	if _, err := os.Stat(filepath.Join(root, "Europe", "Berlin")); err != nil {
		return nil, fmt.Errorf("no time zone database in %s: %w (Debian: apt-get install tzdata)", root, err)
	}
	var out []entry
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := path.Join("usr/share/zoneinfo", filepath.ToSlash(rel))
		if rel == "." {
			name = "usr/share/zoneinfo"
		}
		switch {
		case d.IsDir():
			out = append(out, entry{path: name, mode: fs.ModeDir | 0o755})
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			if filepath.IsAbs(target) || !strings.HasPrefix(filepath.Join(filepath.Dir(p), target), filepath.Clean(root)) {
				return nil
			}
			out = append(out, entry{path: name, mode: fs.ModeSymlink | 0o777, link: target})
		case d.Type().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out = append(out, entry{path: name, mode: 0o644, data: data})
		}
		return nil
	})
	return out, err
}

// layerTar writes entries as a tar stream in path order, owned by root
// unless an entry says otherwise, all dated modTime: the same entries make
// the same bytes, and so the same layer digest.
func layerTar(entries []entry, modTime time.Time) ([]byte, error) {
	sorted := append([]entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].path < sorted[j].path })
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range sorted {
		h := &tar.Header{
			Name:    e.path,
			Mode:    int64(e.mode.Perm()),
			Uid:     e.uid,
			Gid:     e.uid,
			ModTime: modTime,
			Format:  tar.FormatPAX,
		}
		if e.mode&fs.ModeSticky != 0 {
			h.Mode |= 0o1000
		}
		switch {
		case e.mode.IsDir():
			h.Typeflag = tar.TypeDir
			h.Name += "/"
		case e.mode&fs.ModeSymlink != 0:
			h.Typeflag = tar.TypeSymlink
			h.Linkname = e.link
		default:
			h.Typeflag = tar.TypeReg
			h.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// writeRootfs writes entries into dir, as a Dockerfile's last stage copies
// them. Ownership is set only where this runs as root.
func writeRootfs(dir string, entries []entry) error {
	sorted := append([]entry(nil), entries...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].path < sorted[j].path })
	for _, e := range sorted {
		p := filepath.Join(dir, filepath.FromSlash(e.path))
		var err error
		switch {
		case e.mode.IsDir():
			if err = os.MkdirAll(p, 0o755); err == nil {
				err = os.Chmod(p, e.mode&(fs.ModePerm|fs.ModeSticky))
			}
		case e.mode&fs.ModeSymlink != 0:
			err = os.Symlink(e.link, p)
		default:
			err = os.WriteFile(p, e.data, e.mode.Perm())
			if err == nil {
				err = os.Chmod(p, e.mode.Perm())
			}
		}
		if err == nil && e.uid != 0 && os.Geteuid() == 0 {
			err = os.Lchown(p, e.uid, e.uid)
		}
		if err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}
