package e2e

import (
	"encoding/json"
	"net/netip"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// layer3Config is a layer3 NAD config.
func layer3Config(name, subnets string) []byte {
	return layer2Config(name, subnets, map[string]any{"topology": "layer3"})
}

// pingVia pings dst from the pod bound to ifName, so overlapping networks
// in one pod cannot pick each other's routes.
func pingVia(t *testing.T, p *testPod, ifName string, dst netip.Addr) {
	t.Helper()
	var err error
	for i := 0; i < 5; i++ {
		if _, err = p.Run("ping", "-c", "1", "-W", "1", "-I", ifName, dst.String()); err == nil {
			return
		}
	}
	t.Fatalf("pod %s cannot reach %s via %s: %v", p.Name, dst, ifName, err)
}

func TestSpecLayer3AcrossNodes(t *testing.T) {
	conf := []byte(netconf.SpecLayer3Config)
	a, b := newPod(t, node(t, 0), "l3a"), newPod(t, node(t, 1), "l3b")
	resA, resB := mustAdd(t, a, "net1", conf), mustAdd(t, b, "net1", conf)
	addrA, addrB := podAddrs(t, resA)[0], podAddrs(t, resB)[0]
	cluster := netip.MustParsePrefix("10.128.0.0/16")
	if !cluster.Contains(addrA.Addr()) || !cluster.Contains(addrB.Addr()) || addrA.Bits() != 24 || addrB.Bits() != 24 {
		t.Fatalf("addresses %s, %s: want /24 node subnets of %s", addrA, addrB, cluster)
	}
	if addrA.Masked() == addrB.Masked() {
		t.Fatalf("both nodes use node subnet %s", addrA.Masked())
	}
	// Routed: the route to the whole network goes via the node gateway,
	// and there is no default route.
	routes, err := a.Run("ip", "route", "show", "dev", "net1")
	if err != nil {
		t.Fatal(err)
	}
	gw := addrA.Masked().Addr().Next()
	if !strings.Contains(routes, "10.128.0.0/16 via "+gw.String()) || strings.Contains(routes, "default") {
		t.Errorf("pod routes %q: want 10.128.0.0/16 via %s and no default route", routes, gw)
	}
	if len(resA.IPs) != 1 || resA.IPs[0].Gateway.String() != gw.String() {
		t.Errorf("result IPs %v: want gateway %s", resA.IPs, gw)
	}
	pingVia(t, a, "net1", addrB.Addr())
	pingVia(t, b, "net1", addrA.Addr())
	tcpEcho(t, b, a, addrB.Addr())
	// Each node's switch holds its own subnet.
	out := nbctl(t, "--bare", "--columns=external_ids", "find", "Logical_Router", "name=ovn-overlay.l3-network.router")
	for _, n := range cluster2Nodes(t) {
		if !strings.Contains(out, "ovn-overlay/node-subnets/"+n) {
			t.Errorf("router claims %q lack node %s", out, n)
		}
	}
}

func cluster2Nodes(t *testing.T) []string {
	return []string{node(t, 0).Name, node(t, 1).Name}
}

func TestLayer3DualStack(t *testing.T) {
	network := "l3-dual-" + randomID()[:4]
	conf := layer3Config(network, "10.140.0.0/16/24,fd00:140::/48/64")
	a, b := newPod(t, node(t, 0), "dual"), newPod(t, node(t, 1), "dual")
	addrA, addrB := podAddrs(t, mustAdd(t, a, "net1", conf)), podAddrs(t, mustAdd(t, b, "net1", conf))
	if len(addrA) != 2 || len(addrB) != 2 {
		t.Fatalf("want an IPv4 and an IPv6 address each, got %v and %v", addrA, addrB)
	}
	for i := range addrA {
		if addrA[i].Masked() == addrB[i].Masked() {
			t.Errorf("both nodes got node subnet %s", addrA[i].Masked())
		}
		pingVia(t, a, "net1", addrB[i].Addr())
		pingVia(t, b, "net1", addrA[i].Addr())
	}
}

// TestLayer3SeveralSubnetsPerFamily: a pod gets an address from its node's
// slice of every cluster subnet, and a route to each cluster subnet via
// that slice's gateway (two subnets of one family used to make ADD fail:
// "a different route ... already exists").
func TestLayer3SeveralSubnetsPerFamily(t *testing.T) {
	for _, tc := range []struct{ name, subnets string }{
		{"two IPv4", "10.230.0.0/16/24,10.231.0.0/16/24"},
		{"two IPv4 and IPv6", "10.232.0.0/16/24,10.233.0.0/16/24,fd00:232::/48/64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			network := "l3-multi-" + randomID()[:4]
			conf := layer3Config(network, tc.subnets)
			a, b := newPod(t, node(t, 0), "multi"), newPod(t, node(t, 1), "multi")
			resA, resB := mustAdd(t, a, "net1", conf), mustAdd(t, b, "net1", conf)
			addrA, addrB := podAddrs(t, resA), podAddrs(t, resB)
			want := len(strings.Split(tc.subnets, ","))
			if len(addrA) != want || len(addrB) != want || len(resA.Routes) != want {
				t.Fatalf("want %d addresses and routes each, got %v, %v and routes %v", want, addrA, addrB, resA.Routes)
			}
			for i, ip := range resA.IPs {
				if gw, ok := netip.AddrFromSlice(ip.Gateway); !ok || !addrA[i].Contains(gw.Unmap()) {
					t.Errorf("address %s has gateway %v, want the gateway of its own node subnet", addrA[i], ip.Gateway)
				}
			}
			for i := range addrA {
				pingVia(t, a, "net1", addrB[i].Addr())
				pingVia(t, b, "net1", addrA[i].Addr())
			}
			checkConf := layer2Config(network, tc.subnets, map[string]any{"topology": "layer3", "prevResult": resultJSON(t, resA)})
			if _, err := invoke(t, a, "CHECK", "net1", checkConf); err != nil {
				t.Errorf("CHECK: %v", err)
			}
		})
	}
}

