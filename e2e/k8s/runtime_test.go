package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// runtimePod is a pod as the test's container runtime sees it: the API
// object, its sandbox netns and its infra container ID.
type runtimePod struct {
	obj         *corev1.Pod
	netns       *sandbox.Pod
	node        *sandbox.Node
	containerID string
}

func namespace(t *testing.T, name string) string {
	t.Helper()
	if err := e.ensureNamespace(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	return name
}

func createNAD(t *testing.T, ns, name, config string) *nadv1.NetworkAttachmentDefinition {
	t.Helper()
	nad, err := e.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Create(context.Background(), &nadv1.NetworkAttachmentDefinition{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create NAD %s/%s: %v", ns, name, err)
	}
	t.Cleanup(func() {
		_ = e.nads.K8sCniCncfIoV1().NetworkAttachmentDefinitions(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return nad
}

// runPod creates the Pod object scheduled on node n, then does what a
// runtime does: create the sandbox netns and call Multus ADD. The runtime
// DEL and netns removal are registered as cleanup.
func runPod(t *testing.T, n *sandbox.Node, ns, name, networks string) (*runtimePod, error) {
	t.Helper()
	return runLabelledPod(t, n, ns, name, networks, nil)
}

// runLabelledPod is runPod for a pod with labels (a virt-launcher pod's).
func runLabelledPod(t *testing.T, n *sandbox.Node, ns, name, networks string, labels map[string]string) (*runtimePod, error) {
	t.Helper()
	ctx := context.Background()
	obj, err := e.kube.CoreV1().Pods(ns).Create(ctx, &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels, Annotations: map[string]string{"k8s.v1.cni.cncf.io/networks": networks}},
		Spec: corev1.PodSpec{NodeName: n.Name, Containers: []corev1.Container{{
			Name: "agnhost-container", Image: "k8s.gcr.io/e2e-test-images/agnhost:2.36", Args: []string{"pause"},
		}}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create pod %s/%s: %v", ns, name, err)
	}
	netns, err := n.NewPod(name + "-" + randomID()[:6])
	if err != nil {
		t.Fatal(err)
	}
	p := &runtimePod{obj: obj, netns: netns, node: n, containerID: randomID() + randomID()}
	t.Cleanup(func() {
		_, _ = p.multus("DEL")
		_ = netns.Delete()
		_ = e.kube.CoreV1().Pods(ns).Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	out, err := p.multus("ADD")
	if err != nil {
		return p, err
	}
	t.Logf("Multus ADD %s/%s on %s: %s", ns, name, n.Name, strings.TrimSpace(out))
	return p, nil
}

func mustRunPod(t *testing.T, n *sandbox.Node, ns, name, networks string) *runtimePod {
	t.Helper()
	p, err := runPod(t, n, ns, name, networks)
	if err != nil {
		t.Fatalf("Multus ADD of %s/%s: %v", ns, name, err)
	}
	return p
}

func (p *runtimePod) cniArgs() string {
	return fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s;K8S_POD_INFRA_CONTAINER_ID=%s;K8S_POD_UID=%s",
		p.obj.Namespace, p.obj.Name, p.containerID, p.obj.UID)
}

// multus invokes Multus as the runtime: eth0 is the cluster network, the
// annotation's networks come after it.
func (p *runtimePod) multus(command string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, _, err := p.node.InvokeCNI(ctx, e.bin+"/multus", sandbox.Invocation{
		Command: command, ContainerID: p.containerID, Netns: p.netns.NetnsPath, IfName: "eth0",
		Args: p.cniArgs(), Config: e.multusConfig(p.node),
	})
	return string(out), err
}

// plugin invokes ovn-k8s-cni-overlay directly for one interface, as a
// hotplug controller (KubeVirt, multus-dynamic-networks) does.
func (p *runtimePod) plugin(command, ifName, config string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, _, err := p.node.InvokeCNI(ctx, e.bin+"/ovn-k8s-cni-overlay", sandbox.Invocation{
		Command: command, ContainerID: p.containerID, Netns: p.netns.NetnsPath, IfName: ifName,
		Args: p.cniArgs(), Config: []byte(config),
	})
	return string(out), err
}

// networkStatus is one entry of the k8s.v1.cni.cncf.io/network-status
// annotation Multus writes.
type networkStatus struct {
	Name      string   `json:"name"`
	Interface string   `json:"interface"`
	IPs       []string `json:"ips"`
	MAC       string   `json:"mac"`
	Default   bool     `json:"default"`
}

func (p *runtimePod) networkStatus(t *testing.T) []networkStatus {
	t.Helper()
	obj, err := e.kube.CoreV1().Pods(p.obj.Namespace).Get(context.Background(), p.obj.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	raw := obj.Annotations["k8s.v1.cni.cncf.io/network-status"]
	var st []networkStatus
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Fatalf("network-status annotation %q: %v", raw, err)
	}
	return st
}

// ifAddr reads the first global address of ifName inside the pod.
func (p *runtimePod) ifAddr(t *testing.T, ifName string, ipv6 bool) netip.Prefix {
	t.Helper()
	family := "-4"
	if ipv6 {
		family = "-6"
	}
	out, err := p.netns.Run("ip", "-o", family, "addr", "show", "dev", ifName, "scope", "global")
	if err != nil {
		t.Fatalf("pod %s has no %s: %v", p.obj.Name, ifName, err)
	}
	for _, f := range strings.Fields(out) {
		if pfx, err := netip.ParsePrefix(f); err == nil {
			return pfx
		}
	}
	t.Fatalf("pod %s %s has no address: %q", p.obj.Name, ifName, out)
	return netip.Prefix{}
}

func (p *runtimePod) ifMAC(t *testing.T, ifName string) string {
	t.Helper()
	out, err := p.netns.Run("cat", "/sys/class/net/"+ifName+"/address")
	if err != nil {
		// /sys shows the netns of whoever mounted it; ask ip instead.
		out, err = p.netns.Run("ip", "-o", "link", "show", "dev", ifName)
		if err != nil {
			t.Fatal(err)
		}
		f := strings.Fields(out)
		for i, w := range f {
			if w == "link/ether" && i+1 < len(f) {
				return f[i+1]
			}
		}
	}
	return strings.TrimSpace(out)
}

func (p *runtimePod) ifMTU(t *testing.T, ifName string) int {
	t.Helper()
	out, err := p.netns.Run("ip", "-o", "link", "show", "dev", ifName)
	if err != nil {
		t.Fatal(err)
	}
	f := strings.Fields(out)
	for i, w := range f {
		if w == "mtu" && i+1 < len(f) {
			var mtu int
			if _, err := fmt.Sscan(f[i+1], &mtu); err == nil {
				return mtu
			}
		}
	}
	t.Fatalf("no MTU in %q", out)
	return 0
}

// ping pings dst from the pod bound to ifName, retrying the first probe
// (the first packet to a new tunnel peer is dropped during underlay ARP).
func (p *runtimePod) ping(t *testing.T, ifName string, dst netip.Addr) {
	t.Helper()
	var err error
	for i := 0; i < 5; i++ {
		if _, err = p.netns.Run("ping", "-c", "1", "-W", "1", "-I", ifName, dst.String()); err == nil {
			return
		}
	}
	t.Fatalf("pod %s cannot reach %s via %s: %v", p.obj.Name, dst, ifName, err)
}

// eventsFor lists the Events recorded on a NAD, waiting up to 10s for one
// with the given reason.
func eventsFor(t *testing.T, nad *nadv1.NetworkAttachmentDefinition, reason string) []corev1.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		list, err := e.kube.CoreV1().Events(nad.Namespace).List(context.Background(), metav1.ListOptions{
			FieldSelector: "involvedObject.name=" + nad.Name,
		})
		if err != nil {
			t.Fatal(err)
		}
		for _, ev := range list.Items {
			if ev.Reason == reason {
				return list.Items
			}
		}
		if time.Now().After(deadline) {
			var got []string
			for _, ev := range list.Items {
				got = append(got, ev.Reason+": "+ev.Message)
			}
			t.Fatalf("no %s event on NAD %s/%s after 10s; events: %v", reason, nad.Namespace, nad.Name, got)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
