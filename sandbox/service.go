package sandbox

import (
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"time"
)

// service is a daemon the sandbox can stop and start again with exactly the
// same arguments, on the same files and sockets, as a crash followed by a
// respawn (or an operator's restart) would. Every incarnation is started with
// Cluster.Start, so it is tracked by pid and stopped by Cluster.Stop like any
// other process.
type service struct {
	name  string
	netns string
	env   []string
	argv  []string
	// ready is a file the daemon creates once it serves (its socket or pid
	// file). It is removed before each start: a file left by a killed
	// incarnation would otherwise look like readiness.
	ready string
	// endpoint is the client address ("unix:/path") of database servers.
	endpoint string
	// ctl is the unixctl socket, for ovs-appctl -t.
	ctl string
	// dbName is the schema name (OVN_Northbound, ...) of clustered members,
	// for cluster/status.
	dbName string
	// respawn restarts the daemon when it dies on its own, as the
	// packages' --monitor and systemd's Restart= do in production.
	respawn bool

	mu   sync.Mutex
	proc *Process
	// stopped is set when the sandbox itself stops the daemon (fault
	// controls, Cluster.Stop), so that is not mistaken for a crash.
	stopped bool
}

// startService starts s unless its current incarnation is still running.
// With wait it returns once s.ready exists.
func (c *Cluster) startService(s *service, wait bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil && !s.proc.Exited() {
		return fmt.Errorf("sandbox: %s is already running (pid %d)", s.name, s.proc.Pid())
	}
	if s.ready != "" {
		_ = os.Remove(s.ready)
	}
	p, err := c.Start(s.name, s.netns, s.env, s.argv...)
	if p != nil {
		s.proc, s.stopped = p, false
	}
	if err != nil {
		return err
	}
	if s.respawn {
		go c.respawnOnCrash(s, p)
	}
	if wait && s.ready != "" {
		if err := waitForFile(s.ready, p, startTimeout); err != nil {
			return err
		}
		if strings.HasSuffix(s.ready, ".sock") {
			// The socket file appears at bind(), a moment before the
			// server listens: wait until it accepts.
			return waitForAccept(s.ready, p, startTimeout)
		}
	}
	return nil
}

// waitForAccept waits until a unix socket accepts a connection.
func waitForAccept(path string, p *Process, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := net.DialTimeout("unix", path, time.Second)
		if err == nil {
			conn.Close()
			return nil
		}
		if p.Exited() {
			return fmt.Errorf("%s exited before serving %s: %s", p.Name, path, p.LogTail(2000))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("timed out after %s waiting for %s to accept: %w", timeout, path, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// respawnOnCrash waits for incarnation p of s to end and, unless the
// sandbox stopped it, records the crash and starts s again.
func (c *Cluster) respawnOnCrash(s *service, p *Process) {
	_ = p.Wait()
	s.mu.Lock()
	crashed := s.proc == p && !s.stopped
	s.mu.Unlock()
	if !crashed || c.stopping.Load() {
		return
	}
	c.recordCrash(fmt.Sprintf("%s (pid %d) died on its own: %s; restarted", s.name, p.Pid(), lastFatal(p)))
	// A daemon that dies at start would spin; production waits too.
	time.Sleep(100 * time.Millisecond)
	if c.stopping.Load() {
		return
	}
	if err := c.startService(s, false); err != nil {
		c.recordCrash(fmt.Sprintf("%s: restart failed: %v", s.name, err))
	}
}

// lastFatal is the daemon's last EMER or ERR log line, or its log's tail.
func lastFatal(p *Process) string {
	lines := strings.Split(strings.TrimSpace(tail(p.LogPath, 64<<10)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if strings.Contains(lines[i], "|EMER|") {
			return lines[i]
		}
	}
	if len(lines) > 0 {
		return lines[len(lines)-1]
	}
	return "no log"
}

// stop ends s's running incarnation: SIGTERM then SIGKILL after a
// grace period, or SIGKILL at once when crash is set. Stopping a stopped
// service is a no-op, so cleanup paths may call it freely.
func (s *service) stop(crash bool) {
	s.mu.Lock()
	p := s.proc
	s.stopped = true
	s.mu.Unlock()
	if p == nil {
		return
	}
	if crash {
		p.Kill()
	} else {
		p.Stop(3 * time.Second)
	}
}

// running reports whether s's current incarnation is alive.
func (s *service) running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc != nil && !s.proc.Exited()
}

// process is s's current (possibly exited) incarnation.
func (s *service) process() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// endpoints joins the members' client endpoints with commas, the form every
// OVSDB client in OVN accepts for a clustered database.
func endpoints(members []*service) string {
	eps := make([]string, len(members))
	for i, m := range members {
		eps[i] = m.endpoint
	}
	return strings.Join(eps, ",")
}
