package network

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// Concurrent ADDs on one network are coalesced ("group commit"): the
// committer takes every request queued while the previous transaction was
// in flight and writes them in one transaction. A lone pod is never
// delayed: with nothing queued, its batch is itself.
const (
	maxBatch       = 128
	commitAttempts = 20
	commitTimeout  = 30 * time.Second
)

type portJob struct {
	req PortRequest
	// adopt is a warm port to hand to req's pod instead of a new port.
	adopt  *nbdb.LogicalSwitchPort
	result chan PortResult
}

// CreatePort queues req for the network's committer and waits for its
// logical switch port to be committed (or refused).
func (n *Network) CreatePort(ctx context.Context, req PortRequest) PortResult {
	return n.submit(ctx, n.jobs, &portJob{req: req, result: make(chan PortResult, 1)})
}

// AdoptPort queues the relabelling of warm port lsp for req's pod (and its
// address-set entries) and waits for it to be committed.
//
// Relabels have their own committer: they need no address allocation and
// no port-set guard, so they never wait behind a batch of new ports (a warm
// refill, or cold ADDs on a network with thousands of ports).
func (n *Network) AdoptPort(ctx context.Context, lsp *nbdb.LogicalSwitchPort, req PortRequest) PortResult {
	return n.submit(ctx, n.relabels, &portJob{req: req, adopt: lsp, result: make(chan PortResult, 1)})
}

func (n *Network) submit(ctx context.Context, queue chan *portJob, job *portJob) PortResult {
	select {
	case queue <- job:
	case <-ctx.Done():
		return PortResult{Err: ctx.Err()}
	case <-n.stop:
		return PortResult{Err: ErrRetired}
	}
	// Wait even if ctx ends: the port may be committed, and the caller
	// must know to undo it.
	select {
	case r := <-job.result:
		return r
	case <-n.stop:
		select {
		case r := <-job.result:
			return r
		default:
			return PortResult{Err: ErrRetired}
		}
	}
}

func (n *Network) commitLoop(nb *ovn.Northbound, queue chan *portJob) {
	for {
		var job *portJob
		select {
		case job = <-queue:
		case <-n.stop:
			return
		}
		batch := []*portJob{job}
	drain:
		for len(batch) < maxBatch {
			select {
			case j := <-queue:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		n.commitBatch(nb, batch)
	}
}

// commitBatch allocates addresses for a batch and creates its ports, address
// set entries included, in one transaction. On layer2 the transaction is
// guarded by the switch's port set; if another node changed it, the batch's
// addresses are released and the batch is retried on the refreshed cache.
func (n *Network) commitBatch(nb *ovn.Northbound, batch []*portJob) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		// Taken before the read: a change landing after the read but
		// before the wait must still wake us.
		changed := nb.Changed()
		ls, ok := nb.Switch(n.switchName)
		if !ok {
			finishAll(batch, fmt.Errorf("logical switch %s vanished from the NB", n.switchName))
			return
		}
		// Relabels take no addresses; the relabel committer (the only
		// other one) never touches the foreign set.
		if creates(batch) {
			if err := n.syncIndex(ctx, nb, ls); err != nil {
				finishAll(batch, err)
				return
			}
		}
		ready, results := n.prepare(nb, batch)
		if len(ready) == 0 {
			return
		}
		uuids, err := n.apply(ctx, nb, ls, ready, results, attempt)
		if err == nil {
			if n.guarded && len(uuids) > 0 {
				// Hold the committer until the cache shows the new
				// ports, so the next guard is built from an
				// up-to-date port set.
				waitForPort(ctx, nb, n.switchName, uuids[len(uuids)-1], changed)
			}
			for i, j := range ready {
				j.result <- results[i]
			}
			return
		}
		for _, j := range ready {
			if j.adopt == nil {
				n.releasePort(j.req.Name)
			}
		}
		// Conflicts, and a lost connection (the server restarting, a
		// leader change), are retried on a fresh cache; prepare
		// recognises ports an attempt whose reply was lost committed.
		retryable := errors.Is(err, ovn.ErrConflict) || errors.Is(err, ovn.ErrUnavailable)
		if !retryable && len(ready) > 1 {
			// One bad request (a port name someone else's row holds,
			// say) must not fail its batch-mates: commit each alone.
			for _, j := range ready {
				n.commitBatch(nb, []*portJob{j})
			}
			return
		}
		if !retryable || attempt == commitAttempts {
			finishAll(ready, fmt.Errorf("create %d logical switch port(s) on %s (attempt %d): %w", len(ready), n.switchName, attempt, err))
			return
		}
		batch = ready
		select {
		case <-changed:
		case <-ctx.Done():
			finishAll(ready, ctx.Err())
			return
		case <-time.After(time.Second):
		}
	}
}

