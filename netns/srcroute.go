package netns

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// Source-based routing. A pod attached to several networks may have
// overlapping destinations on them: the multi-homing guide's own examples
// put 10.128.0.0/24 (layer2) inside 10.128.0.0/16 (layer3). With one routing
// table, a reply to a request that came in on one interface can leave by the
// other, towards a different network. So every pod interface with addresses
// also gets its own routing table, holding its on-link prefixes and routes,
// and one rule per address: "from <address> lookup <table>". Replies (and
// anything bound to the address) leave by the interface that owns the
// address. The main table keeps its usual routes for unbound traffic.

// sourceTableBase + the pod link's index is the interface's table (and the
// rule priority). Link indexes are unique within the pod's netns.
const (
	sourceTableBase = 10000
	sourceTableMax  = sourceTableBase + 1<<20
)

func sourceTable(linkIndex int) int { return sourceTableBase + linkIndex }

func addSourceRouting(h *netlink.Handle, linkIndex int, a Attachment) error {
	if len(a.Addresses) == 0 {
		return nil
	}
	table := sourceTable(linkIndex)
	seen := map[netip.Prefix]bool{}
	for _, p := range a.Addresses {
		dst := p.Masked()
		if seen[dst] {
			continue
		}
		seen[dst] = true
		r := &netlink.Route{LinkIndex: linkIndex, Dst: prefixToIPNet(dst, true), Table: table, Scope: netlink.SCOPE_LINK}
		if err := h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add on-link route %s to table %d: %w", dst, table, err)
		}
	}
	for _, rt := range a.Routes {
		r := &netlink.Route{LinkIndex: linkIndex, Dst: prefixToIPNet(rt.Dst, true), Table: table}
		if rt.Gateway.IsValid() {
			r.Gw = rt.Gateway.AsSlice()
		} else {
			r.Scope = netlink.SCOPE_LINK
		}
		if err := h.RouteAdd(r); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add route %s to table %d: %w", rt.String(), table, err)
		}
	}
	for _, p := range a.Addresses {
		if err := h.RuleAdd(sourceRule(p.Addr(), table)); err != nil && !errors.Is(err, unix.EEXIST) {
			return fmt.Errorf("add rule from %s lookup %d: %w", p.Addr(), table, err)
		}
	}
	return nil
}

func sourceRule(addr netip.Addr, table int) *netlink.Rule {
	rule := netlink.NewRule()
	rule.Src = prefixToIPNet(netip.PrefixFrom(addr, addr.BitLen()), false)
	rule.Table = table
	rule.Priority = table
	rule.Family = unix.AF_INET
	if addr.Is6() {
		rule.Family = unix.AF_INET6
	}
	return rule
}

// checkSourceRouting reports addresses without their source rule.
func checkSourceRouting(h *netlink.Handle, linkIndex int, a Attachment) []Drift {
	var drift driftList
	table := sourceTable(linkIndex)
	for _, p := range a.Addresses {
		family := unix.AF_INET
		if p.Addr().Is6() {
			family = unix.AF_INET6
		}
		rules, err := h.RuleListFiltered(family, sourceRule(p.Addr(), table), netlink.RT_FILTER_SRC|netlink.RT_FILTER_TABLE)
		if err != nil {
			drift.add(DriftSourceRule, "listing rules failed: %v", err)
			continue
		}
		if len(rules) == 0 {
			drift.add(DriftSourceRule, "pod netns is missing rule from %s lookup %d", p.Addr(), table)
		}
	}
	return drift
}

// removeRulesOfTable deletes every rule pointing at table.
func removeRulesOfTable(h *netlink.Handle, table int) error {
	var errs []error
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		filter := netlink.NewRule()
		filter.Table = table
		rules, err := h.RuleListFiltered(family, filter, netlink.RT_FILTER_TABLE)
		if err != nil {
			return err
		}
		for _, r := range rules {
			if err := h.RuleDel(&r); err != nil && !errors.Is(err, unix.ENOENT) {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// hasRouteInTable reports whether table routes r via linkIndex.
func hasRouteInTable(h *netlink.Handle, linkIndex, table int, r Route) (bool, error) {
	family := netlink.FAMILY_V4
	if r.Dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	routes, err := h.RouteListFiltered(family, &netlink.Route{LinkIndex: linkIndex, Table: table}, netlink.RT_FILTER_OIF|netlink.RT_FILTER_TABLE)
	if err != nil {
		return false, err
	}
	for _, got := range routes {
		if got.Dst == nil {
			continue
		}
		dst, ok := ipNetToPrefix(got.Dst)
		if !ok || dst.Masked() != r.Dst.Masked() {
			continue
		}
		gw, _ := netip.AddrFromSlice(got.Gw)
		if gw.Unmap() == r.Gateway.Unmap() {
			return true, nil
		}
	}
	return false, nil
}
