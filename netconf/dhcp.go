package netconf

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// DHCP is OVN's native DHCP for a network's pods and VMs (issue 15): OVN
// itself answers DHCPv4 and DHCPv6 requests on every port of the network
// with the port's own addresses. VMs need it: a VM's guest configures its
// interface by DHCP, and KubeVirt's bridge binding does not serve
// secondary networks' addresses.
type DHCP struct {
	// LeaseTime is the offered lease, in seconds.
	LeaseTime int
	// DNSServers are offered as the DHCP DNS option, per IP family.
	DNSServers []netip.Addr
}

// DefaultDHCPLeaseTime is an hour: a guest renews at half of it, and the
// addresses never change anyway (the port's are the only ones offered).
const DefaultDHCPLeaseTime = 3600

// parseDHCP reads "enableDHCP" (opt-in), "dhcpLeaseTime" and "dnsServers".
func parseDHCP(r *raw, c *NetConf) error {
	on, err := boolField("enableDHCP", r.all["enableDHCP"])
	if err != nil {
		return err
	}
	lease, leaseSet, err := intField("dhcpLeaseTime", r.all["dhcpLeaseTime"])
	if err != nil {
		return err
	}
	dns, err := parseDNSServers(r.all["dnsServers"])
	if err != nil {
		return err
	}
	if !on {
		if leaseSet || len(dns) > 0 {
			key := "dhcpLeaseTime"
			if !leaseSet {
				key = "dnsServers"
			}
			return fieldErr(key, "", "only applies with OVN's DHCP, which this network does not enable", "add \"enableDHCP\": true, or remove it")
		}
		return nil
	}
	switch {
	case c.Topology == Layer3:
		return fieldErr("enableDHCP", "true", "is supported on layer2 and localnet networks, which VMs use", "remove it, or use \"topology\": \"layer2\"")
	case len(c.Subnets) == 0:
		return fieldErr("enableDHCP", "true", "needs \"subnets\": DHCP offers each port its addresses from them", "add \"subnets\"")
	}
	if !leaseSet {
		lease = DefaultDHCPLeaseTime
	}
	if lease < 60 || lease > 1<<31-1 {
		return fieldErr("dhcpLeaseTime", strconv.Itoa(lease), "must be between 60 and 2147483647 seconds", "write e.g. \"dhcpLeaseTime\": 3600")
	}
	c.DHCP = &DHCP{LeaseTime: lease, DNSServers: dns}
	return nil
}

func parseDNSServers(v json.RawMessage) ([]netip.Addr, error) {
	const field = "dnsServers"
	s, _, err := stringField(field, v)
	if err != nil || strings.TrimSpace(s) == "" {
		return nil, err
	}
	var out []netip.Addr
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		a, err := netip.ParseAddr(entry)
		if err != nil || a.Zone() != "" {
			return nil, fieldErr(field, strconv.Quote(entry), "is not an IP address", fmt.Sprintf("write a comma-separated list, e.g. %q", "10.96.0.10,fd00:10:96::a"))
		}
		out = append(out, a.Unmap())
	}
	return out, nil
}