// prepare builds each job's port: a relabelled warm port, or a new one with
// addresses from the index (synced with the snapshot by syncIndex). Jobs
// that cannot be served are answered at once and left out.
func (n *Network) prepare(nb *ovn.Northbound, batch []*portJob) ([]*portJob, []PortResult) {
	start := time.Now()
	var ready []*portJob
	var results []PortResult
	for _, j := range batch {
		var r PortResult
		if lsp, ok := committedEarlier(nb, j); ok {
			j.result <- WarmResult(lsp)
			continue
		}
		if j.adopt != nil {
			r = WarmResult(adoptedPort(j.adopt, j.req))
		} else if addrs, err := n.reserve(j.req); err != nil {
			r = PortResult{Err: err}
		} else if mac, err := n.reserveMAC(j.req, addrs); err != nil {
			n.releasePort(j.req.Name)
			r = PortResult{Err: err}
		} else {
			r = PortResult{LSP: n.buildPort(j.req, mac, addrs), Addrs: addrs, MAC: mac}
		}
		if r.Err != nil {
			j.result <- r
			continue
		}
		ready = append(ready, j)
		results = append(results, r)
	}
	metrics.IPAMDuration.Observe(time.Since(start).Seconds())
	return ready, results
}

// apply commits the prepared ports and their address-set entries in one
// transaction, guarded on layer2 when it creates ports. Relabels alone need
// no guard: they neither take addresses nor change the switch's port set.
func (n *Network) apply(ctx context.Context, nb *ovn.Northbound, ls *nbdb.LogicalSwitch, ready []*portJob, results []PortResult, attempt int) ([]string, error) {
	change := ovn.PortChange{Switch: ls}
	var sets addressSetEdits
	for i, r := range results {
		if ready[i].adopt != nil {
			change.Relabel = append(change.Relabel, r.LSP)
		} else {
			change.Add = append(change.Add, r.LSP)
		}
		sets.add(n.name, ready[i].req.Namespace, r.Addrs)
	}
	change.Guard = n.guarded && len(change.Add) > 0
	change.AddressSets = sets.changes()
	begin := time.Now()
	uuids, err := nb.ApplyPorts(ctx, change)
	// One line per NB port transaction: batch sizes, conflicts and their
	// cost are what to look at when a burst is slow.
	n.log.Debug("nb port transaction", "ports", len(ready), "attempt", attempt, "took", time.Since(begin), "err", err)
	metrics.NBTransactionDuration.Observe(time.Since(begin).Seconds())
	switch {
	case err == nil:
		metrics.NBTransactions.WithLabelValues("ok").Inc()
		metrics.NBBatchSize.Observe(float64(len(ready)))
	case errors.Is(err, ovn.ErrConflict):
		metrics.NBTransactions.WithLabelValues("conflict").Inc()
	default:
		metrics.NBTransactions.WithLabelValues("error").Inc()
	}
	return uuids, err
}

