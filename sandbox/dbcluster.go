package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clusterSize is the number of members of a clustered central database:
// three is the smallest RAFT cluster that survives losing one member.
const clusterSize = 3

// dbSpec is what differs between the two central databases.
type dbSpec struct {
	schema, schemaName, file string
}

var dbSpecs = map[string]dbSpec{
	"nb": {nbSchema, "OVN_Northbound", "ovnnb.db"},
	"sb": {sbSchema, "OVN_Southbound", "ovnsb.db"},
}

// startDBCluster creates and starts a 3-member RAFT cluster for db ("nb" or
// "sb") in netns and waits until it has a leader and every member has
// joined.
//
// Each member has its own directory (central-<db>-<i>/) holding its database
// file, RAFT socket, client socket, unixctl socket, pid file and log, as
// separate hosts would. RAFT runs over unix sockets: they work from any
// namespace and cannot collide with anything else on the machine.
func (c *Cluster) startDBCluster(db, netns string) ([]*service, error) {
	spec := dbSpecs[db]
	members := make([]*service, clusterSize)
	raft := make([]string, clusterSize)
	for i := range members {
		dir := filepath.Join(c.Dir, fmt.Sprintf("central-%s-%d", db, i))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		raft[i] = "unix:" + filepath.Join(dir, "raft.sock")
		sock := filepath.Join(dir, "db.sock")
		members[i] = &service{
			name:     fmt.Sprintf("central-%s-%d", db, i),
			netns:    netns,
			env:      []string{"OVS_RUNDIR=" + dir},
			ready:    sock,
			endpoint: "unix:" + sock,
			ctl:      filepath.Join(dir, "ovsdb.ctl"),
			dbName:   spec.schemaName,
			argv: []string{"ovsdb-server", filepath.Join(dir, spec.file),
				"--remote=punix:" + sock,
				"--unixctl=" + filepath.Join(dir, "ovsdb.ctl"),
				"--pidfile=" + filepath.Join(dir, "ovsdb.pid"),
				"--log-file=" + filepath.Join(dir, "ovsdb.log"),
				"-vconsole:off"},
		}
	}
	// Member 0 creates the cluster; the others are told every other
	// member's address, so they can join through whichever answers first.
	if _, err := c.run("", "ovsdb-tool", "create-cluster", members[0].argv[1], c.release.Path(spec.schema), raft[0]); err != nil {
		return nil, err
	}
	for i := 1; i < clusterSize; i++ {
		args := []string{"ovsdb-tool", "join-cluster", members[i].argv[1], spec.schemaName, raft[i]}
		for j := range raft {
			if j != i {
				args = append(args, raft[j])
			}
		}
		if _, err := c.run("", args...); err != nil {
			return nil, err
		}
	}
	// Start all three before waiting for any: joiners only finish joining
	// once the creator runs, and the creator only wins its election once
	// it is alone or hears from the others.
	begin := time.Now()
	for _, m := range members {
		if err := c.startService(m, false); err != nil {
			return nil, err
		}
	}
	for _, m := range members {
		if err := waitForFile(m.ready, m.process(), startTimeout); err != nil {
			return nil, err
		}
	}
	if err := c.waitDBCluster(db, members, -1, startTimeout); err != nil {
		return nil, err
	}
	c.progress("central %s: 3-member RAFT cluster formed in %s", db, time.Since(begin).Round(time.Millisecond))
	return members, nil
}

// raftStatus is the part of `ovs-appctl cluster/status` the sandbox reads.
type raftStatus struct {
	Status  string // "cluster member", "joining cluster", ...
	Role    string // "leader", "follower", "candidate"
	Leader  string // "self", a server name, or "unknown"
	Term    int
	Servers int // members this server knows of
}

func parseRaftStatus(out string) raftStatus {
	var st raftStatus
	inServers := false
	for _, line := range strings.Split(out, "\n") {
		if inServers {
			// Server lines are indented; the list ends at the first
			// line that is not.
			if strings.HasPrefix(line, " ") || strings.HasPrefix(line, "\t") {
				if strings.TrimSpace(line) != "" {
					st.Servers++
				}
				continue
			}
			inServers = false
		}
		key, val, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "Status":
			st.Status = val
		case "Role":
			st.Role = val
		case "Leader":
			st.Leader = val
		case "Term":
			st.Term, _ = strconv.Atoi(val)
		case "Servers":
			inServers = true
		}
	}
	return st
}

// members returns db's servers after checking the name.
func (c *Cluster) members(db string) ([]*service, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	ms, ok := c.dbs[db]
	if !ok {
		return nil, fmt.Errorf("sandbox: unknown database %q (want \"nb\" or \"sb\")", db)
	}
	return ms, nil
}

func (c *Cluster) member(db string, member int) (*service, error) {
	ms, err := c.members(db)
	if err != nil {
		return nil, err
	}
	if member < 0 || member >= len(ms) {
		return nil, fmt.Errorf("sandbox: %s has no member %d (it has %d)", db, member, len(ms))
	}
	return ms[member], nil
}

// DBClusterStatus returns `ovs-appctl cluster/status` of one member of a
// clustered central database, for tests and diagnosis.
func (c *Cluster) DBClusterStatus(db string, member int) (string, error) {
	m, err := c.member(db, member)
	if err != nil {
		return "", err
	}
	if m.dbName == "" {
		return "", fmt.Errorf("sandbox: %s is not clustered (Options.ClusteredDBs is off)", db)
	}
	return m.clusterStatus()
}

