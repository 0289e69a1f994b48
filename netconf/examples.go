package netconf

// The NetworkAttachmentDefinition configs of the OVN-Kubernetes multi-homing
// guide, verbatim (indentation included). The demo applies them and the
// tests parse them, so "NADs written for OVN-Kubernetes work unchanged" is
// checked against the real text.
const (
	SpecLayer3Config = `{
            "cniVersion": "0.3.1",
            "name": "l3-network",
            "type": "ovn-k8s-cni-overlay",
            "topology":"layer3",
            "subnets": "10.128.0.0/16/24",
            "mtu": 1300,
            "netAttachDefName": "left-one/l3-network"
    }`
	SpecLayer2Config = `{
            "cniVersion": "0.3.1",
            "name": "not-so-fast-network",
            "type": "ovn-k8s-cni-overlay",
            "topology":"layer2",
            "subnets": "10.128.0.0/24",
            "mtu": 1300,
            "netAttachDefName": "left-one/not-so-fast-network"
    }`
	// SpecLocalnetConfig is the localnet example of the multi-homing guide
	// as OVN-Kubernetes publishes it (docs/features/multiple-networks/
	// multi-homing.md; compatibility case DOC-03): VLAN 33 of the physical
	// network "tenantblack", which nodes map in ovn-bridge-mappings.
	SpecLocalnetConfig = `{
            "cniVersion": "1.0.0",
            "name": "tenantblack",
            "type": "ovn-k8s-cni-overlay",
            "topology":"localnet",
            "subnets": "202.10.130.112/28",
            "vlanID": 33,
            "mtu": 1500,
            "netAttachDefName": "ns1/localnet-network"
    }`
)
