package network

import (
	"crypto/sha256"
	"encoding/hex"
)

// Names of a network's shared OVN objects are derived from the network's
// name (and for layer3 the node's), so every node finds the same rows. The
// names of one attachment's objects are the attachment package's.

// layer2SwitchName is the cluster-wide logical switch of a layer2 network.
func layer2SwitchName(network string) string {
	return "ovn-overlay." + network + ".layer2"
}

// localnetSwitchName is the cluster-wide logical switch of a localnet
// network, and LocalnetPortName its port to the physical network (CHECK
// looks for ovn-controller's patch by it).
func localnetSwitchName(network string) string {
	return "ovn-overlay." + network + ".localnet"
}

func LocalnetPortName(network string) string {
	return "ovn-overlay." + network + ".localnet.physnet"
}

// routerName is the logical router joining a layer3 network's node switches.
func routerName(network string) string {
	return "ovn-overlay." + network + ".router"
}

// layer3SwitchName is a node's logical switch on a layer3 network.
func layer3SwitchName(network, node string) string {
	return "ovn-overlay." + network + ".node." + node
}

// routerPortName and switchToRouterPortName are the two ends of the link
// between a layer3 network's router and one node's switch.
func routerPortName(network, node string) string {
	return "ovn-overlay." + network + ".rtos." + node
}

func switchToRouterPortName(network, node string) string {
	return "ovn-overlay." + network + ".stor." + node
}

// addressSetName is the address set of a network's pods in one namespace,
// per IP family. OVN match expressions refer to it as $name, which allows
// only letters, digits, '_' and '.', so network and namespace are hashed;
// the set's external_ids carry them in clear.
func addressSetName(network, namespace string, ipv6 bool) string {
	sum := sha256.Sum256([]byte(network + "\x00" + namespace))
	family := "v4"
	if ipv6 {
		family = "v6"
	}
	return "ovn_overlay_" + hex.EncodeToString(sum[:])[:16] + "_" + family
}

// externalSwitchName is the shared switch of a physical network that
// networks' gateway ports sit on, and externalLocalnetPortName its port
// to the physical network.
func externalSwitchName(physicalNetwork string) string {
	return "ovn-overlay.external." + physicalNetwork
}

func externalLocalnetPortName(physicalNetwork string) string {
	return externalSwitchName(physicalNetwork) + ".physnet"
}

// gatewayPortName is a network's gateway port on the external switch.
func gatewayPortName(network string) string {
	return "ovn-overlay." + network + ".gateway"
}

// layer2RouterPortName is the router's port on a layer2 network's switch
// (the network has a router only for external connectivity).
func layer2RouterPortName(network string) string {
	return "ovn-overlay." + network + ".rtos"
}
