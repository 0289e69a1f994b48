package ovn

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// External connectivity (issue 14; not wired into the daemon yet).
//
// A network's way out is a distributed gateway port on its router: a
// router port on the physical network's shared external switch (which has
// that network's localnet port), scheduled by OVN on the gateway chassis
// listed in the port's gateway_chassis, with the network's subnets SNATed
// to the port's address and a route to the external next hop. Nodes agree
// on which network holds which gateway address as they agree on layer2
// addresses: the transaction that creates a gateway asserts the external
// switch's port set it read, and every gateway's switch end carries its
// address (externalids.GatewayIP).

// ErrGatewayPoolExhausted means no gateway address is left in the pool.
var ErrGatewayPoolExhausted = errors.New("no gateway address left in the external pool")

// ErrGatewayIPTaken means a requested gateway address is another
// network's.
var ErrGatewayIPTaken = errors.New("gateway address held by another network")

// GatewayPool is where gateway addresses come from: the external subnet
// (its prefix length goes on the gateway port) and the range of it the
// operator lets gateways use.
type GatewayPool struct {
	Subnet      netip.Prefix
	First, Last netip.Addr
	// NextHop is the external router, the target of the gateway's
	// default route; invalid: no route beyond the external subnet.
	NextHop netip.Addr
}

// GatewaySpec is one network's gateway.
type GatewaySpec struct {
	Network         string
	PhysicalNetwork string
	// Router is the network's router and External the physical
	// network's shared external switch, both as cached.
	Router   *nbdb.LogicalRouter
	External *nbdb.LogicalSwitch
	// PortName names the gateway router port; its end on the external
	// switch is PortName + "-lsp".
	PortName string
	// MAC of the gateway port; "": derived from its address (0a:58 and
	// the IPv4 address, as pod MACs are), unique on the physical network.
	MAC string
	// Requested is the network's own gateway address; invalid: pick the
	// first free one of Pool.
	Requested netip.Addr
	Pool      GatewayPool
	// SNAT lists the network's subnets, translated to the gateway's
	// address on the way out.
	SNAT []netip.Prefix
}

// RouterPort returns the cached owned router port called name (a
// gateway port, a router link).
func (nb *Northbound) RouterPort(name string) (*nbdb.LogicalRouterPort, bool) {
	lrp := &nbdb.LogicalRouterPort{Name: name}
	if err := nb.client.Get(context.Background(), lrp); err != nil {
		return nil, false
	}
	return lrp, true
}

// GatewayAddresses maps the gateway addresses held on an external switch
// to the networks holding them. Ports the cache does not show yet are read
// from the server: libovsdb applies one update table by table, so a
// reader can see the switch's new port before the port itself, and an
// address missed here would be handed out twice (the guard only asserts
// the port set, which is current).
func (nb *Northbound) GatewayAddresses(ctx context.Context, external *nbdb.LogicalSwitch) (map[netip.Addr]string, error) {
	out := map[netip.Addr]string{}
	record := func(ids map[string]string) {
		if a, err := netip.ParseAddr(ids[externalids.GatewayIP]); err == nil {
			out[a] = ids[externalids.Network]
		}
	}
	var unknown []string
	for _, uuid := range external.Ports {
		if lsp, ok := nb.PortByUUID(uuid); ok {
			record(lsp.ExternalIDs)
		} else {
			unknown = append(unknown, uuid)
		}
	}
	ports, err := nb.ForeignPorts(ctx, unknown)
	if err != nil {
		return nil, err
	}
	for _, lsp := range ports {
		record(lsp.ExternalIDs)
	}
	return out, nil
}

// EnsureGateway creates the network's gateway unless its port exists, and
// returns the gateway's address. Racing nodes: one commits, the others'
// guard fails, they re-read and find the gateway made.
func (nb *Northbound) EnsureGateway(ctx context.Context, g GatewaySpec) (netip.Addr, error) {
	for attempt := 0; attempt < 5; attempt++ {
		if lrp, ok := nb.RouterPort(g.PortName); ok {
			return gatewayAddr(lrp)
		}
		external, ok := nb.Switch(g.External.Name)
		if !ok {
			return netip.Addr{}, fmt.Errorf("external switch %s is not in the NB cache", g.External.Name)
		}
		changed := nb.Changed()
		used, err := nb.GatewayAddresses(ctx, external)
		if err != nil {
			return netip.Addr{}, err
		}
		addr, err := pickGatewayAddr(g, used)
		if err != nil {
			return netip.Addr{}, err
		}
		err = nb.createGateway(ctx, g, external, addr)
		if err == nil {
			return addr, nil
		}
		if !errors.Is(err, ErrConflict) {
			return netip.Addr{}, err
		}
		if err := waitClosed(ctx, changed, 5*time.Second); err != nil {
			return netip.Addr{}, fmt.Errorf("gateway of network %s: waiting for the NB cache: %w", g.Network, err)
		}
	}
	return netip.Addr{}, fmt.Errorf("gateway of network %s: lost 5 races for an address; try again", g.Network)
}

