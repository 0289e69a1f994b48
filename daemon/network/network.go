package network

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
	"sync/atomic"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/gateway"
	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// network is the daemon's state for one secondary network on this node:
// the logical switch its pods attach to and an index of the addresses in
// use there.
type Network struct {
	name        string
	fingerprint string
	conf        *netconf.NetConf
	// switchName is where this node's pods go: the cluster-wide switch
	// (layer2) or this node's switch (layer3).
	switchName string
	// guarded: other nodes allocate on the same switch, so port
	// transactions carry the port-set guard (layer2, localnet).
	guarded bool
	// localnetPort is the switch's port to the physical network
	// (localnet only).
	localnetPort string
	// Layer3: this node's subnets, their gateways (the router port's
	// addresses) and the pod routes to the whole network through them.
	// Layer2 with external connectivity: the router's addresses, and the
	// routes to the external prefixes.
	nodeSubnets []netip.Prefix
	gateways    []netip.Addr
	routes      []netns.Route
	// externalIP is the network's gateway address on the external
	// physical network (external connectivity only): what external hosts
	// see as its pods' source.
	externalIP      netip.Addr
	externalPhysnet string
	// pool indexes addresses. Without subnets it has no ranges and only
	// guards requested static addresses against duplicates.
	pool *ipam.Pool
	nb   *ovn.Northbound
	// dhcp holds the network's DHCP_Options rows (dhcp.go).
	dhcp dhcpState
	// jobs feeds the network's committer, which turns concurrent ADDs into
	// shared NB transactions.
	jobs chan *portJob
	// relabels feeds the committer of warm ports handed to pods.
	relabels chan *portJob
	// stop ends the network's committers and warm-port loop when this
	// node retires it (retire.go); lastUsed (unix nanoseconds) is when an
	// ADD or CHECK last asked for it.
	stop     chan struct{}
	lastUsed atomic.Int64
	// macs indexes the MACs in use on the switch, like pool the
	// addresses.
	macs *macIndex
	// foreign marks the ports on the switch that are not ours, whose
	// addresses the index holds (commit.go, syncIndex). Only the
	// committer goroutine touches it.
	foreign map[string]bool
	// warm holds this node's pre-provisioned ports (warm.go); nil when
	// the daemon runs without them.
	warm *warmPool
	log  *slog.Logger
}

// Registry holds the state of every network this node has attached a pod
// to, created on first use and fed by NB cache events.
type Registry struct {
	nb   *ovn.Northbound
	node string
	log  *slog.Logger
	opts Options
	stop <-chan struct{}
	mu   sync.Mutex
	m    map[string]*Network
}

// Options are the registry's settings and its hooks into the rest of the
// daemon.
type Options struct {
	// WarmPorts is the number of warm ports per network (0: none).
	WarmPorts int
	// Claims lists a network's persistent-IP claims (IPAMClaims) by key;
	// nil without Kubernetes.
	Claims func(network string) map[string][]netip.Addr
	// Idle is how long a network may go unused by this node before the
	// node gives back its share (warm ports, layer3 claim), and the last
	// node removes the network's shared rows (retire.go). 0: never. It
	// must exceed the longest ADD.
	Idle time.Duration
	// InUse reports whether any attachment of this node is on a network.
	InUse func(network string) bool
	// BoundPorts names the logical switch ports a local OVS interface is
	// bound to (iface-id): warm ports among them were handed to an ADD
	// that died before relabelling, and must not be offered again.
	BoundPorts func() []string
	// External are the physical networks networks with external
	// connectivity may leave through (the operator's --external-network).
	External gateway.Config
}

// NewRegistry returns an empty registry that follows the NB's port events
// until stop closes.
func NewRegistry(nb *ovn.Northbound, node string, log *slog.Logger, opts Options, stop <-chan struct{}) *Registry {
	r := &Registry{nb: nb, node: node, log: log, opts: opts, stop: stop, m: map[string]*Network{}}
	nb.AddPortHandler(r)
	return r
}

// SetClaims installs the persistent-IP claim lister once Kubernetes is up.
func (ns *Registry) SetClaims(claims func(network string) map[string][]netip.Addr) {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	ns.opts.Claims = claims
}

