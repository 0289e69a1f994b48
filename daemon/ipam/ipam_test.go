package ipam

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
)

func prefixes(ss ...string) []netip.Prefix {
	out := make([]netip.Prefix, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParsePrefix(s)
	}
	return out
}

func TestAllocateSequence(t *testing.T) {
	tests := []struct {
		name     string
		subnets  []netip.Prefix
		excluded []netip.Prefix
		want     [][]string // per allocation, addresses in subnet order
		wantErr  bool       // after the wanted allocations, one more fails
	}{
		{
			name:    "ipv4 /30 skips network and broadcast",
			subnets: prefixes("10.0.0.0/30"),
			want:    [][]string{{"10.0.0.1/30"}, {"10.0.0.2/30"}},
			wantErr: true,
		},
		{
			name:     "exclusions are skipped",
			subnets:  prefixes("10.0.0.0/28"),
			excluded: prefixes("10.0.0.0/29", "10.0.0.9/32"),
			want:     [][]string{{"10.0.0.8/28"}, {"10.0.0.10/28"}},
		},
		{
			name:    "dual stack takes one of each",
			subnets: prefixes("10.0.0.0/24", "fd00::/64"),
			want:    [][]string{{"10.0.0.1/24", "fd00::1/64"}, {"10.0.0.2/24", "fd00::2/64"}},
		},
		{
			name:     "fully excluded subnet is exhausted at once",
			subnets:  prefixes("10.0.0.0/29"),
			excluded: prefixes("10.0.0.0/29"),
			wantErr:  true,
		},
		{
			name:    "ipv6 /127 has one usable address",
			subnets: prefixes("fd00::/127"),
			want:    [][]string{{"fd00::1/127"}},
			wantErr: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPool(tt.subnets, tt.excluded)
			for i, want := range tt.want {
				got, err := p.Allocate("owner" + string(rune('a'+i)))
				if err != nil {
					t.Fatalf("allocation %d: %v", i, err)
				}
				if len(got) != len(want) {
					t.Fatalf("allocation %d: got %v, want %v", i, got, want)
				}
				for j := range got {
					if got[j].String() != want[j] {
						t.Fatalf("allocation %d: got %v, want %v", i, got, want)
					}
				}
			}
			_, err := p.Allocate("last")
			if tt.wantErr && !errors.Is(err, ErrExhausted) {
				t.Fatalf("want ErrExhausted, got %v", err)
			}
			if !tt.wantErr && err != nil {
				t.Fatalf("unexpected error %v", err)
			}
		})
	}
}

func TestReleaseAndReuseAfterWrap(t *testing.T) {
	p := NewPool(prefixes("10.0.0.0/29"), nil) // .1 to .6
	for i := 0; i < 6; i++ {
		if _, err := p.Allocate(string(rune('a' + i))); err != nil {
			t.Fatal(err)
		}
	}
	p.Release("c") // 10.0.0.3
	got, err := p.Allocate("z")
	if err != nil || got[0].Addr() != netip.MustParseAddr("10.0.0.3") {
		t.Fatalf("got %v %v, want the released 10.0.0.3", got, err)
	}
	if o, _ := p.Owner(netip.MustParseAddr("10.0.0.3")); o != "z" {
		t.Fatalf("owner %q", o)
	}
}

func TestAllocateIsAllOrNothing(t *testing.T) {
	p := NewPool(prefixes("10.0.0.0/24", "fd00::/127"), nil)
	if _, err := p.Allocate("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Allocate("b"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("want exhaustion of the v6 /127, got %v", err)
	}
	if got := p.InUse(); got != 2 {
		t.Fatalf("failed allocation leaked addresses: %d in use", got)
	}
}

func TestReserveAndObserve(t *testing.T) {
	p := NewPool(prefixes("10.0.0.0/24"), nil)
	a5 := netip.MustParseAddr("10.0.0.5")
	if err := p.Reserve("pending", "", []netip.Addr{a5}); err != nil {
		t.Fatal(err)
	}
	if err := p.Reserve("other", "", []netip.Addr{a5}); !errors.Is(err, ErrInUse) {
		t.Fatalf("want ErrInUse, got %v", err)
	}
	// Another node's port with the same address shows up in the NB: the NB
	// wins, and releasing the losing reservation must not free it.
	p.Observe("remote-port", []netip.Addr{a5})
	p.Release("pending")
	if o, ok := p.Owner(a5); !ok || o != "remote-port" {
		t.Fatalf("owner = %q %v, want remote-port", o, ok)
	}
	if got := p.Addresses("pending"); len(got) != 0 {
		t.Fatalf("pending still holds %v", got)
	}
	// Observed addresses are never handed out.
	for i := 0; i < 250; i++ {
		got, err := p.Allocate("x" + string(rune(i)))
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Addr() == a5 {
			t.Fatal("allocated an observed address")
		}
	}
}

func TestAllocatable(t *testing.T) {
	p := NewPool(prefixes("10.0.0.0/24"), prefixes("10.0.0.128/25"))
	for addr, want := range map[string]bool{
		"10.0.0.0": false, "10.0.0.1": true, "10.0.0.127": true,
		"10.0.0.200": false, "10.0.0.255": false, "10.0.1.1": false,
	} {
		if got := p.Allocatable(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Allocatable(%s) = %v, want %v", addr, got, want)
		}
	}
}

