package daemon

import (
	"fmt"
	"strings"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// buildStore fills the attachment store before the CNI socket serves: it
// subscribes the store to NB port and OVS interface events first, then
// records what the caches already hold (they were filled when the daemon
// connected, before any handler existed), then removes host veths a crash
// left without their OVS interface.
func (d *Daemon) buildStore() error {
	d.store = attachment.NewStore(d.cfg.NodeName)
	d.nb.AddPortHandler(d.store)
	d.ovs.AddInterfaceHandler(d.store)
	ports, err := d.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.Node] == d.cfg.NodeName && p.ExternalIDs[externalids.ContainerID] != ""
	})
	if err != nil {
		return err
	}
	ifaces, err := d.ovs.OwnedInterfaces()
	if err != nil {
		return err
	}
	d.store.Rebuild(ports, ifaces)
	d.log.Info("attachment store rebuilt", "attachments", len(d.store.IDs("")), "ports", len(ports), "interfaces", len(ifaces))
	return d.removeOrphanLinks()
}

// removeOrphanLinks deletes the host veths of ours that have no OVS
// interface: an ADD died between creating the veth and its OVS port, or a
// DEL between deleting the port and the veth. Neither can be a working
// attachment (the OVS port is what connects it), and no verb runs yet. A
// veth is ours if it carries our alias, or has our naming and no alias at
// all (a crash between creating it and marking it).
func (d *Daemon) removeOrphanLinks() error {
	links, err := netns.HostVeths(func(name, alias string) bool {
		return strings.HasPrefix(alias, attachment.LinkAliasPrefix) || alias == "" && attachment.IsHostLinkName(name)
	})
	if err != nil {
		return fmt.Errorf("list host veths: %w", err)
	}
	for name, alias := range links {
		if _, ok := d.ovs.Interface(name); ok {
			continue
		}
		d.log.Info("removing a host veth left without its OVS port", "link", name, "alias", alias)
		if err := netns.Unplug(name, alias, ""); err != nil {
			d.log.Warn("cannot remove orphan host veth", "link", name, "err", err)
		}
	}
	return nil
}