// Lookup returns the state of a network already in use on this node.
func (ns *Registry) Lookup(name string) *Network {
	ns.mu.Lock()
	defer ns.mu.Unlock()
	return ns.m[name]
}

// PortAdded indexes a new port's addresses and, if it is one of this
// node's warm ports, offers it to the warm pool.
func (ns *Registry) PortAdded(lsp *nbdb.LogicalSwitchPort) {
	if n := ns.Lookup(lsp.ExternalIDs[externalids.Network]); n != nil {
		n.observePort(lsp.Name, lsp)
		ns.offerWarm(n, lsp)
	}
}

// PortUpdated follows a change in place: nothing is released and taken
// back, so no reader ever sees the port's addresses free.
func (ns *Registry) PortUpdated(old, lsp *nbdb.LogicalSwitchPort) {
	n := ns.Lookup(lsp.ExternalIDs[externalids.Network])
	if n == nil {
		return
	}
	if !slices.Equal(PortAddrs(old), PortAddrs(lsp)) {
		n.releasePort(lsp.Name)
		n.observePort(lsp.Name, lsp)
	}
	if n.warm != nil && !IsWarm(lsp) {
		n.warm.forget(lsp.Name)
	}
	ns.offerWarm(n, lsp)
}

func (ns *Registry) PortDeleted(lsp *nbdb.LogicalSwitchPort) {
	if n := ns.Lookup(lsp.ExternalIDs[externalids.Network]); n != nil {
		n.releasePort(lsp.Name)
		// The other half of a live migration keeps the VM's addresses.
		for _, p := range ns.claimPartners(lsp) {
			n.observePort(p.Name, p)
		}
		if n.warm != nil {
			n.warm.drop(lsp.Name)
		}
	}
}

// offerWarm adds lsp to n's warm pool if it is one of this node's warm
// ports. Events run behind the cache: offer only what the cache still
// shows as warm.
func (ns *Registry) offerWarm(n *Network, lsp *nbdb.LogicalSwitchPort) {
	if n.warm == nil || !IsWarm(lsp) || lsp.ExternalIDs[externalids.Node] != ns.node {
		return
	}
	if cur, ok := ns.nb.Port(lsp.Name); ok && IsWarm(cur) {
		n.warm.offer(cur)
	}
}

// OnClaim keeps the address index in step with a persistent-IP claim:
// its addresses stay reserved until the claim is deleted (ips nil).
func (ns *Registry) OnClaim(network, key string, ips []netip.Addr) {
	n := ns.Lookup(network)
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

// Get returns the state of conf's network, creating its OVN topology (and
// for layer3 claiming this node's subnets) on first use.
func (ns *Registry) Get(ctx context.Context, conf *netconf.NetConf) (*Network, error) {
	fp := conf.Fingerprint()
	if n := ns.Lookup(conf.Name); n != nil {
		if n.fingerprint != fp {
			return nil, conflictError(conf, n.conf)
		}
		n.lastUsed.Store(time.Now().UnixNano())
		return n, nil
	}
	n := &Network{name: conf.Name, fingerprint: fp, conf: conf, nb: ns.nb, foreign: map[string]bool{}, macs: newMACIndex(), stop: make(chan struct{}), jobs: make(chan *portJob, 1024), relabels: make(chan *portJob, 1024), log: ns.log.With("network", conf.Name)}
	if ns.opts.WarmPorts > 0 && conf.DHCP == nil {
		// DHCP ports carry per-pod options (hostname): no warm ports.
		n.warm = newWarmPool(conf.Name, ns.opts.WarmPorts)
	}
	var plan *externalPlan
	if conf.External != nil {
		var err error
		if plan, err = ns.externalFor(conf); err != nil {
			return nil, fmt.Errorf("network %s: %w", conf.Name, err)
		}
	}
	var err error
	switch conf.Topology {
	case netconf.Layer2:
		err = ns.setUpLayer2(ctx, n)
	case netconf.Layer3:
		err = ns.setUpLayer3(ctx, n)
	case netconf.Localnet:
		err = ns.setUpLocalnet(ctx, n)
	default:
		err = fmt.Errorf("topology %q: %w", conf.Topology, ErrNotSupported)
	}
	if err == nil && plan != nil {
		err = ns.setUpExternal(ctx, n, plan)
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
	// Without Kubernetes there is no NAD to put these on: the log is
	// where an operator learns what the config did not do.
	for _, note := range conf.Notes {
		n.log.Info("network config note", "note", note)
	}
	ports, err := ns.nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.Network] == conf.Name
	})
	if err != nil {
		delete(ns.m, conf.Name)
		return nil, err
	}
	for i := range ports {
		n.observePort(ports[i].Name, &ports[i])
		ns.offerWarm(n, &ports[i])
	}
	if claims := ns.opts.Claims; claims != nil {
		for key, addrs := range claims(conf.Name) {
			n.pool.Pin(key, addrs)
		}
	}
	go n.commitLoop(ns.nb, n.jobs)
	go n.commitLoop(ns.nb, n.relabels)
	n.lastUsed.Store(time.Now().UnixNano())
	ns.startWarm(n)
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

