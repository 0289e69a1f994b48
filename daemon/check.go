package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs"
	"github.com/ovn-overlay/ovn-overlay/ovs/openflow"
	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// Check verifies that an attachment is still as ADD left it: logical switch
// port and its port security, OVS interface bound and installed,
// ovn-controller's flows for it on the bridge, the pod interface with its MAC,
// addresses, routes and MTU, and the runtime's prevResult; on localnet the
// node's patch to the physical network, with external connectivity the
// network's gateway and its gateway chassis. It reports every drift it
// finds.
func (d *Daemon) Check(ctx context.Context, req cniproto.Request) error {
	r, err := parseRequest(req)
	if err != nil {
		return err
	}
	// The spec adds CHECK in 0.4.0; older configs accepted for OVN-Kubernetes'
	// sake get the error the CNI library's own plugins give.
	if ok, _ := version.GreaterThanOrEqualTo(r.conf.CNIVersion, "0.4.0"); !ok {
		return types.NewError(types.ErrIncompatibleCNIVersion, "config version does not allow CHECK", "cniVersion "+r.conf.CNIVersion+" predates CHECK (0.4.0)")
	}
	if err := checkTopology(r.conf); err != nil {
		return err
	}
	if err := podNetns(r.netns); err != nil {
		return err
	}
	unlock := d.store.Lock(r.id)
	defer unlock()
	objs := d.store.Get(r.id)
	lsp, ok := d.attachedPort(r.id, objs)
	if !ok {
		return fmt.Errorf("attachment %s has no logical switch port in the NB", r.id)
	}
	mac, err := network.PortMAC(lsp)
	if err != nil {
		return err
	}
	addrs := network.ParsePrefixList(lsp.ExternalIDs[externalids.Addresses])
	var drift []error
	if err := network.CheckPortSecurity(lsp); err != nil {
		drift = append(drift, err)
	}
	iface, ifaceDrift := d.checkInterface(r.id, objs, lsp)
	drift = append(drift, ifaceDrift...)
	if iface != nil && len(ifaceDrift) == 0 {
		if err := d.checkFlows(ctx, iface, lsp.Name); err != nil {
			drift = append(drift, err)
		}
	}
	mtu, err := d.defaultMTUFor(r.conf)
	mapped := !errors.Is(err, errNotMapped)
	switch {
	case !mapped:
		// The node lost its mapping: that is the drift to report (as
		// drift, not as "try again later"); the MTU it would imply is
		// unknown, so it is not compared.
		drift = append(drift, errors.New(err.Error()))
	case err != nil:
		return err
	}
	var routes []netns.Route
	if r.conf.Topology == netconf.Layer3 || r.conf.External != nil {
		nw, err := d.networks.Get(ctx, r.conf)
		if err != nil {
			return err
		}
		routes = nw.Routes()
		if err := nw.CheckGateway(); err != nil {
			drift = append(drift, err)
		}
	}
	if iface != nil {
		if err := netns.Check(r.netns, netns.Attachment{
			HostIfName: iface.Name, ContainerIfName: r.id.IfName, MAC: mac, Addresses: addrs, Routes: routes,
			MTU: mtu, DisableTxChecksumOffload: d.userspaceDatapath,
		}); err != nil {
			drift = append(drift, err)
		}
	}
	if err := checkPrevResult(r, mac, addrs); err != nil {
		drift = append(drift, err)
	}
	if r.conf.Topology == netconf.Localnet && mapped {
		// ovn-controller removes its patch to the physical bridge when
		// the mapping goes (reported above), or has not made it yet,
		// and the pod is then cut off.
		if port := network.LocalnetPortName(r.conf.Name); !d.ovs.HasLocalnetPatch(port) {
			drift = append(drift, fmt.Errorf("ovn-controller has not patched %s to the bridge of physical network %q for localnet port %s; check external_ids:%s on this node",
				d.cfg.Bridge, r.conf.PhysicalNetwork(), port, ovs.BridgeMappingsKey))
		}
	}
	if len(drift) > 0 {
		return fmt.Errorf("attachment %s drifted: %w", lsp.Name, errors.Join(drift...))
	}
	return nil
}

// attachedPort is the logical switch port serving an attachment: one that
// carries its identity (a relabelled warm port or a port ADD created).
func (d *Daemon) attachedPort(id attachment.ID, objs attachment.Objects) (*nbdb.LogicalSwitchPort, bool) {
	for _, lsp := range d.portsOf(id, objs, false) {
		if !network.IsWarm(lsp) {
			return lsp, true
		}
	}
	return nil, false
}

