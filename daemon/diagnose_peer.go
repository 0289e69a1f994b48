package daemon

import (
	"net/netip"
	"slices"

	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// sourceFor picks the port's address of the peer's family.
func sourceFor(addrs []netip.Prefix, peer netip.Addr) (netip.Addr, bool) {
	for _, p := range addrs {
		if p.Addr().Is4() == peer.Is4() {
			return p.Addr(), true
		}
	}
	return netip.Addr{}, false
}

// nextHopMAC is the destination MAC a packet from lsp to peer carries: the
// peer's, when a port of the same switch holds the address, else the MAC
// of the switch's router port (the pod's gateway).
func (d *Daemon) nextHopMAC(lsp *nbdb.LogicalSwitchPort, peer netip.Addr) (string, bool) {
	ls, ok := d.nb.Switch(lsp.ExternalIDs[externalids.Switch])
	if !ok {
		return "", false
	}
	router := ""
	for _, uuid := range ls.Ports {
		p, ok := d.nb.PortByUUID(uuid)
		if !ok {
			continue
		}
		if p.Type == "router" {
			if lrp, ok := d.nb.RouterPort(p.Options["router-port"]); ok {
				router = lrp.MAC
			}
			continue
		}
		if slices.Contains(network.PortAddrs(p), peer) {
			if mac, err := network.PortMAC(p); err == nil {
				return mac.String(), true
			}
		}
	}
	return router, router != ""
}
