package sandbox

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// TestPhysicalNetwork checks the datacenter network itself, with no OVN
// logical configuration: what a localnet port will stand on. Each node gets
// an OVS internal port "probe" on br-phys standing in for ovn-controller's
// patch port, and talks through br-phys, dc0 and br-dc to the external host.
func TestPhysicalNetwork(t *testing.T) {
	const physnet, mtu = "datacenter", 1600
	c := startCluster(t, Options{Nodes: 2, PhysicalNetwork: physnet, PhysicalMTU: mtu, Progress: testWriter{t}})
	ext := c.External()
	if ext == nil {
		t.Fatal("External() is nil with a physical network")
	}
	extIP := netip.MustParsePrefix("10.99.0.1/24")
	if err := ext.AddAddress(0, extIP); err != nil {
		t.Fatal(err)
	}

	t.Run("wiring", func(t *testing.T) {
		for _, n := range c.Nodes {
			if n.PhysicalBridge != "br-phys" || n.PhysicalUplink != "dc0" {
				t.Errorf("%s: PhysicalBridge %q, PhysicalUplink %q", n.Name, n.PhysicalBridge, n.PhysicalUplink)
			}
			if got := nodeVsctl(t, n, "get", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings"); got != `"`+physnet+`:br-phys"` {
				t.Errorf("%s: ovn-bridge-mappings %s", n.Name, got)
			}
			if got := nodeVsctl(t, n, "list-ports", n.PhysicalBridge); got != n.PhysicalUplink {
				t.Errorf("%s: br-phys ports %q, want only dc0", n.Name, got)
			}
			if got := nodeVsctl(t, n, "get", "Bridge", n.PhysicalBridge, "datapath_type", "fail_mode"); got != "netdev\nstandalone" {
				t.Errorf("%s: br-phys datapath_type, fail_mode %q", n.Name, got)
			}
			if got := linkMTU(t, n.Netns, n.PhysicalUplink); got != mtu {
				t.Errorf("%s: dc0 MTU %d, want %d", n.Name, got, mtu)
			}
		}
		if got := linkMTU(t, ext.Netns, ext.Interface); got != mtu {
			t.Errorf("external host: eth0 MTU %d, want %d", got, mtu)
		}
		// The node's geneve underlay is a different network.
		if out, err := c.Nodes[0].Run("ip", "-br", "addr", "show", "dev", "br-phy"); err != nil || !strings.Contains(out, c.Nodes[0].IP.String()) {
			t.Errorf("underlay br-phy: %q %v", out, err)
		}
	})

	// One probe per node, untagged, on the external host's subnet.
	probeIPs := make([]netip.Prefix, len(c.Nodes))
	for i, n := range c.Nodes {
		probeIPs[i] = netip.MustParsePrefix(fmt.Sprintf("10.99.0.%d/24", 10+i))
		addProbe(t, n, probeIPs[i], mtu)
	}

	t.Run("untagged", func(t *testing.T) {
		for i, n := range c.Nodes {
			if err := pingFrom(n.Netns, extIP.Addr(), 3); err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
			if err := ext.Ping(probeIPs[i].Addr(), 3); err != nil {
				t.Fatalf("%s: %v", n.Name, err)
			}
			// A full-MTU frame with DF: every link on the way (probe,
			// dc0, the segment's veths, br-dc, eth0) carries the
			// segment's MTU, or the frame is dropped silently.
			if _, err := n.Run("ping", "-c", "1", "-W", "2", "-M", "do", "-s", fmt.Sprint(mtu-28), extIP.Addr().String()); err != nil {
				t.Fatalf("%s: full-size ping: %v", n.Name, err)
			}
			// TCP in both directions: what checksum offload breaks.
			if err := tcpEcho(n.NetnsPath, ext.NetnsPath, extIP.Addr()); err != nil {
				t.Fatalf("%s -> external host: %v", n.Name, err)
			}
			if err := tcpEcho(ext.NetnsPath, n.NetnsPath, probeIPs[i].Addr()); err != nil {
				t.Fatalf("external host -> %s: %v", n.Name, err)
			}
		}
		// Node to node over the segment, not the tunnel.
		if err := pingFrom(c.Nodes[0].Netns, probeIPs[1].Addr(), 3); err != nil {
			t.Fatal(err)
		}
		if err := tcpEcho(c.Nodes[0].NetnsPath, c.Nodes[1].NetnsPath, probeIPs[1].Addr()); err != nil {
			t.Fatalf("node to node: %v", err)
		}
	})

	t.Run("counters", func(t *testing.T) {
		n := c.Nodes[0]
		const pings = 50
		upRx0, upTx0 := mustPackets(t, n.UplinkPackets)
		ulRx0, ulTx0 := mustPackets(t, n.UnderlayPackets)
		if _, err := n.Run("ping", "-c", fmt.Sprint(pings), "-i", "0.02", "-W", "1", extIP.Addr().String()); err != nil {
			t.Fatal(err)
		}
		upRx, upTx := mustPackets(t, n.UplinkPackets)
		ulRx, ulTx := mustPackets(t, n.UnderlayPackets)
		upRx, upTx, ulRx, ulTx = upRx-upRx0, upTx-upTx0, ulRx-ulRx0, ulTx-ulTx0
		t.Logf("%d pings: dc0 rx +%d tx +%d; ul0 rx +%d tx +%d", pings, upRx, upTx, ulRx, ulTx)
		if upRx < pings || upTx < pings {
			t.Errorf("dc0 counted rx +%d, tx +%d for %d echo requests and replies", upRx, upTx, pings)
		}
		// Had the pings crossed the underlay, ul0 would count at least
		// as many each way. It is not silent, though: in a cluster's
		// first seconds the nodes' br-phy send IPv6 router
		// solicitations, a few packets every few seconds, which br-ul
		// floods to every ul0.
		if ulRx >= pings/2 || ulTx >= pings/2 {
			t.Errorf("ul0 counted rx +%d, tx +%d during %d pings on the physical network", ulRx, ulTx, pings)
		}
	})

	t.Run("vlan", func(t *testing.T) {
		n := c.Nodes[0]
		probeVLAN := netip.MustParsePrefix("10.100.0.10/24")
		extVLAN := netip.MustParsePrefix("10.100.0.1/24")
		// The probe becomes an access port of VLAN 100: br-phys tags
		// what it sends on dc0 and only delivers VLAN 100 to it.
		nodeVsctl(t, n, "set", "Port", "probe", "tag=100")
		mustRun(t, n.Netns, "ip", "addr", "del", probeIPs[0].String(), "dev", "probe")
		mustRun(t, n.Netns, "ip", "addr", "add", probeVLAN.String(), "dev", "probe")

		// Only on VLAN 200 first: unreachable from VLAN 100. Done
		// before eth0.100 exists and before any ARP entry does, so
		// nothing could carry over.
		if err := ext.AddAddress(200, extVLAN); err != nil {
			t.Fatal(err)
		}
		if err := pingFrom(n.Netns, extVLAN.Addr(), 2); err == nil {
			t.Fatal("VLAN 100 probe reached an address on VLAN 200")
		}
		if err := ext.RemoveAddress(200, extVLAN); err != nil {
			t.Fatal(err)
		}

		if err := ext.AddAddress(100, extVLAN); err != nil {
			t.Fatal(err)
		}
		if err := ext.AddAddress(100, extVLAN); err != nil {
			t.Fatalf("AddAddress again: %v", err)
		}
		if err := pingFrom(n.Netns, extVLAN.Addr(), 3); err != nil {
			t.Fatal(err)
		}
		if err := tcpEcho(n.NetnsPath, ext.NetnsPath, extVLAN.Addr()); err != nil {
			t.Fatalf("TCP over VLAN 100: %v", err)
		}
		// The traffic came to the external host tagged (the tag is on
		// the wire, not only inside OVS): its VLAN 100 subinterface
		// received it.
		if rx, tx, err := linkPackets(ext.Netns, "eth0.100"); err != nil || rx == 0 || tx == 0 {
			t.Fatalf("eth0.100 rx %d, tx %d: %v", rx, tx, err)
		}
		for _, bad := range []int{-1, 4095, 5000} {
			if err := ext.AddAddress(bad, extVLAN); err == nil {
				t.Errorf("AddAddress accepted VLAN %d", bad)
			}
		}
	})

	t.Run("survives ovs-vswitchd restart", func(t *testing.T) {
		n := c.Nodes[0]
		if err := n.RestartVSwitchd(); err != nil {
			t.Fatal(err)
		}
		if got := linkMTU(t, n.Netns, n.PhysicalUplink); got != mtu {
			t.Errorf("dc0 MTU %d after restart", got)
		}
		if err := pingFrom(n.Netns, netip.MustParseAddr("10.100.0.1"), 5); err != nil {
			t.Fatal(err)
		}
		if err := tcpEcho(n.NetnsPath, ext.NetnsPath, netip.MustParseAddr("10.100.0.1")); err != nil {
			t.Fatal(err)
		}
	})
}

