package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/daemon/kube"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs"
)

// ErrNotSupported marks configs that parse but ask for something this
// release does not implement yet.
var ErrNotSupported = errors.New("not supported yet")

var (
	errBadNetns   = errors.New("invalid network namespace")
	errBadRequest = errors.New("invalid CNI request")
)

// attachment is one (network, container, interface) triple: CNI's identity
// of an attachment.
type attachment struct {
	conf        *netconf.NetConf
	args        netconf.Args
	containerID string
	ifName      string
	netns       string
}

func (a *attachment) portName() string   { return portName(a.conf.Name, a.containerID, a.ifName) }
func (a *attachment) hostIfName() string { return hostIfName(a.conf.Name, a.containerID, a.ifName) }

func parseRequest(req cniproto.Request) (*attachment, error) {
	conf, err := netconf.Parse(req.Config)
	if err != nil {
		return nil, err
	}
	args, err := netconf.ParseArgs(req.Args)
	if err != nil {
		return nil, err
	}
	if req.ContainerID == "" {
		return nil, fmt.Errorf("%w: CNI_CONTAINERID is empty", errBadRequest)
	}
	if req.IfName == "" {
		return nil, fmt.Errorf("%w: CNI_IFNAME is empty", errBadRequest)
	}
	return &attachment{conf: conf, args: args, containerID: req.ContainerID, ifName: req.IfName, netns: req.Netns}, nil
}

// checkTopology rejects topologies that parse but are not implemented yet,
// instead of silently treating them as layer2.
func checkTopology(conf *netconf.NetConf) error {
	if conf.Topology == netconf.Layer2 || conf.Topology == netconf.Layer3 {
		return nil
	}
	return fmt.Errorf("network %q: topology %q is %w in this release (\"layer2\" and \"layer3\" are); use one of those or wait for %s support",
		conf.Name, conf.Topology, ErrNotSupported, conf.Topology)
}

