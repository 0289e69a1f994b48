package e2e

import (
	"fmt"
	"maps"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/e2e/internal/attachcheck"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// Warm ports: every node's daemon keeps --warm-ports (default 8) logical
// switch ports per network ready, addresses included, and an ADD that lets
// the daemon pick addresses only binds and relabels one. The tests below
// read the NB with ovn-nbctl, OVS with ovs-vsctl and the pod with ip(8),
// never the daemon's caches.

// warmN is the daemons' pool size: they run with the default --warm-ports.
const warmN = 8

// warmWait bounds how long a pool may take to reach its target. It is
// longer than the daemon's 30 s recheck: the gauge is only written at the
// end of a refill pass, and a pass that ends while a cache update of a warm
// port is being handled (the port is briefly forgotten, then offered
// again) leaves it one low until the next pass.
const warmWait = 45 * time.Second

const (
	warmKeyNB       = "ovn-overlay/warm"
	containerIDKey  = "ovn-overlay/container-id"
	ifNameKey       = "ovn-overlay/ifname"
	nodeKey         = "ovn-overlay/node"
	networkKey      = "ovn-overlay/network"
	podNameKey      = "ovn-overlay/pod-name"
	podNamespaceKey = "ovn-overlay/pod-namespace"
)

// lsp is a logical switch port as the NB holds it.
type lsp = attachcheck.LSP

// findLSPs reads the logical switch ports matching ovn-nbctl find conditions.
func findLSPs(t *testing.T, conditions ...string) []lsp {
	t.Helper()
	ports, err := attachcheck.QueryLSPs(cluster, conditions...)
	if err != nil {
		t.Fatal(err)
	}
	return ports
}

// nbPortNamed reads one logical switch port; ok is false if it is gone.
func nbPortNamed(t *testing.T, name string) (lsp, bool) {
	t.Helper()
	ports := findLSPs(t, fmt.Sprintf(`name="%s"`, name))
	if len(ports) == 0 {
		return lsp{}, false
	}
	return ports[0], true
}

// nodeWarm lists a node's warm ports of a network, by name.
func nodeWarm(t *testing.T, network string, n *sandbox.Node) map[string]lsp {
	t.Helper()
	out := map[string]lsp{}
	for _, p := range findLSPs(t, fmt.Sprintf(`external_ids:"%s"="%s"`, networkKey, network),
		fmt.Sprintf(`external_ids:"%s"="%s"`, nodeKey, n.Name), fmt.Sprintf(`external_ids:"%s"="true"`, warmKeyNB)) {
		out[p.Name] = p
	}
	return out
}

// eventually polls cond until it holds or timeout passes; state describes
// what was last seen, for the failure message.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s; last seen: %s", what, timeout, state)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// waitWarm waits until node n holds exactly want warm ports of network
// and its daemon has finished a refill pass saying so (the gauge), then
// re-reads the NB: a finished pass at the target creates nothing more, so
// an overshoot shows here. It returns the ports.
func waitWarm(t *testing.T, network string, n *sandbox.Node, want int) map[string]lsp {
	t.Helper()
	gauge := fmt.Sprintf(`ovn_overlay_warm_ports_free{network="%s"}`, network)
	var nbReached time.Time // when the NB first showed want
	eventually(t, warmWait, fmt.Sprintf("%s holds %d warm ports of %s", n.Name, want, network), func() (bool, string) {
		got := nodeWarm(t, network, n)
		v, ok := metricValue(daemonMetrics(t, n), gauge)
		if len(got) == want && nbReached.IsZero() {
			nbReached = time.Now()
		}
		return len(got) == want && ok && v == float64(want),
			fmt.Sprintf("%d in the NB %v, gauge %v (present %v)", len(got), slices.Sorted(maps.Keys(got)), v, ok)
	})
	if lag := time.Since(nbReached); lag > 2*time.Second {
		t.Logf("%s: warm_ports_free{network=%q} reached %d %s after the NB did", n.Name, network, want, lag.Round(time.Second))
	}
	got := nodeWarm(t, network, n)
	if len(got) != want {
		t.Fatalf("%s: %d warm ports of %s after a refill pass reached %d: %v", n.Name, len(got), network, want, slices.Sorted(maps.Keys(got)))
	}
	return got
}

// warmNameRE is the shape of a warm port name: prefix, node, 12 hex digits.
func warmNameRE(network string, n *sandbox.Node) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta("ovn-overlay."+network+".prov."+n.Name+".") + `[0-9a-f]{12}$`)
}