// TestPhysicalNetworkOptions: bad options fail before anything starts, and
// a cluster without a physical network has none of it.
func TestPhysicalNetworkOptions(t *testing.T) {
	for _, opts := range []Options{
		{PhysicalNetwork: "dc:1"},
		{PhysicalNetwork: "a,b"},
		{PhysicalNetwork: "dc", PhysicalMTU: 40},
	} {
		if err := validatePhysicalNetwork(&opts); err == nil {
			t.Errorf("%+v accepted", opts)
		}
	}
	c := startCluster(t, Options{Nodes: 1})
	if c.External() != nil {
		t.Error("External() without a physical network")
	}
	n := c.Nodes[0]
	if n.PhysicalBridge != "" || n.PhysicalUplink != "" {
		t.Errorf("PhysicalBridge %q, PhysicalUplink %q without a physical network", n.PhysicalBridge, n.PhysicalUplink)
	}
	if _, _, err := n.UplinkPackets(); err == nil {
		t.Error("UplinkPackets without a physical network")
	}
	if _, _, err := n.UnderlayPackets(); err != nil {
		t.Error(err)
	}
}

// addProbe plugs an OVS internal port "probe" into the node's br-phys with
// address p, and removes it when the test ends.
func addProbe(t *testing.T, n *Node, p netip.Prefix, mtu int) {
	t.Helper()
	nodeVsctl(t, n, "add-port", n.PhysicalBridge, "probe", "--", "set", "Interface", "probe", "type=internal", fmt.Sprintf("mtu_request=%d", mtu))
	t.Cleanup(func() {
		if _, err := n.Run("ovs-vsctl", "--db="+n.OVS, "--timeout=10", "--if-exists", "del-port", n.PhysicalBridge, "probe"); err != nil {
			t.Error(err)
		}
	})
	mustRun(t, n.Netns, "ip", "addr", "add", p.String(), "dev", "probe")
	mustRun(t, n.Netns, "ip", "link", "set", "probe", "up")
}