func TestOverlappingNetworksStayIsolated(t *testing.T) {
	x, y := "iso-x-"+randomID()[:4], "iso-y-"+randomID()[:4]
	static := func(network, ip string) []byte {
		return layer2Config(network, "10.150.0.0/24", map[string]any{"runtimeConfig": map[string]any{"ips": []string{ip}}})
	}
	p := newPod(t, node(t, 0), "iso-p")
	mustAdd(t, p, "net1", static(x, "10.150.0.1/24"))
	q1, q2 := newPod(t, node(t, 1), "iso-q1"), newPod(t, node(t, 1), "iso-q2")
	mustAdd(t, q1, "net1", static(y, "10.150.0.1/24"))
	mustAdd(t, q2, "net1", static(y, "10.150.0.2/24"))
	// Same addresses on both networks is fine; traffic must not cross.
	if err := q1.Ping(netip.MustParseAddr("10.150.0.2"), 3); err != nil {
		t.Fatalf("within network y: %v", err)
	}
	if _, err := p.Run("ping", "-c", "2", "-W", "1", "10.150.0.2"); err == nil {
		t.Fatal("a pod of network x reached 10.150.0.2, which only exists on network y")
	}
}

func TestLayer3PodExhaustionInNodeSubnet(t *testing.T) {
	network := "l3-tiny-" + randomID()[:4]
	// A /30 per node: network address, gateway, one pod, broadcast.
	conf := layer3Config(network, "10.171.0.0/24/30")
	n := node(t, 0)
	mustAdd(t, newPod(t, n, "tiny1"), "net1", conf)
	_, err := add(t, newPod(t, n, "tiny2"), "net1", conf)
	cniError(t, err, types.ErrInternal, "out of addresses")
}

func TestReleaseNodeFreesItsSubnetAndPorts(t *testing.T) {
	network := "l3-release-" + randomID()[:4]
	conf := layer3Config(network, "10.172.0.0/16/24")
	n := node(t, 1)
	p := newPod(t, n, "released")
	mustAdd(t, p, "net1", conf)

	out, err := sandbox.RunIn("", ctlBin, "--nb-address="+cluster.Central.NB, "release-node", n.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "released node "+n.Name) || !strings.Contains(out, "10.172.") {
		t.Errorf("release-node printed %q", out)
	}
	claims := nbctl(t, "--bare", "--columns=external_ids", "find", "Logical_Router", "name=ovn-overlay."+network+".router")
	if strings.Contains(claims, "node-subnets/"+n.Name) {
		t.Errorf("claim of %s survived release: %s", n.Name, claims)
	}
	if sw := nbctl(t, "--bare", "--columns=name", "find", "Logical_Switch", "name=ovn-overlay."+network+".node."+n.Name); sw != "" {
		t.Errorf("node switch survived release: %s", sw)
	}
	if ports := nbPorts(t, network); len(ports) != 0 {
		t.Errorf("ports survived release: %v", ports)
	}
	assertAddressSet(t, network, "default", nil)

	// The node comes back: a restarted daemon cleans up the pod's local
	// leftovers on DEL and claims a subnet again on the next ADD.
	daemons[n.Name].Kill()
	d, err := n.StartDaemon(daemonBin, daemonArgs...)
	if err != nil {
		t.Fatal(err)
	}
	daemons[n.Name] = d
	mustDel(t, p, "net1", conf)
	q := newPod(t, n, "rejoined")
	if got := podAddrs(t, mustAdd(t, q, "net1", conf)); len(got) != 1 || !netip.MustParsePrefix("10.172.0.0/16").Contains(got[0].Addr()) {
		t.Fatalf("rejoined node got %v", got)
	}
}

// TestOverlappingNetworksInOnePod attaches each pod to a layer3 network and
// a layer2 network inside it (as the multi-homing guide's examples do).
// Replies must leave by the interface the request came in on, or the layer3
// reply is sent onto the layer2 network's more specific on-link route.
func TestOverlappingNetworksInOnePod(t *testing.T) {
	l3 := layer3Config("ov-l3-"+randomID()[:4], "10.200.0.0/16/24")
	// The layer2 range overlaps node1's layer3 subnet; its addresses start
	// at .129 so no address is held twice.
	l2 := layer2Config("ov-l2-"+randomID()[:4], "10.200.0.0/24", map[string]any{"excludeSubnets": "10.200.0.0/25"})
	var pods []*testPod
	addrs := map[*testPod]map[string]netip.Addr{}
	for i := 0; i < 2; i++ {
		p := newPod(t, node(t, i), "overlap")
		addrs[p] = map[string]netip.Addr{
			"net1": podAddrs(t, mustAdd(t, p, "net1", l3))[0].Addr(),
			"net2": podAddrs(t, mustAdd(t, p, "net2", l2))[0].Addr(),
		}
		pods = append(pods, p)
	}
	for _, src := range pods {
		for _, dst := range pods {
			if src == dst {
				continue
			}
			for _, ifName := range []string{"net1", "net2"} {
				pingVia(t, src, ifName, addrs[dst][ifName])
			}
		}
	}
}

// resultJSON is an ADD result as the runtime would pass it back in
// prevResult.
func resultJSON(t *testing.T, res *current.Result) rawJSON {
	t.Helper()
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
