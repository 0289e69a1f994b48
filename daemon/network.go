package daemon

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/daemon/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// network is the daemon's state for one secondary network: its logical
// switch and an index of the addresses its ports hold cluster-wide.
type network struct {
	name        string
	fingerprint string
	conf        *netconf.NetConf
	switchName  string
	// pool indexes addresses. Without subnets it has no ranges and only
	// guards static addresses against duplicates.
	pool *ipam.Pool
	// commit serialises this daemon's NB writes to the switch: allocation,
	// then the guarded transaction, then waiting for the cache to show it.
	commit sync.Mutex
}

// networks maps network names to their state, fed by NB cache events.
type networks struct {
	nb *ovn.Northbound
	mu sync.Mutex
	m  map[string]*network
}

func newNetworks(nb *ovn.Northbound) *networks {
	ns := &networks{nb: nb, m: map[string]*network{}}
	nb.AddPortHandler(ns.onPortAdd, ns.onPortDelete)
	return ns
}

func (ns *networks) lookup(name string) *network {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.m[name]
}

func (ns *networks) onPortAdd(lsp *nbdb.LogicalSwitchPort) {
	if n := ns.lookup(lsp.ExternalIDs[ovn.NetworkKey]); n != nil {
		n.pool.Observe(lsp.Name, portAddrs(lsp))
	}
}

func (ns *networks) onPortDelete(lsp *nbdb.LogicalSwitchPort) {
	if n := ns.lookup(lsp.ExternalIDs[ovn.NetworkKey]); n != nil {
		n.pool.Release(lsp.Name)
	}
}

// ErrConflictingConfig means the NB already holds this network with a
// different shape (subnets, topology, ...).
var ErrConflictingConfig = errors.New("conflicting network config")

// get returns the state of conf's network, creating its logical switch and
// loading its addresses from the NB cache on first use.
func (ns *networks) get(ctx context.Context, conf *netconf.NetConf) (*network, error) {
	fp := conf.Fingerprint()
	if n := ns.lookup(conf.Name); n != nil {
		if n.fingerprint != fp {
			return nil, conflictError(conf, n.conf)
		}
		return n, nil
	}
	ls, err := ns.nb.EnsureSwitch(ctx, switchName(conf.Name), map[string]string{
		ovn.NetworkKey:     conf.Name,
		ovn.TopologyKey:    string(conf.Topology),
		ovn.FingerprintKey: fp,
	})
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", conf.Name, err)
	}
	if ls.ExternalIDs[ovn.FingerprintKey] != fp {
		return nil, fmt.Errorf("network %q already exists in OVN with a different shape (topology, subnets, excludeSubnets, mtu, ...): %w; give this config another name or make it identical to the existing one", conf.Name, ErrConflictingConfig)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if n := ns.m[conf.Name]; n != nil {
		return n, nil
	}
	var subnets []netip.Prefix
	for _, s := range conf.Subnets {
		subnets = append(subnets, s.CIDR)
	}
	n := &network{
		name: conf.Name, fingerprint: fp, conf: conf,
		switchName: ls.Name,
		pool:       ipam.NewPool(subnets, conf.ExcludeSubnets),
	}
	// Registered before seeding: events from now on reach the pool, and
	// the seed below reads a cache at least as new as those events.
	ns.m[conf.Name] = n
	ports, err := ns.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[ovn.NetworkKey] == conf.Name
	})
	if err != nil {
		delete(ns.m, conf.Name)
		return nil, err
	}
	for i := range ports {
		n.pool.Observe(ports[i].Name, portAddrs(&ports[i]))
	}
	return n, nil
}

func conflictError(conf, existing *netconf.NetConf) error {
	return fmt.Errorf("network %q is already in use with a different config (NAD %q); this config (NAD %q) differs in topology, subnets, excludeSubnets, mtu, vlanID, physicalNetworkName or allowPersistentIPs: %w; make them identical or rename one network",
		conf.Name, existing.NADName, conf.NADName, ErrConflictingConfig)
}

// portRequest is what one new logical switch port needs.
type portRequest struct {
	name        string
	mac         net.HardwareAddr // nil: derive from the first address
	static      []netip.Prefix   // requested addresses; nil: allocate
	externalIDs map[string]string
}