// Add attaches a pod: logical switch port (with addresses), veth into the
// pod, OVS port, then waits for ovn-controller to report the port
// installed. Any failure undoes every step already done.
func (d *Daemon) Add(ctx context.Context, req cniproto.Request) (result json.RawMessage, err error) {
	a, err := parseRequest(req)
	if err != nil {
		return nil, err
	}
	if err := checkTopology(a.conf); err != nil {
		return nil, err
	}
	if d.kube != nil {
		if err := d.kube.CheckNAD(a.conf); err != nil {
			return nil, err
		}
	}
	if a.netns == "" {
		return nil, fmt.Errorf("%w: CNI_NETNS is empty", errBadNetns)
	}
	if _, err := os.Stat(a.netns); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadNetns, err)
	}
	network, err := d.networks.get(ctx, a.conf)
	if err != nil {
		return nil, err
	}
	// An earlier ADD of the same attachment may have died half-way (daemon
	// crash, runtime timeout). Start from a clean slate.
	if err := d.teardown(ctx, a.conf.Name, a.containerID, a.ifName, ""); err != nil {
		return nil, fmt.Errorf("clear leftovers of an earlier attempt: %w", err)
	}

	var undo []func(context.Context) error
	defer func() {
		if err == nil {
			return
		}
		cleanup := context.WithoutCancel(ctx)
		for i := len(undo) - 1; i >= 0; i-- {
			if uerr := undo[i](cleanup); uerr != nil {
				d.log.Error("rollback step failed", "port", a.portName(), "err", uerr)
			}
		}
	}()

	static := a.conf.RuntimeConfig.IPs
	if len(static) == 0 {
		static = a.args.IPs
	}
	claim, err := d.persistentClaim(ctx, a)
	if err != nil {
		return nil, err
	}
	if claim != nil && len(claim.IPs) > 0 {
		static = claim.IPs // the VM keeps its addresses
	}
	mac := a.conf.RuntimeConfig.MAC
	if mac == nil {
		mac = a.args.MAC
	}
	mtu := a.conf.MTU
	if mtu == 0 {
		mtu = d.defaultMTU
	}
	hostIf := a.hostIfName()

	// Where the logical port comes from: a warm port (pre-provisioned,
	// already compiled by northd) is bound now and relabelled with the pod's
	// identity once installed; otherwise (the cold path) the port is
	// created, with IPAM, in a transaction shared with concurrent ADDs.
	// Either way the local plumbing (veth into the pod, OVS port bound to
	// the port's name, known in advance) runs alongside; only the pod's MAC
	// and addresses wait for the port.
	if len(static) > 0 {
		if err := d.reclaimWarm(ctx, network, network.widen(static)); err != nil {
			return nil, err
		}
	}
	preq := portRequest{
		name: a.portName(), mac: mac, static: static, namespace: a.args.PodNamespace,
		claim: claim.Key(), externalIDs: d.portExternalIDs(a),
	}
	warm := takeWarm(network, len(static) == 0 && mac == nil && claim == nil)
	ifaceID := a.portName()
	if warm != nil {
		ifaceID = warm.Name
	}
	if network.warm != nil {
		// Refill once this ADD is done: the refill's NB transaction sets
		// off a northd recompile that would compete with this ADD for
		// CPU, and on a network's first ADD its allocations could take
		// the very addresses the ADD asks for.
		defer network.warm.poke()
	}
	start := time.Now()
	nbDone := make(chan portResult, 1)
	go func() {
		var created portResult
		if warm != nil {
			// Nothing to wait for: the port and its addresses exist.
			// The relabel comes after ovn-installed (below).
			created = warmResult(warm)
		} else {
			created = network.createPort(ctx, preq)
			if len(static) > 0 && errors.Is(created.err, ipam.ErrInUse) {
				// A warm port refilled meanwhile may have taken the
				// address: free it and try once more.
				if err := d.reclaimWarm(ctx, network, network.widen(static)); err == nil {
					created = network.createPort(ctx, preq)
				}
			}
		}
		observePhase("nb_port", start)
		nbDone <- created
	}()
	links, plugErr := d.plug(ctx, a, hostIf, ifaceID, mtu)
	if plugErr == nil {
		undo = append(undo, func(ctx context.Context) error {
			return errors.Join(d.ovs.DeletePort(ctx, hostIf), netns.Teardown(hostIf), netns.TeardownPodSide(a.netns, a.ifName))
		})
		observePhase("plug", start)
	}
	created := <-nbDone
	if created.err == nil {
		lsp := created.lsp
		d.networks.index(lsp)
		undo = append(undo, func(ctx context.Context) error { return d.deletePort(ctx, lsp.Name) })
	}
	if err := errors.Join(created.err, plugErr); err != nil {
		return nil, err
	}
	addrs, mac := created.addrs, created.mac
	if claim != nil && len(claim.IPs) == 0 && len(addrs) > 0 {
		// First pod of the claim: the claim keeps these addresses from now
		// on, here at once and on other nodes through their informers.
		if err := d.kube.RecordClaim(ctx, claim, a.args.PodName, addrs); err != nil {
			return nil, err
		}
		network.pool.Pin(claim.Key(), prefixAddrs(addrs))
	}

	phase := time.Now()
	if err := netns.Configure(a.netns, netns.Attachment{
		HostIfName: hostIf, ContainerIfName: a.ifName, MAC: mac, Addresses: addrs,
		Routes: network.routes, MTU: mtu, DisableTxChecksumOffload: d.userspaceDatapath,
	}); err != nil {
		return nil, fmt.Errorf("pod interface %s in %s: %w", a.ifName, a.netns, err)
	}
	links.Pod.MAC = mac
	phase = observePhase("configure", phase)

	waitCtx, cancel := context.WithTimeout(ctx, d.cfg.ReadyTimeout)
	defer cancel()
	if err := d.ovs.WaitInstalled(waitCtx, hostIf); err != nil {
		return nil, err
	}
	phase = observePhase("ovn_installed", phase)
	if warm != nil {
		// Only now does the warm port get the pod's identity (and the
		// pod's addresses go into its namespace's address sets): the
		// relabel sets off a northd recompile, which is kept out of the
		// way of ovn-controller installing the port. Until it commits,
		// the OVS interface (named after the attachment, bound to the
		// port) is the record that DEL, GC and a restart go by.
		relabelled := network.adoptPort(ctx, warm, preq)
		if relabelled.err != nil {
			return nil, relabelled.err
		}
		d.networks.index(relabelled.lsp)
		observePhase("relabel", phase)
	}
	return encodeResult(a, network, links, addrs, mtu)
}

