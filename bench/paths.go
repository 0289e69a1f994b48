package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// A path attaches one pod (a netns already created, as a runtime has) and
// detaches it. Every path ends an attach only when ovn-controller reports
// the port installed, so they are compared at the same finish line.
type path interface {
	name() string
	attach(ctx context.Context, p *benchPod) error
	detach(ctx context.Context, p *benchPod) error
}

// benchPod is one pod of a workload.
type benchPod struct {
	pod         *sandbox.Pod
	node        *sandbox.Node
	containerID string
	// Only the reference paths use these: they do no IPAM of their own.
	addr netip.Prefix
	mac  net.HardwareAddr
	// host is the host-side veth name the reference paths pick.
	host string
}

// runTool runs rel's build of an OVN/OVS command-line tool on the host.
// Nodes' Run does this for their commands; central ones must too, so a
// run on one release never measures (or depends on) another's tools.
func runTool(rel sandbox.Release, argv ...string) (string, error) {
	return sandbox.RunIn("", rel.Command(argv)...)
}

// overlayPath is the product: the real CNI plugin binary exec'd by the
// "runtime", talking to ovn-overlayd.
type overlayPath struct {
	plugin string
	config []byte
	// cold runs the daemons without warm (pre-provisioned) ports, so
	// every ADD creates its logical port: the optimisation switched off.
	cold bool
}

func (o *overlayPath) name() string {
	if o.cold {
		return "ovn-overlay-cold"
	}
	return "ovn-overlay"
}

// daemonArgs are the extra daemon flags this path needs.
func (o *overlayPath) daemonArgs() []string {
	if o.cold {
		return []string{"--warm-ports=0"}
	}
	return nil
}

func (o *overlayPath) invoke(ctx context.Context, p *benchPod, command string) error {
	_, _, err := p.node.InvokeCNI(ctx, o.plugin, sandbox.Invocation{
		Command: command, ContainerID: p.containerID, Netns: p.pod.NetnsPath, IfName: "net1",
		Args:   "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + p.pod.Name,
		Config: o.config,
	})
	return err
}

func (o *overlayPath) attach(ctx context.Context, p *benchPod) error { return o.invoke(ctx, p, "ADD") }
func (o *overlayPath) detach(ctx context.Context, p *benchPod) error { return o.invoke(ctx, p, "DEL") }

// floorPath is the least work the pipeline needs: a netlink veth, one NB
// transaction, one OVS transaction and an event wait for ovn-installed. No
// daemon, no CNI exec, no IPAM (addresses are precomputed), in-process with
// warm OVSDB connections.
type floorPath struct {
	nb      *ovn.Northbound
	ovs     map[string]*ovs.Client // per node
	sb      string
	ls      string
	userspc bool
	rel     sandbox.Release // whose ovn-sbctl prepare runs
	// prebound: the logical port is created before the attach is timed
	// (prepare), so an attach only binds it: the floor of a design with
	// pre-provisioned ports.
	prebound bool
}

func newFloorPath(ctx context.Context, c *sandbox.Cluster, switchName string) (*floorPath, error) {
	nb, err := ovn.ConnectNorthbound(ctx, c.Central.NB, logr.Discard())
	if err != nil {
		return nil, err
	}
	f := &floorPath{nb: nb, sb: c.Central.SB, ovs: map[string]*ovs.Client{}, ls: switchName, userspc: true, rel: c.Release()}
	if _, err := nb.EnsureSwitch(ctx, switchName, map[string]string{externalids.Network: switchName}); err != nil {
		return nil, err
	}
	for _, n := range c.Nodes {
		o, err := ovs.Connect(ctx, n.OVS, "br-int", logr.Discard())
		if err != nil {
			return nil, err
		}
		f.ovs[n.Name] = o
	}
	return f, nil
}

func (f *floorPath) name() string {
	if f.prebound {
		return "floor-prebound"
	}
	return "floor"
}

// prepare creates the pods' logical ports ahead of the measurement and
// waits until northd has compiled them (they are in the SB).
func (f *floorPath) prepare(ctx context.Context, pods []*benchPod) error {
	if !f.prebound {
		return nil
	}
	ls, ok := f.nb.Switch(f.ls)
	if !ok {
		return fmt.Errorf("floor switch %s missing", f.ls)
	}
	var add []*nbdb.LogicalSwitchPort
	for _, p := range pods {
		add = append(add, f.port(p))
	}
	if _, err := f.nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: add}); err != nil {
		return err
	}
	// northd compiles them in order; the last one in the SB means all are.
	_, err := runTool(f.rel, "ovn-sbctl", "--db="+f.sb, "--timeout=300", "wait-until", "Port_Binding", add[len(add)-1].Name)
	return err
}

func (f *floorPath) port(p *benchPod) *nbdb.LogicalSwitchPort {
	entry := p.mac.String() + " " + p.addr.Addr().String()
	return &nbdb.LogicalSwitchPort{Name: f.lspName(p), Addresses: []string{entry}, PortSecurity: []string{entry},
		ExternalIDs: map[string]string{externalids.Owner: externalids.OwnerValue, externalids.Network: f.ls}}
}

func (f *floorPath) lspName(p *benchPod) string { return "floor." + p.containerID }