func TestStaticOnlyRanges(t *testing.T) {
	tests := []struct {
		name       string
		subnets    []netip.Prefix
		staticOnly []netip.Prefix
		wantFirst  string // first dynamic allocation
		wantFree   int
	}{
		{"reserved head", prefixes("192.168.1.0/24"), prefixes("192.168.1.0/28"), "192.168.1.16/24", 254 - 15},
		{"reserved middle", prefixes("10.0.0.0/29"), prefixes("10.0.0.1/32", "10.0.0.2/31"), "10.0.0.4/29", 3},
		{"dual stack", prefixes("192.168.1.0/24", "fd00::/120"), prefixes("192.168.1.0/28", "fd00::/124"), "192.168.1.16/24 fd00::10/120", 254 - 15},
		{"none", prefixes("10.0.0.0/29"), nil, "10.0.0.1/29", 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPool(tt.subnets, nil)
			p.SetStaticOnly(tt.staticOnly)
			if got := p.Free(); got != tt.wantFree {
				t.Errorf("Free() = %d, want %d", got, tt.wantFree)
			}
			got, err := p.Allocate("dyn")
			if err != nil {
				t.Fatal(err)
			}
			var s []string
			for _, a := range got {
				s = append(s, a.String())
			}
			if strings.Join(s, " ") != tt.wantFirst {
				t.Errorf("first allocation %v, want %s", s, tt.wantFirst)
			}
			// A static request may take a static-only address.
			for _, r := range tt.staticOnly {
				a := r.Addr().Next()
				if !p.Allocatable(a) {
					t.Errorf("Allocatable(%s) = false for a static-only address", a)
				}
				if err := p.Reserve("static", "", []netip.Addr{a}); err != nil {
					t.Errorf("Reserve(%s): %v", a, err)
				}
			}
		})
	}
	// Dynamic allocation never enters the range, even when the rest is
	// used up.
	p := NewPool(prefixes("10.0.0.0/29"), nil) // .1-.6
	p.SetStaticOnly(prefixes("10.0.0.0/30"))   // .1-.3
	for i := 0; i < 3; i++ {
		if _, err := p.Allocate(fmt.Sprint("pod", i)); err != nil {
			t.Fatalf("allocation %d: %v", i, err)
		}
	}
	if got, err := p.Allocate("one-too-many"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("allocation into the static-only range: %v, %v", got, err)
	}
}

func TestLastAddr(t *testing.T) {
	for in, want := range map[string]string{
		"10.0.0.0/24": "10.0.0.255", "10.0.0.7/29": "10.0.0.7",
		"fd00::/64": "fd00::ffff:ffff:ffff:ffff", "1.2.3.4/32": "1.2.3.4",
	} {
		if got := LastAddr(netip.MustParsePrefix(in)); got.String() != want {
			t.Errorf("LastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestPinnedAddressesOutliveTheirPort(t *testing.T) {
	p := NewPool(prefixes("10.0.0.0/29"), nil) // .1-.6
	a := netip.MustParseAddr("10.0.0.1")
	p.Pin("ns/vm-claim", []netip.Addr{a})
	for i := 0; i < 4; i++ { // .2-.5
		got, err := p.Allocate(string(rune('a' + i)))
		if err != nil {
			t.Fatal(err)
		}
		if got[0].Addr() == a {
			t.Fatal("allocated a pinned address")
		}
	}
	if err := p.Reserve("port-x", "", []netip.Addr{a}); !errors.Is(err, ErrInUse) {
		t.Fatalf("a port without the claim reserved a pinned address: %v", err)
	}
	// The claim's own port may use it, and releasing the port keeps it pinned.
	if err := p.Reserve("vm-port", "ns/vm-claim", []netip.Addr{a}); err != nil {
		t.Fatal(err)
	}
	p.Release("vm-port")
	if _, err := p.Allocate("z"); err != nil {
		t.Fatal(err) // .6 is still free
	}
	if _, err := p.Allocate("zz"); !errors.Is(err, ErrExhausted) {
		t.Fatalf("pinned address handed out after its port left: %v", err)
	}
	// Deleting the claim frees it.
	p.Unpin("ns/vm-claim")
	if got, err := p.Allocate("after"); err != nil || got[0].Addr() != a {
		t.Fatalf("after unpin got %v %v, want %s", got, err, a)
	}
}

func TestFree(t *testing.T) {
	tests := []struct {
		name     string
		subnets  []netip.Prefix
		excluded []netip.Prefix
		taken    []string
		pinned   []string
		want     int
	}{
		{name: "ipv4 /24 minus network and broadcast", subnets: prefixes("10.0.0.0/24"), want: 254},
		{name: "exclusions overlapping the network address count once", subnets: prefixes("10.0.0.0/28"),
			excluded: prefixes("10.0.0.0/29"), want: 7},
		{name: "taken and pinned addresses", subnets: prefixes("10.0.0.0/29"),
			taken: []string{"10.0.0.1", "10.0.0.2"}, pinned: []string{"10.0.0.2", "10.0.0.3"}, want: 3},
		{name: "dual stack: the fullest subnet decides", subnets: prefixes("10.0.0.0/30", "fd00::/64"), taken: []string{"10.0.0.1"}, want: 1},
		{name: "large ipv6 is capped", subnets: prefixes("fd00::/64"), want: 1 << 30},
		{name: "no subnets", want: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := NewPool(tt.subnets, tt.excluded)
			for _, a := range tt.taken {
				p.Observe("port-"+a, []netip.Addr{netip.MustParseAddr(a)})
			}
			for _, a := range tt.pinned {
				p.Pin("claim-"+a, []netip.Addr{netip.MustParseAddr(a)})
			}
			if got := p.Free(); got != tt.want {
				t.Errorf("Free() = %d, want %d", got, tt.want)
			}
		})
	}
}
