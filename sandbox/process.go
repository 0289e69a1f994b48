package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Process is one daemon the sandbox started. It is tracked by pid, and its
// pid is also written to the sandbox's pid list so that a later
// `sandbox cleanup` can kill it even if the process that started it died.
type Process struct {
	Name    string
	LogPath string
	cmd     *exec.Cmd
	done    chan struct{}
	waitErr error
}

// startProcess runs argv inside netns (via `ip netns exec`, which execs in
// place so the pid we record is the daemon's own). Output goes to logPath.
func startProcess(name, netns, logPath string, env []string, argv ...string) (*Process, error) {
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open log for %s: %w", name, err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.Env = append(os.Environ(), env...)
	// If whoever started the sandbox dies without cleaning up, the kernel
	// kills the daemons too, so nothing outlives a crashed test.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start %s (%s): %w", name, strings.Join(argv, " "), err)
	}
	p := &Process{Name: name, LogPath: logPath, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Exited reports whether the process has ended.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Stop asks the process to exit and kills it if it has not within grace.
func (p *Process) Stop(grace time.Duration) {
	if p.Exited() {
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Kill ends the process at once, as a crash would.
func (p *Process) Kill() {
	if !p.Exited() {
		_ = p.cmd.Process.Kill()
		<-p.done
	}
}

// Wait blocks until the process has exited and returns its exit error.
func (p *Process) Wait() error {
	<-p.done
	return p.waitErr
}

// LogTail returns the last n bytes of the process log, for error messages.
func (p *Process) LogTail(n int) string {
	return tail(p.LogPath, n)
}

func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// pidList is the on-disk record of every pid a sandbox started.
const pidListName = "pids"

func recordPid(dir string, p *Process) error {
	f, err := os.OpenFile(filepath.Join(dir, pidListName), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = fmt.Fprintf(f, "%d %s\n", p.Pid(), p.Name)
	return err
}

// KillRecorded kills every still-running process listed in dir's pid list.
// It is the crash-recovery path of `sandbox cleanup`.
func KillRecorded(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidListName))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	killed := 0
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		pid, err := strconv.Atoi(fields[0])
		if err != nil {
			continue
		}
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	return killed, nil
}

// run executes a short command (optionally inside netns) and returns a
// descriptive error with its output if it fails.
func run(netns string, argv ...string) (string, error) {
	if netns != "" {
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	out, err := exec.Command(argv[0], argv[1:]...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// waitForFile polls for a unix socket or pid file to appear. Polling is fine
// here: this is test and demo set-up, not the CNI path.
func waitForFile(path string, p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if p != nil && p.Exited() {
			return fmt.Errorf("%s exited before creating %s: %s", p.Name, path, p.LogTail(2000))
		}
		time.Sleep(5 * time.Millisecond)
	}
	return fmt.Errorf("timed out after %s waiting for %s", timeout, path)
}

// RunIn executes a short command inside netns (empty: the caller's) and
// returns its combined output; tests use it to inspect state with the
// OVS/OVN command-line tools.
func RunIn(netns string, argv ...string) (string, error) {
	return run(netns, argv...)
}
