package diagnose

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// recreate is the fix for a piece the daemon will not put back on its own:
// it never re-creates what a verb did not remove, so the attachment is
// made again by the runtime.
const recreate = "delete the pod (its CNI DEL removes what is left) and let its controller re-create it; ADD makes the attachment again"

// ovnController is where to look when ovn-controller did not do its part.
const ovnController = "check ovn-controller on this node: is it running (its pid file, `systemctl status ovn-controller`), and `ovn-appctl -t ovn-controller connection-status` says connected"

// Judge gives every place of r its verdict and problems from the facts the
// daemon gathered, and sums them up in r.Healthy and r.Problems. A place
// the gatherer already marked Skipped keeps its note.
func Judge(r *Report) {
	r.SchemaVersion = SchemaVersion
	judgeLogicalPort(&r.LogicalPort, r.Pod.Link.MAC)
	judgePortBinding(&r.PortBinding, &r.LogicalPort, r.Expected.Chassis)
	judgeInterface(&r.Interface, &r.LogicalPort)
	judgeOpenFlow(&r.OpenFlow, &r.Interface)
	judgePod(&r.Pod, r.Expected.MTU)
	r.Problems = nil
	for _, p := range []struct {
		place Place
		o     *Outcome
	}{
		{PlaceLogicalPort, &r.LogicalPort.Outcome}, {PlacePortBinding, &r.PortBinding.Outcome},
		{PlaceInterface, &r.Interface.Outcome}, {PlaceOpenFlow, &r.OpenFlow.Outcome}, {PlacePod, &r.Pod.Outcome},
	} {
		if p.o.Verdict == Broken {
			r.Problems = append(r.Problems, p.place)
		}
	}
	if r.Trace != nil && r.Trace.Verdict == Broken {
		r.Problems = append(r.Problems, PlaceTrace)
	}
	r.Healthy = len(r.Problems) == 0
}

// settle sets a place's verdict from its problems: broken if any is, else
// warning if there are warnings.
func (o *Outcome) settle(broken []Problem, warnings []Problem) {
	o.Problems = append(broken, warnings...)
	switch {
	case len(broken) > 0:
		o.Verdict = Broken
	case len(warnings) > 0:
		o.Verdict = Warning
	default:
		o.Verdict = OK
	}
}

func judgeLogicalPort(lp *LogicalPort, podMAC string) {
	if lp.Verdict == Skipped {
		return
	}
	if !lp.Found {
		what := "no logical switch port in the NB carries this attachment's identity"
		if lp.ExpectedName != "" {
			what = fmt.Sprintf("logical switch port %s (the OVS interface's iface-id) is missing from the NB", lp.ExpectedName)
		}
		lp.settle([]Problem{{What: what,
			Cause: "it was deleted behind the daemon's back (ovn-nbctl lsp-del, another controller, a restored NB backup), or the node was released (ovn-overlayctl release-node)",
			Fix:   recreate}}, nil)
		return
	}
	var broken, warnings []Problem
	if lp.Owner != "ovn-overlay" {
		broken = append(broken, Problem{What: fmt.Sprintf("port %s has owner %q, not ovn-overlay", lp.Name, lp.Owner),
			Cause: "its external_ids were rewritten; ovn-overlay never modifies or deletes a row it does not own, so DEL will leave it behind",
			Fix:   fmt.Sprintf("restore the mark: ovn-nbctl set Logical_Switch_Port %s external_ids:ovn-overlay/owner=ovn-overlay", lp.Name)})
	}
	want := wantEntry(lp, podMAC)
	disabled := lp.Enabled != nil && !*lp.Enabled
	switch {
	case disabled && lp.MigrationSource != "":
		lp.Note = fmt.Sprintf("live-migration target of %s: disabled, without addresses, until KubeVirt reports the VM running here", lp.MigrationSource)
	case disabled:
		broken = append(broken, Problem{What: fmt.Sprintf("port %s is disabled: OVN drops all its traffic", lp.Name),
			Cause: "enabled was set to false outside ovn-overlay (only a live-migration target is disabled, and this port is none)",
			Fix:   fmt.Sprintf("ovn-nbctl lsp-set-enabled %s enabled", lp.Name)})
	case want != "" && !slices.Equal(lp.Addresses, []string{want}):
		broken = append(broken, Problem{What: fmt.Sprintf("addresses are %s, want %q", list(lp.Addresses), want),
			Cause: "the addresses column was changed outside ovn-overlay: OVN delivers to the port only what its addresses name",
			Fix:   fmt.Sprintf("ovn-nbctl lsp-set-addresses %s %q", lp.Name, want)})
	}
	if want != "" && !slices.Equal(lp.PortSecurity, []string{want}) {
		broken = append(broken, Problem{What: fmt.Sprintf("port security is %s, want %q", list(lp.PortSecurity), want),
			Cause: "port_security was changed outside ovn-overlay: OVN drops every packet from the pod whose source MAC or address it does not list (and, with an empty list, lets the pod spoof any)",
			Fix:   fmt.Sprintf("ovn-nbctl lsp-set-port-security %s %q", lp.Name, want)})
	}
	if !disabled && (lp.Up == nil || !*lp.Up) {
		warnings = append(warnings, Problem{What: fmt.Sprintf("port %s is not up", lp.Name),
			Cause: "ovn-northd sets up from the SB port binding: the binding below says why",
			Fix:   "see the port binding"})
	}
	lp.settle(broken, warnings)
}