// checkWarmShape asserts every warm port is named and labelled as this
// node's, holds no pod identity, and has one MAC and one address of
// subnet, secured like any attachment port.
func checkWarmShape(t *testing.T, network string, n *sandbox.Node, subnet netip.Prefix, ports map[string]lsp) {
	t.Helper()
	re := warmNameRE(network, n)
	seen := map[netip.Addr]string{}
	for name, p := range ports {
		if !re.MatchString(name) {
			t.Errorf("warm port %q is not named %s", name, re)
		}
		if p.ExternalIDs[nodeKey] != n.Name || p.ExternalIDs[containerIDKey] != "" || p.ExternalIDs[podNameKey] != "" {
			t.Errorf("warm port %s external_ids %v: want node %s and no pod identity", name, p.ExternalIDs, n.Name)
		}
		ips := p.IPs()
		if len(ips) != 1 || !subnet.Contains(ips[0]) {
			t.Errorf("warm port %s addresses %v: want one address of %s", name, p.Addresses, subnet)
			continue
		}
		if _, err := net.ParseMAC(p.MAC()); err != nil {
			t.Errorf("warm port %s addresses %v: bad MAC: %v", name, p.Addresses, err)
		}
		if !slices.Equal(p.PortSecurity, p.Addresses) {
			t.Errorf("warm port %s port_security %v, want %v", name, p.PortSecurity, p.Addresses)
		}
		if other, dup := seen[ips[0]]; dup {
			t.Errorf("warm ports %s and %s both hold %s", other, name, ips[0])
		}
		seen[ips[0]] = name
	}
}

// coldPortName is the logical switch port an ADD creates when it takes no
// warm port: named after the attachment's CNI identity.
func coldPortName(network string, p *testPod, ifName string) string {
	return attachment.ID{Network: network, ContainerID: p.containerID, IfName: ifName}.PortName()
}

// hostIf is the host end of the pod's veth (also its OVS interface) as
// the ADD result names it.
func hostIf(t *testing.T, res *current.Result) string {
	t.Helper()
	for _, i := range res.Interfaces {
		if i.Sandbox == "" {
			return i.Name
		}
	}
	t.Fatalf("ADD result %v names no host interface", res.Interfaces)
	return ""
}

// ifaceID reads the OVS interface's external_ids:iface-id on node n: the
// logical switch port ovn-controller binds it to.
func ifaceID(t *testing.T, n *sandbox.Node, iface string) string {
	t.Helper()
	out, err := n.Run("ovs-vsctl", "--db="+n.OVS, "get", "Interface", iface, "external_ids:iface-id")
	if err != nil {
		t.Fatalf("ovs-vsctl get %s iface-id: %v", iface, err)
	}
	out = strings.TrimSpace(out)
	if s, err := strconv.Unquote(out); err == nil {
		return s
	}
	return out
}

var (
	linkMACRE  = regexp.MustCompile(`link/ether (\S+)`)
	inetAddrRE = regexp.MustCompile(`inet (\S+)`)
)

// podIface reads the MAC and IPv4 addresses of an interface inside the pod.
func podIface(t *testing.T, p *testPod, ifName string) (string, []netip.Prefix) {
	t.Helper()
	link, err := p.Run("ip", "-o", "link", "show", "dev", ifName)
	if err != nil {
		t.Fatalf("ip link in pod %s: %v", p.Name, err)
	}
	m := linkMACRE.FindStringSubmatch(link)
	if m == nil {
		t.Fatalf("pod %s %s has no MAC: %q", p.Name, ifName, link)
	}
	out, err := p.Run("ip", "-o", "-4", "addr", "show", "dev", ifName)
	if err != nil {
		t.Fatalf("ip addr in pod %s: %v", p.Name, err)
	}
	var addrs []netip.Prefix
	for _, a := range inetAddrRE.FindAllStringSubmatch(out, -1) {
		addrs = append(addrs, netip.MustParsePrefix(a[1]))
	}
	return m[1], addrs
}

