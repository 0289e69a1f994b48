package netns

import (
	"fmt"
	"net"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// PodState is what the pod side of an attachment looks like now. Check says
// whether it matches what ADD made; Inspect shows it to a human, so it
// reports what is there without any expectation to compare with.
type PodState struct {
	Host              LinkState      // the host veth (in the caller's netns)
	Pod               LinkState      // the pod interface
	PeerOfHost        bool           // the pod link is the host veth's peer
	TxChecksumOffload *bool          // pod link; nil if it could not be read
	Addresses         []netip.Prefix // on the pod link, all families, including link-local
	Routes            []RouteState   // routes through the pod link: main table and the link's source-routing table
	Rules             []RuleState    // rules whose table is the link's source-routing table
}

// LinkState is one link as the kernel reports it. A link that does not
// exist has only Name set.
type LinkState struct {
	Name      string
	Exists    bool
	Index     int
	AdminUp   bool
	OperState string // as netlink names it: "up", "down", "lower-layer-down", ...
	MTU       int
	MAC       net.HardwareAddr
	Type      string // "veth", "bridge", ...
}

// RouteState is one route through the pod link.
type RouteState struct {
	Table   int          // unix.RT_TABLE_MAIN (254) or the link's source-routing table
	Dst     netip.Prefix // 0.0.0.0/0 or ::/0 for a default route
	Gateway netip.Addr   // invalid (zero) = on-link
	Scope   string       // "universe", "link", "host", ...
}

// RuleState is one source-routing rule of the pod link.
type RuleState struct {
	Priority int
	Src      netip.Prefix // 0.0.0.0/0 or ::/0 for a rule that matches every source
	Table    int
}

// Inspect reads the state of an attachment's two ends: hostIfName in the
// caller's netns and ifName in podNetnsPath. A missing link is part of the
// state (Exists false), not an error; the pod link's addresses, routes,
// rules and TX checksum offload are then left empty. A netns that cannot be
// opened, or a read that fails, is an error: the state would be incomplete
// without saying so.
func Inspect(podNetnsPath, hostIfName, ifName string) (PodState, error) {
	wrap := func(step string, err error) error {
		return fmt.Errorf("netns: inspect host %q / pod %q in netns %s: %s: %w",
			hostIfName, ifName, podNetnsPath, step, err)
	}
	// An invalid name would make the look-ups below fail in ways that read
	// like a missing link.
	if err := validateIfName(hostIfName); err != nil {
		return PodState{}, wrap("host interface name", err)
	}
	if err := validateIfName(ifName); err != nil {
		return PodState{}, wrap("pod interface name", err)
	}

	var st PodState
	host, err := netlink.LinkByName(hostIfName)
	if err != nil && !isLinkNotFound(err) {
		return PodState{}, wrap("look up host link", err)
	}
	st.Host = linkState(hostIfName, host)

	podNs, pod, err := openPod(podNetnsPath)
	if err != nil {
		return PodState{}, wrap("open pod netns", err)
	}
	defer podNs.Close()
	defer pod.Close()

	l, err := pod.LinkByName(ifName)
	if err != nil && !isLinkNotFound(err) {
		return PodState{}, wrap("look up pod link", err)
	}
	st.Pod = linkState(ifName, l)
	if l == nil {
		return st, nil
	}
	// Each end names the other's index: both must agree, or the pod link
	// is the peer of some other veth whose index happens to match.
	st.PeerOfHost = host != nil && host.Type() == "veth" && l.Type() == "veth" &&
		l.Attrs().ParentIndex == host.Attrs().Index && host.Attrs().ParentIndex == l.Attrs().Index

	// TX checksum offload is diagnostic detail, not worth failing the whole
	// inspection for: nil says it could not be read.
	if on, err := txChecksumEnabled(podNs, ifName); err == nil {
		st.TxChecksumOffload = &on
	}

	addrs, err := retryDump(func() ([]netlink.Addr, error) { return pod.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return PodState{}, wrap("list pod link addresses", err)
	}
	for _, a := range addrs {
		if p, ok := ipNetToPrefix(a.IPNet); ok {
			st.Addresses = append(st.Addresses, p)
		}
	}

	index := l.Attrs().Index
	table := sourceTable(index)
	for _, t := range []int{unix.RT_TABLE_MAIN, table} {
		routes, err := linkRoutes(pod, index, t)
		if err != nil {
			return PodState{}, wrap(fmt.Sprintf("list routes of table %d", t), err)
		}
		st.Routes = append(st.Routes, routes...)
	}

	if st.Rules, err = rulesOfTable(pod, table); err != nil {
		return PodState{}, wrap(fmt.Sprintf("list rules of table %d", table), err)
	}
	return st, nil
}

// linkState describes l, or a missing link called name when l is nil.
func linkState(name string, l netlink.Link) LinkState {
	if l == nil {
		return LinkState{Name: name}
	}
	a := l.Attrs()
	return LinkState{
		Name:      a.Name,
		Exists:    true,
		Index:     a.Index,
		AdminUp:   a.Flags&net.FlagUp != 0,
		OperState: a.OperState.String(),
		MTU:       a.MTU,
		MAC:       slices.Clone(a.HardwareAddr),
		Type:      l.Type(),
	}
}

// linkRoutes lists the routes of table through linkIndex, IPv4 first. The
// families are listed one at a time because a default route has no
// destination in netlink, only the family tells 0.0.0.0/0 from ::/0.
func linkRoutes(h *netlink.Handle, linkIndex, table int) ([]RouteState, error) {
	var out []RouteState
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		filter := &netlink.Route{LinkIndex: linkIndex, Table: table}
		routes, err := retryDump(func() ([]netlink.Route, error) {
			return h.RouteListFiltered(family, filter, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, err
		}
		for _, r := range routes {
			dst := anyPrefix(family)
			if r.Dst != nil {
				p, ok := ipNetToPrefix(r.Dst)
				if !ok {
					continue
				}
				dst = p
			}
			var gw netip.Addr
			if r.Gw != nil {
				gw, _ = netip.AddrFromSlice(r.Gw)
				gw = gw.Unmap()
			}
			out = append(out, RouteState{Table: r.Table, Dst: dst, Gateway: gw, Scope: r.Scope.String()})
		}
	}
	return out, nil
}

// rulesOfTable lists the rules pointing at table, IPv4 first.
func rulesOfTable(h *netlink.Handle, table int) ([]RuleState, error) {
	var out []RuleState
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		filter := netlink.NewRule()
		filter.Table = table
		rules, err := retryDump(func() ([]netlink.Rule, error) {
			return h.RuleListFiltered(family, filter, netlink.RT_FILTER_TABLE)
		})
		if err != nil {
			return nil, err
		}
		for _, r := range rules {
			src := anyPrefix(family)
			if r.Src != nil {
				p, ok := ipNetToPrefix(r.Src)
				if !ok {
					continue
				}
				src = p
			}
			out = append(out, RuleState{Priority: r.Priority, Src: src, Table: r.Table})
		}
	}
	return out, nil
}

// anyPrefix is the prefix matching every address of family.
func anyPrefix(family int) netip.Prefix {
	if family == netlink.FAMILY_V6 {
		return netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	}
	return netip.PrefixFrom(netip.IPv4Unspecified(), 0)
}
