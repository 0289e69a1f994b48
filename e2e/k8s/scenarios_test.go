package k8s

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

func node(i int) *sandbox.Node { return e.cluster.Nodes[i] }

// TestSpecNADsAndTinypod applies the multi-homing guide's NADs verbatim and
// runs its tinypod (both networks) through Multus on each node.
func TestSpecNADsAndTinypod(t *testing.T) {
	ns := namespace(t, "left-one")
	createNAD(t, ns, "l3-network", netconf.SpecLayer3Config)
	createNAD(t, ns, "not-so-fast-network", netconf.SpecLayer2Config)
	pods := []*runtimePod{
		mustRunPod(t, node(0), ns, "tinypod", "l3-network,not-so-fast-network"),
		mustRunPod(t, node(1), ns, "tinypod-2", "l3-network,not-so-fast-network"),
	}
	for _, p := range pods {
		net1, net2 := p.ifAddr(t, "net1", false), p.ifAddr(t, "net2", false)
		if !netip.MustParsePrefix("10.128.0.0/16").Contains(net1.Addr()) || net1.Bits() != 24 {
			t.Errorf("%s net1 = %s, want a /24 node subnet address of 10.128.0.0/16", p.obj.Name, net1)
		}
		if !netip.MustParsePrefix("10.128.0.0/24").Contains(net2.Addr()) {
			t.Errorf("%s net2 = %s, want an address of 10.128.0.0/24", p.obj.Name, net2)
		}
		// Multus reports what we returned, in the pod's network-status.
		want := map[string]string{"left-one/l3-network": net1.Addr().String(), "left-one/not-so-fast-network": net2.Addr().String()}
		for _, st := range p.networkStatus(t) {
			if ip, ok := want[st.Name]; ok {
				if len(st.IPs) != 1 || st.IPs[0] != ip || st.MAC != p.ifMAC(t, st.Interface) {
					t.Errorf("%s network-status for %s = %+v, want IP %s and the interface's MAC", p.obj.Name, st.Name, st, ip)
				}
				delete(want, st.Name)
			}
		}
		if len(want) > 0 {
			t.Errorf("%s network-status lacks %v", p.obj.Name, want)
		}
	}
	diagnoseTinypod(t, pods[0])
	// Cross-node: the guide's networks overlap, and the two tinypods hold
	// the same address on different networks (see docs/design.md), so each
	// network is probed from tinypod on node1 to a pod on node2 that is
	// attached to that network only.
	l3probe := mustRunPod(t, node(1), ns, "l3-probe", "l3-network")
	l2probe := mustRunPod(t, node(1), ns, "l2-probe", "not-so-fast-network")
	pods[0].ping(t, "net1", l3probe.ifAddr(t, "net1", false).Addr())
	pods[0].ping(t, "net2", l2probe.ifAddr(t, "net1", false).Addr())
	l3probe.ping(t, "net1", pods[0].ifAddr(t, "net1", false).Addr())
	l2probe.ping(t, "net1", pods[0].ifAddr(t, "net2", false).Addr())
}

func TestStaticIPMACAndInterface(t *testing.T) {
	ns := namespace(t, "static")
	createNAD(t, ns, "flat", `{"cniVersion":"1.0.0","name":"static-flat","type":"ovn-k8s-cni-overlay","topology":"layer2","netAttachDefName":"static/flat","capabilities":{"ips":true,"mac":true}}`)
	p := mustRunPod(t, node(0), ns, "fixed", `[{"name":"flat","interface":"blue0","ips":["192.0.2.10/24"],"mac":"0a:58:c0:00:02:0a"}]`)
	if got := p.ifAddr(t, "blue0", false); got.String() != "192.0.2.10/24" {
		t.Errorf("blue0 address %s, want 192.0.2.10/24", got)
	}
	if got := p.ifMAC(t, "blue0"); got != "0a:58:c0:00:02:0a" {
		t.Errorf("blue0 MAC %s, want 0a:58:c0:00:02:0a", got)
	}
	q := mustRunPod(t, node(1), ns, "fixed-peer", `[{"name":"flat","ips":["192.0.2.20/24"]}]`)
	q.ping(t, "net1", netip.MustParseAddr("192.0.2.10"))

	// Without the capabilities, Multus passes the request as the deprecated
	// IP=/MAC= CNI_ARGS; they work too.
	createNAD(t, ns, "flat-args", `{"cniVersion":"1.0.0","name":"static-flat","type":"ovn-k8s-cni-overlay","topology":"layer2","netAttachDefName":"static/flat-args"}`)
	viaArgs := mustRunPod(t, node(1), ns, "via-args", `[{"name":"flat-args","ips":["192.0.2.30/24"],"mac":"0a:58:c0:00:02:1e"}]`)
	if got := viaArgs.ifAddr(t, "net1", false); got.String() != "192.0.2.30/24" {
		t.Errorf("CNI_ARGS IP: got %s, want 192.0.2.30/24", got)
	}
	if got := viaArgs.ifMAC(t, "net1"); got != "0a:58:c0:00:02:1e" {
		t.Errorf("CNI_ARGS MAC: got %s, want 0a:58:c0:00:02:1e", got)
	}

	// With subnets, a requested address must come from the pool.
	createNAD(t, ns, "pooled", `{"cniVersion":"1.0.0","name":"static-pooled","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.60.0.0/24","excludeSubnets":"10.60.0.0/28","netAttachDefName":"static/pooled","capabilities":{"ips":true}}`)
	_, err := runPod(t, node(0), ns, "outside", `[{"name":"pooled","ips":["10.60.0.5/24"]}]`)
	if err == nil || !strings.Contains(err.Error(), "excludeSubnets") {
		t.Fatalf("static address inside excludeSubnets: got %v, want an error naming excludeSubnets", err)
	}
	inside := mustRunPod(t, node(0), ns, "inside", `[{"name":"pooled","ips":["10.60.0.50/24"]}]`)
	if got := inside.ifAddr(t, "net1", false); got.String() != "10.60.0.50/24" {
		t.Errorf("got %s, want 10.60.0.50/24", got)
	}
}

