package network

import (
	"net/netip"
	"sort"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
)

// Address sets hold the IPs of a network's pods per namespace and IP family,
// written in the same transaction as the ports, so they are never stale.
// Multi-network policies will match on them.

// addressSetEdits accumulates edits per set.
type addressSetEdits struct {
	sets map[string]*ovn.AddressSetChange
}

func (e *addressSetEdits) get(network, namespace string, ipv6 bool) *ovn.AddressSetChange {
	name := addressSetName(network, namespace, ipv6)
	if e.sets == nil {
		e.sets = map[string]*ovn.AddressSetChange{}
	}
	c, ok := e.sets[name]
	if !ok {
		family := "ipv4"
		if ipv6 {
			family = "ipv6"
		}
		c = &ovn.AddressSetChange{Name: name, ExternalIDs: map[string]string{
			externalids.Network: network, externalids.Namespace: namespace, externalids.IPFamily: family,
		}}
		e.sets[name] = c
	}
	return c
}

// add records pod addresses; pods without a namespace (no Kubernetes
// identity in CNI_ARGS) are in no set.
func (e *addressSetEdits) add(network, namespace string, addrs []netip.Prefix) {
	if namespace == "" {
		return
	}
	for _, p := range addrs {
		c := e.get(network, namespace, p.Addr().Is6())
		c.Add = append(c.Add, p.Addr().String())
	}
}

func (e *addressSetEdits) remove(network, namespace string, addrs []netip.Addr) {
	if namespace == "" {
		return
	}
	for _, a := range addrs {
		c := e.get(network, namespace, a.Is6())
		c.Remove = append(c.Remove, a.String())
	}
}

// changes returns the edits in a stable order.
func (e *addressSetEdits) changes() []ovn.AddressSetChange {
	var out []ovn.AddressSetChange
	for _, c := range e.sets {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}
