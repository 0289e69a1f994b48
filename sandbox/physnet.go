package sandbox

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// The datacenter network (Options.PhysicalNetwork) is what OVN localnet
// networks attach to: one L2 segment, a Linux bridge in its own namespace,
// that every node's physical bridge and an external host plug into. It is
// deliberately separate from the geneve underlay (br-ul, the nodes' br-phy
// and ul0), so a test can tell from the interface counters which of the two
// carried a packet.
//
//	node netns                       <prefix>-dc           <prefix>-ext
//	br-int =patch= br-phys -- dc0 ~~ node<i> -- br-dc -- ext ~~ eth0[.<vlan>]
//
// ovn-controller adds the patch ports itself once a localnet port of a
// network named in ovn-bridge-mappings is bound on the chassis.
const (
	// physBridge is the node's OVS bridge for the physical network: the
	// right-hand side of ovn-bridge-mappings.
	physBridge = "br-phys"
	// physUplink is the node's veth into the datacenter segment, a port
	// of physBridge.
	physUplink = "dc0"
	// dcBridge is the Linux bridge that is the datacenter segment.
	dcBridge = "br-dc"
	// extIf is the external host's untagged link on the segment.
	extIf = "eth0"
	// extPeer is the external host's veth end on dcBridge.
	extPeer = "ext"
)

// ExternalHost is a machine on the datacenter network outside the OVN
// cluster (a router, a database server, a bare-metal peer): a network
// namespace whose link eth0 is plugged into the datacenter segment. Tests
// address it on the VLANs they need and check that pods on localnet
// networks reach it, and only on their own VLAN. VLAN v is the interface
// eth0.<v> (AddAddress creates it, with its own MAC address); what it sends
// leaves eth0 tagged v, and frames tagged v that reach eth0 arrive on it.
//
// It answers ARP only for addresses on the interface (VLAN) the request
// arrived on (arp_ignore=1): Linux by default answers for any local
// address on any interface, which would let an address on VLAN 200 answer
// a request that came in on VLAN 100 and hide a VLAN mistake.
type ExternalHost struct {
	// Netns is the host's network namespace name; NetnsPath its bind
	// mount (for InNetns).
	Netns, NetnsPath string
	// Interface is the host's untagged link on the segment ("eth0");
	// VLAN v is the interface Interface.v.
	Interface string

	mtu int
	// mu serialises AddAddress so concurrent calls create a VLAN
	// subinterface once.
	mu sync.Mutex
}

// External is the cluster's external host on the datacenter network, or nil
// without Options.PhysicalNetwork.
func (c *Cluster) External() *ExternalHost { return c.external }

// validatePhysicalNetwork checks the physical-network options and fills in
// the MTU default. The name ends up in ovn-bridge-mappings, a
// comma-separated list of name:bridge pairs, so it cannot contain either
// separator.
func validatePhysicalNetwork(opts *Options) error {
	if opts.PhysicalNetwork == "" {
		return nil
	}
	if strings.ContainsAny(opts.PhysicalNetwork, ",: \t\n\"") {
		return fmt.Errorf("sandbox: physical network name %q: ',', ':', quotes and spaces are not allowed in ovn-bridge-mappings", opts.PhysicalNetwork)
	}
	if opts.PhysicalMTU == 0 {
		opts.PhysicalMTU = 1500
	}
	if opts.PhysicalMTU < 68 || opts.PhysicalMTU > 65535 {
		return fmt.Errorf("sandbox: physical network MTU %d outside 68..65535", opts.PhysicalMTU)
	}
	// Checked here rather than in CheckPrerequisites: only the physical
	// network needs it, and without it TCP would fail much later and
	// obscurely (see plugDC).
	if _, err := exec.LookPath("ethtool"); err != nil {
		return fmt.Errorf("sandbox: the physical network needs ethtool: %w", err)
	}
	return nil
}

