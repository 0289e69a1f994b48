package e2e

import (
	"encoding/json"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// The sandbox's external network, on the physical network "datacenter":
// the external host is its router (extNextHop) and also holds extFar, a
// destination beyond the external subnet. Gateways take addresses from
// .10-.99. The host has no route to any tenant subnet: tenants reach it only
// through their gateway's SNAT.
const (
	extSubnet  = "172.30.0.0/24"
	extNextHop = "172.30.0.1"
	extFar     = "198.51.100.1"
)

var (
	externalNetworkFlag = physnet + ",subnet=" + extSubnet + ",gateways=172.30.0.10-172.30.0.99,next-hop=" + extNextHop
	// daemonArgs are what every e2e daemon runs with.
	daemonArgs   = []string{"-v", "--external-network=" + externalNetworkFlag}
	gatewayRange = [2]netip.Addr{netip.MustParseAddr("172.30.0.10"), netip.MustParseAddr("172.30.0.99")}
)

// externalRouter readies the external host as the external network's
// router and returns it.
func externalRouter(t *testing.T) *sandbox.ExternalHost {
	t.Helper()
	return routerOn(t, external(t))
}

func routerOn(t *testing.T, ext *sandbox.ExternalHost) *sandbox.ExternalHost {
	t.Helper()
	for _, p := range []string{extNextHop + "/24", extFar + "/32"} {
		if err := ext.AddAddress(0, netip.MustParsePrefix(p)); err != nil {
			t.Fatal(err)
		}
	}
	return ext
}

// externalConfig is a layer2 or layer3 config with external connectivity.
func externalConfig(name, topology, subnets string, extra map[string]any) []byte {
	conf := map[string]any{"topology": topology, "has_external_connectivity": true}
	for k, v := range extra {
		conf[k] = v
	}
	return layer2Config(name, subnets, conf)
}

// gatewayIP is network's gateway address on the external network, read
// from the NB.
func gatewayIP(t *testing.T, network string) netip.Addr {
	t.Helper()
	out := strings.Trim(nbctl(t, "--bare", "--columns=networks", "find", "Logical_Router_Port", "name=ovn-overlay."+network+".gateway"), " \n\"")
	p, err := netip.ParsePrefix(out)
	if err != nil {
		t.Fatalf("gateway port of %s: networks %q: %v", network, out, err)
	}
	return p.Addr()
}

// sourceSeenByExternal opens a TCP connection from the pod to the external
// host's dst and returns the source address the host saw.
func sourceSeenByExternal(t *testing.T, p *testPod, ext *sandbox.ExternalHost, dst netip.Addr) netip.Addr {
	t.Helper()
	seen, err := ext.SourceSeen(p.NetnsPath, dst)
	if err != nil {
		t.Fatalf("%s: %v", p.Name, err)
	}
	return seen
}

// TestExternalConnectivity: pods on both nodes of a layer2 and of a layer3
// overlay reach the external host over TCP, which sees the network's
// gateway address; the pods get routes to the external subnet (and no
// default route); pod-to-pod traffic stays on geneve.
func TestExternalConnectivity(t *testing.T) {
	ext := externalRouter(t)
	for _, tc := range []struct{ topology, subnets string }{
		{"layer2", "10.80.0.0/24"},
		{"layer3", "10.81.0.0/16/24"},
	} {
		t.Run(tc.topology, func(t *testing.T) {
			network := "ext-" + tc.topology + "-" + randomID()[:4]
			conf := externalConfig(network, tc.topology, tc.subnets, nil)
			a, b := newPod(t, node(t, 0), "ext"), newPod(t, node(t, 1), "ext")
			resA, resB := mustAdd(t, a, "net1", conf), mustAdd(t, b, "net1", conf)
			t.Cleanup(func() { mustDel(t, a, "net1", conf); mustDel(t, b, "net1", conf) })
			gw := gatewayIP(t, network)
			if gw.Less(gatewayRange[0]) || gatewayRange[1].Less(gw) {
				t.Fatalf("gateway address %s outside the operator's range %v", gw, gatewayRange)
			}
			for _, p := range []*testPod{a, b} {
				routes, _ := p.Run("ip", "-4", "route", "show")
				if !strings.Contains(routes, extSubnet+" via ") {
					t.Errorf("pod %s routes %q: want %s via the network's gateway", p.Name, routes, extSubnet)
				}
				if strings.Contains(routes, "default") {
					t.Errorf("pod %s routes %q: external connectivity must not add a default route", p.Name, routes)
				}
				if seen := sourceSeenByExternal(t, p, ext, netip.MustParseAddr(extNextHop)); seen != gw {
					t.Errorf("external host saw %s from pod %s, want the gateway's SNAT address %s", seen, p.Name, gw)
				}
				tcpEchoBetween(t, endpoint{"external host", ext.NetnsPath}, endpoint{p.Name, p.NetnsPath}, netip.MustParseAddr(extNextHop))
			}
			addrA, addrB := podAddrs(t, resA)[0].Addr(), podAddrs(t, resB)[0].Addr()
			physical, geneve := uplinkDelta(t, node(t, 0), func() {
				if err := a.Ping(addrB, pingsOverDC); err != nil {
					t.Fatal(err)
				}
				if err := b.Ping(addrA, pingsOverDC); err != nil {
					t.Fatal(err)
				}
				tcpEcho(t, b, a, addrB)
			})
			if geneve < 2 || physical >= pingsOverDC {
				t.Errorf("east/west between the pods: node0 geneve underlay carried %d packets, physical uplink %d; want geneve only", geneve, physical)
			}
		})
	}
}

// TestExternalTenantsWithOneSubnet: two tenant overlays with the same
// subnet both reach the external host, each behind its own gateway
// address, and neither reaches the other's pods.
func TestExternalTenantsWithOneSubnet(t *testing.T) {
	ext := externalRouter(t)
	const subnet = "10.82.0.0/24"
	red, blue := "ext-red-"+randomID()[:4], "ext-blue-"+randomID()[:4]
	redConf, blueConf := externalConfig(red, "layer2", subnet, nil), externalConfig(blue, "layer2", subnet, nil)
	r1 := newPod(t, node(t, 0), "red")
	b1, b2 := newPod(t, node(t, 1), "blue"), newPod(t, node(t, 1), "blue")
	resR := mustAdd(t, r1, "net1", redConf)
	mustAdd(t, b1, "net1", blueConf)
	resB2 := mustAdd(t, b2, "net1", blueConf)
	t.Cleanup(func() {
		mustDel(t, r1, "net1", redConf)
		mustDel(t, b1, "net1", blueConf)
		mustDel(t, b2, "net1", blueConf)
	})
	redGW, blueGW := gatewayIP(t, red), gatewayIP(t, blue)
	if redGW == blueGW {
		t.Fatalf("both tenants got gateway address %s", redGW)
	}
	for _, c := range []struct {
		p  *testPod
		gw netip.Addr
	}{{r1, redGW}, {b1, blueGW}, {b2, blueGW}} {
		if seen := sourceSeenByExternal(t, c.p, ext, netip.MustParseAddr(extNextHop)); seen != c.gw {
			t.Errorf("external host saw %s from %s, want its tenant's gateway %s", seen, c.p.Name, c.gw)
		}
	}
	// b2's address is on the blue switch only (the red one has one pod);
	// from red it must be unreachable.
	redAddr, b2Addr := podAddrs(t, resR)[0].Addr(), podAddrs(t, resB2)[0].Addr()
	if redAddr == b2Addr {
		t.Fatalf("red and blue pods share %s; the isolation check needs distinct addresses", redAddr)
	}
	if _, err := r1.Run("ping", "-c", "3", "-i", "0.2", "-W", "1", b2Addr.String()); err == nil {
		t.Errorf("red pod reached blue pod %s: tenants must be isolated", b2Addr)
	}
	if err := b1.Ping(b2Addr, 3); err != nil {
		t.Errorf("blue pods cannot reach each other: %v", err)
	}
}

// enhancementExternalNAD is the OVN secondary-networks enhancement's
// second sample NAD's config, as written there but for its trailing comma.
const enhancementExternalNAD = `{
            "cniVersion": "0.3.1",
            "type": "ovn-kubernetes",
            "name": "tenant-overlay-ext-network",
            "subnet": "10.10.20.0/24",
            "has_external_connectivity": true
        }`

// TestExternalEnhancementSample: the enhancement's sample attaches and its
// pods reach the external host through the gateway.
func TestExternalEnhancementSample(t *testing.T) {
	ext := externalRouter(t)
	conf := []byte(enhancementExternalNAD)
	a, b := newPod(t, node(t, 0), "sample"), newPod(t, node(t, 1), "sample")
	resA := mustAdd(t, a, "net1", conf)
	mustAdd(t, b, "net1", conf)
	t.Cleanup(func() { mustDel(t, a, "net1", conf); mustDel(t, b, "net1", conf) })
	if addr := podAddrs(t, resA)[0]; !netip.MustParsePrefix("10.10.20.0/24").Contains(addr.Addr()) || addr.Addr() == netip.MustParseAddr("10.10.20.1") {
		t.Errorf("pod address %s: want one of 10.10.20.0/24 other than the router's .1", addr)
	}
	gw := gatewayIP(t, "tenant-overlay-ext-network")
	for _, p := range []*testPod{a, b} {
		if seen := sourceSeenByExternal(t, p, ext, netip.MustParseAddr(extNextHop)); seen != gw {
			t.Errorf("external host saw %s from %s, want %s", seen, p.Name, gw)
		}
	}
}

// TestExternalPrefixesAndGatewayIP: a network's own externalGatewayIPs and
// externalPrefixes replace the operator's: the pod routes only the listed
// prefix (reached via the next hop), and the host sees the chosen address.
func TestExternalPrefixesAndGatewayIP(t *testing.T) {
	ext := externalRouter(t)
	network := "ext-own-" + randomID()[:4]
	conf := externalConfig(network, "layer3", "10.83.0.0/16/24", map[string]any{
		"externalGatewayIPs": "172.30.0.200", "externalPrefixes": "198.51.100.0/24",
	})
	p := newPod(t, node(t, 1), "own")
	mustAdd(t, p, "net1", conf)
	t.Cleanup(func() { mustDel(t, p, "net1", conf) })
	routes, _ := p.Run("ip", "-4", "route", "show")
	if !strings.Contains(routes, "198.51.100.0/24 via ") || strings.Contains(routes, extSubnet) {
		t.Errorf("pod routes %q: want 198.51.100.0/24 via the gateway and no route to %s", routes, extSubnet)
	}
	if seen := sourceSeenByExternal(t, p, ext, netip.MustParseAddr(extFar)); seen != netip.MustParseAddr("172.30.0.200") {
		t.Errorf("external host saw %s, want the network's own gateway address 172.30.0.200", seen)
	}
}

// throughput sends for d over one TCP connection from client to a sink
// listening on server's addr and returns the rate in Mbit/s.
func throughput(t *testing.T, server, client endpoint, addr netip.Addr, d time.Duration) float64 {
	t.Helper()
	var l net.Listener
	if err := sandbox.InNetns(server.NetnsPath, func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	received := make(chan int64, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			received <- 0
			return
		}
		defer c.Close()
		n, _ := io.Copy(io.Discard, c)
		received <- n
	}()
	var conn net.Conn
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = sandbox.InNetns(client.NetnsPath, func() (err error) {
			conn, err = net.DialTimeout("tcp", l.Addr().String(), 3*time.Second)
			return err
		}); err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("TCP %s -> %s: %v", client.Name, l.Addr(), err)
	}
	buf := make([]byte, 64*1024)
	start := time.Now()
	for time.Since(start) < d {
		_ = conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
		if _, err := conn.Write(buf); err != nil {
			t.Fatalf("TCP %s -> %s: %v", client.Name, l.Addr(), err)
		}
	}
	conn.Close()
	n := <-received
	return float64(n) * 8 / time.Since(start).Seconds() / 1e6
}

