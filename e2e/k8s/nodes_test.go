package k8s

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// TestNodeDeletionReleasesEverythingOnce: a node that leaves the cluster
// for good (its Node object deleted) had a layer3 subnet claim, pods'
// ports and their address-set entries. Exactly one of the remaining
// daemons, the Lease holder, releases them.
func TestNodeDeletionReleasesEverythingOnce(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "departing")
	l3 := `{"cniVersion":"1.0.0","name":"dep-l3","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.98.0.0/16/24","netAttachDefName":"departing/l3"}`
	l2 := `{"cniVersion":"1.0.0","name":"dep-l2","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.99.0.0/24","netAttachDefName":"departing/l2"}`
	createNAD(t, ns, "l3", l3)
	createNAD(t, ns, "l2", l2)

	// node3 is a third daemon on node2's OVS standing in for a real node.
	host := node(1)
	if _, err := e.kube.CoreV1().Nodes().Create(ctx, &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: "node3"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	sock := filepath.Join(host.Dir, "node3-cni.sock")
	ghost, err := host.StartDaemonAs(e.daemonBin, "node3", sock, e.daemonArgs()...)
	if err != nil {
		t.Fatal(err)
	}
	// Its pod, attached by a runtime on node3.
	pod, err := host.NewPod("node3-pod")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = pod.Delete() })
	for ifName, conf := range map[string]string{"net1": l3, "net2": l2} {
		_, _, err := host.InvokeCNI(ctx, e.bin+"/ovn-k8s-cni-overlay", sandbox.Invocation{
			Command: "ADD", ContainerID: "node3-container", Netns: pod.NetnsPath, IfName: ifName,
			Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=departing;K8S_POD_NAME=node3-pod", Config: []byte(conf), Socket: sock,
		})
		if err != nil {
			t.Fatalf("ADD %s on node3: %v", ifName, err)
		}
	}
	if !strings.Contains(nbctl(t, "--bare", "--columns=external_ids", "find", "Logical_Router", "name=ovn-overlay.dep-l3.router"), "node-subnets/node3") {
		t.Fatal("node3 did not claim a layer3 subnet")
	}

	// node3 is gone for good.
	ghost.Kill()
	if err := e.kube.CoreV1().Nodes().Delete(ctx, "node3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		claims := nbctl(t, "--bare", "--columns=external_ids", "find", "Logical_Router", "name=ovn-overlay.dep-l3.router")
		left := nbctl(t, "--bare", "--columns=name", "find", "Logical_Switch_Port", `external_ids:"ovn-overlay/node"=node3`)
		if !strings.Contains(claims, "node3") && left == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30s after Node node3 was deleted: claims %q, ports %q", claims, left)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if sets := nbctl(t, "--bare", "--columns=addresses", "find", "Address_Set", `external_ids:"ovn-overlay/namespace"=departing`); sets != "" {
		t.Errorf("address sets still list node3's pod: %q", sets)
	}
	// Exactly one daemon released it.
	releases := 0
	for _, n := range e.cluster.Nodes {
		b, err := os.ReadFile(e.daemons[n.Name].LogPath)
		if err != nil {
			t.Fatal(err)
		}
		releases += strings.Count(string(b), `msg="released deleted node" node=node3`)
	}
	if releases != 1 {
		t.Fatalf("node3 was released %d times, want exactly once", releases)
	}
}

func nbctl(t *testing.T, args ...string) string {
	t.Helper()
	out, err := sandbox.RunIn("", append([]string{"ovn-nbctl", "--db=" + e.cluster.Central.NB}, args...)...)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(out)
}
