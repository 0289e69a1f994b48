package ovntest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

var testPool = ovn.GatewayPool{
	Subnet: netip.MustParsePrefix("172.30.0.0/24"),
	First:  netip.MustParseAddr("172.30.0.10"), Last: netip.MustParseAddr("172.30.0.13"),
	NextHop: netip.MustParseAddr("172.30.0.1"),
}

// gatewaySpec readies network's router and the shared external switch
// through nb and returns the network's gateway spec.
func gatewaySpec(t *testing.T, nb *ovn.Northbound, network string, requested string) ovn.GatewaySpec {
	t.Helper()
	ctx := context.Background()
	lr, err := nb.EnsureRouter(ctx, network+".router", map[string]string{externalids.Network: network})
	if err != nil {
		t.Fatal(err)
	}
	ext, err := nb.EnsureSwitch(ctx, "external.dc", map[string]string{externalids.PhysicalNetwork: "dc"})
	if err != nil {
		t.Fatal(err)
	}
	// The shared external switch always has its localnet port, so its
	// port set is never empty (the in-memory server does not enforce a
	// guard on an empty set; ovsdb-server does: TestApplyPortsGuardOnEmptySwitch).
	if _, err := nb.EnsureLocalnetPort(ctx, ext, localnetPort("external.dc", 0)); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the external switch's localnet port", func() bool {
		ls, ok := nb.Switch("external.dc")
		return ok && len(ls.Ports) > 0
	})
	ext, _ = nb.Switch("external.dc")
	g := ovn.GatewaySpec{
		Network: network, Router: lr, External: ext, PortName: network + ".gw", MAC: "0a:58:ac:1e:00:01",
		Pool: testPool, SNAT: []netip.Prefix{netip.MustParsePrefix("10.10.20.0/24")},
	}
	if requested != "" {
		g.Requested = netip.MustParseAddr(requested)
	}
	return g
}

