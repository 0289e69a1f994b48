package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os/exec"
	"slices"
	"strings"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/diagnose"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs"
	"github.com/ovn-overlay/ovn-overlay/ovs/openflow"
)

// errNoAttachment: the query names no attachment of this node.
var errNoAttachment = errors.New("no such attachment on this node")

// serveDiagnose answers GET /diagnose with the report of one attachment
// (diagnose.Report as JSON), or an error with a status saying whose fault
// it is.
func (d *Daemon) serveDiagnose(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	fail := func(status int, err error) {
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
	}
	q, err := diagnose.QueryFromValues(r.URL.Query())
	if err != nil {
		fail(http.StatusBadRequest, err)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	if err := d.awaitReady(ctx); err != nil {
		fail(http.StatusServiceUnavailable, err)
		return
	}
	report, err := d.Diagnose(ctx, q)
	switch {
	case errors.Is(err, errNoAttachment):
		fail(http.StatusNotFound, err)
		return
	case err != nil:
		fail(http.StatusInternalServerError, err)
		return
	}
	_ = json.NewEncoder(w).Encode(report)
}

// Diagnose gathers every place of one attachment and judges it. It holds
// the attachment's lock, so it never sees a verb half done.
func (d *Daemon) Diagnose(ctx context.Context, q diagnose.Query) (*diagnose.Report, error) {
	id, err := d.findAttachment(q)
	if err != nil {
		return nil, err
	}
	unlock := d.store.Lock(id)
	defer unlock()
	objs := d.store.Get(id)
	if objs.Empty() {
		return nil, fmt.Errorf("%w: %s", errNoAttachment, id)
	}
	r := &diagnose.Report{Attachment: diagnose.Identity{Node: d.cfg.NodeName, Network: id.Network, ContainerID: id.ContainerID, IfName: id.IfName}}
	if chassis, err := d.ovs.Chassis(); err == nil {
		r.Expected.Chassis = chassis.SystemID
	}
	ids := d.recordedIDs(id, objs)
	fillPod(&r.Attachment, ids)
	lsp := d.diagnoseLogicalPort(r, id, objs)
	d.diagnoseInterface(r, objs)
	d.diagnoseBinding(ctx, r)
	d.diagnoseOpenFlow(ctx, r)
	d.diagnosePod(r, id, ids[externalids.Netns], lsp)
	if q.Peer.IsValid() {
		r.Trace = d.diagnoseTrace(ctx, lsp, q)
	}
	diagnose.Judge(r)
	return r, nil
}

// findAttachment resolves a query to one attachment identity of this node.
func (d *Daemon) findAttachment(q diagnose.Query) (attachment.ID, error) {
	if q.PodName == "" {
		return attachment.ID{Network: q.Network, ContainerID: q.ContainerID, IfName: q.IfName}, nil
	}
	var found []attachment.ID
	var names []string
	for _, id := range d.store.IDs("") {
		ids := d.recordedIDs(id, d.store.Get(id))
		if ids[externalids.PodNamespace] != q.PodNamespace || ids[externalids.PodName] != q.PodName {
			continue
		}
		if (q.NAD == "" || ids[externalids.NAD] == q.NAD) && (q.IfName == "" || id.IfName == q.IfName) {
			found = append(found, id)
		}
		names = append(names, ids[externalids.NAD]+"@"+id.IfName)
	}
	slices.Sort(names)
	switch {
	case len(found) == 1:
		return found[0], nil
	case len(names) == 0:
		return attachment.ID{}, fmt.Errorf("%w: pod %s/%s has no attachment here (is it on this node? the daemon knows pods from the CNI arguments K8S_POD_NAMESPACE and K8S_POD_NAME)", errNoAttachment, q.PodNamespace, q.PodName)
	case len(found) == 0:
		return attachment.ID{}, fmt.Errorf("%w: pod %s/%s has no attachment %s@%s here; it has %s", errNoAttachment, q.PodNamespace, q.PodName, q.NAD, q.IfName, strings.Join(names, ", "))
	default:
		return attachment.ID{}, fmt.Errorf("pod %s/%s has %d attachments (%s): name one by its network selection element, NAD@interface", q.PodNamespace, q.PodName, len(found), strings.Join(names, ", "))
	}
}

// recordedIDs are the external_ids of an attachment's logical port, or of
// its OVS interface when the port is gone: both carry who it is for.
func (d *Daemon) recordedIDs(id attachment.ID, objs attachment.Objects) map[string]string {
	if lsp, ok := d.attachedPort(id, objs); ok {
		return lsp.ExternalIDs
	}
	for name := range objs.Interfaces {
		if iface, ok := d.ovs.Interface(name); ok {
			return iface.ExternalIDs
		}
	}
	return nil
}

func (d *Daemon) diagnoseLogicalPort(r *diagnose.Report, id attachment.ID, objs attachment.Objects) *nbdb.LogicalSwitchPort {
	lp := &r.LogicalPort
	lsp, ok := d.attachedPort(id, objs)
	if !ok {
		for _, ifaceID := range objs.Interfaces {
			lp.ExpectedName = ifaceID
		}
		return nil
	}
	ids := lsp.ExternalIDs
	*lp = diagnose.LogicalPort{Found: true, Name: lsp.Name, Switch: ids[externalids.Switch],
		Addresses: lsp.Addresses, PortSecurity: lsp.PortSecurity, Enabled: lsp.Enabled, Up: lsp.Up,
		Owner: ids[externalids.Owner], Node: ids[externalids.Node], MigrationSource: ids[externalids.MigrationSource]}
	for _, p := range network.ParsePrefixList(ids[externalids.Addresses]) {
		lp.RecordedAddresses = append(lp.RecordedAddresses, p.String())
	}
	return lsp
}

func fillPod(a *diagnose.Identity, ids map[string]string) {
	a.PodNamespace, a.PodName, a.NAD = ids[externalids.PodNamespace], ids[externalids.PodName], ids[externalids.NAD]
}

// diagnoseInterface finds the attachment's OVS interface; its name is the
// host veth's, which the pod side uses too.
func (d *Daemon) diagnoseInterface(r *diagnose.Report, objs attachment.Objects) {
	in := &r.Interface
	in.Bridge = d.cfg.Bridge
	for name := range objs.Interfaces {
		in.Name = name
	}
	if in.Name == "" && len(objs.HostLinks) > 0 {
		in.Name = objs.HostLinks[0] // the interface is named after the veth ADD made
	}
	iface, ok := d.ovs.Interface(in.Name)
	if !ok {
		return
	}
	in.Found, in.Ofport, in.IfaceID = true, ovs.Ofport(iface), iface.ExternalIDs[externalids.IfaceID]
	in.OVNInstalled = iface.ExternalIDs[externalids.OVNInstalled] == "true"
	if iface.Error != nil {
		in.Error = *iface.Error
	}
	if r.LogicalPort.ExpectedName == "" && !r.LogicalPort.Found {
		r.LogicalPort.ExpectedName = in.IfaceID
	}
}

func (d *Daemon) diagnoseBinding(ctx context.Context, r *diagnose.Report) {
	pb := &r.PortBinding
	name := r.LogicalPort.Name
	if name == "" {
		name = r.LogicalPort.ExpectedName
	}
	if name == "" {
		pb.Verdict, pb.Note = diagnose.Skipped, "no logical port name to look up"
		return
	}
	b, found, err := d.sb.PortBinding(ctx, name)
	if err != nil {
		pb.Verdict, pb.Note = diagnose.Skipped, err.Error()
		return
	}
	pb.Found, pb.Chassis, pb.Up, pb.TunnelKey, pb.DatapathKey = found, b.Chassis, b.Up, b.TunnelKey, b.DatapathKey
}

// diagnoseOpenFlow counts the flows of the port by asking the bridge
// natively (the counts CHECK also relies on), and adds what an operator
// reads in ovs-ofctl's words: the ingress flow and the port counters.
func (d *Daemon) diagnoseOpenFlow(ctx context.Context, r *diagnose.Report) {
	of := &r.OpenFlow
	if !r.Interface.Found || r.Interface.Ofport <= 0 {
		return // Judge skips it
	}
	of.Socket = d.flows.Socket()
	port := uint32(r.Interface.Ofport)
	table0 := uint8(0)
	queries := []openflow.Query{
		{Table: &table0, Match: openflow.Match{InPort: port}},
		{OutPort: port},
		{Match: openflow.Match{InPort: port}},
	}
	if pb := r.PortBinding; pb.Found && pb.TunnelKey > 0 && pb.DatapathKey > 0 {
		dp, key := uint64(pb.DatapathKey), uint32(pb.TunnelKey)
		queries = append(queries,
			openflow.Query{Match: openflow.Match{Metadata: &dp, Reg14: &key}},
			openflow.Query{Match: openflow.Match{Metadata: &dp, Reg15: &key}})
		if mac := r.Pod.Link.MAC; mac != "" {
			if hw, err := net.ParseMAC(mac); err == nil {
				queries = append(queries, openflow.Query{Match: openflow.Match{Metadata: &dp, EthDst: hw}},
					openflow.Query{Match: openflow.Match{Metadata: &dp, EthSrc: hw}})
			}
		}
	}
	res, err := d.flows.Flows(ctx, queries...)
	if err != nil {
		of.Verdict, of.Note = diagnose.Skipped, fmt.Sprintf("cannot ask the bridge for its flows: %v", err)
		return
	}
	for _, f := range res[0] {
		of.IngressFlows++
		of.IngressPackets += f.Packets
	}
	of.OutputFlows = len(res[1])
	seen := map[string]bool{}
	perTable := map[int]*diagnose.TableCount{}
	for _, flows := range res[1:] {
		for _, f := range flows {
			if seen[f.Key] {
				continue
			}
			seen[f.Key] = true
			of.PortFlows++
			t := perTable[int(f.Table)]
			if t == nil {
				t = &diagnose.TableCount{Table: int(f.Table)}
				perTable[int(f.Table)] = t
			}
			t.Flows++
			t.Packets += f.Packets
		}
	}
	for _, t := range perTable {
		of.Tables = append(of.Tables, *t)
	}
	slices.SortFunc(of.Tables, func(a, b diagnose.TableCount) int { return a.Table - b.Table })
	of.Ingress, of.Port = ofctlView(of.Socket, r.Interface.Ofport)
}

// diagnosePod inspects the pod side in podNetns (recorded by ADD on the
// logical port and the OVS interface) and compares it as CHECK does.
func (d *Daemon) diagnosePod(r *diagnose.Report, id attachment.ID, podNetns string, lsp *nbdb.LogicalSwitchPort) {
	p := &r.Pod
	p.Netns = podNetns
	p.Link.Name = id.IfName
	if p.Netns == "" {
		p.Verdict, p.Note = diagnose.Skipped, "neither the logical port nor the OVS interface records the pod's network namespace"
		return
	}
	host := r.Interface.Name // also when the interface itself is gone
	if host == "" {
		p.Drifts = append(p.Drifts, diagnose.Drift{Kind: string(netns.DriftHostLink), Detail: "the attachment has no host veth on record"})
		return
	}
	st, err := netns.Inspect(p.Netns, host, id.IfName)
	if err != nil {
		p.Drifts = append(p.Drifts, diagnose.Drift{Kind: string(netns.DriftNetns), Detail: err.Error()})
		return
	}
	p.Link, p.Host = linkOf(st.Pod), linkOf(st.Host)
	p.TxChecksumOffload = st.TxChecksumOffload
	for _, a := range st.Addresses {
		p.Addresses = append(p.Addresses, a.String())
	}
	for _, rt := range st.Routes {
		route := diagnose.Route{Table: rt.Table, Dst: rt.Dst.String()}
		if rt.Gateway.IsValid() {
			route.Via = rt.Gateway.String()
		}
		p.Routes = append(p.Routes, route)
	}
	for _, ru := range st.Rules {
		p.Rules = append(p.Rules, diagnose.Rule{Priority: ru.Priority, From: ru.Src.String(), Table: ru.Table})
	}

	// The same comparison CHECK makes, against what the daemon expects
	// now: the network's MTU and routes when it knows the network's
	// config, else the host end's MTU (both ends are set alike).
	want := netns.Attachment{HostIfName: host, ContainerIfName: id.IfName, DisableTxChecksumOffload: d.userspaceDatapath}
	if lsp != nil {
		want.MAC, _ = network.PortMAC(lsp)
		want.Addresses = network.ParsePrefixList(lsp.ExternalIDs[externalids.Addresses])
	}
	if nw := d.networks.Lookup(id.Network); nw != nil {
		if mtu, err := d.defaultMTUFor(nw.Conf()); err == nil {
			want.MTU = mtu
			r.Expected.MTU, r.Expected.ConfigKnown = mtu, true
			want.Routes = nw.Routes()
			for _, rt := range want.Routes {
				r.Expected.Routes = append(r.Expected.Routes, rt.String())
			}
		}
	}
	if want.MTU == 0 && st.Host.Exists {
		want.MTU = st.Host.MTU
	}
	var drift *netns.CheckError
	if err := netns.Check(p.Netns, want); errors.As(err, &drift) {
		for _, dr := range drift.Drifts {
			p.Drifts = append(p.Drifts, diagnose.Drift{Kind: string(dr.Kind), Detail: dr.Detail})
		}
	} else if err != nil {
		p.Drifts = append(p.Drifts, diagnose.Drift{Kind: string(netns.DriftNetns), Detail: err.Error()})
	}
}

func linkOf(l netns.LinkState) diagnose.Link {
	out := diagnose.Link{Name: l.Name, Exists: l.Exists, AdminUp: l.AdminUp, OperState: l.OperState, MTU: l.MTU}
	if l.MAC != nil {
		out.MAC = l.MAC.String()
	}
	return out
}

// diagnoseTrace runs ovn-trace on a packet from the port to the peer:
// ICMP echo, to the peer's MAC when it is on the same switch, else to the
// switch's router port.
func (d *Daemon) diagnoseTrace(ctx context.Context, lsp *nbdb.LogicalSwitchPort, q diagnose.Query) *diagnose.Trace {
	t := &diagnose.Trace{Peer: q.Peer.String()}
	if lsp == nil {
		t.Verdict, t.Note = diagnose.Skipped, "no logical port to trace from"
		return t
	}
	mac, err := network.PortMAC(lsp)
	if err != nil {
		t.Verdict, t.Note = diagnose.Skipped, err.Error()
		return t
	}
	src, ok := sourceFor(network.ParsePrefixList(lsp.ExternalIDs[externalids.Addresses]), q.Peer)
	if !ok {
		t.Verdict, t.Note = diagnose.Skipped, "the port has no address of the peer's IP family"
		return t
	}
	dstMAC, ok := d.nextHopMAC(lsp, q.Peer)
	if !ok {
		t.Verdict, t.Note = diagnose.Skipped, "the peer is not on the port's switch and the switch has no router port"
		return t
	}
	family, icmp := "ip4", "icmp4.type == 8"
	if q.Peer.Is6() {
		family, icmp = "ip6", "icmp6.type == 128"
	}
	flow := fmt.Sprintf(`inport == %q && eth.src == %s && eth.dst == %s && %s.src == %s && %s.dst == %s && ip.ttl == 64 && %s`,
		lsp.Name, mac, dstMAC, family, src, family, q.Peer, icmp)
	args := append([]string{"--db=" + d.cfg.SBAddress}, d.traceSSLArgs()...)
	// --minimal prints only what changes the packet and where it goes:
	// short enough for a report; the command is there for the rest.
	args = append(args, "--minimal", flow)
	t.Command = "ovn-trace " + strings.Join(args[:len(args)-1], " ") + " '" + flow + "'"
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var stderr strings.Builder
	cmd := exec.CommandContext(tctx, "ovn-trace", args...)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	t.Output = string(out)
	if err != nil {
		t.Verdict, t.Note = diagnose.Skipped, fmt.Sprintf("ovn-trace failed: %v: %s", err, lastLine(stderr.String()))
		return t
	}
	t.Delivered = strings.Contains(t.Output, "output(")
	switch {
	case t.Delivered && (strings.Contains(t.Output, "arp {") || strings.Contains(t.Output, "nd_ns {")):
		t.Verdict, t.Note = diagnose.OK, "the router does not know the peer's MAC yet and asks for it: the packet goes out once the peer answers"
	case t.Delivered:
		t.Verdict = diagnose.OK
	default:
		t.Verdict = diagnose.Broken
		t.Problems = []diagnose.Problem{{What: "ovn-trace delivers the packet to no port",
			Cause: "the logical pipeline drops it (no route to the peer, ACLs, port security, a disabled port)",
			Fix:   "run the command with --detailed instead of --minimal: it names the stage and the logical flow that drops it"}}
	}
	return t
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func (d *Daemon) traceSSLArgs() []string {
	if d.cfg.SSLKey == "" {
		return nil
	}
	return []string{"--private-key=" + d.cfg.SSLKey, "--certificate=" + d.cfg.SSLCert, "--ca-cert=" + d.cfg.SSLCA}
}