// takeWarm hands out one of the network's warm ports if the ADD lets the
// daemon choose addresses and MAC (eligible) and the node has one, and
// counts where the ADD's port comes from.
func takeWarm(n *network, eligible bool) *nbdb.LogicalSwitchPort {
	source := "fixed"
	var lsp *nbdb.LogicalSwitchPort
	if eligible {
		source = "cold"
		if n.warm != nil {
			if l, ok := n.warm.take(); ok {
				lsp, source = l, "warm"
			}
		}
	}
	addPortSource.WithLabelValues(source).Inc()
	return lsp
}

// plug creates the veth straight into the pod (no addresses yet) and its OVS
// port, bound to the logical port's name, which is known before the port
// exists. If the OVS transaction fails the veth is removed again.
func (d *Daemon) plug(ctx context.Context, a *attachment, hostIf, ifaceID string, mtu int) (netns.Result, error) {
	links, err := netns.Plug(a.netns, netns.Attachment{
		HostIfName: hostIf, ContainerIfName: a.ifName, MTU: mtu, DisableTxChecksumOffload: d.userspaceDatapath,
	})
	if err != nil {
		return links, fmt.Errorf("pod interface %s in %s: %w", a.ifName, a.netns, err)
	}
	if err := d.addOVSPort(ctx, ovs.PortSpec{Name: hostIf, IfaceID: ifaceID, ExternalIDs: map[string]string{
		externalids.Network: a.conf.Name, externalids.ContainerID: a.containerID, externalids.IfName: a.ifName,
	}}); err != nil {
		return links, errors.Join(err, netns.Teardown(hostIf))
	}
	return links, nil
}

// persistentClaim returns the IPAMClaim the attachment references, if the
// network allows persistent IPs and Kubernetes is on.
func (d *Daemon) persistentClaim(ctx context.Context, a *attachment) (*kube.Claim, error) {
	if d.kube == nil || !a.conf.AllowPersistentIPs || a.args.PodName == "" {
		return nil, nil
	}
	return d.kube.ClaimFor(ctx, a.args.PodNamespace, a.args.PodName, a.conf.NADName, a.ifName)
}

func prefixAddrs(ps []netip.Prefix) []netip.Addr {
	out := make([]netip.Addr, len(ps))
	for i, p := range ps {
		out[i] = p.Addr()
	}
	return out
}

func (d *Daemon) portExternalIDs(a *attachment) map[string]string {
	ids := map[string]string{
		externalids.Network:     a.conf.Name,
		externalids.Topology:    string(a.conf.Topology),
		externalids.Node:        d.cfg.NodeName,
		externalids.ContainerID: a.containerID,
		externalids.IfName:      a.ifName,
		externalids.Netns:       a.netns,
	}
	if a.args.PodNamespace != "" {
		ids[externalids.PodNamespace] = a.args.PodNamespace
		ids[externalids.PodName] = a.args.PodName
	}
	if a.args.PodUID != "" {
		ids[externalids.PodUID] = a.args.PodUID
	}
	if a.conf.NADName != "" {
		ids[externalids.NAD] = a.conf.NADName
	}
	return ids
}