func (ns *Registry) setUpLayer2(ctx context.Context, n *Network) error {
	_, err := ns.setUpSharedSwitch(ctx, n, layer2SwitchName(n.name))
	return err
}

// setUpLocalnet is layer2's shared switch plus its localnet port: on every
// node that maps the physical network, ovn-controller patches the switch
// to the mapped bridge, and pods talk over the physical network instead
// of geneve. The VLAN goes on the localnet port (tag_request), never on
// pod ports: a tagged or "unknown" pod port would make ovn-northd
// recompute every flow on each ADD.
func (ns *Registry) setUpLocalnet(ctx context.Context, n *Network) error {
	ls, err := ns.setUpSharedSwitch(ctx, n, localnetSwitchName(n.name))
	if err != nil {
		return err
	}
	want := &nbdb.LogicalSwitchPort{
		Name:        LocalnetPortName(n.name),
		Addresses:   []string{"unknown"},
		Options:     map[string]string{"network_name": n.conf.PhysicalNetwork()},
		ExternalIDs: shapeIDs(n.conf),
	}
	if n.conf.VLANID > 0 {
		vlan := n.conf.VLANID
		want.TagRequest = &vlan
	}
	lsp, err := ns.nb.EnsureLocalnetPort(ctx, ls, want)
	if err != nil {
		return err
	}
	if !ovn.IsLocalnet(lsp) || lsp.ExternalIDs[externalids.Fingerprint] != n.fingerprint {
		return differentShape(n.name)
	}
	n.localnetPort = lsp.Name
	return nil
}

// setUpSharedSwitch readies the cluster-wide switch of a layer2 or
// localnet network and the network's address pool.
func (ns *Registry) setUpSharedSwitch(ctx context.Context, n *Network, name string) (*nbdb.LogicalSwitch, error) {
	ls, err := ns.nb.EnsureSwitch(ctx, name, shapeIDs(n.conf))
	if err != nil {
		return nil, err
	}
	if ls.ExternalIDs[externalids.Fingerprint] != n.fingerprint {
		return nil, differentShape(n.name)
	}
	n.switchName, n.guarded = ls.Name, true
	var subnets []netip.Prefix
	for _, s := range n.conf.Subnets {
		subnets = append(subnets, s.CIDR)
	}
	excluded := append([]netip.Prefix(nil), n.conf.ExcludeSubnets...)
	for _, a := range append(routerLinkAddrs(n.conf), dhcpServerAddrs(n.conf)...) {
		excluded = append(excluded, netip.PrefixFrom(a.Addr(), a.Addr().BitLen()))
	}
	n.pool = ipam.NewPool(subnets, excluded)
	n.pool.SetStaticOnly(n.conf.ReservedSubnets)
	return ls, nil
}

func conflictError(conf, existing *netconf.NetConf) error {
	return fmt.Errorf("network %q is already in use with a different config (NAD %q); this config (NAD %q) differs in topology, subnets, excludeSubnets, mtu, vlanID, physicalNetworkName or allowPersistentIPs: %w; make them identical or rename one network",
		conf.Name, existing.NADName, conf.NADName, ErrConflictingConfig)
}

