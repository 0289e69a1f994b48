package network

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"

	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// OVN's native DHCP (netconf "enableDHCP"): one DHCP_Options row per subnet
// of the network, shared by every node, and each port pointing at the row
// of its address's subnet. OVN answers a port's DHCP requests itself, on
// the port's own chassis, with the port's addresses: nothing runs per
// node, and a VM that migrates keeps being answered wherever it runs.
//
// The server address is the first address of each IPv4 subnet (the
// router's, on a layer2 network with external connectivity), which the
// pool keeps out. No default gateway is offered: a secondary network must
// not take the guest's default route. Routes to the network's external
// prefixes go as classless static routes (option 121), as pods get them.

// dhcpServerAddrs are the addresses OVN's DHCPv4 server answers from.
func dhcpServerAddrs(conf *netconf.NetConf) []netip.Prefix {
	if conf.DHCP == nil {
		return nil
	}
	var out []netip.Prefix
	for _, s := range conf.Subnets {
		if s.CIDR.Addr().Is4() {
			out = append(out, netip.PrefixFrom(s.CIDR.Masked().Addr().Next(), s.CIDR.Bits()))
		}
	}
	return out
}

// PortDHCP is what a port's DHCP needs: the options rows by subnet, and
// the hostname offered to it.
type PortDHCP struct {
	rows     map[netip.Prefix]string // subnet -> DHCP_Options UUID
	Hostname string
}

// apply points lsp at the rows of its addresses' subnets.
func (d *PortDHCP) apply(lsp *nbdb.LogicalSwitchPort, addrs []netip.Prefix) {
	if d == nil {
		return
	}
	for _, a := range addrs {
		for cidr, uuid := range d.rows {
			if !cidr.Contains(a.Addr()) {
				continue
			}
			uuid := uuid
			if a.Addr().Is4() {
				lsp.Dhcpv4Options = &uuid
			} else {
				lsp.Dhcpv6Options = &uuid
			}
		}
	}
	if d.Hostname != "" && lsp.Dhcpv4Options != nil {
		// OVN pastes the value into the logical flow's put_dhcp_opts
		// action as it is: a string option must carry its quotes.
		// Hostnames (DNS labels) need no escaping.
		lsp.Options = map[string]string{"hostname": `"` + d.Hostname + `"`}
	}
}

// dhcpState is a network's DHCP rows, made on the first ADD that needs
// them (the MTU offered is the node's for the network).
type dhcpState struct {
	mu   sync.Mutex
	rows map[netip.Prefix]string
}

// DHCPFor returns the DHCP service of a port of the network offering
// hostname, or nil if the network has no DHCP. The first call makes (or
// finds) the network's DHCP_Options rows.
func (n *Network) DHCPFor(ctx context.Context, mtu int, hostname string) (*PortDHCP, error) {
	if n.conf.DHCP == nil {
		return nil, nil
	}
	n.dhcp.mu.Lock()
	defer n.dhcp.mu.Unlock()
	if n.dhcp.rows == nil {
		rows := map[netip.Prefix]string{}
		for _, s := range n.conf.Subnets {
			uuid, err := n.nb.EnsureDHCPOptions(ctx, ovn.DHCPOptionsSpec{Network: n.name, CIDR: s.CIDR.Masked(), Options: n.dhcpOptions(s.CIDR.Masked(), mtu)})
			if err != nil {
				return nil, fmt.Errorf("DHCP options of network %q subnet %s: %w", n.name, s.CIDR, err)
			}
			rows[s.CIDR.Masked()] = uuid
		}
		n.dhcp.rows = rows
	}
	return &PortDHCP{rows: n.dhcp.rows, Hostname: hostname}, nil
}

// dhcpOptions are the DHCP_Options options of one subnet.
func (n *Network) dhcpOptions(cidr netip.Prefix, mtu int) map[string]string {
	conf := n.conf.DHCP
	var dns []string
	for _, a := range conf.DNSServers {
		if a.Is4() == cidr.Addr().Is4() {
			dns = append(dns, a.String())
		}
	}
	if !cidr.Addr().Is4() {
		// The same on every node: derived from the subnet, not random.
		opts := map[string]string{"server_id": macFor([]netip.Prefix{netip.PrefixFrom(cidr.Addr().Next(), cidr.Bits())}).String()}
		if len(dns) > 0 {
			opts["dns_server"] = "{" + strings.Join(dns, ", ") + "}"
		}
		return opts
	}
	server := cidr.Addr().Next()
	opts := map[string]string{
		"server_id":  server.String(),
		"server_mac": macFor([]netip.Prefix{netip.PrefixFrom(server, cidr.Bits())}).String(),
		"lease_time": strconv.Itoa(conf.LeaseTime),
		"netmask":    netmaskOf(cidr),
	}
	if mtu > 0 {
		opts["mtu"] = strconv.Itoa(mtu)
	}
	if len(dns) > 0 {
		opts["dns_server"] = "{" + strings.Join(dns, ", ") + "}"
	}
	var routes []string
	for _, r := range n.routes {
		if r.Dst.Addr().Is4() && r.Gateway.IsValid() {
			routes = append(routes, r.Dst.String()+","+r.Gateway.String())
		}
	}
	if len(routes) > 0 {
		opts["classless_static_route"] = "{" + strings.Join(routes, ", ") + "}"
	}
	return opts
}

func netmaskOf(p netip.Prefix) string {
	var b [4]byte
	for i := 0; i < p.Bits(); i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	return netip.AddrFrom4(b).String()
}