// wantEntry is the "MAC address..." entry ADD wrote to both addresses and
// port security: the MAC from the addresses (or, if those were changed,
// the pod interface's), the addresses from what ADD recorded.
func wantEntry(lp *LogicalPort, podMAC string) string {
	mac := ""
	for _, e := range lp.Addresses {
		if f := strings.Fields(e); len(f) > 0 && strings.Count(f[0], ":") == 5 {
			mac = f[0]
			break
		}
	}
	if mac == "" {
		mac = podMAC
	}
	if mac == "" {
		return ""
	}
	entry := mac
	for _, a := range lp.RecordedAddresses {
		if i := strings.IndexByte(a, '/'); i >= 0 {
			a = a[:i]
		}
		entry += " " + a
	}
	return entry
}

func judgePortBinding(pb *PortBinding, lp *LogicalPort, chassis string) {
	if pb.Verdict == Skipped {
		return
	}
	name := lp.Name
	if name == "" {
		name = lp.ExpectedName
	}
	var broken, warnings []Problem
	switch {
	case !pb.Found && !lp.Found:
		pb.Note = "no binding either: ovn-northd removed it with the logical port"
		broken = append(broken, Problem{What: fmt.Sprintf("no Port_Binding for %s in the SB", name),
			Cause: "the logical port is missing (above)", Fix: recreate})
	case !pb.Found:
		broken = append(broken, Problem{What: fmt.Sprintf("no Port_Binding for %s in the SB", name),
			Cause: "ovn-northd has not translated the port: it is down, not connected, or not the active instance",
			Fix:   "check ovn-northd: `ovn-appctl -t ovn-northd status` says active, and its log"})
	case pb.Chassis == "":
		broken = append(broken, Problem{What: fmt.Sprintf("%s is not claimed by any chassis", name),
			Cause: "ovn-controller on this node is down, or no OVS interface on br-int has iface-id=" + name + " (see the OVS interface)",
			Fix:   ovnController})
	case pb.Chassis != chassis:
		broken = append(broken, Problem{What: fmt.Sprintf("%s is claimed by chassis %s, not by this node (%s)", name, pb.Chassis, chassis),
			Cause: "an OVS interface with the same iface-id exists on " + pb.Chassis + ": a stale interface, or a second pod with this attachment's port",
			Fix:   "remove that interface on " + pb.Chassis + " (ovs-vsctl --columns=name find Interface external_ids:iface-id=" + name + ")"})
	case pb.Up != nil && !*pb.Up:
		warnings = append(warnings, Problem{What: fmt.Sprintf("%s is bound here but not up", name),
			Cause: "ovn-controller has not finished installing the port's flows", Fix: ovnController})
	}
	pb.ThisNode = pb.Found && pb.Chassis == chassis
	pb.settle(broken, warnings)
}

func judgeInterface(in *Interface, lp *LogicalPort) {
	if in.Verdict == Skipped {
		return
	}
	var broken []Problem
	switch {
	case !in.Found:
		broken = append(broken, Problem{What: fmt.Sprintf("the attachment's OVS interface %s is missing from %s", orUnknown(in.Name), orUnknown(in.Bridge)),
			Cause: "it was removed behind the daemon's back (ovs-vsctl del-port), or the Open_vSwitch database was reset",
			Fix:   recreate})
	case in.Error != "":
		broken = append(broken, Problem{What: "OVS reports an error on interface " + in.Name + ": " + in.Error,
			Cause: "ovs-vswitchd could not open the host veth (removed, or renamed)", Fix: recreate})
	case in.Ofport <= 0:
		broken = append(broken, Problem{What: "interface " + in.Name + " has no OpenFlow port",
			Cause: "ovs-vswitchd has not added it to the bridge (it is down, or still starting)",
			Fix:   "check ovs-vswitchd: `ovs-appctl -t ovs-vswitchd version` answers, and its log"})
	}
	if in.Found && lp.Found && in.IfaceID != lp.Name {
		broken = append(broken, Problem{What: fmt.Sprintf("interface %s has iface-id %q, want %q", in.Name, in.IfaceID, lp.Name),
			Cause: "external_ids:iface-id was changed: ovn-controller binds the interface to another logical port",
			Fix:   fmt.Sprintf("ovs-vsctl set Interface %s external_ids:iface-id=%s", in.Name, lp.Name)})
	}
	if in.Found && len(broken) == 0 && !in.OVNInstalled {
		broken = append(broken, Problem{What: "interface " + in.Name + " is not ovn-installed",
			Cause: "ovn-controller has not installed the port's flows yet, or is down", Fix: ovnController})
	}
	in.settle(broken, nil)
}

