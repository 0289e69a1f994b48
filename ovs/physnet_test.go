package ovs_test

import (
	"slices"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/ovs"
)

func TestParseBridgeMappings(t *testing.T) {
	tests := []struct {
		in   string
		want map[string]string
	}{
		{"", map[string]string{}},
		{"physnet:br-phys", map[string]string{"physnet": "br-phys"}},
		{"a:br-a, b:br-b", map[string]string{"a": "br-a", "b": "br-b"}},
		{"a:br-a,broken,:br-x,c:", map[string]string{"a": "br-a"}},
	}
	for _, tt := range tests {
		got := ovs.ParseBridgeMappings(tt.in)
		if len(got) != len(tt.want) {
			t.Errorf("%q: %v, want %v", tt.in, got, tt.want)
			continue
		}
		for k, v := range tt.want {
			if got[k] != v {
				t.Errorf("%q: %v, want %v", tt.in, got, tt.want)
			}
		}
	}
}

// TestPhysicalNetworkFollowsOVS: the physical network snapshot follows the
// mappings, the bridge's existence and its uplink's MTU as they change in
// OVS, without being asked to.
func TestPhysicalNetworkFollowsOVS(t *testing.T) {
	c := connect(t)
	saved := vsctl(t, "--if-exists", "get", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings")
	t.Cleanup(func() {
		vsctl(t, "--if-exists", "del-br", "br-test-phys")
		if saved == "" {
			vsctl(t, "remove", "Open_vSwitch", ".", "external_ids", "ovn-bridge-mappings")
		} else {
			vsctl(t, "set", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings="+saved)
		}
	})
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				pb, found := c.PhysicalNetwork("testnet")
				t.Fatalf("%s: never seen (testnet: %+v, mapped %v; all %v)", what, pb, found, c.MappedNetworks())
			}
		}
	}
	vsctl(t, "set", "Open_vSwitch", ".", `external_ids:ovn-bridge-mappings="testnet:br-test-phys"`)
	eventually("mapped, bridge missing", func() bool {
		pb, ok := c.PhysicalNetwork("testnet")
		return ok && pb.Bridge == "br-test-phys" && !pb.Exists && !slices.Contains(c.MappedNetworks(), "testnet")
	})
	veth(t, "tphys0")
	vsctl(t, "add-br", "br-test-phys", "--", "set", "Bridge", "br-test-phys", "datapath_type=netdev",
		"--", "add-port", "br-test-phys", "tphys0", "--", "set", "Interface", "tphys0", "mtu_request=1600")
	eventually("bridge with its uplink's MTU", func() bool {
		pb, ok := c.PhysicalNetwork("testnet")
		return ok && pb.Exists && pb.UplinkMTU == 1600 && slices.Contains(c.MappedNetworks(), "testnet")
	})
	vsctl(t, "set", "Interface", "tphys0", "mtu_request=1450")
	eventually("the uplink's new MTU", func() bool {
		pb, _ := c.PhysicalNetwork("testnet")
		return pb.UplinkMTU == 1450
	})
	vsctl(t, "remove", "Open_vSwitch", ".", "external_ids", "ovn-bridge-mappings")
	eventually("unmapped", func() bool {
		_, ok := c.PhysicalNetwork("testnet")
		return !ok
	})
}
