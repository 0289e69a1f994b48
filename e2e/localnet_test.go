package e2e

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// physnet is the sandbox's physical network: every node maps it to its
// br-phys, whose uplink joins the "datacenter" segment the external host
// is on (main_test.go).
const (
	physnet     = "datacenter"
	physnetMTU  = 1500
	pingsOverDC = 5
)

// localnetConfig is a localnet NAD config on the sandbox's physical network
// (CNI 1.1.0, so that STATUS may be asked too), with extra fields merged in.
func localnetConfig(name string, vlan int, subnets, exclude string, extra map[string]any) []byte {
	conf := map[string]any{"cniVersion": "1.1.0", "topology": "localnet", "physicalNetworkName": physnet}
	if vlan > 0 {
		conf["vlanID"] = vlan
	}
	if exclude != "" {
		conf["excludeSubnets"] = exclude
	}
	maps.Copy(conf, extra)
	return layer2Config(name, subnets, conf)
}

func external(t *testing.T) *sandbox.ExternalHost {
	t.Helper()
	h := cluster.External()
	if h == nil {
		t.Fatal("the sandbox has no physical network")
	}
	return h
}

// uplinkDelta runs f and returns how many packets each node's physical
// uplink and geneve underlay carried meanwhile (received + sent).
func uplinkDelta(t *testing.T, n *sandbox.Node, f func()) (physical, geneve uint64) {
	t.Helper()
	count := func() (uint64, uint64) {
		prx, ptx, err := n.UplinkPackets()
		if err != nil {
			t.Fatal(err)
		}
		grx, gtx, err := n.UnderlayPackets()
		if err != nil {
			t.Fatal(err)
		}
		return prx + ptx, grx + gtx
	}
	p0, g0 := count()
	f()
	p1, g1 := count()
	return p1 - p0, g1 - g0
}

// TestLocalnetAcrossNodesAndExternal: pods on two nodes of a localnet
// network reach each other and a host on the physical network, untagged
// and on a VLAN, and the packets go over the physical uplinks, not geneve.
func TestLocalnetAcrossNodesAndExternal(t *testing.T) {
	for _, tc := range []struct {
		name   string
		vlan   int
		subnet string
	}{
		{"untagged", 0, "10.71.0.0/24"},
		{"vlan100", 100, "10.71.100.0/24"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			network := "ln-" + tc.name + "-" + randomID()[:4]
			subnet := netip.MustParsePrefix(tc.subnet)
			extAddr := netip.PrefixFrom(subnet.Addr().Next().Next().Next(), subnet.Bits()) // .3, kept out of the pool
			conf := localnetConfig(network, tc.vlan, subnet.String(), netip.PrefixFrom(extAddr.Addr(), 32).String(), nil)
			ext := external(t)
			if err := ext.AddAddress(tc.vlan, extAddr); err != nil {
				t.Fatal(err)
			}
			a, b := newPod(t, node(t, 0), "ln"), newPod(t, node(t, 1), "ln")
			resA, resB := mustAdd(t, a, "net1", conf), mustAdd(t, b, "net1", conf)
			addrA, addrB := podAddrs(t, resA)[0], podAddrs(t, resB)[0]
			if !subnet.Contains(addrA.Addr()) || !subnet.Contains(addrB.Addr()) || addrA == addrB || addrA.Addr() == extAddr.Addr() || addrB.Addr() == extAddr.Addr() {
				t.Fatalf("addresses %s and %s, want two distinct ones of %s but %s", addrA, addrB, subnet, extAddr.Addr())
			}
			// No encapsulation: the pod MTU is the uplink's.
			for _, p := range []*testPod{a, b} {
				if link := podLink(t, p, "net1"); !strings.Contains(link, fmt.Sprintf("mtu %d", physnetMTU)) {
					t.Errorf("pod %s net1 is %q, want mtu %d", p.Name, link, physnetMTU)
				}
				if routes, _ := p.Run("ip", "route", "show", "default"); strings.TrimSpace(routes) != "" {
					t.Errorf("pod %s got a default route %q; localnet pods get none unless the network selection element asks", p.Name, routes)
				}
			}
			physical, geneve := uplinkDelta(t, node(t, 0), func() {
				for _, pair := range []struct {
					from *testPod
					to   netip.Addr
				}{{a, addrB.Addr()}, {b, addrA.Addr()}, {a, extAddr.Addr()}, {b, extAddr.Addr()}} {
					if err := pair.from.Ping(pair.to, pingsOverDC); err != nil {
						t.Fatalf("%s -> %s: %v", pair.from.Name, pair.to, err)
					}
				}
				tcpEcho(t, b, a, addrB.Addr())
				tcpEchoBetween(t, endpoint{"external host", ext.NetnsPath}, endpoint{a.Name, a.NetnsPath}, extAddr.Addr())
			})
			// node0's pod sent and received at least the pings through
			// the uplink; geneve carried (nearly) nothing of it.
			if physical < 2*pingsOverDC || geneve >= pingsOverDC {
				t.Errorf("node0 uplink carried %d packets, geneve underlay %d: localnet traffic must take the physical network", physical, geneve)
			}
			// The VLAN lives on the localnet port; pod ports stay plain.
			ports := findLSPs(t, fmt.Sprintf(`external_ids:"ovn-overlay/network"="%s"`, network))
			localnets := 0
			for _, p := range ports {
				if p.Type == "localnet" {
					localnets++
					tag := nbPortColumn(t, p.Name, "tag_request")
					if want := map[bool]string{true: fmt.Sprint(tc.vlan), false: ""}[tc.vlan > 0]; tag != want {
						t.Errorf("localnet port tag_request %q, want %q", tag, want)
					}
					if opts := nbPortColumn(t, p.Name, "options"); !strings.Contains(opts, "network_name="+physnet) {
						t.Errorf("localnet port options %q lack network_name=%s", opts, physnet)
					}
					continue
				}
				if tag := nbPortColumn(t, p.Name, "tag_request"); tag != "" || strings.Contains(strings.Join(p.Addresses, " "), "unknown") || p.Type != "" {
					t.Errorf("pod port %s has type %q, tag_request %q, addresses %v: pod ports must stay plain", p.Name, p.Type, tag, p.Addresses)
				}
			}
			if localnets != 1 {
				t.Errorf("%d localnet ports, want 1", localnets)
			}
			mustDel(t, a, "net1", conf)
			mustDel(t, b, "net1", conf)
			assertClean(t, network)
		})
	}
}

