package nodeemu

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The probe handlers, with the kubelet's results and messages
// (pkg/probe/exec, pkg/probe/tcp, pkg/probe/http).

// maxProbeOutput is how much of a handler's output the kubelet keeps.
const maxProbeOutput = 10 * 1024

// probeUserAgent is the kubelet's User-Agent for HTTP probes.
var probeUserAgent = func() string {
	parts := strings.SplitN(strings.TrimPrefix(kubeletVersion, "v"), ".", 3)
	return "kube-probe/" + parts[0] + "." + parts[1]
}()

// tcpProbe succeeds when a TCP connection to host:port opens.
func tcpProbe(host string, port int, timeout time.Duration) probeOutcome {
	conn, err := net.DialTimeout("tcp", net.JoinHostPort(host, strconv.Itoa(port)), timeout)
	if err != nil {
		return probeOutcome{result: resultFailure, output: err.Error()}
	}
	conn.Close()
	return probeOutcome{result: resultSuccess}
}

// httpProbe GETs the action's URL (host: the pod's IP unless given); a
// status from 200 to 399 is a success, a redirect to another host is not
// followed and succeeds with a warning.
func httpProbe(action *corev1.HTTPGetAction, c *corev1.Container, podIP string, timeout time.Duration) probeOutcome {
	scheme := strings.ToLower(string(action.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	host := action.Host
	if host == "" {
		host = podIP
	}
	port, err := resolveProbePort(action.Port, c)
	if err != nil {
		return probeOutcome{err: err}
	}
	u, err := url.Parse(action.Path)
	if err != nil {
		u = &url.URL{Path: action.Path}
	}
	u.Scheme, u.Host = scheme, net.JoinHostPort(host, strconv.Itoa(port))
	req, err := http.NewRequest(http.MethodGet, u.String(), nil)
	if err != nil {
		return probeOutcome{err: err}
	}
	headers := http.Header{}
	for _, h := range action.HTTPHeaders {
		headers.Add(h.Name, h.Value)
	}
	if _, ok := headers["User-Agent"]; !ok {
		headers.Set("User-Agent", probeUserAgent)
	}
	if _, ok := headers["Accept"]; !ok {
		headers.Set("Accept", "*/*")
	} else if headers.Get("Accept") == "" {
		headers.Del("Accept")
	}
	req.Header = headers
	req.Host = headers.Get("Host")

	client := &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true,
			Proxy:             nil,
		},
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Hostname() != via[0].URL.Hostname() {
				return http.ErrUseLastResponse
			}
			if len(via) >= 10 {
				return errors.New("stopped after 10 redirects")
			}
			return nil
		},
	}
	res, err := client.Do(req)
	if err != nil {
		return probeOutcome{result: resultFailure, output: err.Error()}
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, maxProbeOutput))
	switch {
	case res.StatusCode >= 300 && res.StatusCode < 400:
		return probeOutcome{result: resultSuccess, warning: true, output: "Probe terminated redirects, Response body: " + string(body)}
	case res.StatusCode >= 200 && res.StatusCode < 300:
		return probeOutcome{result: resultSuccess, output: string(body)}
	}
	return probeOutcome{result: resultFailure, output: fmt.Sprintf("HTTP probe failed with statuscode: %d", res.StatusCode)}
}

// resolveProbePort resolves a port number or a container port's name.
func resolveProbePort(p intstr.IntOrString, c *corev1.Container) (int, error) {
	port := -1
	switch p.Type {
	case intstr.Int:
		port = p.IntValue()
	case intstr.String:
		for _, cp := range c.Ports {
			if cp.Name == p.StrVal {
				port = int(cp.ContainerPort)
			}
		}
		if port < 0 {
			return port, fmt.Errorf("couldn't find port: %v in %v", p, c)
		}
	}
	if port > 0 && port < 65536 {
		return port, nil
	}
	return port, fmt.Errorf("invalid port number: %v", port)
}

// execView is what a command exec'd into an emulated container sees: the
// image's binaries for its major version, the container's environment and
// mounts, and the pod's own server socket where the image's libpq looks
// for it.
type execView struct {
	containerID string
	// env is the container's environment, image defaults included, with
	// container paths.
	env     map[string]string
	table   mountTable
	workDir string // container path
	uid     uint32
	gid     uint32
	groups  []uint32 // supplementary: the pod's fsGroup and supplementalGroups
}

// socketDir is where the postgres image's server puts its unix socket and
// where its libpq looks for one by default.
const socketDir = "/var/run/postgresql"

// environ is the exec's environment on this machine: the container's,
// with absolute container paths translated to the directories that back
// them, and PGHOST naming the pod's own socket directory when the
// container does not set it (libpq's default, /var/run/postgresql, is the
// machine's on this host and the pod's inside a container).
func (v execView) environ() []string {
	env := make(map[string]string, len(v.env)+1)
	for k, val := range v.env {
		if k != "PATH" && strings.HasPrefix(val, "/") {
			val = v.table.hostPath(val)
		}
		env[k] = val
	}
	if _, ok := env["PGHOST"]; !ok {
		env["PGHOST"] = v.table.hostPath(socketDir)
	}
	list := make([]string, 0, len(env))
	for k, val := range env {
		list = append(list, k+"="+val)
	}
	return list
}

// lookPath finds a command as the container's PATH would: names with a
// slash are taken as they are (translated when below a mount), others are
// searched in PATH, whose directories are the image's, i.e. this
// machine's.
func (v execView) lookPath(name string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if host, ok := v.table.mountedPath(name); ok {
			p = host
		}
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("exec: %q: stat %s: no such file or directory", name, name)
	}
	for _, dir := range filepath.SplitList(v.env["PATH"]) {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p, nil
		}
	}
	return "", fmt.Errorf("exec: %q: executable file not found in $PATH", name)
}

func isExecutable(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// execProbe runs command in the container's view: succeeds on exit code 0,
// fails on any other with the command's output (stdout, then stderr), or
// on the timeout. A command that cannot start is an error, as a failed
// exec in the runtime is.
func (v execView) execProbe(ctx context.Context, command []string, timeout time.Duration) probeOutcome {
	if len(command) == 0 {
		return probeOutcome{err: errors.New("exec probe without a command")}
	}
	bin, err := v.lookPath(command[0])
	if err != nil {
		return probeOutcome{err: fmt.Errorf("failed to exec in container: failed to start exec %q: OCI runtime exec failed: exec failed: unable to start container process: %v: unknown", v.containerID, err)}
	}
	args := make([]string, 0, len(command)-1)
	for _, a := range command[1:] {
		args = append(args, v.table.translateArg(a))
	}
	runCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(runCtx, bin, args...)
	cmd.Args[0] = command[0]
	cmd.Env = v.environ()
	cmd.Dir = v.table.hostPath(v.workDir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if int(v.uid) != os.Getuid() || int(v.gid) != os.Getgid() || len(v.groups) > 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: v.uid, Gid: v.gid, Groups: v.groups}
	}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = time.Second
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	output := append(stdout.Bytes(), stderr.Bytes()...)
	if len(output) > maxProbeOutput {
		output = output[:maxProbeOutput]
	}
	switch {
	case runCtx.Err() == context.DeadlineExceeded && ctx.Err() == nil:
		return probeOutcome{result: resultFailure, output: fmt.Sprintf("command timed out: %q timed out after %s", strings.Join(command, " "), timeout)}
	case err == nil:
		return probeOutcome{result: resultSuccess, output: string(output)}
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return probeOutcome{result: resultFailure, output: string(output)}
	}
	return probeOutcome{err: fmt.Errorf("failed to exec in container: %w", err)}
}
