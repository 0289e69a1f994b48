package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// network is the daemon's state for one secondary network on this node:
// the logical switch its pods attach to and an index of the addresses in
// use there.
type network struct {
	name        string
	fingerprint string
	conf        *netconf.NetConf
	// switchName is where this node's pods go: the cluster-wide switch
	// (layer2) or this node's switch (layer3).
	switchName string
	// guarded: other nodes allocate on the same switch, so port
	// transactions carry the port-set guard (layer2).
	guarded bool
	// Layer3 only: this node's subnets, their gateways (the router port's
	// addresses) and the pod routes to the whole network through them.
	nodeSubnets []netip.Prefix
	gateways    []netip.Addr
	routes      []netns.Route
	// pool indexes addresses. Without subnets it has no ranges and only
	// guards requested static addresses against duplicates.
	pool *ipam.Pool
	nb   *ovn.Northbound
	// jobs feeds the network's committer, which turns concurrent ADDs into
	// shared NB transactions.
	jobs chan *portJob
	// relabels feeds the committer of warm ports handed to pods.
	relabels chan *portJob
	// warm holds this node's pre-provisioned ports (warm.go); nil when
	// the daemon runs without them.
	warm *warmPool
	log  *slog.Logger
}

// networks maps network names to their state, fed by NB cache events.
type networks struct {
	nb   *ovn.Northbound
	node string
	log  *slog.Logger
	// claims lists a network's persistent-IP claims (IPAMClaims) by key;
	// nil without Kubernetes.
	claims func(network string) map[string][]netip.Addr
	// warmSize is the number of warm ports per network (0: none);
	// onNew starts a new network's background work.
	warmSize int
	onNew    func(*network)
	mu       sync.Mutex
	m        map[string]*network
	// byIdentity finds an attachment's logical switch port from its CNI
	// identity when the port's name is not derived from it (a warm port
	// handed to a pod).
	byIdentity map[string]string
}

func identityKeyOf(lsp *nbdb.LogicalSwitchPort) string {
	ids := lsp.ExternalIDs
	return identityKey(ids[externalids.Network], ids[externalids.ContainerID], ids[externalids.IfName])
}

func identityKey(network, containerID, ifName string) string {
	return network + "\x00" + containerID + "\x00" + ifName
}

// portOf returns the name of the attachment's port, if the cache knows it.
func (ns *networks) portOf(network, containerID, ifName string) (string, bool) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	name, ok := ns.byIdentity[identityKey(network, containerID, ifName)]
	return name, ok
}

