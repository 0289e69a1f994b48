package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// claimAttempts bounds how often a node re-reads and retries a claim that
// lost a race. Each loss means another node's claim committed, so progress
// is guaranteed cluster-wide; the bound only stops a pathological loop.
const claimAttempts = 50

// setUpLayer3 finds or creates the network's router, then this node's
// claim on its per-node subnets (claiming them if this is the node's first
// pod on the network), and prepares allocation from them.
func (ns *Registry) setUpLayer3(ctx context.Context, n *Network) error {
	lr, err := ns.nb.EnsureRouter(ctx, routerName(n.name), shapeIDs(n.conf))
	if err != nil {
		return err
	}
	if lr.ExternalIDs[externalids.Fingerprint] != n.fingerprint {
		return differentShape(n.name)
	}
	subnets, err := ns.claimNodeSubnets(ctx, n)
	if err != nil {
		return err
	}
	n.switchName = layer3SwitchName(n.name, ns.node)
	n.nodeSubnets = subnets
	excluded := append([]netip.Prefix(nil), n.conf.ExcludeSubnets...)
	for _, s := range subnets {
		gw := s.Addr().Next()
		n.gateways = append(n.gateways, gw)
		excluded = append(excluded, netip.PrefixFrom(gw, gw.BitLen()))
	}
	// One route per cluster subnet, via the gateway of this node's slice
	// of it. (Pairing every subnet with every gateway of its family gave
	// a network with two IPv4 subnets two routes to one destination.)
	for _, cluster := range n.conf.Subnets {
		for i, s := range subnets {
			if cluster.CIDR.Contains(s.Addr()) {
				n.routes = append(n.routes, netns.Route{Dst: cluster.CIDR, Gateway: n.gateways[i]})
			}
		}
	}
	n.pool = ipam.NewPool(subnets, excluded)
	return nil
}

// claimNodeSubnets returns this node's subnets of the network, claiming
// them first if needed. The claim is optimistic: pick free subnets from the
// cached claims, then commit only if the router's claims are still exactly
// what was read. A lost race costs one re-read.
func (ns *Registry) claimNodeSubnets(ctx context.Context, n *Network) ([]netip.Prefix, error) {
	for attempt := 1; attempt <= claimAttempts; attempt++ {
		// Taken before the read: a change landing after the read but
		// before the wait must still wake us.
		changed := ns.nb.Changed()
		lr, ok := ns.nb.Router(routerName(n.name))
		if !ok {
			return nil, fmt.Errorf("router %s vanished from the NB", routerName(n.name))
		}
		claims := ovn.NodeClaims(lr)
		if mine, ok := claims[ns.node]; ok {
			if err := ns.waitForSwitch(ctx, layer3SwitchName(n.name, ns.node)); err != nil {
				return nil, err
			}
			return ParsePrefixList(mine), nil
		}
		subnets, err := pickNodeSubnets(n, claims)
		if err != nil {
			return nil, err
		}
		err = ns.nb.ClaimNode(ctx, ns.nodeClaim(n, lr, subnets))
		if err == nil || errors.Is(err, ovn.ErrConflict) {
			// Won: wait to see our claim. Lost: wait to see the winner's.
			select {
			case <-changed:
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(2 * time.Second):
			}
			continue
		}
		return nil, err
	}
	return nil, fmt.Errorf("could not claim a node subnet after %d attempts: too much contention", claimAttempts)
}

func (ns *Registry) waitForSwitch(ctx context.Context, name string) error {
	deadline := time.After(5 * time.Second)
	for {
		changed := ns.nb.Changed()
		if _, ok := ns.nb.Switch(name); ok {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return fmt.Errorf("node switch %s is claimed but missing from the NB", name)
		}
	}
}

// pickNodeSubnets chooses, for every cluster subnet, the lowest per-node
// subnet no node has claimed.
func pickNodeSubnets(n *Network, claims map[string]string) ([]netip.Prefix, error) {
	var taken []netip.Prefix
	for _, v := range claims {
		taken = append(taken, ParsePrefixList(v)...)
	}
	var out []netip.Prefix
	for _, s := range n.conf.Subnets {
		p, err := ipam.NextNodeSubnet(s.CIDR, s.HostPrefix, taken)
		if err != nil {
			return nil, fmt.Errorf("network %q: %w (%d nodes hold subnets); use a larger subnet or a longer per-node prefix in \"subnets\", or release a departed node with `ovn-overlayctl release-node`", n.name, err, len(claims))
		}
		out = append(out, p)
	}
	return out, nil
}

// nodeClaim builds this node's switch and router link for subnets.
func (ns *Registry) nodeClaim(n *Network, lr *nbdb.LogicalRouter, subnets []netip.Prefix) ovn.NodeClaim {
	var gwNets []string
	var gws []netip.Prefix
	for _, s := range subnets {
		gw := netip.PrefixFrom(s.Addr().Next(), s.Bits())
		gws = append(gws, gw)
		gwNets = append(gwNets, gw.String())
	}
	ids := map[string]string{
		externalids.Network:  n.name,
		externalids.Topology: string(n.conf.Topology),
		externalids.Node:     ns.node,
	}
	lrpName := routerPortName(n.name, ns.node)
	return ovn.NodeClaim{
		Router:  lr,
		Node:    ns.node,
		Subnets: PrefixList(subnets),
		Switch:  &nbdb.LogicalSwitch{Name: layer3SwitchName(n.name, ns.node), ExternalIDs: ids},
		RouterPort: &nbdb.LogicalRouterPort{
			Name: lrpName, MAC: macFor(gws).String(), Networks: gwNets, ExternalIDs: ids,
		},
		SwitchPort: &nbdb.LogicalSwitchPort{
			Name: switchToRouterPortName(n.name, ns.node), Type: "router",
			Addresses: []string{"router"}, Options: map[string]string{"router-port": lrpName},
			ExternalIDs: ids,
		},
	}
}
