// Command ovn-overlay-demo runs the project end to end in a self-contained
// sandbox: central OVN plus two simulated nodes (network namespaces with
// their own OVS and ovn-controller, geneve between them), the node daemon on
// each, and pods (network namespaces) attached to the multi-homing guide's
// example network by executing the real CNI plugin as a runtime would.
// Two tenant overlays with the same subnet then reach an external host
// through their own OVN gateways (external.go).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// tinypodNetworks are the multi-homing guide's tinypod attachments
// ("k8s.v1.cni.cncf.io/networks: l3-network,not-so-fast-network"), with the
// interface names Multus gives them and the guide's NAD configs verbatim.
var tinypodNetworks = []struct {
	ifName, name, config string
}{
	{"net1", "l3-network", netconf.SpecLayer3Config},
	{"net2", "not-so-fast-network", netconf.SpecLayer2Config},
}

// localnetNetworks put the same pods on the sandbox's physical network: the
// guide's localnet example (VLAN 33 of "tenantblack") and an untagged
// network of our own on "datacenter". The external host sits on both.
var localnetNetworks = []struct {
	ifName, name, config string
	vlan                 int
	external             netip.Prefix // the external host's address
}{
	{"net3", "tenantblack", netconf.SpecLocalnetConfig, 33, netip.MustParsePrefix("202.10.130.126/28")},
	{"net4", "datacenter-flat", `{"cniVersion": "1.0.0", "name": "datacenter-flat", "type": "ovn-k8s-cni-overlay", "topology": "localnet",
  "physicalNetworkName": "datacenter", "subnets": "192.168.77.0/24", "excludeSubnets": "192.168.77.1/32", "netAttachDefName": "left-one/datacenter-flat"}`,
		0, netip.MustParsePrefix("192.168.77.1/24")},
}

// bridgeMappings is what an admin sets on every node for the localnet
// networks: both physical networks on the node's br-phys.
const bridgeMappings = "datacenter:br-phys,tenantblack:br-phys"

const (
	prefix = "ovdemo"
	dir    = "/tmp/ovn-overlay-demo"
)

func main() {
	binDir := flag.String("bin", "bin", "directory holding ovn-overlayd and ovn-k8s-cni-overlay")
	keep := flag.Bool("keep", false, "leave the sandbox running until Ctrl-C, to poke at it")
	flag.Parse()
	if flag.Arg(0) == "cleanup" {
		report, err := sandbox.Cleanup(dir, prefix)
		if err != nil {
			fail(err)
		}
		fmt.Println("cleanup:", report)
		return
	}
	if err := run(*binDir, *keep); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "demo failed:", err)
	os.Exit(1)
}

