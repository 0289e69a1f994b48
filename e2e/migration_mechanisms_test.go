package e2e

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// TestMigrationMechanisms compares OVN's two ways of moving a VM's port to
// another chassis during a live migration, on the same sandbox, the same
// VM stand-in and the same probes, by driving OVN directly: this measures
// OVN's data path, not the product (whose own hand-over, signal latency
// included, e2e/k8s measures).
//
//   - hand-over: two logical ports with the VM's MAC and address, one per
//     launcher pod; at the switch-over one NB transaction enables the
//     target's and disables the source's (OVN-Kubernetes' way, and ours).
//     The transaction is sent the moment the VM moves, as if the signal
//     were instant.
//   - multi-chassis: one logical port bound on both chassis
//     (requested-chassis=<src>,<dst>, activation-strategy=rarp), the
//     target's binding unblocked by the VM's first RARP (Kube-OVN's way).
//     After the switch-over requested-chassis becomes the target alone.
//
// Each runs E2E_MIGRATIONS rounds (default 10) on a layer2 (geneve) and a
// localnet switch; E2E_REPORT_DIR receives
// migration-mechanisms-<release>.json.
func TestMigrationMechanisms(t *testing.T) {
	report := map[string]map[string][]float64{}
	for ti, topology := range []string{"layer2", "localnet"} {
		report[topology] = map[string][]float64{}
		for mi, mechanism := range []string{"hand-over", "multi-chassis"} {
			t.Run(topology+"/"+mechanism, func(t *testing.T) {
				report[topology][mechanism] = migrationMechanism(t, topology, mechanism, fmt.Sprintf("10.97.%d.", 50+ti*2+mi))
			})
		}
	}
	for _, topology := range []string{"layer2", "localnet"} {
		for _, m := range []string{"hand-over", "multi-chassis"} {
			if g := report[topology][m]; len(g) > 0 {
				t.Logf("%s %s on OVN %s: ping gap p50 %.0f ms, max %.0f ms over %d migrations", topology, m, cluster.Release().Name, medianOf(g), slices.Max(g), len(g))
			}
		}
	}
	if dir := os.Getenv("E2E_REPORT_DIR"); dir != "" {
		b, _ := json.MarshalIndent(map[string]any{"release": cluster.Release().Name, "ping_gap_ms": report}, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, "migration-mechanisms-"+cluster.Release().Name+".json"), b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

func medianOf(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// launcher is a virt-launcher pod plumbed by hand: a veth whose pod end
// is net1 and whose node end is an OVS port bound to a logical port.
type launcher struct {
	pod    *sandbox.Pod
	node   *sandbox.Node
	hostIf string
}

func plumbLauncher(t *testing.T, n *sandbox.Node, name, mac, ifaceID string) *launcher {
	t.Helper()
	pod := newPod(t, n, name)
	l := &launcher{pod: pod.Pod, node: n, hostIf: "mig" + randomID()[:8]}
	steps := [][]string{
		{"ip", "link", "add", l.hostIf, "mtu", "1400", "type", "veth", "peer", "name", "net1", "mtu", "1400", "netns", pod.Netns},
		{"ethtool", "-K", l.hostIf, "tx", "off"},
		{"ip", "link", "set", l.hostIf, "up"},
		{"ip", "netns", "exec", pod.Netns, "ethtool", "-K", "net1", "tx", "off"},
		{"ip", "-n", pod.Netns, "link", "set", "net1", "address", mac, "up"},
		{"ovs-vsctl", "--db=" + n.OVS, "add-port", "br-int", l.hostIf, "--", "set", "Interface", l.hostIf, "external_ids:iface-id=" + ifaceID},
	}
	for _, argv := range steps {
		if _, err := n.Run(argv...); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { l.remove(t) })
	return l
}

// remove deletes the launcher's OVS port and veth, as a runtime deleting
// the pod would (through CNI DEL).
func (l *launcher) remove(t *testing.T) {
	_, _ = l.node.Run("ovs-vsctl", "--db="+l.node.OVS, "--if-exists", "del-port", l.hostIf)
	_, _ = l.node.Run("ip", "link", "del", l.hostIf)
}

func chassisOf(t *testing.T, n *sandbox.Node) string {
	t.Helper()
	out, err := n.Run("ovs-vsctl", "--db="+n.OVS, "get", "Open_vSwitch", ".", "external_ids:system-id")
	if err != nil {
		t.Fatal(err)
	}
	return strings.Trim(strings.TrimSpace(out), `"`)
}

func sbctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := node(t, 0).Run(append([]string{"ovn-sbctl", "--db=" + cluster.Central.SB}, args...)...)
	if err != nil {
		t.Fatalf("ovn-sbctl: %v", err)
	}
	return strings.TrimSpace(out)
}

// waitFor polls cond (10 s).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

func migrationMechanism(t *testing.T, topology, mechanism, net24 string) []float64 {
	ls := "migexp-" + topology + "-" + mechanism
	vmMAC, vmIP := "0a:58:0a:61:00:0a", netip.MustParseAddr(net24+"10")
	peerMAC, peerIP := "0a:58:0a:61:00:0b", netip.MustParseAddr(net24+"11")
	nbctl(t, "ls-add", ls)
	t.Cleanup(func() { nbctl(t, "--if-exists", "ls-del", ls) })
	if topology == "localnet" {
		nbctl(t, "lsp-add", ls, ls+"-ln", "--", "lsp-set-type", ls+"-ln", "localnet", "--", "lsp-set-addresses", ls+"-ln", "unknown",
			"--", "lsp-set-options", ls+"-ln", "network_name="+physnet, "--", "set", "Logical_Switch_Port", ls+"-ln", "tag_request=99")
	}
	addr := func(mac string, ip netip.Addr) string { return mac + " " + ip.String() }
	nbctl(t, "lsp-add", ls, ls+"-peer", "--", "lsp-set-addresses", ls+"-peer", addr(peerMAC, peerIP), "--", "lsp-set-port-security", ls+"-peer", addr(peerMAC, peerIP))
	nodes := []*sandbox.Node{node(t, 0), node(t, 1)}
	chassis := []string{chassisOf(t, nodes[0]), chassisOf(t, nodes[1])}
	// vmPort makes a logical port with the VM's MAC and address. Set as
	// columns, not with lsp-set-addresses, which refuses a second port
	// with one address: OVN itself takes it.
	entry := fmt.Sprintf(`"%s"`, addr(vmMAC, vmIP))
	vmPort := func(name string, extra ...string) {
		nbctl(t, append([]string{"lsp-add", ls, name, "--", "set", "Logical_Switch_Port", name,
			"addresses=" + entry, "port_security=" + entry}, extra...)...)
	}
	port := ls + "-vm" // multi-chassis: the one port; hand-over: the source's
	if mechanism == "multi-chassis" {
		vmPort(port, "options:requested-chassis="+chassis[0])
	} else {
		vmPort(port)
	}
	cur := plumbLauncher(t, nodes[0], "launcher0", vmMAC, port)
	peer := plumbLauncher(t, nodes[1], "peer", peerMAC, ls+"-peer")
	if _, err := peer.pod.Run("ip", "addr", "add", peerIP.String()+"/24", "dev", "net1"); err != nil {
		t.Fatal(err)
	}
	vm, err := nodes[0].NewVM(fmt.Sprintf("%s-%s", topology[:2], mechanism[:2]))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vm.Delete() })
	if err := vm.PlugInto(cur.pod, "net1"); err != nil {
		t.Fatal(err)
	}
	// The guest's address is configured by hand: this experiment is about
	// OVN's data path, not about how a guest gets its address.
	if _, err := vm.Run("ip", "addr", "add", vmIP.String()+"/24", "dev", "eth0"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the peer to reach the VM", func() bool { return peer.pod.Ping(vmIP, 1) == nil })
	pg, err := sandbox.StartPinger(peer.pod.Netns, vmIP)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Kill)

	var gaps []float64
	var ats []time.Time
	at := 0 // the node the VM runs on
	for round := 1; round <= migrationRounds(); round++ {
		to := 1 - at
		// The target launcher pod, as KubeVirt creates it before the
		// migration starts, and its port.
		target := port
		if mechanism == "hand-over" {
			// Disabled and without addresses, as the product makes it:
			// ovn-northd gives a disabled port's MAC a "drop" L2 lookup
			// flow that collides with the enabled port's.
			target = fmt.Sprintf("%s-vm-%d", ls, round)
			vmPort(target, "enabled=false", "addresses=[]")
		}
		next := plumbLauncher(t, nodes[to], fmt.Sprintf("launcher%d", round), vmMAC, target)
		if mechanism == "multi-chassis" {
			nbctl(t, "set", "Logical_Switch_Port", port, fmt.Sprintf(`options:requested-chassis="%s,%s"`, chassis[at], chassis[to]), "options:activation-strategy=rarp")
			waitFor(t, "the target chassis to bind as additional chassis", func() bool {
				return strings.Contains(sbctl(t, "--bare", "--columns=additional_chassis", "find", "Port_Binding", "logical_port="+port), "-")
			})
		}
		time.Sleep(300 * time.Millisecond) // the target's flows installed
		switchover := time.Now()
		if err := vm.MigrateTo(next.pod, "net1"); err != nil {
			t.Fatal(err)
		}
		if mechanism == "hand-over" {
			nbctl(t, "set", "Logical_Switch_Port", target, "enabled=true", "addresses="+entry, "--", "set", "Logical_Switch_Port", port, "enabled=false", "addresses=[]")
		}
		waitFor(t, "the VM to answer after the switch-over", func() bool { return pg.RepliesSince(switchover) > 0 })
		time.Sleep(300 * time.Millisecond)
		// The migration completes: the source pod goes.
		if mechanism == "multi-chassis" {
			nbctl(t, "set", "Logical_Switch_Port", port, "options:requested-chassis="+chassis[to], "--", "remove", "Logical_Switch_Port", port, "options", "activation-strategy")
		} else {
			nbctl(t, "lsp-del", port)
			port = target
		}
		cur.remove(t)
		cur = next
		time.Sleep(300 * time.Millisecond)
		ats = append(ats, switchover)
		at = to
	}
	replies := pg.Stop()
	for i, s := range ats {
		from, until := s.Add(-200*time.Millisecond), s.Add(2*time.Second)
		if i+1 < len(ats) && ats[i+1].Add(-200*time.Millisecond).Before(until) {
			until = ats[i+1].Add(-200 * time.Millisecond)
		}
		gaps = append(gaps, ms(sandbox.LongestGap(replies, from, until, 10*time.Millisecond)))
	}
	t.Logf("%s %s on OVN %s: ping gaps %v ms", topology, mechanism, cluster.Release().Name, gaps)
	return gaps
}

func migrationRounds() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_MIGRATIONS")); err == nil && n > 0 {
		return n
	}
	return 10
}