// portSources reads the daemon's ADD counters by port source; a source
// never used yet counts 0.
func portSources(t *testing.T, n *sandbox.Node) map[string]float64 {
	t.Helper()
	body := daemonMetrics(t, n)
	out := map[string]float64{}
	for _, s := range []string{"warm", "cold", "fixed"} {
		out[s], _ = metricValue(body, fmt.Sprintf(`ovn_overlay_add_port_source_total{source="%s"}`, s))
	}
	return out
}

// assertSourceDelta checks that the ADDs between two portSources reads
// took exactly the given sources.
func assertSourceDelta(t *testing.T, before, after map[string]float64, want map[string]float64) {
	t.Helper()
	for _, s := range []string{"warm", "cold", "fixed"} {
		if d := after[s] - before[s]; d != want[s] {
			t.Errorf("add_port_source_total{source=%q} grew by %v, want %v", s, d, want[s])
		}
	}
}

// warmServed asserts that pod p's ADD (result res) was served by one of
// the free warm ports listed before it, and that the NB port now carries
// the pod's identity and no warm mark, with the addresses it had as a warm
// port, which are the pod interface's. It returns the port's name.
func warmServed(t *testing.T, network string, p *testPod, ifName string, res *current.Result, free map[string]lsp) string {
	t.Helper()
	id := ifaceID(t, p.Node, hostIf(t, res))
	was, ok := free[id]
	if !ok {
		t.Fatalf("OVS iface-id of %s/%s is %q, not one of %s's free warm ports %v", p.Name, ifName, id, p.Node.Name, slices.Sorted(maps.Keys(free)))
	}
	now, ok := nbPortNamed(t, id)
	if !ok {
		t.Fatalf("warm port %s bound by %s/%s is gone from the NB", id, p.Name, ifName)
	}
	for k, want := range map[string]string{
		containerIDKey: p.containerID, ifNameKey: ifName, podNameKey: p.Name, podNamespaceKey: "default",
		nodeKey: p.Node.Name, networkKey: network,
	} {
		if got := now.ExternalIDs[k]; got != want {
			t.Errorf("port %s external_ids:%s = %q, want %q", id, k, got, want)
		}
	}
	if v, has := now.ExternalIDs[warmKeyNB]; has {
		t.Errorf("port %s bound by a pod still has %s=%q", id, warmKeyNB, v)
	}
	if !slices.Equal(now.Addresses, was.Addresses) || !slices.Equal(now.PortSecurity, was.PortSecurity) {
		t.Errorf("port %s addresses %v / port_security %v changed from the warm port's %v / %v",
			id, now.Addresses, now.PortSecurity, was.Addresses, was.PortSecurity)
	}
	assertPodHasPort(t, p, ifName, res, now)
	return id
}

// assertPodHasPort checks that the pod's interface and the ADD result have
// exactly the logical switch port's MAC and addresses.
func assertPodHasPort(t *testing.T, p *testPod, ifName string, res *current.Result, port lsp) {
	t.Helper()
	mac, addrs := podIface(t, p, ifName)
	if !strings.EqualFold(mac, port.MAC()) {
		t.Errorf("pod %s %s has MAC %s, port %s has %s", p.Name, ifName, mac, port.Name, port.MAC())
	}
	var podIPs []netip.Addr
	for _, a := range addrs {
		podIPs = append(podIPs, a.Addr())
	}
	if !slices.Equal(podIPs, port.IPs()) {
		t.Errorf("pod %s %s has addresses %v, port %s has %v", p.Name, ifName, addrs, port.Name, port.IPs())
	}
	if got := podAddrs(t, res); !slices.Equal(got, addrs) {
		t.Errorf("ADD result addresses %v, pod interface has %v", got, addrs)
	}
	for _, i := range res.Interfaces {
		if i.Sandbox != "" && !strings.EqualFold(i.Mac, mac) {
			t.Errorf("ADD result MAC %s, pod interface has %s", i.Mac, mac)
		}
	}
}

