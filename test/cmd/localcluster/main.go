// Command localcluster runs drillerd's local Kubernetes cluster (see package
// localcluster): `up` starts it in the background and returns when it is
// ready, `down` stops it, `serve` runs it in the foreground, and
// `stop-component` and `start-component` stop one of its control-plane
// components and start it again, for outage tests.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/drillerd/drillerd/test/localcluster"
	"github.com/drillerd/drillerd/test/nodeemu"
	"github.com/drillerd/drillerd/test/nodeemu/lazyfs"
)

func main() {
	if len(os.Args) < 2 {
		usage()
		os.Exit(2)
	}
	cmd, args := os.Args[1], os.Args[2:]
	fs := flag.NewFlagSet(cmd, flag.ExitOnError)
	stateDir := fs.String("state-dir", "", "directory of the cluster's state (default: <repo>/.localcluster)")
	binDir := fs.String("bin-dir", "", "directory of the control-plane binaries (default: build with test/tools/build.sh)")
	var defaults nodeemu.Defaults
	fs.DurationVar(&defaults.StartDelay, "start-delay", 0, "node emulator: delay before each container start (image pull)")
	fs.DurationVar(&defaults.ProvisionDelay, "provision-delay", 0, "node emulator: delay before each volume is provisioned")
	fs.DurationVar(&defaults.SnapshotDelay, "snapshot-delay", 0, "node emulator: delay before each snapshot is cut")
	fs.Int64Var(&defaults.RestoreBytesPerSecond, "restore-bytes-per-second", 0, "node emulator: restore throughput limit (0 = unlimited)")
	fs.Int64Var(&defaults.HydrateBytesPerSecond, "hydrate-bytes-per-second", 0, "node emulator: restore volumes lazily, first reads of each block at this rate per volume (0 = copy in full)")
	fs.Int64Var(&defaults.HydrateBlockSize, "hydrate-block-size", 0, "node emulator: hydration granularity of lazily restored volumes, in bytes (0 = 512 KiB)")
	timeout := fs.Duration("timeout", 10*time.Minute, "up: how long to wait for the cluster (including a first build)")
	_ = fs.Parse(args)

	dir := *stateDir
	if dir == "" {
		d, err := localcluster.DefaultStateDir()
		if err != nil {
			fail(err)
		}
		dir = d
	}
	var err error
	switch cmd {
	case "up":
		err = up(dir, *binDir, *timeout, args)
	case "down":
		err = down(dir)
	case "serve":
		err = serve(dir, *binDir, defaults)
	case "stop-component", "start-component":
		if fs.NArg() != 1 {
			fail(fmt.Errorf("%s takes one component: %s", cmd, strings.Join(localcluster.Stoppable, ", ")))
		}
		ctx, cancel := context.WithTimeout(context.Background(), *timeout)
		defer cancel()
		if cmd == "stop-component" {
			err = localcluster.StopComponent(ctx, dir, fs.Arg(0))
		} else {
			err = localcluster.StartComponent(ctx, dir, fs.Arg(0))
		}
	case "env":
		info, err := localcluster.ReadInfo(dir)
		if err != nil {
			fail(fmt.Errorf("no running cluster in %s (make cluster-up): %w", dir, err))
		}
		fmt.Printf("export KUBECONFIG=%s\nexport PATH=%s:$PATH\n", info.Kubeconfig, filepath.Dir(info.KubectlBinary))
	default:
		usage()
		os.Exit(2)
	}
	if err != nil {
		fail(err)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, `usage: localcluster up|down|serve|env [flags]
       localcluster stop-component|start-component [--state-dir DIR] COMPONENT
  up               start the cluster in the background; returns when it is ready
  down             stop the cluster and everything it started
  serve            run the cluster in the foreground until SIGTERM
  env              print shell lines that point KUBECONFIG and PATH (kubectl) at the cluster
  stop-component   stop kube-apiserver, kube-controller-manager, kube-scheduler or
                   snapshot-controller until start-component (an outage)
  start-component  start it again with the same flags, ports and certificates;
                   returns once it serves`)
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "localcluster: %v\n", err)
	os.Exit(1)
}

