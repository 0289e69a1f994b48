package diagnose

import (
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Render writes the report for a human: one block per place, in the order
// a packet from the pod meets them, each headed by its verdict, then the
// overall verdict.
func Render(w io.Writer, r *Report) error {
	p := &printer{w: w}
	a := r.Attachment
	p.line("attachment %s/%s/%s on node %s", a.Network, a.ContainerID, a.IfName, a.Node)
	if a.PodName != "" || a.NAD != "" {
		p.line("  pod %s/%s, network attachment definition %s", a.PodNamespace, a.PodName, orUnknown(a.NAD))
	}
	p.line("")

	lp := r.LogicalPort
	p.head(lp.Outcome, "NB logical switch port %s", firstOf(lp.Name, lp.ExpectedName, "(none)"))
	if lp.Found {
		p.fact("switch %s, owner %s, node %s", lp.Switch, orUnknown(lp.Owner), orUnknown(lp.Node))
		p.fact("addresses %s", list(lp.Addresses))
		p.fact("port security %s", list(lp.PortSecurity))
		p.fact("enabled %s, up %s", boolPtr(lp.Enabled, "true (unset)"), boolPtr(lp.Up, "unset"))
	}
	p.outcome(lp.Outcome)

	pb := r.PortBinding
	p.head(pb.Outcome, "SB port binding")
	if pb.Found {
		where := "chassis " + pb.Chassis + " (this node)"
		switch {
		case pb.Chassis == "":
			where = "claimed by no chassis"
		case !pb.ThisNode:
			where = "chassis " + pb.Chassis + " (not this node, " + r.Expected.Chassis + ")"
		}
		p.fact("%s, up %s, tunnel key %d on datapath %d", where, boolPtr(pb.Up, "unset"), pb.TunnelKey, pb.DatapathKey)
	}
	p.outcome(pb.Outcome)

	in := r.Interface
	p.head(in.Outcome, "OVS interface %s on %s", orUnknown(in.Name), orUnknown(in.Bridge))
	if in.Found {
		p.fact("ofport %d, iface-id %s, ovn-installed %t", in.Ofport, orUnknown(in.IfaceID), in.OVNInstalled)
		if in.Error != "" {
			p.fact("error: %s", in.Error)
		}
	}
	p.outcome(in.Outcome)

	of := r.OpenFlow
	p.head(of.Outcome, "OpenFlow flows for the port")
	if of.Verdict != Skipped {
		p.fact("ingress (in_port) %d flows, %d packets; output to the port %d flows", of.IngressFlows, of.IngressPackets, of.OutputFlows)
		var tables []string
		for _, t := range of.Tables {
			tables = append(tables, fmt.Sprintf("%d:%d", t.Table, t.Flows))
		}
		p.fact("%d flows for the port, per table: %s", of.PortFlows, orUnknown(strings.Join(tables, " ")))
		for _, f := range of.Ingress {
			p.fact("ingress flow: %s", f)
		}
		if c := of.Port; c != nil {
			p.fact("port counters: from the pod %d packets (%d dropped, %d errors), to the pod %d packets (%d dropped, %d errors)",
				c.RxPackets, c.RxDropped, c.RxErrors, c.TxPackets, c.TxDropped, c.TxErrors)
		}
	}
	p.outcome(of.Outcome)

	pod := r.Pod
	p.head(pod.Outcome, "pod interface %s in %s", orUnknown(pod.Link.Name), orUnknown(pod.Netns))
	if pod.Verdict != Skipped {
		p.fact("link %s, host end %s", linkText(pod.Link), linkText(pod.Host))
		if pod.TxChecksumOffload != nil {
			p.fact("tx checksum offload %s", onOff(*pod.TxChecksumOffload))
		}
		p.fact("addresses %s", orUnknown(strings.Join(pod.Addresses, " ")))
		for _, rt := range pod.Routes {
			p.fact("route %s", routeText(rt))
		}
		for _, ru := range pod.Rules {
			p.fact("rule %d: from %s lookup %d", ru.Priority, ru.From, ru.Table)
		}
		if !r.Expected.ConfigKnown {
			p.fact("expected MTU and routes unknown: the daemon has not seen this network's config since it started")
		} else {
			p.fact("expected MTU %d, routes %s", r.Expected.MTU, orUnknown(strings.Join(r.Expected.Routes, ", ")))
		}
	}
	p.outcome(pod.Outcome)

	if t := r.Trace; t != nil {
		p.head(t.Outcome, "ovn-trace to %s", t.Peer)
		p.fact("%s", t.Command)
		for _, l := range strings.Split(strings.TrimRight(t.Output, "\n"), "\n") {
			p.fact("  %s", l)
		}
		p.outcome(t.Outcome)
	}

	if r.Healthy {
		p.line("verdict: healthy")
	} else {
		var places []string
		for _, pl := range r.Problems {
			places = append(places, string(pl))
		}
		p.line("verdict: BROKEN at %s", strings.Join(places, ", "))
	}
	return p.err
}

type printer struct {
	w   io.Writer
	err error
}

func (p *printer) line(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format+"\n", args...)
	}
}

func (p *printer) head(o Outcome, format string, args ...any) {
	p.line("%-10s "+format, append([]any{"[" + string(o.Verdict) + "]"}, args...)...)
}

func (p *printer) fact(format string, args ...any) {
	p.line("           "+format, args...)
}

func (p *printer) outcome(o Outcome) {
	if o.Note != "" {
		p.fact("note: %s", o.Note)
	}
	for _, pr := range o.Problems {
		p.fact("problem: %s", pr.What)
		if pr.Cause != "" {
			p.fact("  cause: %s", pr.Cause)
		}
		if pr.Fix != "" {
			p.fact("  fix:   %s", pr.Fix)
		}
	}
	p.line("")
}

func linkText(l Link) string {
	if !l.Exists {
		return l.Name + " missing"
	}
	state := "down"
	if l.AdminUp {
		state = "up"
	}
	if l.OperState != "" {
		state += "/" + l.OperState
	}
	return fmt.Sprintf("%s %s mtu %d mac %s", l.Name, state, l.MTU, l.MAC)
}

func routeText(r Route) string {
	s := r.Dst
	if r.Via != "" {
		s += " via " + r.Via
	}
	table := "main"
	if r.Table != 254 {
		table = strconv.Itoa(r.Table)
	}
	return s + " (table " + table + ")"
}

func boolPtr(b *bool, unset string) string {
	if b == nil {
		return unset
	}
	return strconv.FormatBool(*b)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func firstOf(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}
