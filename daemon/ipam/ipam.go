// Package ipam hands out pod addresses from a network's subnets.
//
// A Pool is an in-memory index, not the source of truth: the addresses of
// every logical switch port in the Northbound database are. The daemon feeds
// the pool what the NB holds (Observe/Forget, from its cache's events) and
// reserves candidates for ports it is about to create (Allocate/Reserve).
// Whether a candidate really is free across the cluster is settled by the
// NB transaction that creates the port, not here.
package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"sync"
)

// ErrExhausted is wrapped by Allocate when a subnet has no free address.
var ErrExhausted = errors.New("no free address")

// ErrInUse is wrapped by Reserve when an address belongs to another owner.
var ErrInUse = errors.New("address already in use")

// Pool tracks which addresses of a set of subnets are taken, and by whom.
// It is safe for concurrent use.
type Pool struct {
	mu       sync.Mutex
	subnets  []netip.Prefix
	excluded []netip.Prefix
	// staticOnly ranges (a NAD's reservedSubnets) are never allocated,
	// but static requests may use them.
	staticOnly []netip.Prefix
	owner      map[netip.Addr]string
	owned      map[string][]netip.Addr
	// pinned addresses belong to a persistent claim (an IPAMClaim): never
	// handed to anyone else, even while no port uses them.
	pinned map[netip.Addr]string
	// cursor remembers where the last search of each subnet stopped, so
	// allocation does not rescan the taken head of the range every time
	// and released addresses are not reused immediately.
	cursor []netip.Addr
}

// NewPool returns a pool over subnets, never handing out anything inside
// excluded, nor any subnet's network address or IPv4 broadcast address.
func NewPool(subnets, excluded []netip.Prefix) *Pool {
	p := &Pool{
		subnets:  make([]netip.Prefix, len(subnets)),
		excluded: append([]netip.Prefix(nil), excluded...),
		owner:    map[netip.Addr]string{},
		owned:    map[string][]netip.Addr{},
		pinned:   map[netip.Addr]string{},
		cursor:   make([]netip.Addr, len(subnets)),
	}
	for i, s := range subnets {
		p.subnets[i] = s.Masked()
		p.cursor[i] = p.subnets[i].Addr()
	}
	return p
}

// SetStaticOnly keeps ranges out of Allocate while leaving them to static
// requests (Reserve), as OVN-Kubernetes' reservedSubnets do. Call it before
// the pool is used.
func (p *Pool) SetStaticOnly(ranges []netip.Prefix) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.staticOnly = append([]netip.Prefix(nil), ranges...)
}

// Allocate reserves one address from every subnet for owner and returns
// them with their subnet's prefix length. It allocates nothing if any
// subnet is exhausted.
func (p *Pool) Allocate(owner string) ([]netip.Prefix, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	picked := make([]netip.Prefix, 0, len(p.subnets))
	for i, s := range p.subnets {
		a, ok := p.nextFree(i)
		if !ok {
			return nil, fmt.Errorf("subnet %s: %w (%d addresses in use)", s, ErrExhausted, p.inUse(s))
		}
		picked = append(picked, netip.PrefixFrom(a, s.Bits()))
	}
	for i, pfx := range picked {
		p.take(owner, pfx.Addr())
		p.cursor[i] = pfx.Addr().Next()
	}
	return picked, nil
}

// Reserve marks addrs as owner's (static addresses asked for by a request).
// It fails, reserving nothing, if an address belongs to someone else or is
// pinned by a claim other than claim ("" for none).
func (p *Pool) Reserve(owner, claim string, addrs []netip.Addr) error {
	return p.ReserveShared(owner, claim, "", addrs)
}

// ReserveShared is Reserve for a port that shares its addresses with
// another port, sharer: a live-migration target holds the VM's addresses
// while its source port still does. An address sharer holds is no
// conflict; the last of the two to be recorded owns it in the index.
func (p *Pool) ReserveShared(owner, claim, sharer string, addrs []netip.Addr) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range addrs {
		if o, ok := p.owner[a]; ok && o != owner && (sharer == "" || o != sharer) {
			return fmt.Errorf("%s: %w by %s", a, ErrInUse, o)
		}
		if c, ok := p.pinned[a]; ok && c != claim {
			return fmt.Errorf("%s: %w: it is held by IPAMClaim %s", a, ErrInUse, c)
		}
	}
	for _, a := range addrs {
		if o, ok := p.owner[a]; ok && o != owner {
			p.drop(o, a)
		}
		p.take(owner, a)
	}
	return nil
}

// Observe records that the NB says owner holds addrs. The NB is the truth:
// this overrides any local reservation of the same addresses.
func (p *Pool) Observe(owner string, addrs []netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range addrs {
		if prev, ok := p.owner[a]; ok && prev != owner {
			p.drop(prev, a)
		}
		p.take(owner, a)
	}
}

// Pin reserves addrs for claim (an IPAMClaim's addresses), whoever uses
// them now. Pinning again replaces the claim's previous addresses.
func (p *Pool) Pin(claim string, addrs []netip.Addr) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for a, c := range p.pinned {
		if c == claim {
			delete(p.pinned, a)
		}
	}
	for _, a := range addrs {
		p.pinned[a] = claim
	}
}