// pickGatewayAddr is the requested address if it is free, else the first
// free address of the pool's range.
func pickGatewayAddr(g GatewaySpec, used map[netip.Addr]string) (netip.Addr, error) {
	if g.Requested.IsValid() {
		if holder, taken := used[g.Requested]; taken && holder != g.Network {
			return netip.Addr{}, fmt.Errorf("gateway address %s for network %s: %w %s", g.Requested, g.Network, ErrGatewayIPTaken, holder)
		}
		return g.Requested, nil
	}
	for a := g.Pool.First; a.IsValid() && a.Compare(g.Pool.Last) <= 0; a = a.Next() {
		if _, taken := used[a]; !taken && a != g.Pool.NextHop {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("gateway of network %s: %w (%s-%s)", g.Network, ErrGatewayPoolExhausted, g.Pool.First, g.Pool.Last)
}

// gatewayAddr reads the address of a gateway port.
func gatewayAddr(lrp *nbdb.LogicalRouterPort) (netip.Addr, error) {
	for _, n := range lrp.Networks {
		if p, err := netip.ParsePrefix(n); err == nil {
			return p.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("gateway port %s has no address", lrp.Name)
}

// createGateway commits the gateway in one transaction guarded by the
// external switch's port set.
func (nb *Northbound) createGateway(ctx context.Context, g GatewaySpec, external *nbdb.LogicalSwitch, addr netip.Addr) error {
	ops, err := nb.portSetGuard(external)
	if err != nil {
		return err
	}
	ids := map[string]string{externalids.Network: g.Network, externalids.GatewayIP: addr.String(),
		externalids.PhysicalNetwork: g.PhysicalNetwork, externalids.Switch: external.Name}
	mac := g.MAC
	if mac == "" {
		mac = macOf(addr)
	}
	lrp := &nbdb.LogicalRouterPort{
		UUID: "newgwlrp", Name: g.PortName, MAC: mac,
		Networks:    []string{netip.PrefixFrom(addr, g.Pool.Subnet.Bits()).String()},
		ExternalIDs: owned(ids),
	}
	lsp := switchEnd("newgwlsp", g.PortName, ids)
	rows := []model.Model{lrp, lsp}
	var nats []string
	for i, subnet := range g.SNAT {
		if subnet.Addr().Is4() != addr.Is4() {
			continue
		}
		nat := &nbdb.NAT{
			UUID: fmt.Sprintf("newgwnat%d", i), Type: nbdb.NATTypeSNAT,
			ExternalIP: addr.String(), LogicalIP: subnet.String(), ExternalIDs: owned(ids),
		}
		rows = append(rows, nat)
		nats = append(nats, nat.UUID)
	}
	var routes []string
	if g.Pool.NextHop.IsValid() {
		route := &nbdb.LogicalRouterStaticRoute{UUID: "newgwroute", IPPrefix: defaultPrefix(addr).String(), Nexthop: g.Pool.NextHop.String(), ExternalIDs: owned(ids)}
		rows = append(rows, route)
		routes = append(routes, route.UUID)
	}
	create, err := nb.client.Create(rows...)
	if err != nil {
		return fmt.Errorf("build gateway of network %s: %w", g.Network, err)
	}
	ops = append(ops, create...)
	sw := &nbdb.LogicalSwitch{UUID: external.UUID}
	attach, err := nb.client.Where(sw).Mutate(sw, model.Mutation{Field: &sw.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{lsp.UUID}})
	if err != nil {
		return err
	}
	lr := &nbdb.LogicalRouter{UUID: g.Router.UUID}
	mutations := []model.Mutation{{Field: &lr.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{lrp.UUID}}}
	if len(nats) > 0 {
		mutations = append(mutations, model.Mutation{Field: &lr.Nat, Mutator: ovsdb.MutateOperationInsert, Value: nats})
	}
	if len(routes) > 0 {
		mutations = append(mutations, model.Mutation{Field: &lr.StaticRoutes, Mutator: ovsdb.MutateOperationInsert, Value: routes})
	}
	link, err := nb.client.Where(lr).Mutate(lr, mutations...)
	if err != nil {
		return err
	}
	ops = append(append(ops, attach...), link...)
	if _, err := nb.transact(ctx, ops); err != nil {
		if errors.Is(err, ErrConflict) {
			return err
		}
		return fmt.Errorf("create gateway of network %s at %s: %w", g.Network, addr, err)
	}
	return nil
}

// switchEnd is the logical switch port (type router) that puts router
// port routerPort on a switch; it is named after the router port.
func switchEnd(uuid, routerPort string, ids map[string]string) *nbdb.LogicalSwitchPort {
	return &nbdb.LogicalSwitchPort{
		UUID: uuid, Name: switchEndName(routerPort), Type: "router", Addresses: []string{"router"},
		Options: map[string]string{"router-port": routerPort}, ExternalIDs: owned(ids),
	}
}

// switchEndName names the switch end of router port routerPort.
func switchEndName(routerPort string) string { return routerPort + "-lsp" }

// defaultPrefix is the default route of addr's family.
func defaultPrefix(addr netip.Addr) netip.Prefix {
	if addr.Is4() {
		return netip.MustParsePrefix("0.0.0.0/0")
	}
	return netip.MustParsePrefix("::/0")
}

// GatewayPort is a network's gateway port as the cache shows it.
type GatewayPort struct {
	Name, UUID      string
	Network         string
	PhysicalNetwork string
	// Chassis maps the chassis names of the port's gateway chassis rows to
	// their priorities, and rows to the rows' UUIDs.
	Chassis map[string]int
	rows    map[string]string
}

// GatewayPorts lists every network's gateway port.
func (nb *Northbound) GatewayPorts() ([]GatewayPort, error) {
	var lrps []nbdb.LogicalRouterPort
	if err := nb.client.WhereCache(func(p *nbdb.LogicalRouterPort) bool {
		return p.ExternalIDs[externalids.GatewayIP] != ""
	}).List(context.Background(), &lrps); err != nil {
		return nil, err
	}
	out := make([]GatewayPort, 0, len(lrps))
	for i := range lrps {
		out = append(out, nb.gatewayPortOf(&lrps[i]))
	}
	return out, nil
}

// gatewayPortOf is lrp with its gateway chassis rows read from the cache.
func (nb *Northbound) gatewayPortOf(lrp *nbdb.LogicalRouterPort) GatewayPort {
	g := GatewayPort{Name: lrp.Name, UUID: lrp.UUID, Network: lrp.ExternalIDs[externalids.Network],
		PhysicalNetwork: lrp.ExternalIDs[externalids.PhysicalNetwork], Chassis: map[string]int{}, rows: map[string]string{}}
	for _, u := range lrp.GatewayChassis {
		gc := &nbdb.GatewayChassis{UUID: u}
		if err := nb.client.Get(context.Background(), gc); err == nil {
			g.Chassis[gc.ChassisName] = gc.Priority
			g.rows[gc.ChassisName] = u
		}
	}
	return g
}

// JoinGateway makes chassis (of node) one of the gateway port's gateway
// chassis, with priority: OVN binds the port on the highest-priority live
// one and moves it by BFD when that one fails. Idempotent: the
// Gateway_Chassis row is named after port and chassis and created only if
// absent, so each node adds only its own row and never rewrites another's.
func (nb *Northbound) JoinGateway(ctx context.Context, portName, chassis, node string, priority int) error {
	lrp, ok := nb.RouterPort(portName)
	if !ok {
		return fmt.Errorf("gateway port %s is not in the NB cache", portName)
	}
	name := portName + "-" + chassis
	inCache := func() bool { return nb.client.Get(ctx, &nbdb.GatewayChassis{Name: name}) == nil }
	if inCache() {
		return nil
	}
	gc := &nbdb.GatewayChassis{UUID: "newgc", Name: name, ChassisName: chassis, Priority: priority,
		ExternalIDs: owned(map[string]string{externalids.Node: node, externalids.Network: lrp.ExternalIDs[externalids.Network]})}
	create, err := nb.client.Create(gc)
	if err != nil {
		return err
	}
	port := &nbdb.LogicalRouterPort{UUID: lrp.UUID}
	attach, err := nb.client.Where(port).Mutate(port, model.Mutation{Field: &port.GatewayChassis, Mutator: ovsdb.MutateOperationInsert, Value: []string{gc.UUID}})
	if err != nil {
		return err
	}
	err = nb.createUnique(ctx, nbdb.GatewayChassisTable, name, nil, inCache, append(create, attach...)...)
	if errors.Is(err, ErrConflict) {
		return nil // already a gateway chassis of the port
	}
	if err != nil {
		return fmt.Errorf("join gateway %s as chassis %s: %w", portName, chassis, err)
	}
	return nil
}

// LeaveGateway takes chassis off a gateway port's gateway chassis (the
// Gateway_Chassis row is not a root row: it goes with the reference). A
// node that no longer maps the port's physical network must leave, or
// OVN could make it the active gateway with no way out.
func (nb *Northbound) LeaveGateway(ctx context.Context, g GatewayPort, chassis string) error {
	uuid, ok := g.rows[chassis]
	if !ok {
		return nil
	}
	ops, err := nb.dropGatewayChassis(g.UUID, []string{uuid})
	if err != nil {
		return err
	}
	if _, err := nb.transact(ctx, ops); err != nil {
		return fmt.Errorf("leave gateway %s as chassis %s: %w", g.Name, chassis, err)
	}
	return nil
}

// dropGatewayChassis is the operation taking gateway chassis rows off a
// gateway port; the rows are not root rows, so they go with the reference.
func (nb *Northbound) dropGatewayChassis(portUUID string, rows []string) ([]ovsdb.Operation, error) {
	port := &nbdb.LogicalRouterPort{UUID: portUUID}
	return nb.client.Where(port).Mutate(port, model.Mutation{Field: &port.GatewayChassis, Mutator: ovsdb.MutateOperationDelete, Value: rows})
}

// GatewayChassis lists the chassis names of a gateway port's gateway
// chassis rows, sorted.
func (nb *Northbound) GatewayChassis(portName string) ([]string, error) {
	lrp, ok := nb.RouterPort(portName)
	if !ok {
		return nil, fmt.Errorf("gateway port %s is not in the NB cache", portName)
	}
	return slices.Sorted(maps.Keys(nb.gatewayPortOf(lrp).Chassis)), nil
}

// RouterLink joins a switch to a router: a router port with the given
// networks and its switch end (type router). Layer2 networks with
// external connectivity get one to their new router; layer3 node switches
// get theirs with the node's claim (ClaimNode).
type RouterLink struct {
	Router *nbdb.LogicalRouter
	Switch *nbdb.LogicalSwitch
	// PortName names the router port; its switch end is PortName+"-lsp".
	PortName    string
	MAC         string
	Networks    []netip.Prefix
	ExternalIDs map[string]string
}

// EnsureRouterLink creates the link unless its router port exists. Racing
// nodes: the router port's name is unique, so one commits and the others
// adopt it.
func (nb *Northbound) EnsureRouterLink(ctx context.Context, l RouterLink) (*nbdb.LogicalRouterPort, error) {
	return ensure(ctx, nb, "router link "+l.PortName,
		func() (*nbdb.LogicalRouterPort, bool) { return nb.RouterPort(l.PortName) },
		func() error { return nb.createRouterLink(ctx, l) })
}

func (nb *Northbound) createRouterLink(ctx context.Context, l RouterLink) error {
	var networks []string
	for _, p := range l.Networks {
		networks = append(networks, p.String())
	}
	lrp := &nbdb.LogicalRouterPort{UUID: "newlinklrp", Name: l.PortName, MAC: l.MAC, Networks: networks, ExternalIDs: owned(l.ExternalIDs)}
	lsp := switchEnd("newlinklsp", l.PortName, l.ExternalIDs)
	create, err := nb.client.Create(lrp, lsp)
	if err != nil {
		return fmt.Errorf("build router link %s: %w", l.PortName, err)
	}
	lr := &nbdb.LogicalRouter{UUID: l.Router.UUID}
	toRouter, err := nb.client.Where(lr).Mutate(lr, model.Mutation{Field: &lr.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{lrp.UUID}})
	if err != nil {
		return err
	}
	sw := &nbdb.LogicalSwitch{UUID: l.Switch.UUID}
	toSwitch, err := nb.client.Where(sw).Mutate(sw, model.Mutation{Field: &sw.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{lsp.UUID}})
	if err != nil {
		return err
	}
	ops := append(append(create, toRouter...), toSwitch...)
	return nb.createUnique(ctx, nbdb.LogicalRouterPortTable, l.PortName, nil, func() bool { _, ok := nb.RouterPort(l.PortName); return ok }, ops...)
}

// macOf is the locally administered MAC derived from addr: 0a:58 and the
// IPv4 address, or the last four bytes of an IPv6 one.
func macOf(addr netip.Addr) string {
	b := addr.As16()
	return fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", b[12], b[13], b[14], b[15])
}