// TestWarmPortsServeAdds: the first ADD of a network on a node takes the
// cold path and starts that node's pool; the next ADD only binds a warm
// port, which then carries the pod; the pool refills and DEL leaves the
// other warm ports alone.
func TestWarmPortsServeAdds(t *testing.T) {
	network := "warm-l2-" + randomID()[:4]
	subnet := netip.MustParsePrefix("10.60.0.0/16")
	conf := layer2Config(network, subnet.String(), nil)
	n0, n1 := node(t, 0), node(t, 1)

	a, b := newPod(t, n0, "warm-a"), newPod(t, n1, "warm-b")
	resA, resB := mustAdd(t, a, "net1", conf), mustAdd(t, b, "net1", conf)
	// Nothing was warm yet: each first ADD created its own port.
	for _, tc := range []struct {
		pod *testPod
		res *current.Result
	}{{a, resA}, {b, resB}} {
		if id, want := ifaceID(t, tc.pod.Node, hostIf(t, tc.res)), coldPortName(network, tc.pod, "net1"); id != want {
			t.Errorf("first ADD on %s bound %q, want its own port %q", tc.pod.Node.Name, id, want)
		}
	}

	warm := map[*sandbox.Node]map[string]lsp{}
	for _, n := range []*sandbox.Node{n0, n1} {
		warm[n] = waitWarm(t, network, n, warmN)
		checkWarmShape(t, network, n, subnet, warm[n])
	}
	podIPs := map[netip.Addr]bool{podAddrs(t, resA)[0].Addr(): true, podAddrs(t, resB)[0].Addr(): true}
	for _, n := range []*sandbox.Node{n0, n1} {
		for name, p := range warm[n] {
			if podIPs[p.IPs()[0]] {
				t.Errorf("warm port %s holds pod address %s", name, p.IPs()[0])
			}
		}
	}

	// The second ADD on node0 is served by one of its warm ports.
	before := portSources(t, n0)
	c := newPod(t, n0, "warm-c")
	resC := mustAdd(t, c, "net1", conf)
	taken := warmServed(t, network, c, "net1", resC, warm[n0])
	assertSourceDelta(t, before, portSources(t, n0), map[string]float64{"warm": 1})
	if _, ok := nbPortNamed(t, coldPortName(network, c, "net1")); ok {
		t.Errorf("warm-served ADD also created %s", coldPortName(network, c, "net1"))
	}

	// The pod is on the network: it reaches the pod on the other node.
	addrB, addrC := podAddrs(t, resB)[0].Addr(), podAddrs(t, resC)[0].Addr()
	if err := c.Ping(addrB, 5); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(addrC, 5); err != nil {
		t.Fatal(err)
	}

	// The pool refills: the 7 left plus one new port, not the taken one.
	refilled := waitWarm(t, network, n0, warmN)
	checkWarmShape(t, network, n0, subnet, refilled)
	if _, ok := refilled[taken]; ok {
		t.Errorf("port %s, bound by pod %s, is warm again", taken, c.Name)
	}
	for name := range warm[n0] {
		if _, ok := refilled[name]; !ok && name != taken {
			t.Errorf("free warm port %s vanished in the refill", name)
		}
	}
	for name, port := range refilled {
		if port.IPs()[0] == addrC {
			t.Errorf("refilled warm port %s holds pod %s's address %s", name, c.Name, addrC)
		}
	}

	// DEL removes the pod's port, and only it: the warm ports stay.
	mustDel(t, c, "net1", conf)
	if _, ok := nbPortNamed(t, taken); ok {
		t.Errorf("DEL left port %s", taken)
	}
	mustDel(t, a, "net1", conf)
	mustDel(t, b, "net1", conf)
	assertClean(t, network)
	for n, want := range map[*sandbox.Node]map[string]lsp{n0: refilled, n1: warm[n1]} {
		if got := nodeWarm(t, network, n); !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want))) {
			t.Errorf("%s warm ports after DELs %v, want the same %v", n.Name, slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(want)))
		}
	}
}