// index records which port serves an attachment, ahead of the cache event.
func (ns *networks) index(lsp *nbdb.LogicalSwitchPort) {
	if lsp.ExternalIDs[externalids.ContainerID] == "" {
		return
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.byIdentity[identityKeyOf(lsp)] = lsp.Name
}

func (ns *networks) unindex(lsp *nbdb.LogicalSwitchPort) {
	key := identityKeyOf(lsp)
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if ns.byIdentity[key] == lsp.Name {
		delete(ns.byIdentity, key)
	}
}

func newNetworks(nb *ovn.Northbound, node string, log *slog.Logger) *networks {
	ns := &networks{nb: nb, node: node, log: log, m: map[string]*network{}, byIdentity: map[string]string{}}
	nb.AddPortHandler(ns)
	return ns
}

func (ns *networks) lookup(name string) *network {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.m[name]
}

// PortAdded indexes a new port: its attachment, its addresses, and if it is
// one of this node's warm ports, the warm pool.
func (ns *networks) PortAdded(lsp *nbdb.LogicalSwitchPort) {
	ns.index(lsp)
	if n := ns.lookup(lsp.ExternalIDs[externalids.Network]); n != nil {
		n.pool.Observe(lsp.Name, portAddrs(lsp))
		ns.offerWarm(n, lsp)
	}
}

// PortUpdated follows a change in place: nothing is released and taken
// back, so no reader ever sees the port's addresses free.
func (ns *networks) PortUpdated(old, lsp *nbdb.LogicalSwitchPort) {
	if identityKeyOf(old) != identityKeyOf(lsp) {
		ns.unindex(old)
	}
	ns.index(lsp)
	n := ns.lookup(lsp.ExternalIDs[externalids.Network])
	if n == nil {
		return
	}
	if !slices.Equal(portAddrs(old), portAddrs(lsp)) {
		n.pool.Release(lsp.Name)
		n.pool.Observe(lsp.Name, portAddrs(lsp))
	}
	if n.warm != nil && !isWarm(lsp) {
		n.warm.forget(lsp.Name)
	}
	ns.offerWarm(n, lsp)
}

func (ns *networks) PortDeleted(lsp *nbdb.LogicalSwitchPort) {
	ns.unindex(lsp)
	if n := ns.lookup(lsp.ExternalIDs[externalids.Network]); n != nil {
		n.pool.Release(lsp.Name)
		if n.warm != nil {
			n.warm.drop(lsp.Name)
		}
	}
}

// offerWarm adds lsp to n's warm pool if it is one of this node's warm
// ports. Events run behind the cache: offer only what the cache still
// shows as warm.
func (ns *networks) offerWarm(n *network, lsp *nbdb.LogicalSwitchPort) {
	if n.warm == nil || !isWarm(lsp) || lsp.ExternalIDs[externalids.Node] != ns.node {
		return
	}
	if cur, ok := ns.nb.Port(lsp.Name); ok && isWarm(cur) {
		n.warm.offer(cur)
	}
}

// onClaim keeps the address index in step with a persistent-IP claim:
// its addresses stay reserved until the claim is deleted (ips nil).
func (ns *networks) onClaim(network, key string, ips []netip.Addr) {
	n := ns.lookup(network)
	if n == nil {
		return // pinned when the network is first used here
	}
	if ips == nil {
		n.pool.Unpin(key)
		return
	}
	n.pool.Pin(key, ips)
}

// ErrConflictingConfig means the NB already holds this network with a
// different shape (subnets, topology, ...).
var ErrConflictingConfig = errors.New("conflicting network config")

// get returns the state of conf's network, creating its OVN topology (and
// for layer3 claiming this node's subnets) on first use.
func (ns *networks) get(ctx context.Context, conf *netconf.NetConf) (*network, error) {
	fp := conf.Fingerprint()
	if n := ns.lookup(conf.Name); n != nil {
		if n.fingerprint != fp {
			return nil, conflictError(conf, n.conf)
		}
		return n, nil
	}
	n := &network{name: conf.Name, fingerprint: fp, conf: conf, nb: ns.nb, jobs: make(chan *portJob, 1024), relabels: make(chan *portJob, 1024), log: ns.log.With("network", conf.Name)}
	if ns.warmSize > 0 {
		n.warm = newWarmPool(conf.Name, ns.warmSize)
	}
	var err error
	switch conf.Topology {
	case netconf.Layer2:
		err = ns.setUpLayer2(ctx, n)
	case netconf.Layer3:
		err = ns.setUpLayer3(ctx, n)
	default:
		err = fmt.Errorf("topology %q: %w", conf.Topology, ErrNotSupported)
	}
	if err != nil {
		return nil, fmt.Errorf("network %s: %w", conf.Name, err)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	if existing := ns.m[conf.Name]; existing != nil {
		return existing, nil
	}
	// Registered before seeding: events from now on reach the pool, and
	// the seed below reads a cache at least as new as those events.
	ns.m[conf.Name] = n
	ports, err := ns.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.Network] == conf.Name
	})
	if err != nil {
		delete(ns.m, conf.Name)
		return nil, err
	}
	for i := range ports {
		n.pool.Observe(ports[i].Name, portAddrs(&ports[i]))
		ns.offerWarm(n, &ports[i])
	}
	if ns.claims != nil {
		for key, addrs := range ns.claims(conf.Name) {
			n.pool.Pin(key, addrs)
		}
	}
	go n.commitLoop(ns.nb, n.jobs)
	go n.commitLoop(ns.nb, n.relabels)
	if ns.onNew != nil {
		ns.onNew(n)
	}
	return n, nil
}

func shapeIDs(conf *netconf.NetConf) map[string]string {
	return map[string]string{
		externalids.Network:     conf.Name,
		externalids.Topology:    string(conf.Topology),
		externalids.Fingerprint: conf.Fingerprint(),
	}
}

func differentShape(name string) error {
	return fmt.Errorf("network %q already exists in OVN with a different shape (topology, subnets, excludeSubnets, mtu, ...): %w; give this config another name or make it identical to the existing one", name, ErrConflictingConfig)
}

