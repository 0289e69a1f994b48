package network

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
)

func dhcpConf(t *testing.T, name, subnets, extra string) *netconf.NetConf {
	t.Helper()
	c, err := netconf.Parse([]byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":%q,"enableDHCP":true%s}`, name, subnets, extra)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// The options each subnet's DHCP_Options row carries.
func TestDHCPOptionsOfASubnet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		extra  string
		routes []netns.Route
		cidr   string
		want   map[string]string
	}{
		{"IPv4 defaults", "", nil, "10.1.0.0/24", map[string]string{
			"server_id": "10.1.0.1", "server_mac": "0a:58:0a:01:00:01", "lease_time": "3600", "netmask": "255.255.255.0", "mtu": "1400"}},
		{"IPv4 with lease, DNS of both families and external routes", `,"dhcpLeaseTime":600,"dnsServers":"10.0.0.53,fd00::53,10.0.0.54"`,
			[]netns.Route{{Dst: netip.MustParsePrefix("192.0.2.0/24"), Gateway: netip.MustParseAddr("10.1.0.1")}, {Dst: netip.MustParsePrefix("fd00:99::/64"), Gateway: netip.MustParseAddr("fd00:1::1")}},
			"10.1.0.0/24", map[string]string{
				"server_id": "10.1.0.1", "server_mac": "0a:58:0a:01:00:01", "lease_time": "600", "netmask": "255.255.255.0", "mtu": "1400",
				"dns_server": "{10.0.0.53, 10.0.0.54}", "classless_static_route": "{192.0.2.0/24,10.1.0.1}"}},
		{"IPv6", `,"dnsServers":"10.0.0.53,fd00::53"`, nil, "fd00:1::/64", map[string]string{
			"server_id": "0a:58:00:00:00:01", "dns_server": "{fd00::53}"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := &Network{conf: dhcpConf(t, "n", "10.1.0.0/24,fd00:1::/64", tc.extra), routes: tc.routes}
			if got := n.dhcpOptions(netip.MustParsePrefix(tc.cidr), 1400); !maps.Equal(got, tc.want) {
				t.Errorf("options\n got %v\nwant %v", got, tc.want)
			}
		})
	}
}

// A DHCP network's ports point at their subnets' rows and carry the
// hostname; the server's address is never handed to a pod.
func TestDHCPPorts(t *testing.T) {
	ctx := context.Background()
	endpoint := startSetNB(t)
	r := simNodeWith(t, endpoint, "node-a", Options{WarmPorts: 2}, nil)
	conf := dhcpConf(t, "dhcp-l2", "10.220.0.0/29,fd00:220::/64", "")
	n, err := r.Get(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	if n.warm != nil {
		t.Error("a DHCP network has warm ports: they would lack the pod's hostname")
	}
	d, err := n.DHCPFor(ctx, 1400, "vm-a")
	if err != nil {
		t.Fatal(err)
	}
	rows := r.nb.DHCPOptions(conf.Name)
	if len(rows) != 2 {
		t.Fatalf("%d DHCP_Options rows, want one per subnet", len(rows))
	}
	uuidOf := map[string]string{}
	for _, row := range rows {
		uuidOf[row.Cidr] = row.UUID
	}
	var ports []PortResult
	for i := 0; i < 6; i++ {
		req := podReq(conf.Name, "node-a", fmt.Sprintf("c%d", i))
		req.DHCP = d
		pr := n.CreatePort(ctx, req)
		if pr.Err != nil {
			break
		}
		ports = append(ports, pr)
	}
	// .1 to .6 are usable in a /29; .1 is the DHCP server's.
	if len(ports) != 5 {
		t.Fatalf("%d ports in a /29 with a DHCP server, want 5", len(ports))
	}
	for _, pr := range ports {
		if pr.Addrs[0].Addr() == netip.MustParseAddr("10.220.0.1") {
			t.Errorf("port %s got the DHCP server's address", pr.LSP.Name)
		}
	}
	p := committedPorts(t, endpoint)[ports[0].LSP.Name]
	if p.Dhcpv4Options == nil || *p.Dhcpv4Options != uuidOf["10.220.0.0/29"] {
		t.Errorf("dhcpv4_options %v, want the 10.220.0.0/29 row %s", p.Dhcpv4Options, uuidOf["10.220.0.0/29"])
	}
	if p.Dhcpv6Options == nil || *p.Dhcpv6Options != uuidOf["fd00:220::/64"] {
		t.Errorf("dhcpv6_options %v, want the fd00:220::/64 row %s", p.Dhcpv6Options, uuidOf["fd00:220::/64"])
	}
	if p.Options["hostname"] != `"vm-a"` {
		t.Errorf("options %v, want hostname vm-a", p.Options)
	}

	// Without DHCP, ports carry none of it.
	plain, err := r.Get(ctx, l2conf(t, "plain-l2", "10.221.0.0/29"))
	if err != nil {
		t.Fatal(err)
	}
	if d, err := plain.DHCPFor(ctx, 1400, "x"); err != nil || d != nil {
		t.Fatalf("DHCPFor on a network without DHCP: %v %v", d, err)
	}
	pr := plain.CreatePort(ctx, podReq("plain-l2", "node-a", "p0"))
	if pr.Err != nil {
		t.Fatal(pr.Err)
	}
	q := committedPorts(t, endpoint)[pr.LSP.Name]
	if q.Dhcpv4Options != nil || q.Dhcpv6Options != nil || len(q.Options) != 0 {
		t.Errorf("a port of a network without DHCP has dhcpv4 %v dhcpv6 %v options %v", q.Dhcpv4Options, q.Dhcpv6Options, q.Options)
	}
}
