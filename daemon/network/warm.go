package network

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// Warm ports: each node keeps a few logical switch ports per network created
// ahead of any pod, addresses and all, so that an ADD only binds one (OVS
// port with its iface-id) and relabels it with the pod's identity.
//
// Why: ovn-northd recompiles on every NB change, and its cost grows with the
// whole NB (measured: 280 ms per new port with 2,000 ports in the NB, 20 ms
// with none). A warm port was compiled long before the pod arrived, so
// ovn-controller can install it at once. The relabelling transaction
// (external_ids and address sets only) comes after ovn-installed, and the
// refill after the ADD, so neither northd recompile they set off competes
// with the install. docs/performance.md has the measurements.
//
// Rules:
//   - only ADDs that let the daemon pick the addresses and MAC take a warm
//     port (no static IPs, no MAC, no IPAMClaim); the rest take the cold
//     path, as do ADDs that find the pool empty;
//   - warm ports hold addresses, so a node keeps them only while its network
//     has plenty left (see warmTarget) and gives them back when it runs
//     short;
//   - a warm port is this node's alone: the key WarmKey=true plus NodeKey.
//     Which ones are free is rebuilt at start from the NB cache, minus those
//     a local OVS interface is bound to (an ADD that died half-way; its
//     retry or DEL removes it).

// Thresholds for keeping warm ports, as multiples of the pool size: a
// layer2 network is shared with every node, so a node holds warm addresses
// only while the network has many to spare; a layer3 node subnet is the
// node's own, so warm ports are just its next pods' addresses.
const (
	warmSpareLayer2 = 16
	warmSpareLayer3 = 2
	warmRetry       = 5 * time.Second
	// warmArrival bounds how long a static request waits for a warm port
	// holding its address to arrive from the cache before giving up.
	warmArrival = 2 * time.Second
	warmRecheck = 30 * time.Second
)

// warmPool tracks one network's warm ports on this node.
type warmPool struct {
	network string
	size    int // configured target; the effective one is warmTarget's
	mu      sync.Mutex
	free    map[string]*nbdb.LogicalSwitchPort
	// taken were handed to an ADD (or are bound by a local OVS interface);
	// cache events must not make them free again.
	taken map[string]bool
	kick  chan struct{}
	// offered is closed and replaced whenever a port becomes free, for
	// takeNamedWait.
	offered chan struct{}
}

func newWarmPool(network string, size int) *warmPool {
	return &warmPool{network: network, size: size, free: map[string]*nbdb.LogicalSwitchPort{}, taken: map[string]bool{}, kick: make(chan struct{}, 1), offered: make(chan struct{})}
}

// changed publishes the free count; callers hold mu.
func (w *warmPool) changed() {
	metrics.WarmPortsFree.WithLabelValues(w.network).Set(float64(len(w.free)))
}

func IsWarm(lsp *nbdb.LogicalSwitchPort) bool { return lsp.ExternalIDs[externalids.Warm] == "true" }

// offer makes a warm port available, unless an ADD holds it.
func (w *warmPool) offer(lsp *nbdb.LogicalSwitchPort) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.taken[lsp.Name] {
		w.free[lsp.Name] = lsp
		close(w.offered)
		w.offered = make(chan struct{})
	}
	w.changed()
}

// forget drops a port that is gone or no longer warm.
func (w *warmPool) forget(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.free, name)
	w.changed()
}

// hold marks a port as not free (bound locally, found at start).
func (w *warmPool) hold(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.taken[name] = true
	delete(w.free, name)
	w.changed()
}

// take hands one free warm port to an ADD (which asks for the refill when
// it is done).
func (w *warmPool) take() (*nbdb.LogicalSwitchPort, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name, lsp := range w.free {
		delete(w.free, name)
		w.taken[name] = true
		w.changed()
		return lsp, true
	}
	return nil, false
}

// takeNamedWait is takeNamed for a port that may still be on its way: a
// refill's transaction has committed (its address is in the index) but
// the cache event that offers the port has not arrived. It gives up when
// an ADD holds the port, or after timeout.
func (w *warmPool) takeNamedWait(ctx context.Context, name string, timeout time.Duration) (*nbdb.LogicalSwitchPort, bool) {
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		w.mu.Lock()
		held, offered := w.taken[name], w.offered
		w.mu.Unlock()
		if held {
			return nil, false
		}
		if lsp, ok := w.takeNamed(name); ok {
			return lsp, true
		}
		select {
		case <-offered:
		case <-timer.C:
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
}

// takeNamed takes one particular free warm port.
func (w *warmPool) takeNamed(name string) (*nbdb.LogicalSwitchPort, bool) {
	w.mu.Lock()
	defer w.mu.Unlock()
	lsp, ok := w.free[name]
	if ok {
		delete(w.free, name)
		w.taken[name] = true
		w.changed()
		w.poke()
	}
	return lsp, ok
}

// drop forgets a port that was deleted. A port handed to an ADD stays in
// taken until then, so that a late cache event carrying its warm state
// (events run behind the transaction that relabelled it) cannot make it
// free again.
func (w *warmPool) drop(name string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.free, name)
	delete(w.taken, name)
	w.changed()
}

func (w *warmPool) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.free)
}

