package nodeemu

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Container logs as a CRI runtime writes them and the kubelet reads them.
//
// The runtime writes each run of a container to a file of its own, one
// line per line of output: "<RFC3339Nano time> <stdout|stderr> <F|P>
// <content>", P marking a line cut at the maximum line size (containerd's
// max_container_log_line_size, 16 KiB) or output that ended without a
// newline. The kubelet bounds each file (containerLogMaxSize 10 MiB,
// containerLogMaxFiles 5): a full file is renamed <file>.<time> and a new
// one started; only the newest file is ever read back, so rotated content
// no longer shows in the pod's log. It keeps the log of the current run and
// of the run before it (kubectl logs --previous); older runs' logs go with
// their containers.
//
// Reading (readContainerLog) follows the kubelet's ReadLogs
// (k8s.io/cri-client/pkg/logs): tailLines counts the file's last lines,
// whatever their stream or time; sinceSeconds/sinceTime drop older lines;
// timestamps prefixes each line with its time; limitBytes cuts the output
// after that many bytes; follow keeps reading while the container runs.

const (
	criTimeFormatOut = "2006-01-02T15:04:05.000000000Z07:00" // the kubelet's RFC3339NanoFixed
	criTimeFormatIn  = "2006-01-02T15:04:05.999999999Z07:00"
	streamStdout     = "stdout"
	streamStderr     = "stderr"
	tagFull          = "F"
	tagPartial       = "P"

	maxLogLineBytes      = 16 * 1024
	containerLogMaxSize  = 10 * 1024 * 1024
	containerLogMaxFiles = 5
	// logFollowPoll is how often a followed log is read again; the
	// kubelet wakes on inotify and at the latest after a second.
	logFollowPoll = 100 * time.Millisecond
)

// containerLog is the log file of one container run, as the runtime
// writes it.
type containerLog struct {
	path     string
	maxSize  int64
	maxFiles int
	now      func() time.Time

	mu   sync.Mutex
	f    *os.File
	size int64
}

// createContainerLog starts the log of a container run at path.
func createContainerLog(path string, now func() time.Time) (*containerLog, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return nil, fmt.Errorf("while creating the container log: %w", err)
	}
	return &containerLog{path: path, maxSize: containerLogMaxSize, maxFiles: containerLogMaxFiles, now: now, f: f}, nil
}

// stream is a writer for one output stream of the container.
func (l *containerLog) stream(name string) *logStream {
	return &logStream{log: l, name: name}
}

// writeLine appends one line of a stream, rotating a full file first.
func (l *containerLog) writeLine(stream, tag string, content []byte) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return os.ErrClosed
	}
	line := make([]byte, 0, len(criTimeFormatOut)+len(stream)+len(content)+8)
	line = l.now().UTC().AppendFormat(line, criTimeFormatOut)
	line = append(line, ' ')
	line = append(line, stream...)
	line = append(line, ' ')
	line = append(line, tag...)
	line = append(line, ' ')
	line = append(line, content...)
	line = append(line, '\n')
	if l.size > 0 && l.size+int64(len(line)) > l.maxSize {
		if err := l.rotate(); err != nil {
			return err
		}
	}
	n, err := l.f.Write(line)
	l.size += int64(n)
	return err
}

// rotate renames the full file <path>.<time>, starts a new one and removes
// the oldest rotated files beyond maxFiles (the new file counts).
func (l *containerLog) rotate() error {
	if err := l.f.Close(); err != nil {
		return err
	}
	rotated := l.path + "." + l.now().UTC().Format("20060102-150405.000000000")
	if err := os.Rename(l.path, rotated); err != nil {
		return err
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		l.f = nil
		return err
	}
	l.f, l.size = f, 0
	old, _ := filepath.Glob(l.path + ".*")
	sort.Strings(old) // the time in the name sorts them
	for len(old) > l.maxFiles-1 {
		_ = os.Remove(old[0])
		old = old[1:]
	}
	return nil
}

// close ends the log; later writes fail.
func (l *containerLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.f == nil {
		return nil
	}
	err := l.f.Close()
	l.f = nil
	return err
}

// logStream splits one output stream into log lines.
type logStream struct {
	log  *containerLog
	name string

	mu  sync.Mutex
	buf []byte
}

func (s *logStream) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, p...)
	for {
		i := bytes.IndexByte(s.buf, '\n')
		switch {
		case i >= 0 && i <= maxLogLineBytes:
			if err := s.log.writeLine(s.name, tagFull, s.buf[:i]); err != nil {
				return len(p), err
			}
			s.buf = s.buf[i+1:]
		case len(s.buf) > maxLogLineBytes:
			if err := s.log.writeLine(s.name, tagPartial, s.buf[:maxLogLineBytes]); err != nil {
				return len(p), err
			}
			s.buf = s.buf[maxLogLineBytes:]
		default:
			s.buf = append([]byte(nil), s.buf...) // do not keep p's array
			return len(p), nil
		}
	}
}

// flush writes what is left of a stream that ended without a newline, as
// a partial line.
func (s *logStream) flush() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.buf) == 0 {
		return nil
	}
	err := s.log.writeLine(s.name, tagPartial, s.buf)
	s.buf = nil
	return err
}

// logOptions are the pod log options the kubelet honours.
type logOptions struct {
	tailLines  int64 // < 0: all
	limitBytes int64 // < 0: no limit
	since      time.Time
	timestamps bool
	follow     bool
	stdout     bool // which streams to return
	stderr     bool
}

// errLogLimit ends reading once limitBytes have been written.
var errLogLimit = errors.New("log limit reached")

