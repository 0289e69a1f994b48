package network

import (
	"net/netip"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

func TestMACFor(t *testing.T) {
	tests := []struct {
		name  string
		addrs []string
		want  string
	}{
		{"ipv4 as OVN-Kubernetes does", []string{"10.128.0.5/24"}, "0a:58:0a:80:00:05"},
		{"ipv4 wins in dual stack", []string{"fd00::1:2/64", "10.0.0.1/24"}, "0a:58:0a:00:00:01"},
		{"ipv6 only uses the last four bytes", []string{"fd00::a:b0c:d0e/64"}, "0a:58:0b:0c:0d:0e"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ps []netip.Prefix
			for _, s := range tt.addrs {
				ps = append(ps, netip.MustParsePrefix(s))
			}
			if got := macFor(ps).String(); got != tt.want {
				t.Errorf("macFor(%v) = %s, want %s", tt.addrs, got, tt.want)
			}
		})
	}
	random := macFor(nil)
	if random[0]&0x01 != 0 || random[0]&0x02 == 0 {
		t.Errorf("random MAC %s must be unicast and locally administered", random)
	}
}

func TestPortAddrsAndMAC(t *testing.T) {
	lsp := &nbdb.LogicalSwitchPort{Name: "p", Addresses: []string{"0a:58:0a:00:00:05 10.0.0.5 fd00::5"}}
	got := PortAddrs(lsp)
	if len(got) != 2 || got[0].String() != "10.0.0.5" || got[1].String() != "fd00::5" {
		t.Fatalf("portAddrs = %v", got)
	}
	mac, err := PortMAC(lsp)
	if err != nil || mac.String() != "0a:58:0a:00:00:05" {
		t.Fatalf("portMAC = %v, %v", mac, err)
	}
	if got := PortAddrs(&nbdb.LogicalSwitchPort{Addresses: []string{"0a:58:00:00:00:01"}}); len(got) != 0 {
		t.Fatalf("MAC-only port has addresses %v", got)
	}
	if _, err := PortMAC(&nbdb.LogicalSwitchPort{Name: "empty"}); err == nil {
		t.Fatal("portMAC of a port without addresses succeeded")
	}
}

func TestPrefixListRoundTrip(t *testing.T) {
	in := []netip.Prefix{netip.MustParsePrefix("10.0.0.5/24"), netip.MustParsePrefix("fd00::5/64")}
	out := ParsePrefixList(PrefixList(in))
	if len(out) != 2 || out[0] != in[0] || out[1] != in[1] {
		t.Fatalf("round trip gave %v", out)
	}
}
