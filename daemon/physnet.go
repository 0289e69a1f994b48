package daemon

import (
	"errors"
	"fmt"

	"github.com/ovn-overlay/ovn-overlay/daemon/gateway"
	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovs"
)

// errNotMapped: a localnet network's physical network has no bridge on
// this node. The config is fine and the node is not: the runtime's retry
// succeeds once an admin maps it, so ADD reports "try again later".
var errNotMapped = errors.New("no bridge mapping")

// physicalBridge is the OVS bridge this node maps a localnet network's
// physical network to, or an error naming the network, the node and the
// setting to fix. ADD asks before it touches anything.
func (d *Daemon) physicalBridge(conf *netconf.NetConf) (ovs.PhysicalBridge, error) {
	phys := conf.PhysicalNetwork()
	pb, ok := d.ovs.PhysicalNetwork(phys)
	if !ok {
		return pb, fmt.Errorf("%w: network %q needs physical network %q, which node %q does not map to an OVS bridge; add %q to the node's Open_vSwitch external_ids:%s (e.g. ovs-vsctl set Open_vSwitch . external_ids:%s=%s:br-phys, keeping any mappings already there), or keep this network's pods off the node",
			errNotMapped, conf.Name, phys, d.cfg.NodeName, phys+":<bridge>", ovs.BridgeMappingsKey, ovs.BridgeMappingsKey, phys)
	}
	if !pb.Exists {
		return pb, fmt.Errorf("%w: node %q maps physical network %q to bridge %q in external_ids:%s, but that bridge does not exist; create it with the node's uplink in it",
			errNotMapped, d.cfg.NodeName, phys, pb.Bridge, ovs.BridgeMappingsKey)
	}
	return pb, nil
}

// defaultMTUFor is the MTU of a pod interface whose config sets none.
// Overlays carry geneve, so theirs is the underlay's minus the overhead;
// localnet traffic goes out unencapsulated, so its MTU is the mapped
// bridge's uplink's.
func (d *Daemon) defaultMTUFor(conf *netconf.NetConf) (int, error) {
	if conf.MTU != 0 {
		return conf.MTU, nil
	}
	if conf.Topology != netconf.Localnet {
		return d.defaultMTU, nil
	}
	pb, err := d.physicalBridge(conf)
	if err != nil {
		return 0, err
	}
	if pb.UplinkMTU == 0 {
		d.log.Warn("physical bridge has no uplink with a known MTU; localnet pods get the fallback", "bridge", pb.Bridge, "mtu", fallbackMTU)
		return fallbackMTU, nil
	}
	return pb.UplinkMTU, nil
}

// publishPhysicalNetworks logs and exports the physical networks this node
// can serve: those its ovn-bridge-mappings map to a bridge that exists.
func (d *Daemon) publishPhysicalNetworks() []string {
	mapped := d.ovs.MappedNetworks()
	metrics.PhysicalNetworks.Reset()
	for _, phys := range mapped {
		metrics.PhysicalNetworks.WithLabelValues(phys).Set(1)
	}
	return mapped
}

// startGatewayAgent makes this node a gateway chassis of every network's
// gateway on the physical networks it maps, unless the operator said it
// is not a gateway node; then (and when a mapping goes) the agent takes
// the node off the gateways it was on.
func (d *Daemon) startGatewayAgent(chassis string) {
	agent := &gateway.Agent{
		NB: d.nb, Chassis: chassis, Node: d.cfg.NodeName, Log: d.log.With("component", "gateway"),
		Serves: func(phys string) bool {
			pb, ok := d.ovs.PhysicalNetwork(phys)
			return d.cfg.GatewayNode && ok && pb.Exists
		},
	}
	go agent.Run(d.stop)
}