func nodeVsctl(t *testing.T, n *Node, args ...string) string {
	t.Helper()
	out, err := n.Run(append([]string{"ovs-vsctl", "--db=" + n.OVS, "--timeout=10"}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}

func mustRun(t *testing.T, netns string, argv ...string) string {
	t.Helper()
	out, err := run(netns, argv...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustPackets(t *testing.T, f func() (uint64, uint64, error)) (rx, tx uint64) {
	t.Helper()
	rx, tx, err := f()
	if err != nil {
		t.Fatal(err)
	}
	return rx, tx
}

func linkMTU(t *testing.T, netns, link string) int {
	t.Helper()
	var mtu int
	if _, err := fmt.Sscan(mustRun(t, netns, "cat", "/sys/class/net/"+link+"/mtu"), &mtu); err != nil {
		t.Fatal(err)
	}
	return mtu
}

// pingFrom pings dst from netns, one packet per attempt, until one answers.
func pingFrom(netns string, dst netip.Addr, attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		if _, err = run(netns, "ping", "-c", "1", "-W", "1", dst.String()); err == nil {
			return nil
		}
	}
	return err
}

// tcpEcho listens on addr in the namespace at serverNS, connects from the
// namespace at clientNS, sends 256 KiB and checks they come back: many
// full-sized segments each way, each with a checksum the receiver checks.
func tcpEcho(clientNS, serverNS string, addr netip.Addr) error {
	var ln net.Listener
	if err := InNetns(serverNS, func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		return err
	}
	defer ln.Close()
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		_, _ = io.Copy(conn, conn)
	}()
	var conn net.Conn
	if err := InNetns(clientNS, func() (err error) {
		conn, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		return err
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	payload := make([]byte, 256<<10)
	_, _ = rand.Read(payload)
	werr := make(chan error, 1)
	go func() {
		_, err := conn.Write(payload)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		werr <- err
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		return fmt.Errorf("read echo: %w", err)
	}
	if err := <-werr; err != nil {
		return fmt.Errorf("write: %w", err)
	}
	if !bytes.Equal(got, payload) {
		return fmt.Errorf("echo: got %d bytes back, want the %d sent", len(got), len(payload))
	}
	return nil
}