func prefixList(ps []netip.Prefix) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

func parsePrefixList(s string) []netip.Prefix {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p)
		}
	}
	return out
}

func encodeResult(a *attachment, n *network, links netns.Result, addrs []netip.Prefix, mtu int) (json.RawMessage, error) {
	r := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: links.Host.Name, Mac: links.Host.MAC.String(), Mtu: mtu},
			{Name: links.Pod.Name, Mac: links.Pod.MAC.String(), Mtu: mtu, Sandbox: a.netns},
		},
	}
	for _, p := range addrs {
		ip := &current.IPConfig{
			Interface: current.Int(1),
			Address:   net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())},
		}
		for _, gw := range n.gateways {
			if gw.Is4() == p.Addr().Is4() {
				ip.Gateway = gw.AsSlice()
			}
		}
		r.IPs = append(r.IPs, ip)
	}
	for _, rt := range n.routes {
		r.Routes = append(r.Routes, &types.Route{
			Dst: net.IPNet{IP: rt.Dst.Addr().AsSlice(), Mask: net.CIDRMask(rt.Dst.Bits(), rt.Dst.Addr().BitLen())},
			GW:  rt.Gateway.AsSlice(),
		})
	}
	versioned, err := r.GetAsVersion(a.conf.CNIVersion)
	if err != nil {
		return nil, fmt.Errorf("convert result to CNI %s: %w", a.conf.CNIVersion, err)
	}
	return json.Marshal(versioned)
}

// Del detaches a pod. It succeeds when there is nothing to remove, as the
// CNI spec requires: DEL may come twice, or for an ADD that never happened.
func (d *Daemon) Del(ctx context.Context, req cniproto.Request) error {
	name, err := networkNameForDel(req.Config)
	if err != nil {
		return err
	}
	if req.ContainerID == "" || req.IfName == "" {
		return fmt.Errorf("%w: CNI_CONTAINERID and CNI_IFNAME are required", errBadRequest)
	}
	return d.teardown(ctx, name, req.ContainerID, req.IfName, req.Netns)
}

// networkNameForDel is lenient: a config that no longer validates (the NAD
// was edited since ADD) must not stop a pod from being torn down, as long as
// it still names the network.
func networkNameForDel(config []byte) (string, error) {
	conf, err := netconf.Parse(config)
	if err == nil {
		return conf.Name, nil
	}
	var raw struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(config, &raw) == nil && raw.Name != "" {
		return raw.Name, nil
	}
	return "", err
}