// startPhysicalNetwork creates the datacenter segment (br-dc in the
// <prefix>-dc namespace) and the external host (<prefix>-ext) on it. Nodes
// plug in later, in startNode.
func (c *Cluster) startPhysicalNetwork() error {
	c.physicalNS = c.Prefix + "-dc"
	if err := c.addNetns(c.physicalNS); err != nil {
		return err
	}
	mtu := fmt.Sprint(c.opts.PhysicalMTU)
	for _, args := range [][]string{
		// The segment is a pure L2 switch: without IPv6 on its own
		// links the kernel sends nothing (router solicitations, MLD) of
		// its own into the segment, so the nodes' uplink counters count
		// only what the nodes and the external host send.
		{"sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"},
		{"sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"},
		// No vlan_filtering: tagged frames cross the bridge untouched,
		// as on a trunk, whatever VLANs the localnet networks use.
		{"ip", "link", "add", dcBridge, "mtu", mtu, "type", "bridge"},
		{"ip", "link", "set", dcBridge, "up"},
	} {
		if _, err := run(c.physicalNS, args...); err != nil {
			return err
		}
	}

	h := &ExternalHost{Netns: c.Prefix + "-ext", Interface: extIf, mtu: c.opts.PhysicalMTU}
	h.NetnsPath = "/var/run/netns/" + h.Netns
	if err := c.addNetns(h.Netns); err != nil {
		return err
	}
	// Set before eth0 arrives: a link takes the namespace's "default"
	// values when it is registered there, and so do the VLAN
	// interfaces made later. No DAD, so IPv6 addresses work as soon as they are added;
	// strict ARP, see ExternalHost.
	for _, kv := range []string{
		"net.ipv6.conf.all.accept_dad=0",
		"net.ipv6.conf.default.accept_dad=0",
		"net.ipv4.conf.all.arp_ignore=1",
	} {
		if _, err := run(h.Netns, "sysctl", "-qw", kv); err != nil {
			return err
		}
	}
	if err := c.plugDC(h.Netns, extIf, extPeer, "net.ipv6.conf."+extIf+".accept_dad=0"); err != nil {
		return err
	}
	c.external = h
	c.progress("physical network %q: %s (MTU %d) in %s, external host %s", c.opts.PhysicalNetwork, dcBridge, c.opts.PhysicalMTU, c.physicalNS, h.Netns)
	return nil
}

