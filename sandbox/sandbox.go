// Package sandbox starts a self-contained OVN deployment on one machine:
// central OVN (Northbound and Southbound ovsdb-servers and ovn-northd) and a
// number of simulated nodes, each a network namespace with its own
// ovsdb-server, ovs-vswitchd (userspace datapath) and ovn-controller, joined
// by a geneve underlay. Optionally (Options.PhysicalNetwork) the nodes also
// share a "datacenter" L2 network, with an external host on it, for OVN
// localnet networks. The demo, the integration tests and the benchmarks all
// run on it, so they exercise real OVS and OVN rather than stand-ins.
//
// Every process is tracked by pid and stopped by Cluster.Stop; every network
// namespace carries the cluster's prefix and is deleted with it.
package sandbox

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Options configure a sandbox cluster.
type Options struct {
	// Nodes is the number of simulated nodes (chassis). 0 starts central
	// OVN only.
	Nodes int
	// Prefix names every network namespace the cluster creates. Empty picks
	// "ovsb-<random>" so concurrent clusters never collide.
	Prefix string
	// Dir holds databases, sockets and logs. Empty creates a temp dir.
	Dir string
	// UnderlayMTU is the MTU of the node underlay links. 0 means 1500.
	UnderlayMTU int
	// Progress receives one line per bring-up step. May be nil.
	Progress io.Writer
	// Release is the OVN/OVS build to run; nil picks the one ReleaseEnv
	// names (the host's packages when unset).
	Release *Release
	// ClusteredDBs runs the central NB and SB each as a 3-member RAFT
	// cluster (members 0, 1, 2) instead of one standalone ovsdb-server, so
	// tests can kill a leader and watch clients fail over. Central.NB and
	// Central.SB then list the three members' client endpoints.
	ClusteredDBs bool
	// PhysicalNetwork, when non-empty, gives the cluster a datacenter L2
	// network for OVN localnet networks, apart from the geneve underlay:
	// every node gets an OVS bridge br-phys with an uplink dc0 into it
	// and maps the network to it (external_ids:ovn-bridge-mappings=
	// <PhysicalNetwork>:br-phys), and an external host sits on it
	// (Cluster.External). The name is what localnet ports give as
	// options:network_name.
	PhysicalNetwork string
	// PhysicalMTU is the MTU of every link on the physical network. 0
	// means 1500.
	PhysicalMTU int
}

// Cluster is a running sandbox.
type Cluster struct {
	Prefix  string
	Dir     string
	Central Central
	Nodes   []*Node

	opts       Options
	release    Release
	underlayNS string
	// physicalNS holds the datacenter network's bridge; external is the
	// host on it. Both unset without Options.PhysicalNetwork.
	physicalNS string
	external   *ExternalHost
	mu         sync.Mutex
	procs      []*Process
	netnses    []string
	// dbs holds the central database servers by "nb"/"sb": one member when
	// standalone, three when clustered. The fault controls restart them.
	dbs map[string][]*service
	// stopping turns respawning off while the cluster shuts down.
	stopping atomic.Bool
	// crashes lists daemons that died on their own (and were restarted).
	crashes []string
}

func (c *Cluster) recordCrash(what string) {
	c.mu.Lock()
	c.crashes = append(c.crashes, what)
	c.mu.Unlock()
	c.progress("%s", what)
}

// knownCrashes are the crash signatures of supported OVN releases that are
// OVN's own bugs, by release (docs/reliability.md).
var knownCrashes = map[string][]string{
	"25.03": {"ovsdb-idl.c:3598: assertion row->new_datum != NULL failed in ovsdb_idl_txn_write__()"},
}

// UnexpectedCrashes is Crashes without the release's known OVN bugs: the
// e2e suites fail on these.
func (c *Cluster) UnexpectedCrashes() []string {
	var out []string
	for _, crash := range c.Crashes() {
		known := false
		for _, sig := range knownCrashes[c.release.Name] {
			known = known || strings.Contains(crash, sig)
		}
		if !known {
			out = append(out, crash)
		}
	}
	return out
}

// Crashes lists the OVN/OVS daemons that died on their own during the
// cluster's life (each was restarted, as production's supervisors do).
// Tests report them: a crash is OVN's bug or ours, never noise.
func (c *Cluster) Crashes() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]string(nil), c.crashes...)
}

