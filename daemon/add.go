package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/daemon/kube"
	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs"
)

// Add attaches a pod to a network: a logical switch port (a warm one if the
// node has one, else a new one), a veth straight into the pod, its OVS
// port, the pod's MAC and addresses; it answers once ovn-controller reports
// the port installed and both links are up. A failure removes whatever was
// made, through the same teardown as DEL.
func (d *Daemon) Add(ctx context.Context, req cniproto.Request) (json.RawMessage, error) {
	received := time.Now()
	r, err := d.parseAdd(req)
	if err != nil {
		return nil, err
	}
	unlock := d.store.Lock(r.id)
	defer unlock()
	nw, err := d.networks.Get(ctx, r.conf)
	if err != nil {
		return nil, err
	}
	// An earlier ADD of the same attachment may have died half-way (daemon
	// crash, runtime timeout). Start from a clean slate.
	if err := d.teardown(ctx, r.id, r.netns); err != nil {
		return nil, fmt.Errorf("clear leftovers of an earlier attempt: %w", err)
	}
	p, err := d.plan(ctx, r, nw)
	if err != nil {
		return nil, err
	}
	// Everything before the attachment is made: validation, the lock,
	// the network, clearing leftovers, IPAM planning.
	metrics.ObservePhase("prepare", received)
	// Refill once this ADD is done: the refill's NB transaction sets off a
	// northd recompile that would compete with this ADD for CPU.
	defer nw.RefillWarm()
	done, err := d.attach(ctx, p)
	if err != nil {
		if terr := d.teardown(context.WithoutCancel(ctx), r.id, r.netns); terr != nil {
			d.log.Error("rollback of a failed ADD left something behind; the next DEL retries", "attachment", r.id, "err", terr)
		}
		d.claimFailed(context.WithoutCancel(ctx), p, err)
		return nil, err
	}
	return encodeResult(p, done)
}