// TestExternalThroughput measures (it asserts nothing about speed) one TCP
// stream's rate, median of three, from a pod through its network's gateway on another node
// to the external host, beside pod to pod on the same network (geneve),
// and writes both to E2E_REPORT_DIR/throughput-<release>.json.
func TestExternalThroughput(t *testing.T) {
	ext := externalRouter(t)
	network := "ext-tput-" + randomID()[:4]
	conf := externalConfig(network, "layer2", "10.85.0.0/24", nil)
	a, b := newPod(t, node(t, 0), "tput"), newPod(t, node(t, 1), "tput")
	resA, resB := mustAdd(t, a, "net1", conf), mustAdd(t, b, "net1", conf)
	t.Cleanup(func() { mustDel(t, a, "net1", conf); mustDel(t, b, "net1", conf) })
	// The pod whose node does not hold the gateway sends, so that egress
	// crosses geneve to the gateway node as east/west does.
	sender, peer, peerAddr := a, b, podAddrs(t, resB)[0].Addr()
	if waitGatewayChassis(t, cluster, network, func(ch string) bool { return ch != "" }, 15*time.Second) == node(t, 0).Name {
		sender, peer, peerAddr = b, a, podAddrs(t, resA)[0].Addr()
	}
	// Alternating rounds, medians: the machine's noise moves one stream's
	// rate by a fifth from run to run.
	const d, rounds = 2 * time.Second, 3
	var egresses, eastWests []float64
	for range rounds {
		egresses = append(egresses, throughput(t, endpoint{"external host", ext.NetnsPath}, endpoint{sender.Name, sender.NetnsPath}, netip.MustParseAddr(extNextHop), d))
		eastWests = append(eastWests, throughput(t, endpoint{peer.Name, peer.NetnsPath}, endpoint{sender.Name, sender.NetnsPath}, peerAddr, d))
	}
	slices.Sort(egresses)
	slices.Sort(eastWests)
	egress, eastWest := egresses[rounds/2], eastWests[rounds/2]
	t.Logf("one TCP stream, %s, median of %d: egress through the gateway %.0f Mbit/s %v, east/west over geneve %.0f Mbit/s %v (ratio %.2f)",
		cluster.Release().Name, rounds, egress, egresses, eastWest, eastWests, egress/eastWest)
	if dir := os.Getenv("E2E_REPORT_DIR"); dir != "" {
		b, _ := json.Marshal(map[string]any{"release": cluster.Release().Name, "egress_mbps": egress, "east_west_mbps": eastWest, "egress_rounds": egresses, "east_west_rounds": eastWests, "seconds": d.Seconds()})
		if err := os.WriteFile(filepath.Join(dir, "throughput-"+cluster.Release().Name+".json"), b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

// TestExternalStatus: STATUS given a config whose physical network the
// daemon has no --external-network for says so (code 50), and is fine for
// the configured one.
func TestExternalStatus(t *testing.T) {
	p := newPod(t, node(t, 0), "status")
	unknown := layer2Config("ext-status", "10.86.0.0/24", map[string]any{"cniVersion": "1.1.0", "externalPhysicalNetworkName": "nowhere"})
	_, err := invoke(t, p, "STATUS", "", unknown)
	cniError(t, err, cniproto.ErrPluginNotAvailable, "nowhere", "--external-network")
	known := layer2Config("ext-status", "10.86.0.0/24", map[string]any{"cniVersion": "1.1.0", "has_external_connectivity": true})
	if _, err := invoke(t, p, "STATUS", "", known); err != nil {
		t.Errorf("STATUS for the configured external network: %v", err)
	}
}

// TestExternalCheck: CHECK of an attachment with external connectivity
// passes as ADD left it, and reports the pod's route to the external
// prefixes when it goes.
func TestExternalCheck(t *testing.T) {
	network := "ext-check-" + randomID()[:4]
	extra := map[string]any{"topology": "layer3", "has_external_connectivity": true}
	conf := layer2Config(network, "10.87.0.0/16/24", extra)
	p := newPod(t, node(t, 1), "check")
	out, err := invoke(t, p, "ADD", "net1", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = invoke(t, p, "DEL", "net1", conf) })
	extra["prevResult"] = rawJSON(out)
	check := layer2Config(network, "10.87.0.0/16/24", extra)
	if _, err := invoke(t, p, "CHECK", "net1", check); err != nil {
		t.Fatalf("CHECK right after ADD: %v", err)
	}
	if _, err := p.Run("ip", "route", "del", extSubnet); err != nil {
		t.Fatal(err)
	}
	_, err = invoke(t, p, "CHECK", "net1", check)
	cniError(t, err, types.ErrInternal, extSubnet)
}
