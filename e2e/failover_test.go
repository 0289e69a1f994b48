package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// Gateway failover, measured: a pod on one node pings the external host
// every 10 ms and keeps a TCP stream open to it while the node that holds
// the network's gateway loses its ovn-controller (killed, restarted 3 s
// later) or its datapath (ovs-vswitchd killed, restarted once traffic is
// back), with OVN's default BFD timers and with 100 ms ones. E2E_FAILOVER_ROUNDS sets the rounds per fault (default 10);
// E2E_REPORT_DIR, when set, receives failover-<release>.json.

// failoverRound is one fault's effect on the pod's traffic.
type failoverRound struct {
	Fault string `json:"fault"`
	Round int    `json:"round"`
	// OutageMs is the longest gap between two ping replies, less the
	// 10 ms interval; FailbackMs the longest gap after the faulty
	// process came back (the gateway moving back to its preferred node).
	OutageMs   float64 `json:"outage_ms"`
	FailbackMs float64 `json:"failback_ms"`
	// StreamGapMs is the longest pause of the TCP stream's deliveries;
	// StreamSurvived says the connection carried data after the fault.
	StreamGapMs    float64 `json:"stream_gap_ms"`
	StreamSurvived bool    `json:"stream_survived"`
	// StreamFailure says what the stream lacked when it did not survive:
	// messages sent, received by the host, echoed back, the sender's
	// error.
	StreamFailure string `json:"stream_failure,omitempty"`
	// MovedTo is the chassis holding the gateway while the fault lasted.
	MovedTo string `json:"moved_to"`
}

func failoverRounds() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_FAILOVER_ROUNDS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// gatewayChassis names the chassis the network's gateway port is bound on
// ("" : none).
func gatewayChassis(t *testing.T, c *sandbox.Cluster, network string) string {
	t.Helper()
	sb := func(args ...string) string {
		out, err := c.Run(append([]string{"ovn-sbctl", "--db=" + c.Central.SB}, args...)...)
		if err != nil {
			t.Fatalf("ovn-sbctl: %v", err)
		}
		return strings.TrimSpace(out)
	}
	uuid := sb("--bare", "--columns=chassis", "find", "Port_Binding", "logical_port=cr-ovn-overlay."+network+".gateway")
	if uuid == "" {
		return ""
	}
	return sb("--bare", "--columns=name", "list", "Chassis", uuid)
}

func waitGatewayChassis(t *testing.T, c *sandbox.Cluster, network string, want func(string) bool, timeout time.Duration) string {
	t.Helper()
	var got string
	for deadline := time.Now().Add(timeout); ; time.Sleep(50 * time.Millisecond) {
		if got = gatewayChassis(t, c, network); want(got) {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway of %s on chassis %q after %s", network, got, timeout)
		}
	}
}

