package daemon

import (
	"context"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/kube"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// KubeVirt live migration, the daemon's part (network/migration.go has
// OVN's):
//
//  1. The target pod's ADD finds the VM's IPAMClaim addresses held by the
//     source pod's port, and both pods labelled with one VM: it creates the
//     target's port disabled, with the source's MAC and addresses
//     (migrationSource). The claim's owner stays the source.
//  2. When KubeVirt says the VM runs on the target (target-start
//     annotation, or the node label moved), the target node's daemon
//     hands traffic over in one NB transaction and makes the target pod
//     the claim's owner (handOver).
//  3. The source pod's DEL deletes its disabled port; the target keeps the
//     addresses. A target deleted before the hand-over leaves the source
//     as it was; one deleted after it gives the traffic back.

// migrationSource returns the port of the running pod whose VM this ADD's
// pod is the live-migration target of, or nil if the ADD is no migration.
// It refuses a second pod on a claim that is not the same VM's, and a VM
// migrating on a network that cannot keep its addresses.
func (d *Daemon) migrationSource(ctx context.Context, r *request, nw *network.Network, claim *kube.Claim) (*nbdb.LogicalSwitchPort, error) {
	if d.kube == nil || r.args.PodName == "" {
		return nil, nil
	}
	if claim == nil {
		return nil, d.refuseMigrationWithoutClaim(ctx, r)
	}
	if len(claim.IPs) == 0 {
		return nil, nil
	}
	ports, err := nw.ClaimPorts(claim.ID())
	if err != nil {
		return nil, err
	}
	var src *nbdb.LogicalSwitchPort
	for i := range ports {
		p := &ports[i]
		if p.ExternalIDs[externalids.PodNamespace] == r.args.PodNamespace && p.ExternalIDs[externalids.PodName] == r.args.PodName {
			continue // this pod's own (an earlier sandbox's): not a migration
		}
		if src == nil || network.Enabled(p) {
			src = p
		}
	}
	if src == nil {
		return nil, nil
	}
	srcNS, srcName := src.ExternalIDs[externalids.PodNamespace], src.ExternalIDs[externalids.PodName]
	srcPod, err := d.kube.PodOf(ctx, srcNS, srcName)
	if err != nil {
		return nil, err
	}
	if !kube.Running(srcPod) {
		// Its DEL has not come yet: the address index refuses the ADD
		// (in use), and the runtime retries.
		return nil, nil
	}
	pod, err := d.kube.PodOf(ctx, r.args.PodNamespace, r.args.PodName)
	if err != nil || pod == nil {
		return nil, fmt.Errorf("pod %s/%s: %w", r.args.PodNamespace, r.args.PodName, err)
	}
	if vm := kube.VMOf(pod); vm == "" || kube.VMOf(srcPod) != vm {
		return nil, fmt.Errorf("%w: IPAMClaim %s is in use by pod %s/%s on node %s; two pods share a claim only while one KubeVirt VM live-migrates (both pods labelled %s with the VM's name): give this pod its own claim",
			network.ErrInvalidRequest, claim.ID(), srcNS, srcName, src.ExternalIDs[externalids.Node], kube.LabelVMName)
	}
	if mac := r.conf.RuntimeConfig.MAC; mac != nil {
		if srcMAC, err := network.PortMAC(src); err == nil && mac.String() != srcMAC.String() {
			return nil, fmt.Errorf("%w: runtimeConfig.mac %s differs from the MAC %s the VM has on its source pod %s/%s; a migrating VM keeps its MAC",
				network.ErrInvalidRequest, mac, srcMAC, srcNS, srcName)
		}
	}
	return src, nil
}

// refuseMigrationWithoutClaim fails the ADD of a VM's migration target on a
// network where the VM would not keep its addresses: without an IPAMClaim
// (layer2, localnet) or on layer3, whose subnets are per node.
func (d *Daemon) refuseMigrationWithoutClaim(ctx context.Context, r *request) error {
	// Every ADD without a claim comes here: only virt-launcher pods (KubeVirt
	// names them so) cost a look-up.
	if !strings.HasPrefix(r.args.PodName, kube.VirtLauncherPrefix) {
		return nil
	}
	pod, err := d.kube.PodOf(ctx, r.args.PodNamespace, r.args.PodName)
	if err != nil || pod == nil || kube.VMOf(pod) == "" {
		return err
	}
	others, err := d.kube.OtherVMPods(ctx, pod)
	if err != nil || len(others) == 0 {
		return err
	}
	if r.conf.Topology == netconf.Layer3 {
		return fmt.Errorf("%w: pod %s/%s is a live-migration target of VM %s (pod %s runs it), but network %q is layer3: each node has its own subnet, so the VM would change addresses; put VMs that live-migrate on a layer2 or localnet network with \"allowPersistentIPs\": true",
			network.ErrInvalidRequest, pod.Namespace, pod.Name, kube.VMOf(pod), others[0].Name, r.conf.Name)
	}
	return fmt.Errorf("%w: pod %s/%s is a live-migration target of VM %s (pod %s runs it), but its interface %s has no IPAMClaim, so the VM would change addresses; set \"allowPersistentIPs\": true in NAD %s and let KubeVirt reference a claim (ipam-claim-reference)",
		network.ErrInvalidRequest, pod.Namespace, pod.Name, kube.VMOf(pod), others[0].Name, r.id.IfName, r.conf.NADName)
}

// podChanged hands a VM's traffic to this node's ports of pod once KubeVirt
// says the VM runs in it. Informer callbacks must return at once.
func (d *Daemon) podChanged(pod *corev1.Pod) {
	if !kube.VMRunsHere(pod) {
		return
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.handOver(ctx, pod.Namespace, pod.Name); err != nil {
			d.log.Error("live migration: hand-over to the target failed", "pod", pod.Namespace+"/"+pod.Name, "err", err)
		}
	}()
}

// handOverIfRunning catches the signal that came before the ADD finished:
// the informer will not repeat it. The hand-over takes the attachment's
// lock, so it runs once the ADD has returned.
func (d *Daemon) handOverIfRunning(r *request) {
	if pod, ok := d.kube.Pod(r.args.PodNamespace, r.args.PodName); ok {
		d.podChanged(pod)
	}
}

// handOver enables this node's ports of the pod that await a migration's
// hand-over, disabling their sources, and makes the pod its claims' owner.
func (d *Daemon) handOver(ctx context.Context, namespace, name string) error {
	waiting, err := d.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.Node] == d.cfg.NodeName && p.ExternalIDs[externalids.PodNamespace] == namespace &&
			p.ExternalIDs[externalids.PodName] == name && network.AwaitsHandOver(p)
	})
	if err != nil {
		return err
	}
	for i := range waiting {
		p := &waiting[i]
		id, ok := attachment.FromExternalIDs(p.ExternalIDs)
		if !ok {
			continue
		}
		if err := d.handOverPort(ctx, id, p); err != nil {
			return err
		}
	}
	return nil
}