// Networks of several nodes meet their gateways at once: every network
// gets exactly one gateway, no two share an address, and every node
// agrees on each network's address.
func TestEnsureGatewayConcurrentAddresses(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	clients := []*ovn.Northbound{connect(t, endpoint), connect(t, endpoint), connect(t, endpoint)}
	networks := []string{"tenant-a", "tenant-b", "tenant-c"}
	// Each client sets up every network's gateway, in a different order.
	got := make([]map[string]netip.Addr, len(clients))
	errs := concurrently(len(clients), func(i int) error {
		got[i] = map[string]netip.Addr{}
		for j := range networks {
			network := networks[(i+j)%len(networks)]
			addr, err := clients[i].EnsureGateway(context.Background(), gatewaySpec(t, clients[i], network, ""))
			if err != nil {
				return fmt.Errorf("%s: %w", network, err)
			}
			got[i][network] = addr
		}
		return nil
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
	}
	seen := map[netip.Addr]string{}
	for _, network := range networks {
		addr := got[0][network]
		for i := range clients {
			if got[i][network] != addr {
				t.Fatalf("clients disagree on %s's gateway: %v", network, got)
			}
		}
		if other, dup := seen[addr]; dup {
			t.Fatalf("%s and %s share gateway address %s", network, other, addr)
		}
		if addr.Compare(testPool.First) < 0 || addr.Compare(testPool.Last) > 0 {
			t.Fatalf("%s's gateway %s is outside the pool", network, addr)
		}
		seen[addr] = network
		if n := len(named(committed[nbdb.LogicalRouterPort](t, endpoint), lrpName, network+".gw")); n != 1 {
			t.Fatalf("%s's gateway port exists %d times", network, n)
		}
	}
	// One SNAT and one default route per network, pointing at the right
	// address and next hop.
	nats := committed[nbdb.NAT](t, endpoint)
	routes := committed[nbdb.LogicalRouterStaticRoute](t, endpoint)
	if len(nats) != len(networks) || len(routes) != len(networks) {
		t.Fatalf("%d NAT rows and %d routes, want %d each", len(nats), len(routes), len(networks))
	}
	for _, nat := range nats {
		network := nat.ExternalIDs[externalids.Network]
		if nat.Type != nbdb.NATTypeSNAT || nat.LogicalIP != "10.10.20.0/24" || nat.ExternalIP != got[0][network].String() {
			t.Errorf("NAT %+v, want snat of 10.10.20.0/24 to %s", nat, got[0][network])
		}
	}
	for _, r := range routes {
		if r.IPPrefix != "0.0.0.0/0" || r.Nexthop != "172.30.0.1" {
			t.Errorf("route %+v, want 0.0.0.0/0 via 172.30.0.1", r)
		}
	}
}

// The pool runs out; a requested address is honoured unless another
// network holds it.
func TestEnsureGatewayPoolAndRequests(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	ctx := context.Background()
	if addr, err := nb.EnsureGateway(ctx, gatewaySpec(t, nb, "asks", "172.30.0.12")); err != nil || addr.String() != "172.30.0.12" {
		t.Fatalf("requested address: %v, %v", addr, err)
	}
	if _, err := nb.EnsureGateway(ctx, gatewaySpec(t, nb, "asks-too", "172.30.0.12")); !errors.Is(err, ovn.ErrGatewayIPTaken) {
		t.Fatalf("a taken address: %v, want ErrGatewayIPTaken", err)
	}
	var picked []string
	for i := range 3 { // .10, .11, .13: .12 is taken
		addr, err := nb.EnsureGateway(ctx, gatewaySpec(t, nb, fmt.Sprintf("pool-%d", i), ""))
		if err != nil {
			t.Fatal(err)
		}
		picked = append(picked, addr.String())
	}
	if !slices.Equal(picked, []string{"172.30.0.10", "172.30.0.11", "172.30.0.13"}) {
		t.Fatalf("picked %v", picked)
	}
	if _, err := nb.EnsureGateway(ctx, gatewaySpec(t, nb, "one-too-many", "")); !errors.Is(err, ovn.ErrGatewayPoolExhausted) {
		t.Fatalf("exhausted pool: %v", err)
	}
}

// Every gateway-capable node joins a gateway once, however often and
// however concurrently it asks.
func TestJoinGatewayOncePerChassis(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	clients := []*ovn.Northbound{connect(t, endpoint), connect(t, endpoint), connect(t, endpoint)}
	ctx := context.Background()
	if _, err := clients[0].EnsureGateway(ctx, gatewaySpec(t, clients[0], "ha", "")); err != nil {
		t.Fatal(err)
	}
	waitRouterPort(t, clients, "ha.gw")
	for round := range 2 {
		errs := concurrently(len(clients), func(i int) error {
			return clients[i].JoinGateway(ctx, "ha.gw", fmt.Sprintf("chassis%d", i), fmt.Sprintf("node%d", i), 10+i)
		})
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, node%d: %v", round, i, err)
			}
		}
	}
	var chassis []string
	eventually(t, "three gateway chassis in the cache", func() bool {
		chassis, _ = clients[0].GatewayChassis("ha.gw")
		return len(chassis) == 3
	})
	if !slices.Equal(chassis, []string{"chassis0", "chassis1", "chassis2"}) {
		t.Fatalf("gateway chassis %v, want chassis0..chassis2 once each", chassis)
	}
	if n := len(committed[nbdb.GatewayChassis](t, endpoint)); n != 3 {
		t.Fatalf("%d Gateway_Chassis rows, want 3", n)
	}
}

func waitRouterPort(t *testing.T, clients []*ovn.Northbound, name string) {
	t.Helper()
	for _, c := range clients {
		eventually(t, "gateway port "+name+" in every cache", func() bool { _, ok := c.RouterPort(name); return ok })
	}
}

// eventually polls ok for a few seconds: caches follow commits by events.
func eventually(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 5 s", what)
		}
	}
}

