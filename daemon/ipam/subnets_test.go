package ipam

import (
	"errors"
	"net/netip"
	"testing"
)

func TestNextNodeSubnet(t *testing.T) {
	tests := []struct {
		cluster  string
		hostBits int
		taken    []string
		want     string
		wantErr  bool
	}{
		{"10.128.0.0/16", 24, nil, "10.128.0.0/24", false},
		{"10.128.0.0/16", 24, []string{"10.128.0.0/24", "10.128.2.0/24"}, "10.128.1.0/24", false},
		{"10.128.0.0/16", 24, []string{"10.128.0.0/23"}, "10.128.2.0/24", false},
		{"10.170.0.0/24", 26, []string{"10.170.0.0/26", "10.170.0.64/26", "10.170.0.128/26", "10.170.0.192/26"}, "", true},
		{"fd00:10::/48", 64, []string{"fd00:10::/64"}, "fd00:10:0:1::/64", false},
		{"fd00::/64", 120, []string{"fd00::/120"}, "fd00::100/120", false},
		{"10.0.0.0/8", 9, []string{"10.0.0.0/9"}, "10.128.0.0/9", false},
		{"10.0.0.0/24", 24, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.cluster, func(t *testing.T) {
			got, err := NextNodeSubnet(netip.MustParsePrefix(tt.cluster), tt.hostBits, prefixes(tt.taken...))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("got %s, want an error", got)
				}
				return
			}
			if err != nil || got.String() != tt.want {
				t.Fatalf("got %s %v, want %s", got, err, tt.want)
			}
		})
	}
	_, err := NextNodeSubnet(netip.MustParsePrefix("10.0.0.0/30"), 31, prefixes("10.0.0.0/30"))
	if !errors.Is(err, ErrNoNodeSubnet) {
		t.Fatalf("want ErrNoNodeSubnet, got %v", err)
	}
}