// teardown removes an attachment's OVS port, veth and logical switch port,
// skipping whatever is already gone.
func (d *Daemon) teardown(ctx context.Context, network, containerID, ifName, netnsPath string) error {
	hostIf := hostIfName(network, containerID, ifName)
	// Found before the OVS port goes: its iface-id may be the only record
	// of a warm port this attachment bound.
	ports := d.portsOf(network, containerID, ifName)
	var errs []error
	if err := d.ovs.DeletePort(ctx, hostIf); err != nil {
		errs = append(errs, err)
	}
	if err := netns.Teardown(hostIf); err != nil {
		errs = append(errs, err)
	}
	if netnsPath != "" {
		if err := netns.TeardownPodSide(netnsPath, ifName); err != nil {
			errs = append(errs, err)
		}
	}
	for _, name := range ports {
		if err := d.deletePort(ctx, name); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// portsOf names the logical switch ports an attachment may hold: the one
// named after its identity (cold path), the one the identity index knows
// (a relabelled warm port), and the one its OVS interface is bound to (a
// warm port whose ADD died before relabelling).
func (d *Daemon) portsOf(network, containerID, ifName string) []string {
	names := []string{portName(network, containerID, ifName)}
	if name, ok := d.networks.portOf(network, containerID, ifName); ok && name != names[0] {
		names = append(names, name)
	}
	if iface, ok := d.ovs.Interface(hostIfName(network, containerID, ifName)); ok {
		if id := iface.ExternalIDs[externalids.IfaceID]; id != "" && !slices.Contains(names, id) {
			names = append(names, id)
		}
	}
	return names
}

// attachedPort is the logical switch port serving an attachment.
func (d *Daemon) attachedPort(network, containerID, ifName string) (*nbdb.LogicalSwitchPort, bool) {
	for _, name := range d.portsOf(network, containerID, ifName) {
		if lsp, ok := d.nb.Port(name); ok && !isWarm(lsp) {
			return lsp, true
		}
	}
	return nil, false
}

// deletePort removes a logical switch port and its addresses from the
// address sets, in one transaction.
func (d *Daemon) deletePort(ctx context.Context, name string) error {
	lsp, ok := d.nb.Port(name)
	if !ok {
		return nil
	}
	network := lsp.ExternalIDs[externalids.Network]
	swName := lsp.ExternalIDs[externalids.Switch]
	ls, ok := d.nb.Switch(swName)
	if !ok {
		return fmt.Errorf("logical switch port %s exists but its switch %q is not in the NB cache", name, swName)
	}
	if _, err := d.nb.ApplyPorts(ctx, ovn.PortChange{
		Switch: ls, RemoveUUIDs: []string{lsp.UUID}, AddressSets: portAddressSetEdits(lsp),
	}); err != nil {
		return fmt.Errorf("delete logical switch port %s: %w", name, err)
	}
	if n := d.networks.lookup(network); n != nil {
		n.pool.Release(name)
	}
	return nil
}

// Check verifies that an attachment is still as ADD left it: logical switch
// port, OVS interface bound and installed, and the pod interface with its
// MAC, addresses and MTU. It reports every drift it finds.
func (d *Daemon) Check(ctx context.Context, req cniproto.Request) error {
	a, err := parseRequest(req)
	if err != nil {
		return err
	}
	if err := checkTopology(a.conf); err != nil {
		return err
	}
	lsp, ok := d.attachedPort(a.conf.Name, a.containerID, a.ifName)
	if !ok {
		return fmt.Errorf("logical switch port %s is missing from the NB", a.portName())
	}
	mac, err := portMAC(lsp)
	if err != nil {
		return err
	}
	addrs := parsePrefixList(lsp.ExternalIDs[externalids.Addresses])
	var drift []error
	hostIf := a.hostIfName()
	iface, ok := d.ovs.Interface(hostIf)
	switch {
	case !ok:
		drift = append(drift, fmt.Errorf("OVS interface %s is missing from bridge %s", hostIf, d.cfg.Bridge))
	case iface.ExternalIDs[externalids.IfaceID] != lsp.Name:
		drift = append(drift, fmt.Errorf("OVS interface %s has iface-id %q, want %q", hostIf, iface.ExternalIDs[externalids.IfaceID], lsp.Name))
	case iface.ExternalIDs[externalids.OVNInstalled] != "true":
		drift = append(drift, fmt.Errorf("OVS interface %s is not ovn-installed", hostIf))
	}
	mtu := a.conf.MTU
	if mtu == 0 {
		mtu = d.defaultMTU
	}
	var routes []netns.Route
	if a.conf.Topology == netconf.Layer3 {
		network, err := d.networks.get(ctx, a.conf)
		if err != nil {
			return err
		}
		routes = network.routes
	}
	if err := netns.Check(a.netns, netns.Attachment{
		HostIfName: hostIf, ContainerIfName: a.ifName, MAC: mac, Addresses: addrs, Routes: routes,
		MTU: mtu, DisableTxChecksumOffload: d.userspaceDatapath,
	}); err != nil {
		drift = append(drift, err)
	}
	if err := checkPrevResult(a, mac, addrs); err != nil {
		drift = append(drift, err)
	}
	if len(drift) > 0 {
		return fmt.Errorf("attachment %s drifted: %w", lsp.Name, errors.Join(drift...))
	}
	return nil
}

// checkPrevResult compares the runtime's record of ADD's result with the NB.
func checkPrevResult(a *attachment, mac net.HardwareAddr, addrs []netip.Prefix) error {
	if len(a.conf.PrevResult) == 0 {
		return nil
	}
	prev, err := current.NewResult(a.conf.PrevResult)
	if err != nil {
		return fmt.Errorf("prevResult does not parse: %w", err)
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
		if i.Name == a.ifName && i.Sandbox != "" && !strings.EqualFold(i.Mac, mac.String()) {
			return fmt.Errorf("prevResult MAC %s of %s differs from the logical switch port's %s", i.Mac, a.ifName, mac)
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
	return out
}

// GC removes this node's attachments of the network that the runtime does
// not list in cni.dev/valid-attachments (CNI 1.1).
func (d *Daemon) GC(ctx context.Context, req cniproto.Request) error {
	conf, err := netconf.Parse(req.Config)
	if err != nil {
		return err
	}
	var gc struct {
		Valid []struct {
			ContainerID string `json:"containerID"`
			IfName      string `json:"ifname"`
		} `json:"cni.dev/valid-attachments"`
	}
	if err := json.Unmarshal(req.Config, &gc); err != nil {
		return fmt.Errorf("cni.dev/valid-attachments: %w", err)
	}
	valid := map[string]bool{}
	for _, v := range gc.Valid {
		valid[v.ContainerID+"\x00"+v.IfName] = true
	}
	stale := map[[2]string]string{} // (containerID, ifname) -> netns
	ports, err := d.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		// Router links carry no container ID and are not attachments.
		return p.ExternalIDs[externalids.Network] == conf.Name && p.ExternalIDs[externalids.Node] == d.cfg.NodeName &&
			p.ExternalIDs[externalids.ContainerID] != ""
	})
	if err != nil {
		return err
	}
	for _, p := range ports {
		id := [2]string{p.ExternalIDs[externalids.ContainerID], p.ExternalIDs[externalids.IfName]}
		if !valid[id[0]+"\x00"+id[1]] {
			stale[id] = p.ExternalIDs[externalids.Netns]
		}
	}
	// OVS ports whose logical port is already gone are stale too.
	ifaces, err := d.ovs.OwnedInterfaces()
	if err != nil {
		return err
	}
	for _, i := range ifaces {
		if i.ExternalIDs[externalids.Network] != conf.Name {
			continue
		}
		id := [2]string{i.ExternalIDs[externalids.ContainerID], i.ExternalIDs[externalids.IfName]}
		if _, seen := stale[id]; !seen && !valid[id[0]+"\x00"+id[1]] {
			stale[id] = ""
		}
	}
	var errs []error
	for id, nsPath := range stale {
		d.log.Info("gc: removing stale attachment", "network", conf.Name, "container", id[0], "ifname", id[1])
		if err := d.teardown(ctx, conf.Name, id[0], id[1], nsPath); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// Status tells the runtime whether ADD can succeed now (CNI 1.1 STATUS).
func (d *Daemon) Status() error {
	var problems []string
	if !d.nb.Connected() {
		problems = append(problems, "not connected to the OVN Northbound database")
	}
	if !d.sb.Connected() {
		problems = append(problems, "not connected to the OVN Southbound database")
	} else if !d.sb.ChassisRegistered() {
		problems = append(problems, "ovn-controller has not registered this node's chassis in the Southbound database")
	}
	if !d.ovs.Connected() {
		problems = append(problems, "not connected to the local Open_vSwitch database")
	}
	if len(problems) > 0 {
		return types.NewError(cniproto.ErrPluginNotAvailable, "ovn-overlay cannot attach pods: "+strings.Join(problems, "; "), "")
	}
	return nil
}