// A layer2 network's nodes link its switch to its router at once: one
// link comes out, and every node sees it.
func TestEnsureRouterLinkConcurrentCreatesOne(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	clients := []*ovn.Northbound{connect(t, endpoint), connect(t, endpoint), connect(t, endpoint)}
	ctx := context.Background()
	lr, err := clients[0].EnsureRouter(ctx, "l2.router", nil)
	if err != nil {
		t.Fatal(err)
	}
	ls, err := clients[0].EnsureSwitch(ctx, "l2.switch", nil)
	if err != nil {
		t.Fatal(err)
	}
	link := ovn.RouterLink{Router: lr, Switch: ls, PortName: "l2.rtos", MAC: "0a:58:0a:0a:14:01",
		Networks: []netip.Prefix{netip.MustParsePrefix("10.10.20.1/24")}, ExternalIDs: map[string]string{externalids.Network: "l2"}}
	raceForOne(t, "router link", clients, func(nb *ovn.Northbound) (string, error) {
		lrp, err := nb.EnsureRouterLink(ctx, link)
		if err != nil {
			return "", err
		}
		return lrp.UUID, nil
	})
	if n := len(named(committed[nbdb.LogicalRouterPort](t, endpoint), lrpName, "l2.rtos")); n != 1 {
		t.Fatalf("router port exists %d times", n)
	}
	ports := named(committed[nbdb.LogicalSwitchPort](t, endpoint), portName, "l2.rtos-lsp")
	if len(ports) != 1 || ports[0].Type != "router" || ports[0].Options["router-port"] != "l2.rtos" {
		t.Fatalf("switch end %+v", ports)
	}
	sw := waitSwitch(t, clients[0], "l2.switch", 1)
	if sw.Ports[0] != ports[0].UUID {
		t.Fatalf("switch ports %v, want the link's %s", sw.Ports, ports[0].UUID)
	}
}

// withGateway sets up network's router and gateway (gatewaySpec) and
// waits until nb's cache shows the gateway port.
func withGateway(t *testing.T, nb *ovn.Northbound, network string) ovn.GatewaySpec {
	t.Helper()
	g := gatewaySpec(t, nb, network, "")
	if _, err := nb.EnsureGateway(context.Background(), g); err != nil {
		t.Fatalf("gateway of %s: %v", network, err)
	}
	waitRouterPort(t, []*ovn.Northbound{nb}, g.PortName)
	return g
}

// waitRouter waits until nb's cache shows router name with nPorts ports
// and returns it: DeleteNetworkIfUnused guards on the router it is given,
// so it must be given a current one.
func waitRouter(t *testing.T, nb *ovn.Northbound, name string, nPorts int) *nbdb.LogicalRouter {
	t.Helper()
	var lr *nbdb.LogicalRouter
	eventually(t, fmt.Sprintf("router %s with %d ports in the cache", name, nPorts), func() bool {
		var ok bool
		lr, ok = nb.Router(name)
		return ok && len(lr.Ports) == nPorts
	})
	return lr
}

// ofNetwork keeps the rows whose external_ids name network.
func ofNetwork[T any](rows []T, ids func(*T) map[string]string, network string) []T {
	var out []T
	for i := range rows {
		if ids(&rows[i])[externalids.Network] == network {
			out = append(out, rows[i])
		}
	}
	return out
}

func natIDs(n *nbdb.NAT) map[string]string                        { return n.ExternalIDs }
func routeIDs(r *nbdb.LogicalRouterStaticRoute) map[string]string { return r.ExternalIDs }
func gcIDs(gc *nbdb.GatewayChassis) map[string]string             { return gc.ExternalIDs }
func lrpIDs(lrp *nbdb.LogicalRouterPort) map[string]string        { return lrp.ExternalIDs }
func routerIDs(lr *nbdb.LogicalRouter) map[string]string          { return lr.ExternalIDs }
func lspIDs(lsp *nbdb.LogicalSwitchPort) map[string]string        { return lsp.ExternalIDs }
func committedSwitch(t *testing.T, endpoint, name string) *nbdb.LogicalSwitch {
	t.Helper()
	switches := named(committed[nbdb.LogicalSwitch](t, endpoint), switchName, name)
	if len(switches) != 1 {
		return nil
	}
	return &switches[0]
}