func (f *floorPath) attach(ctx context.Context, p *benchPod) error {
	ls, ok := f.nb.Switch(f.ls)
	if !ok {
		return fmt.Errorf("floor switch %s missing", f.ls)
	}
	lsp := f.port(p)
	if !f.prebound {
		if _, err := f.nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{lsp}}); err != nil {
			return err
		}
	}
	// The host end belongs in the node's namespace, where its OVS runs.
	if err := sandbox.InNetns(p.node.NetnsPath, func() error {
		_, err := netns.Setup(p.pod.NetnsPath, netns.Attachment{HostIfName: p.host, ContainerIfName: "net1", MAC: p.mac,
			Addresses: []netip.Prefix{p.addr}, MTU: 1400, DisableTxChecksumOffload: f.userspc})
		return err
	}); err != nil {
		return err
	}
	o := f.ovs[p.node.Name]
	if err := o.AddPort(ctx, ovs.PortSpec{Name: p.host, IfaceID: lsp.Name, MAC: p.mac.String()}); err != nil {
		return err
	}
	waitCtx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return o.WaitInstalled(waitCtx, p.host)
}

func (f *floorPath) detach(ctx context.Context, p *benchPod) error {
	err := f.ovs[p.node.Name].DeletePort(ctx, p.host)
	if terr := sandbox.InNetns(p.node.NetnsPath, func() error { return netns.Teardown(p.host) }); err == nil {
		err = terr
	}
	if lsp, ok := f.nb.Port(f.lspName(p)); ok {
		if ls, ok := f.nb.Switch(f.ls); ok {
			if _, derr := f.nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, RemoveUUIDs: []string{lsp.UUID}}); err == nil {
				err = derr
			}
		}
	}
	return err
}

// conventionalPath is what other OVN-based CNIs do today: the logical port
// with ovn-nbctl, the veth with `ip`, about seven ovs-vsctl calls to plug
// and check the port, then polling ovn-installed every 200 ms.
type conventionalPath struct {
	nb  string
	ls  string
	rel sandbox.Release // whose ovn-nbctl it runs
}

func (c *conventionalPath) name() string { return "conventional" }

func (c *conventionalPath) lspName(p *benchPod) string { return "conv." + p.containerID }

func (c *conventionalPath) attach(ctx context.Context, p *benchPod) error {
	lsp := c.lspName(p)
	addr := p.mac.String() + " " + p.addr.Addr().String()
	vsctl := func(args ...string) (string, error) {
		return p.node.Run(append([]string{"ovs-vsctl", "--db=" + p.node.OVS, "--timeout=30"}, args...)...)
	}
	steps := []func() error{
		func() error {
			_, err := runTool(c.rel, "ovn-nbctl", "--db="+c.nb, "--may-exist", "lsp-add", c.ls, lsp,
				"--", "lsp-set-addresses", lsp, addr, "--", "lsp-set-port-security", lsp, addr)
			return err
		},
		func() error {
			_, err := p.node.Run("ip", "link", "add", p.host, "type", "veth", "peer", "name", "net1", "netns", p.pod.Netns)
			return err
		},
		func() error {
			_, err := p.pod.Run("ip", "link", "set", "net1", "address", p.mac.String(), "mtu", "1400", "up")
			return err
		},
		func() error { _, err := p.pod.Run("ip", "addr", "add", p.addr.String(), "dev", "net1"); return err },
		func() error { _, err := p.pod.Run("ethtool", "-K", "net1", "tx", "off"); return err },
		func() error { _, err := p.node.Run("ip", "link", "set", p.host, "mtu", "1400", "up"); return err },
		// The ovs-vsctl sequence: plug, tag, then read back what OVN needs.
		func() error { _, err := vsctl("--may-exist", "add-port", "br-int", p.host); return err },
		func() error {
			_, err := vsctl("set", "Interface", p.host, "external_ids:iface-id="+lsp)
			return err
		},
		func() error {
			_, err := vsctl("set", "Interface", p.host, "external_ids:attached-mac="+p.mac.String())
			return err
		},
		func() error {
			_, err := vsctl("set", "Interface", p.host, "external_ids:iface-status=active")
			return err
		},
		func() error { _, err := vsctl("get", "Interface", p.host, "ofport"); return err },
		func() error { _, err := vsctl("get", "Interface", p.host, "external_ids:iface-id"); return err },
		func() error { _, err := vsctl("get", "Interface", p.host, "mac_in_use"); return err },
	}
	for _, step := range steps {
		if err := step(); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		out, err := vsctl("--if-exists", "get", "Interface", p.host, "external_ids:ovn-installed")
		if err == nil && strings.Contains(out, "true") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("ovn-installed not set on %s after 60s", p.host)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (c *conventionalPath) detach(ctx context.Context, p *benchPod) error {
	if _, err := p.node.Run("ovs-vsctl", "--db="+p.node.OVS, "--if-exists", "del-port", "br-int", p.host); err != nil {
		return err
	}
	_, _ = p.node.Run("ip", "link", "del", p.host)
	_, err := runTool(c.rel, "ovn-nbctl", "--db="+c.nb, "--if-exists", "lsp-del", c.lspName(p))
	return err
}
