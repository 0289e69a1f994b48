package k8s

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// ovnkE2ENAD returns the config of one of OVN-Kubernetes' own e2e NADs,
// verbatim, from the compatibility data the netconf tests run against.
func ovnkE2ENAD(t *testing.T, id string) string {
	t.Helper()
	data, err := os.ReadFile("../../netconf/testdata/ovn-kubernetes-nads.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []struct {
			ID     string `json:"id"`
			Config string `json:"config"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	for _, c := range doc.Cases {
		if c.ID == id {
			return c.Config
		}
	}
	t.Fatalf("no case %s in the compatibility data", id)
	return ""
}

// TestOVNKubernetesE2ENADVerbatim attaches pods through Multus with the NAD
// OVN-Kubernetes' multi-homing e2e suite creates for "an L2 - switched -
// network featuring excludeCIDRs": cniVersion 0.3.0, "vlanID": 0 and every
// optional field written as "".
func TestOVNKubernetesE2ENADVerbatim(t *testing.T) {
	config := ovnkE2ENAD(t, "E2E-04")
	for _, want := range []string{`"cniVersion": "0.3.0"`, `"vlanID": 0`, `"reservedSubnets": ""`} {
		if !strings.Contains(config, want) {
			t.Fatalf("case E2E-04 is not the NAD this test means: no %s in %s", want, config)
		}
	}
	ns := namespace(t, "multi-homing-1234") // its netAttachDefName
	nad := createNAD(t, ns, "tenant-blue", config)
	eventsFor(t, nad, "NetworkConfigAccepted")

	subnet, excluded := netip.MustParsePrefix("172.31.0.0/24"), netip.MustParsePrefix("172.31.0.0/29")
	a := mustRunPod(t, node(0), ns, "pod-a", "tenant-blue")
	b := mustRunPod(t, node(1), ns, "pod-b", "tenant-blue")
	for _, p := range []*runtimePod{a, b} {
		addr := p.ifAddr(t, "net1", false)
		if !subnet.Contains(addr.Addr()) || excluded.Contains(addr.Addr()) || addr.Bits() != 24 {
			t.Errorf("%s net1 = %s, want a /24 address of %s outside %s", p.obj.Name, addr, subnet, excluded)
		}
		if mtu := p.ifMTU(t, "net1"); mtu != 1300 {
			t.Errorf("%s net1 MTU %d, want the NAD's 1300", p.obj.Name, mtu)
		}
		// A 0.3.0 result carries interfaces, so Multus reports the MAC.
		found := false
		for _, st := range p.networkStatus(t) {
			if st.Name == ns+"/tenant-blue" {
				found = true
				if len(st.IPs) != 1 || st.IPs[0] != addr.Addr().String() || st.MAC != p.ifMAC(t, "net1") {
					t.Errorf("%s network-status %+v, want IP %s and net1's MAC", p.obj.Name, st, addr.Addr())
				}
			}
		}
		if !found {
			t.Errorf("%s network-status has no entry for %s/tenant-blue", p.obj.Name, ns)
		}
	}
	a.ping(t, "net1", b.ifAddr(t, "net1", false).Addr())
}

// TestPluginsListNAD attaches through a NAD written as a "plugins" list,
// which Multus flattens before calling us. Its reservedSubnets are kept
// out of dynamic allocation but open to a requested address, and its
// subnets entry with host bits set is read as OVN-Kubernetes reads it,
// which the accepting event notes.
func TestPluginsListNAD(t *testing.T) {
	ns := namespace(t, "conflist")
	nad := createNAD(t, ns, "l2-list", `{
		"cniVersion": "1.0.0",
		"name": "conflist-net",
		"plugins": [{
			"type": "ovn-k8s-cni-overlay",
			"topology": "layer2",
			"subnets": "10.91.0.1/24",
			"reservedSubnets": "10.91.0.0/28",
			"netAttachDefName": "conflist/l2-list",
			"capabilities": {"ips": true}
		}]
	}`)
	events := eventsFor(t, nad, "NetworkConfigAccepted")
	noted := false
	for _, ev := range events {
		noted = noted || strings.Contains(ev.Message, `read as "10.91.0.0/24"`)
	}
	if !noted {
		t.Errorf("the accepting event does not note the masked subnet: %v", events)
	}

	reserved := netip.MustParsePrefix("10.91.0.0/28")
	dynamic := mustRunPod(t, node(0), ns, "dynamic", "l2-list")
	got := dynamic.ifAddr(t, "net1", false)
	if reserved.Contains(got.Addr()) || !netip.MustParsePrefix("10.91.0.0/24").Contains(got.Addr()) {
		t.Errorf("dynamic address %s, want one of 10.91.0.0/24 outside reservedSubnets %s", got, reserved)
	}
	static := mustRunPod(t, node(1), ns, "static", `[{"name":"l2-list","ips":["10.91.0.5/24"]}]`)
	if a := static.ifAddr(t, "net1", false); a.String() != "10.91.0.5/24" {
		t.Errorf("requested reserved address: got %s, want 10.91.0.5/24", a)
	}
	static.ping(t, "net1", got.Addr())
}

// TestOVNKubernetesLocalnetNADVerbatim attaches pods through Multus with the
// NAD OVN-Kubernetes' multi-homing e2e suite creates for "a localnet -
// switched - network": VLAN 10, mtu 1300, and physicalNetworkName "", so
// the physical network is the network's own name, which the nodes map as
// OVN-Kubernetes' e2e setup does. Pods on both nodes and a host on VLAN 10
// of the physical network reach each other.
func TestOVNKubernetesLocalnetNADVerbatim(t *testing.T) {
	config := ovnkE2ENAD(t, "E2E-08")
	for _, want := range []string{`"topology":"localnet"`, `"vlanID": 10`, `"physicalNetworkName": ""`, `"mtu": 1300`} {
		if !strings.Contains(config, want) {
			t.Fatalf("case E2E-08 is not the NAD this test means: no %s in %s", want, config)
		}
	}
	// OVN-Kubernetes' suite names every case's network "<random
	// prefix>_tenant-blue" and TestOVNKubernetesE2ENADVerbatim already has
	// this prefix's layer2 one: another prefix, as the suite would pick.
	config = strings.ReplaceAll(config, "abcde_tenant-blue", "fghij_tenant-blue")
	for _, n := range e.cluster.Nodes {
		mapPhysicalNetwork(t, n, "fghij_tenant-blue")
	}
	ext := e.cluster.External()
	extAddr := netip.MustParsePrefix("60.128.0.254/24")
	if err := ext.AddAddress(10, extAddr); err != nil {
		t.Fatal(err)
	}
	ns := namespace(t, "multi-homing-1234")
	nad := createNAD(t, ns, "tenant-blue-localnet", strings.Replace(config, "multi-homing-1234/tenant-blue", ns+"/tenant-blue-localnet", 1))
	eventsFor(t, nad, "NetworkConfigAccepted")
	a := mustRunPod(t, node(0), ns, "ln-pod-a", "tenant-blue-localnet")
	b := mustRunPod(t, node(1), ns, "ln-pod-b", "tenant-blue-localnet")
	subnet := netip.MustParsePrefix("60.128.0.0/24")
	for _, p := range []*runtimePod{a, b} {
		if addr := p.ifAddr(t, "net1", false); !subnet.Contains(addr.Addr()) || addr.Addr() == extAddr.Addr() {
			t.Errorf("%s net1 = %s, want an address of %s", p.obj.Name, addr, subnet)
		}
		if mtu := p.ifMTU(t, "net1"); mtu != 1300 {
			t.Errorf("%s net1 MTU %d, want the NAD's 1300", p.obj.Name, mtu)
		}
	}
	a.ping(t, "net1", b.ifAddr(t, "net1", false).Addr())
	b.ping(t, "net1", extAddr.Addr())
}

// mapPhysicalNetwork adds phys to the node's bridge mappings (on br-phys),
// keeping the others, as an admin would, and takes it out again after the
// test.
func mapPhysicalNetwork(t *testing.T, n *sandbox.Node, phys string) {
	t.Helper()
	vsctl := func(args ...string) string {
		out, err := n.Run(append([]string{"ovs-vsctl", "--db=" + n.OVS}, args...)...)
		if err != nil {
			t.Fatalf("ovs-vsctl on %s: %v", n.Name, err)
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	saved := vsctl("get", "Open_vSwitch", ".", "external_ids:ovn-bridge-mappings")
	vsctl("set", "Open_vSwitch", ".", fmt.Sprintf("external_ids:ovn-bridge-mappings=%q", saved+","+phys+":"+n.PhysicalBridge))
	t.Cleanup(func() { vsctl("set", "Open_vSwitch", ".", fmt.Sprintf("external_ids:ovn-bridge-mappings=%q", saved)) })
}