// createPort allocates addresses for req and creates its logical switch
// port. The transaction is guarded by the switch's port set, so if another
// node created or removed a port since our cache was read (and so possibly
// took the same address) it fails and is retried on the refreshed cache.
func (n *network) createPort(ctx context.Context, nb *ovn.Northbound, req portRequest) (*nbdb.LogicalSwitchPort, []netip.Prefix, net.HardwareAddr, error) {
	n.commit.Lock()
	defer n.commit.Unlock()
	const attempts = 20
	for attempt := 1; ; attempt++ {
		ls, ok := nb.Switch(n.switchName)
		if !ok {
			return nil, nil, nil, fmt.Errorf("logical switch %s vanished from the NB", n.switchName)
		}
		addrs, err := n.reserve(req)
		if err != nil {
			return nil, nil, nil, err
		}
		mac := req.mac
		if mac == nil {
			mac = macFor(addrs)
		}
		lsp := buildPort(req, mac, addrs)
		changed := nb.SwitchChanged()
		uuids, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{lsp}, Guard: true})
		if err == nil {
			// Hold the lock until the cache shows the new port, so the
			// next writer's guard is built from an up-to-date port set.
			n.waitForPort(ctx, nb, uuids[0], changed)
			return lsp, addrs, mac, nil
		}
		n.pool.Release(req.name)
		if !errors.Is(err, ovn.ErrConflict) || attempt == attempts {
			return nil, nil, nil, fmt.Errorf("create logical switch port %s (attempt %d): %w", req.name, attempt, err)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, nil, nil, ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (n *network) waitForPort(ctx context.Context, nb *ovn.Northbound, uuid string, changed <-chan struct{}) {
	deadline := time.After(2 * time.Second)
	for {
		if ls, ok := nb.Switch(n.switchName); ok {
			for _, p := range ls.Ports {
				if p == uuid {
					return
				}
			}
		}
		select {
		case <-changed:
			changed = nb.SwitchChanged()
		case <-ctx.Done():
			return
		case <-deadline:
			return
		}
	}
}

// reserve takes req's static addresses, or allocates one per subnet.
func (n *network) reserve(req portRequest) ([]netip.Prefix, error) {
	if len(req.static) > 0 {
		static := n.widen(req.static)
		addrs := make([]netip.Addr, len(static))
		for i, p := range static {
			if len(n.conf.Subnets) > 0 && !n.pool.Allocatable(p.Addr()) {
				return nil, fmt.Errorf("requested address %s is outside network %q's subnets or inside excludeSubnets; pick an address from %s", p, n.name, subnetList(n.conf))
			}
			addrs[i] = p.Addr()
		}
		if err := n.pool.Reserve(req.name, addrs); err != nil {
			return nil, fmt.Errorf("requested address on network %q: %w", n.name, err)
		}
		return static, nil
	}
	if len(n.conf.Subnets) == 0 {
		return nil, nil // layer2 without subnets: MAC only
	}
	addrs, err := n.pool.Allocate(req.name)
	if err != nil {
		return nil, fmt.Errorf("network %q is out of addresses: %w; widen \"subnets\" or shrink \"excludeSubnets\"", n.name, err)
	}
	return addrs, nil
}

// widen gives a bare requested address (a host prefix) the prefix length
// of the subnet it falls in, so the pod gets the on-link route it expects.
func (n *network) widen(static []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(static))
	for i, p := range static {
		out[i] = p
		if p.Bits() != p.Addr().BitLen() {
			continue
		}
		for _, sn := range n.conf.Subnets {
			if sn.CIDR.Contains(p.Addr()) {
				out[i] = netip.PrefixFrom(p.Addr(), sn.CIDR.Bits())
			}
		}
	}
	return out
}

func subnetList(conf *netconf.NetConf) string {
	var s []string
	for _, sn := range conf.Subnets {
		s = append(s, sn.CIDR.String())
	}
	return strings.Join(s, ",")
}

// buildPort makes the logical switch port: addresses and port security both
// list the MAC and IPs, so the pod cannot spoof either.
func buildPort(req portRequest, mac net.HardwareAddr, addrs []netip.Prefix) *nbdb.LogicalSwitchPort {
	entry := mac.String()
	for _, a := range addrs {
		entry += " " + a.Addr().String()
	}
	ids := map[string]string{ovn.OwnerKey: ovn.OwnerValue}
	for k, v := range req.externalIDs {
		ids[k] = v
	}
	if len(addrs) > 0 {
		// The addresses column holds bare IPs; keep the prefix lengths
		// too, so CHECK can compare the pod's interface exactly.
		ids[addressesKey] = prefixList(addrs)
	}
	return &nbdb.LogicalSwitchPort{
		Name:         req.name,
		Addresses:    []string{entry},
		PortSecurity: []string{entry},
		ExternalIDs:  ids,
	}
}

// portAddrs parses the IPs out of a port's "MAC IP IP..." addresses.
func portAddrs(lsp *nbdb.LogicalSwitchPort) []netip.Addr {
	var out []netip.Addr
	for _, entry := range lsp.Addresses {
		fields := strings.Fields(entry)
		for _, f := range fields[min(1, len(fields)):] {
			if a, err := netip.ParseAddr(f); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// portMAC parses the MAC out of a port's addresses.
func portMAC(lsp *nbdb.LogicalSwitchPort) (net.HardwareAddr, error) {
	for _, entry := range lsp.Addresses {
		if fields := strings.Fields(entry); len(fields) > 0 {
			return net.ParseMAC(fields[0])
		}
	}
	return nil, fmt.Errorf("logical switch port %s has no MAC in addresses", lsp.Name)
}