// checkInterface finds the attachment's OVS interface and reports how it
// differs from what ADD made.
func (d *Daemon) checkInterface(id attachment.ID, objs attachment.Objects, lsp *nbdb.LogicalSwitchPort) (*vswitchd.Interface, []error) {
	names := slices.Sorted(func(yield func(string) bool) {
		for name := range objs.Interfaces {
			if !yield(name) {
				return
			}
		}
	})
	switch len(names) {
	case 0:
		return nil, []error{fmt.Errorf("the OVS interface of attachment %s is missing from bridge %s", id, d.cfg.Bridge)}
	case 1:
	default:
		return nil, []error{fmt.Errorf("attachment %s has %d OVS interfaces (%s), want one", id, len(names), strings.Join(names, ", "))}
	}
	iface, ok := d.ovs.Interface(names[0])
	switch {
	case !ok:
		return nil, []error{fmt.Errorf("OVS interface %s is missing from bridge %s", names[0], d.cfg.Bridge)}
	case iface.ExternalIDs[externalids.IfaceID] != lsp.Name:
		return iface, []error{fmt.Errorf("OVS interface %s has iface-id %q, want %q", iface.Name, iface.ExternalIDs[externalids.IfaceID], lsp.Name)}
	case iface.ExternalIDs[externalids.OVNInstalled] != "true":
		return iface, []error{fmt.Errorf("OVS interface %s is not ovn-installed", iface.Name)}
	case ovs.Ofport(iface) <= 0:
		return iface, []error{fmt.Errorf("OVS interface %s has no OpenFlow port", iface.Name)}
	}
	return iface, nil
}

// checkFlows asks the bridge whether ovn-controller's flows for the port
// are there. ovn-installed in the database does not say so: ovs-vswitchd
// forgets every flow when it restarts, and only ovn-controller puts them
// back. The flow that classifies the pod's packets (table 0, in_port) is
// the one asked for: ovn-controller installs it with the rest of the
// port's flows, and the bridge finds it by its match. One flow-stats
// request on the daemon's kept connection to the bridge's management
// socket; no process forked, no connection set up per CHECK. Asking also
// for flows that output to the port would make the bridge scan every
// table's actions, several times the cost; diagnose does.
//
// Missing flows are asked for again for up to flowsSettle before CHECK
// reports them: a restarting ovn-controller (OVN 25.03.0's crashes, an
// upgrade) clears the bridge and reinstalls everything within about a
// second, and a CHECK landing in that window would report a fault that is
// already going away.
func (d *Daemon) checkFlows(ctx context.Context, iface *vswitchd.Interface, port string) error {
	ofport := uint32(ovs.Ofport(iface))
	table0 := uint8(0)
	query := openflow.Query{Table: &table0, Match: openflow.Match{InPort: ofport}}
	deadline := time.Now().Add(flowsSettle)
	for {
		res, err := d.flows.Flows(ctx, query)
		switch {
		case err != nil:
			return fmt.Errorf("cannot read the flows of OVS interface %s from bridge %s: %w", iface.Name, d.cfg.Bridge, err)
		case len(res[0]) > 0:
			return nil
		case time.Now().After(deadline):
			return fmt.Errorf("ovn-controller has no flows on %s for OVS interface %s (logical port %s): none matches in_port=%d for %s; ovn-controller is down, or has not reinstalled them since ovs-vswitchd restarted: check ovn-controller on this node (ovn-overlayctl diagnose shows the rest)",
				d.cfg.Bridge, iface.Name, port, ofport, flowsSettle)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ovn-controller has no flows on %s for OVS interface %s (logical port %s) yet: none matches in_port=%d: %w", d.cfg.Bridge, iface.Name, port, ofport, ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// flowsSettle is how long CHECK waits for a port's missing flows to come
// back (checkFlows).
const flowsSettle = 2 * time.Second

// checkPrevResult compares the runtime's record of ADD's result with the NB.
func checkPrevResult(r *request, mac net.HardwareAddr, addrs []netip.Prefix) error {
	if len(r.conf.PrevResult) == 0 {
		return nil
	}
	// The runtime sends the prevResult in the config's cniVersion: a 0.4.0
	// result has another shape than a 1.x one.
	prev, err := version.NewResult(r.conf.CNIVersion, r.conf.PrevResult)
	if err != nil {
		return fmt.Errorf("prevResult (CNI %s) does not parse: %w", r.conf.CNIVersion, err)
	}
	res, err := current.GetResult(prev)
	if err != nil {
		return fmt.Errorf("prevResult: %w", err)
	}
	want := map[string]bool{}
	for _, p := range addrs {
		want[p.String()] = true
	}
	got := map[string]bool{}
	for _, ip := range res.IPs {
		if p, ok := netipPrefix(ip.Address); ok {
			got[p.String()] = true
		}
	}
	if fmt.Sprint(want) != fmt.Sprint(got) {
		return fmt.Errorf("prevResult addresses %v differ from the logical switch port's %v", keys(got), keys(want))
	}
	for _, i := range res.Interfaces {
		if i.Name == r.id.IfName && i.Sandbox != "" && !strings.EqualFold(i.Mac, mac.String()) {
			return fmt.Errorf("prevResult MAC %s of %s differs from the logical switch port's %s", i.Mac, r.id.IfName, mac)
		}
	}
	return nil
}

func netipPrefix(n net.IPNet) (netip.Prefix, bool) {
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	bits, _ := n.Mask.Size()
	return netip.PrefixFrom(a.Unmap(), bits), true
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}