// TestLocalnetVLANIsolation: two localnet networks on VLANs 100 and 200
// of one physical network, with addresses of one /24, cannot reach each
// other; the external host on VLAN 200 is reachable from VLAN 200 only.
func TestLocalnetVLANIsolation(t *testing.T) {
	id := randomID()[:4]
	subnet := "10.72.0.0/24"
	blue := localnetConfig("ln-blue-"+id, 100, subnet, "10.72.0.128/25", nil)
	red := localnetConfig("ln-red-"+id, 200, subnet, "10.72.0.0/25,10.72.0.250/32", nil)
	ext := external(t)
	extAddr := netip.MustParsePrefix("10.72.0.250/24")
	if err := ext.AddAddress(200, extAddr); err != nil {
		t.Fatal(err)
	}
	a, b := newPod(t, node(t, 0), "blue"), newPod(t, node(t, 1), "red")
	addrA := podAddrs(t, mustAdd(t, a, "net1", blue))[0].Addr()
	addrB := podAddrs(t, mustAdd(t, b, "net1", red))[0].Addr()
	// Positive control first: VLAN 200 works end to end.
	if err := b.Ping(extAddr.Addr(), pingsOverDC); err != nil {
		t.Fatalf("red pod -> external host on VLAN 200: %v", err)
	}
	for _, pair := range []struct {
		from *testPod
		to   netip.Addr
		what string
	}{{a, addrB, "blue pod -> red pod"}, {b, addrA, "red pod -> blue pod"}, {a, extAddr.Addr(), "blue pod -> external host on VLAN 200"}} {
		if err := pair.from.Ping(pair.to, 2); err == nil {
			t.Errorf("%s (%s): answered across VLANs", pair.what, pair.to)
		}
	}
}

