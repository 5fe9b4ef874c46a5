package localcluster

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"time"
)

// process is one control-plane binary started by the cluster. Its output
// goes to <logs>/<name>.log; it runs in its own process group and is killed
// if the cluster process dies without stopping it.
type process struct {
	name string
	cmd  *exec.Cmd
	log  *os.File
	done chan struct{}
	err  error
	// stopped: stopped on purpose (StopComponent), so its exit is no
	// failure of the cluster.
	stopped atomic.Bool
}

func startProcess(logDir, name, binary string, args ...string) (*process, error) {
	logFile, err := os.OpenFile(filepath.Join(logDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("while opening the %s log: %w", name, err)
	}
	cmd := exec.Command(binary, args...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("while starting %s: %w", name, err)
	}
	p := &process{name: name, cmd: cmd, log: logFile, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// restart starts the process again with the same binary, arguments and
// log.
func (p *process) restart() (*process, error) {
	return startProcess(filepath.Dir(p.log.Name()), p.name, p.cmd.Path, p.cmd.Args[1:]...)
}

// running reports whether the process has not exited.
func (p *process) running() bool {
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// exited reports an error if the process is no longer running and was not
// stopped on purpose.
func (p *process) exited() error {
	if p.stopped.Load() {
		return nil
	}
	select {
	case <-p.done:
		return fmt.Errorf("%s exited: %v (see %s)", p.name, p.err, p.log.Name())
	default:
		return nil
	}
}

// stop sends SIGTERM to the process group and SIGKILL after grace.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return nil
	default:
	}
	pgid := p.cmd.Process.Pid
	if err := syscall.Kill(-pgid, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("while stopping %s: %w", p.name, err)
	}
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-p.done
	}
	return nil
}