// Unpin drops claim's pins: its addresses become free unless a port uses
// them.
func (p *Pool) Unpin(claim string) { p.Pin(claim, nil) }

// Release frees every address owner holds.
func (p *Pool) Release(owner string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, a := range p.owned[owner] {
		if p.owner[a] == owner {
			delete(p.owner, a)
		}
	}
	delete(p.owned, owner)
}

// Owner returns who holds addr.
func (p *Pool) Owner(addr netip.Addr) (string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	o, ok := p.owner[addr]
	return o, ok
}

// Addresses returns what owner holds.
func (p *Pool) Addresses(owner string) []netip.Addr {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]netip.Addr(nil), p.owned[owner]...)
}

// InUse counts the addresses taken.
func (p *Pool) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.owner)
}

// Allocatable reports whether a static request may take addr: it lies in a
// subnet, outside the exclusions, and is not a network or broadcast
// address. Static-only ranges are allowed: that is what they are for.
func (p *Pool) Allocatable(addr netip.Addr) bool {
	for _, s := range p.subnets {
		if s.Contains(addr) {
			return !p.excludedOrSpecial(s, addr)
		}
	}
	return false
}

func (p *Pool) take(owner string, a netip.Addr) {
	if p.owner[a] == owner {
		return
	}
	p.owner[a] = owner
	p.owned[owner] = append(p.owned[owner], a)
}

func (p *Pool) drop(owner string, a netip.Addr) {
	list := p.owned[owner]
	for i, x := range list {
		if x == a {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(p.owned, owner)
	} else {
		p.owned[owner] = list
	}
}

func (p *Pool) inUse(s netip.Prefix) int {
	n := 0
	for a := range p.owner {
		if s.Contains(a) {
			n++
		}
	}
	return n
}

// nextFree scans subnet i from its cursor, wrapping once, skipping excluded
// ranges in one step each.
func (p *Pool) nextFree(i int) (netip.Addr, bool) {
	s := p.subnets[i]
	start := p.cursor[i]
	if !s.Contains(start) {
		start = s.Addr()
	}
	c, wrapped := start, false
	for {
		if !s.Contains(c) {
			if wrapped {
				return netip.Addr{}, false
			}
			c, wrapped = s.Addr(), true
		}
		if wrapped && !c.Less(start) {
			return netip.Addr{}, false
		}
		if ex, ok := p.skipped(c); ok {
			c = LastAddr(ex).Next()
			continue
		}
		_, taken := p.owner[c]
		_, pinned := p.pinned[c]
		if taken || pinned || isSpecial(s, c) {
			c = c.Next()
			continue
		}
		return c, true
	}
}

func (p *Pool) exclusionOf(a netip.Addr) (netip.Prefix, bool) {
	for _, ex := range p.excluded {
		if ex.Contains(a) {
			return ex, true
		}
	}
	return netip.Prefix{}, false
}

// skipped is the excluded or static-only range holding a, which Allocate
// jumps over.
func (p *Pool) skipped(a netip.Addr) (netip.Prefix, bool) {
	if ex, ok := p.exclusionOf(a); ok {
		return ex, true
	}
	for _, r := range p.staticOnly {
		if r.Contains(a) {
			return r, true
		}
	}
	return netip.Prefix{}, false
}

func (p *Pool) excludedOrSpecial(s netip.Prefix, a netip.Addr) bool {
	_, ex := p.exclusionOf(a)
	return ex || isSpecial(s, a)
}

// isSpecial is the subnet's network address, and for IPv4 subnets wider
// than /31 its broadcast address.
func isSpecial(s netip.Prefix, a netip.Addr) bool {
	if a == s.Addr() {
		return true
	}
	return a.Is4() && s.Bits() < 31 && a == LastAddr(s)
}

// LastAddr returns the highest address of p.
func LastAddr(p netip.Prefix) netip.Addr {
	p = p.Masked()
	b := p.Addr().AsSlice()
	for bit := p.Bits(); bit < len(b)*8; bit++ {
		b[bit/8] |= 0x80 >> (bit % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// Free is the number of addresses Allocate could still hand out before the
// fullest subnet runs out. Subnets of up to 2^16 addresses are counted
// exactly; larger ones (IPv6, effectively endless) approximately, capped at
// 2^30. It costs up to O(2^16 + addresses in use): for callers off the hot
// path only.
func (p *Pool) Free() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	free := -1
	for _, s := range p.subnets {
		n := p.freeIn(s)
		if free < 0 || n < free {
			free = n
		}
	}
	return max(free, 0)
}

func (p *Pool) freeIn(s netip.Prefix) int {
	hostBits := s.Addr().BitLen() - s.Bits()
	if hostBits <= 16 {
		n := 0
		for a := s.Addr(); s.Contains(a); a = a.Next() {
			_, taken := p.owner[a]
			_, pinned := p.pinned[a]
			_, skip := p.skipped(a)
			if !taken && !pinned && !skip && !isSpecial(s, a) {
				n++
			}
		}
		return n
	}
	n := 1 << 30
	if hostBits < 30 {
		n = 1 << hostBits
	}
	for a := range p.owner {
		if s.Contains(a) {
			n--
		}
	}
	for a := range p.pinned {
		if _, taken := p.owner[a]; !taken && s.Contains(a) {
			n--
		}
	}
	return n
}