func (ns *networks) setUpLayer2(ctx context.Context, n *network) error {
	ls, err := ns.nb.EnsureSwitch(ctx, layer2SwitchName(n.name), shapeIDs(n.conf))
	if err != nil {
		return err
	}
	if ls.ExternalIDs[externalids.Fingerprint] != n.fingerprint {
		return differentShape(n.name)
	}
	n.switchName, n.guarded = ls.Name, true
	var subnets []netip.Prefix
	for _, s := range n.conf.Subnets {
		subnets = append(subnets, s.CIDR)
	}
	n.pool = ipam.NewPool(subnets, n.conf.ExcludeSubnets)
	return nil
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
	namespace   string           // pod namespace, for address sets
	claim       string           // key of the persistent-IP claim whose addresses static may use
	externalIDs map[string]string
}

// portResult is what the committer hands back.
type portResult struct {
	lsp   *nbdb.LogicalSwitchPort
	addrs []netip.Prefix
	mac   net.HardwareAddr
	err   error
}

// reserve takes req's static addresses, or allocates one per subnet.
func (n *network) reserve(req portRequest) ([]netip.Prefix, error) {
	if len(req.static) > 0 {
		static := n.widen(req.static)
		addrs := make([]netip.Addr, len(static))
		for i, p := range static {
			if n.hasRanges() && !n.pool.Allocatable(p.Addr()) {
				return nil, fmt.Errorf("requested address %s is outside network %q's subnets on this node or inside excludeSubnets; pick an address from %s", p, n.name, n.rangeList())
			}
			addrs[i] = p.Addr()
		}
		if err := n.pool.Reserve(req.name, req.claim, addrs); err != nil {
			if n.heldByWarmPort(addrs) {
				return nil, fmt.Errorf("requested address on network %q: %w; that is a pre-provisioned (warm) port of another node, kept for its next pod: pick another address, or run the daemons with --warm-ports=0 on networks where pods choose their addresses", n.name, err)
			}
			return nil, fmt.Errorf("requested address on network %q: %w", n.name, err)
		}
		return static, nil
	}
	if !n.hasRanges() {
		return nil, nil // layer2 without subnets: MAC only
	}
	addrs, err := n.pool.Allocate(req.name)
	if err != nil {
		return nil, fmt.Errorf("network %q is out of addresses: %w; widen \"subnets\" or shrink \"excludeSubnets\"", n.name, err)
	}
	return addrs, nil
}

// heldByWarmPort reports whether any of addrs belongs to a warm port (of
// any node), to explain a refused static address.
func (n *network) heldByWarmPort(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if owner, ok := n.pool.Owner(a); ok {
			if lsp, ok := n.nb.Port(owner); ok && isWarm(lsp) {
				return true
			}
		}
	}
	return false
}

// ranges are the prefixes pods of this node get addresses from.
func (n *network) ranges() []netip.Prefix {
	if n.conf.Topology == netconf.Layer3 {
		return n.nodeSubnets
	}
	var out []netip.Prefix
	for _, s := range n.conf.Subnets {
		out = append(out, s.CIDR)
	}
	return out
}

func (n *network) hasRanges() bool { return len(n.ranges()) > 0 }

func (n *network) rangeList() string {
	var s []string
	for _, p := range n.ranges() {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// widen gives a bare requested address (a host prefix) the prefix length
// of the range it falls in, so the pod gets the on-link route it expects.
func (n *network) widen(static []netip.Prefix) []netip.Prefix {
	out := make([]netip.Prefix, len(static))
	for i, p := range static {
		out[i] = p
		if p.Bits() != p.Addr().BitLen() {
			continue
		}
		for _, r := range n.ranges() {
			if r.Contains(p.Addr()) {
				out[i] = netip.PrefixFrom(p.Addr(), r.Bits())
			}
		}
	}
	return out
}

// buildPort makes the logical switch port: addresses and port security both
// list the MAC and IPs, so the pod cannot spoof either.
func (n *network) buildPort(req portRequest, mac net.HardwareAddr, addrs []netip.Prefix) *nbdb.LogicalSwitchPort {
	entry := mac.String()
	for _, a := range addrs {
		entry += " " + a.Addr().String()
	}
	ids := map[string]string{externalids.Owner: externalids.OwnerValue, externalids.Switch: n.switchName}
	for k, v := range req.externalIDs {
		ids[k] = v
	}
	if len(addrs) > 0 {
		// The addresses column holds bare IPs; keep the prefix lengths
		// too, so CHECK can compare the pod's interface exactly.
		ids[externalids.Addresses] = prefixList(addrs)
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
