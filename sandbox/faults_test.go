package sandbox

import (
	"context"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests run real ovsdb-server, ovn-northd, ovs-vswitchd and
// ovn-controller processes, so they need root and the OVS/OVN packages;
// missing prerequisites fail the package loudly rather than skip it.
func TestMain(m *testing.M) {
	if err := CheckPrerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(m.Run())
}

func TestParseRaftStatus(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      raftStatus
	}{{
		name: "leader",
		out: `abcd
Name: OVN_Northbound
Cluster ID: 81b7 (81b7d4c9-1a1b-4f0c-a1ac-6c6a59fbae37)
Server ID: 6fb3 (6fb342a9-f1e8-4ccb-bf0b-423b98207825)
Address: unix:/tmp/x/raft0.sock
Status: cluster member
Role: leader
Term: 3
Leader: self
Vote: self

Election timer: 1000
Log: [2, 5]
Servers:
    raft0 (6fb3 at unix:/tmp/x/raft0.sock) (self) next_index=2 match_index=4
    raft1 (2afe at unix:/tmp/x/raft1.sock) next_index=5 match_index=4 last msg 50 ms ago
    raft2 (b216 at unix:/tmp/x/raft2.sock) next_index=5 match_index=4 last msg 51 ms ago
`,
		want: raftStatus{Status: "cluster member", Role: "leader", Leader: "self", Term: 3, Servers: 3},
	}, {
		name: "joining follower without leader",
		out: `Status: joining cluster
Role: follower
Term: 0
Leader: unknown
Servers:
`,
		want: raftStatus{Status: "joining cluster", Role: "follower", Leader: "unknown"},
	}, {
		name: "servers list ends at the next unindented line",
		out:  "Role: candidate\nServers:\n    a\n    b\nTerm: 7\n",
		want: raftStatus{Role: "candidate", Term: 7, Servers: 2},
	}} {
		t.Run(tc.name, func(t *testing.T) {
			if got := parseRaftStatus(tc.out); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func startCluster(t *testing.T, opts Options) *Cluster {
	t.Helper()
	opts.Prefix = "ovsbf-" + randomHex(2)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	begin := time.Now()
	c, err := Start(ctx, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("sandbox %s (clustered %v, %d nodes) up in %s", c.Prefix, opts.ClusteredDBs, opts.Nodes, time.Since(begin).Round(time.Millisecond))
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SANDBOX_KEEP") != "" {
			c.StopKeepDir()
			t.Logf("logs kept in %s", c.Dir)
			return
		}
		c.Stop()
	})
	return c
}

// ctl runs an OVN/OVS command-line tool with a bounded timeout, so a test
// against a dead database fails instead of hanging.
func ctl(tool, db string, args ...string) (string, error) {
	out, err := run("", append([]string{tool, "--db=" + db, "--timeout=10"}, args...)...)
	return strings.TrimSpace(out), err
}

func mustCtl(t *testing.T, tool, db string, args ...string) string {
	t.Helper()
	out, err := ctl(tool, db, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// waitFor polls cond until it holds or timeout passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() (bool, string)) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		ok, state := cond()
		if ok {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			t.Fatalf("%s: not after %s (last: %s)", what, timeout, state)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// failoverTimeout bounds how long clients may take to find a database
// again. OVS clients (ovn-northd here) try one member per reconnect attempt
// and back off up to 8 s between attempts, hitting followers ("not cluster
// leader; trying another server") on the way: measured 2-14 s after a
// leader is killed, and up to ~24 s after all members restart, when the
// backoff has already reached its maximum.
const failoverTimeout = 45 * time.Second

// addPortAndWaitBinding adds a logical switch port through the NB endpoint
// list and waits for northd to create its Port_Binding in the SB: the proof
// that the NB, northd and the SB all work.
func addPortAndWaitBinding(t *testing.T, c *Cluster, sw, port string) time.Duration {
	t.Helper()
	mustCtl(t, "ovn-nbctl", c.Central.NB, "--may-exist", "ls-add", sw, "--", "lsp-add", sw, port)
	return waitFor(t, "Port_Binding "+port+" in the SB", failoverTimeout, func() (bool, string) {
		out, err := ctl("ovn-sbctl", c.Central.SB, "--bare", "--columns=logical_port", "find", "Port_Binding", "logical_port="+port)
		return err == nil && out == port, fmt.Sprint(out, err)
	})
}

// bindOnNode plugs an OVS internal port claiming logical port lsp into the
// node's br-int and waits until ovn-controller has claimed it in the SB and
// marked it ovn-installed: the proof that ovn-controller reaches the SB.
func bindOnNode(t *testing.T, c *Cluster, n *Node, lsp string) {
	t.Helper()
	ifName := "t" + randomHex(3)
	if _, err := n.Run("ovs-vsctl", "--db="+n.OVS, "--timeout=10", "add-port", "br-int", ifName,
		"--", "set", "Interface", ifName, "type=internal", "external_ids:iface-id="+lsp); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, lsp+" bound on "+n.Name, 20*time.Second, func() (bool, string) {
		chassis, err := ctl("ovn-sbctl", c.Central.SB, "--bare", "--columns=chassis", "find", "Port_Binding", "logical_port="+lsp)
		if err != nil || chassis == "" {
			return false, fmt.Sprint("chassis ", chassis, err)
		}
		out, err := n.Run("ovs-vsctl", "--db="+n.OVS, "--timeout=10", "get", "Interface", ifName, "external_ids:ovn-installed")
		return err == nil && strings.Contains(out, "true"), fmt.Sprint(out, err)
	})
	t.Logf("%s bound and ovn-installed on %s after %s", lsp, n.Name, took.Round(time.Millisecond))
}

func TestClusteredDBs(t *testing.T) {
	c := startCluster(t, Options{Nodes: 1, ClusteredDBs: true, Progress: testWriter{t}})
	for _, ep := range []string{c.Central.NB, c.Central.SB} {
		if n := len(strings.Split(ep, ",")); n != 3 {
			t.Fatalf("endpoint list %q has %d members, want 3", ep, n)
		}
	}
	for _, db := range []string{"nb", "sb"} {
		for i := 0; i < 3; i++ {
			out, err := c.DBClusterStatus(db, i)
			if err != nil {
				t.Fatal(err)
			}
			if st := parseRaftStatus(out); st.Status != "cluster member" || st.Servers != 3 {
				t.Fatalf("%s member %d after bring-up: %+v", db, i, st)
			}
		}
	}
	took := addPortAndWaitBinding(t, c, "sw0", "p0")
	t.Logf("northd: Port_Binding p0 %s after lsp-add", took.Round(time.Millisecond))
	bindOnNode(t, c, c.Nodes[0], "p0")

	// Kill each database's leader in turn: a new leader must be elected
	// among the two survivors, every client (ovn-nbctl, northd,
	// ovn-controller) must carry on through the endpoint list, and the
	// killed member must rejoin on its old file.
	for _, db := range []string{"nb", "sb"} {
		t.Run("kill "+db+" leader", func(t *testing.T) {
			old, err := c.DBLeader(db)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.KillDBMember(db, old); err != nil {
				t.Fatal(err)
			}
			begin := time.Now()
			leader, err := c.WaitDBLeader(db, 20*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: killed leader %d, member %d elected after %s", db, old, leader, time.Since(begin).Round(time.Millisecond))
			if leader == old {
				t.Fatalf("the killed member %d is still the leader", old)
			}
			sw, port := "sw-"+db, "p-"+db
			took := addPortAndWaitBinding(t, c, sw, port)
			t.Logf("%s: write through the list and Port_Binding after %s", db, took.Round(time.Millisecond))
			bindOnNode(t, c, c.Nodes[0], port)

			begin = time.Now()
			if err := c.StartDBMember(db, old); err != nil {
				t.Fatal(err)
			}
			t.Logf("%s: member %d rejoined after %s", db, old, time.Since(begin).Round(time.Millisecond))
			out, err := c.DBClusterStatus(db, old)
			if err != nil {
				t.Fatal(err)
			}
			if st := parseRaftStatus(out); st.Status != "cluster member" || st.Role != "follower" || st.Leader == "unknown" {
				t.Fatalf("rejoined member %d: %+v", old, st)
			}
			// The rejoined member caught up on what was written while
			// it was down. --no-leader-only: it is a follower.
			ep, _ := c.DBEndpoint(db, old)
			tool, table, want := "ovn-nbctl", "Logical_Switch_Port", port
			if db == "sb" {
				tool, table = "ovn-sbctl", "Port_Binding"
			}
			waitFor(t, "rejoined member has "+port, 10*time.Second, func() (bool, string) {
				out, err := ctl(tool, ep, "--no-leader-only", "--bare", "--columns=_uuid", "find", table,
					map[string]string{"nb": "name=", "sb": "logical_port="}[db]+want)
				return err == nil && out != "", fmt.Sprint(out, err)
			})
		})
	}

	// A whole-database outage: all three members stopped and started
	// again; the cluster re-forms from its files and keeps its data.
	t.Run("restart whole nb cluster", func(t *testing.T) {
		if err := c.StopDB("nb"); err != nil {
			t.Fatal(err)
		}
		if _, err := run("", "ovn-nbctl", "--db="+c.Central.NB, "--timeout=1", "ls-add", "never"); err == nil {
			t.Fatal("write succeeded with every NB member stopped")
		}
		begin := time.Now()
		if err := c.StartDB("nb"); err != nil {
			t.Fatal(err)
		}
		t.Logf("nb cluster back with a leader after %s", time.Since(begin).Round(time.Millisecond))
		if out := mustCtl(t, "ovn-nbctl", c.Central.NB, "--bare", "--columns=name", "list", "Logical_Switch"); !strings.Contains(out, "sw-nb") {
			t.Fatalf("switches after restart: %q", out)
		}
		took := addPortAndWaitBinding(t, c, "sw-after", "p-after")
		t.Logf("northd back: Port_Binding after %s", took.Round(time.Millisecond))
	})
}

func TestStandaloneDBRestart(t *testing.T) {
	c := startCluster(t, Options{Nodes: 1})
	if strings.Contains(c.Central.NB, ",") || strings.Contains(c.Central.SB, ",") {
		t.Fatalf("standalone endpoints are lists: %q %q", c.Central.NB, c.Central.SB)
	}
	if _, err := c.DBLeader("nb"); err == nil {
		t.Fatal("DBLeader succeeded on a standalone database")
	}
	addPortAndWaitBinding(t, c, "sw0", "p0")
	for _, db := range []string{"nb", "sb"} {
		t.Run(db, func(t *testing.T) {
			ep := map[string]string{"nb": c.Central.NB, "sb": c.Central.SB}[db]
			tool := map[string]string{"nb": "ovn-nbctl", "sb": "ovn-sbctl"}[db]
			if err := c.StopDB(db); err != nil {
				t.Fatal(err)
			}
			if _, err := run("", tool, "--db="+ep, "--timeout=1", "show"); err == nil {
				t.Fatalf("%s answered while stopped", db)
			}
			if err := c.StartDB(db); err != nil {
				t.Fatal(err)
			}
			if err := c.StartDB(db); err != nil {
				t.Fatalf("StartDB on a running database: %v", err)
			}
			// Same file: the data survived. Same socket: northd (and
			// ovn-controller) reconnected by themselves.
			if out := mustCtl(t, "ovn-nbctl", c.Central.NB, "--bare", "--columns=name", "list", "Logical_Switch_Port"); !strings.Contains(out, "p0") {
				t.Fatalf("ports after restart: %q", out)
			}
			took := addPortAndWaitBinding(t, c, "sw0", "p-after-"+db)
			t.Logf("%s restarted; new Port_Binding after %s", db, took.Round(time.Millisecond))
			bindOnNode(t, c, c.Nodes[0], "p-after-"+db)
		})
	}
	// A crash (SIGKILL leaves the socket file behind) and a restart on the
	// same socket path.
	t.Run("kill nb", func(t *testing.T) {
		if err := c.KillDBMember("nb", 0); err != nil {
			t.Fatal(err)
		}
		if err := c.StartDBMember("nb", 0); err != nil {
			t.Fatal(err)
		}
		addPortAndWaitBinding(t, c, "sw0", "p-after-kill")
	})
}

func TestNodeDaemonRestarts(t *testing.T) {
	c := startCluster(t, Options{Nodes: 1})
	n := c.Nodes[0]
	addPortAndWaitBinding(t, c, "sw0", "p0")
	bindOnNode(t, c, n, "p0")
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"ovn-controller", n.RestartOVNController},
		{"ovs-vswitchd", n.RestartVSwitchd},
		{"ovsdb-server", func() error { n.StopOVSDB(); return n.StartOVSDB() }},
	} {
		t.Run(step.name, func(t *testing.T) {
			begin := time.Now()
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
			t.Logf("restarted %s in %s", step.name, time.Since(begin).Round(time.Millisecond))
			if err := n.WaitOVNControllerConnected(20 * time.Second); err != nil {
				t.Fatal(err)
			}
			// br-int and br-phy came back with their ports, and br-phy
			// has the node IP again.
			out, err := n.Run("ovs-vsctl", "--db="+n.OVS, "--timeout=10", "list-ports", "br-phy")
			if err != nil || !strings.Contains(out, "ul0") {
				t.Fatalf("br-phy ports %q: %v", out, err)
			}
			if out, err := n.Run("ip", "-4", "addr", "show", "dev", "br-phy"); err != nil || !strings.Contains(out, n.IP.String()) {
				t.Fatalf("br-phy addresses %q: %v", out, err)
			}
			port := "p-" + strings.ReplaceAll(step.name, "-", "")
			addPortAndWaitBinding(t, c, "sw0", port)
			bindOnNode(t, c, n, port)
		})
	}
}

// testWriter sends bring-up progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(b), "\n"))
	return len(b), nil
}

// TestOVNControllerRespawnsAfterCrash: an ovn-controller that dies on its
// own (here: SIGABRT, as OVN 25.03.0's assertion failure does) is
// restarted and recorded, while one the sandbox stops on purpose is not.
func TestOVNControllerRespawnsAfterCrash(t *testing.T) {
	c := startCluster(t, Options{Nodes: 1})
	n := c.Nodes[0]
	addPortAndWaitBinding(t, c, "sw0", "p0")
	bindOnNode(t, c, n, "p0")
	first := n.controller.process()
	if err := syscall.Kill(first.Pid(), syscall.SIGABRT); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a new ovn-controller", 10*time.Second, func() (bool, string) {
		p := n.controller.process()
		return p != first && p != nil && !p.Exited(), fmt.Sprint(c.Crashes())
	})
	if err := n.WaitOVNControllerConnected(20 * time.Second); err != nil {
		t.Fatal(err)
	}
	if crashes := c.Crashes(); len(crashes) != 1 || !strings.Contains(crashes[0], "ovn-controller") {
		t.Fatalf("crashes %q, want the one ovn-controller crash", crashes)
	}
	addPortAndWaitBinding(t, c, "sw0", "p1")
	bindOnNode(t, c, n, "p1")
	// A restart the sandbox makes is not a crash.
	if err := n.RestartOVNController(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if crashes := c.Crashes(); len(crashes) != 1 {
		t.Fatalf("a deliberate restart was recorded as a crash: %q", crashes)
	}
}