// TestWarmPortCheckAndGC: CHECK finds a warm-served attachment under its
// warm port's name (and notices when OVS no longer points there); GC with
// no valid attachments removes it, and leaves the free warm ports.
func TestWarmPortCheckAndGC(t *testing.T) {
	network := "warm-gc-" + randomID()[:4]
	subnets := "10.61.0.0/16"
	conf := layer2Config(network, subnets, map[string]any{"cniVersion": "1.1.0"})
	n := node(t, 0)
	first := newPod(t, n, "gc-cold")
	mustAdd(t, first, "net1", conf)
	free := waitWarm(t, network, n, warmN)

	p := newPod(t, n, "gc-warm")
	out, err := invoke(t, p, "ADD", "net1", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = invoke(t, p, "DEL", "net1", conf) })
	r, err := current.NewResult(out)
	if err != nil {
		t.Fatalf("ADD result %q: %v", out, err)
	}
	res, err := current.GetResult(r)
	if err != nil {
		t.Fatal(err)
	}
	port := warmServed(t, network, p, "net1", res, free)

	checkConf := layer2Config(network, subnets, map[string]any{"cniVersion": "1.1.0", "prevResult": rawJSON(out)})
	if _, err := invoke(t, p, "CHECK", "net1", checkConf); err != nil {
		t.Fatalf("CHECK of a warm-served attachment: %v", err)
	}
	// The pool is full again before GC, so what GC leaves is comparable.
	warmBefore := waitWarm(t, network, n, warmN)

	// CHECK compares OVS with the warm port's name, not the name derived
	// from the attachment: rebinding the interface to the latter is drift.
	iface := hostIf(t, res)
	if _, err := n.Run("ovs-vsctl", "--db="+n.OVS, "set", "Interface", iface,
		"external_ids:iface-id="+coldPortName(network, p, "net1")); err != nil {
		t.Fatal(err)
	}
	_, err = invoke(t, p, "CHECK", "net1", checkConf)
	cniError(t, err, types.ErrInternal, "iface-id", port)

	gcConf := layer2Config(network, subnets, map[string]any{
		"cniVersion": "1.1.0", "cni.dev/valid-attachments": []map[string]string{},
	})
	if _, err := invoke(t, p, "GC", "", gcConf); err != nil {
		t.Fatalf("GC: %v", err)
	}
	if _, ok := nbPortNamed(t, port); ok {
		t.Errorf("GC left the warm-served port %s", port)
	}
	if _, ok := nbPortNamed(t, coldPortName(network, first, "net1")); ok {
		t.Errorf("GC left the cold port %s", coldPortName(network, first, "net1"))
	}
	if _, err := p.Run("ip", "link", "show", "dev", "net1"); err == nil {
		t.Errorf("GC left net1 in pod %s", p.Name)
	}
	assertClean(t, network)
	if got := nodeWarm(t, network, n); !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(warmBefore))) {
		t.Errorf("warm ports after GC %v, want the free ones untouched %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(warmBefore)))
	}
}

// TestWarmPortsOnlyWithSpareAddresses: a node keeps warm ports only while
// the range it allocates from has plenty to spare: 16x the pool on a
// layer2 network (shared by all nodes), 2x in a layer3 node subnet.
func TestWarmPortsOnlyWithSpareAddresses(t *testing.T) {
	n0, n1 := node(t, 0), node(t, 1)
	for _, tc := range []struct {
		name     string
		topology string
		subnets  string
		want     int
	}{
		// 62 usable addresses < 16*8.
		{"layer2 /26", "layer2", "10.62.0.0/26", 0},
		// 126 usable, just below 128.
		{"layer2 /25", "layer2", "10.62.1.0/25", 0},
		{"layer2 /24", "layer2", "10.62.2.0/24", warmN},
		// A /24 node subnet: 253 usable >= 2*8.
		{"layer3 /16/24", "layer3", "10.63.0.0/16/24", warmN},
		// A /28 node subnet: 13 usable < 2*8.
		{"layer3 /16/28", "layer3", "10.64.0.0/16/28", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			network := "warm-spare-" + randomID()[:4]
			conf := layer2Config(network, tc.subnets, nil)
			wantSwitch := "ovn-overlay." + network + ".layer2"
			if tc.topology == "layer3" {
				conf = layer3Config(network, tc.subnets)
				wantSwitch = "ovn-overlay." + network + ".node." + n0.Name
			}
			first := podAddrs(t, mustAdd(t, newPod(t, n0, "spare1"), "net1", conf))[0]
			warm := waitWarm(t, network, n0, tc.want)
			// Range the node allocates from: the network (layer2) or the
			// node subnet the first pod got (layer3).
			rng := first.Masked()
			if tc.topology == "layer2" {
				rng = netip.MustParsePrefix(tc.subnets)
			}
			checkWarmShape(t, network, n0, rng, warm)
			for name := range warm {
				if ls := nbctl(t, "lsp-get-ls", name); !strings.Contains(ls, "("+wantSwitch+")") {
					t.Errorf("warm port %s is on switch %q, want %s", name, ls, wantSwitch)
				}
			}
			// The second ADD binds a warm port exactly when there are some.
			before := portSources(t, n0)
			q := newPod(t, n0, "spare2")
			res := mustAdd(t, q, "net1", conf)
			if tc.want > 0 {
				warmServed(t, network, q, "net1", res, warm)
				assertSourceDelta(t, before, portSources(t, n0), map[string]float64{"warm": 1})
			} else {
				if id, want := ifaceID(t, n0, hostIf(t, res)), coldPortName(network, q, "net1"); id != want {
					t.Errorf("ADD bound %q, want its own port %q", id, want)
				}
				assertSourceDelta(t, before, portSources(t, n0), map[string]float64{"cold": 1})
			}
			waitWarm(t, network, n0, tc.want)
			// node1 never attached a pod here: it holds none.
			if got := nodeWarm(t, network, n1); len(got) != 0 {
				t.Errorf("%s, which never ADDed on %s, holds warm ports %v", n1.Name, network, slices.Sorted(maps.Keys(got)))
			}
		})
	}
}

