package network

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/gateway"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// ErrNoExternal means a network asks for external connectivity on a
// physical network this node's daemon was not told about (the operator's
// --external-network). The config may be fine and the node is not, so the
// runtime's retry succeeds once the daemon is configured.
var ErrNoExternal = errors.New("no external network configured")

// A network with external connectivity leaves through a gateway port on
// its router (docs/design.md, "External connectivity"):
//
//	pods ── network switch ── router ── gateway port (SNAT) ── external switch ── localnet ── physical network
//
// layer3 has its router already; layer2 gets one, linked to its switch at
// the first address of each subnet (routerLinkAddrs), which its address
// pool keeps out. The external switch is one per physical network, shared
// by every network's gateway.

// externalFor resolves a network's external connectivity against the
// operator's settings before anything is made, so a refused config leaves
// nothing behind.
func (ns *Registry) externalFor(conf *netconf.NetConf) (*externalPlan, error) {
	want := conf.External
	x, ok := ns.opts.External.Lookup(want.PhysicalNetwork)
	if !ok {
		phys := want.PhysicalNetwork
		if phys == "" {
			phys = "<physical network>"
		}
		return nil, fmt.Errorf("%w: network %q asks for external connectivity (has_external_connectivity or external* keys), but this node's ovn-overlay daemon has no --%s for %s (configured: %v); start the daemons with e.g. --%s=%s,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1",
			ErrNoExternal, conf.Name, gateway.FlagName, phys, ns.opts.External.Names(), gateway.FlagName, phys)
	}
	requested, err := requestedGatewayIP(conf, x)
	if err != nil {
		return nil, err
	}
	prefixes := want.Prefixes
	if len(prefixes) == 0 {
		prefixes = x.Prefixes
	}
	return &externalPlan{External: x, requested: requested, prefixes: prefixes}, nil
}

// CheckExternal says why this node cannot give conf's network its way
// out, or nil (also for networks that ask for none). STATUS asks it.
func (ns *Registry) CheckExternal(conf *netconf.NetConf) error {
	if conf.External == nil {
		return nil
	}
	_, err := ns.externalFor(conf)
	return err
}

// externalPlan is a network's way out: the operator's external network,
// the gateway address it asks for (invalid: any of the pool) and the
// prefixes its pods route there.
type externalPlan struct {
	gateway.External
	requested netip.Addr
	prefixes  []netip.Prefix
}

// setUpExternal gives n its router and gateway and its pods their routes
// to the external prefixes. Every step adopts what another node made.
func (ns *Registry) setUpExternal(ctx context.Context, n *Network, plan *externalPlan) error {
	ext, err := ns.externalSwitch(ctx, plan.PhysicalNetwork)
	if err != nil {
		return err
	}
	lr, err := ns.routerOf(ctx, n)
	if err != nil {
		return err
	}
	var snat []netip.Prefix
	for _, s := range n.conf.Subnets {
		snat = append(snat, s.CIDR)
	}
	addr, err := ns.nb.EnsureGateway(ctx, ovn.GatewaySpec{
		Network: n.name, PhysicalNetwork: plan.PhysicalNetwork, Router: lr, External: ext,
		PortName: gatewayPortName(n.name), Requested: plan.requested, Pool: plan.Pool, SNAT: snat,
	})
	if err != nil {
		return fmt.Errorf("gateway on physical network %s: %w", plan.PhysicalNetwork, err)
	}
	for _, p := range plan.prefixes {
		for _, gw := range n.gateways {
			if gw.Is4() == p.Addr().Is4() {
				n.routes = append(n.routes, netns.Route{Dst: p, Gateway: gw})
			}
		}
	}
	n.externalIP, n.externalPhysnet = addr, plan.PhysicalNetwork
	ns.awaitGatewayChassis(ctx, n)
	return nil
}

// gatewayChassisWait bounds how long a network's first setup on a node
// waits for its gateway to get a gateway chassis.
const gatewayChassisWait = 2 * time.Second

// awaitGatewayChassis waits, once per network and node and at most
// gatewayChassisWait, for the gateway nodes' agents to join a new gateway,
// so that the first pods do not come up before their network has a way
// out (and CHECK right after ADD does not report it). Without any gateway
// node the network still serves east/west traffic: the ADD goes on, and
// CHECK says what is missing.
func (ns *Registry) awaitGatewayChassis(ctx context.Context, n *Network) {
	deadline := time.NewTimer(gatewayChassisWait)
	defer deadline.Stop()
	for {
		changed := ns.nb.RouterPortsChanged()
		if n.CheckGateway() == nil {
			return
		}
		select {
		case <-changed:
		case <-deadline.C:
			n.log.Warn("the network's gateway has no gateway chassis yet: no node serves its physical network (ovn-bridge-mappings and --gateway-node); pods attach, but cannot reach external networks", "gateway", gatewayPortName(n.name), "physicalNetwork", n.externalPhysnet)
			return
		case <-ctx.Done():
			return
		}
	}
}