// plugDC joins namespace ns to the datacenter segment with a veth pair:
// inner in ns, outer a port of br-dc. The sysctls (key=value) are applied in
// ns before inner goes up, so settings for inner hold from its first packet.
// Both ends get the segment's MTU: a Linux bridge and a veth drop frames
// larger than the MTU of the link they leave by, silently. TX checksum offload goes off on both ends because the
// nodes' ends are read by OVS's userspace datapath (AF_PACKET), which
// forwards a packet whose checksum the kernel left for "hardware" to finish
// as it is. Measured on both releases: with offload on at the external
// host's eth0 and at the bridge port towards a node, ping works and TCP
// never connects; a device on the way that cannot offload makes the kernel
// finish the checksum before sending, so off everywhere is off for good.
//
// The outer name needs no cluster prefix: it is created directly inside the
// cluster's own <prefix>-dc namespace, so it only has to be unique there
// (and within the 15-character limit; "node200" and "ext" are).
func (c *Cluster) plugDC(ns, inner, outer string, sysctls ...string) error {
	mtu := fmt.Sprint(c.opts.PhysicalMTU)
	steps := [][]string{
		{"", "ip", "link", "add", inner, "mtu", mtu, "netns", ns, "type", "veth", "peer", "name", outer, "mtu", mtu, "netns", c.physicalNS},
		{c.physicalNS, "ethtool", "-K", outer, "tx", "off"},
		{c.physicalNS, "ip", "link", "set", outer, "master", dcBridge, "up"},
		{ns, "ethtool", "-K", inner, "tx", "off"},
	}
	for _, kv := range sysctls {
		steps = append(steps, []string{ns, "sysctl", "-qw", kv})
	}
	steps = append(steps, []string{ns, "ip", "link", "set", inner, "up"})
	for _, step := range steps {
		if _, err := run(step[0], step[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// plugPhysical creates the node's uplink dc0 into the datacenter segment. It
// runs before OVS starts, as plugUnderlay does; addPhysicalBridge makes it a
// port of br-phys.
func (c *Cluster) plugPhysical(n *Node, i int) error {
	// dc0 is an OVS port, not a host interface: without IPv6 the node's
	// kernel sends nothing on it by itself, so UplinkPackets counts only
	// traffic OVS forwarded (and what the segment delivered to it).
	if err := c.plugDC(n.Netns, physUplink, fmt.Sprintf("node%d", i), "net.ipv6.conf."+physUplink+".disable_ipv6=1"); err != nil {
		return err
	}
	n.PhysicalBridge, n.PhysicalUplink = physBridge, physUplink
	return nil
}

// addPhysicalBridge creates br-phys with dc0 as its uplink and maps the
// physical network to it, as an admin preparing a node for localnet
// networks would. It needs ovs-vswitchd running: vsctl waits until the
// bridge exists in the datapath. The mapping is in place before
// ovn-controller starts, but ovn-controller would pick up a later change
// just the same.
func (c *Cluster) addPhysicalBridge(n *Node, vsctl func(args ...string) error) error {
	// standalone with no controller: br-phys is a plain learning switch
	// (the NORMAL action), trunking every VLAN on dc0 and tagging on
	// ports that have a tag, which is what a localnet port with
	// tag_request relies on. mtu_request keeps dc0's MTU ours across
	// ovs-vswitchd restarts.
	if err := vsctl("add-br", physBridge, "--", "set", "Bridge", physBridge,
		"datapath_type=netdev", "fail-mode=standalone", "other-config:disable-in-band=true",
		"--", "add-port", physBridge, physUplink,
		"--", "set", "Interface", physUplink, fmt.Sprintf("mtu_request=%d", c.opts.PhysicalMTU)); err != nil {
		return err
	}
	return vsctl("set", "Open_vSwitch", ".",
		"external_ids:ovn-bridge-mappings="+c.opts.PhysicalNetwork+":"+physBridge)
}

// UplinkPackets returns the kernel's packet counters of the node's uplink
// into the datacenter network (dc0): tests compare them before and after
// sending traffic to prove it went over the physical network. The veth
// counts what OVS's userspace datapath sends and receives through it
// (AF_PACKET) like any other traffic: 50 pings from a port on br-phys moved
// it by 51-54 each way. It fails without a physical network.
func (n *Node) UplinkPackets() (rx, tx uint64, err error) {
	if n.PhysicalUplink == "" {
		return 0, 0, fmt.Errorf("%s has no physical network uplink (Options.PhysicalNetwork is empty)", n.Name)
	}
	return linkPackets(n.Netns, n.PhysicalUplink)
}

// UnderlayPackets returns the kernel's packet counters of the node's geneve
// underlay link (ul0), which carries all tunnelled traffic between nodes.
// It is not silent without tunnelled traffic: every node's br-phy sends
// IPv6 router solicitations now and then (most in a cluster's first
// seconds), which the underlay bridge floods to every ul0.
func (n *Node) UnderlayPackets() (rx, tx uint64, err error) {
	return linkPackets(n.Netns, "ul0")
}

// linkPackets reads a link's packet counters with `ip -s -j link show`.
func linkPackets(netns, link string) (rx, tx uint64, err error) {
	out, err := run(netns, "ip", "-s", "-j", "link", "show", "dev", link)
	if err != nil {
		return 0, 0, err
	}
	var links []struct {
		Stats64 struct {
			RX struct {
				Packets uint64 `json:"packets"`
			} `json:"rx"`
			TX struct {
				Packets uint64 `json:"packets"`
			} `json:"tx"`
		} `json:"stats64"`
	}
	if err := json.Unmarshal([]byte(out), &links); err != nil {
		return 0, 0, fmt.Errorf("ip -s -j link show %s: %w: %q", link, err, out)
	}
	if len(links) != 1 {
		return 0, 0, fmt.Errorf("ip -s -j link show %s: %d links in %q", link, len(links), out)
	}
	return links[0].Stats64.RX.Packets, links[0].Stats64.TX.Packets, nil
}

// vlanDev is the host's interface for vlan: eth0 for 0 (untagged), the
// 802.1Q subinterface eth0.<vlan> for 1..4094.
func (h *ExternalHost) vlanDev(vlan int) (string, error) {
	switch {
	case vlan == 0:
		return h.Interface, nil
	case vlan >= 1 && vlan <= 4094:
		return fmt.Sprintf("%s.%d", h.Interface, vlan), nil
	}
	return "", fmt.Errorf("external host: VLAN %d: use 0 for untagged or 1..4094 (0 and 4095 are reserved by 802.1Q)", vlan)
}

// AddAddress puts address p (e.g. 10.99.0.1/24) on the host's link into
// VLAN vlan: 0 is eth0 itself (untagged), 1..4094 the interface eth0.<vlan>,
// which it creates and brings up on first use (see ensureVLAN: it is not a
// kernel VLAN device, but it sends and receives frames tagged vlan on
// eth0). Adding an address that is already there is not an error.
func (h *ExternalHost) AddAddress(vlan int, p netip.Prefix) error {
	if !p.IsValid() {
		return fmt.Errorf("external host: invalid address %v", p)
	}
	dev, err := h.vlanDev(vlan)
	if err != nil {
		return err
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if vlan != 0 {
		if err := h.ensureVLAN(dev, vlan); err != nil {
			return err
		}
	}
	_, err = h.Run("ip", "addr", "replace", p.String(), "dev", dev)
	return err
}

// RemoveAddress takes address p off the host's link into VLAN vlan. The
// VLAN subinterface stays. Tests use it to move an address between VLANs.
func (h *ExternalHost) RemoveAddress(vlan int, p netip.Prefix) error {
	dev, err := h.vlanDev(vlan)
	if err != nil {
		return err
	}
	_, err = h.Run("ip", "addr", "del", p.String(), "dev", dev)
	return err
}

// ensureVLAN creates the host's interface dev into VLAN vlan unless it
// exists: not an 802.1Q subinterface, which these kernels lack, but a veth
// pair with tc programs that tag and untag (vlanbpf.go). It behaves the
// same to the host's stack and on the wire. TX checksum offload is off on
// dev because what it sends leaves, tagged, by eth0 for OVS's userspace
// datapath, which does not finish checksums. A half-made VLAN is removed,
// so the next call starts afresh.
func (h *ExternalHost) ensureVLAN(dev string, vlan int) (err error) {
	if _, err := h.Run("ip", "link", "show", "dev", dev); err == nil {
		return nil
	}
	wire := fmt.Sprintf("v%d", vlan)
	mtu := fmt.Sprint(h.mtu)
	if _, err := h.Run("ip", "link", "add", dev, "mtu", mtu, "type", "veth", "peer", "name", wire, "mtu", mtu); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			_, _ = h.Run("ip", "link", "delete", dev)
		}
	}()
	for _, args := range [][]string{
		{"ethtool", "-K", dev, "tx", "off"},
		{"ethtool", "-K", wire, "tx", "off"},
		// The wire end is no interface of the host's: it must not
		// send anything of its own into the VLAN.
		{"sysctl", "-qw", "net.ipv6.conf." + wire + ".disable_ipv6=1"},
		{"ip", "link", "set", wire, "up"},
	} {
		if _, err := h.Run(args...); err != nil {
			return err
		}
	}
	if err := h.attachVLAN(uint16(vlan), wire); err != nil {
		return fmt.Errorf("external host: VLAN %d: %w", vlan, err)
	}
	_, err = h.Run("ip", "link", "set", dev, "up")
	return err
}

// Run executes a short command inside the external host's network
// namespace.
func (h *ExternalHost) Run(argv ...string) (string, error) {
	return run(h.Netns, argv...)
}

// Ping sends one ping from the external host to dst, up to attempts times,
// and succeeds on the first answer: the first packet to a new peer may be
// lost while ARP (and, across a tunnel, OVS's own ARP) resolves.
func (h *ExternalHost) Ping(dst netip.Addr, attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		if _, err = h.Run("ping", "-c", "1", "-W", "1", dst.String()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("external host cannot reach %s after %d attempts: %w", dst, attempts, err)
}

// SourceSeen opens a TCP connection from the network namespace at
// fromNetns to a listener on the host's address dst and returns the source
// address the host saw: what a pod behind SNAT looks like from outside. It
// tries three times, since the first packets may wait on ARP and a
// gateway's binding.
func (h *ExternalHost) SourceSeen(fromNetns string, dst netip.Addr) (netip.Addr, error) {
	var l net.Listener
	if err := InNetns(h.NetnsPath, func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(dst, 0).String())
		return err
	}); err != nil {
		return netip.Addr{}, err
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, c.RemoteAddr().String())
			c.Close()
		}
	}()
	var seen string
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		if err = InNetns(fromNetns, func() error {
			c, err := net.DialTimeout("tcp", l.Addr().String(), 3*time.Second)
			if err != nil {
				return err
			}
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(3 * time.Second))
			b, err := io.ReadAll(c)
			seen = string(b)
			return err
		}); err == nil {
			break
		}
	}
	if err != nil {
		return netip.Addr{}, fmt.Errorf("TCP to the external host's %s: %w", l.Addr(), err)
	}
	ap, err := netip.ParseAddrPort(seen)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("external host reported peer %q: %w", seen, err)
	}
	return ap.Addr(), nil
}
