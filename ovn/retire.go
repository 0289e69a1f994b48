package ovn

import (
	"context"
	"fmt"
	"slices"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// Retiring networks. A node that has not used a network for a while gives
// back its share (ReleaseNodeShare); the last one out removes the
// network's shared rows (DeleteNetworkIfUnused). Both are guarded by
// preconditions on exactly the rows they read, like node subnet claims: a
// node attaching a pod at the same moment changes those rows, the retiring
// transaction fails with ErrConflict, and nothing is removed.

// NodeShare is what one node holds of one network.
type NodeShare struct {
	Network string
	Node    string
	// Switch is the network's switch the warm ports are on: the shared
	// layer2 switch, or the node's own layer3 switch.
	Switch *nbdb.LogicalSwitch
	// Warm are the node's warm ports on Switch.
	Warm []*nbdb.LogicalSwitchPort
	// Router is set on layer3: the claim, the node switch (Switch) and its
	// router link go too, provided the node switch holds nothing but the
	// router link and Warm.
	Router *nbdb.LogicalRouter
}

// ReleaseNodeShare removes a node's share of a network in one guarded
// transaction.
func (nb *Northbound) ReleaseNodeShare(ctx context.Context, s NodeShare) error {
	zero := 0
	var ops []ovsdb.Operation
	guard := func(m model.Model, field any) error {
		w, err := nb.client.Where(m).Wait(ovsdb.WaitConditionEqual, &zero, m, field)
		ops = append(ops, w...)
		return err
	}
	warm := make([]string, len(s.Warm))
	for i, p := range s.Warm {
		warm[i] = p.UUID
	}
	ls := &nbdb.LogicalSwitch{UUID: s.Switch.UUID, Ports: s.Switch.Ports}
	if err := guard(ls, &ls.Ports); err != nil {
		return fmt.Errorf("build guard on switch %s: %w", s.Switch.Name, err)
	}
	if s.Router == nil {
		if len(warm) == 0 {
			return nil
		}
		m := &nbdb.LogicalSwitch{UUID: s.Switch.UUID}
		mut, err := nb.client.Where(m).Mutate(m, model.Mutation{Field: &m.Ports, Mutator: ovsdb.MutateOperationDelete, Value: warm})
		if err != nil {
			return err
		}
		ops = append(ops, mut...)
	} else {
		lr := &nbdb.LogicalRouter{UUID: s.Router.UUID, ExternalIDs: s.Router.ExternalIDs}
		if err := guard(lr, &lr.ExternalIDs); err != nil {
			return fmt.Errorf("build guard on router %s: %w", s.Router.Name, err)
		}
		m := &nbdb.LogicalRouter{UUID: s.Router.UUID}
		mutations := []model.Mutation{{Field: &m.ExternalIDs, Mutator: ovsdb.MutateOperationDelete, Value: []string{externalids.NodeSubnetsPrefix + s.Node}}}
		if lrps := nb.nodeRouterPorts(ctx, s.Router, s.Node); len(lrps) > 0 {
			mutations = append(mutations, model.Mutation{Field: &m.Ports, Mutator: ovsdb.MutateOperationDelete, Value: lrps})
		}
		mut, err := nb.client.Where(m).Mutate(m, mutations...)
		if err != nil {
			return err
		}
		// The node switch is a root row: deleting it takes its ports.
		del, err := nb.client.Where(&nbdb.LogicalSwitch{UUID: s.Switch.UUID}).Delete()
		if err != nil {
			return err
		}
		ops = append(append(ops, mut...), del...)
	}
	if _, err := nb.transact(ctx, ops); err != nil {
		return fmt.Errorf("release node %s's share of network %s: %w", s.Node, s.Network, err)
	}
	return nil
}

// DeleteNetworkIfUnused deletes a network's shared rows if nothing of any
// node is left on them: its switch (layer2, localnet) with nothing but its
// localnet port or router link, its router (layer3, and layer2 with
// external connectivity) with no node's claim or port, the router's
// gateway (its switch end leaves the shared external switch in the same
// transaction), its empty address sets and its DHCP options. It reports
// whether it deleted them.
func (nb *Northbound) DeleteNetworkIfUnused(ctx context.Context, network string, ls *nbdb.LogicalSwitch, lr *nbdb.LogicalRouter) (bool, error) {
	if (ls == nil && lr == nil) || (ls != nil && !nb.holdsNoAttachment(ls)) || (lr != nil && !nb.routerHoldsNoNode(lr)) {
		return false, nil
	}
	var ops []ovsdb.Operation
	if ls != nil {
		w, err := nb.portSetGuard(ls)
		if err != nil {
			return false, err
		}
		del, err := nb.client.Where(&nbdb.LogicalSwitch{UUID: ls.UUID}).Delete()
		if err != nil {
			return false, err
		}
		ops = append(append(ops, w...), del...)
	}
	if lr != nil {
		zero := 0
		g := &nbdb.LogicalRouter{UUID: lr.UUID, ExternalIDs: lr.ExternalIDs, Ports: lr.Ports}
		w, err := nb.client.Where(g).Wait(ovsdb.WaitConditionEqual, &zero, g, &g.ExternalIDs, &g.Ports)
		if err != nil {
			return false, err
		}
		// Router ports, NAT rows and routes are not root rows: they go
		// with the router. The gateway's switch end is on a switch that
		// stays, so it leaves it explicitly.
		del, err := nb.client.Where(&nbdb.LogicalRouter{UUID: lr.UUID}).Delete()
		if err != nil {
			return false, err
		}
		ops = append(append(ops, w...), del...)
		leave, err := nb.leaveExternalSwitches(lr)
		if err != nil {
			return false, err
		}
		ops = append(ops, leave...)
	}
	var sets []nbdb.AddressSet
	if err := nb.client.WhereCache(func(as *nbdb.AddressSet) bool {
		return as.ExternalIDs[externalids.Network] == network && len(as.Addresses) == 0
	}).List(ctx, &sets); err != nil {
		return false, err
	}
	for _, as := range sets {
		del, err := nb.client.Where(&nbdb.AddressSet{UUID: as.UUID}).Delete()
		if err != nil {
			return false, err
		}
		ops = append(ops, del...)
	}
	dhcp, err := nb.deleteDHCPOptionsOps(network)
	if err != nil {
		return false, err
	}
	ops = append(ops, dhcp...)
	if _, err := nb.transact(ctx, ops); err != nil {
		return false, fmt.Errorf("delete unused network %s: %w", network, err)
	}
	return true, nil
}

// leaveExternalSwitches removes the switch ends of lr's gateway ports from
// the external switches they are on.
func (nb *Northbound) leaveExternalSwitches(lr *nbdb.LogicalRouter) ([]ovsdb.Operation, error) {
	var ops []ovsdb.Operation
	for _, uuid := range lr.Ports {
		lrp := &nbdb.LogicalRouterPort{UUID: uuid}
		if nb.client.Get(context.Background(), lrp) != nil || lrp.ExternalIDs[externalids.GatewayIP] == "" {
			continue
		}
		end, ok := nb.Port(switchEndName(lrp.Name))
		if !ok {
			continue
		}
		ext, ok := nb.Switch(lrp.ExternalIDs[externalids.Switch])
		if !ok || !slices.Contains(ext.Ports, end.UUID) {
			continue
		}
		sw := &nbdb.LogicalSwitch{UUID: ext.UUID}
		m, err := nb.client.Where(sw).Mutate(sw, model.Mutation{Field: &sw.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{end.UUID}})
		if err != nil {
			return nil, err
		}
		ops = append(ops, m...)
	}
	return ops, nil
}

// NodeNetworks lists the networks a node holds rows of in the cache: warm
// ports, layer3 claims. A restarted daemon's registry is empty; this is
// how it finds what it may have to give back.
func (nb *Northbound) NodeNetworks(node string) []string {
	seen := map[string]bool{}
	var ports []nbdb.LogicalSwitchPort
	_ = nb.client.WhereCache(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.Node] == node && p.ExternalIDs[externalids.Warm] == "true"
	}).List(context.Background(), &ports)
	for _, p := range ports {
		seen[p.ExternalIDs[externalids.Network]] = true
	}
	var routers []nbdb.LogicalRouter
	_ = nb.client.List(context.Background(), &routers)
	for _, r := range routers {
		if _, ok := NodeClaims(&r)[node]; ok {
			seen[r.ExternalIDs[externalids.Network]] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	slices.Sort(out)
	return out
}

// EmptyNetworks lists networks whose shared rows hold nothing of anyone: a
// layer2 switch without ports, a layer3 router without claims or ports
// (left by a network whose every ADD failed, say). Any node may remove
// them.
func (nb *Northbound) EmptyNetworks() []string {
	var out []string
	// A layer2 network with external connectivity has a router with no
	// node's rows on it; its switch says whether it is in use.
	busy := map[string]bool{}
	var switches []nbdb.LogicalSwitch
	_ = nb.client.WhereCache(func(ls *nbdb.LogicalSwitch) bool {
		return ls.ExternalIDs[externalids.Node] == "" && ls.ExternalIDs[externalids.Network] != ""
	}).List(context.Background(), &switches)
	for _, ls := range switches {
		network := ls.ExternalIDs[externalids.Network]
		if nb.holdsNoAttachment(&ls) {
			out = append(out, network)
		} else {
			busy[network] = true
		}
	}
	var routers []nbdb.LogicalRouter
	_ = nb.client.WhereCache(func(lr *nbdb.LogicalRouter) bool {
		return lr.ExternalIDs[externalids.Network] != "" && !busy[lr.ExternalIDs[externalids.Network]] && nb.routerHoldsNoNode(lr)
	}).List(context.Background(), &routers)
	for _, lr := range routers {
		out = append(out, lr.ExternalIDs[externalids.Network])
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// holdsNoAttachment reports whether a shared switch has no port but its
// own localnet port or router link: no pod of any node, and no port of
// another system.
func (nb *Northbound) holdsNoAttachment(ls *nbdb.LogicalSwitch) bool {
	for _, uuid := range ls.Ports {
		if lsp, ok := nb.PortByUUID(uuid); !ok || !(IsLocalnet(lsp) || lsp.Type == "router") {
			return false
		}
	}
	return true
}

// routerHoldsNoNode reports whether a network's router has no node's
// subnet claim and no node's port: what is left is the network's own
// (a gateway port, a layer2 switch's link).
func (nb *Northbound) routerHoldsNoNode(lr *nbdb.LogicalRouter) bool {
	if len(NodeClaims(lr)) > 0 {
		return false
	}
	for _, uuid := range lr.Ports {
		lrp := &nbdb.LogicalRouterPort{UUID: uuid}
		if nb.client.Get(context.Background(), lrp) != nil || lrp.ExternalIDs[externalids.Node] != "" {
			return false
		}
	}
	return true
}