func up(dir, binDir string, timeout time.Duration, args []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	if info, err := localcluster.Running(ctx, dir); err == nil {
		fmt.Printf("localcluster: already running (pid %d)\n", info.PID)
		printUsage(info)
		return nil
	}
	began := time.Now()
	if binDir == "" {
		var err error
		if binDir, err = localcluster.BuildBinaries(ctx, os.Stderr); err != nil {
			return err
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	_ = os.Remove(filepath.Join(dir, localcluster.InfoFile))
	logPath := filepath.Join(dir, localcluster.ServeLog)
	logFile, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logFile.Close()
	self, err := os.Executable()
	if err != nil {
		return err
	}
	serveArgs := append([]string{"serve", "--state-dir", dir, "--bin-dir", binDir}, withoutFlags(args, "state-dir", "bin-dir", "timeout")...)
	cmd := exec.Command(self, serveArgs...)
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-exited:
			log, _ := os.ReadFile(logPath)
			return fmt.Errorf("the cluster stopped while starting (%v):\n%s", err, log)
		case <-ctx.Done():
			_ = cmd.Process.Signal(syscall.SIGTERM)
			return fmt.Errorf("the cluster was not ready within %s (see %s)", timeout, logPath)
		case <-tick.C:
			info, err := localcluster.ReadInfo(dir)
			if err == nil && info.PID == cmd.Process.Pid {
				fmt.Printf("localcluster: ready in %.1fs (pid %d, log %s)\n", time.Since(began).Seconds(), info.PID, logPath)
				printUsage(info)
				return nil
			}
		}
	}
}

func printUsage(info localcluster.Info) {
	fmt.Printf(`
  export KUBECONFIG=%s
  kubectl get nodes,storageclasses,volumesnapshotclasses
  # kubectl %s is at %s
  # component logs: %s/logs, audit log: %s
  # ground truth of volumes and pods: %s
  make cluster-down    # stop it
`, info.Kubeconfig, "v1.37", info.KubectlBinary, info.StateDir, info.AuditLog, info.GroundTruth)
}

func withoutFlags(args []string, names ...string) []string {
	var out []string
	for i := 0; i < len(args); i++ {
		a := strings.TrimLeft(args[i], "-")
		name, _, hasValue := strings.Cut(a, "=")
		skip := false
		for _, n := range names {
			if name == n {
				skip = true
			}
		}
		if skip {
			if !hasValue {
				i++
			}
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func serve(dir, binDir string, defaults nodeemu.Defaults) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	pidFile := filepath.Join(dir, localcluster.PIDFile)
	if err := os.WriteFile(pidFile, []byte(strconv.Itoa(os.Getpid())+"\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(pidFile)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	c, err := localcluster.Start(ctx, localcluster.Options{StateDir: dir, BinDir: binDir, Node: defaults, Progress: os.Stdout})
	if err != nil {
		return err
	}
	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	var failure error
	for failure == nil {
		select {
		case <-ctx.Done():
			fmt.Println("localcluster: stopping")
			return c.Stop()
		case <-tick.C:
			failure = c.Failed()
		}
	}
	fmt.Printf("localcluster: %v; stopping everything\n", failure)
	return errors.Join(failure, c.Stop())
}

// down stops the cluster's process, waits for it, and makes sure nothing it
// started survives.
func down(dir string) error {
	data, err := os.ReadFile(filepath.Join(dir, localcluster.PIDFile))
	if errors.Is(err, os.ErrNotExist) {
		fmt.Println("localcluster: not running")
		return errors.Join(killLeftovers(dir), unmountLeftovers(dir))
	}
	if err != nil {
		return err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(data)))
	if err != nil {
		return fmt.Errorf("bad pid file: %w", err)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	deadline := time.Now().Add(90 * time.Second)
	for alive(pid) && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if alive(pid) {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	_ = os.Remove(filepath.Join(dir, localcluster.PIDFile))
	fmt.Printf("localcluster: stopped (pid %d)\n", pid)
	// Processes first: a database still running keeps a mount busy.
	return errors.Join(killLeftovers(dir), unmountLeftovers(dir))
}

// unmountLeftovers detaches the lazy volumes a cluster that did not stop
// cleanly left mounted below dir.
func unmountLeftovers(dir string) error {
	detached, err := lazyfs.UnmountBelow(dir)
	if len(detached) > 0 {
		err = errors.Join(err, fmt.Errorf("detached %d leftover lazy volume mounts:\n  %s", len(detached), strings.Join(detached, "\n  ")))
	}
	return err
}

func alive(pid int) bool {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	// A zombie (state Z) has exited already.
	fields := strings.Fields(string(data))
	return len(fields) > 2 && fields[2] != "Z"
}

// killLeftovers kills any process whose command line names the state
// directory (a database or control-plane process of a crashed cluster).
func killLeftovers(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	entries, _ := os.ReadDir("/proc")
	var killed []string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), abs+"/") {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed = append(killed, strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	if len(killed) > 0 {
		return fmt.Errorf("killed %d leftover processes:\n  %s", len(killed), strings.Join(killed, "\n  "))
	}
	return nil
}