// readContainerLog writes the container log at path to out as the
// kubelet's ReadLogs does. With follow it keeps reading until running
// reports false and the end of the file is reached, or ctx ends.
func readContainerLog(ctx context.Context, path string, opts logOptions, running func() bool, out io.Writer) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("failed to open log file %q: %v", path, err)
	}
	defer f.Close()
	start, err := tailStart(f, opts.tailLines)
	if err != nil {
		return fmt.Errorf("failed to tail %d lines of log file %q: %w", opts.tailLines, path, err)
	}
	if _, err := f.Seek(start, io.SeekStart); err != nil {
		return err
	}
	w := &logWriter{out: out, opts: opts, remain: math.MaxInt64}
	if opts.limitBytes >= 0 {
		w.remain = opts.limitBytes
		if w.remain == 0 {
			return nil
		}
	}
	limited := opts.tailLines >= 0 && !opts.follow
	left := opts.tailLines
	r := bufio.NewReader(f)
	newLine := true
	stop := false
	for {
		if stop || limited && left == 0 {
			return nil
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			if err != io.EOF {
				return fmt.Errorf("failed to read log file %q: %v", path, err)
			}
			if opts.follow {
				// Read an incomplete line again once it is complete.
				if _, err := f.Seek(-int64(len(line)), io.SeekCurrent); err != nil {
					return err
				}
				r.Reset(f)
				if !running() {
					// The container has stopped: what it wrote is all
					// there; read to the end once more, then stop.
					opts.follow = false
					continue
				}
				t := time.NewTimer(logFollowPoll)
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
				continue
			}
			stop = true
			if len(line) == 0 {
				continue
			}
		}
		msg, ok := parseCRILine(line)
		if !ok {
			continue
		}
		if err := w.write(msg, newLine); err != nil {
			if errors.Is(err, errLogLimit) {
				return nil
			}
			return err
		}
		if limited {
			left--
		}
		newLine = len(msg.content) == 0 || msg.content[len(msg.content)-1] == '\n'
	}
}

// logMessage is one parsed log line.
type logMessage struct {
	time    time.Time
	stream  string
	content []byte // with its newline unless the line is partial
}

// parseCRILine parses "<time> <stream> <tag> <content>\n".
func parseCRILine(line []byte) (logMessage, bool) {
	fields := bytes.SplitN(line, []byte{' '}, 4)
	if len(fields) != 4 {
		return logMessage{}, false
	}
	t, err := time.Parse(criTimeFormatIn, string(fields[0]))
	if err != nil {
		return logMessage{}, false
	}
	stream := string(fields[1])
	if stream != streamStdout && stream != streamStderr {
		return logMessage{}, false
	}
	content := fields[3]
	if tag, _, _ := strings.Cut(string(fields[2]), ":"); tag == tagPartial {
		content = bytes.TrimSuffix(content, []byte{'\n'})
	}
	return logMessage{time: t, stream: stream, content: content}, true
}

// logWriter writes log messages as the options ask.
type logWriter struct {
	out    io.Writer
	opts   logOptions
	remain int64
}

func (w *logWriter) write(msg logMessage, newLine bool) error {
	if msg.time.Before(w.opts.since) {
		return nil
	}
	if msg.stream == streamStdout && !w.opts.stdout || msg.stream == streamStderr && !w.opts.stderr {
		return nil
	}
	line := msg.content
	if w.opts.timestamps && newLine {
		line = append([]byte(msg.time.Format(criTimeFormatOut)+" "), line...)
	}
	if int64(len(line)) > w.remain {
		line = line[:w.remain]
	}
	n, err := w.out.Write(line)
	w.remain -= int64(n)
	if err != nil {
		return err
	}
	if n < len(line) {
		return io.ErrShortWrite
	}
	if w.remain <= 0 {
		return errLogLimit
	}
	return nil
}

// tailStart is the offset of the file's last n lines (n < 0: the start).
func tailStart(f io.ReadSeeker, n int64) (int64, error) {
	if n < 0 {
		return 0, nil
	}
	size, err := f.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, err
	}
	const block = 4096
	var left, count int64
	buf := make([]byte, block)
	for right := size; right > 0 && count <= n; right -= block {
		left = right - block
		if left < 0 {
			left = 0
			buf = make([]byte, right)
		}
		if _, err := f.Seek(left, io.SeekStart); err != nil {
			return 0, err
		}
		if _, err := io.ReadFull(f, buf); err != nil {
			return 0, err
		}
		count += int64(bytes.Count(buf, []byte{'\n'}))
	}
	for ; count > n; count-- {
		i := bytes.IndexByte(buf, '\n') + 1
		buf = buf[i:]
		left += int64(i)
	}
	return left, nil
}

// lastLogLines is the end of a finished container run's log as the
// kubelet puts it in a termination message (FallbackToLogsOnError): its
// last lines lines, of which the last bytes bytes.
func lastLogLines(path string, lines, bytes int) string {
	var out tailBytes
	out.max = bytes
	opts := logOptions{tailLines: int64(lines), limitBytes: -1, stdout: true, stderr: true}
	if err := readContainerLog(context.Background(), path, opts, func() bool { return false }, &out); err != nil {
		return fmt.Sprintf("Error on reading termination message from logs: %v", err)
	}
	return string(out.buf)
}

// tailBytes keeps the last max bytes written to it (the kubelet's circular
// buffer).
type tailBytes struct {
	max int
	buf []byte
}

func (t *tailBytes) Write(p []byte) (int, error) {
	t.buf = append(t.buf, p...)
	if len(t.buf) > t.max {
		t.buf = append([]byte(nil), t.buf[len(t.buf)-t.max:]...)
	}
	return len(p), nil
}
