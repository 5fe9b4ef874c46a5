package nodeemu

import (
	"bufio"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// postgresImage is what the emulator reads from a postgres* image
// reference: the server version its tag names.
type postgresImage struct {
	ref string
	// version is the tag's version ("16", "16.4", "9.6"); empty when the
	// reference has no tag, is "latest", names only a variant ("alpine") or
	// only a digest.
	version string
	// major is the major version of version ("16"; "9.6" before 10).
	major string
}

var tagVersion = regexp.MustCompile(`^[0-9]+(\.[0-9]+)*`)

// parsePostgresImage reads an image reference: postgres:16,
// postgres:16.4-alpine, docker.io/library/postgres:16-bookworm,
// registry:5000/postgres@sha256:... It returns false for images that are not
// postgres* (by the last path segment of their name).
func parsePostgresImage(ref string) (postgresImage, bool) {
	name, _, _ := strings.Cut(ref, "@")
	tag := ""
	if c := strings.LastIndex(name, ":"); c > strings.LastIndex(name, "/") {
		name, tag = name[:c], name[c+1:]
	}
	if !strings.HasPrefix(path.Base(name), "postgres") {
		return postgresImage{}, false
	}
	img := postgresImage{ref: ref, version: tagVersion.FindString(tag)}
	if img.version != "" {
		img.major = majorOf(img.version)
	}
	return img, true
}

// majorOf returns the major version of a PostgreSQL version: the first
// number from 10 on, the first two numbers before.
func majorOf(version string) string {
	parts := strings.Split(version, ".")
	if n, err := strconv.Atoi(parts[0]); err == nil && n < 10 && len(parts) > 1 {
		return parts[0] + "." + parts[1]
	}
	return parts[0]
}

func isPostgresImage(image string) bool {
	_, ok := parsePostgresImage(image)
	return ok
}

// hostPostgres is the machine's PostgreSQL installations, one directory
// per major version below root (Debian's /usr/lib/postgresql/<major>).
type hostPostgres struct {
	root string
}

const defaultPostgresRoot = "/usr/lib/postgresql"

// majors lists the installed major versions that have a server binary,
// oldest first.
func (h hostPostgres) majors() []string {
	entries, _ := os.ReadDir(h.root)
	var out []string
	for _, e := range entries {
		if _, ok := h.binDir(e.Name()); ok {
			out = append(out, e.Name())
		}
	}
	sort.Slice(out, func(i, j int) bool { return versionLess(out[i], out[j]) })
	return out
}

func (h hostPostgres) binDir(major string) (string, bool) {
	dir := filepath.Join(h.root, major, "bin")
	info, err := os.Stat(filepath.Join(dir, "postgres"))
	return dir, err == nil && info.Mode().IsRegular()
}

// serverFor returns the major version an image runs and the directory of
// its binaries on this machine. An image that names no version runs the
// newest installed major (what its "latest" would be here). ok is false
// when the machine has no PostgreSQL of the image's major version; major
// is still the image's.
func (h hostPostgres) serverFor(img postgresImage) (major, binDir string, ok bool) {
	major = img.major
	if major == "" {
		installed := h.majors()
		if len(installed) == 0 {
			return "", "", false
		}
		major = installed[len(installed)-1]
	}
	binDir, ok = h.binDir(major)
	return major, binDir, ok
}

func versionLess(a, b string) bool {
	pa, pb := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < len(pa) && i < len(pb); i++ {
		na, _ := strconv.Atoi(pa[i])
		nb, _ := strconv.Atoi(pb[i])
		if na != nb {
			return na < nb
		}
	}
	return len(pa) < len(pb)
}

// dataDirMajor reads PG_VERSION of a data directory: the major version
// that initialised it, or "" when it holds no cluster.
func dataDirMajor(dataDir string) string {
	data, err := os.ReadFile(filepath.Join(dataDir, "PG_VERSION"))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(data))
}

// incompatibleDataDirLog is what a PostgreSQL server of serverVersion
// writes to its log when started on a data directory that a server of
// another major version (fileMajor) initialised, before it exits with code
// 1 (ValidatePgVersion in src/backend/utils/init/miscinit.c). The lines
// carry the default log_line_prefix, '%m [%p] ', in the data directory's
// log_timezone; in a container the postmaster is process 1.
func incompatibleDataDirLog(dataDir, fileMajor, serverVersion string, now time.Time) string {
	prefix := now.In(logTimezone(dataDir)).Format("2006-01-02 15:04:05.000 MST") + " [1] "
	return prefix + "FATAL:  database files are incompatible with server\n" +
		prefix + fmt.Sprintf("DETAIL:  The data directory was initialized by PostgreSQL version %s, which is not compatible with this version %s.\n", fileMajor, serverVersion)
}

// logTimezone reads log_timezone from the data directory's
// postgresql.conf (initdb writes it there); UTC when absent.
func logTimezone(dataDir string) *time.Location {
	loc := time.UTC
	f, err := os.Open(filepath.Join(dataDir, "postgresql.conf"))
	if err != nil {
		return loc
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		line, _, _ := strings.Cut(s.Text(), "#")
		key, value, ok := strings.Cut(line, "=")
		if !ok || strings.TrimSpace(key) != "log_timezone" {
			continue
		}
		if l, err := time.LoadLocation(strings.Trim(strings.TrimSpace(value), "'")); err == nil {
			loc = l
		}
	}
	return loc
}
