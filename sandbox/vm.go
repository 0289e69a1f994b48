package sandbox

import (
	"crypto/rand"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// etcNetns is where `ip netns exec` finds files it bind-mounts over /etc in
// that namespace: a guest's DHCP client writes its resolv.conf there, not
// over the host's.
const etcNetns = "/etc/netns"

// VM stands in for a KubeVirt VM's guest on one secondary interface, wired
// as KubeVirt's bridge binding wires it. The guest is a network namespace
// of its own with one NIC, eth0; its other end (the VM's tap) sits on a
// bridge in the virt-launcher pod's namespace, together with the pod's
// interface, which gives up its addresses and its MAC: the guest takes
// the MAC and gets its addresses by DHCP, from the network. Nothing the
// network should provide is configured here.
//
// A live migration moves the tap to the target pod's bridge: the guest,
// with its addresses, leases and connections, does not notice, as a real
// guest does not.
type VM struct {
	Name      string
	Netns     string
	NetnsPath string
	// MAC is the guest NIC's, taken from the first launcher pod's
	// interface.
	MAC net.HardwareAddr
	// at is the namespace the tap is in now.
	at        string
	dir       string
	cluster   *Cluster
	dhclients []*Process
}

const (
	guestNIC = "eth0"
	vmTap    = "tap0"
)

// NewVM creates the guest (its namespace and NIC, not yet plugged).
func (n *Node) NewVM(name string) (*VM, error) {
	c := n.cluster
	ns := fmt.Sprintf("%s-vm-%s", c.Prefix, name)
	if err := c.addNetns(ns); err != nil {
		return nil, err
	}
	vm := &VM{Name: name, Netns: ns, NetnsPath: "/var/run/netns/" + ns, at: ns, cluster: c, dir: filepath.Join(c.Dir, "vm-"+name)}
	if err := os.MkdirAll(vm.dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(etcNetns, ns), 0o755); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(etcNetns, ns, "resolv.conf"), nil, 0o644); err != nil {
		return nil, err
	}
	// No duplicate address detection in the guest: its link-local
	// address is usable (and DHCPv6 can start) at once.
	if _, err := run(ns, "sysctl", "-qw", "net.ipv6.conf.default.accept_dad=0"); err != nil {
		return nil, err
	}
	if _, err := run(ns, "ip", "link", "add", guestNIC, "type", "veth", "peer", "name", vmTap); err != nil {
		return nil, err
	}
	return vm, nil
}

// PlugInto connects the guest to a virt-launcher pod's interface podIf the
// way the bridge binding does. On the first plug the guest takes the pod
// interface's MAC; later (a migration target) the pod interface must
// already have the guest's MAC: the network gives a VM's pods one MAC.
func (vm *VM) PlugInto(launcher *Pod, podIf string) error {
	mac, err := linkMAC(launcher.Netns, podIf)
	if err != nil {
		return err
	}
	if vm.MAC == nil {
		vm.MAC = mac
		if _, err := run(vm.Netns, "ip", "link", "set", guestNIC, "address", mac.String(), "up"); err != nil {
			return err
		}
	} else if mac.String() != vm.MAC.String() {
		return fmt.Errorf("pod %s interface %s has MAC %s, not the VM's %s", launcher.Name, podIf, mac, vm.MAC)
	}
	mtu, err := run(launcher.Netns, "cat", "/sys/class/net/"+podIf+"/mtu")
	if err != nil {
		return err
	}
	bridge := "k6t-" + podIf
	steps := [][]string{
		// The pod interface hands its address and MAC to the guest.
		{"ip", "addr", "flush", "dev", podIf},
		{"ip", "link", "set", podIf, "address", randomLocalMAC().String()},
		{"ip", "link", "add", bridge, "type", "bridge"},
		{"sysctl", "-qw", "net.ipv6.conf." + bridge + ".disable_ipv6=1", "net.ipv6.conf." + podIf + ".disable_ipv6=1"},
		{"ip", "link", "set", podIf, "master", bridge},
		{"ip", "link", "set", bridge, "up"},
	}
	for _, argv := range steps {
		if _, err := run(launcher.Netns, argv...); err != nil {
			return fmt.Errorf("bridge binding in pod %s: %w", launcher.Name, err)
		}
	}
	return vm.moveTap(launcher.Netns, bridge, strings.TrimSpace(mtu))
}

// MigrateTo is the switch-over of a live migration: the VM stops on its
// source and resumes on the target launcher pod, then announces itself
// with RARPs as QEMU does. It returns when the first RARP is sent.
func (vm *VM) MigrateTo(target *Pod, podIf string) error {
	if err := vm.PlugInto(target, podIf); err != nil {
		return err
	}
	return vm.Announce()
}

// moveTap puts the VM's tap on bridge in namespace ns.
func (vm *VM) moveTap(ns, bridge, mtu string) error {
	if vm.at != ns {
		if _, err := run(vm.at, "ip", "link", "set", vmTap, "netns", ns); err != nil {
			return err
		}
		vm.at = ns
	}
	if _, err := run(ns, "ip", "link", "set", vmTap, "mtu", mtu, "master", bridge, "up"); err != nil {
		return err
	}
	return nil
}

