package ovn

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// Router returns the cached owned logical router called name.
func (nb *Northbound) Router(name string) (*nbdb.LogicalRouter, bool) {
	var found []nbdb.LogicalRouter
	if err := nb.client.Where(&nbdb.LogicalRouter{Name: name}).List(context.Background(), &found); err != nil || len(found) == 0 {
		return nil, false
	}
	return &found[0], true
}

// EnsureRouter returns the owned logical router called name, creating it if
// needed; racing creators end up sharing one, as with EnsureSwitch.
func (nb *Northbound) EnsureRouter(ctx context.Context, name string, externalIDs map[string]string) (*nbdb.LogicalRouter, error) {
	return ensure(ctx, nb, "logical router "+name,
		func() (*nbdb.LogicalRouter, bool) { return nb.Router(name) },
		func() error {
			lr := &nbdb.LogicalRouter{UUID: "newrouter", Name: name, ExternalIDs: owned(externalIDs)}
			return nb.createUnique(ctx, nbdb.LogicalRouterTable, name, lr, func() bool { _, ok := nb.Router(name); return ok })
		})
}

// NodeClaim is a node's claim of its subnets on a layer3 network, with the
// node's switch and its link to the router, all created in one transaction.
type NodeClaim struct {
	// Router is the network's router as read from the cache: the claim
	// only commits if its external_ids are still exactly these.
	Router *nbdb.LogicalRouter
	Node   string
	// Subnets is the claim's value, e.g. "10.128.1.0/24,fd00::/64".
	Subnets    string
	Switch     *nbdb.LogicalSwitch
	RouterPort *nbdb.LogicalRouterPort
	// SwitchPort is the switch's end of the router link (type router).
	SwitchPort *nbdb.LogicalSwitchPort
}

// ClaimNode commits c, or returns ErrConflict if another node changed the
// router's claims since c.Router was read.
func (nb *Northbound) ClaimNode(ctx context.Context, c NodeClaim) error {
	zero := 0
	guard := &nbdb.LogicalRouter{UUID: c.Router.UUID, ExternalIDs: c.Router.ExternalIDs}
	ops, err := nb.client.Where(guard).Wait(ovsdb.WaitConditionEqual, &zero, guard, &guard.ExternalIDs)
	if err != nil {
		return fmt.Errorf("build claim guard: %w", err)
	}
	c.RouterPort.UUID, c.SwitchPort.UUID, c.Switch.UUID = "newlrp", "newstor", "newnodeswitch"
	c.RouterPort.ExternalIDs = owned(c.RouterPort.ExternalIDs)
	c.SwitchPort.ExternalIDs = owned(c.SwitchPort.ExternalIDs)
	c.Switch.ExternalIDs = owned(c.Switch.ExternalIDs)
	c.Switch.Ports = []string{c.SwitchPort.UUID}
	create, err := nb.client.Create(c.RouterPort, c.SwitchPort, c.Switch)
	if err != nil {
		return fmt.Errorf("build node %s topology: %w", c.Node, err)
	}
	ops = append(ops, create...)
	lr := &nbdb.LogicalRouter{UUID: c.Router.UUID}
	mutate, err := nb.client.Where(lr).Mutate(lr,
		model.Mutation{Field: &lr.ExternalIDs, Mutator: ovsdb.MutateOperationInsert, Value: map[string]string{externalids.NodeSubnetsPrefix + c.Node: c.Subnets}},
		model.Mutation{Field: &lr.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{c.RouterPort.UUID}},
	)
	if err != nil {
		return fmt.Errorf("build claim of node %s: %w", c.Node, err)
	}
	ops = append(ops, mutate...)
	if _, err := nb.transact(ctx, ops); err != nil {
		if err == ErrConflict {
			return err
		}
		return fmt.Errorf("claim subnets %s for node %s on router %s: %w", c.Subnets, c.Node, c.Router.Name, err)
	}
	return nil
}

// NodeClaims returns the node→subnets claims recorded on a router.
func NodeClaims(lr *nbdb.LogicalRouter) map[string]string {
	out := map[string]string{}
	for k, v := range lr.ExternalIDs {
		if node, ok := strings.CutPrefix(k, externalids.NodeSubnetsPrefix); ok {
			out[node] = v
		}
	}
	return out
}