func TestConflictingNADs(t *testing.T) {
	ns := namespace(t, "conflict")
	first := createNAD(t, ns, "first", `{"cniVersion":"1.0.0","name":"shared-net","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.70.0.0/24","netAttachDefName":"conflict/first"}`)
	eventsFor(t, first, "NetworkConfigAccepted")
	second := createNAD(t, ns, "second", `{"cniVersion":"1.0.0","name":"shared-net","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.71.0.0/24","netAttachDefName":"conflict/second"}`)
	for _, ev := range eventsFor(t, second, "ConflictingNetworkConfig") {
		if ev.Reason == "ConflictingNetworkConfig" && !strings.Contains(ev.Message, "conflict/first") {
			t.Errorf("event %q does not name the NAD that owns the network", ev.Message)
		}
	}
	_, err := runPod(t, node(0), ns, "uses-second", "second")
	if err == nil || !strings.Contains(err.Error(), "conflict/first") {
		t.Fatalf("pod on the conflicting NAD: got %v, want a refusal naming conflict/first", err)
	}
	mustRunPod(t, node(0), ns, "uses-first", "first")
}

func TestInvalidNADGetsAnEventWhenCreated(t *testing.T) {
	ns := namespace(t, "invalid")
	nad := createNAD(t, ns, "bad", `{"cniVersion":"1.0.0","name":"bad-net","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.128.0.0/16","role":"Primary","netAttachDefName":"invalid/bad"}`)
	for _, ev := range eventsFor(t, nad, "InvalidNetworkConfig") {
		if ev.Reason == "InvalidNetworkConfig" && !strings.Contains(ev.Message, `set it to "secondary"`) {
			t.Errorf("event %q does not give the fix", ev.Message)
		}
	}
	// NADs of other plugins are none of our business.
	other := createNAD(t, ns, "not-ours", `{"cniVersion":"1.0.0","name":"x","type":"bridge"}`)
	if list, _ := e.kube.CoreV1().Events(ns).List(context.Background(), metav1.ListOptions{FieldSelector: "involvedObject.name=" + other.Name}); len(list.Items) > 0 {
		t.Errorf("events on another plugin's NAD: %v", list.Items)
	}
}

func TestNetAttachDefNameMismatch(t *testing.T) {
	ns := namespace(t, "mismatch")
	nad := createNAD(t, ns, "real-name", `{"cniVersion":"1.0.0","name":"mismatch-net","type":"ovn-k8s-cni-overlay","topology":"layer2","netAttachDefName":"mismatch/other-name"}`)
	eventsFor(t, nad, "NetAttachDefNameMismatch")
	_, err := runPod(t, node(0), ns, "mismatched", "real-name")
	if err == nil || !strings.Contains(err.Error(), "mismatch/real-name") {
		t.Fatalf("got %v, want an error telling to set netAttachDefName to mismatch/real-name", err)
	}
}

func TestSameNetworkTwice(t *testing.T) {
	ns := namespace(t, "twice")
	createNAD(t, ns, "l3", `{"cniVersion":"1.0.0","name":"twice-l3","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.80.0.0/16/24","netAttachDefName":"twice/l3"}`)
	p := mustRunPod(t, node(0), ns, "double", "l3,l3")
	a, b := p.ifAddr(t, "net1", false), p.ifAddr(t, "net2", false)
	if a.Addr() == b.Addr() {
		t.Fatalf("both attachments got %s", a)
	}
	q := mustRunPod(t, node(1), ns, "single", "l3")
	q.ping(t, "net1", a.Addr())
	q.ping(t, "net1", b.Addr())
}

