package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovn-overlay/ovn-overlay/e2e/internal/attachcheck"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// testPod is a pod sandbox (network namespace) with a container ID.
type testPod struct {
	*sandbox.Pod
	containerID string
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newPod creates a pod netns on node n; it is deleted when the test ends.
func newPod(t *testing.T, n *sandbox.Node, name string) *testPod {
	t.Helper()
	p, err := n.NewPod(name + "-" + randomID()[:6])
	if err != nil {
		t.Fatalf("create pod netns: %v", err)
	}
	t.Cleanup(func() { _ = p.Delete() })
	return &testPod{Pod: p, containerID: randomID() + randomID()}
}

func node(t *testing.T, i int) *sandbox.Node {
	t.Helper()
	if i >= len(cluster.Nodes) {
		t.Fatalf("sandbox has %d nodes", len(cluster.Nodes))
	}
	return cluster.Nodes[i]
}

// layer2Config is a layer2 NAD config, with extra fields merged in.
func layer2Config(name, subnets string, extra map[string]any) []byte {
	conf := map[string]any{
		"cniVersion": "1.0.0", "name": name, "type": "ovn-k8s-cni-overlay", "topology": "layer2",
		"netAttachDefName": "default/" + name,
	}
	if subnets != "" {
		conf["subnets"] = subnets
	}
	for k, v := range extra {
		conf[k] = v
	}
	b, _ := json.Marshal(conf)
	return b
}

func invoke(t *testing.T, p *testPod, command, ifName string, config []byte) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, took, err := p.Node.InvokeCNI(ctx, pluginBin, sandbox.Invocation{
		Command: command, ContainerID: p.containerID, Netns: p.NetnsPath, IfName: ifName,
		Args:   fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s", p.Name),
		Config: config,
	})
	t.Logf("%s %s/%s on %s: %s (err %v)", command, p.Name, ifName, p.Node.Name, took.Round(time.Millisecond), err)
	return out, err
}

// add runs ADD and parses the result, whatever cniVersion the config has.
func add(t *testing.T, p *testPod, ifName string, config []byte) (*current.Result, error) {
	t.Helper()
	out, err := invoke(t, p, "ADD", ifName, config)
	if err != nil {
		return nil, err
	}
	var conf struct {
		CNIVersion string `json:"cniVersion"`
	}
	_ = json.Unmarshal(config, &conf)
	r, err := version.NewResult(conf.CNIVersion, out)
	if err != nil {
		t.Fatalf("ADD printed an unparsable result %q: %v", out, err)
	}
	res, err := current.GetResult(r)
	if err != nil {
		t.Fatalf("convert result: %v", err)
	}
	return res, nil
}

func mustAdd(t *testing.T, p *testPod, ifName string, config []byte) *current.Result {
	t.Helper()
	res, err := add(t, p, ifName, config)
	if err != nil {
		t.Fatalf("ADD %s/%s: %v", p.Name, ifName, err)
	}
	t.Cleanup(func() { _, _ = invoke(t, p, "DEL", ifName, config) })
	return res
}

func mustDel(t *testing.T, p *testPod, ifName string, config []byte) {
	t.Helper()
	if _, err := invoke(t, p, "DEL", ifName, config); err != nil {
		t.Fatalf("DEL %s/%s: %v", p.Name, ifName, err)
	}
}

// cniError asserts err is a CNI error with code and a message containing
// every fragment.
func cniError(t *testing.T, err error, code uint, fragments ...string) {
	t.Helper()
	var ce *sandbox.CNIError
	if !errors.As(err, &ce) {
		t.Fatalf("want CNI error %d, got %v", code, err)
	}
	if ce.CNI.Code != code {
		t.Errorf("CNI error code %d, want %d (%s)", ce.CNI.Code, code, ce.CNI.Msg)
	}
	for _, f := range fragments {
		if !strings.Contains(ce.CNI.Msg+" "+ce.CNI.Details, f) {
			t.Errorf("CNI error %q does not mention %q", ce.CNI.Msg, f)
		}
	}
}

// podAddrs are the result's addresses.
func podAddrs(t *testing.T, res *current.Result) []netip.Prefix {
	t.Helper()
	var out []netip.Prefix
	for _, ip := range res.IPs {
		a, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			t.Fatalf("bad IP in result: %v", ip.Address)
		}
		bits, _ := ip.Address.Mask.Size()
		out = append(out, netip.PrefixFrom(a.Unmap(), bits))
	}
	return out
}

// The assertions below read state with the OVS/OVN command-line tools, not
// with the product's own caches, so they check what is really there.

func nbctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := node(t, 0).Run(append([]string{"ovn-nbctl", "--db=" + cluster.Central.NB}, args...)...)
	if err != nil {
		t.Fatalf("ovn-nbctl: %v", err)
	}
	return strings.TrimSpace(out)
}

