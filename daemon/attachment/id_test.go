package attachment

import (
	"strings"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/externalids"
)

// Identities whose parts differ only in where they are split would encode
// alike under a plain "." (or any separator) join. Each pair here must get
// different names: two attachments sharing a port name would share a
// logical switch port, and a DEL of one would delete the other's.
func TestIdentitiesThatCollideUnderAJoinGetDistinctNames(t *testing.T) {
	tests := []struct {
		name string
		a, b ID
	}{
		{
			name: "dot moves from container ID into network",
			a:    ID{Network: "a", ContainerID: "x.c1", IfName: "net1"},
			b:    ID{Network: "a.x", ContainerID: "c1", IfName: "net1"},
		},
		{
			name: "dot moves from interface into container ID",
			a:    ID{Network: "n", ContainerID: "c1", IfName: "x.net1"},
			b:    ID{Network: "n", ContainerID: "c1.x", IfName: "net1"},
		},
		{
			name: "network/container split without separator (ab,c vs a,bc)",
			a:    ID{Network: "ab", ContainerID: "c", IfName: "net1"},
			b:    ID{Network: "a", ContainerID: "bc", IfName: "net1"},
		},
		{
			name: "container/ifname split without separator",
			a:    ID{Network: "n", ContainerID: "ab", IfName: "c"},
			b:    ID{Network: "n", ContainerID: "a", IfName: "bc"},
		},
		{
			name: "empty part moves",
			a:    ID{Network: "n", ContainerID: "", IfName: "c1net1"},
			b:    ID{Network: "n", ContainerID: "c1net1", IfName: ""},
		},
		{
			name: "parts whose bytes look like a length prefix",
			a:    ID{Network: "n", ContainerID: "\x00\x00\x00\x00\x00\x00\x00\x01x", IfName: ""},
			b:    ID{Network: "n", ContainerID: "", IfName: "x"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.a == tt.b {
				t.Fatal("bad test: identical identities")
			}
			if tt.a.Hash() == tt.b.Hash() {
				t.Errorf("Hash: %v and %v both give %s", tt.a, tt.b, tt.a.Hash())
			}
			// PortName keeps only 24 of the hash's 32 digits: still distinct.
			if tt.a.PortName() == tt.b.PortName() {
				t.Errorf("PortName: %v and %v both give %s", tt.a, tt.b, tt.a.PortName())
			}
			if tt.a.LinkAlias() == tt.b.LinkAlias() {
				t.Errorf("LinkAlias: %v and %v both give %s", tt.a, tt.b, tt.a.LinkAlias())
			}
		})
	}
}

// Names are recomputed by every verb (ADD, DEL, CHECK, a restarted
// daemon): they must depend on the identity alone.
func TestNamesAreDeterministic(t *testing.T) {
	id := ID{Network: "blue", ContainerID: "0123456789abcdef", IfName: "net1"}
	same := ID{Network: "blue", ContainerID: "0123456789abcdef", IfName: "net1"}
	if id.Hash() != same.Hash() || id.PortName() != same.PortName() || id.LinkAlias() != same.LinkAlias() {
		t.Fatalf("equal identities give different names: %s/%s vs %s/%s", id.Hash(), id.PortName(), same.Hash(), same.PortName())
	}
	for i := 0; i < 3; i++ {
		if id.Hash() != same.Hash() {
			t.Fatal("Hash changes between calls")
		}
	}
	if h := id.Hash(); len(h) != 32 || strings.Trim(h, "0123456789abcdef") != "" {
		t.Errorf("Hash() = %q, want 32 lowercase hex digits", h)
	}
	// The network stays readable in ovn-nbctl; the hash part is 24 digits.
	if want := "ovn-overlay.blue." + id.Hash()[:24]; id.PortName() != want {
		t.Errorf("PortName() = %q, want %q", id.PortName(), want)
	}
	// Reconcile tells our veths by this prefix.
	if !strings.HasPrefix(id.LinkAlias(), LinkAliasPrefix) || id.LinkAlias() != LinkAliasPrefix+id.Hash() {
		t.Errorf("LinkAlias() = %q, want %q+hash", id.LinkAlias(), LinkAliasPrefix)
	}
}