func run(binDir string, keep bool) error {
	if err := sandbox.CheckPrerequisites(); err != nil {
		return err
	}
	plugin, err := filepath.Abs(filepath.Join(binDir, "ovn-k8s-cni-overlay"))
	if err != nil {
		return err
	}
	daemonBin, _ := filepath.Abs(filepath.Join(binDir, "ovn-overlayd"))
	for _, b := range []string{plugin, daemonBin} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%w (run `make build` first)", err)
		}
	}
	// A demo killed earlier may have left processes and namespaces.
	if report, err := sandbox.Cleanup(dir, prefix); err == nil {
		step("cleaned up leftovers of a previous run: %s", report)
	}
	_ = os.RemoveAll(dir)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	release, err := sandbox.ReleaseFromEnv()
	if err != nil {
		return err
	}
	version, err := release.Version()
	if err != nil {
		return err
	}
	step("starting central OVN %s and 3 nodes (userspace datapath, geneve underlay)", version)
	cluster, err := sandbox.Start(ctx, sandbox.Options{Nodes: 3, Prefix: prefix, Dir: dir, Progress: indent{}, Release: &release, PhysicalNetwork: "datacenter"})
	if err != nil {
		return err
	}
	defer func() {
		if !keep {
			step("tearing down the sandbox")
			cluster.Stop()
		}
	}()
	for _, n := range cluster.Nodes {
		if _, err := n.StartDaemon(daemonBin, "--external-network="+externalNetwork); err != nil {
			return fmt.Errorf("daemon on %s: %w", n.Name, err)
		}
		step("%s: ovn-overlayd serving CNI on %s", n.Name, n.DaemonSocket())
	}

	step("attaching the guide's tinypod on each node to l3-network (net1, routed, 10.128.0.0/16 with a /24 per node) and not-so-fast-network (net2, layer2 10.128.0.0/24)")
	var pods []attached
	for _, n := range cluster.Nodes {
		pod, err := n.NewPod("tinypod-" + n.Name)
		if err != nil {
			return err
		}
		a := attached{pod: pod, node: n, id: fmt.Sprintf("demo%s%024d", n.Name, time.Now().UnixNano()), addrs: map[string]netip.Addr{}}
		for _, net := range tinypodNetworks {
			out, took, err := n.InvokeCNI(ctx, plugin, sandbox.Invocation{
				Command: "ADD", ContainerID: a.id, Netns: pod.NetnsPath, IfName: net.ifName,
				Args:   "IgnoreUnknown=1;K8S_POD_NAMESPACE=left-one;K8S_POD_NAME=tinypod",
				Config: []byte(net.config),
			})
			if err != nil {
				return fmt.Errorf("CNI ADD of %s on %s: %w", net.name, n.Name, err)
			}
			addr, err := firstAddr(out)
			if err != nil {
				return err
			}
			a.addrs[net.ifName] = addr
			step("%s: CNI ADD of %s/%s (%s) took %s -> %s", n.Name, pod.Name, net.ifName, net.name, took.Round(100*time.Microsecond), addr)
		}
		pods = append(pods, a)
	}
	// The guide's two networks overlap (10.128.0.0/24 lies inside
	// 10.128.0.0/16), so each ping is bound to its network's interface, and
	// a pair of pods where one's address on one network is the other's
	// address on the other network cannot talk at all: Linux drops packets
	// whose source is one of its own addresses. The third node shows that
	// every pair without such a clash works, in both directions.
	for _, src := range pods {
		for _, dst := range pods {
			if src.pod == dst.pod {
				continue
			}
			for _, net := range tinypodNetworks {
				to, from := dst.addrs[net.ifName], src.addrs[net.ifName]
				if clash := clashOf(src.addrs, dst.addrs); clash != "" {
					step("%s -> %s on %s: skipped, %s", src.pod.Name, dst.pod.Name, net.name, clash)
					continue
				}
				if err := pingOnce(src.pod, net.ifName, to); err != nil {
					return err
				}
				out, err := src.pod.Run("ping", "-c", "3", "-i", "0.2", "-I", net.ifName, to.String())
				if err != nil {
					return fmt.Errorf("ping %s -> %s on %s: %w", src.pod.Name, dst.pod.Name, net.name, err)
				}
				step("%s -> %s on %s (%s -> %s): %s", src.pod.Name, dst.pod.Name, net.name, from, to, lastLine(out))
			}
		}
	}

	if err := demoLocalnet(ctx, cluster, plugin, pods); err != nil {
		return err
	}
	tenants, err := demoExternal(ctx, cluster, plugin)
	if err != nil {
		return err
	}

	if keep {
		fmt.Printf(`
The sandbox keeps running. Try:
  ip netns exec %[1]s ping -I net1 %[2]s
  ip netns exec %[1]s ip addr; ip netns exec %[1]s ip route
  ovn-nbctl --db=%[3]s show
  ovn-sbctl --db=%[4]s show
  ovs-vsctl --db=%[5]s show
  ip netns exec %[1]s ping -I net4 %[7]s            # localnet, over the physical network
  ip netns exec %[8]s ip addr                       # the external host
  ip netns exec %[9]s ip -s link show %[10]s         # node1's physical uplink counters
  ip netns exec %[11]s ping %[12]s         # tenant-red, out through its gateway (SNAT)
  ip netns exec %[11]s ip route              # 172.30.0.0/24 via tenant-red's router
  ip netns exec %[11]s ping %[14]s       # tenant-blue's address: no answer
  ovn-nbctl --db=%[3]s lrp-get-gateway-chassis %[13]s
  ovn-nbctl --db=%[3]s --columns=name,networks find Logical_Router_Port name=%[13]s
  ovn-nbctl --db=%[3]s lr-nat-list %[15]s
  %[16]s diagnose --socket %[17]s --pod left-one/tinypod --net l3-network@net1 --peer %[2]s
                                                     # one attachment end to end: NB, SB, OVS, flows, pod
Logs and databases: %[6]s
Press Ctrl-C to tear everything down (or run: go run ./cmd/ovn-overlay-demo cleanup).
`, pods[0].pod.Netns, pods[1].addrs["net1"], cluster.Central.NB, cluster.Central.SB, cluster.Nodes[0].OVS, cluster.Dir,
			localnetNetworks[1].external.Addr(), cluster.External().Netns, cluster.Nodes[0].Netns, cluster.Nodes[0].PhysicalUplink,
			tenants[0].pod.Netns, externalRouter, gatewayPort(tenants[0].network), netip.MustParsePrefix(blueStatic).Addr(),
			"ovn-overlay."+tenants[0].network+".router", filepath.Join(binDir, "ovn-overlayctl"), cluster.Nodes[0].DaemonSocket())
		<-ctx.Done()
		// Ctrl-C reached the node daemons too (same process group), so
		// there is no one left to serve DELs: the teardown removes it all.
		keep = false
		step("interrupted: tearing down without per-pod DELs")
		return nil
	}

	for _, p := range pods {
		// Runtimes delete in reverse order of ADD.
		all := append(append([]demoNetwork(nil), tinypodDemo()...), localnetDemo()...)
		for i := len(all) - 1; i >= 0; i-- {
			net := all[i]
			_, took, err := p.node.InvokeCNI(context.Background(), plugin, sandbox.Invocation{
				Command: "DEL", ContainerID: p.id, Netns: p.pod.NetnsPath, IfName: net.ifName, Config: []byte(net.config),
			})
			if err != nil {
				return fmt.Errorf("CNI DEL of %s on %s: %w", net.name, p.node.Name, err)
			}
			step("%s: CNI DEL of %s/%s took %s", p.node.Name, p.pod.Name, net.ifName, took.Round(100*time.Microsecond))
		}
	}
	for i := len(tenants) - 1; i >= 0; i-- {
		p := tenants[i]
		_, took, err := p.node.InvokeCNI(context.Background(), plugin, sandbox.Invocation{
			Command: "DEL", ContainerID: p.id, Netns: p.pod.NetnsPath, IfName: "net1", Config: []byte(p.config),
		})
		if err != nil {
			return fmt.Errorf("CNI DEL of %s on %s: %w", p.network, p.node.Name, err)
		}
		step("%s: CNI DEL of %s/net1 took %s", p.node.Name, p.pod.Name, took.Round(100*time.Microsecond))
	}
	step("demo OK")
	return nil
}

