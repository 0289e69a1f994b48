package network

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// DeletePort removes logical switch port lsp (a cached row) and its
// addresses from the address sets, in one transaction, and frees its
// addresses in the network's index. A port already gone is not an error.
// Callers decide that the port is theirs to delete (attachment identity,
// or this node's warm port); this only refuses rows not owned by us.
func (ns *Registry) DeletePort(ctx context.Context, lsp *nbdb.LogicalSwitchPort) error {
	if lsp.ExternalIDs[externalids.Owner] != externalids.OwnerValue {
		return fmt.Errorf("logical switch port %s: %w", lsp.Name, ovn.ErrNotOwned)
	}
	cur, ok := ns.nb.PortByUUID(lsp.UUID)
	if !ok {
		return nil
	}
	swName := cur.ExternalIDs[externalids.Switch]
	ls, ok := ns.nb.Switch(swName)
	if !ok {
		return fmt.Errorf("logical switch port %s exists but its switch %q is not in the NB cache", cur.Name, swName)
	}
	partners := ns.claimPartners(cur)
	change := ovn.PortChange{
		Switch: ls, RemoveUUIDs: []string{cur.UUID}, AddressSets: portAddressSetEdits(cur, sharedAddrs(partners)),
	}
	if h := heir(cur, partners); h != nil {
		change.Enable = []string{h.UUID}
	}
	if _, err := ns.nb.ApplyPorts(ctx, change); err != nil {
		return fmt.Errorf("delete logical switch port %s: %w", cur.Name, err)
	}
	if n := ns.Lookup(cur.ExternalIDs[externalids.Network]); n != nil {
		n.releasePort(cur.Name)
		for _, p := range partners {
			n.observePort(p.Name, p)
		}
	}
	return nil
}

// PrefixList renders prefixes as the comma-separated list stored in
// external_ids.
func PrefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// ParsePrefixList parses PrefixList's output, skipping what does not parse.
func ParsePrefixList(s string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// PrefixAddrs returns the addresses of prefixes.
func PrefixAddrs(ps []netip.Prefix) []netip.Addr {
	out := make([]netip.Addr, len(ps))
	for i, p := range ps {
		out[i] = p.Addr()
	}
	return out
}
