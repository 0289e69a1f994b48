package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RestartOVNController stops the node's ovn-controller (SIGTERM, then
// SIGKILL after a grace period, by pid) and starts it again with the same
// arguments. SIGTERM is not `ovn-appctl exit`: the chassis record and the
// flows stay, as in an upgrade or a crash-and-respawn, and the new
// incarnation recomputes and reinstalls everything. It returns once the
// new process has written its pid file, not once flows are back: tests
// that care wait for what they need (ovn-installed, a ping).
func (n *Node) RestartOVNController() error {
	n.controller.stop(false)
	return n.StartOVNController()
}

// KillOVNController kills the node's ovn-controller (SIGKILL, by pid), as
// a crash or an OOM kill would, and leaves it down until
// StartOVNController.
func (n *Node) KillOVNController() { n.controller.stop(true) }

// StartOVNController starts the node's ovn-controller again with the same
// arguments.
func (n *Node) StartOVNController() error { return n.cluster.startService(n.controller, true) }

// KillVSwitchd kills the node's ovs-vswitchd (SIGKILL, by pid) and leaves
// it down until StartVSwitchd: the node's datapath, its tunnels and their
// BFD sessions are gone, as when a node fails.
func (n *Node) KillVSwitchd() { n.vswitchd.stop(true) }

// RestartVSwitchd stops the node's ovs-vswitchd (SIGTERM, then SIGKILL, by
// pid) and starts it again with the same arguments. br-int's and br-phy's
// (and br-phys's, with a physical network) ports are rows in the node's OVS
// database, so the new ovs-vswitchd re-creates them (pod veths and dc0 are
// re-attached, tunnel ports rebuilt); the userspace datapath lives inside
// the process and needs nothing else, and dc0's MTU and offloads belong to
// the kernel's veth, which stays. It returns once ovs-vswitchd has
// re-created the bridges and br-phy carries the node IP (re-applied in case
// its internal device was re-created).
func (n *Node) RestartVSwitchd() error {
	n.vswitchd.stop(false)
	return n.StartVSwitchd()
}

// StartVSwitchd starts the node's ovs-vswitchd with the same arguments and
// returns once it has re-created the bridges (see RestartVSwitchd).
func (n *Node) StartVSwitchd() error {
	if err := n.cluster.startService(n.vswitchd, true); err != nil {
		return err
	}
	// ovs-vsctl only waits for ovs-vswitchd when its transaction changes
	// something (OVS 3.1 has no `ovs-vsctl sync`), so ask the datapath
	// itself: both bridges are added in one reconfiguration pass, with
	// every port the database lists.
	ctl := filepath.Join(n.Dir, "vswitchd.ctl")
	deadline := time.Now().Add(startTimeout)
	for {
		out, err := n.cluster.run("", "ovs-appctl", "--timeout=5", "-t", ctl, "dpif/show")
		if err == nil && strings.Contains(out, "br-int:") && strings.Contains(out, "br-phy:") && strings.Contains(out, "ul0 ") &&
			(n.PhysicalBridge == "" || (strings.Contains(out, n.PhysicalBridge+":") && strings.Contains(out, n.PhysicalUplink+" "))) {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: ovs-vswitchd did not re-create the bridges after restart: %s %v", n.Name, out, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return n.addressUnderlay()
}

// StopOVSDB stops the node's local ovsdb-server (SIGTERM, then SIGKILL, by
// pid). ovs-vswitchd, ovn-controller and the node daemon keep running and
// keep retrying the same socket.
func (n *Node) StopOVSDB() {
	n.ovsdb.stop(false)
}

// StartOVSDB starts the node's ovsdb-server again on the same database
// file and socket path, and returns once the socket is up.
func (n *Node) StartOVSDB() error {
	return n.cluster.startService(n.ovsdb, true)
}

// OVNControllerCtl is the unixctl socket of the node's running
// ovn-controller (for ovn-appctl -t). 23.03 rejects --unixctl, so the
// socket is <OVN_RUNDIR>/ovn-controller.<pid>.ctl and changes with every
// restart.
func (n *Node) OVNControllerCtl() (string, error) {
	b, err := os.ReadFile(filepath.Join(n.Dir, "ovn-controller.pid"))
	if err != nil {
		return "", err
	}
	return filepath.Join(n.Dir, fmt.Sprintf("ovn-controller.%s.ctl", strings.TrimSpace(string(b)))), nil
}

// WaitOVNControllerConnected waits until the node's ovn-controller reports
// that it is connected to the SB.
func (n *Node) WaitOVNControllerConnected(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last string
	for {
		ctl, err := n.OVNControllerCtl()
		if err == nil {
			var out string
			out, err = n.cluster.run("", "ovn-appctl", "--timeout=5", "-t", ctl, "connection-status")
			if err == nil && strings.TrimSpace(out) == "connected" {
				return nil
			}
			last = strings.TrimSpace(out)
		}
		if err != nil {
			last = err.Error()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: ovn-controller not connected after %s: %s", n.Name, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