// TestLocalnetWithoutMapping: on a node whose Open_vSwitch does not map the
// physical network, ADD fails at once with an error naming the network,
// the node and the setting, and leaves nothing behind; STATUS says so too.
// Once an admin maps it, the runtime's retry succeeds.
func TestLocalnetWithoutMapping(t *testing.T) {
	n := node(t, 1)
	vsctl := func(args ...string) string {
		out, err := n.Run(append([]string{"ovs-vsctl", "--db=" + n.OVS}, args...)...)
		if err != nil {
			t.Fatalf("ovs-vsctl %v: %v", args, err)
		}
		return strings.TrimSpace(out)
	}
	saved := vsctl("get", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings")
	vsctl("remove", "Open_vSwitch", ".", "external_ids", "ovn-bridge-mappings")
	restore := func() { vsctl("set", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings="+saved) }
	t.Cleanup(restore)

	network := "ln-unmapped-" + randomID()[:4]
	conf := localnetConfig(network, 0, "10.73.0.0/24", "", nil)
	p := newPod(t, n, "unmapped")
	_, err := add(t, p, "net1", conf)
	cniError(t, err, 11, network, physnet, n.Name, "ovn-bridge-mappings")
	_, err = invoke(t, p, "STATUS", "", conf)
	cniError(t, err, cniproto.ErrPluginNotAvailable, physnet, "ovn-bridge-mappings")
	mapped := fmt.Sprintf(`ovn_overlay_physical_network_mapped{physical_network=%q}`, physnet)
	if v, ok := metricValue(daemonMetrics(t, n), mapped); ok && v != 0 {
		t.Errorf("after STATUS on a node without the mapping, %s = %v", mapped, v)
	}
	// Nothing was made: not even the network's switch.
	if sw := nbctl(t, "--bare", "--columns=name", "find", "Logical_Switch", fmt.Sprintf(`external_ids:"ovn-overlay/network"="%s"`, network)); sw != "" {
		t.Errorf("the refused ADD created switch %q", sw)
	}
	assertClean(t, network)

	restore()
	out, err := invoke(t, p, "ADD", "net1", conf)
	if err != nil {
		t.Fatalf("ADD with the mapping back: %v", err)
	}
	t.Cleanup(func() { _, _ = invoke(t, p, "DEL", "net1", conf) })
	if _, err := invoke(t, p, "STATUS", "", conf); err != nil {
		t.Errorf("STATUS with the mapping back: %v", err)
	}
	if v, ok := metricValue(daemonMetrics(t, n), mapped); !ok || v != 1 {
		t.Errorf("after STATUS with the mapping back, %s = %v (present %v), want 1", mapped, v, ok)
	}

	// CHECK sees the node's link to the physical network: with the
	// mapping gone it says so; with it back (and ovn-controller's patch
	// port with it), CHECK passes again.
	check := localnetConfig(network, 0, "10.73.0.0/24", "", map[string]any{"prevResult": json.RawMessage(out)})
	checkUntil := func(want string) {
		t.Helper()
		var err error
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			_, err = invokeQuiet(p, "CHECK", "net1", check)
			if (want == "" && err == nil) || (want != "" && err != nil && strings.Contains(err.Error(), want)) {
				return
			}
		}
		t.Fatalf("CHECK: %v, want %q", err, want)
	}
	checkUntil("")
	vsctl("remove", "Open_vSwitch", ".", "external_ids", "ovn-bridge-mappings")
	checkUntil("drifted: no bridge mapping")
	restore()
	checkUntil("")
}

// TestLocalnetWithoutSubnets: an L2-only localnet: no addresses, port
// security by MAC; addresses the runtime asks for work across nodes.
func TestLocalnetWithoutSubnets(t *testing.T) {
	network := "ln-l2only-" + randomID()[:4]
	plain := localnetConfig(network, 300, "", "", nil)
	a := newPod(t, node(t, 0), "l2only")
	if res := mustAdd(t, a, "net1", plain); len(res.IPs) != 0 {
		t.Fatalf("got addresses %v without subnets", res.IPs)
	}
	port := nbPorts(t, network)[0]
	if ps := nbPortColumn(t, port, "port_security"); strings.Contains(ps, ".") || ps == "" {
		t.Errorf("port_security %q, want the MAC only", ps)
	}
	mustDel(t, a, "net1", plain)
	withIP := func(ip string) []byte {
		return localnetConfig(network, 300, "", "", map[string]any{"runtimeConfig": map[string]any{"ips": []string{ip}}})
	}
	b, c := newPod(t, node(t, 0), "l2only"), newPod(t, node(t, 1), "l2only")
	mustAdd(t, b, "net1", withIP("192.0.2.10/24"))
	mustAdd(t, c, "net1", withIP("192.0.2.20/24"))
	if err := b.Ping(netip.MustParseAddr("192.0.2.20"), pingsOverDC); err != nil {
		t.Fatal(err)
	}
}
