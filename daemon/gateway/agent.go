package gateway

import (
	"context"
	"hash/fnv"
	"log/slog"
	"time"

	"github.com/ovn-overlay/ovn-overlay/ovn"
)

// Agent makes this node one of the gateway chassis of every network's
// gateway port on a physical network the node maps, whether or not the
// node has pods on that network: a gateway must be able to fail over to
// nodes the network has never reached. It only ever adds this node's own
// Gateway_Chassis rows, so gateway-capable nodes need no coordinator.
type Agent struct {
	NB *ovn.Northbound
	// Chassis is this node's chassis name (system-id), Node its name in
	// OVN rows.
	Chassis, Node string
	// Serves reports whether this node may host gateways on a physical
	// network: it maps it to a bridge and is a gateway node.
	Serves func(physicalNetwork string) bool
	Log    *slog.Logger
	// Resync is how often the agent looks again without an NB change
	// (bridge mappings are OVS's); 0: 30 s.
	Resync time.Duration
}

// Run joins gateways as they appear until stop closes. It wakes on router
// port changes (a new gateway port) and every resync interval (a bridge
// mapping added since: OVS, not the NB).
func (a *Agent) Run(stop <-chan struct{}) {
	const settle, retry = 50 * time.Millisecond, 2 * time.Second
	resync := a.Resync
	if resync == 0 {
		resync = 30 * time.Second
	}
	for {
		changed := a.NB.RouterPortsChanged()
		wait := resync
		if err := a.sync(); err != nil {
			a.Log.Warn("joining gateways failed; retrying", "err", err)
			wait = retry
		}
		select {
		case <-changed:
		case <-time.After(wait):
		case <-stop:
			return
		}
		// A burst of new gateways (networks set up together) is one pass.
		select {
		case <-time.After(settle):
		case <-stop:
			return
		}
	}
}

func (a *Agent) sync() error {
	ports, err := a.NB.GatewayPorts()
	if err != nil {
		return err
	}
	for _, p := range ports {
		_, member := p.Chassis[a.Chassis]
		serves := a.Serves(p.PhysicalNetwork)
		switch {
		case serves && !member:
			// Also a row removed behind the agent's back comes back.
			if err := a.join(p); err != nil {
				return err
			}
		case !serves && member:
			// The mapping went (or the node was told it is no gateway):
			// as the active gateway it would black-hole the network.
			if err := a.leave(p); err != nil {
				return err
			}
		}
	}
	return nil
}

func (a *Agent) join(p ovn.GatewayPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prio := Priority(a.Chassis, p.Name)
	if err := a.NB.JoinGateway(ctx, p.Name, a.Chassis, a.Node, prio); err != nil {
		return err
	}
	a.Log.Info("this node is now a gateway chassis", "network", p.Network, "gatewayPort", p.Name, "physicalNetwork", p.PhysicalNetwork, "priority", prio)
	return nil
}

func (a *Agent) leave(p ovn.GatewayPort) error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.NB.LeaveGateway(ctx, p, a.Chassis); err != nil {
		return err
	}
	a.Log.Info("this node no longer hosts a gateway: it does not serve its physical network", "network", p.Network, "gatewayPort", p.Name, "physicalNetwork", p.PhysicalNetwork)
	return nil
}

// Priority is chassis's priority on a gateway port: a hash of both, so
// every node computes every other node's priority without asking, and the
// active gateways of different networks spread over the gateway nodes
// instead of all landing on one.
func Priority(chassis, port string) int {
	h := fnv.New32a()
	h.Write([]byte(chassis + "\x00" + port))
	// Gateway_Chassis.priority is 0..32767; 0 is left out.
	return 1 + int(h.Sum32()%32767)
}