// parseAdd validates everything ADD is given before anything is touched.
func (d *Daemon) parseAdd(req cniproto.Request) (*request, error) {
	r, err := parseRequest(req)
	if err != nil {
		return nil, err
	}
	if err := checkTopology(r.conf); err != nil {
		return nil, err
	}
	if d.kube != nil {
		if err := d.kube.CheckNAD(r.conf); err != nil {
			return nil, err
		}
	}
	if err := podNetns(r.netns); err != nil {
		return nil, err
	}
	if r.conf.Topology == netconf.Localnet {
		if _, err := d.physicalBridge(r.conf); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// addPlan is what an ADD will make.
type addPlan struct {
	r     *request
	nw    *network.Network
	port  network.PortRequest
	claim *kube.Claim             // the IPAMClaim whose addresses the pod keeps
	warm  *nbdb.LogicalSwitchPort // the warm port to bind; nil: create one
	// hostIf names the host end of the veth and its OVS interface.
	hostIf string
	mtu    int
}

// plan decides addresses, MAC, MTU and where the logical port comes from.
func (d *Daemon) plan(ctx context.Context, r *request, nw *network.Network) (*addPlan, error) {
	mtu, err := d.defaultMTUFor(r.conf)
	if err != nil {
		return nil, err
	}
	p := &addPlan{r: r, nw: nw, hostIf: attachment.NewHostLinkName(), mtu: mtu}
	static := r.conf.RuntimeConfig.IPs
	if len(static) == 0 {
		static = r.args.IPs
	}
	claim, err := d.persistentClaim(ctx, r)
	if err != nil {
		return nil, err
	}
	if claim != nil && len(claim.IPs) > 0 {
		static = claim.IPs // the VM keeps its addresses
	}
	mac := r.conf.RuntimeConfig.MAC
	if mac == nil {
		mac = r.args.MAC
	}
	if len(static) > 0 {
		if err := d.networks.ReclaimWarm(ctx, nw, nw.Widen(static)); err != nil {
			return nil, err
		}
	}
	source, err := d.migrationSource(ctx, r, nw, claim)
	if err != nil {
		return nil, err
	}
	p.claim = claim
	p.port = network.PortRequest{
		Name: r.id.PortName(), MAC: mac, Static: static, Namespace: r.args.PodNamespace,
		Claim: claim.Key(), ExternalIDs: d.portExternalIDs(r),
	}
	if claim != nil {
		p.port.ExternalIDs[externalids.IPAMClaim] = claim.ID()
	}
	if r.conf.DHCP != nil { // the hostname costs a pod look-up
		if p.port.DHCP, err = nw.DHCPFor(ctx, mtu, d.hostnameFor(r)); err != nil {
			return nil, err
		}
	}
	if source != nil {
		// A live-migration target: the VM keeps its MAC; the port
		// waits, disabled, for the hand-over.
		if p.port.MAC, err = network.PortMAC(source); err != nil {
			return nil, err
		}
		p.port.MigrateFrom = source.Name
	}
	if p.warm = nw.TakeWarm(len(static) == 0 && mac == nil && claim == nil); p.warm != nil {
		// Recorded at once: if this ADD fails, its teardown deletes the
		// warm port, which is never handed out twice.
		d.store.RecordPort(r.id, p.warm.Name)
	}
	return p, nil
}

// attached is what ADD made, for its result.
type attached struct {
	links netns.Result
	port  network.PortResult
}

// attach makes the attachment. The logical port (created, or a warm one
// bound) and the local plumbing run side by side: the OVS port is bound to
// the port's name, known in advance; only the pod's MAC and addresses wait
// for the port.
func (d *Daemon) attach(ctx context.Context, p *addPlan) (*attached, error) {
	start := time.Now()
	ports := make(chan network.PortResult, 1)
	go func() {
		ports <- d.logicalPort(ctx, p)
		metrics.ObservePhase("nb_port", start)
	}()
	links, plugErr := d.plug(ctx, p)
	if plugErr == nil {
		metrics.ObservePhase("plug", start)
	}
	port := <-ports
	if port.Err == nil {
		d.store.RecordPort(p.r.id, port.LSP.Name)
	}
	if err := errors.Join(port.Err, plugErr); err != nil {
		return nil, err
	}
	if err := d.recordClaim(ctx, p, port); err != nil {
		return nil, err
	}
	phase := time.Now()
	if err := netns.Configure(p.r.netns, netns.Attachment{
		HostIfName: p.hostIf, ContainerIfName: p.r.id.IfName, MAC: port.MAC, Addresses: port.Addrs,
		Routes: p.nw.Routes(), MTU: p.mtu, DisableTxChecksumOffload: d.userspaceDatapath,
	}); err != nil {
		return nil, fmt.Errorf("pod interface %s in %s: %w", p.r.id.IfName, p.r.netns, err)
	}
	links.Pod.MAC = port.MAC
	phase = metrics.ObservePhase("configure", phase)
	if err := d.waitReady(ctx, p); err != nil {
		return nil, err
	}
	phase = metrics.ObservePhase("ovn_installed", phase)
	if p.warm != nil {
		if err := d.relabel(ctx, p); err != nil {
			return nil, err
		}
		metrics.ObservePhase("relabel", phase)
	}
	if p.port.MigrateFrom != "" {
		d.handOverIfRunning(p.r)
	}
	return &attached{links: links, port: port}, nil
}

// logicalPort creates the attachment's logical switch port, or returns the
// warm port it binds (which exists, addresses and all).
func (d *Daemon) logicalPort(ctx context.Context, p *addPlan) network.PortResult {
	if p.warm != nil {
		return network.WarmResult(p.warm)
	}
	created := p.nw.CreatePort(ctx, p.port)
	if len(p.port.Static) > 0 && errors.Is(created.Err, ipam.ErrInUse) {
		// A warm port refilled meanwhile may have taken the address:
		// free it and try once more.
		if err := d.networks.ReclaimWarm(ctx, p.nw, p.nw.Widen(p.port.Static)); err == nil {
			created = p.nw.CreatePort(ctx, p.port)
		}
	}
	return created
}

// plug creates the veth straight into the pod (no addresses yet, host end
// marked as the attachment's) and its OVS port, bound to the logical
// port's name and carrying the attachment's identity.
func (d *Daemon) plug(ctx context.Context, p *addPlan) (netns.Result, error) {
	d.store.RecordHostLink(p.r.id, p.hostIf)
	links, err := netns.Plug(p.r.netns, netns.Attachment{
		HostIfName: p.hostIf, HostAlias: p.r.id.LinkAlias(), ContainerIfName: p.r.id.IfName,
		MTU: p.mtu, DisableTxChecksumOffload: d.userspaceDatapath,
	})
	if err != nil {
		return links, fmt.Errorf("pod interface %s in %s: %w", p.r.id.IfName, p.r.netns, err)
	}
	ifaceID := p.port.Name
	if p.warm != nil {
		ifaceID = p.warm.Name
	}
	// Who the attachment is for, as on the logical port: diagnose finds
	// a pod's attachment by it also when the port is gone.
	return links, d.addOVSPort(ctx, ovs.PortSpec{Name: p.hostIf, IfaceID: ifaceID, ExternalIDs: attachmentExternalIDs(p.r)})
}

// waitReady returns once ovn-controller has installed the port's flows,
// the OVS interface has an OpenFlow port and both veth ends are up: a
// pod is never told it is attached while it cannot send.
func (d *Daemon) waitReady(ctx context.Context, p *addPlan) error {
	waitCtx, cancel := context.WithTimeout(ctx, d.cfg.ReadyTimeout)
	defer cancel()
	if err := d.ovs.WaitInstalled(waitCtx, p.hostIf); err != nil {
		return err
	}
	if iface, ok := d.ovs.Interface(p.hostIf); !ok || ovs.Ofport(iface) <= 0 {
		return fmt.Errorf("OVS interface %s is installed but has no OpenFlow port", p.hostIf)
	}
	if localnet := p.nw.LocalnetPort(); localnet != "" {
		// Installed flows reach nowhere until ovn-controller has
		// patched br-int to the physical bridge.
		if err := d.ovs.WaitLocalnetPatch(waitCtx, localnet); err != nil {
			return err
		}
	}
	return netns.LinksUp(p.hostIf, p.r.netns, p.r.id.IfName)
}

// relabel gives the warm port the pod's identity (and puts the pod's
// addresses in its namespace's address sets). Only now: the relabel sets
// off a northd recompile, kept out of the way of ovn-controller installing
// the port. Until it commits, the OVS interface (carrying the identity,
// bound to the port) is the record DEL, GC and a restart go by.
func (d *Daemon) relabel(ctx context.Context, p *addPlan) error {
	relabelled := p.nw.AdoptPort(ctx, p.warm, p.port)
	if relabelled.Err != nil {
		return relabelled.Err
	}
	d.store.RecordPort(p.r.id, relabelled.LSP.Name)
	return nil
}

// recordClaim makes the first pod of an IPAMClaim's addresses the claim's:
// from now on they are kept for it, here at once and on other nodes
// through their informers. Every pod that gets the claim's addresses
// becomes its owner pod, with IPsAllocated True.
func (d *Daemon) recordClaim(ctx context.Context, p *addPlan, port network.PortResult) error {
	if p.claim == nil || len(port.Addrs) == 0 || p.port.MigrateFrom != "" {
		return nil // a migration target becomes the owner at the hand-over
	}
	first := len(p.claim.IPs) == 0
	if !first && p.claim.OwnerPod == p.r.args.PodName && p.claim.Allocated {
		return nil
	}
	if err := d.kube.RecordClaim(ctx, p.claim, p.r.args.PodName, port.Addrs); err != nil {
		return err
	}
	if first {
		p.nw.PinClaim(p.claim.Key(), network.PrefixAddrs(port.Addrs))
	}
	return nil
}

// claimFailed tells the ADD's IPAMClaim, if any, why its first pod got no
// addresses (best effort: the ADD's own error is what the runtime sees). A
// claim with addresses already has a pod that got them; a later pod's
// failure (another pod of the VM while the first still runs) is that
// pod's, not the claim's.
func (d *Daemon) claimFailed(ctx context.Context, p *addPlan, err error) {
	if p == nil || p.claim == nil || len(p.claim.IPs) > 0 {
		return
	}
	var reason string
	switch {
	case errors.Is(err, ipam.ErrExhausted):
		reason = kube.ReasonSubnetExhausted
	case errors.Is(err, ipam.ErrInUse):
		reason = kube.ReasonIPConflict
	case errors.Is(err, network.ErrMACInUse):
		reason = kube.ReasonMACConflict
	default:
		return
	}
	if werr := d.kube.ClaimNotAllocated(ctx, p.claim, p.r.args.PodName, reason, err.Error()); werr != nil {
		d.log.Warn("cannot record a failed allocation in the IPAMClaim", "claim", p.claim.Key(), "reason", reason, "err", werr)
	}
}

// persistentClaim returns the IPAMClaim the attachment references, if the
// network allows persistent IPs and Kubernetes is on.
func (d *Daemon) persistentClaim(ctx context.Context, r *request) (*kube.Claim, error) {
	if d.kube == nil || !r.conf.AllowPersistentIPs || r.args.PodName == "" {
		return nil, nil
	}
	return d.kube.ClaimFor(ctx, r.args.PodNamespace, r.args.PodName, r.conf.NADName, r.id.IfName)
}

// hostnameFor is the hostname DHCP offers the attachment's pod: its VM's
// name for a KubeVirt VM (the guest's own name, the same on every node it
// migrates to), else the pod's name.
func (d *Daemon) hostnameFor(r *request) string {
	if d.kube != nil {
		if pod, ok := d.kube.Pod(r.args.PodNamespace, r.args.PodName); ok && kube.VMOf(pod) != "" {
			return kube.VMOf(pod)
		}
	}
	return r.args.PodName
}

// portExternalIDs are the attachment's keys on its logical switch port.
func (d *Daemon) portExternalIDs(r *request) map[string]string {
	ids := attachmentExternalIDs(r)
	ids[externalids.Topology] = string(r.conf.Topology)
	ids[externalids.Node] = d.cfg.NodeName
	return ids
}

// attachmentExternalIDs are the keys both the logical port and the OVS
// interface carry: the attachment's identity, its netns and who it is for.
func attachmentExternalIDs(r *request) map[string]string {
	ids := r.id.ExternalIDs()
	ids[externalids.Netns] = r.netns
	if r.args.PodNamespace != "" {
		ids[externalids.PodNamespace] = r.args.PodNamespace
		ids[externalids.PodName] = r.args.PodName
	}
	if r.args.PodUID != "" {
		ids[externalids.PodUID] = r.args.PodUID
	}
	if r.conf.NADName != "" {
		ids[externalids.NAD] = r.conf.NADName
	}
	return ids
}

// encodeResult is ADD's answer in the config's cniVersion.
func encodeResult(p *addPlan, a *attached) (json.RawMessage, error) {
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: a.links.Host.Name, Mac: a.links.Host.MAC.String(), Mtu: p.mtu},
			{Name: a.links.Pod.Name, Mac: a.links.Pod.MAC.String(), Mtu: p.mtu, Sandbox: p.r.netns},
		},
	}
	for _, addr := range a.port.Addrs {
		ip := &current.IPConfig{
			Interface: current.Int(1),
			Address:   net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), addr.Addr().BitLen())},
		}
		for _, gw := range p.nw.Gateways() {
			if addr.Contains(gw) {
				ip.Gateway = gw.AsSlice()
			}
		}
		res.IPs = append(res.IPs, ip)
	}
	for _, rt := range p.nw.Routes() {
		res.Routes = append(res.Routes, &types.Route{
			Dst: net.IPNet{IP: rt.Dst.Addr().AsSlice(), Mask: net.CIDRMask(rt.Dst.Bits(), rt.Dst.Addr().BitLen())},
			GW:  rt.Gateway.AsSlice(),
		})
	}
	versioned, err := res.GetAsVersion(p.r.conf.CNIVersion)
	if err != nil {
		return nil, fmt.Errorf("convert result to CNI %s: %w", p.r.conf.CNIVersion, err)
	}
	return json.Marshal(versioned)
}
