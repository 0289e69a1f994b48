// Command ovn-overlay-demo runs the project end to end in a self-contained
// sandbox: central OVN plus two simulated nodes (network namespaces with
// their own OVS and ovn-controller, geneve between them), the node daemon on
// each, and pods (network namespaces) attached to the multi-homing guide's
// example network by executing the real CNI plugin as a runtime would.
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

	"github.com/ovn-overlay/ovn-overlay/daemon/netconf"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// layer2NAD is the multi-homing guide's layer2 network, verbatim.
const layer2NAD = netconf.SpecLayer2Config

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
	step("starting central OVN and 2 nodes (userspace datapath, geneve underlay)")
	cluster, err := sandbox.Start(ctx, sandbox.Options{Nodes: 2, Prefix: prefix, Dir: dir, Progress: indent{}})
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
		if _, err := n.StartDaemon(daemonBin); err != nil {
			return fmt.Errorf("daemon on %s: %w", n.Name, err)
		}
		step("%s: ovn-overlayd serving CNI on %s", n.Name, n.DaemonSocket())
	}

	step("attaching one pod per node to not-so-fast-network (layer2, 10.128.0.0/24, mtu 1300)")
	type attached struct {
		pod  *sandbox.Pod
		id   string
		addr netip.Addr
	}
	var pods []attached
	for _, n := range cluster.Nodes {
		pod, err := n.NewPod("tinypod-" + n.Name)
		if err != nil {
			return err
		}
		id := fmt.Sprintf("demo%s%024d", n.Name, time.Now().UnixNano())
		out, took, err := n.InvokeCNI(ctx, plugin, sandbox.Invocation{
			Command: "ADD", ContainerID: id, Netns: pod.NetnsPath, IfName: "net1",
			Args:   "IgnoreUnknown=1;K8S_POD_NAMESPACE=left-one;K8S_POD_NAME=tinypod",
			Config: []byte(layer2NAD),
		})
		if err != nil {
			return fmt.Errorf("CNI ADD on %s: %w", n.Name, err)
		}
		addr, err := firstAddr(out)
		if err != nil {
			return err
		}
		step("%s: CNI ADD of %s/net1 took %s -> %s", n.Name, pod.Name, took.Round(100*time.Microsecond), addr)
		pods = append(pods, attached{pod, id, addr})
	}
	for i, src := range pods {
		dst := pods[(i+1)%len(pods)]
		if err := src.pod.Ping(dst.addr, 5); err != nil {
			return err
		}
		out, err := src.pod.Run("ping", "-c", "3", "-i", "0.2", dst.addr.String())
		if err != nil {
			return fmt.Errorf("ping %s -> %s: %w", src.pod.Name, dst.pod.Name, err)
		}
		step("%s (%s) -> %s (%s): %s", src.pod.Name, src.addr, dst.pod.Name, dst.addr, lastLine(out))
	}

	if keep {
		fmt.Printf(`
The sandbox keeps running. Try:
  ip netns exec %[1]s ping %[2]s
  ip netns exec %[1]s ip addr show net1
  ovn-nbctl --db=%[3]s show
  ovn-sbctl --db=%[4]s show
  ovs-vsctl --db=%[5]s show
Logs and databases: %[6]s
Press Ctrl-C to tear everything down (or run: go run ./cmd/ovn-overlay-demo cleanup).
`, pods[0].pod.Netns, pods[1].addr, cluster.Central.NB, cluster.Central.SB, cluster.Nodes[0].OVS, cluster.Dir)
		<-ctx.Done()
		keep = false
	}

	for i, p := range pods {
		n := cluster.Nodes[i]
		_, took, err := n.InvokeCNI(context.Background(), plugin, sandbox.Invocation{
			Command: "DEL", ContainerID: p.id, Netns: p.pod.NetnsPath, IfName: "net1", Config: []byte(layer2NAD),
		})
		if err != nil {
			return fmt.Errorf("CNI DEL on %s: %w", n.Name, err)
		}
		step("%s: CNI DEL of %s/net1 took %s", n.Name, p.pod.Name, took.Round(100*time.Microsecond))
	}
	step("demo OK")
	return nil
}

func firstAddr(out []byte) (netip.Addr, error) {
	var conf struct {
		CNIVersion string `json:"cniVersion"`
	}
	_ = json.Unmarshal([]byte(layer2NAD), &conf)
	r, err := version.NewResult(conf.CNIVersion, out)
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
