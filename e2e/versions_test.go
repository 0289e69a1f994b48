package e2e

import (
	"net/netip"
	"testing"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"
)

// TestEveryCNIVersion attaches through the real plugin binary with every
// cniVersion OVN-Kubernetes' NADs may carry (its e2e suite writes 0.3.0;
// its unit-test configs none at all) and checks that each result is in the
// version asked for and that CHECK is refused before 0.4.0, as the spec
// says.
func TestEveryCNIVersion(t *testing.T) {
	network := "l2-versions-" + randomID()[:4]
	subnet := "10.41.0.0/24"
	p := newPod(t, node(t, 0), "versions")
	tests := []struct {
		version    string // "" leaves cniVersion out
		resultAs   string // the version the result is parsed as
		interfaces bool   // results from 0.3.0 on list interfaces
		check      bool   // CHECK exists from 0.4.0 on
	}{
		{"", "0.1.0", false, false},
		{"0.2.0", "0.2.0", false, false},
		{"0.3.0", "0.3.0", true, false},
		{"0.3.1", "0.3.1", true, false},
		{"0.4.0", "0.4.0", true, true},
		{"1.0.0", "1.0.0", true, true},
		{"1.1.0", "1.1.0", true, true},
	}
	for i, tt := range tests {
		t.Run("cniVersion="+tt.version, func(t *testing.T) {
			conf := map[string]any{"cniVersion": tt.version}
			if tt.version == "" {
				conf = map[string]any{"cniVersion": nil}
			}
			config := layer2Config(network, subnet, conf)
			ifName := "net" + string(rune('1'+i))
			out, err := invoke(t, p, "ADD", ifName, config)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() { _, _ = invoke(t, p, "DEL", ifName, config) })
			r, err := version.NewResult(tt.resultAs, out)
			if err != nil {
				t.Fatalf("result %s is not a %s result: %v", out, tt.resultAs, err)
			}
			if r.Version() != tt.resultAs {
				t.Errorf("result version %s, want %s", r.Version(), tt.resultAs)
			}
			res, err := current.GetResult(r)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.IPs) != 1 || !netip.MustParsePrefix(subnet).Contains(netip.MustParseAddr(res.IPs[0].Address.IP.String())) {
				t.Errorf("result addresses %v, want one of %s", res.IPs, subnet)
			}
			if got := len(res.Interfaces) > 0; got != tt.interfaces {
				t.Errorf("result lists interfaces: %v, want %v (%s)", got, tt.interfaces, out)
			}
			_, err = invoke(t, p, "CHECK", ifName, checkConf(network, subnet, out, conf))
			switch {
			case tt.check && err != nil:
				t.Errorf("CHECK: %v", err)
			case !tt.check:
				cniError(t, err, types.ErrIncompatibleCNIVersion, "CHECK")
			}
		})
	}
}