// TestStaticIPHeldByWarmPort: a static address held by one of this node's
// free warm ports is freed for the pod (the warm port is deleted and
// replaced); one held by another node's warm port is refused, with a hint.
func TestStaticIPHeldByWarmPort(t *testing.T) {
	network := "warm-static-" + randomID()[:4]
	subnet := netip.MustParsePrefix("10.65.0.0/16")
	conf := layer2Config(network, subnet.String(), nil)
	n0, n1 := node(t, 0), node(t, 1)
	type peer struct {
		pod  *testPod
		addr netip.Addr
	}
	peers := map[*sandbox.Node]peer{}
	for _, n := range []*sandbox.Node{n0, n1} {
		pod := newPod(t, n, "static-peer")
		peers[n] = peer{pod, podAddrs(t, mustAdd(t, pod, "net1", conf))[0].Addr()}
	}
	for _, tc := range []struct {
		name   string
		holder *sandbox.Node // whose warm port holds the address
	}{
		{"own warm port", n0},
		{"other node's warm port", n1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			held := waitWarm(t, network, tc.holder, warmN)
			victim := slices.Sorted(maps.Keys(held))[0]
			ip := held[victim].IPs()[0]
			static := layer2Config(network, subnet.String(), map[string]any{
				"runtimeConfig": map[string]any{"ips": []string{netip.PrefixFrom(ip, subnet.Bits()).String()}},
			})
			p := newPod(t, n0, "static")
			before := portSources(t, n0)
			if tc.holder != n0 {
				_, err := add(t, p, "net1", static)
				cniError(t, err, types.ErrInvalidNetworkConfig, ip.String(), "pre-provisioned (warm) port of another node")
				assertSourceDelta(t, before, portSources(t, n0), map[string]float64{"fixed": 1})
				if now, ok := nbPortNamed(t, victim); !ok || !isWarmLSP(now) || !slices.Equal(now.IPs(), []netip.Addr{ip}) {
					t.Errorf("%s's warm port %s after the refused ADD: %+v (present %v), want it warm with %s", n1.Name, victim, now, ok, ip)
				}
				if _, ok := nbPortNamed(t, coldPortName(network, p, "net1")); ok {
					t.Errorf("refused ADD left port %s", coldPortName(network, p, "net1"))
				}
				if _, err := p.Run("ip", "link", "show", "dev", "net1"); err == nil {
					t.Errorf("refused ADD left net1 in pod %s", p.Name)
				}
				return
			}
			res, err := add(t, p, "net1", static)
			if err != nil {
				t.Fatalf("ADD with %s, held by own warm port %s: %v", ip, victim, err)
			}
			t.Cleanup(func() { _, _ = invoke(t, p, "DEL", "net1", static) })
			assertSourceDelta(t, before, portSources(t, n0), map[string]float64{"fixed": 1})
			if got := podAddrs(t, res); len(got) != 1 || got[0] != netip.PrefixFrom(ip, subnet.Bits()) {
				t.Fatalf("ADD result addresses %v, want %s", got, netip.PrefixFrom(ip, subnet.Bits()))
			}
			if _, ok := nbPortNamed(t, victim); ok {
				t.Errorf("warm port %s, which held %s, still exists", victim, ip)
			}
			own := coldPortName(network, p, "net1")
			port, ok := nbPortNamed(t, own)
			if !ok {
				t.Fatalf("port %s missing", own)
			}
			if id := ifaceID(t, n0, hostIf(t, res)); id != own {
				t.Errorf("OVS iface-id %q, want %q", id, own)
			}
			assertPodHasPort(t, p, "net1", res, port)
			for _, h := range findLSPs(t, fmt.Sprintf(`external_ids:"%s"="%s"`, networkKey, network)) {
				if h.Name != own && slices.Contains(h.IPs(), ip) {
					t.Errorf("port %s also holds %s", h.Name, ip)
				}
			}
			// The address works on the network, both ways across nodes.
			peer := peers[n1]
			if err := p.Ping(peer.addr, 5); err != nil {
				t.Fatal(err)
			}
			if err := peer.pod.Ping(ip, 5); err != nil {
				t.Fatal(err)
			}
			refilled := waitWarm(t, network, n0, warmN)
			if _, ok := refilled[victim]; ok {
				t.Errorf("reclaimed warm port %s is back", victim)
			}
			for name := range held {
				if _, ok := refilled[name]; !ok && name != victim {
					t.Errorf("warm port %s, which held another address, is gone", name)
				}
			}
		})
	}
}

