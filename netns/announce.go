package netns

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// Announce tells the network, from interface ifName of the pod's network
// namespace, that mac (with addrs) is now behind this port: a gratuitous
// ARP for each IPv4 address, an unsolicited neighbour advertisement for
// each IPv6 one, and a RARP (what QEMU sends) when there are no addresses.
// Switches on the way, the physical network of a localnet network among
// them, learn where the MAC is now.
//
// Addresses matter: OVN's port security on a port with IP addresses lets
// through only IP, ARP and ND from it, so a RARP from a migrated VM never
// leaves its port.
func Announce(podNetnsPath, ifName string, mac net.HardwareAddr, addrs []netip.Addr) error {
	if len(mac) != 6 {
		return fmt.Errorf("announce %q: not an Ethernet MAC", mac)
	}
	ns, h, err := openPod(podNetnsPath)
	if err != nil {
		return err
	}
	defer ns.Close()
	defer h.Close()
	link, err := h.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("pod interface %s: %w", ifName, err)
	}
	fd, err := socketOfKindInNetns(ns, unix.AF_PACKET, unix.SOCK_RAW, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	frames := [][]byte{}
	for _, a := range addrs {
		if a.Is4() {
			frames = append(frames, garpFrame(mac, a))
		} else {
			frames = append(frames, naFrame(mac, a))
		}
	}
	if len(frames) == 0 {
		frames = append(frames, rarpFrame(mac))
	}
	for _, f := range frames {
		to := &unix.SockaddrLinklayer{Ifindex: link.Attrs().Index, Halen: 6}
		copy(to.Addr[:], f[0:6])
		if err := unix.Sendto(fd, f, 0, to); err != nil {
			return fmt.Errorf("announce %s on %s: %w", mac, ifName, err)
		}
	}
	return nil
}

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// ethernet starts a frame of ethertype from mac to dst, padded to the
// Ethernet minimum.
func ethernet(dst, mac net.HardwareAddr, ethertype uint16, payload []byte) []byte {
	f := make([]byte, max(14+len(payload), 60))
	copy(f[0:6], dst)
	copy(f[6:12], mac)
	binary.BigEndian.PutUint16(f[12:14], ethertype)
	copy(f[14:], payload)
	return f
}

// rarpFrame is a RARP "request reverse" (RFC 903) for mac: sender and
// target hardware address mac, protocol addresses 0.0.0.0.
func rarpFrame(mac net.HardwareAddr) []byte {
	p := make([]byte, 28)
	copy(p[0:8], []byte{0, 1, 0x08, 0x00, 6, 4, 0, 3})
	copy(p[8:14], mac)
	copy(p[18:24], mac)
	return ethernet(broadcast, mac, 0x8035, p)
}

// garpFrame is a gratuitous ARP request: "who has a? tell a", from mac.
func garpFrame(mac net.HardwareAddr, a netip.Addr) []byte {
	ip := a.As4()
	p := make([]byte, 28)
	copy(p[0:8], []byte{0, 1, 0x08, 0x00, 6, 4, 0, 1})
	copy(p[8:14], mac)
	copy(p[14:18], ip[:])
	copy(p[24:28], ip[:])
	return ethernet(broadcast, mac, 0x0806, p)
}

// naFrame is an unsolicited neighbour advertisement (RFC 4861 7.2.6) of a
// with mac as its target link-layer address, to all nodes, override set.
func naFrame(mac net.HardwareAddr, a netip.Addr) []byte {
	src, dst := a.As16(), netip.MustParseAddr("ff02::1").As16()
	icmp := make([]byte, 32)
	icmp[0] = 136  // neighbour advertisement
	icmp[4] = 0x20 // override
	copy(icmp[8:24], src[:])
	icmp[24], icmp[25] = 2, 1 // target link-layer address option, 8 bytes
	copy(icmp[26:32], mac)
	binary.BigEndian.PutUint16(icmp[2:4], icmpv6Checksum(src, dst, icmp))
	ip6 := make([]byte, 40+len(icmp))
	ip6[0] = 0x60
	binary.BigEndian.PutUint16(ip6[4:6], uint16(len(icmp)))
	ip6[6], ip6[7] = 58, 255 // ICMPv6, hop limit 255 as ND requires
	copy(ip6[8:24], src[:])
	copy(ip6[24:40], dst[:])
	copy(ip6[40:], icmp)
	return ethernet(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, mac, 0x86dd, ip6)
}

func icmpv6Checksum(src, dst [16]byte, msg []byte) uint16 {
	var sum uint32
	add := func(b []byte) {
		for i := 0; i+1 < len(b); i += 2 {
			sum += uint32(binary.BigEndian.Uint16(b[i:]))
		}
		if len(b)%2 == 1 {
			sum += uint32(b[len(b)-1]) << 8
		}
	}
	add(src[:])
	add(dst[:])
	var l [8]byte
	binary.BigEndian.PutUint32(l[0:4], uint32(len(msg)))
	l[7] = 58
	add(l[:])
	add(msg)
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}
