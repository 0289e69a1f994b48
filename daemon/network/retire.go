package network

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// ErrRetired answers a request that reached a network while this node was
// retiring it: transient, the retry finds (or recreates) the network.
var ErrRetired = errors.New("network was just retired on this node; try again")

// Networks come and go with NADs, and each costs rows: a switch (layer3: a
// router, a node switch and a subnet claim per node) and warm ports per
// node, each holding an address. The janitor gives back this node's share
// of every network it has not used for Options.Idle, and the last node out
// removes the shared rows. Everything it removes is guarded by
// preconditions (ovn/retire.go): a node attaching a pod at that moment
// makes the removal fail, and the network stays.

// StartJanitor starts retiring idle networks (if Options.Idle is set),
// until the registry stops. Call it once the InUse hook can answer.
func (ns *Registry) StartJanitor() {
	if ns.opts.Idle <= 0 || ns.opts.InUse == nil {
		return
	}
	go ns.janitor()
}

func (ns *Registry) janitor() {
	tick := time.NewTicker(max(ns.opts.Idle/4, 250*time.Millisecond))
	defer tick.Stop()
	idleSince := map[string]time.Time{}
	for {
		select {
		case <-tick.C:
		case <-ns.stop:
			return
		}
		now := time.Now()
		for _, name := range ns.candidates() {
			if ns.opts.InUse(name) || ns.usedSince(name, now.Add(-ns.opts.Idle)) {
				delete(idleSince, name)
				continue
			}
			since, ok := idleSince[name]
			if !ok {
				idleSince[name] = now
				continue
			}
			if now.Sub(since) < ns.opts.Idle {
				continue
			}
			if err := ns.retire(name); err != nil {
				ns.log.Warn("retiring an unused network failed; trying again later", "network", name, "err", err)
				continue
			}
			delete(idleSince, name)
		}
	}
}

// candidates are the networks this node uses or holds rows of (after a
// restart the registry is empty, but the node's warm ports and claims are
// still in the NB).
func (ns *Registry) candidates() []string {
	names := append(ns.nb.NodeNetworks(ns.node), ns.nb.EmptyNetworks()...)
	ns.mu.Lock()
	for name := range ns.m {
		names = append(names, name)
	}
	ns.mu.Unlock()
	slices.Sort(names)
	return slices.Compact(names)
}

func (ns *Registry) usedSince(name string, t time.Time) bool {
	n := ns.Lookup(name)
	return n != nil && n.lastUsed.Load() > t.UnixNano()
}

// retire drops the network from the registry (a later ADD sets it up
// again), gives back this node's share, and removes the network if no
// node uses it any more.
func (ns *Registry) retire(name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	ns.mu.Lock()
	n := ns.m[name]
	delete(ns.m, name)
	ns.mu.Unlock()
	if n != nil {
		close(n.stop)
	}
	metrics.WarmPortsFree.DeleteLabelValues(name)
	share, err := ns.share(name)
	if err != nil {
		return err
	}
	changed := ns.nb.Changed()
	if share != nil {
		if err := ns.nb.ReleaseNodeShare(ctx, *share); err != nil {
			return err
		}
		ns.log.Info("gave back this node's share of an unused network", "network", name, "warmPorts", len(share.Warm), "claim", share.Router != nil)
		// Let the cache catch up before judging what is left.
		select {
		case <-changed:
		case <-time.After(2 * time.Second):
		}
	}
	ls, _ := ns.sharedSwitch(name)
	lr, _ := ns.nb.Router(routerName(name))
	deleted, err := ns.nb.DeleteNetworkIfUnused(ctx, name, ls, lr)
	if errors.Is(err, ovn.ErrConflict) {
		return nil // someone is using it again: it stays
	}
	if deleted {
		ns.log.Info("removed a network no node uses", "network", name)
	}
	return err
}

// share is what this node holds of network name, or nil.
func (ns *Registry) share(name string) (*ovn.NodeShare, error) {
	warm, err := ns.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.Network] == name && p.ExternalIDs[externalids.Node] == ns.node && IsWarm(p)
	})
	if err != nil {
		return nil, err
	}
	s := &ovn.NodeShare{Network: name, Node: ns.node}
	for i := range warm {
		s.Warm = append(s.Warm, &warm[i])
	}
	// A layer2 network with external connectivity has a router too, but
	// its share is warm ports on the shared switch, as without one.
	if ls, ok := ns.sharedSwitch(name); ok {
		if len(s.Warm) == 0 {
			return nil, nil
		}
		s.Switch = ls
		return s, nil
	}
	if lr, ok := ns.nb.Router(routerName(name)); ok {
		if _, claimed := ovn.NodeClaims(lr)[ns.node]; !claimed {
			return nil, nil
		}
		ls, ok := ns.nb.Switch(layer3SwitchName(name, ns.node))
		if !ok {
			return nil, fmt.Errorf("network %s: this node's claim has no switch %s", name, layer3SwitchName(name, ns.node))
		}
		if err := ns.onlyLinkAndWarm(ls, s.Warm); err != nil {
			return nil, err
		}
		s.Switch, s.Router = ls, lr
		return s, nil
	}
	return nil, nil
}

// sharedSwitch is the cluster-wide switch of a layer2 or localnet network.
// After a restart the registry does not know which topology a network
// had: its switch name says.
func (ns *Registry) sharedSwitch(name string) (*nbdb.LogicalSwitch, bool) {
	if ls, ok := ns.nb.Switch(layer2SwitchName(name)); ok {
		return ls, true
	}
	return ns.nb.Switch(localnetSwitchName(name))
}

// onlyLinkAndWarm checks that a layer3 node switch holds nothing but its
// router link and the node's warm ports: a pod port still there means the
// network is in use after all.
func (ns *Registry) onlyLinkAndWarm(ls *nbdb.LogicalSwitch, warm []*nbdb.LogicalSwitchPort) error {
	for _, uuid := range ls.Ports {
		lsp, ok := ns.nb.PortByUUID(uuid)
		if !ok {
			return fmt.Errorf("switch %s holds a port that is not ours; leaving the network", ls.Name)
		}
		if lsp.Type != "router" && !slices.ContainsFunc(warm, func(w *nbdb.LogicalSwitchPort) bool { return w.UUID == uuid }) {
			return fmt.Errorf("switch %s still holds port %s; leaving the network", ls.Name, lsp.Name)
		}
	}
	return nil
}