// syncIndex brings the address and MAC indexes in step with the switch
// snapshot a batch is built from, in one pass over its ports:
//   - on a guarded (layer2) switch, our ports are observed from the
//     snapshot the guard will assert. The indexes are otherwise fed by
//     cache events, which run a moment behind the cache: without this, a
//     port another node just committed could be in the snapshot (so the
//     guard passes) while its address is not yet indexed (so it is handed
//     out again);
//   - ports that are not ours (an admin's lsp-add; the cache holds owned
//     rows only) count too, whoever's port holds an address: each is read
//     from the server once, and released when it leaves the switch.
func (n *Network) syncIndex(ctx context.Context, nb *ovn.Northbound, ls *nbdb.LogicalSwitch) error {
	on := make(map[string]bool, len(ls.Ports))
	var unknown []string
	for _, uuid := range ls.Ports {
		on[uuid] = true
		lsp, ok := nb.PortByUUID(uuid)
		switch {
		case ok && n.guarded:
			n.observePort(lsp.Name, lsp)
		case !ok && !n.foreign[uuid]:
			unknown = append(unknown, uuid)
		}
	}
	for uuid := range n.foreign {
		if !on[uuid] {
			n.releasePort(foreignKey(uuid))
			delete(n.foreign, uuid)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	ports, err := nb.ForeignPorts(ctx, unknown)
	if err != nil {
		return err
	}
	for i := range ports {
		n.foreign[ports[i].UUID] = true
		n.observePort(foreignKey(ports[i].UUID), &ports[i])
	}
	return nil
}

// committedEarlier finds the port of a create job that an earlier attempt
// of its batch committed although its reply was lost (the connection
// dropped after the commit): inserting it again would fail on its name.
// Only a port with the job's name and its identity counts, and for a
// static request only with the requested addresses.
func committedEarlier(nb *ovn.Northbound, j *portJob) (*nbdb.LogicalSwitchPort, bool) {
	if j.adopt != nil || j.req.ExternalIDs[externalids.ContainerID] == "" {
		return nil, false
	}
	lsp, ok := nb.Port(j.req.Name)
	if !ok {
		return nil, false
	}
	for _, k := range []string{externalids.Network, externalids.Node, externalids.ContainerID, externalids.IfName} {
		if lsp.ExternalIDs[k] != j.req.ExternalIDs[k] {
			return nil, false
		}
	}
	if len(j.req.Static) > 0 && !slices.Equal(PrefixAddrs(ParsePrefixList(lsp.ExternalIDs[externalids.Addresses])), PrefixAddrs(j.req.Static)) {
		return nil, false
	}
	return lsp, true
}

// reserveMAC takes the request's MAC, or the one derived from its
// addresses, unless another port on the switch has it. A derived MAC that
// collides (possible only for IPv6-only addresses, whose last four bytes
// it copies) is replaced by a random one; a requested one is refused.
func (n *Network) reserveMAC(req PortRequest, addrs []netip.Prefix) (net.HardwareAddr, error) {
	if req.MAC != nil {
		if err := n.macs.reserve(req.Name, req.MigrateFrom, req.MAC); err != nil {
			return nil, fmt.Errorf("%w: requested MAC on network %q: %w; pick another MAC", ErrInvalidRequest, n.name, err)
		}
		return req.MAC, nil
	}
	mac := macFor(addrs)
	for n.macs.reserve(req.Name, "", mac) != nil {
		mac = macFor(nil)
	}
	return mac, nil
}

func foreignKey(uuid string) string { return "foreign/" + uuid }

// creates reports whether a batch creates ports (not only relabels).
func creates(batch []*portJob) bool {
	return slices.ContainsFunc(batch, func(j *portJob) bool { return j.adopt == nil })
}

func finishAll(batch []*portJob, err error) {
	for _, j := range batch {
		j.result <- PortResult{Err: err}
	}
}

func waitForPort(ctx context.Context, nb *ovn.Northbound, switchName, uuid string, changed <-chan struct{}) {
	deadline := time.After(2 * time.Second)
	for {
		if ls, ok := nb.Switch(switchName); ok {
			for _, p := range ls.Ports {
				if p == uuid {
					return
				}
			}
		}
		select {
		case <-changed:
			changed = nb.Changed()
		case <-ctx.Done():
			return
		case <-deadline:
			return
		}
	}
}

// portAddressSetEdits are the address-set removals for deleting lsp, less
// the addresses another port keeps (keep).
func portAddressSetEdits(lsp *nbdb.LogicalSwitchPort, keep map[netip.Addr]bool) []ovn.AddressSetChange {
	var gone []netip.Addr
	for _, a := range PortAddrs(lsp) {
		if !keep[a] {
			gone = append(gone, a)
		}
	}
	var sets addressSetEdits
	sets.remove(lsp.ExternalIDs[externalids.Network], lsp.ExternalIDs[externalids.PodNamespace], gone)
	return sets.changes()
}