// PortRequest is what one new logical switch port needs.
type PortRequest struct {
	Name      string
	MAC       net.HardwareAddr // nil: derive from the first address
	Static    []netip.Prefix   // requested addresses; nil: allocate
	Namespace string           // pod namespace, for address sets
	Claim     string           // key of the persistent-IP claim whose addresses Static may use
	// MigrateFrom names the port of a VM's live-migration source: the new
	// port shares its MAC and addresses and is created disabled, until
	// the migration hands traffic over (see migration.go).
	MigrateFrom string
	// DHCP is the port's DHCP service (nil: the network has none).
	DHCP        *PortDHCP
	ExternalIDs map[string]string
}

// PortResult is what the committer hands back.
type PortResult struct {
	LSP   *nbdb.LogicalSwitchPort
	Addrs []netip.Prefix
	MAC   net.HardwareAddr
	Err   error
}

// reserve takes req's static addresses, or allocates one per subnet.
func (n *Network) reserve(req PortRequest) ([]netip.Prefix, error) {
	if len(req.Static) > 0 {
		static := n.Widen(req.Static)
		addrs := make([]netip.Addr, len(static))
		for i, p := range static {
			if n.hasRanges() && !n.pool.Allocatable(p.Addr()) {
				return nil, fmt.Errorf("%w: requested address %s is outside network %q's subnets on this node or inside excludeSubnets; pick an address from %s", ErrInvalidRequest, p, n.name, n.rangeList())
			}
			addrs[i] = p.Addr()
		}
		if err := n.pool.ReserveShared(req.Name, req.Claim, req.MigrateFrom, addrs); err != nil {
			if n.heldByWarmPort(addrs) {
				return nil, fmt.Errorf("%w: requested address on network %q: %w; that is a pre-provisioned (warm) port of another node, kept for its next pod: pick another address, or run the daemons with --warm-ports=0 on networks where pods choose their addresses", ErrInvalidRequest, n.name, err)
			}
			return nil, fmt.Errorf("%w: requested address on network %q: %w", ErrInvalidRequest, n.name, err)
		}
		return static, nil
	}
	if !n.hasRanges() {
		return nil, nil // layer2 without subnets: MAC only
	}
	addrs, err := n.pool.Allocate(req.Name)
	if err != nil {
		return nil, fmt.Errorf("network %q is out of addresses: %w; widen \"subnets\" or shrink \"excludeSubnets\" or \"reservedSubnets\"", n.name, err)
	}
	return addrs, nil
}

// heldByWarmPort reports whether any of addrs belongs to a warm port (of
// any node), to explain a refused static address.
func (n *Network) heldByWarmPort(addrs []netip.Addr) bool {
	for _, a := range addrs {
		if owner, ok := n.pool.Owner(a); ok {
			if lsp, ok := n.nb.Port(owner); ok && IsWarm(lsp) {
				return true
			}
		}
	}
	return false
}

// ranges are the prefixes pods of this node get addresses from.
func (n *Network) ranges() []netip.Prefix {
	if n.conf.Topology == netconf.Layer3 {
		return n.nodeSubnets
	}
	var out []netip.Prefix
	for _, s := range n.conf.Subnets {
		out = append(out, s.CIDR)
	}
	return out
}

func (n *Network) hasRanges() bool { return len(n.ranges()) > 0 }

func (n *Network) rangeList() string {
	var s []string
	for _, p := range n.ranges() {
		s = append(s, p.String())
	}
	return strings.Join(s, ",")
}