// TestExternalGatewayFailover: see the comment at the top of the file. It
// runs on a cluster of its own with three nodes, all mapping the physical
// network, so all are gateway chassis: OVN makes a gateway chassis active
// only while it sees at least one other chassis over BFD (a guard against
// split brain), so with two, the survivor of a failure would not take
// over. The pod sits on a node that is not the active gateway.
func TestExternalGatewayFailover(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := sandbox.Start(ctx, sandbox.Options{Nodes: 3, Prefix: "ovsbf-" + randomID()[:4], PhysicalNetwork: physnet, PhysicalMTU: physnetMTU})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			c.StopKeepDir()
			t.Logf("failover cluster's logs kept in %s", c.Dir)
			return
		}
		c.Stop()
	})
	for _, n := range c.Nodes {
		if _, err := n.StartDaemon(daemonBin, daemonArgs...); err != nil {
			t.Fatal(err)
		}
	}
	ext := routerOn(t, c.External())
	network := "ext-ha-" + randomID()[:4]
	conf := externalConfig(network, "layer2", "10.84.0.0/24", nil)
	// Any pod sets the network up; the gateway is then scheduled.
	probe := newPod(t, c.Nodes[0], "probe")
	mustAdd(t, probe, "net1", conf)
	mustDel(t, probe, "net1", conf)
	// Every node joins the gateway; the highest priority is where OVN
	// settles it once BFD is up between the chassis (while the sessions
	// come up, lower ones may hold it for a moment).
	var preferred string
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		out, err := c.Run("ovn-nbctl", "--db="+c.Central.NB, "lrp-get-gateway-chassis", "ovn-overlay."+network+".gateway")
		if f := strings.Fields(out); err == nil && len(f) == 2*len(c.Nodes) {
			// Sorted by priority, highest first: "<port>-<chassis> <prio>".
			preferred = strings.TrimPrefix(f[0], "ovn-overlay."+network+".gateway-")
			t.Logf("gateway chassis of %s (name, priority):\n%s", network, out)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("gateway chassis of %s: %q (%v), want every node", network, out, err)
		}
	}
	waitGatewayChassis(t, c, network, func(ch string) bool { return ch == preferred }, 30*time.Second)
	var gwNode, podNode *sandbox.Node
	for _, n := range c.Nodes {
		switch {
		case n.Name == preferred:
			gwNode = n
		case podNode == nil:
			podNode = n
		}
	}
	if gwNode == nil {
		t.Fatalf("preferred gateway chassis %q is not one of the nodes", preferred)
	}
	pod := newPod(t, podNode, "ha")
	mustAdd(t, pod, "net1", conf)
	t.Cleanup(func() { mustDel(t, pod, "net1", conf) })
	dst := netip.MustParseAddr(extNextHop)
	if err := pod.Ping(dst, 10); err != nil {
		t.Fatal(err)
	}
	t.Logf("gateway of %s active on %s; pod on %s", network, gwNode.Name, podNode.Name)

	var rounds []failoverRound
	for _, fault := range []string{"ovn-controller", "ovs-vswitchd", "ovs-vswitchd, BFD 100 ms"} {
		if fault == "ovs-vswitchd, BFD 100 ms" {
			// OVN's default BFD on tunnels (1 s, x3) sets the detection
			// time; an operator can shorten it cluster-wide. The NB is
			// this test's own cluster's.
			if _, err := c.Run("ovn-nbctl", "--db="+c.Central.NB, "set", "NB_Global", ".", "options:bfd-min-rx=100", "options:bfd-min-tx=100", "options:bfd-mult=3"); err != nil {
				t.Fatal(err)
			}
			// ovn-controllers reconfigure every tunnel's BFD, and the
			// sessions may flap the gateway for a moment: let it settle.
			time.Sleep(5 * time.Second)
		}
		for round := 1; round <= failoverRounds(); round++ {
			r := failoverRound{Fault: fault, Round: round}
			waitGatewayChassis(t, c, network, func(ch string) bool { return ch == gwNode.Name }, 30*time.Second)
			pg, err := sandbox.StartPinger(pod.Netns, dst)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(pg.Kill)
			st, err := sandbox.StartStream(ext.NetnsPath, dst, pod.NetnsPath)
			if err != nil {
				t.Fatalf("TCP stream to the external host: %v", err)
			}
			t.Cleanup(st.Close)
			time.Sleep(time.Second)
			if ch := gatewayChassis(t, c, network); ch != gwNode.Name {
				t.Fatalf("round %d: the gateway moved to %q before the fault", round, ch)
			}
			killed := time.Now()
			var restarted time.Time
			switch fault {
			case "ovn-controller":
				gwNode.KillOVNController()
				time.Sleep(3 * time.Second)
				r.MovedTo = gatewayChassis(t, c, network)
				restarted = time.Now()
				if err := gwNode.StartOVNController(); err != nil {
					t.Fatal(err)
				}
			default:
				gwNode.KillVSwitchd()
				r.MovedTo = waitGatewayChassis(t, c, network, func(ch string) bool { return ch != "" && ch != gwNode.Name }, 30*time.Second)
				for deadline := time.Now().Add(30 * time.Second); pg.RepliesSince(time.Now().Add(-500*time.Millisecond)) < 20; time.Sleep(50 * time.Millisecond) {
					if time.Now().After(deadline) {
						t.Fatalf("round %d: traffic did not resume through %s within 30 s of the kill", round, r.MovedTo)
					}
				}
				restarted = time.Now()
				if err := gwNode.StartVSwitchd(); err != nil {
					t.Fatal(err)
				}
			}
			// Back on the preferred gateway, and traffic flowing again.
			waitGatewayChassis(t, c, network, func(ch string) bool { return ch == gwNode.Name }, 30*time.Second)
			if err := gwNode.WaitOVNControllerConnected(30 * time.Second); err != nil {
				t.Fatal(err)
			}
			time.Sleep(3 * time.Second)
			end := time.Now()
			replies := pg.Stop()
			got, survived := st.Finish(restarted)
			r.OutageMs = ms(sandbox.LongestGap(replies, killed.Add(-500*time.Millisecond), restarted, 10*time.Millisecond))
			r.FailbackMs = ms(sandbox.LongestGap(replies, restarted, end, 10*time.Millisecond))
			r.StreamGapMs = ms(sandbox.LongestGap(got, killed.Add(-500*time.Millisecond), end, 10*time.Millisecond))
			r.StreamSurvived = survived
			if !survived {
				r.StreamFailure = st.Why()
				t.Logf("TCP stream of round %d did not survive: %s", round, r.StreamFailure)
			}
			t.Logf("%-14s round %2d: ping outage %6.0f ms (gateway on %q during the fault), failback %6.0f ms; TCP stream gap %6.0f ms, survived %v",
				fault, round, r.OutageMs, r.MovedTo, r.FailbackMs, r.StreamGapMs, r.StreamSurvived)
			rounds = append(rounds, r)
			if err := pod.Ping(dst, 20); err != nil {
				t.Fatalf("after round %d of %s: %v", round, fault, err)
			}
		}
	}
	summarizeFailover(t, c, rounds)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// summarizeFailover logs p50 and max per fault and writes the rounds to
