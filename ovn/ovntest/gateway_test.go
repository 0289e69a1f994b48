package ovntest_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
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
