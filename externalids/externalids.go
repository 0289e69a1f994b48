// Package externalids is the one list of the external_ids keys this
// project reads or writes on OVN Northbound and Open_vSwitch rows, with
// what each one means. Keeping them in one place makes it possible to see
// at a glance what a row of ours carries, and what an operator can rely on
// when looking at the databases by hand.
package externalids

// Ownership. Every row this project creates carries Owner=OwnerValue;
// nothing without it is ever modified or deleted, and the NB monitor is
// conditional on it so other systems' rows cost no memory.
const (
	Owner      = "ovn-overlay/owner"
	OwnerValue = "ovn-overlay"
)

// The network a row belongs to, and its shape.
const (
	// Network names the secondary network (the NAD config's "name").
	Network = "ovn-overlay/network"
	// Topology is the network's topology (layer2, layer3, localnet).
	Topology = "ovn-overlay/topology"
	// Fingerprint holds the network config's fingerprint on the network's
	// switch or router, so a second config for the same network with a
	// different shape is detected.
	Fingerprint = "ovn-overlay/fingerprint"
	// Node is the node whose daemon created a row (ports, layer3 node
	// switches and router ports, warm ports).
	Node = "ovn-overlay/node"
	// Switch names the logical switch a port was created on.
	Switch = "ovn-overlay/switch"
	// NodeSubnetsPrefix prefixes the layer3 router key recording a node's
	// claim on its per-node subnets:
	// "ovn-overlay/node-subnets/<node>" = "10.128.1.0/24,fd00:10:0:1::/64".
	NodeSubnetsPrefix = "ovn-overlay/node-subnets/"
)

// The attachment identity, as CNI defines it: network (above), container
// ID and interface name. Logical switch ports serving a pod, the pod's OVS
// Interface, and (as the link alias) its host veth all carry it, so that
// whichever of them survives a crash, a later DEL, GC or the start-up
// reconcile finds the rest.
const (
	ContainerID = "ovn-overlay/container-id"
	IfName      = "ovn-overlay/ifname"
)

// Who the attachment is for, from CNI_ARGS, for operators and garbage
// collection; and what ADD configured, for CHECK.
const (
	PodNamespace = "ovn-overlay/pod-namespace"
	PodName      = "ovn-overlay/pod-name"
	// PodUID tells a pod from a later pod of the same name.
	PodUID = "ovn-overlay/pod-uid"
	Netns  = "ovn-overlay/netns"
	NAD    = "ovn-overlay/nad"
	// Addresses records the pod's addresses with their prefix lengths on
	// the logical switch port (the addresses column holds bare IPs).
	Addresses = "ovn-overlay/ip-addresses"
)

// Persistent IPs and live migration, on logical switch ports.
const (
	// IPAMClaim names ("<namespace>/<name>") the IPAMClaim whose
	// addresses the port holds.
	IPAMClaim = "ovn-overlay/ipam-claim"
	// MigrationSource, on a live-migration target's port, names the port
	// of the VM's source pod: the two share MAC and addresses, and only
	// one of them is enabled at a time.
	MigrationSource = "ovn-overlay/migration-source"
)

// Warm marks (value "true") a logical switch port a node created ahead of
// any pod; Node names the node. A pod that takes it replaces the mark with
// its identity.
const Warm = "ovn-overlay/warm"

// Address sets: one per (network, namespace, IP family).
const (
	Namespace = "ovn-overlay/namespace"
	IPFamily  = "ovn-overlay/ip-family"
)

// External connectivity (issue 14): a network's gateway port on the shared
// switch of a physical network carries the address it holds there, so
// that nodes agree on who has which address by reading that switch's
// ports; the switch itself is marked with the physical network it reaches.
const (
	GatewayIP       = "ovn-overlay/gateway-ip"
	PhysicalNetwork = "ovn-overlay/physical-network"
)

// Keys of ovn-controller's contract on an OVS Interface.
const (
	// IfaceID is the logical switch port the interface is bound to.
	IfaceID = "iface-id"
	// AttachedMAC is the pod's MAC.
	AttachedMAC = "attached-mac"
	// OVNInstalled is set to "true" by ovn-controller once the port's
	// flows are installed.
	OVNInstalled = "ovn-installed"
)