// networkRows counts what the NB holds of network's router and gateway.
func networkRows(t *testing.T, endpoint, network string) map[string]int {
	t.Helper()
	return map[string]int{
		"Logical_Router":              len(ofNetwork(committed[nbdb.LogicalRouter](t, endpoint), routerIDs, network)),
		"Logical_Router_Port":         len(ofNetwork(committed[nbdb.LogicalRouterPort](t, endpoint), lrpIDs, network)),
		"NAT":                         len(ofNetwork(committed[nbdb.NAT](t, endpoint), natIDs, network)),
		"Logical_Router_Static_Route": len(ofNetwork(committed[nbdb.LogicalRouterStaticRoute](t, endpoint), routeIDs, network)),
		"Gateway_Chassis":             len(ofNetwork(committed[nbdb.GatewayChassis](t, endpoint), gcIDs, network)),
		"Logical_Switch_Port":         len(ofNetwork(committed[nbdb.LogicalSwitchPort](t, endpoint), lspIDs, network)),
	}
}

// assertExternalSwitch checks that the shared external switch and its
// localnet port are there, and that its ports are exactly the localnet
// port and the switch ends of the gateways named.
func assertExternalSwitch(t *testing.T, endpoint string, gatewayPorts ...string) {
	t.Helper()
	ext := committedSwitch(t, endpoint, "external.dc")
	if ext == nil {
		t.Fatal("the shared external switch is gone")
	}
	ports := committed[nbdb.LogicalSwitchPort](t, endpoint)
	byUUID := map[string]string{}
	for _, p := range ports {
		byUUID[p.UUID] = p.Name
	}
	var got []string
	for _, u := range ext.Ports {
		name, ok := byUUID[u]
		if !ok {
			t.Errorf("the external switch refers to port %s, which does not exist", u)
		}
		got = append(got, name)
	}
	want := []string{"external.dc.physnet"}
	for _, gw := range gatewayPorts {
		want = append(want, gw+"-lsp")
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("external switch ports %v, want %v", got, want)
	}
	if ln := named(ports, portName, "external.dc.physnet"); len(ln) != 1 || ln[0].Type != ovn.LocalnetPortType {
		t.Errorf("the external switch's localnet port: %+v", ln)
	}
}

// The last node out of a network with a gateway removes the router and
// with it the gateway: its port, SNAT, route and gateway chassis; the
// gateway's end leaves the shared external switch, which stays with its
// localnet port and the other networks' gateways.
func TestDeleteNetworkIfUnusedRemovesGateway(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	ctx := context.Background()
	gone := withGateway(t, nb, "gone")
	stays := withGateway(t, nb, "stays")
	if gone.External.Name != "external.dc" {
		t.Fatalf("gatewaySpec's external switch is %q: the test reads external.dc", gone.External.Name)
	}
	for _, g := range []ovn.GatewaySpec{gone, stays} {
		if err := nb.JoinGateway(ctx, g.PortName, "ch1", "node1", 7); err != nil {
			t.Fatal(err)
		}
		if err := nb.JoinGateway(ctx, g.PortName, "ch2", "node2", 9); err != nil {
			t.Fatal(err)
		}
		eventually(t, g.PortName+"'s gateway chassis in the cache", func() bool {
			c, _ := nb.GatewayChassis(g.PortName)
			return len(c) == 2
		})
	}
	// The gateway's switch end records the switch it is on: that is how
	// DeleteNetworkIfUnused finds it.
	if lrp, _ := nb.RouterPort(gone.PortName); lrp.ExternalIDs[externalids.Switch] != "external.dc" {
		t.Fatalf("gateway port external_ids %v, want %s=external.dc", lrp.ExternalIDs, externalids.Switch)
	}
	want := map[string]int{"Logical_Router": 1, "Logical_Router_Port": 1, "NAT": 1, "Logical_Router_Static_Route": 1, "Gateway_Chassis": 2, "Logical_Switch_Port": 1}
	for _, network := range []string{"gone", "stays"} {
		if got := networkRows(t, endpoint, network); !maps.Equal(got, want) {
			t.Fatalf("before: %s's rows %v, want %v", network, got, want)
		}
	}
	assertExternalSwitch(t, endpoint, gone.PortName, stays.PortName)
	if !slices.Contains(nb.EmptyNetworks(), "gone") {
		t.Errorf("EmptyNetworks %v lacks gone: its router holds nothing of any node", nb.EmptyNetworks())
	}

	lr := waitRouter(t, nb, "gone.router", 1)
	deleted, err := nb.DeleteNetworkIfUnused(ctx, "gone", nil, lr)
	if err != nil || !deleted {
		t.Fatalf("DeleteNetworkIfUnused = %v, %v; want true, nil", deleted, err)
	}
	if got := networkRows(t, endpoint, "gone"); slices.ContainsFunc(slices.Collect(maps.Values(got)), func(n int) bool { return n != 0 }) {
		t.Errorf("after: gone's rows %v, want none", got)
	}
	if n := len(named(committed[nbdb.LogicalSwitchPort](t, endpoint), portName, gone.PortName+"-lsp")); n != 0 {
		t.Errorf("the gateway's switch end %s-lsp outlived the gateway", gone.PortName)
	}
	if got := networkRows(t, endpoint, "stays"); !maps.Equal(got, want) {
		t.Errorf("after: the other network's rows %v, want %v", got, want)
	}
	assertExternalSwitch(t, endpoint, stays.PortName)
	// And the other network's gateway is intact: its chassis are still
	// on its port.
	for _, lrp := range named(committed[nbdb.LogicalRouterPort](t, endpoint), lrpName, stays.PortName) {
		if len(lrp.GatewayChassis) != 2 {
			t.Errorf("%s has gateway chassis %v, want 2", stays.PortName, lrp.GatewayChassis)
		}
	}
	eventually(t, "gone's router out of the cache", func() bool { _, ok := nb.Router("gone.router"); return !ok })
	if slices.Contains(nb.EmptyNetworks(), "gone") {
		t.Errorf("EmptyNetworks %v still lists gone", nb.EmptyNetworks())
	}
}