// handOverPort does one port's hand-over under its attachment's lock (an
// ADD or DEL of it runs first).
func (d *Daemon) handOverPort(ctx context.Context, id attachment.ID, p *nbdb.LogicalSwitchPort) error {
	unlock := d.store.Lock(id)
	defer unlock()
	start := time.Now()
	if err := d.networks.Activate(ctx, p); err != nil {
		return err
	}
	d.log.Info("live migration: VM traffic handed to the target", "attachment", id, "port", p.Name,
		"source", p.ExternalIDs[externalids.MigrationSource], "took", time.Since(start))
	go d.announce(id, p)
	claim, ok := kube.ClaimFromID(p.ExternalIDs[externalids.IPAMClaim])
	if !ok {
		return nil
	}
	if err := d.kube.RecordClaim(ctx, claim, p.ExternalIDs[externalids.PodName], nil); err != nil {
		return fmt.Errorf("record the migrated VM's pod as the owner of IPAMClaim %s: %w", claim.ID(), err)
	}
	return nil
}

// announceAfter are when, after the hand-over, the daemon announces the
// VM's MAC from its new port. The hand-over is an NB transaction: the new
// port passes traffic only once northd and ovn-controller have caught up,
// some tens of milliseconds later, and an announcement before that is
// dropped. So: every 10 ms for the first 300 ms (a few dozen 60-byte
// frames), then on QEMU's slower schedule.
var announceAfter = func() []time.Duration {
	var out []time.Duration
	for at := time.Duration(0); at <= 300*time.Millisecond; at += 10 * time.Millisecond {
		out = append(out, at)
	}
	return append(out, 450*time.Millisecond, 800*time.Millisecond)
}()

// announce announces the VM's MAC and addresses from the target pod's interface, so
// that switches between nodes (a localnet network's physical network)
// learn where the VM is now without waiting for the VM to speak.
func (d *Daemon) announce(id attachment.ID, p *nbdb.LogicalSwitchPort) {
	mac, err := network.PortMAC(p)
	if err != nil {
		return
	}
	start := time.Now()
	for _, at := range announceAfter {
		time.Sleep(time.Until(start.Add(at)))
		addrs := network.PrefixAddrs(network.ParsePrefixList(p.ExternalIDs[externalids.Addresses]))
		if err := netns.Announce(p.ExternalIDs[externalids.Netns], id.IfName, mac, addrs); err != nil {
			d.log.Warn("live migration: cannot announce the VM's MAC", "attachment", id, "err", err)
			return
		}
	}
}