// nbPorts lists the network's attachment ports: every logical switch port
// of the network but the nodes' warm (pre-provisioned, not yet used) ones
// and a localnet network's port to the physical network.
// One NB read: with two (warm ports, then all ports), warm ports a refill
// commits in between would be counted as attachments.
func nbPorts(t *testing.T, network string) []string {
	t.Helper()
	var out []string
	for _, p := range findLSPs(t, fmt.Sprintf(`external_ids:"ovn-overlay/network"="%s"`, network)) {
		if !isWarmLSP(p) && !attachcheck.IsLocalnet(p) {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

// nbContainers lists the container IDs of the network's attachment ports
// (warm ports excluded), one per port.
func nbContainers(t *testing.T, network string) []string {
	t.Helper()
	var out []string
	for _, p := range findLSPs(t, fmt.Sprintf(`external_ids:"ovn-overlay/network"="%s"`, network)) {
		if !isWarmLSP(p) && p.ExternalIDs["ovn-overlay/container-id"] != "" {
			out = append(out, p.ExternalIDs["ovn-overlay/container-id"])
		}
	}
	sort.Strings(out)
	return out
}

// nbPortColumn reads one column of a logical switch port.
func nbPortColumn(t *testing.T, port, column string) string {
	t.Helper()
	return nbctl(t, "--bare", "--columns="+column, "find", "Logical_Switch_Port", fmt.Sprintf(`name="%s"`, port))
}

// ovsPorts lists br-int's ports on node n, minus tunnel and bridge ports.
func ovsPorts(t *testing.T, n *sandbox.Node) []string {
	t.Helper()
	out, err := n.Run("ovs-vsctl", "--db="+n.OVS, "list-ports", "br-int")
	if err != nil {
		t.Fatalf("ovs-vsctl: %v", err)
	}
	var ports []string
	for _, p := range fields(out) {
		if strings.HasPrefix(p, "ov") && !strings.HasPrefix(p, "ovn-") { // ovn-* are geneve tunnels
			ports = append(ports, p)
		}
	}
	return ports
}

// hostVeths lists the node's veth host ends created by the daemon.
func hostVeths(t *testing.T, n *sandbox.Node) []string {
	t.Helper()
	out, err := n.Run("ip", "-o", "link", "show", "type", "veth")
	if err != nil {
		t.Fatalf("ip link: %v", err)
	}
	var links []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) > 1 && strings.HasPrefix(f[1], "ov") {
			links = append(links, strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0])
		}
	}
	return links
}

// assertClean checks that no trace of network is left on any node.
func assertClean(t *testing.T, network string) {
	t.Helper()
	if ports := nbPorts(t, network); len(ports) > 0 {
		t.Errorf("logical switch ports left in NB for %s: %v", network, ports)
	}
	for _, n := range cluster.Nodes {
		if ports := ovsPorts(t, n); len(ports) > 0 {
			t.Errorf("OVS ports left on %s: %v", n.Name, ports)
		}
		if links := hostVeths(t, n); len(links) > 0 {
			t.Errorf("host veths left on %s: %v", n.Name, links)
		}
	}
}

func fields(s string) []string {
	f := strings.Fields(s)
	sort.Strings(f)
	return f
}

// podLink reads an interface inside the pod: MTU, MAC and addresses.
func podLink(t *testing.T, p *testPod, ifName string) string {
	t.Helper()
	out, err := p.Run("ip", "-o", "addr", "show", "dev", ifName)
	if err != nil {
		t.Fatalf("ip addr in pod %s: %v", p.Name, err)
	}
	link, err := p.Run("ip", "-o", "link", "show", "dev", ifName)
	if err != nil {
		t.Fatalf("ip link in pod %s: %v", p.Name, err)
	}
	return link + out
}

var _ = types.ErrInternal

// invokeQuiet is invoke without per-call logging, for bulk tests.
func invokeQuiet(p *testPod, command, ifName string, config []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _, err := p.Node.InvokeCNI(ctx, pluginBin, sandbox.Invocation{
		Command: command, ContainerID: p.containerID, Netns: p.NetnsPath, IfName: ifName,
		Args:   fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=%s", p.Name),
		Config: config,
	})
	return out, err
}

// addQuiet runs ADD and returns the pod's addresses.
func addQuiet(p *testPod, ifName string, config []byte) ([]netip.Prefix, error) {
	out, err := invokeQuiet(p, "ADD", ifName, config)
	if err != nil {
		return nil, err
	}
	r, err := current.NewResult(out)
	if err != nil {
		return nil, fmt.Errorf("parse result %q: %w", out, err)
	}
	res, err := current.GetResult(r)
	if err != nil {
		return nil, err
	}
	var addrs []netip.Prefix
	for _, ip := range res.IPs {
		a, _ := netip.AddrFromSlice(ip.Address.IP)
		bits, _ := ip.Address.Mask.Size()
		addrs = append(addrs, netip.PrefixFrom(a.Unmap(), bits))
	}
	return addrs, nil
}