// A row's identity survives the trip through external_ids, and a row that
// carries only part of one (a warm port, a router link, a half-written
// row) is nobody's: treating it as an attachment would let a DEL of
// ("net", "", "") match it.
func TestExternalIDsRoundTrip(t *testing.T) {
	id := ID{Network: "blue", ContainerID: "c1", IfName: "net1"}
	ids := id.ExternalIDs()
	got, ok := FromExternalIDs(ids)
	if !ok || got != id {
		t.Fatalf("FromExternalIDs(%v) = %v, %v; want %v, true", ids, got, ok, id)
	}
	if !id.Carries(ids) {
		t.Error("an identity does not carry its own external_ids")
	}
	// Other keys on the row (owner, node, addresses...) do not matter.
	ids[externalids.Owner] = externalids.OwnerValue
	ids[externalids.Node] = "node1"
	if !id.Carries(ids) {
		t.Error("extra keys hide the identity")
	}

	tests := []struct {
		name string
		ids  map[string]string
	}{
		{"nil", nil},
		{"empty", map[string]string{}},
		{"warm port: network only", map[string]string{externalids.Network: "blue", externalids.Warm: "true", externalids.Node: "node1"}},
		{"no container ID", map[string]string{externalids.Network: "blue", externalids.IfName: "net1"}},
		{"no ifname", map[string]string{externalids.Network: "blue", externalids.ContainerID: "c1"}},
		{"no network", map[string]string{externalids.ContainerID: "c1", externalids.IfName: "net1"}},
		{"empty container ID", map[string]string{externalids.Network: "blue", externalids.ContainerID: "", externalids.IfName: "net1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got, ok := FromExternalIDs(tt.ids); ok {
				t.Errorf("FromExternalIDs(%v) = %v, true; want a partial identity refused", tt.ids, got)
			}
			// Even the matching zero-ish identity is not carried.
			partial := ID{Network: tt.ids[externalids.Network], ContainerID: tt.ids[externalids.ContainerID], IfName: tt.ids[externalids.IfName]}
			if partial.Carries(tt.ids) {
				t.Errorf("%v.Carries(%v) = true for a partial identity", partial, tt.ids)
			}
		})
	}

	// Another attachment's row is not this one's, whichever part differs.
	for _, other := range []ID{
		{Network: "red", ContainerID: "c1", IfName: "net1"},
		{Network: "blue", ContainerID: "c2", IfName: "net1"},
		{Network: "blue", ContainerID: "c1", IfName: "net2"},
	} {
		if id.Carries(other.ExternalIDs()) {
			t.Errorf("%v carries %v's external_ids", id, other)
		}
	}
}

func TestNewHostLinkName(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		name := NewHostLinkName()
		// IFNAMSIZ is 16 bytes with the NUL: 15 usable.
		if len(name) != 15 {
			t.Fatalf("NewHostLinkName() = %q: %d bytes, want 15", name, len(name))
		}
		if !IsHostLinkName(name) {
			t.Fatalf("IsHostLinkName(%q) = false for a name NewHostLinkName made", name)
		}
		// Random, so that a re-ADD does not reuse a name ovs-vswitchd is
		// still removing. 52 random bits: a repeat in 1000 draws would
		// mean the randomness is broken.
		if seen[name] {
			t.Fatalf("NewHostLinkName() repeated %q", name)
		}
		seen[name] = true
	}
}

// The start-up reconcile deletes alias-less veths whose name passes
// IsHostLinkName: it must not pass anything NewHostLinkName cannot make,
// or it deletes someone else's link.
func TestIsHostLinkNameRejectsOtherNames(t *testing.T) {
	tests := []struct {
		name string
		link string
	}{
		{"empty", ""},
		{"too short", "ov0123456789ab"},
		{"too long", "ov0123456789abcd"},
		{"wrong prefix", "ox0123456789abc"},
		{"upper-case prefix", "OV0123456789abc"},
		{"common host link", "eth0"},
		{"ovs system port", "ovs-system"},
		{"veth from another CNI", "veth0123456789a"},
		{"non-hex in body", "ov0123456789xbc"},
		{"non-hex last digit", "ov0123456789abg"},
		{"upper-case last digit", "ov0123456789abC"},
		{"dash", "ov-123456789abc"},
		{"15 bytes, multibyte rune", "ov0123456789aé"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if IsHostLinkName(tt.link) {
				t.Errorf("IsHostLinkName(%q) = true, want false", tt.link)
			}
		})
	}
}

// NewHostLinkName only ever writes lower-case hex, but IsHostLinkName
// checks digits 3-14 with hex.DecodeString, which also accepts upper case:
// "ovABCDEF0123456" passes although NewHostLinkName can never produce it
// (while an upper-case 15th digit is refused), so the start-up reconcile
// would delete such an alias-less veth of another program.
func TestIsHostLinkNameRejectsUpperCaseHex(t *testing.T) {
	for _, link := range []string{"ovABCDEF0123456", "ov0123456789ABc", "ovAbCdEf012345a"} {
		if IsHostLinkName(link) {
			t.Errorf("IsHostLinkName(%q) = true; NewHostLinkName never makes upper-case names", link)
		}
	}
}
