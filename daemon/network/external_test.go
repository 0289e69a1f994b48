package network

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// A layer2 network with external connectivity, set up by two nodes: both
// agree on its gateway address (from the operator's range), its router
// takes the subnet's first address, which no pod gets, and its pods route
// the external subnet via that address. CheckGateway reports a gateway no
// node can host until one joins it (and setup waited gatewayChassisWait
// for one, in vain).
func TestExternalLayer2(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	ctx := context.Background()
	opts := Options{External: testExternal(t)}
	a, b := simNodeWith(t, endpoint, "node-a", opts, nil), simNodeWith(t, endpoint, "node-b", opts, nil)
	conf := extConf(t, "l2x", "layer2", "10.207.0.0/29")
	na, err := a.Get(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.Get(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	gw := na.ExternalIP()
	if gw != nb.ExternalIP() || gw.Less(netip.MustParseAddr("172.30.0.10")) || netip.MustParseAddr("172.30.0.99").Less(gw) {
		t.Fatalf("gateway addresses %s (node a) and %s (node b), want one address of 172.30.0.10-99", gw, nb.ExternalIP())
	}
	router := netip.MustParseAddr("10.207.0.1")
	wantRoutes := []netns.Route{{Dst: netip.MustParsePrefix("172.30.0.0/24"), Gateway: router}}
	if fmt.Sprint(na.Routes()) != fmt.Sprint(wantRoutes) || fmt.Sprint(na.Gateways()) != fmt.Sprint([]netip.Addr{router}) {
		t.Errorf("routes %v and gateways %v, want %v via %s", na.Routes(), na.Gateways(), wantRoutes, router)
	}
	// A /29 has six addresses: the router's and five for pods.
	for i := range 5 {
		r := na.CreatePort(ctx, podReq(conf.Name, "node-a", fmt.Sprintf("pod%d", i)))
		if r.Err != nil {
			t.Fatalf("pod %d: %v", i, r.Err)
		}
		if r.Addrs[0].Addr() == router {
			t.Fatalf("pod %d got the router's address %s", i, router)
		}
	}
	if r := na.CreatePort(ctx, podReq(conf.Name, "node-a", "one-too-many")); r.Err == nil {
		t.Fatalf("a sixth pod got %v: the router's address was handed out", r.Addrs)
	}

	if err := na.CheckGateway(); err == nil || !strings.Contains(err.Error(), "no gateway chassis") {
		t.Fatalf("CheckGateway before any node joined = %v, want no gateway chassis", err)
	}
	if err := a.nb.JoinGateway(ctx, gatewayPortName(conf.Name), "ch-a", "node-a", 10); err != nil {
		t.Fatal(err)
	}
	ovntest.Eventually(t, "CheckGateway to pass", func() bool { return na.CheckGateway() == nil })
}

// Two networks get different gateway addresses; one that asks for an
// address another holds is refused.
func TestExternalGatewayAddresses(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	ctx := context.Background()
	a := simNodeWith(t, endpoint, "node-a", Options{External: testExternal(t)}, nil)
	runGatewayAgent(t, a)
	first, err := a.Get(ctx, extConf(t, "x1", "layer3", "10.208.0.0/16/24"))
	if err != nil {
		t.Fatal(err)
	}
	second, err := a.Get(ctx, extConf(t, "x2", "layer2", "10.209.0.0/24"))
	if err != nil {
		t.Fatal(err)
	}
	if first.ExternalIP() == second.ExternalIP() {
		t.Fatalf("both networks got gateway address %s", first.ExternalIP())
	}
	conf := extConf(t, "x3", "layer2", "10.210.0.0/24")
	conf.External.GatewayIPs = []netip.Addr{first.ExternalIP()}
	if _, err := a.Get(ctx, conf); err == nil || !strings.Contains(err.Error(), "held by another network") {
		t.Fatalf("a network asking for x1's gateway address: %v, want it refused", err)
	}
}
