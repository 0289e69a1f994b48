package netconf

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// External is a network's way out to external networks (issue 14): its
// traffic to External.Prefixes leaves through an OVN gateway on a physical
// network, SNATed to the gateway's address. Fields left empty take the
// operator's defaults (the daemon's flags); nil means east/west only.
type External struct {
	// PhysicalNetwork is where the gateway sits ("" : the operator's).
	PhysicalNetwork string
	// GatewayIPs are the gateway's addresses on the physical network, at
	// most one per IP family, which external hosts see as the source
	// ("": nodes pick them from the operator's pool).
	GatewayIPs []netip.Addr
	// Prefixes are the destinations pods route to through the network's
	// gateway (nil: the operator's).
	Prefixes []netip.Prefix
}

// parseExternal reads external connectivity: the enhancement's
// "has_external_connectivity": true asks for it, and so does any of this
// plugin's external* keys.
// Where the gateway sits and which addresses it may take are the
// operator's (the daemon's --external-network); the keys here only narrow
// them.
func parseExternal(r *raw, c *NetConf) error {
	flag, err := boolField("has_external_connectivity", r.HasExternalConnectivity)
	if err != nil {
		return err
	}
	flagSet := present(r.HasExternalConnectivity)
	phys, _, err := stringField("externalPhysicalNetworkName", r.all["externalPhysicalNetworkName"])
	if err != nil {
		return err
	}
	ips, err := parseGatewayIPs(r.all["externalGatewayIPs"], c)
	if err != nil {
		return err
	}
	prefixes, err := parseExternalPrefixes(r.all["externalPrefixes"], c)
	if err != nil {
		return err
	}
	ours := phys != "" || len(ips) > 0 || len(prefixes) > 0
	key := askedBy(flag, phys, ips, prefixes)
	switch {
	case !flag && !ours:
		return nil
	case flagSet && !flag && ours:
		return fieldErr("has_external_connectivity", "false", "contradicts the external* fields, which ask for external connectivity", "set it to true or remove the external* fields")
	case c.Topology == Localnet:
		return fieldErr(key, "", "does not apply to topology localnet, whose pods are on the physical network already", "remove it, or use a layer2 or layer3 overlay")
	case len(c.Subnets) == 0:
		return fieldErr(key, "", "needs \"subnets\": the gateway routes and SNATs the network's addresses", "add \"subnets\"")
	}
	c.External = &External{PhysicalNetwork: phys, GatewayIPs: ips, Prefixes: prefixes}
	return nil
}

// askedBy names the key that asked for external connectivity, for errors
// about it: the one the author wrote.
func askedBy(flag bool, phys string, ips []netip.Addr, prefixes []netip.Prefix) string {
	switch {
	case flag:
		return "has_external_connectivity"
	case phys != "":
		return "externalPhysicalNetworkName"
	case len(ips) > 0:
		return "externalGatewayIPs"
	case len(prefixes) > 0:
		return "externalPrefixes"
	}
	return "has_external_connectivity"
}

func parseGatewayIPs(v json.RawMessage, c *NetConf) ([]netip.Addr, error) {
	const field = "externalGatewayIPs"
	s, _, err := stringField(field, v)
	if err != nil || strings.TrimSpace(s) == "" {
		return nil, err
	}
	var out []netip.Addr
	for _, entry := range strings.Split(s, ",") {
		a, err := netip.ParseAddr(strings.TrimSpace(entry))
		switch {
		case err != nil:
			return nil, fieldErr(field, strconv.Quote(entry), "is not an IP address", "write e.g. \"172.30.0.10\" (one address per IP family)")
		case !a.IsGlobalUnicast() && !a.IsPrivate():
			return nil, fieldErr(field, strconv.Quote(entry), "is not a unicast address", "use the address external hosts should see")
		case insideAny(netip.PrefixFrom(a, a.BitLen()), c.Subnets):
			return nil, fieldErr(field, strconv.Quote(entry), "is inside the network's own \"subnets\"", "use an address of the external network")
		}
		for _, b := range out {
			if b.Is4() == a.Is4() {
				return nil, fieldErr(field, strconv.Quote(s), "has two addresses of one IP family", "give at most one IPv4 and one IPv6 address")
			}
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}

func parseExternalPrefixes(v json.RawMessage, c *NetConf) ([]netip.Prefix, error) {
	const field = "externalPrefixes"
	s, _, err := stringField(field, v)
	if err != nil || strings.TrimSpace(s) == "" {
		return nil, err
	}
	var out []netip.Prefix
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		p, err := netip.ParsePrefix(entry)
		if err != nil {
			return nil, fieldErr(field, strconv.Quote(entry), "is not a CIDR", "write e.g. \"192.0.2.0/24\"")
		}
		if p.Bits() == 0 {
			return nil, fieldErr(field, strconv.Quote(entry), "is a default route, which would take the pod's traffic from its primary network",
				"list the external prefixes the pods need, or ask for a default route with \"default-route\" in the pod's network selection element")
		}
		if p != p.Masked() {
			c.note("externalPrefixes entry %q has host bits set and is read as %q", entry, p.Masked().String())
			p = p.Masked()
		}
		for _, sn := range c.Subnets {
			if sn.CIDR.Overlaps(p) {
				return nil, fieldErr(field, strconv.Quote(entry), fmt.Sprintf("overlaps the network's own subnet %s", sn.CIDR), "list only destinations outside the network")
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// fingerprint is External's part of the network's shape ("" for none).
func (x *External) fingerprint() string {
	if x == nil {
		return ""
	}
	var ips []string
	for _, a := range x.GatewayIPs {
		ips = append(ips, a.String())
	}
	return fmt.Sprintf(";external=%s;gw=%s;prefixes=%s", x.PhysicalNetwork, strings.Join(ips, ","), sortedPrefixes(x.Prefixes))
}