// Central is the OVN control plane's address book.
type Central struct {
	// NB and SB are OVSDB endpoints ("unix:/path"). With
	// Options.ClusteredDBs each is the comma-separated list of the three
	// members' endpoints ("unix:/a,unix:/b,unix:/c"), a form ovn-northd,
	// ovn-controller's ovn-remote and ovn-nbctl/ovn-sbctl --db= all accept.
	NB, SB string
}

// Node is one simulated chassis.
type Node struct {
	Name string
	// Netns is the node's network namespace name; NetnsPath its bind mount.
	Netns, NetnsPath string
	// IP is the node's underlay (geneve encap) address.
	IP netip.Addr
	// Dir holds the node's databases, sockets and logs.
	Dir string
	// OVS is the node's Open_vSwitch database endpoint ("unix:/path").
	OVS string
	// PhysicalBridge is the node's OVS bridge on the physical network
	// ("br-phys", the bridge ovn-bridge-mappings names) and
	// PhysicalUplink its port into that network ("dc0", a veth); both are
	// empty without Options.PhysicalNetwork.
	PhysicalBridge, PhysicalUplink string

	cluster *Cluster
	// The node's OVN/OVS daemons, kept so the fault controls can stop and
	// restart them with the same arguments.
	ovsdb, vswitchd, controller *service
}

const (
	nbSchema      = "/usr/share/ovn/ovn-nb.ovsschema"
	sbSchema      = "/usr/share/ovn/ovn-sb.ovsschema"
	vswitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"
	startTimeout  = 20 * time.Second
)

// underlayNet is the node address range. It exists only inside the
// sandbox's own namespaces.
var underlayNet = netip.MustParsePrefix("192.168.250.0/24")

// Start brings up central OVN and opts.Nodes nodes. On error everything
// started so far is stopped.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Nodes < 0 {
		opts.Nodes = 0
	}
	if opts.Nodes > 200 {
		return nil, fmt.Errorf("sandbox: %d nodes requested, at most 200 fit the underlay subnet", opts.Nodes)
	}
	if opts.UnderlayMTU == 0 {
		opts.UnderlayMTU = 1500
	}
	if err := validatePhysicalNetwork(&opts); err != nil {
		return nil, err
	}
	if opts.Prefix == "" {
		opts.Prefix = "ovsb-" + randomHex(3)
	}
	if opts.Dir == "" {
		if opts.Dir, err = os.MkdirTemp("", opts.Prefix+"-"); err != nil {
			return nil, fmt.Errorf("sandbox: temp dir: %w", err)
		}
	} else if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	release := Release{}
	if opts.Release != nil {
		release = *opts.Release
	} else if release, err = ReleaseFromEnv(); err != nil {
		return nil, err
	}
	c = &Cluster{Prefix: opts.Prefix, Dir: opts.Dir, opts: opts, release: release, dbs: map[string][]*service{}}
	// Not the named result: `return nil, err` has cleared that by the time
	// this runs, and the processes started so far must still be stopped.
	started := c
	defer func() {
		if err != nil {
			started.Stop()
		}
	}()
	begin := time.Now()
	if err := release.WriteToolWrappers(c.toolDir()); err != nil {
		return nil, err
	}
	if err := c.startCentral(); err != nil {
		return nil, err
	}
	if err := c.startUnderlay(); err != nil {
		return nil, err
	}
	if opts.PhysicalNetwork != "" {
		if err := c.startPhysicalNetwork(); err != nil {
			return nil, err
		}
	}
	for i := 1; i <= opts.Nodes; i++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := c.startNode(i); err != nil {
			return nil, err
		}
	}
	c.progress("sandbox %s up: central OVN %s + %d nodes in %s (dir %s)", c.Prefix, c.release.Name, opts.Nodes, time.Since(begin).Round(time.Millisecond), c.Dir)
	return c, nil
}

func (c *Cluster) progress(format string, args ...any) {
	if c.opts.Progress != nil {
		fmt.Fprintf(c.opts.Progress, format+"\n", args...)
	}
}

