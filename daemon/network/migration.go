package network

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// Live migration of a VM's interface (layer2 and localnet: one switch
// across the cluster, so an address can follow the VM to any node).
//
// The source pod's port and the target pod's port share the VM's MAC and
// addresses, both recorded under the IPAMClaim that keeps them. The target
// is created disabled (PortRequest.MigrateFrom); Activate later enables it
// and disables the source in one transaction, so OVN never has two enabled
// ports with one MAC on a switch. Whichever half is deleted first, the
// other keeps the addresses; an enabled port that leaves while its partner
// is disabled hands over to it (DeletePort): a migration that failed
// after the hand-over gives the VM back to its source, and a source
// deleted before the hand-over was signalled leaves the target serving.

// ClaimPorts returns the network's ports (this node's and others') that
// hold the addresses of IPAMClaim claim ("<namespace>/<name>").
func (n *Network) ClaimPorts(claim string) ([]nbdb.LogicalSwitchPort, error) {
	if claim == "" {
		return nil, nil
	}
	return n.nb.Ports(func(lsp *nbdb.LogicalSwitchPort) bool {
		return lsp.ExternalIDs[externalids.IPAMClaim] == claim && lsp.ExternalIDs[externalids.Switch] == n.switchName
	})
}

// Enabled reports whether lsp passes traffic (an empty enabled column means
// enabled).
func Enabled(lsp *nbdb.LogicalSwitchPort) bool { return lsp.Enabled == nil || *lsp.Enabled }

// AwaitsHandOver reports whether lsp is a live-migration target that has
// not been handed the VM's traffic yet.
func AwaitsHandOver(lsp *nbdb.LogicalSwitchPort) bool {
	return lsp.ExternalIDs[externalids.MigrationSource] != "" && !Enabled(lsp)
}

// Activate hands a VM's traffic to its migration target's port: target
// enabled and, if it still exists, the source disabled, in one
// transaction. Activating an enabled port does nothing.
func (ns *Registry) Activate(ctx context.Context, target *nbdb.LogicalSwitchPort) error {
	cur, ok := ns.nb.PortByUUID(target.UUID)
	if !ok {
		return fmt.Errorf("migration target port %s is gone", target.Name)
	}
	if Enabled(cur) {
		return nil
	}
	ls, ok := ns.nb.Switch(cur.ExternalIDs[externalids.Switch])
	if !ok {
		return fmt.Errorf("migration target port %s: switch %q is not in the NB cache", cur.Name, cur.ExternalIDs[externalids.Switch])
	}
	change := ovn.PortChange{Switch: ls, Enable: []string{cur.UUID}}
	if src, ok := ns.nb.Port(cur.ExternalIDs[externalids.MigrationSource]); ok && Enabled(src) {
		change.Disable = []string{src.UUID}
	}
	if _, err := ns.nb.ApplyPorts(ctx, change); err != nil {
		return fmt.Errorf("hand VM traffic from port %s to port %s: %w", cur.ExternalIDs[externalids.MigrationSource], cur.Name, err)
	}
	return nil
}

// claimPartners are the other ports holding lsp's IPAMClaim's addresses:
// the other half of a live migration.
func (ns *Registry) claimPartners(lsp *nbdb.LogicalSwitchPort) []*nbdb.LogicalSwitchPort {
	claim := lsp.ExternalIDs[externalids.IPAMClaim]
	if claim == "" {
		return nil
	}
	ports, err := ns.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.IPAMClaim] == claim && p.UUID != lsp.UUID &&
			p.ExternalIDs[externalids.Switch] == lsp.ExternalIDs[externalids.Switch]
	})
	if err != nil {
		return nil
	}
	out := make([]*nbdb.LogicalSwitchPort, len(ports))
	for i := range ports {
		out[i] = &ports[i]
	}
	return out
}

// heir is the partner that takes the VM's traffic when leaving goes: a
// disabled partner, if leaving is enabled.
func heir(leaving *nbdb.LogicalSwitchPort, partners []*nbdb.LogicalSwitchPort) *nbdb.LogicalSwitchPort {
	if !Enabled(leaving) {
		return nil
	}
	for _, p := range partners {
		if !Enabled(p) {
			return p
		}
	}
	return nil
}

// sharedAddrs are the addresses partners still hold: deleting one half of a
// migration must not take them out of the address sets.
func sharedAddrs(partners []*nbdb.LogicalSwitchPort) map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	for _, p := range partners {
		for _, a := range entryAddrs(p) {
			out[a] = true
		}
	}
	return out
}

// entryAddrs are the addresses a port serves or, disabled for a
// migration, will serve: its port security keeps them while its
// addresses column is empty.
func entryAddrs(lsp *nbdb.LogicalSwitchPort) []netip.Addr {
	if addrs := PortAddrs(lsp); len(addrs) > 0 {
		return addrs
	}
	return PortAddrs(&nbdb.LogicalSwitchPort{Addresses: lsp.PortSecurity})
}
