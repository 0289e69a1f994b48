package network

import (
	"crypto/rand"
	"net"
	"net/netip"
)

// macFor derives a MAC from the first IPv4 address as OVN-Kubernetes does
// (0a:58 followed by the address), so a pod keeps its MAC when it keeps its
// address. With only IPv6 it uses the address's last four bytes; with no
// address it is random. All are locally administered unicast.
func macFor(addrs []netip.Prefix) net.HardwareAddr {
	for _, p := range addrs {
		if p.Addr().Is4() {
			b := p.Addr().As4()
			return net.HardwareAddr{0x0a, 0x58, b[0], b[1], b[2], b[3]}
		}
	}
	for _, p := range addrs {
		b := p.Addr().As16()
		return net.HardwareAddr{0x0a, 0x58, b[12], b[13], b[14], b[15]}
	}
	mac := make(net.HardwareAddr, 6)
	if _, err := rand.Read(mac); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	mac[0] = (mac[0] | 0x02) &^ 0x01
	return mac
}