// attached is a demo pod and its addresses.
type attached struct {
	pod   *sandbox.Pod
	node  *sandbox.Node
	id    string
	addrs map[string]netip.Addr // interface -> address
}

// demoNetwork is one attachment every demo pod gets.
type demoNetwork struct{ ifName, name, config string }

func tinypodDemo() []demoNetwork {
	var out []demoNetwork
	for _, n := range tinypodNetworks {
		out = append(out, demoNetwork{n.ifName, n.name, n.config})
	}
	return out
}

// clashOf explains why two pods attached to the guide's overlapping
// networks cannot talk, or returns "" if they can.
func clashOf(a, b map[string]netip.Addr) string {
	for ifA, addrA := range a {
		for ifB, addrB := range b {
			if addrA == addrB && ifA != ifB {
				return fmt.Sprintf("both pods hold %s (on %s and %s): the guide's two networks overlap", addrA, ifA, ifB)
			}
		}
	}
	return ""
}

// pingOnce retries a first probe: the first packet to a new tunnel peer
// is dropped while OVS resolves the underlay ARP.
func pingOnce(p *sandbox.Pod, ifName string, dst netip.Addr) error {
	var err error
	for i := 0; i < 5; i++ {
		if _, err = p.Run("ping", "-c", "1", "-W", "1", "-I", ifName, dst.String()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("pod %s cannot reach %s via %s: %w", p.Name, dst, ifName, err)
}

func firstAddr(out []byte) (netip.Addr, error) {
	// Results come in the config's cniVersion (0.3.1 for the guide's
	// overlay NADs, 1.0.0 for its localnet one).
	var v struct {
		CNIVersion string `json:"cniVersion"`
	}
	if err := json.Unmarshal(out, &v); err != nil {
		return netip.Addr{}, fmt.Errorf("parse CNI result %q: %w", out, err)
	}
	r, err := version.NewResult(v.CNIVersion, out)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("parse CNI result %q: %w", out, err)
	}
	res, err := current.GetResult(r)
	if err != nil {
		return netip.Addr{}, err
	}
	if len(res.IPs) == 0 {
		return netip.Addr{}, errors.New("CNI result has no IP")
	}
	a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP)
	return a.Unmap(), nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

func step(format string, args ...any) {
	fmt.Printf("==> "+format+"\n", args...)
}

// indent prints the sandbox's progress lines under the current step.
type indent struct{}

func (indent) Write(p []byte) (int, error) {
	fmt.Print("    ", string(p))
	return len(p), nil
}
