package netns

import (
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// ourRules lists the pod netns' source rules, by family.
func ourRules(t *testing.T, h *netlink.Handle) []netlink.Rule {
	t.Helper()
	var out []netlink.Rule
	for _, family := range []int{unix.AF_INET, unix.AF_INET6} {
		rules, err := h.RuleList(family)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rules {
			if r.Table >= sourceTableBase && r.Table < sourceTableMax {
				out = append(out, r)
			}
		}
	}
	return out
}

func TestSourceRoutingRulesFollowTheInterface(t *testing.T) {
	requireRoot(t)
	path := newPodNetns(t)
	a := dualStack(newHostName(t))
	res := setupOrFatal(t, path, a)
	h := podHandle(t, path)

	rules := ourRules(t, h)
	if len(rules) != len(a.Addresses) {
		t.Fatalf("got %d source rules, want one per address (%d)", len(rules), len(a.Addresses))
	}
	for _, r := range rules {
		if r.Table != sourceTable(res.Pod.Index) {
			t.Errorf("rule %v points at table %d, want %d", r, r.Table, sourceTable(res.Pod.Index))
		}
	}
	routes, err := h.RouteListFiltered(netlink.FAMILY_ALL, &netlink.Route{Table: sourceTable(res.Pod.Index)}, netlink.RT_FILTER_TABLE)
	if err != nil || len(routes) == 0 {
		t.Fatalf("interface table has routes %v (%v), want its on-link prefixes", routes, err)
	}
	if err := Check(path, a); err != nil {
		t.Fatalf("Check right after Setup: %v", err)
	}
	// A deleted rule is drift.
	if err := h.RuleDel(&rules[0]); err != nil {
		t.Fatal(err)
	}
	if err := Check(path, a); err == nil {
		t.Fatal("Check missed a deleted source rule")
	}
	// Tearing the attachment down leaves no rule behind, even though the
	// pod link disappears with its host end first.
	if err := Unplug(a.HostIfName, a.HostAlias, path); err != nil {
		t.Fatal(err)
	}
	if left := ourRules(t, h); len(left) != 0 {
		t.Fatalf("rules left after teardown: %v", left)
	}
}