func judgeOpenFlow(of *OpenFlow, in *Interface) {
	if of.Verdict == Skipped {
		return
	}
	if !in.Found || in.Ofport <= 0 {
		of.Verdict, of.Note = Skipped, "the interface has no OpenFlow port to look up"
		return
	}
	cause := "ovn-controller has not (re)installed the port's flows: it is stopped, not connected to the bridge, or still catching up after an ovs-vswitchd restart (which empties the flow tables while the database still says ovn-installed)"
	var broken []Problem
	if of.IngressFlows == 0 {
		broken = append(broken, Problem{What: fmt.Sprintf("no flow matches in_port=%d: packets from the pod go nowhere", in.Ofport), Cause: cause, Fix: ovnController})
	}
	if of.OutputFlows == 0 {
		broken = append(broken, Problem{What: fmt.Sprintf("no flow outputs to port %d: packets for the pod go nowhere", in.Ofport), Cause: cause, Fix: ovnController})
	}
	of.settle(broken, nil)
}

// podFixes are the cause and fix per drift kind (netns.DriftKind values);
// {netns} is the pod's netns, {pod} the pod interface, {host} the host
// veth, {mtu} the MTU it should have, {route} the missing route.
var podFixes = map[string]struct{ cause, fix string }{
	"netns": {"the pod's network namespace is gone: the pod was deleted or its sandbox died",
		"its runtime deletes the attachment (CNI DEL) with the sandbox; nothing to repair here"},
	"host-link":      {"the host end of the veth was deleted or replaced behind the daemon's back", recreate},
	"host-link-down": {"the host end of the veth was set down", "ip link set dev {host} up"},
	"host-mtu":       {"the host end's MTU was changed after ADD: the two ends disagree and the larger packets of one side are dropped", "ip link set dev {host} mtu {mtu}"},
	"pod-link":       {"the pod interface was deleted or moved behind the daemon's back", recreate},
	"pod-link-down":  {"the pod interface was set down inside the pod", "nsenter --net={netns} ip link set dev {pod} up"},
	"pod-mtu":        {"the pod interface's MTU was changed after ADD: packets larger than the overlay carries are dropped, and the veth's ends disagree", "nsenter --net={netns} ip link set dev {pod} mtu {mtu}"},
	"mac":            {"the pod interface's MAC was changed: OVN's port security drops its packets", "nsenter --net={netns} ip link set dev {pod} address <the logical port's MAC>"},
	"address":        {"an address ADD gave the pod interface was removed", "nsenter --net={netns} ip address add <the address> dev {pod}, or re-create the pod"},
	"route":          {"a route ADD installed through the interface was deleted: traffic to that destination leaves by another interface or not at all", "nsenter --net={netns} ip route add {route} dev {pod}, or re-create the pod"},
	"source-rule":    {"a source-routing rule (\"from <address> lookup <table>\") was deleted: replies from the interface's address may leave by another interface", "re-create the pod (the rules of the interface's other addresses, under rules, show the table)"},
	"tx-checksum":    {"TX checksum offload was turned back on: with OVS's userspace datapath the packets leave with bad checksums and peers drop them", "nsenter --net={netns} ethtool -K {pod} tx off"},
}

// judgePod turns the pod side's drifts into problems; mtu is the MTU the
// daemon expects (0: unknown, then the host end's, which ADD set alike).
func judgePod(p *Pod, mtu int) {
	if p.Verdict == Skipped {
		return
	}
	if mtu == 0 {
		mtu = p.Host.MTU
	}
	mtuText := "<the network's MTU>"
	if mtu > 0 {
		mtuText = strconv.Itoa(mtu)
	}
	var broken []Problem
	for _, d := range p.Drifts {
		fix, ok := podFixes[d.Kind]
		if !ok {
			broken = append(broken, Problem{What: d.Detail})
			continue
		}
		route := "<dst> via <gateway>"
		if _, r, ok := strings.Cut(d.Detail, "missing route "); ok {
			route = strings.TrimSuffix(r, " on-link") // ip route's default
		}
		fill := strings.NewReplacer("{netns}", p.Netns, "{pod}", p.Link.Name, "{host}", p.Host.Name, "{mtu}", mtuText, "{route}", route)
		broken = append(broken, Problem{What: d.Detail, Cause: fix.cause, Fix: fill.Replace(fix.fix)})
	}
	p.settle(broken, nil)
}

func list(s []string) string {
	if len(s) == 0 {
		return "empty"
	}
	return fmt.Sprintf("%q", s)
}

func orUnknown(s string) string {
	if s == "" {
		return "(unknown)"
	}
	return s
}