// StartDHCP runs the guest's DHCP client (Debian's isc-dhcp-client, as a
// Debian guest would) for IPv4 and waits for its address. The client keeps
// running, renewing its lease, until Delete. Its own UTS namespace keeps it
// from renaming the host when the network offers a hostname.
func (vm *VM) StartDHCP(timeout time.Duration) (netip.Prefix, error) { return vm.startDHCP(4, timeout) }

// StartDHCP6 is StartDHCP for DHCPv6 (stateful: the address comes in an
// IA_NA, as a /128).
func (vm *VM) StartDHCP6(timeout time.Duration) (netip.Prefix, error) {
	return vm.startDHCP(6, timeout)
}

func (vm *VM) startDHCP(family int, timeout time.Duration) (netip.Prefix, error) {
	name := fmt.Sprintf("dhclient%d-%s", family, vm.Name)
	p, err := vm.cluster.Start(name, vm.Netns, nil, "unshare", "--uts",
		"dhclient", fmt.Sprintf("-%d", family), "-d", "-v", "-lf", vm.LeaseFile(family), "-pf", filepath.Join(vm.dir, name+".pid"), guestNIC)
	if err != nil {
		return netip.Prefix{}, err
	}
	vm.dhclients = append(vm.dhclients, p)
	deadline := time.Now().Add(timeout)
	for {
		if a, err := vm.addr(family); err == nil {
			return a, nil
		}
		if p.Exited() || time.Now().After(deadline) {
			return netip.Prefix{}, fmt.Errorf("guest %s got no DHCPv%d address within %s: %s", vm.Name, family, timeout, p.LogTail(2000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// LeaseFile is the DHCP client's lease database for IP family 4 or 6.
func (vm *VM) LeaseFile(family int) string {
	return filepath.Join(vm.dir, fmt.Sprintf("dhclient%d.leases", family))
}

// ResolvConf is the guest's resolv.conf, as its DHCP client wrote it.
func (vm *VM) ResolvConf() (string, error) {
	b, err := os.ReadFile(filepath.Join(etcNetns, vm.Netns, "resolv.conf"))
	return string(b), err
}

// Addr is the guest NIC's IPv4 address.
func (vm *VM) Addr() (netip.Prefix, error) { return vm.addr(4) }

// Addr6 is the guest NIC's global IPv6 address.
func (vm *VM) Addr6() (netip.Prefix, error) { return vm.addr(6) }

func (vm *VM) addr(family int) (netip.Prefix, error) {
	out, err := run(vm.Netns, "ip", fmt.Sprintf("-%d", family), "-o", "addr", "show", "dev", guestNIC, "scope", "global")
	if err != nil {
		return netip.Prefix{}, err
	}
	for _, f := range strings.Fields(out) {
		if p, err := netip.ParsePrefix(f); err == nil {
			return p, nil
		}
	}
	return netip.Prefix{}, fmt.Errorf("guest %s has no IPv%d address", vm.Name, family)
}

// Run executes a short command in the guest.
func (vm *VM) Run(argv ...string) (string, error) { return run(vm.Netns, argv...) }

// Announce sends the RARPs QEMU sends after a migration (announce-self:
// five rounds, 50 ms apart and then 100 ms more each time), the first at
// once and the others in the background.
func (vm *VM) Announce() error {
	if err := vm.rarp(); err != nil {
		return err
	}
	go func() {
		for i := 0; i < 4; i++ {
			time.Sleep(time.Duration(50+100*i) * time.Millisecond)
			_ = vm.rarp()
		}
	}()
	return nil
}

// rarp sends one RARP request from the guest NIC: what QEMU's
// qemu_announce_self puts on the wire for each of the VM's NICs (the
// sandbox stands in for QEMU here, so it builds the frame itself rather
// than use the product's netns.Announce).
func (vm *VM) rarp() error {
	frame := make([]byte, 60)
	copy(frame[0:6], []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:12], vm.MAC)
	frame[12], frame[13] = 0x80, 0x35 // ETH_P_RARP
	copy(frame[14:22], []byte{0, 1, 8, 0, 6, 4, 0, 3})
	copy(frame[22:28], vm.MAC) // sender MAC; sender IP 0.0.0.0
	copy(frame[32:38], vm.MAC) // target MAC; target IP 0.0.0.0
	return InNetns(vm.NetnsPath, func() error {
		ifi, err := net.InterfaceByName(guestNIC)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("packet socket: %w", err)
		}
		defer unix.Close(fd)
		to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
		copy(to.Addr[:], frame[0:6])
		return unix.Sendto(fd, frame, 0, to)
	})
}

// Delete stops the guest's DHCP client and removes the guest.
func (vm *VM) Delete() error {
	for _, p := range vm.dhclients {
		p.Stop(time.Second)
	}
	_ = os.RemoveAll(filepath.Join(etcNetns, vm.Netns))
	_, err := run("", "ip", "netns", "delete", vm.Netns)
	if err != nil && strings.Contains(err.Error(), "No such file") {
		return nil
	}
	return err
}

func linkMAC(netns, link string) (net.HardwareAddr, error) {
	out, err := run(netns, "cat", "/sys/class/net/"+link+"/address")
	if err != nil {
		return nil, err
	}
	return net.ParseMAC(strings.TrimSpace(out))
}

// randomLocalMAC is a unicast, locally administered MAC.
func randomLocalMAC() net.HardwareAddr {
	mac := make(net.HardwareAddr, 6)
	_, _ = rand.Read(mac)
	mac[0] = mac[0]&0xfc | 0x02
	return mac
}
