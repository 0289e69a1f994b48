package gateway

import (
	"context"
	"io"
	"log/slog"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// addGateway gives network a router and a gateway on physical network
// phys's external switch (made on first use, with its localnet port).
func addGateway(t *testing.T, nb *ovn.Northbound, network, phys, addr string) string {
	t.Helper()
	ctx := context.Background()
	lr, err := nb.EnsureRouter(ctx, network+".router", map[string]string{externalids.Network: network})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{externalids.PhysicalNetwork: phys}
	ext, err := nb.EnsureSwitch(ctx, "external."+phys, ids)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := nb.EnsureLocalnetPort(ctx, ext, &nbdb.LogicalSwitchPort{Name: "external." + phys + ".physnet",
		Addresses: []string{"unknown"}, Options: map[string]string{"network_name": phys}, ExternalIDs: ids}); err != nil {
		t.Fatal(err)
	}
	ovntest.Eventually(t, "the external switch's localnet port", func() bool {
		ls, ok := nb.Switch("external." + phys)
		return ok && len(ls.Ports) > 0
	})
	ext, _ = nb.Switch("external." + phys)
	port := network + ".gw"
	if _, err := nb.EnsureGateway(ctx, ovn.GatewaySpec{
		Network: network, PhysicalNetwork: phys, Router: lr, External: ext, PortName: port,
		Requested: netip.MustParseAddr(addr),
		Pool: ovn.GatewayPool{Subnet: netip.MustParsePrefix("172.30.0.0/24"),
			First: netip.MustParseAddr("172.30.0.10"), Last: netip.MustParseAddr("172.30.0.99")},
	}); err != nil {
		t.Fatal(err)
	}
	return port
}

// chassisOf returns the gateway chassis (name→priority) of port, from
// nb's cache.
func chassisOf(nb *ovn.Northbound, port string) map[string]int {
	ports, _ := nb.GatewayPorts()
	for _, p := range ports {
		if p.Name == port {
			return p.Chassis
		}
	}
	return nil
}

// The agent makes its node a gateway chassis, at Priority, of every
// gateway on a physical network the node serves: those there when it
// starts and those made later; never of the others, and without touching
// other nodes' chassis.
func TestAgentJoinsServedGateways(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	setup := ovntest.Northbound(t, endpoint)
	early := addGateway(t, setup, "early", "dc", "172.30.0.10")
	elsewhere := addGateway(t, setup, "elsewhere", "lab", "172.30.0.20")
	ovntest.Eventually(t, "the gateways in the cache", func() bool { return chassisOf(setup, early) != nil && chassisOf(setup, elsewhere) != nil })
	// Another node is a gateway chassis of early already.
	if err := setup.JoinGateway(context.Background(), early, "chB", "nodeB", 5); err != nil {
		t.Fatal(err)
	}

	agent := &Agent{NB: ovntest.Northbound(t, endpoint), Chassis: "chA", Node: "nodeA",
		Serves: func(phys string) bool { return phys == "dc" },
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil))}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); agent.Run(stop) }()
	t.Cleanup(func() { close(stop); <-done })

	wantJoined := func(port string) {
		t.Helper()
		ovntest.Eventually(t, "chA on "+port, func() bool { _, ok := chassisOf(setup, port)["chA"]; return ok })
		if got, want := chassisOf(setup, port)["chA"], Priority("chA", port); got != want {
			t.Errorf("chA's priority on %s is %d, want Priority(chA, %s) = %d", port, got, port, want)
		}
	}
	wantJoined(early)
	// A gateway made while the agent runs: the agent wakes on router
	// port changes, well before its 30 s resync.
	late := addGateway(t, setup, "late", "dc", "172.30.0.11")
	wantJoined(late)

	if c := chassisOf(setup, early); len(c) != 2 || c["chB"] != 5 {
		t.Errorf("early's gateway chassis %v, want chA and chB (priority 5) untouched", c)
	}
	if c := chassisOf(setup, elsewhere); len(c) != 0 {
		t.Errorf("a gateway on a physical network the node does not serve has chassis %v", c)
	}
	// One row per (port, chassis): chA on early and late, chB on early.
	var rows []nbdb.GatewayChassis
	c := ovntest.ConnectNB(t, endpoint)
	if err := c.List(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	if len(rows) != 3 {
		t.Errorf("%d Gateway_Chassis rows, want 3: %+v", len(rows), rows)
	}
	for _, r := range rows {
		if r.ChassisName == "chA" && r.ExternalIDs[externalids.Node] != "nodeA" {
			t.Errorf("chA's row %+v does not name node nodeA (ReleaseNode finds it by node)", r)
		}
	}
}

// A node that stops serving a gateway's physical network (its bridge
// mapping removed, or --gateway-node=false) takes itself off the gateway,
// and only itself; serving again puts it back.
func TestAgentLeavesWhenNoLongerServing(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	setup := ovntest.Northbound(t, endpoint)
	port := addGateway(t, setup, "net", "dc", "172.30.0.10")
	ovntest.Eventually(t, "the gateway in the cache", func() bool { return chassisOf(setup, port) != nil })
	if err := setup.JoinGateway(context.Background(), port, "chB", "nodeB", 5); err != nil {
		t.Fatal(err)
	}
	var serves atomic.Bool
	serves.Store(true)
	agent := &Agent{NB: ovntest.Northbound(t, endpoint), Chassis: "chA", Node: "nodeA", Resync: 50 * time.Millisecond,
		Serves: func(string) bool { return serves.Load() },
		Log:    slog.New(slog.NewTextHandler(io.Discard, nil))}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); agent.Run(stop) }()
	t.Cleanup(func() { close(stop); <-done })

	has := func(ch string) bool { _, ok := chassisOf(setup, port)[ch]; return ok }
	ovntest.Eventually(t, "chA on the gateway", func() bool { return has("chA") })
	serves.Store(false)
	ovntest.Eventually(t, "chA off the gateway", func() bool { return !has("chA") })
	if !has("chB") {
		t.Fatalf("leaving took another node's chassis too: %v", chassisOf(setup, port))
	}
	serves.Store(true)
	ovntest.Eventually(t, "chA back on the gateway", func() bool { return has("chA") })

	// A row removed behind the agent's back comes back too.
	ports, err := setup.GatewayPorts()
	if err != nil || len(ports) != 1 {
		t.Fatalf("gateway ports %v, %v", ports, err)
	}
	if err := setup.LeaveGateway(context.Background(), ports[0], "chA"); err != nil {
		t.Fatal(err)
	}
	ovntest.Eventually(t, "chA off the gateway by hand", func() bool { return !has("chA") })
	ovntest.Eventually(t, "chA back on the gateway after its row was removed", func() bool { return has("chA") })
}
