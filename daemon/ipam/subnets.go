package ipam

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
)

// ErrNoNodeSubnet is wrapped by NextNodeSubnet when every per-node subnet of
// a cluster subnet is taken.
var ErrNoNodeSubnet = fmt.Errorf("no free node subnet")

// maxNodeSubnetScan bounds the search; a cluster split into more pieces than
// this (e.g. an IPv6 /48 into /112s) is searched only this far.
const maxNodeSubnetScan = 1 << 20

// NextNodeSubnet returns the lowest /hostBits piece of cluster that overlaps
// none of taken. It is how a layer3 node picks the subnet it then claims.
func NextNodeSubnet(cluster netip.Prefix, hostBits int, taken []netip.Prefix) (netip.Prefix, error) {
	cluster = cluster.Masked()
	if hostBits <= cluster.Bits() || hostBits > cluster.Addr().BitLen() {
		return netip.Prefix{}, fmt.Errorf("per-node prefix /%d does not split %s", hostBits, cluster)
	}
	pieces := uint64(1) << min(hostBits-cluster.Bits(), 63)
	for i := uint64(0); i < pieces && i < maxNodeSubnetScan; i++ {
		candidate := netip.PrefixFrom(addOffset(cluster.Addr(), i, cluster.Addr().BitLen()-hostBits), hostBits)
		free := true
		for _, t := range taken {
			if t.Overlaps(candidate) {
				free = false
				break
			}
		}
		if free {
			return candidate, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("all %d /%d subnets of %s are claimed: %w", pieces, hostBits, cluster, ErrNoNodeSubnet)
}

// addOffset returns a + (i << shift) in 128-bit arithmetic.
func addOffset(a netip.Addr, i uint64, shift int) netip.Addr {
	b := a.As16()
	hi, lo := binary.BigEndian.Uint64(b[:8]), binary.BigEndian.Uint64(b[8:])
	var addHi, addLo uint64
	switch {
	case shift >= 128:
	case shift >= 64:
		addHi = i << (shift - 64)
	case shift == 0:
		addLo = i
	default:
		addLo = i << shift
		addHi = i >> (64 - shift)
	}
	lo, carry := bits.Add64(lo, addLo, 0)
	hi, _ = bits.Add64(hi, addHi, carry)
	binary.BigEndian.PutUint64(b[:8], hi)
	binary.BigEndian.PutUint64(b[8:], lo)
	out := netip.AddrFrom16(b)
	if a.Is4() {
		return out.Unmap()
	}
	return out
}
