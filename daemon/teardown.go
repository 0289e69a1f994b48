package daemon

import (
	"context"
	"errors"
	"maps"
	"slices"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// teardown removes everything that belongs to attachment id. It is the one
// clean-up path: DEL, GC, a failed ADD's rollback, an ADD clearing an
// earlier attempt and the start-up clean-up of deleted pods all run it.
// The caller holds id's lock.
//
// The order keeps a record of whatever is left after a crash at any point
// (docs/design.md, "Teardown and crashes"):
//  1. logical switch ports: they carry the identity, or are warm ports
//     found through the OVS interface's iface-id, the only record of a warm
//     port whose ADD died before relabelling it; so the interface stays
//     until they are gone;
//  2. OVS interfaces, which carry the identity;
//  3. host veths, marked with the identity's alias; the pod end goes with
//     them. A veth left without its OVS interface by a crash here is
//     removed by the start-up reconcile.
func (d *Daemon) teardown(ctx context.Context, id attachment.ID, podNetns string) error {
	objs := d.store.Get(id)
	var errs []error
	for _, lsp := range d.portsOf(id, objs, true) {
		if err := d.networks.DeletePort(ctx, lsp); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	// OVS ports are named after their host veth. A host veth ADD recorded
	// may have an OVS port the cache has not shown yet (a rollback right
	// after the OVS transaction): DeletePort asks the server then.
	links := append(slices.Collect(maps.Keys(objs.Interfaces)), objs.HostLinks...)
	slices.Sort(links)
	links = slices.Compact(links)
	for _, name := range links {
		if iface, ok := d.ovs.Interface(name); ok && !id.Carries(iface.ExternalIDs) {
			continue // not this attachment's
		}
		if err := d.ovs.DeletePort(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...)
	}
	for _, name := range links {
		if err := netns.Unplug(name, id.LinkAlias(), podNetns); err != nil {
			errs = append(errs, err)
			continue
		}
		d.store.ForgetHostLink(id, name)
	}
	return errors.Join(errs...)
}

// portsOf returns the cached logical switch ports that belong to id: the
// ports carrying its identity (the store's, and the name ADD gives a new
// port), and, with warmToo, this node's warm ports the attachment holds but
// has not relabelled yet (recorded by ADD, or bound by its OVS interface).
// A port is never taken by its name alone.
func (d *Daemon) portsOf(id attachment.ID, objs attachment.Objects, warmToo bool) []*nbdb.LogicalSwitchPort {
	names := append([]string{id.PortName()}, objs.Ports...)
	for _, ifaceID := range objs.Interfaces {
		names = append(names, ifaceID)
	}
	slices.Sort(names)
	var out []*nbdb.LogicalSwitchPort
	for _, name := range slices.Compact(names) {
		lsp, ok := d.nb.Port(name)
		if !ok || lsp.ExternalIDs[externalids.Node] != d.cfg.NodeName {
			continue
		}
		if id.Carries(lsp.ExternalIDs) || (warmToo && network.IsWarm(lsp) && name != id.PortName()) {
			out = append(out, lsp)
		}
	}
	return out
}
