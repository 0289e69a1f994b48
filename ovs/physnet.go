package ovs

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/ovn-org/libovsdb/model"

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

// PhysicalBridge is what this node has for one physical network: the
// bridge ovn-bridge-mappings names, whether it exists, and its uplink's
// MTU (the smallest among its interfaces that lead off the node: not
// internal, not patch; 0 when none has a known MTU).
type PhysicalBridge struct {
	Bridge    string
	Exists    bool
	UplinkMTU int
	uplinks   []string // interface names, whose MTU changes refresh it
}

// PhysicalNetwork returns how this node maps a physical network; ok is
// false when ovn-bridge-mappings does not name it. ADD asks twice per
// localnet attachment, so it reads a snapshot the cache's events keep
// (refreshPhysical) instead of walking the cache under its lock while a
// burst of ADDs floods it with updates.
func (o *Client) PhysicalNetwork(phys string) (PhysicalBridge, bool) {
	snap := o.physical.Load()
	if snap == nil {
		return PhysicalBridge{}, false
	}
	pb, ok := (*snap)[phys]
	return pb, ok
}

// MappedNetworks lists the physical networks this node can serve, sorted:
// those mapped to a bridge that exists.
func (o *Client) MappedNetworks() []string {
	var out []string
	if snap := o.physical.Load(); snap != nil {
		for phys, pb := range *snap {
			if pb.Exists {
				out = append(out, phys)
			}
		}
	}
	slices.Sort(out)
	return out
}

// refreshPhysical rebuilds the physical network snapshot from the cache.
// It runs on the cache's event goroutine after a change of the
// Open_vSwitch row, a bridge, a port, or an uplink interface, so the
// snapshot is never older than the events already delivered.
func (o *Client) refreshPhysical() {
	var roots []vswitchd.OpenvSwitch
	if err := o.client.List(context.Background(), &roots); err != nil || len(roots) == 0 {
		empty := map[string]PhysicalBridge{}
		o.physical.Store(&empty)
		return
	}
	snap := map[string]PhysicalBridge{}
	for phys, bridge := range ParseBridgeMappings(roots[0].ExternalIDs[BridgeMappingsKey]) {
		snap[phys] = o.physicalBridge(bridge)
	}
	o.physical.Store(&snap)
}

func (o *Client) physicalBridge(bridge string) PhysicalBridge {
	pb := PhysicalBridge{Bridge: bridge}
	br := &vswitchd.Bridge{Name: bridge}
	if o.client.Get(context.Background(), br) != nil {
		return pb
	}
	pb.Exists = true
	for _, portUUID := range br.Ports {
		port := &vswitchd.Port{UUID: portUUID}
		if o.client.Get(context.Background(), port) != nil {
			continue
		}
		for _, ifaceUUID := range port.Interfaces {
			iface := &vswitchd.Interface{UUID: ifaceUUID}
			if o.client.Get(context.Background(), iface) != nil || iface.Type == "internal" || iface.Type == "patch" {
				continue
			}
			pb.uplinks = append(pb.uplinks, iface.Name)
			if iface.MTU != nil && *iface.MTU > 0 && (pb.UplinkMTU == 0 || *iface.MTU < pb.UplinkMTU) {
				pb.UplinkMTU = *iface.MTU
			}
		}
	}
	return pb
}

// isUplink reports whether an interface is a mapped bridge's uplink.
func (o *Client) isUplink(name string) bool {
	if snap := o.physical.Load(); snap != nil {
		for _, pb := range *snap {
			if slices.Contains(pb.uplinks, name) {
				return true
			}
		}
	}
	return false
}

// isMappedBridge reports whether a bridge is one a physical network maps
// to.
func (o *Client) isMappedBridge(name string) bool {
	if snap := o.physical.Load(); snap != nil {
		for _, pb := range *snap {
			if pb.Bridge == name {
				return true
			}
		}
	}
	return false
}

// onPhysical refreshes the snapshot after changes that can alter it: the
// mappings, a mapped bridge (its ports come and go as Bridge updates) or
// an uplink interface (its MTU). Pod ports on br-int touch none of them,
// so ADDs set off no refresh.
func (o *Client) onPhysical(table string, m model.Model) {
	switch table {
	case vswitchd.OpenvSwitchTable:
	case vswitchd.BridgeTable:
		if br, ok := m.(*vswitchd.Bridge); !ok || !o.isMappedBridge(br.Name) {
			return
		}
	case vswitchd.InterfaceTable:
		if iface, ok := m.(*vswitchd.Interface); !ok || !o.isUplink(iface.Name) {
			return
		}
	default:
		return
	}
	o.refreshPhysical()
}

// HasLocalnetPatch reports whether ovn-controller has patched the
// integration bridge to a physical bridge for the localnet port: it
// creates both ends at once, each marked with the localnet port's name.
// O(1): the cache's port events keep the count (onPort), so a burst of
// ADDs waiting for their patch does not scan every port on every event.
func (o *Client) HasLocalnetPatch(localnetPort string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.patches[localnetPort] > 0
}

// onPort keeps the count of patch ports per localnet port.
func (o *Client) onPort(table string, old, new model.Model) {
	if table != vswitchd.PortTable {
		return
	}
	name := func(m model.Model) string {
		if p, ok := m.(*vswitchd.Port); ok && p != nil {
			return p.ExternalIDs[localnetPortKey]
		}
		return ""
	}
	before, after := name(old), name(new)
	if before == after {
		return
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if before != "" {
		if o.patches[before]--; o.patches[before] <= 0 {
			delete(o.patches, before)
		}
	}
	if after != "" {
		o.patches[after]++
	}
}

// WaitLocalnetPatch blocks until the integration bridge has ovn-controller's
// patch port for localnetPort, or ctx ends. ovn-controller creates it once a
// port of the localnet's switch is bound on this node and the physical
// network is mapped; without it a pod's traffic has nowhere to go. Driven by
// cache events, like WaitInstalled.
func (o *Client) WaitLocalnetPatch(ctx context.Context, localnetPort string) error {
	for {
		changed := o.wiringChanged()
		if o.HasLocalnetPatch(localnetPort) {
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