// CheckGateway says what keeps the network's pods from getting out, as
// the NB shows it: its gateway port gone, or no gateway chassis for OVN
// to bind it on. nil for networks without external connectivity.
func (n *Network) CheckGateway() error {
	if !n.externalIP.IsValid() {
		return nil
	}
	name := gatewayPortName(n.name)
	chassis, err := n.nb.GatewayChassis(name)
	switch {
	case err != nil:
		return fmt.Errorf("network %s has no gateway port %s in the NB (deleted behind ovn-overlay's back? the network's next setup recreates it once no pod uses it): %w", n.name, name, err)
	case len(chassis) == 0:
		return fmt.Errorf("network %s's gateway %s has no gateway chassis: no node serves physical network %q (maps it in ovn-bridge-mappings and runs with --gateway-node), so its pods cannot get out", n.name, name, n.externalPhysnet)
	}
	return nil
}

// requestedGatewayIP is the network's own gateway address of the pool's
// family, if it asks for one; it must be on the external subnet.
func requestedGatewayIP(conf *netconf.NetConf, x gateway.External) (netip.Addr, error) {
	for _, a := range conf.External.GatewayIPs {
		if a.Is4() != x.Pool.Subnet.Addr().Is4() {
			continue
		}
		if !x.Pool.Subnet.Contains(a) || a == x.Pool.NextHop {
			return netip.Addr{}, &netconf.FieldError{Field: "externalGatewayIPs", Value: a.String(),
				Problem: fmt.Sprintf("is not a free address of physical network %s's subnet %s", x.PhysicalNetwork, x.Pool.Subnet),
				Fix:     fmt.Sprintf("pick an address of %s other than its next hop, or leave the field out to get one of %s-%s", x.Pool.Subnet, x.Pool.First, x.Pool.Last)}
		}
		return a, nil
	}
	return netip.Addr{}, nil
}

// externalSwitch is the physical network's shared external switch with
// its localnet port, made by whichever node needs it first.
func (ns *Registry) externalSwitch(ctx context.Context, phys string) (*nbdb.LogicalSwitch, error) {
	ids := map[string]string{externalids.PhysicalNetwork: phys}
	ls, err := ns.nb.EnsureSwitch(ctx, externalSwitchName(phys), ids)
	if err != nil {
		return nil, err
	}
	if _, err := ns.nb.EnsureLocalnetPort(ctx, ls, &nbdb.LogicalSwitchPort{
		Name: externalLocalnetPortName(phys), Addresses: []string{"unknown"},
		Options: map[string]string{"network_name": phys}, ExternalIDs: ids,
	}); err != nil {
		return nil, err
	}
	// The gateway's guard asserts the switch's port set: read it with the
	// localnet port in it.
	for {
		changed := ns.nb.Changed()
		if ls, ok := ns.nb.Switch(externalSwitchName(phys)); ok && len(ls.Ports) > 0 {
			return ls, nil
		}
		if err := waitChanged(ctx, changed); err != nil {
			return nil, fmt.Errorf("external switch %s: waiting for its localnet port in the NB cache: %w", externalSwitchName(phys), err)
		}
	}
}

// routerOf is the network's router: layer3's own, or for layer2 one made
// for the gateway and linked to the network's switch.
func (ns *Registry) routerOf(ctx context.Context, n *Network) (*nbdb.LogicalRouter, error) {
	if n.conf.Topology == netconf.Layer3 {
		lr, ok := ns.nb.Router(routerName(n.name))
		if !ok {
			return nil, fmt.Errorf("router %s vanished from the NB", routerName(n.name))
		}
		return lr, nil
	}
	lr, err := ns.nb.EnsureRouter(ctx, routerName(n.name), shapeIDs(n.conf))
	if err != nil {
		return nil, err
	}
	if lr.ExternalIDs[externalids.Fingerprint] != n.fingerprint {
		return nil, differentShape(n.name)
	}
	ls, ok := ns.nb.Switch(n.switchName)
	if !ok {
		return nil, fmt.Errorf("switch %s vanished from the NB", n.switchName)
	}
	links := routerLinkAddrs(n.conf)
	if _, err := ns.nb.EnsureRouterLink(ctx, ovn.RouterLink{
		Router: lr, Switch: ls, PortName: layer2RouterPortName(n.name), MAC: macFor(links).String(), Networks: links,
		ExternalIDs: map[string]string{externalids.Network: n.name, externalids.Topology: string(n.conf.Topology)},
	}); err != nil {
		return nil, err
	}
	for _, p := range links {
		n.gateways = append(n.gateways, p.Addr())
	}
	return lr, nil
}

// routerLinkAddrs are the router's addresses on a layer2 network with
// external connectivity: the first address of each subnet, the usual
// place of a subnet's gateway.
func routerLinkAddrs(conf *netconf.NetConf) []netip.Prefix {
	if conf.External == nil || conf.Topology != netconf.Layer2 {
		return nil
	}
	var out []netip.Prefix
	for _, s := range conf.Subnets {
		out = append(out, netip.PrefixFrom(s.CIDR.Masked().Addr().Next(), s.CIDR.Bits()))
	}
	return out
}

func waitChanged(ctx context.Context, changed <-chan struct{}) error {
	select {
	case <-changed:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