func isWarmLSP(p lsp) bool { return attachcheck.IsWarm(p) }

// TestDaemonRestartReusesWarmPorts: a restarted daemon hands out the warm
// ports its predecessor created instead of creating new ones; the refill
// after the ADD adds exactly the one that was taken.
func TestDaemonRestartReusesWarmPorts(t *testing.T) {
	network := "warm-restart-" + randomID()[:4]
	subnet := netip.MustParsePrefix("10.66.0.0/16")
	conf := layer2Config(network, subnet.String(), nil)
	n := node(t, 0)
	p := newPod(t, n, "before")
	first := podAddrs(t, mustAdd(t, p, "net1", conf))[0]
	old := waitWarm(t, network, n, warmN)

	daemons[n.Name].Kill()
	d, err := n.StartDaemon(daemonBin, daemonArgs...)
	if err != nil {
		t.Fatal(err)
	}
	daemons[n.Name] = d
	// Starting touches nothing in the NB.
	if got := nodeWarm(t, network, n); !slices.Equal(slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(old))) {
		t.Fatalf("warm ports after restart %v, want %v", slices.Sorted(maps.Keys(got)), slices.Sorted(maps.Keys(old)))
	}

	before := portSources(t, n)
	q := newPod(t, n, "after")
	res := mustAdd(t, q, "net1", conf)
	taken := warmServed(t, network, q, "net1", res, old)
	assertSourceDelta(t, before, portSources(t, n), map[string]float64{"warm": 1})

	now := waitWarm(t, network, n, warmN)
	var kept, added []string
	for name := range now {
		if _, ok := old[name]; ok {
			kept = append(kept, name)
		} else {
			added = append(added, name)
		}
	}
	if _, ok := now[taken]; ok {
		t.Errorf("port %s, bound by pod %s, is warm again", taken, q.Name)
	}
	if len(kept) != warmN-1 || len(added) != 1 {
		t.Errorf("after restart and one ADD: %d of the %d old warm ports kept (want %d), %d created (want 1): old %v, now %v",
			len(kept), len(old), warmN-1, len(added), slices.Sorted(maps.Keys(old)), slices.Sorted(maps.Keys(now)))
	}

	// The restarted daemon serves both pods, before and after it.
	if err := q.Ping(first.Addr(), 5); err != nil {
		t.Fatal(err)
	}
	mustDel(t, p, "net1", conf)
	mustDel(t, q, "net1", conf)
	assertClean(t, network)
}