// E2E_REPORT_DIR.
func summarizeFailover(t *testing.T, c *sandbox.Cluster, rounds []failoverRound) {
	t.Helper()
	byFault := map[string][]failoverRound{}
	for _, r := range rounds {
		byFault[r.Fault] = append(byFault[r.Fault], r)
	}
	for fault, rs := range byFault {
		pick := func(f func(failoverRound) float64) (p50, worst float64) {
			var v []float64
			for _, r := range rs {
				v = append(v, f(r))
			}
			slices.Sort(v)
			return v[len(v)/2], v[len(v)-1]
		}
		o50, oMax := pick(func(r failoverRound) float64 { return r.OutageMs })
		f50, fMax := pick(func(r failoverRound) float64 { return r.FailbackMs })
		s50, sMax := pick(func(r failoverRound) float64 { return r.StreamGapMs })
		survived := 0
		for _, r := range rs {
			if r.StreamSurvived {
				survived++
			}
		}
		t.Logf("%s, %d rounds: ping outage p50 %.0f ms, max %.0f ms; failback p50 %.0f ms, max %.0f ms; TCP gap p50 %.0f ms, max %.0f ms; stream survived %d/%d",
			fault, len(rs), o50, oMax, f50, fMax, s50, sMax, survived, len(rs))
	}
	dir := os.Getenv("E2E_REPORT_DIR")
	if dir == "" {
		return
	}
	b, _ := json.MarshalIndent(map[string]any{"release": c.Release().Name, "rounds": rounds}, "", "  ")
	path := filepath.Join(dir, fmt.Sprintf("failover-%s.json", c.Release().Name))
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Errorf("write %s: %v", path, err)
	}
}