// clusterStatus asks a clustered member for its RAFT state. The unixctl
// socket is a file, so this works from any namespace.
func (s *service) clusterStatus() (string, error) {
	return run("", "ovs-appctl", "--timeout=5", "-t", s.ctl, "cluster/status", s.dbName)
}

// DBEndpoint is the client endpoint of one member of a central database
// (member 0 when standalone). Central.NB/SB list all of them; this one
// reaches a single member, e.g. to read a follower with
// `ovn-nbctl --no-leader-only`.
func (c *Cluster) DBEndpoint(db string, member int) (string, error) {
	m, err := c.member(db, member)
	if err != nil {
		return "", err
	}
	return m.endpoint, nil
}

// DBLeader returns which member of a clustered central database is the
// RAFT leader now. It asks every running member; if two claim leadership
// (a deposed leader that has not noticed yet), the higher term wins. It
// does not wait: use WaitDBLeader after a fault.
func (c *Cluster) DBLeader(db string) (member int, err error) {
	ms, err := c.members(db)
	if err != nil {
		return -1, err
	}
	if len(ms) < clusterSize {
		return -1, fmt.Errorf("sandbox: %s is not clustered (Options.ClusteredDBs is off)", db)
	}
	member, err = leaderOf(ms)
	if err != nil {
		return -1, fmt.Errorf("%s: %w", db, err)
	}
	return member, nil
}

func leaderOf(ms []*service) (int, error) {
	leader, term := -1, -1
	var errs []string
	for i, m := range ms {
		if !m.running() {
			continue
		}
		out, err := m.clusterStatus()
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if st := parseRaftStatus(out); st.Role == "leader" && st.Term > term {
			leader, term = i, st.Term
		}
	}
	if leader < 0 {
		return -1, fmt.Errorf("sandbox: no leader now %v", errs)
	}
	return leader, nil
}

// WaitDBLeader polls DBLeader until a leader is elected or timeout passes.
// After the leader is killed, RAFT needs an election timeout (1 s by
// default) before a follower stands.
func (c *Cluster) WaitDBLeader(db string, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	for {
		m, err := c.DBLeader(db)
		if err == nil || time.Now().After(deadline) {
			return m, err
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDBCluster waits until db has a leader and every running member is a
// full member that knows the leader and all clusterSize servers; if only is
// non-negative, only that member and the leader are checked (a restarted
// member rejoining).
func (c *Cluster) waitDBCluster(db string, members []*service, only int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ok, haveLeader := true, false
		var state []string
		for i, m := range members {
			if !m.running() || (only >= 0 && i != only) {
				continue
			}
			out, err := m.clusterStatus()
			if err != nil {
				ok = false
				state = append(state, fmt.Sprintf("member %d: %v", i, err))
				continue
			}
			st := parseRaftStatus(out)
			state = append(state, fmt.Sprintf("member %d: %s/%s leader=%s servers=%d", i, st.Status, st.Role, st.Leader, st.Servers))
			if st.Role == "leader" {
				haveLeader = true
			}
			if st.Status != "cluster member" || st.Leader == "" || st.Leader == "unknown" || st.Servers != clusterSize {
				ok = false
			}
		}
		if only >= 0 && ok {
			// The rejoining member knows a leader; make sure one
			// exists from the others' point of view as well.
			_, err := leaderOf(members)
			haveLeader = err == nil
		}
		if ok && haveLeader {
			return nil
		}
		last = strings.Join(state, "; ")
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox: %s cluster not formed after %s: %s", db, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// KillDBMember SIGKILLs one member of a central database, by pid, as a
// crash would: no clean shutdown, its sockets are left on disk. Member 0 of
// a standalone database is its only server.
func (c *Cluster) KillDBMember(db string, member int) error {
	m, err := c.member(db, member)
	if err != nil {
		return err
	}
	m.stop(true)
	return nil
}

// StartDBMember starts a stopped or killed member again on its existing
// database file, with the same sockets. A clustered member rejoins by
// itself (its file records the cluster); this returns once it is a full
// member again that follows a leader.
func (c *Cluster) StartDBMember(db string, member int) error {
	ms, err := c.members(db)
	if err != nil {
		return err
	}
	m, err := c.member(db, member)
	if err != nil {
		return err
	}
	if err := c.startService(m, true); err != nil {
		return err
	}
	if len(ms) < clusterSize {
		return nil
	}
	return c.waitDBCluster(db, ms, member, startTimeout)
}

// StopDB stops every server of a central database ("nb" or "sb"): SIGTERM,
// then SIGKILL after a grace period, by pid. Clients keep their endpoints
// and reconnect once StartDB brings the database back. With ClusteredDBs
// it stops all three members: a whole-database outage.
func (c *Cluster) StopDB(db string) error {
	ms, err := c.members(db)
	if err != nil {
		return err
	}
	for _, m := range ms {
		m.stop(false)
	}
	return nil
}

// StartDB starts a stopped central database again on the same database
// file(s) and the same socket path(s), and waits until it serves (a
// clustered one: until it has a leader again). Members already running are
// left alone.
func (c *Cluster) StartDB(db string) error {
	ms, err := c.members(db)
	if err != nil {
		return err
	}
	for _, m := range ms {
		if m.running() {
			continue
		}
		if err := c.startService(m, false); err != nil {
			return err
		}
	}
	for _, m := range ms {
		if err := waitForFile(m.ready, m.process(), startTimeout); err != nil {
			return err
		}
	}
	if len(ms) < clusterSize {
		return nil
	}
	return c.waitDBCluster(db, ms, -1, startTimeout)
}
