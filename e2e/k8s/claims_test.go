package k8s

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	ipamv1alpha1 "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestIPAMClaimKeepsAddressesAcrossPodsAndNodes is a KubeVirt VM restarting
// on another node: its interface's IPAMClaim keeps the address while no pod
// uses it, the next pod gets it back, and only deleting the claim frees it.
// Layer2 and localnet both keep persistent IPs.
func TestIPAMClaimKeepsAddressesAcrossPodsAndNodes(t *testing.T) {
	for _, tc := range []struct{ topology, subnet, extra string }{
		{"layer2", "10.97.0.0/29", ""},
		{"localnet", "10.97.1.0/29", `,"physicalNetworkName":"datacenter","vlanID":97`},
	} {
		t.Run(tc.topology, func(t *testing.T) { ipamClaimAcrossNodes(t, tc.topology, tc.subnet, tc.extra) })
	}
}

func ipamClaimAcrossNodes(t *testing.T, topology, subnet, extra string) {
	ctx := context.Background()
	ns := namespace(t, "vms-"+topology)
	network := "vm-net-" + topology
	// .1 to .6: small enough to prove nobody else gets the claimed address.
	createNAD(t, ns, "persistent", fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":%q,"subnets":%q,"allowPersistentIPs":true,"netAttachDefName":"%s/persistent"%s}`,
		network, topology, subnet, ns, extra))
	claims := e.claims.K8sV1alpha1().IPAMClaims(ns)
	if _, err := claims.Create(ctx, &ipamv1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "vm-a.net1", Namespace: ns},
		Spec:       ipamv1alpha1.IPAMClaimSpec{Network: network, Interface: "net1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	selection := `[{"name":"persistent","ipam-claim-reference":"vm-a.net1"}]`

	first, err := runPod(t, node(0), ns, "virt-launcher-vm-a-1", selection)
	if err != nil {
		t.Fatal(err)
	}
	addr := first.ifAddr(t, "net1", false)
	claim, err := claims.Get(ctx, "vm-a.net1", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(claim.Status.IPs) != 1 || claim.Status.IPs[0] != addr.String() || claim.Status.OwnerPod == nil || claim.Status.OwnerPod.Name != "virt-launcher-vm-a-1" {
		t.Fatalf("claim status %+v, want ips [%s] owned by the first pod", claim.Status, addr)
	}
	wantClaimCondition(t, ns, "vm-a.net1", metav1.ConditionTrue, "SuccessfulAllocation")

	// The VM stops: its pod goes, the claim keeps the address.
	stopPod(t, first)
	var others []*runtimePod
	for i := 0; i < 5; i++ {
		p := mustRunPod(t, node(1), ns, fmt.Sprintf("other-%d", i), "persistent")
		if got := p.ifAddr(t, "net1", false); got.Addr() == addr.Addr() {
			t.Fatalf("pod %s got the claimed address %s", p.obj.Name, got)
		}
		others = append(others, p)
	}
	if _, err := runPod(t, node(1), ns, "one-too-many", "persistent"); err == nil || !strings.Contains(err.Error(), "out of addresses") {
		t.Fatalf("with only the claimed address left: got %v, want out of addresses", err)
	}
	// Another VM's first pod finds no address: its claim says why.
	if _, err := claims.Create(ctx, &ipamv1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "vm-b.net1", Namespace: ns},
		Spec:       ipamv1alpha1.IPAMClaimSpec{Network: network, Interface: "net1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := runPod(t, node(1), ns, "virt-launcher-vm-b-1", `[{"name":"persistent","ipam-claim-reference":"vm-b.net1"}]`); err == nil {
		t.Fatal("a VM's pod got an address of a full network")
	}
	wantClaimCondition(t, ns, "vm-b.net1", metav1.ConditionFalse, "SubnetExhausted")
	if err := claims.Delete(ctx, "vm-b.net1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// The VM starts again, on the other node: same address.
	second := mustRunPod(t, node(1), ns, "virt-launcher-vm-a-2", selection)
	if got := second.ifAddr(t, "net1", false); got != addr {
		t.Fatalf("restarted VM got %s, want its claimed %s", got, addr)
	}
	if claim, err := claims.Get(ctx, "vm-a.net1", metav1.GetOptions{}); err != nil || claim.Status.OwnerPod == nil || claim.Status.OwnerPod.Name != "virt-launcher-vm-a-2" {
		t.Fatalf("claim after the restart: %+v (%v), want owner pod virt-launcher-vm-a-2", claim, err)
	}
	wantClaimCondition(t, ns, "vm-a.net1", metav1.ConditionTrue, "SuccessfulAllocation")
	others[0].ping(t, "net1", addr.Addr())

	// Deleting the VM and its claim frees the address.
	stopPod(t, second)
	if err := claims.Delete(ctx, "vm-a.net1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for i := 0; ; i++ {
		p, err := runPod(t, node(1), ns, fmt.Sprintf("after-claim-%d", i), "persistent")
		if err == nil {
			if got := p.ifAddr(t, "net1", false); got != addr {
				t.Fatalf("after the claim was deleted the free address is %s, want %s", got, addr)
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("address %s never freed after claim deletion: %v", addr, err)
		}
		time.Sleep(200 * time.Millisecond) // the deletion reaches node2's informer
	}
}

// stopPod is the runtime stopping a pod: Multus DEL, sandbox removed, Pod
// object gone.
func stopPod(t *testing.T, p *runtimePod) {
	t.Helper()
	if _, err := p.multus("DEL"); err != nil {
		t.Fatalf("Multus DEL %s: %v", p.obj.Name, err)
	}
	_ = p.netns.Delete()
	zero := int64(0)
	if err := e.kube.CoreV1().Pods(p.obj.Namespace).Delete(context.Background(), p.obj.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}); err != nil {
		t.Fatal(err)
	}
}

// wantClaimCondition checks the claim's IPsAllocated condition.
func wantClaimCondition(t *testing.T, ns, name string, status metav1.ConditionStatus, reason string) {
	t.Helper()
	claim, err := e.claims.K8sV1alpha1().IPAMClaims(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := meta.FindStatusCondition(claim.Status.Conditions, "IPsAllocated")
	if c == nil || c.Status != status || c.Reason != reason {
		t.Fatalf("IPAMClaim %s/%s IPsAllocated = %+v, want %s %s", ns, name, c, status, reason)
	}
}