// A router holding a node's port or subnet claim is in use: the network
// stays, gateway and all.
func TestDeleteNetworkIfUnusedKeepsRouterOfANode(t *testing.T) {
	for _, tt := range []struct {
		name string
		// hold gives network's router something of node1's.
		hold func(t *testing.T, nb *ovn.Northbound, network string, lr *nbdb.LogicalRouter)
	}{{
		name: "node's router port",
		hold: func(t *testing.T, nb *ovn.Northbound, network string, lr *nbdb.LogicalRouter) {
			ls, err := nb.EnsureSwitch(context.Background(), network+"-node1", map[string]string{externalids.Network: network, externalids.Node: "node1"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nb.EnsureRouterLink(context.Background(), ovn.RouterLink{Router: lr, Switch: ls, PortName: network + "-rtos-node1",
				MAC: "0a:58:0a:80:01:01", Networks: []netip.Prefix{netip.MustParsePrefix("10.128.1.1/24")},
				ExternalIDs: map[string]string{externalids.Network: network, externalids.Node: "node1"}}); err != nil {
				t.Fatal(err)
			}
		},
	}, {
		name: "node's subnet claim alone",
		hold: func(t *testing.T, nb *ovn.Northbound, network string, lr *nbdb.LogicalRouter) {
			// The claim alone: its router port does not name the node.
			c := nodeClaim(lr, network, "node1", "10.128.1.0/24")
			delete(c.RouterPort.ExternalIDs, externalids.Node)
			if err := nb.ClaimNode(context.Background(), c); err != nil {
				t.Fatal(err)
			}
		},
	}} {
		t.Run(tt.name, func(t *testing.T) {
			endpoint := ovntest.StartNB(t)
			nb := connect(t, endpoint)
			ctx := context.Background()
			const network = "held"
			g := withGateway(t, nb, network)
			if err := nb.JoinGateway(ctx, g.PortName, "ch1", "node1", 7); err != nil {
				t.Fatal(err)
			}
			tt.hold(t, nb, network, waitRouter(t, nb, "held.router", 1))
			lr := waitRouter(t, nb, "held.router", 2)
			before := networkRows(t, endpoint, network)
			if slices.Contains(nb.EmptyNetworks(), network) {
				t.Errorf("EmptyNetworks %v lists a network a node holds", nb.EmptyNetworks())
			}
			deleted, err := nb.DeleteNetworkIfUnused(ctx, network, nil, lr)
			if err != nil || deleted {
				t.Fatalf("DeleteNetworkIfUnused = %v, %v; want false, nil", deleted, err)
			}
			if after := networkRows(t, endpoint, network); !maps.Equal(after, before) || after["NAT"] != 1 || after["Gateway_Chassis"] != 1 {
				t.Errorf("rows before %v, after %v: want them all kept", before, after)
			}
			assertExternalSwitch(t, endpoint, g.PortName)
		})
	}
}

// A layer2 network with external connectivity: its switch's only port is
// the link to its router, which has the gateway. Nothing of any node:
// EmptyNetworks lists it and DeleteNetworkIfUnused removes switch,
// router, link and gateway in one go. With a pod on the switch it stays.
func TestDeleteNetworkIfUnusedLayer2WithGateway(t *testing.T) {
	for _, withPod := range []bool{false, true} {
		t.Run(map[bool]string{false: "link only", true: "link and a pod"}[withPod], func(t *testing.T) {
			endpoint := ovntest.StartNB(t)
			nb := connect(t, endpoint)
			ctx := context.Background()
			const network = "l2ext"
			ls, err := nb.EnsureSwitch(ctx, network, map[string]string{externalids.Network: network})
			if err != nil {
				t.Fatal(err)
			}
			g := withGateway(t, nb, network)
			if _, err := nb.EnsureRouterLink(ctx, ovn.RouterLink{Router: g.Router, Switch: ls, PortName: network + ".rtos",
				MAC: "0a:58:0a:0a:14:01", Networks: []netip.Prefix{netip.MustParsePrefix("10.10.20.1/24")},
				ExternalIDs: map[string]string{externalids.Network: network}}); err != nil {
				t.Fatal(err)
			}
			if err := nb.JoinGateway(ctx, g.PortName, "ch1", "node1", 7); err != nil {
				t.Fatal(err)
			}
			ls = waitSwitch(t, nb, network, 1)
			if withPod {
				if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{pod(network+"-p", "node1", network, "10.10.20.5")}, Guard: true}); err != nil {
					t.Fatal(err)
				}
				ls = waitSwitch(t, nb, network, 2)
			}
			lr := waitRouter(t, nb, network+".router", 2)
			eventually(t, "the gateway chassis in the cache", func() bool { c, _ := nb.GatewayChassis(g.PortName); return len(c) == 1 })
			before := networkRows(t, endpoint, network)
			if !withPod && !slices.Contains(nb.EmptyNetworks(), network) {
				t.Errorf("EmptyNetworks %v lacks %s", nb.EmptyNetworks(), network)
			}

			deleted, err := nb.DeleteNetworkIfUnused(ctx, network, ls, lr)
			if err != nil {
				t.Fatal(err)
			}
			if deleted == withPod {
				t.Fatalf("deleted = %v with a pod = %v", deleted, withPod)
			}
			if withPod {
				if after := networkRows(t, endpoint, network); !maps.Equal(after, before) {
					t.Errorf("rows before %v, after %v: want them all kept", before, after)
				}
				if committedSwitch(t, endpoint, network) == nil {
					t.Error("the switch with a pod is gone")
				}
				assertExternalSwitch(t, endpoint, g.PortName)
				// A network with a pod holds something of a node: it is
				// not empty, whatever its router holds.
				if slices.Contains(nb.EmptyNetworks(), network) {
					// A layer2 network's router holds no node's rows:
					// its switch must decide.
					t.Errorf("EmptyNetworks %v lists %s although its switch holds a pod", nb.EmptyNetworks(), network)
				}
				return
			}
			if got := networkRows(t, endpoint, network); slices.ContainsFunc(slices.Collect(maps.Values(got)), func(n int) bool { return n != 0 }) {
				t.Errorf("after: %s's rows %v, want none", network, got)
			}
			if committedSwitch(t, endpoint, network) != nil {
				t.Error("the network's switch outlived it")
			}
			for _, name := range []string{network + ".rtos-lsp", g.PortName + "-lsp"} {
				if n := len(named(committed[nbdb.LogicalSwitchPort](t, endpoint), portName, name)); n != 0 {
					t.Errorf("switch port %s outlived the network", name)
				}
			}
			assertExternalSwitch(t, endpoint)
			eventually(t, "the network out of the cache", func() bool {
				_, sw := nb.Switch(network)
				_, rt := nb.Router(network + ".router")
				return !sw && !rt
			})
			if slices.Contains(nb.EmptyNetworks(), network) {
				t.Errorf("EmptyNetworks %v still lists %s", nb.EmptyNetworks(), network)
			}
		})
	}
}

