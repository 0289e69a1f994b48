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
	// Serves reports whether this node maps a physical network to a
	// bridge, i.e. can host gateways on it.
	Serves func(physicalNetwork string) bool
	Log    *slog.Logger
}

// Run joins gateways as they appear until stop closes. It wakes on router
// port changes (a new gateway port) and every resync interval (a bridge
// mapping added since: OVS, not the NB).
func (a *Agent) Run(stop <-chan struct{}) {
	const settle, resync, retry = 200 * time.Millisecond, 30 * time.Second, 2 * time.Second
	joined := map[string]bool{} // gateway port UUIDs this node is on
	for {
		changed := a.NB.RouterPortsChanged()
		wait := resync
		if err := a.sync(joined); err != nil {
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

func (a *Agent) sync(joined map[string]bool) error {
	ports, err := a.NB.GatewayPorts()
	if err != nil {
		return err
	}
	for _, p := range ports {
		if joined[p.UUID] || !a.Serves(p.PhysicalNetwork) {
			continue
		}
		if _, ok := p.Chassis[a.Chassis]; !ok {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			err := a.NB.JoinGateway(ctx, p.Name, a.Chassis, a.Node, Priority(a.Chassis, p.Name))
			cancel()
			if err != nil {
				return err
			}
			a.Log.Info("this node is now a gateway chassis", "network", p.Network, "gatewayPort", p.Name, "physicalNetwork", p.PhysicalNetwork, "priority", Priority(a.Chassis, p.Name))
		}
		joined[p.UUID] = true
	}
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