// ReleaseNode removes everything node owns in OVN, in one transaction: its
// layer3 subnet claims with their switches (and so their ports) and router
// ports, its ports on layer2 switches, and their addresses from address
// sets. It is what an operator runs when a node is gone for good. It
// returns a summary of what was released.
func (nb *Northbound) ReleaseNode(ctx context.Context, node string) (string, error) {
	var ops []ovsdb.Operation
	var summary []string
	removedAddrs := map[string][]string{} // network -> addresses
	var routers []nbdb.LogicalRouter
	if err := nb.client.WhereCache(func(lr *nbdb.LogicalRouter) bool {
		_, ok := lr.ExternalIDs[externalids.NodeSubnetsPrefix+node]
		return ok
	}).List(ctx, &routers); err != nil {
		return "", err
	}
	for _, r := range routers {
		// Router ports are not a root table: dropping them from the
		// router deletes them.
		lrpUUIDs := nb.nodeRouterPorts(ctx, &r, node)
		lr := &nbdb.LogicalRouter{UUID: r.UUID}
		mutations := []model.Mutation{{Field: &lr.ExternalIDs, Mutator: ovsdb.MutateOperationDelete, Value: []string{externalids.NodeSubnetsPrefix + node}}}
		if len(lrpUUIDs) > 0 {
			mutations = append(mutations, model.Mutation{Field: &lr.Ports, Mutator: ovsdb.MutateOperationDelete, Value: lrpUUIDs})
		}
		m, err := nb.client.Where(lr).Mutate(lr, mutations...)
		if err != nil {
			return "", err
		}
		ops = append(ops, m...)
		summary = append(summary, fmt.Sprintf("subnets %s of %s", r.ExternalIDs[externalids.NodeSubnetsPrefix+node], r.ExternalIDs[externalids.Network]))
	}
	// The node's own switches (layer3) go whole; the ports in them with it.
	var switches []nbdb.LogicalSwitch
	if err := nb.client.WhereCache(func(ls *nbdb.LogicalSwitch) bool { return ls.ExternalIDs[externalids.Node] == node }).List(ctx, &switches); err != nil {
		return "", err
	}
	nodeSwitch := map[string]bool{}
	for _, ls := range switches {
		nodeSwitch[ls.UUID] = true
		del, err := nb.client.Where(&nbdb.LogicalSwitch{UUID: ls.UUID}).Delete()
		if err != nil {
			return "", err
		}
		ops = append(ops, del...)
	}
	// Pods of the node on shared (layer2) switches.
	var allSwitches []nbdb.LogicalSwitch
	if err := nb.client.List(ctx, &allSwitches); err != nil {
		return "", err
	}
	ports, warm := 0, 0
	for _, ls := range allSwitches {
		var drop []string
		for _, uuid := range ls.Ports {
			lsp := &nbdb.LogicalSwitchPort{UUID: uuid}
			if err := nb.client.Get(ctx, lsp); err != nil || lsp.ExternalIDs[externalids.Node] != node {
				continue
			}
			switch {
			case lsp.ExternalIDs[externalids.ContainerID] != "":
				ports++
			case lsp.ExternalIDs[externalids.Warm] == "true":
				warm++
			default:
				continue
			}
			net := lsp.ExternalIDs[externalids.Network]
			removedAddrs[net] = append(removedAddrs[net], portIPs(lsp)...)
			if !nodeSwitch[ls.UUID] {
				drop = append(drop, uuid)
			}
		}
		if len(drop) > 0 {
			s := &nbdb.LogicalSwitch{UUID: ls.UUID}
			m, err := nb.client.Where(s).Mutate(s, model.Mutation{Field: &s.Ports, Mutator: ovsdb.MutateOperationDelete, Value: drop})
			if err != nil {
				return "", err
			}
			ops = append(ops, m...)
		}
	}
	var sets []nbdb.AddressSet
	if err := nb.client.List(ctx, &sets); err != nil {
		return "", err
	}
	for _, as := range sets {
		if addrs := removedAddrs[as.ExternalIDs[externalids.Network]]; len(addrs) > 0 {
			s := &nbdb.AddressSet{UUID: as.UUID}
			m, err := nb.client.Where(s).Mutate(s, model.Mutation{Field: &s.Addresses, Mutator: ovsdb.MutateOperationDelete, Value: addrs})
			if err != nil {
				return "", err
			}
			ops = append(ops, m...)
		}
	}
	gateways, err := nb.leaveGateways(ctx, node)
	if err != nil {
		return "", err
	}
	ops = append(ops, gateways...)
	summary = append(summary, fmt.Sprintf("%d pod ports", ports), fmt.Sprintf("%d warm ports", warm), fmt.Sprintf("%d gateways left", len(gateways)))
	if len(ops) == 0 {
		return "nothing owned by node " + node, nil
	}
	if _, err := nb.transact(ctx, ops); err != nil {
		return "", fmt.Errorf("release node %s: %w", node, err)
	}
	return strings.Join(summary, "; "), nil
}

