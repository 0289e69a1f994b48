package ovs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// BridgeMappingsKey is the Open_vSwitch external_ids key where an admin
// (or a node agent) maps physical network names to OVS bridges, as
// "physnet:bridge[,physnet:bridge...]". ovn-controller reads it to patch
// br-int to those bridges for localnet ports; see ovn-controller(8).
const BridgeMappingsKey = "ovn-bridge-mappings"

// localnetPortKey is the Port external_ids key ovn-controller sets on the
// patch ports it creates for a localnet logical port.
const localnetPortKey = "ovn-localnet-port"

// ParseBridgeMappings reads an ovn-bridge-mappings value. Entries without
// a colon or with an empty side are skipped, as ovn-controller does.
func ParseBridgeMappings(s string) map[string]string {
	out := map[string]string{}
	for _, entry := range strings.Split(s, ",") {
		phys, bridge, ok := strings.Cut(strings.TrimSpace(entry), ":")
		if ok && phys != "" && bridge != "" {
			out[phys] = bridge
		}
	}
	return out
}

// BridgeMappings returns this node's physical network to bridge mappings,
// from the cache.
func (o *Client) BridgeMappings() (map[string]string, error) {
	var roots []vswitchd.OpenvSwitch
	if err := o.client.List(context.Background(), &roots); err != nil {
		return nil, fmt.Errorf("read Open_vSwitch row: %w", err)
	}
	if len(roots) == 0 {
		return map[string]string{}, nil
	}
	return ParseBridgeMappings(roots[0].ExternalIDs[BridgeMappingsKey]), nil
}

// MappedNetworks lists the physical networks this node can serve, sorted:
// those mapped to a bridge that exists.
func (o *Client) MappedNetworks() []string {
	mappings, err := o.BridgeMappings()
	if err != nil {
		return nil
	}
	var out []string
	for phys, bridge := range mappings {
		if o.client.Get(context.Background(), &vswitchd.Bridge{Name: bridge}) == nil {
			out = append(out, phys)
		}
	}
	slices.Sort(out)
	return out
}

// UplinkMTU is the MTU of a bridge's uplink: the smallest MTU among its
// interfaces that lead off the node (not internal, not patch). 0 when the
// bridge has none with a known MTU.
func (o *Client) UplinkMTU(bridge string) (int, error) {
	br := &vswitchd.Bridge{Name: bridge}
	if err := o.client.Get(context.Background(), br); err != nil {
		return 0, fmt.Errorf("bridge %s not found in the OVS database: %w", bridge, err)
	}
	mtu := 0
	for _, portUUID := range br.Ports {
		port := &vswitchd.Port{UUID: portUUID}
		if o.client.Get(context.Background(), port) != nil {
			continue
		}
		for _, ifaceUUID := range port.Interfaces {
			iface := &vswitchd.Interface{UUID: ifaceUUID}
			if o.client.Get(context.Background(), iface) != nil || iface.MTU == nil || *iface.MTU <= 0 {
				continue
			}
			if iface.Type == "internal" || iface.Type == "patch" {
				continue
			}
			if mtu == 0 || *iface.MTU < mtu {
				mtu = *iface.MTU
			}
		}
	}
	return mtu, nil
}

// hasLocalnetPatch reports whether ovn-controller has patched the
// integration bridge to a physical bridge for the localnet port.
func (o *Client) hasLocalnetPatch(localnetPort string) bool {
	var ports []vswitchd.Port
	err := o.client.WhereCache(func(p *vswitchd.Port) bool {
		return p.ExternalIDs[localnetPortKey] == localnetPort
	}).List(context.Background(), &ports)
	if err != nil {
		return false
	}
	br, err := o.Bridge()
	if err != nil {
		return false
	}
	for _, p := range ports {
		if slices.Contains(br.Ports, p.UUID) {
			return true
		}
	}
	return false
}

// WaitLocalnetPatch blocks until the integration bridge has ovn-controller's
// patch port for localnetPort, or ctx ends. ovn-controller creates it once a
// port of the localnet's switch is bound on this node and the physical
// network is mapped; without it a pod's traffic has nowhere to go. Driven by
// cache events, like WaitInstalled.
func (o *Client) WaitLocalnetPatch(ctx context.Context, localnetPort string) error {
	for {
		changed := o.Changed()
		if o.hasLocalnetPatch(localnetPort) {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("waiting for ovn-controller to patch %s to the physical network's bridge for localnet port %s (is the physical network in external_ids:%s, and does its bridge exist?): %w",
				o.bridge, localnetPort, BridgeMappingsKey, ctx.Err())
		}
	}
}