// Start launches a tracked process in netns (empty: the caller's netns).
// OVS and OVN programs are the cluster's release's.
func (c *Cluster) Start(name, netns string, env []string, argv ...string) (*Process, error) {
	p, err := startProcess(name, netns, filepath.Join(c.Dir, name+".log"), env, c.release.Command(argv)...)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.procs = append(c.procs, p)
	c.mu.Unlock()
	if err := recordPid(c.Dir, p); err != nil {
		return p, fmt.Errorf("record pid of %s: %w", name, err)
	}
	return p, nil
}

// toolDir holds the release's tool wrappers (Release.WriteToolWrappers).
func (c *Cluster) toolDir() string { return filepath.Join(c.Dir, "tools") }

// ToolPath is a PATH that finds the release's OVS and OVN programs first,
// as a node's own PATH would.
func (c *Cluster) ToolPath() string { return "PATH=" + c.toolDir() + ":" + os.Getenv("PATH") }

func (c *Cluster) addNetns(name string) error {
	if _, err := run("", "ip", "netns", "add", name); err != nil {
		return err
	}
	c.mu.Lock()
	c.netnses = append(c.netnses, name)
	c.mu.Unlock()
	if _, err := run(name, "ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	return nil
}

func (c *Cluster) startOVSDB(name, netns, dir, schema, db string) (*service, error) {
	dbPath := filepath.Join(dir, db)
	if _, err := c.run("", "ovsdb-tool", "create", dbPath, schema); err != nil {
		return nil, err
	}
	sock := filepath.Join(dir, name+".sock")
	s := &service{
		name: name, netns: netns, ready: sock, endpoint: "unix:" + sock,
		ctl: filepath.Join(dir, name+".ctl"),
		argv: []string{"ovsdb-server", dbPath,
			"--remote=punix:" + sock,
			"--unixctl=" + filepath.Join(dir, name+".ctl"),
			"--pidfile=" + filepath.Join(dir, name+".pid"),
			"--log-file=" + filepath.Join(dir, name+".ovsdb.log"),
			"-vconsole:off"},
	}
	if err := c.startService(s, true); err != nil {
		return nil, err
	}
	return s, nil
}

// StartExtraDB starts one more standalone ovsdb-server in the central
// namespace, serving a new database made from schemaFile, and returns its
// endpoint. Tests run clients against other schema versions with it.
func (c *Cluster) StartExtraDB(name, schemaFile string) (string, error) {
	s, err := c.startOVSDB(name, c.Prefix+"-central", c.Dir, schemaFile, name+".db")
	if err != nil {
		return "", err
	}
	return s.endpoint, nil
}

func (c *Cluster) startCentral() error {
	ns := c.Prefix + "-central"
	if err := c.addNetns(ns); err != nil {
		return err
	}
	if c.opts.ClusteredDBs {
		for _, db := range []string{"nb", "sb"} {
			members, err := c.startDBCluster(db, ns)
			if err != nil {
				return err
			}
			c.dbs[db] = members
		}
	} else {
		nb, err := c.startOVSDB("central-nb", ns, c.Dir, c.release.Path(nbSchema), "ovnnb.db")
		if err != nil {
			return err
		}
		c.dbs["nb"] = []*service{nb}
		sb, err := c.startOVSDB("central-sb", ns, c.Dir, c.release.Path(sbSchema), "ovnsb.db")
		if err != nil {
			return err
		}
		c.dbs["sb"] = []*service{sb}
	}
	c.Central.NB = endpoints(c.dbs["nb"])
	c.Central.SB = endpoints(c.dbs["sb"])
	_, err := c.Start("central-northd", ns, nil, "ovn-northd",
		"--ovnnb-db="+c.Central.NB, "--ovnsb-db="+c.Central.SB,
		"--pidfile="+filepath.Join(c.Dir, "northd.pid"),
		"--log-file="+filepath.Join(c.Dir, "northd.ovn.log"),
		"--unixctl="+filepath.Join(c.Dir, "northd.ctl"),
		"-vconsole:off")
	if err != nil {
		return err
	}
	c.progress("central: NB %s, SB %s, northd started", c.Central.NB, c.Central.SB)
	return nil
}

// startUnderlay creates the "physical network": a Linux bridge in its own
// namespace that every node's underlay veth plugs into.
func (c *Cluster) startUnderlay() error {
	c.underlayNS = c.Prefix + "-ul"
	if err := c.addNetns(c.underlayNS); err != nil {
		return err
	}
	if _, err := run(c.underlayNS, "ip", "link", "add", "br-ul", "mtu", fmt.Sprint(c.opts.UnderlayMTU), "type", "bridge"); err != nil {
		return err
	}
	_, err := run(c.underlayNS, "ip", "link", "set", "br-ul", "up")
	return err
}

func (c *Cluster) nodeIP(i int) netip.Addr {
	a := underlayNet.Addr().As4()
	a[3] = byte(10 + i)
	return netip.AddrFrom4(a)
}

func (c *Cluster) startNode(i int) error {
	n := &Node{
		Name:    fmt.Sprintf("node%d", i),
		Netns:   fmt.Sprintf("%s-node%d", c.Prefix, i),
		IP:      c.nodeIP(i),
		Dir:     filepath.Join(c.Dir, fmt.Sprintf("node%d", i)),
		cluster: c,
	}
	n.NetnsPath = "/var/run/netns/" + n.Netns
	if err := os.MkdirAll(n.Dir, 0o755); err != nil {
		return err
	}
	if err := c.addNetns(n.Netns); err != nil {
		return err
	}
	if err := c.plugUnderlay(n, i); err != nil {
		return err
	}
	if c.opts.PhysicalNetwork != "" {
		if err := c.plugPhysical(n, i); err != nil {
			return err
		}
	}
	var err error
	if n.ovsdb, err = c.startOVSDB(n.Name+"-ovsdb", n.Netns, n.Dir, c.release.Path(vswitchSchema), "conf.db"); err != nil {
		return err
	}
	n.OVS = n.ovsdb.endpoint
	vsctl := func(args ...string) error {
		_, err := c.run(n.Netns, append([]string{"ovs-vsctl", "--db=" + n.OVS, "--timeout=20"}, args...)...)
		return err
	}
	if err := vsctl("--no-wait", "init"); err != nil {
		return err
	}
	if err := vsctl("--no-wait", "set", "Open_vSwitch", ".",
		"external_ids:system-id="+n.Name,
		"external_ids:hostname="+n.Name,
		"external_ids:ovn-remote="+c.Central.SB,
		"external_ids:ovn-encap-type=geneve",
		"external_ids:ovn-encap-ip="+n.IP.String(),
		"external_ids:ovn-bridge-datapath-type=netdev",
	); err != nil {
		return err
	}
	env := []string{"OVS_RUNDIR=" + n.Dir, "OVN_RUNDIR=" + n.Dir}
	// The pid files double as readiness: both daemons write them once they
	// have daemonized.
	n.vswitchd = &service{name: n.Name + "-vswitchd", netns: n.Netns, env: env,
		ready: filepath.Join(n.Dir, "vswitchd.pid"),
		argv: []string{"ovs-vswitchd", n.OVS,
			"--pidfile=" + filepath.Join(n.Dir, "vswitchd.pid"),
			"--log-file=" + filepath.Join(n.Dir, "vswitchd.ovs.log"),
			"--unixctl=" + filepath.Join(n.Dir, "vswitchd.ctl"),
			"-vconsole:off"}}
	if err := c.startService(n.vswitchd, true); err != nil {
		return err
	}
	// Without --no-wait, ovs-vsctl returns once ovs-vswitchd has created the
	// bridges, so br-phy's internal device exists when we address it.
	if err := vsctl("add-br", "br-int", "--", "set", "Bridge", "br-int",
		"datapath_type=netdev", "fail-mode=secure", "other-config:disable-in-band=true"); err != nil {
		return err
	}
	if err := vsctl("add-br", "br-phy", "--", "set", "Bridge", "br-phy", "datapath_type=netdev",
		"--", "add-port", "br-phy", "ul0"); err != nil {
		return err
	}
	if err := n.addressUnderlay(); err != nil {
		return err
	}
	if c.opts.PhysicalNetwork != "" {
		if err := c.addPhysicalBridge(n, vsctl); err != nil {
			return err
		}
	}
	// ovn-controller 23.03 rejects --unixctl: OVN_RUNDIR places its
	// control socket instead (ovn-controller.<pid>.ctl in n.Dir).
	// ovn-controller respawns: OVN 25.03.0's aborts on an ovsdb-idl
	// assertion under interface churn (docs/reliability.md), and
	// production runs it under --monitor or systemd, which restart it.
	n.controller = &service{name: n.Name + "-ovn-controller", netns: n.Netns, env: env, respawn: true,
		ready: filepath.Join(n.Dir, "ovn-controller.pid"),
		argv: []string{"ovn-controller", n.OVS,
			"--pidfile=" + filepath.Join(n.Dir, "ovn-controller.pid"),
			"--log-file=" + filepath.Join(n.Dir, "ovn-controller.ovn.log"),
			"-vconsole:off"}}
	if err := c.startService(n.controller, true); err != nil {
		return err
	}
	c.Nodes = append(c.Nodes, n)
	c.progress("%s: netns %s, encap IP %s, OVS %s", n.Name, n.Netns, n.IP, n.OVS)
	return nil
}

// addressUnderlay puts the node IP on br-phy's internal device and brings
// it up: that is how the userspace datapath's tunnel routing table finds the
// egress bridge. It is idempotent ("replace") so RestartVSwitchd can apply
// it again: OVS 3.1 makes the internal tap persistent, so the address
// normally survives a restart (measured: the device goes DOWN while
// ovs-vswitchd is gone and the new one brings it UP), but a device that was
// re-created would come back bare.
func (n *Node) addressUnderlay() error {
	for _, args := range [][]string{
		{"ip", "link", "set", "br-phy", "mtu", fmt.Sprint(n.cluster.opts.UnderlayMTU), "up"},
		{"ip", "addr", "replace", fmt.Sprintf("%s/%d", n.IP, underlayNet.Bits()), "dev", "br-phy"},
	} {
		if _, err := run(n.Netns, args...); err != nil {
			return err
		}
	}
	return nil
}

// plugUnderlay joins the node to the underlay bridge with a veth pair.
func (c *Cluster) plugUnderlay(n *Node, i int) error {
	outer := fmt.Sprintf("%s-n%d", c.Prefix, i)
	if len(outer) > 15 {
		outer = fmt.Sprintf("ul%s%d", randomHex(3), i)
	}
	mtu := fmt.Sprint(c.opts.UnderlayMTU)
	for _, step := range [][]string{
		{"", "ip", "link", "add", "ul0", "mtu", mtu, "netns", n.Netns, "type", "veth", "peer", "name", outer, "mtu", mtu, "netns", c.underlayNS},
		{c.underlayNS, "ip", "link", "set", outer, "master", "br-ul", "up"},
		// Otherwise the kernel answers ARP for the node IP with ul0's MAC
		// and tunnel traffic goes to a port OVS does not read.
		{n.Netns, "sysctl", "-qw", "net.ipv4.conf.ul0.arp_ignore=1"},
		// ul0 is an OVS port, not an interface of the node's: without
		// IPv6 the kernel sends no router solicitations or MLD reports
		// of its own on it, so UnderlayPackets counts what OVS sends
		// (the node's own traffic goes through br-phy).
		{n.Netns, "sysctl", "-qw", "net.ipv6.conf.ul0.disable_ipv6=1"},
		{n.Netns, "ip", "link", "set", "ul0", "up"},
	} {
		if _, err := run(step[0], step[1:]...); err != nil {
			return err
		}
	}
	return nil
}

// Stop kills every process the cluster started, by pid, deletes its network
// namespaces and removes its directory.
func (c *Cluster) Stop() {
	c.StopKeepDir()
	os.RemoveAll(c.Dir)
}

// StopKeepDir is Stop but leaves logs and databases for inspection.
func (c *Cluster) StopKeepDir() {
	c.stopping.Store(true)
	c.mu.Lock()
	procs := append([]*Process(nil), c.procs...)
	netnses := append([]string(nil), c.netnses...)
	c.procs, c.netnses = nil, nil
	c.mu.Unlock()
	// Reverse order: daemons before the databases they talk to.
	for i := len(procs) - 1; i >= 0; i-- {
		procs[i].Stop(3 * time.Second)
	}
	for _, ns := range netnses {
		_, _ = run("", "ip", "netns", "delete", ns)
		// A VM guest's resolv.conf (vm.go), bind-mounted by ip netns exec.
		_ = os.RemoveAll(filepath.Join(etcNetns, ns))
	}
}

// Cleanup removes what a crashed sandbox left: processes listed in dir's pid
// list and every network namespace whose name starts with prefix (the
// underlay's <prefix>-ul, the physical network's <prefix>-dc and
// <prefix>-ext among them; their veths go with them).
func Cleanup(dir, prefix string) (string, error) {
	var report []string
	if dir != "" {
		n, err := KillRecorded(dir)
		if err != nil {
			return "", err
		}
		report = append(report, fmt.Sprintf("killed %d processes", n))
	}
	if prefix != "" {
		out, err := run("", "ip", "netns", "list")
		if err != nil {
			return "", err
		}
		deleted := 0
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			if len(f) > 0 && strings.HasPrefix(f[0], prefix) {
				if _, err := run("", "ip", "netns", "delete", f[0]); err == nil {
					deleted++
				}
				_ = os.RemoveAll(filepath.Join(etcNetns, f[0]))
			}
		}
		report = append(report, fmt.Sprintf("deleted %d network namespaces", deleted))
	}
	return strings.Join(report, ", "), nil
}