func (nb *Northbound) nodeRouterPorts(ctx context.Context, r *nbdb.LogicalRouter, node string) []string {
	var uuids []string
	for _, uuid := range r.Ports {
		lrp := &nbdb.LogicalRouterPort{UUID: uuid}
		if err := nb.client.Get(ctx, lrp); err == nil && lrp.ExternalIDs[externalids.Node] == node {
			uuids = append(uuids, uuid)
		}
	}
	return uuids
}

// portIPs parses the IPs out of a port's "MAC IP IP..." addresses.
func portIPs(lsp *nbdb.LogicalSwitchPort) []string {
	var out []string
	for _, entry := range lsp.Addresses {
		f := strings.Fields(entry)
		if len(f) > 1 {
			out = append(out, f[1:]...)
		}
	}
	return out
}

// NodesWithRows lists the nodes that own rows in the cache: pods' ports,
// layer3 claims, gateway chassis.
func (nb *Northbound) NodesWithRows() []string {
	seen := map[string]bool{}
	var ports []nbdb.LogicalSwitchPort
	_ = nb.client.List(context.Background(), &ports)
	for _, p := range ports {
		if n := p.ExternalIDs[externalids.Node]; n != "" {
			seen[n] = true
		}
	}
	var routers []nbdb.LogicalRouter
	_ = nb.client.List(context.Background(), &routers)
	for _, r := range routers {
		for n := range NodeClaims(&r) {
			seen[n] = true
		}
	}
	var gcs []nbdb.GatewayChassis
	_ = nb.client.List(context.Background(), &gcs)
	for _, gc := range gcs {
		if n := gc.ExternalIDs[externalids.Node]; n != "" {
			seen[n] = true
		}
	}
	out := make([]string, 0, len(seen))
	for n := range seen {
		out = append(out, n)
	}
	return out
}

// leaveGateways takes node off every gateway port's gateway chassis: the
// Gateway_Chassis rows are not root rows, so dropping the reference
// deletes them.
func (nb *Northbound) leaveGateways(ctx context.Context, node string) ([]ovsdb.Operation, error) {
	var mine []nbdb.GatewayChassis
	if err := nb.client.WhereCache(func(gc *nbdb.GatewayChassis) bool { return gc.ExternalIDs[externalids.Node] == node }).List(ctx, &mine); err != nil {
		return nil, err
	}
	if len(mine) == 0 {
		return nil, nil
	}
	var lrps []nbdb.LogicalRouterPort
	if err := nb.client.WhereCache(func(p *nbdb.LogicalRouterPort) bool { return len(p.GatewayChassis) > 0 }).List(ctx, &lrps); err != nil {
		return nil, err
	}
	var ops []ovsdb.Operation
	for _, p := range lrps {
		var drop []string
		for _, gc := range mine {
			if slices.Contains(p.GatewayChassis, gc.UUID) {
				drop = append(drop, gc.UUID)
			}
		}
		if len(drop) == 0 {
			continue
		}
		mut, err := nb.dropGatewayChassis(p.UUID, drop)
		if err != nil {
			return nil, err
		}
		ops = append(ops, mut...)
	}
	return ops, nil
}
