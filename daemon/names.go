package daemon

import (
	"crypto/sha256"
	"encoding/hex"
)

// Names of the OVN and kernel objects of one attachment are derived from
// its CNI identity (network, container ID, interface name), never stored:
// DEL and CHECK find everything from the request alone, even after a daemon
// restart or a lost ADD reply.

// switchName is the cluster-wide logical switch of a layer2 network.
func switchName(network string) string {
	return "ovn-overlay." + network + ".layer2"
}

// portName is the logical switch port of one attachment.
func portName(network, containerID, ifName string) string {
	return "ovn-overlay." + network + "." + containerID + "." + ifName
}

// hostIfName is the host end of the attachment's veth, also its OVS port
// and interface name. Kernel names are limited to 15 bytes, so it is a hash.
func hostIfName(network, containerID, ifName string) string {
	sum := sha256.Sum256([]byte(network + "\x00" + containerID + "\x00" + ifName))
	return "ov" + hex.EncodeToString(sum[:])[:13]
}