// Widen gives a bare requested address (a host prefix) the prefix length
// of the range it falls in, so the pod gets the on-link route it expects.
func (n *Network) Widen(static []netip.Prefix) []netip.Prefix {
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
// portEntry is the "MAC address..." entry a port's addresses and port
// security hold.
func portEntry(mac net.HardwareAddr, addrs []netip.Prefix) string {
	entry := mac.String()
	for _, a := range addrs {
		entry += " " + a.Addr().String()
	}
	return entry
}

func (n *Network) buildPort(req PortRequest, mac net.HardwareAddr, addrs []netip.Prefix) *nbdb.LogicalSwitchPort {
	entry := portEntry(mac, addrs)
	ids := map[string]string{externalids.Owner: externalids.OwnerValue, externalids.Switch: n.switchName}
	for k, v := range req.ExternalIDs {
		ids[k] = v
	}
	if len(addrs) > 0 {
		// The addresses column holds bare IPs; keep the prefix lengths
		// too, so CHECK can compare the pod's interface exactly.
		ids[externalids.Addresses] = PrefixList(addrs)
	}
	lsp := &nbdb.LogicalSwitchPort{
		Name:         req.Name,
		Addresses:    []string{entry},
		PortSecurity: []string{entry},
		ExternalIDs:  ids,
	}
	req.DHCP.apply(lsp, addrs)
	if req.MigrateFrom != "" {
		// Disabled, and without addresses until the hand-over (see
		// ovn.PortChange.Enable for why).
		disabled := false
		lsp.Enabled = &disabled
		lsp.Addresses = nil
		ids[externalids.MigrationSource] = req.MigrateFrom
	}
	return lsp
}

// PortAddrs parses the IPs out of a port's "MAC IP IP..." addresses.
func PortAddrs(lsp *nbdb.LogicalSwitchPort) []netip.Addr {
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

// PortMAC parses the MAC out of a port's addresses, or its port security
// (a disabled migration port has no addresses).
func PortMAC(lsp *nbdb.LogicalSwitchPort) (net.HardwareAddr, error) {
	for _, entry := range append(append([]string(nil), lsp.Addresses...), lsp.PortSecurity...) {
		if fields := strings.Fields(entry); len(fields) > 0 {
			return net.ParseMAC(fields[0])
		}
	}
	return nil, fmt.Errorf("logical switch port %s has no MAC in addresses", lsp.Name)
}

// CheckPortSecurity reports a port whose port_security is no longer the
// one entry ADD wrote, its MAC and recorded addresses: OVN would drop the
// pod's packets (a narrower list) or let it spoof (a wider or empty one).
func CheckPortSecurity(lsp *nbdb.LogicalSwitchPort) error {
	mac, err := PortMAC(lsp)
	if err != nil {
		return err
	}
	want := portEntry(mac, ParsePrefixList(lsp.ExternalIDs[externalids.Addresses]))
	if len(lsp.PortSecurity) != 1 || lsp.PortSecurity[0] != want {
		return fmt.Errorf("logical switch port %s has port security %q, want [%q]: it was changed outside ovn-overlay; restore it with ovn-nbctl lsp-set-port-security %s %q",
			lsp.Name, lsp.PortSecurity, want, lsp.Name, want)
	}
	return nil
}

// ErrInvalidRequest marks requests the network cannot honour as asked: a
// static address outside its subnets or already in use, a MAC in use. The
// runtime gets CNI error 7 (the request's runtimeConfig or CNI_ARGS is
// part of the network config it passed).
var ErrInvalidRequest = errors.New("invalid request")

// ErrNotSupported marks configs that parse but ask for something this
// release does not implement yet.
var ErrNotSupported = errors.New("not supported yet")

// Name is the network's name.
func (n *Network) Name() string { return n.name }

// Conf is the network's config, as the first ADD or CHECK on this node
// since the daemon started gave it.
func (n *Network) Conf() *netconf.NetConf { return n.conf }

// Routes are the routes pods of this node get (layer3: to each cluster
// subnet via this node's gateway).
func (n *Network) Routes() []netns.Route { return n.routes }

// LocalnetPort is the name of the network's localnet port; empty unless
// the network is a localnet.
func (n *Network) LocalnetPort() string { return n.localnetPort }

// Gateways are this node's gateways on the network (layer3, and layer2
// with external connectivity).
func (n *Network) Gateways() []netip.Addr { return n.gateways }

// ExternalIP is the network's gateway address on the external physical
// network; invalid without external connectivity.
func (n *Network) ExternalIP() netip.Addr { return n.externalIP }

// PinClaim keeps a persistent-IP claim's addresses reserved.
func (n *Network) PinClaim(key string, addrs []netip.Addr) { n.pool.Pin(key, addrs) }

// TakeWarm hands out one of the network's warm ports if the ADD lets the
// daemon choose addresses and MAC (eligible) and the node has one, and
// counts where the ADD's port comes from.
func (n *Network) TakeWarm(eligible bool) *nbdb.LogicalSwitchPort {
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
	metrics.AddPortSource.WithLabelValues(source).Inc()
	return lsp
}

// RefillWarm asks the warm-port loop to top the pool up (after an ADD,
// so that the refill's northd recompile does not compete with it).
func (n *Network) RefillWarm() {
	if n.warm != nil {
		n.warm.poke()
	}
}
