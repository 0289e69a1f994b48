package e2e

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// TestSandboxNodeRestartsKeepDataplane checks the sandbox's node fault
// controls against the real data plane: two pods on different nodes,
// attached by the real CNI plugin and daemon, keep (or regain) connectivity
// after ovs-vswitchd, ovn-controller and the node's ovsdb-server are each
// restarted. It runs on a sandbox of its own, so restarting daemons cannot
// disturb the suites that share the main one.
func TestSandboxNodeRestartsKeepDataplane(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := sandbox.Start(ctx, sandbox.Options{Nodes: 2, Prefix: "ovsbf-e2e-" + randomID()[:4]})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SANDBOX_KEEP") != "" {
			c.StopKeepDir()
			t.Logf("sandbox logs kept in %s", c.Dir)
			return
		}
		c.Stop()
	})
	for _, n := range c.Nodes {
		// StartDaemonNoWait returns before the CNI socket exists; the
		// caller waits for readiness itself.
		if _, err := n.StartDaemonNoWait(daemonBin, daemonArgs...); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range c.Nodes {
		deadline := time.Now().Add(20 * time.Second)
		for {
			if _, err := os.Stat(n.DaemonSocket()); err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: daemon socket %s never appeared", n.Name, n.DaemonSocket())
			}
			time.Sleep(10 * time.Millisecond)
		}
	}

	conf := layer2Config("faults-"+randomID()[:4], "10.77.0.0/24", nil)
	a, b := newPod(t, c.Nodes[0], "fa"), newPod(t, c.Nodes[1], "fb")
	addrA, addrB := podAddrs(t, mustAdd(t, a, "net1", conf))[0].Addr(), podAddrs(t, mustAdd(t, b, "net1", conf))[0].Addr()
	// pingBoth retries for a while: after a restart ovn-controller has to
	// reconnect and reinstall flows, and the first packet to a rebuilt
	// tunnel is dropped while OVS resolves the underlay ARP.
	pingBoth := func(t *testing.T, within time.Duration) time.Duration {
		t.Helper()
		begin := time.Now()
		for _, tc := range []struct {
			from *testPod
			to   netip.Addr
		}{{a, addrB}, {b, addrA}} {
			for {
				err := tc.from.Ping(tc.to, 1)
				if err == nil {
					break
				}
				if time.Since(begin) > within {
					t.Fatalf("%v", err)
				}
			}
		}
		return time.Since(begin)
	}
	t.Logf("before any restart: pods ping both ways in %s", pingBoth(t, 10*time.Second).Round(time.Millisecond))

	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"node1 ovs-vswitchd", c.Nodes[0].RestartVSwitchd},
		{"node2 ovs-vswitchd", c.Nodes[1].RestartVSwitchd},
		{"node1 ovn-controller", c.Nodes[0].RestartOVNController},
		{"node2 ovsdb-server", func() error { c.Nodes[1].StopOVSDB(); return c.Nodes[1].StartOVSDB() }},
	} {
		t.Run(step.name, func(t *testing.T) {
			begin := time.Now()
			if err := step.do(); err != nil {
				t.Fatal(err)
			}
			restart := time.Since(begin)
			took := pingBoth(t, 30*time.Second)
			t.Logf("restart %s; pods ping both ways %s later", restart.Round(time.Millisecond), took.Round(time.Millisecond))
		})
	}
}