// Node returns the node with the given name.
func (c *Cluster) Node(name string) (*Node, error) {
	for _, n := range c.Nodes {
		if n.Name == name {
			return n, nil
		}
	}
	return nil, fmt.Errorf("sandbox has no node %q", name)
}

// Run executes a short command inside the node's network namespace; OVS
// and OVN tools are the cluster's release's.
func (n *Node) Run(argv ...string) (string, error) {
	return n.cluster.run(n.Netns, argv...)
}

// Run executes a short command in the caller's network namespace; OVS and
// OVN tools are the cluster's release's.
func (c *Cluster) Run(argv ...string) (string, error) { return c.run("", argv...) }

// run is the package's run with the cluster's release of OVS/OVN tools.
func (c *Cluster) run(netns string, argv ...string) (string, error) {
	return run(netns, c.release.Command(argv)...)
}

// Release is the OVN/OVS build the cluster runs.
func (c *Cluster) Release() Release { return c.release }

// Pod is a network namespace standing in for a pod's sandbox.
type Pod struct {
	Name      string
	Netns     string
	NetnsPath string
	Node      *Node
}

// NewPod creates an empty network namespace (with loopback up) for a pod
// scheduled on node. It is deleted by Cluster.Stop or Pod.Delete.
func (n *Node) NewPod(name string) (*Pod, error) {
	ns := fmt.Sprintf("%s-%s", n.cluster.Prefix, name)
	if err := n.cluster.addNetns(ns); err != nil {
		return nil, err
	}
	return &Pod{Name: name, Netns: ns, NetnsPath: "/var/run/netns/" + ns, Node: n}, nil
}

