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

	mu   sync.Mutex
	proc *Process
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
		s.proc = p
	}
	if err != nil {
		return err
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

// stop ends s's running incarnation: SIGTERM then SIGKILL after a
// grace period, or SIGKILL at once when crash is set. Stopping a stopped
// service is a no-op, so cleanup paths may call it freely.
func (s *service) stop(crash bool) {
	s.mu.Lock()
	p := s.proc
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