// A node gone for good leaves every gateway it was a chassis of; the
// other nodes' gateway chassis and the gateways themselves stay.
func TestReleaseNodeLeavesGateways(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	ctx := context.Background()
	gateways := []ovn.GatewaySpec{withGateway(t, nb, "gw-a"), withGateway(t, nb, "gw-b")}
	for _, g := range gateways {
		for _, n := range []struct {
			chassis, node string
			prio          int
		}{{"chX", "nodeX", 20}, {"chY", "nodeY", 10}} {
			if err := nb.JoinGateway(ctx, g.PortName, n.chassis, n.node, n.prio); err != nil {
				t.Fatal(err)
			}
		}
		eventually(t, g.PortName+"'s two chassis in the cache", func() bool { c, _ := nb.GatewayChassis(g.PortName); return len(c) == 2 })
	}
	if nodes := nb.NodesWithRows(); !slices.Contains(nodes, "nodeX") || !slices.Contains(nodes, "nodeY") {
		t.Fatalf("NodesWithRows %v, want nodeX and nodeY (gateway chassis)", nodes)
	}

	summary, err := nb.ReleaseNode(ctx, "nodeX")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(summary, "2 gateways left") {
		t.Errorf("summary %q, want 2 gateways left", summary)
	}
	gcs := committed[nbdb.GatewayChassis](t, endpoint)
	byUUID := map[string]nbdb.GatewayChassis{}
	for _, gc := range gcs {
		byUUID[gc.UUID] = gc
		if gc.ChassisName != "chY" || gc.ExternalIDs[externalids.Node] != "nodeY" {
			t.Errorf("Gateway_Chassis %+v outlived nodeX's release", gc)
		}
	}
	if len(gcs) != 2 {
		t.Errorf("%d Gateway_Chassis rows, want nodeY's two", len(gcs))
	}
	lrps := committed[nbdb.LogicalRouterPort](t, endpoint)
	for _, g := range gateways {
		ports := named(lrps, lrpName, g.PortName)
		if len(ports) != 1 {
			t.Fatalf("gateway port %s exists %d times", g.PortName, len(ports))
		}
		if refs := ports[0].GatewayChassis; len(refs) != 1 || byUUID[refs[0]].ChassisName != "chY" || byUUID[refs[0]].Priority != 10 {
			t.Errorf("%s's gateway chassis %v, want nodeY's only", g.PortName, refs)
		}
		eventually(t, g.PortName+" with chY only in the cache", func() bool {
			c, _ := nb.GatewayChassis(g.PortName)
			return slices.Equal(c, []string{"chY"})
		})
		if got := networkRows(t, endpoint, g.Network); got["NAT"] != 1 || got["Logical_Router_Static_Route"] != 1 || got["Logical_Router"] != 1 {
			t.Errorf("%s's rows after releasing a chassis: %v", g.Network, got)
		}
	}
	assertExternalSwitch(t, endpoint, gateways[0].PortName, gateways[1].PortName)
	eventually(t, "nodeX out of NodesWithRows", func() bool { return !slices.Contains(nb.NodesWithRows(), "nodeX") })
	if !slices.Contains(nb.NodesWithRows(), "nodeY") {
		t.Errorf("NodesWithRows %v lost nodeY", nb.NodesWithRows())
	}
	if summary, err := nb.ReleaseNode(ctx, "nodeX"); err != nil || !strings.Contains(summary, "nothing owned") {
		t.Errorf("second release: %q, %v", summary, err)
	}
}