// Run executes a short command inside the pod's network namespace.
func (p *Pod) Run(argv ...string) (string, error) {
	return run(p.Netns, argv...)
}

// Delete removes the pod's network namespace, as a runtime does after DEL.
func (p *Pod) Delete() error {
	_, err := run("", "ip", "netns", "delete", p.Netns)
	if err != nil && strings.Contains(err.Error(), "No such file") {
		return nil
	}
	return err
}

// Ping sends count pings from the pod to dst, retrying the whole probe a
// few times: the first packet to a new tunnel peer is dropped while OVS
// resolves the underlay ARP.
func (p *Pod) Ping(dst netip.Addr, attempts int) error {
	var err error
	for i := 0; i < attempts; i++ {
		if _, err = p.Run("ping", "-c", "1", "-W", "1", dst.String()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("pod %s cannot reach %s after %d attempts: %w", p.Name, dst, attempts, err)
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}

// ErrNotRoot is returned by CheckPrerequisites when not running as root.
var ErrNotRoot = errors.New("the sandbox needs root (network namespaces, veths, OVS)")

// CheckPrerequisites says what is missing to run a sandbox here.
func CheckPrerequisites() error {
	if os.Geteuid() != 0 {
		return ErrNotRoot
	}
	var missing []string
	for _, f := range []string{nbSchema, sbSchema, vswitchSchema} {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	for _, bin := range []string{"ovsdb-server", "ovsdb-tool", "ovs-vswitchd", "ovs-vsctl", "ovn-northd", "ovn-controller", "ip", "ping"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("sandbox prerequisites missing: %s (run `make deps`)", strings.Join(missing, ", "))
	}
	return nil
}