// poke wakes the refill loop without blocking.
func (w *warmPool) poke() {
	select {
	case w.kick <- struct{}{}:
	default:
	}
}

// warmPortPrefix starts the names of a network's pre-provisioned ports.
// The name stays when a pod takes the port; only external_ids change.
func warmPortPrefix(network string) string { return "ovn-overlay." + network + ".prov." }

// warmPortName is random: a warm port exists before the attachment whose
// identity names everything else.
func warmPortName(network, node string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return warmPortPrefix(network) + node + "." + hex.EncodeToString(b)
}

// warmTarget is how many warm ports the node should hold now: the
// configured size while the network has spare addresses, else none.
func (n *Network) warmTarget() int {
	if n.warm == nil {
		return 0
	}
	if !n.hasRanges() {
		return n.warm.size // MAC-only ports hold no addresses
	}
	spare := warmSpareLayer2
	if n.conf.Topology == netconf.Layer3 {
		spare = warmSpareLayer3
	}
	if n.pool.Free()+n.warm.count() < spare*n.warm.size {
		return 0
	}
	return n.warm.size
}

// startWarm starts a new network's warm-port refill, after holding back the
// warm ports a local OVS interface is already bound to: an ADD died
// between binding and relabelling, and its retry or DEL removes them.
func (ns *Registry) startWarm(n *Network) {
	if n.warm == nil {
		return
	}
	if ns.opts.BoundPorts != nil {
		for _, id := range ns.opts.BoundPorts() {
			if strings.HasPrefix(id, warmPortPrefix(n.name)) {
				n.warm.hold(id)
			}
		}
	}
	go ns.warmLoop(n)
}

// warmLoop keeps the network's warm pool at its target: it creates missing
// ports through the committer (so they share transactions with ADDs) and
// deletes surplus ones when addresses run short. It runs until stop.
func (ns *Registry) warmLoop(n *Network) {
	// The first refill waits for the first ADD's port (or the recheck):
	// warm ports taking addresses while that ADD is in flight could take
	// the very address it asks for.
	timer := time.NewTimer(warmRecheck)
	defer timer.Stop()
	for {
		select {
		case <-n.warm.kick:
		case <-timer.C:
		case <-ns.stop:
			return
		case <-n.stop:
			return
		}
		next := warmRecheck
		if err := ns.refillWarm(n); err != nil {
			n.log.Warn("warm ports: refill failed; ADDs take the cold path meanwhile", "err", err)
			next = warmRetry
		}
		timer.Reset(next)
	}
}

func (ns *Registry) refillWarm(n *Network) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	have, want := n.warm.count(), n.warmTarget()
	for ; have > want; have-- {
		lsp, ok := n.warm.take()
		if !ok {
			break
		}
		if err := ns.DeletePort(ctx, lsp); err != nil {
			return err
		}
	}
	if have >= want {
		return nil
	}
	results := make(chan PortResult, want-have)
	for i := have; i < want; i++ {
		go func() {
			results <- n.CreatePort(ctx, PortRequest{Name: warmPortName(n.name, ns.node), ExternalIDs: map[string]string{
				externalids.Network: n.name, externalids.Topology: string(n.conf.Topology), externalids.Node: ns.node, externalids.Warm: "true",
			}})
		}()
	}
	var firstErr error
	for i := have; i < want; i++ {
		r := <-results
		if r.Err != nil {
			firstErr = r.Err
			continue
		}
		n.warm.offer(r.LSP)
	}
	return firstErr
}

// ReclaimWarm deletes this node's free warm ports that hold any of addrs,
// so that a pod asking for those addresses gets them.
func (ns *Registry) ReclaimWarm(ctx context.Context, n *Network, addrs []netip.Prefix) error {
	if n.warm == nil {
		return nil
	}
	for _, p := range addrs {
		owner, ok := n.pool.Owner(p.Addr())
		if !ok || !strings.HasPrefix(owner, warmPortPrefix(n.name)+ns.node+".") {
			continue
		}
		// The port may be a refill committed a moment ago whose cache
		// event is still on its way (seen in CI: a static request on a
		// network whose first ADD had just set off the refill).
		lsp, ok := n.warm.takeNamedWait(ctx, owner, warmArrival)
		if !ok {
			continue
		}
		if err := ns.DeletePort(ctx, lsp); err != nil {
			return fmt.Errorf("free %s from warm port %s: %w", p.Addr(), owner, err)
		}
	}
	return nil
}

// WarmResult is what an ADD taking warm port lsp configures the pod with.
func WarmResult(lsp *nbdb.LogicalSwitchPort) PortResult {
	mac, err := PortMAC(lsp)
	return PortResult{LSP: lsp, Addrs: ParsePrefixList(lsp.ExternalIDs[externalids.Addresses]), MAC: mac, Err: err}
}

// adoptedPort is the relabelled copy of warm port lsp for req: the pod's
// identity in external_ids, no warm mark, addresses unchanged.
func adoptedPort(lsp *nbdb.LogicalSwitchPort, req PortRequest) *nbdb.LogicalSwitchPort {
	out := *lsp
	out.ExternalIDs = maps.Clone(lsp.ExternalIDs)
	delete(out.ExternalIDs, externalids.Warm)
	for k, v := range req.ExternalIDs {
		out.ExternalIDs[k] = v
	}
	return &out
}