func TestHotplugThirdAttachment(t *testing.T) {
	ns := namespace(t, "hotplug")
	l2 := `{"cniVersion":"1.0.0","name":"hot-l2","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.90.0.0/24","netAttachDefName":"hotplug/l2"}`
	createNAD(t, ns, "l2", l2)
	p := mustRunPod(t, node(0), ns, "vm", "l2,l2")
	before := []netip.Prefix{p.ifAddr(t, "net1", false), p.ifAddr(t, "net2", false)}
	peer := mustRunPod(t, node(1), ns, "peer", "l2")

	// Hot-plug net3, as a hotplug controller does: one delegate ADD.
	if _, err := p.plugin("ADD", "net3", l2); err != nil {
		t.Fatalf("hotplug ADD net3: %v", err)
	}
	third := p.ifAddr(t, "net3", false)
	peer.ping(t, "net1", third.Addr())
	if _, err := p.plugin("DEL", "net3", l2); err != nil {
		t.Fatalf("hot-unplug DEL net3: %v", err)
	}
	if _, err := p.netns.Run("ip", "link", "show", "net3"); err == nil {
		t.Error("net3 still present after DEL")
	}
	// The other attachments never noticed.
	for i, ifName := range []string{"net1", "net2"} {
		if got := p.ifAddr(t, ifName, false); got != before[i] {
			t.Errorf("%s changed from %s to %s", ifName, before[i], got)
		}
		peer.ping(t, "net1", before[i].Addr())
	}
}

// TestPodDeletedWhileDaemonDown: the runtime's DEL never reaches a daemon
// that is down; the restarted daemon finds the Pod gone and cleans up.
func TestPodDeletedWhileDaemonDown(t *testing.T) {
	ns := namespace(t, "gc")
	createNAD(t, ns, "l2", `{"cniVersion":"1.0.0","name":"gc-l2","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.95.0.0/24","netAttachDefName":"gc/l2"}`)
	n := node(0)
	p := mustRunPod(t, n, ns, "doomed", "l2")
	survivor := mustRunPod(t, n, ns, "survivor", "l2")
	if got := ports(t, "gc-l2"); len(got) != 2 {
		t.Fatalf("NB has %d ports for gc-l2, want 2", len(got))
	}

	e.daemons[n.Name].Kill()
	// Grace period 0 is how the kubelet finally removes a pod once its
	// containers are gone (no kubelet runs here).
	zero := int64(0)
	if err := e.kube.CoreV1().Pods(ns).Delete(context.Background(), p.obj.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
	if err := e.startDaemon(n); err != nil {
		t.Fatal(err)
	}
	// The daemon serves its socket at once and cleans up once connected:
	// wait for it. A pod's port is named after it unless it took a warm
	// port: its external_ids say whose it is.
	var got []string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		got = ports(t, "gc-l2")
		if len(got) == 1 || time.Now().After(deadline) {
			break
		}
	}
	if len(got) != 1 || !strings.Contains(nbctl(t, "get", "Logical_Switch_Port", got[0], `external_ids:"ovn-overlay/container-id"`), survivor.containerID) {
		t.Fatalf("after restart the NB has ports %v, want only the survivor's", got)
	}
	if out, _ := n.Run("ip", "-o", "link", "show", "type", "veth"); strings.Count(out, ": ov") != 1 {
		t.Errorf("node veths after clean-up: %s", out)
	}
}

// ports lists a network's logical switch ports with ovn-nbctl.
func ports(t *testing.T, network string) []string {
	t.Helper()
	out, err := sandbox.RunIn("", "ovn-nbctl", "--db="+e.cluster.Central.NB, "--bare", "--columns=name", "find", "Logical_Switch_Port",
		fmt.Sprintf(`external_ids:"ovn-overlay/network"="%s"`, network), `external_ids:"ovn-overlay/container-id"!=""`)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Fields(out)
}

// diagnoseTinypod runs ovn-overlayctl diagnose on tinypod's node, naming
// the attachments as an operator reads them off the pod (namespace/name,
// network selection elements): the daemon knows the pod from the CNI
// arguments Multus passed.
func diagnoseTinypod(t *testing.T, p *runtimePod) {
	t.Helper()
	run := func(args ...string) (int, string) {
		argv := append([]string{"diagnose", "--socket", p.node.DaemonSocket(), "--pod", p.obj.Namespace + "/" + p.obj.Name}, args...)
		out, err := exec.Command(filepath.Join(e.bin, "ovn-overlayctl"), argv...).CombinedOutput()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			return exit.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatalf("ovn-overlayctl %q: %v", argv, err)
		}
		return 0, string(out)
	}
	// Two attachments: the tool asks which, listing them.
	if code, out := run(); code != 1 || !strings.Contains(out, "left-one/l3-network@net1") || !strings.Contains(out, "left-one/not-so-fast-network@net2") {
		t.Errorf("diagnose without --net: exit %d, want 1 and both attachments named:\n%s", code, out)
	}
	for _, element := range []string{"l3-network", "left-one/not-so-fast-network@net2"} {
		if code, out := run("--net", element); code != 0 || !strings.Contains(out, "verdict: healthy") {
			t.Errorf("diagnose --net %s: exit %d, want a healthy attachment:\n%s", element, code, out)
		}
	}
}
