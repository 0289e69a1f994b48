// Package gateway holds the operator's side of external connectivity: the
// external physical networks gateways may use (Config, from the daemon's
// flags) and the agent that makes a gateway-capable node one of the
// gateway chassis of every network's gateway port (Agent).
package gateway

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/ovn-overlay/ovn-overlay/ovn"
)

// External is one physical network that networks with external
// connectivity may leave through: its subnet, the addresses gateways may
// take on it, its router, and the prefixes pods route there by default.
type External struct {
	PhysicalNetwork string
	Pool            ovn.GatewayPool
	// Prefixes are the destinations pods of a network that names none
	// route through its gateway; default: the external subnet itself.
	Prefixes []netip.Prefix
}

// Config is the operator's set of external physical networks, in flag
// order; the first is the default for networks that do not name one.
type Config []External

// Lookup returns the settings of physical network phys ("" : the default).
func (c Config) Lookup(phys string) (External, bool) {
	for _, x := range c {
		if phys == "" || x.PhysicalNetwork == phys {
			return x, true
		}
	}
	return External{}, false
}

// Names lists the configured physical networks.
func (c Config) Names() []string {
	var out []string
	for _, x := range c {
		out = append(out, x.PhysicalNetwork)
	}
	return out
}

// FlagName is the daemon flag that fills Config.
const FlagName = "external-network"

// String and Set make Config a repeatable flag.Value.
func (c *Config) String() string {
	var out []string
	for _, x := range *c {
		out = append(out, x.PhysicalNetwork)
	}
	return strings.Join(out, " ")
}

// Set adds the external networks of one flag value: one or several
// separated by white space (a ConfigMap key can hold them all); an empty
// value adds none, so an unset ConfigMap key means none.
func (c *Config) Set(s string) error {
	for _, value := range strings.Fields(s) {
		x, err := ParseExternal(value)
		if err != nil {
			return err
		}
		if _, dup := c.Lookup(x.PhysicalNetwork); dup && len(*c) > 0 {
			return fmt.Errorf("--%s: physical network %q is given twice", FlagName, x.PhysicalNetwork)
		}
		*c = append(*c, x)
	}
	return nil
}

// ParseExternal reads one --external-network value:
//
//	<physical network>,subnet=<CIDR>,gateways=<first>-<last>[,next-hop=<IP>][,prefix=<CIDR>]...
//
// e.g. datacenter,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1
func ParseExternal(s string) (External, error) {
	const example = "write e.g. datacenter,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1"
	fields := strings.Split(s, ",")
	x := External{PhysicalNetwork: strings.TrimSpace(fields[0])}
	if x.PhysicalNetwork == "" || strings.Contains(x.PhysicalNetwork, "=") {
		return x, fmt.Errorf("--%s %q: starts with the physical network's name (as in ovn-bridge-mappings); %s", FlagName, s, example)
	}
	bad := func(key, value, why string) error {
		return fmt.Errorf("--%s %s: %s=%q %s; %s", FlagName, x.PhysicalNetwork, key, value, why, example)
	}
	var gateways string
	for _, f := range fields[1:] {
		key, value, ok := strings.Cut(strings.TrimSpace(f), "=")
		if !ok {
			return x, bad(f, "", "is not key=value")
		}
		var err error
		switch key {
		case "subnet":
			if x.Pool.Subnet, err = netip.ParsePrefix(value); err != nil || x.Pool.Subnet != x.Pool.Subnet.Masked() {
				return x, bad(key, value, "is not a subnet (CIDR without host bits)")
			}
		case "gateways":
			gateways = value
		case "next-hop":
			if x.Pool.NextHop, err = netip.ParseAddr(value); err != nil {
				return x, bad(key, value, "is not an IP address")
			}
		case "prefix":
			p, err := netip.ParsePrefix(value)
			if err != nil || p.Bits() == 0 {
				return x, bad(key, value, "is not a CIDR other than a default route (a default route would take pods' traffic from their primary network)")
			}
			x.Prefixes = append(x.Prefixes, p.Masked())
		default:
			return x, bad(key, value, "is not a known key (subnet, gateways, next-hop, prefix)")
		}
	}
	if !x.Pool.Subnet.IsValid() {
		return x, bad("subnet", "", "is missing: gateway ports take their prefix length from it")
	}
	first, last, ok := strings.Cut(gateways, "-")
	var err1, err2 error
	x.Pool.First, err1 = netip.ParseAddr(strings.TrimSpace(first))
	x.Pool.Last, err2 = netip.ParseAddr(strings.TrimSpace(last))
	switch {
	case !ok || err1 != nil || err2 != nil:
		return x, bad("gateways", gateways, "is not a range <first>-<last> of addresses gateways may take (no other host may use them)")
	case !x.Pool.Subnet.Contains(x.Pool.First) || !x.Pool.Subnet.Contains(x.Pool.Last) || x.Pool.Last.Less(x.Pool.First):
		return x, bad("gateways", gateways, "is not an ascending range inside "+x.Pool.Subnet.String())
	case x.Pool.NextHop.IsValid() && !x.Pool.Subnet.Contains(x.Pool.NextHop):
		return x, bad("next-hop", x.Pool.NextHop.String(), "is not inside "+x.Pool.Subnet.String())
	}
	if len(x.Prefixes) == 0 {
		x.Prefixes = []netip.Prefix{x.Pool.Subnet}
	}
	return x, nil
}
