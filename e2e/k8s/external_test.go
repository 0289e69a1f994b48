package k8s

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// The external network the daemons are given (as in the e2e package): the
// external host on the untagged datacenter segment is its router, and also
// holds extFar, a destination beyond it.
const (
	externalNetworkFlag = "datacenter,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1"
	extNextHop          = "172.30.0.1"
	extFar              = "198.51.100.1"
)

// enhancementExternalNAD is the OVN secondary-networks enhancement's
// second sample NAD's config, verbatim but for its trailing comma.
const enhancementExternalNAD = `{
            "cniVersion": "0.3.1",
            "type": "ovn-kubernetes",
            "name": "tenant-overlay-ext-network",
            "subnet": "10.10.20.0/24",
            "has_external_connectivity": true
        }`

// seenFrom opens a TCP connection from the pod's netns to the external
// host's dst and returns the source address the host saw.
func seenFrom(t *testing.T, p *runtimePod, ext *sandbox.ExternalHost, dst netip.Addr) netip.Addr {
	t.Helper()
	seen, err := ext.SourceSeen(p.netns.NetnsPath, dst)
	if err != nil {
		t.Fatalf("%s: %v", p.obj.Name, err)
	}
	return seen
}

// TestEnhancementExternalNADThroughMultus: the enhancement's sample NAD,
// created as a NAD, attaches through real Multus and its pods reach the
// external host through the gateway (which the host sees as the source).
// A pod whose network selection element asks for "default-route" gets its
// default route via the network's router from Multus, and reaches a
// destination beyond the external subnet that the network's routes alone
// do not cover.
func TestEnhancementExternalNADThroughMultus(t *testing.T) {
	ext := e.cluster.External()
	for _, p := range []string{extNextHop + "/24", extFar + "/32"} {
		if err := ext.AddAddress(0, netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	ns := namespace(t, "testns1")
	nad := createNAD(t, ns, "tenant-network-2", enhancementExternalNAD)
	eventsFor(t, nad, "NetworkConfigAccepted")
	a := mustRunPod(t, node(0), ns, "ext-pod-a", "tenant-network-2")
	b := mustRunPod(t, node(1), ns, "ext-pod-b", `[{"name": "tenant-network-2", "default-route": ["10.10.20.1"]}]`)
	gw := gatewayAddr(t)
	if seen := seenFrom(t, a, ext, netip.MustParseAddr(extNextHop)); seen != gw {
		t.Errorf("external host saw %s from %s, want the gateway's %s", seen, a.obj.Name, gw)
	}
	if routes, _ := a.netns.Run("ip", "-4", "route", "show", "default"); strings.TrimSpace(routes) != "" {
		t.Errorf("%s has default route %q without asking for one", a.obj.Name, routes)
	}
	if routes, _ := b.netns.Run("ip", "-4", "route", "show", "default"); !strings.Contains(routes, "via 10.10.20.1 dev net1") {
		t.Fatalf("%s default route %q, want via 10.10.20.1 dev net1 (the network selection element's default-route)", b.obj.Name, routes)
	}
	if seen := seenFrom(t, b, ext, netip.MustParseAddr(extFar)); seen != gw {
		t.Errorf("external host saw %s from %s at %s, want the gateway's %s", seen, b.obj.Name, extFar, gw)
	}
}

// gatewayAddr is the sample network's gateway address, read from the NB.
func gatewayAddr(t *testing.T) netip.Addr {
	t.Helper()
	out, err := e.cluster.Run("ovn-nbctl", "--db="+e.cluster.Central.NB, "--bare", "--columns=networks", "find", "Logical_Router_Port", "name=ovn-overlay.tenant-overlay-ext-network.gateway")
	if err != nil {
		t.Fatal(err)
	}
	p, err := netip.ParsePrefix(strings.Trim(strings.TrimSpace(out), `"`))
	if err != nil {
		t.Fatalf("gateway port networks %q: %v", out, err)
	}
	return p.Addr()
}
