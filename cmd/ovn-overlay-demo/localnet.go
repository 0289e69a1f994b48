package main

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

func localnetDemo() []demoNetwork {
	var out []demoNetwork
	for _, n := range localnetNetworks {
		out = append(out, demoNetwork{n.ifName, n.name, n.config})
	}
	return out
}

// demoLocalnet maps the physical networks on every node as an admin
// would, attaches every pod to the localnet networks, and pings across
// nodes and to the external host: over the physical network, untagged
// and on VLAN 33, with no geneve.
func demoLocalnet(ctx context.Context, cluster *sandbox.Cluster, plugin string, pods []attached) error {
	ext := cluster.External()
	step("the physical network: each node's br-phys has an uplink into one datacenter segment, where an external host sits")
	for _, n := range cluster.Nodes {
		if _, err := n.Run("ovs-vsctl", "--db="+n.OVS, "set", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings="+bridgeMappings); err != nil {
			return fmt.Errorf("map physical networks on %s: %w", n.Name, err)
		}
		step("%s: ovs-vsctl set Open_vSwitch . external_ids:ovn-bridge-mappings=%s", n.Name, bridgeMappings)
	}
	for _, net := range localnetNetworks {
		if err := ext.AddAddress(net.vlan, net.external); err != nil {
			return err
		}
		where := "untagged"
		if net.vlan > 0 {
			where = fmt.Sprintf("on VLAN %d", net.vlan)
		}
		step("external host: %s %s", net.external, where)
	}
	step("attaching the pods to %s (net3, the guide's localnet example, VLAN 33) and %s (net4, untagged)", localnetNetworks[0].name, localnetNetworks[1].name)
	for i := range pods {
		p := &pods[i]
		for _, net := range localnetNetworks {
			out, took, err := p.node.InvokeCNI(ctx, plugin, sandbox.Invocation{
				Command: "ADD", ContainerID: p.id, Netns: p.pod.NetnsPath, IfName: net.ifName,
				Args:   "IgnoreUnknown=1;K8S_POD_NAMESPACE=left-one;K8S_POD_NAME=tinypod",
				Config: []byte(net.config),
			})
			if err != nil {
				return fmt.Errorf("CNI ADD of %s on %s: %w", net.name, p.node.Name, err)
			}
			addr, err := firstAddr(out)
			if err != nil {
				return err
			}
			if addr == net.external.Addr() {
				return fmt.Errorf("%s handed out the external host's address %s", net.name, addr)
			}
			p.addrs[net.ifName] = addr
			step("%s: CNI ADD of %s/%s (%s) took %s -> %s", p.node.Name, p.pod.Name, net.ifName, net.name, took.Round(100*time.Microsecond), addr)
		}
	}
	for _, net := range localnetNetworks {
		for _, src := range pods {
			targets := []struct {
				name string
				addr netip.Addr
			}{{"the external host", net.external.Addr()}}
			for _, dst := range pods {
				if dst.pod != src.pod {
					targets = append(targets, struct {
						name string
						addr netip.Addr
					}{dst.pod.Name, dst.addrs[net.ifName]})
				}
			}
			for _, dst := range targets {
				if err := pingOnce(src.pod, net.ifName, dst.addr); err != nil {
					return err
				}
				out, err := src.pod.Run("ping", "-c", "3", "-i", "0.2", "-I", net.ifName, dst.addr.String())
				if err != nil {
					return fmt.Errorf("ping %s -> %s on %s: %w", src.pod.Name, dst.name, net.name, err)
				}
				step("%s -> %s on %s (%s): %s", src.pod.Name, dst.name, net.name, dst.addr, lastLine(out))
			}
		}
	}
	for _, n := range cluster.Nodes {
		rx, tx, err := n.UplinkPackets()
		if err != nil {
			return err
		}
		step("%s: physical uplink %s carried %d packets in, %d out", n.Name, n.PhysicalUplink, rx, tx)
	}
	return nil
}
