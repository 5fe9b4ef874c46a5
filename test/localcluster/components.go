package localcluster

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Components of the control plane, by the names StopComponent and
// StartComponent take (and their logs are named after).
const (
	Etcd                  = "etcd"
	KubeAPIServer         = "kube-apiserver"
	KubeControllerManager = "kube-controller-manager"
	KubeScheduler         = "kube-scheduler"
	SnapshotController    = "snapshot-controller"
)

// Stoppable are the components StopComponent may stop: those whose outage
// the cluster's clients must come through. etcd stays up (the API server
// is the way to it).
var Stoppable = []string{KubeAPIServer, KubeControllerManager, KubeScheduler, SnapshotController}

// ControlSocketFile is the name, in the state directory, of the Unix
// socket through which StopComponent and StartComponent reach the process
// that runs the cluster (`localcluster serve`, or a test binary's private
// cluster).
const ControlSocketFile = "control.sock"

// stopGrace is how long StopComponent waits for a component to exit on its
// own: the API server stops listening at once but can take long to exit.
const stopGrace = 5 * time.Second

// componentStartTimeout bounds how long a restarted component may take to
// serve.
const componentStartTimeout = 90 * time.Second

// StopComponent stops a running component (SIGTERM to its process group,
// SIGKILL after stopGrace) and keeps it stopped, its exit no failure of the
// cluster, until StartComponent. Stopping a stopped component does nothing.
func (c *Cluster) StopComponent(name string) error {
	p, err := c.component(name)
	if err != nil {
		return err
	}
	p.stopped.Store(true)
	return p.stop(stopGrace)
}

// StartComponent starts a component StopComponent stopped, with the same
// binary, flags, ports and certificates, and returns once it serves (the
// API server's /readyz, the others' ports). Starting a running component
// does nothing.
func (c *Cluster) StartComponent(ctx context.Context, name string) error {
	p, err := c.component(name)
	if err != nil {
		return err
	}
	if p.running() {
		return nil
	}
	fresh, err := p.restart()
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.processes[slices.Index(c.processes, p)] = fresh
	c.mu.Unlock()
	ctx, cancel := context.WithTimeout(ctx, componentStartTimeout)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for !c.ready[name](ctx) {
		if err := fresh.exited(); err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s did not serve within %s after its restart (see %s)", name, componentStartTimeout, fresh.log.Name())
		case <-tick.C:
		}
	}
	return nil
}

func (c *Cluster) component(name string) (*process, error) {
	if !slices.Contains(Stoppable, name) {
		return nil, fmt.Errorf("component %q cannot be stopped and started: use one of %s", name, strings.Join(Stoppable, ", "))
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.processes {
		if p.name == name {
			return p, nil
		}
	}
	return nil, fmt.Errorf("component %s is not part of this cluster", name)
}

// serveControl answers StopComponent and StartComponent on the control
// socket: POST /components/{name}/stop and /start.
func (c *Cluster) serveControl() error {
	path := filepath.Join(c.StateDir, ControlSocketFile)
	_ = os.Remove(path)
	l, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("while listening on %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /components/{name}/{action}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		var err error
		switch r.PathValue("action") {
		case "stop":
			err = c.StopComponent(name)
		case "start":
			err = c.StartComponent(r.Context(), name)
		default:
			http.Error(w, "use stop or start", http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(l) }()
	c.control = srv
	c.ControlSocket = path
	return nil
}

// StopComponent stops a component of the cluster running in stateDir (see
// Cluster.StopComponent).
func StopComponent(ctx context.Context, stateDir, name string) error {
	return control(ctx, stateDir, name, "stop")
}

// StartComponent starts again a component of the cluster running in
// stateDir and returns once it serves (see Cluster.StartComponent).
func StartComponent(ctx context.Context, stateDir, name string) error {
	return control(ctx, stateDir, name, "start")
}

func control(ctx context.Context, stateDir, name, action string) error {
	info, err := ReadInfo(stateDir)
	if err != nil {
		return fmt.Errorf("no running cluster in %s: %w", stateDir, err)
	}
	if info.ControlSocket == "" {
		return fmt.Errorf("the cluster in %s (pid %d) takes no component control; restart it with this version of localcluster", stateDir, info.PID)
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", info.ControlSocket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://localcluster/components/"+name+"/"+action, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("while asking the cluster in %s to %s %s: %w", stateDir, action, name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("%s %s: %s", action, name, strings.TrimSpace(string(msg)))
	}
	return nil
}

// accepting reports whether something listens on the loopback port.
func accepting(port int) func(context.Context) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return func(ctx context.Context) bool {
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return false
		}
		conn.Close()
		return true
	}
}
