package k8s

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	ipamv1alpha1 "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/e2e/internal/attachcheck"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// KubeVirt VMs on secondary networks, driven as KubeVirt drives them: a
// virt-launcher pod per VM (labelled with the VM's name) referencing the
// VM interface's IPAMClaim, a guest (sandbox.VM) bridged to the pod's
// interface that gets its address from OVN's DHCP, and live migration as
// a second virt-launcher pod on the other node, the guest's switch-over to
// it with QEMU's RARPs, KubeVirt's target-started annotation and node
// label, then the source pod's removal.
//
// E2E_MIGRATIONS sets the migrations per topology (default 10);
// E2E_REPORT_DIR, when set, receives migration-<topology>-<release>.json.

const vmLabelName = "vm.kubevirt.io/name"

func migrations() int {
	if n, err := strconv.Atoi(os.Getenv("E2E_MIGRATIONS")); err == nil && n > 0 {
		return n
	}
	return 10
}

// migrationRound is one migration's effect on a peer's traffic to the VM.
type migrationRound struct {
	Round int    `json:"round"`
	From  string `json:"from"`
	To    string `json:"to"`
	// LossMs is the longest gap between two ping replies (10 ms apart)
	// around the switch-over, less the interval: how long the VM was
	// unreachable.
	LossMs float64 `json:"loss_ms"`
	// StreamGapMs is the longest pause of the TCP stream's deliveries.
	StreamGapMs float64 `json:"stream_gap_ms"`
}

func TestKubeVirtVMs(t *testing.T) {
	for _, tc := range []struct{ topology, subnet, extra string }{
		{"layer2", "10.98.0.0/24,fd00:98::/64", ""},
		{"localnet", "10.98.1.0/24,fd00:98:1::/64", `,"physicalNetworkName":"datacenter","vlanID":98`},
	} {
		t.Run(tc.topology, func(t *testing.T) { kubevirtVM(t, tc.topology, tc.subnet, tc.extra) })
	}
}

// vmPod is a VM's virt-launcher pod: labelled with the VM's name, and with
// kubevirt.io/nodeName once the VM runs in it (KubeVirt sets it then).
func vmPod(t *testing.T, n *sandbox.Node, ns, name, vm, selection string, running bool) *runtimePod {
	t.Helper()
	labels := map[string]string{"kubevirt.io": "virt-launcher", vmLabelName: vm}
	if running {
		labels["kubevirt.io/nodeName"] = n.Name
	}
	p, err := runLabelledPod(t, n, ns, name, selection, labels)
	if err != nil {
		t.Fatalf("Multus ADD of virt-launcher pod %s/%s: %v", ns, name, err)
	}
	return p
}

func kubevirtVM(t *testing.T, topology, subnet, extra string) {
	ctx := context.Background()
	ns := namespace(t, "kv-"+topology)
	network := "kv-" + topology
	createNAD(t, ns, "vmnet", fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":%q,"subnets":%q,"allowPersistentIPs":true,"enableDHCP":true,"dhcpLeaseTime":600,"dnsServers":"10.96.0.10","netAttachDefName":"%s/vmnet"%s}`,
		network, topology, subnet, ns, extra))
	claimName := "vm-m.net1"
	if _, err := e.claims.K8sV1alpha1().IPAMClaims(ns).Create(ctx, &ipamv1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: claimName, Namespace: ns},
		Spec:       ipamv1alpha1.IPAMClaimSpec{Network: network, Interface: "net1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	selection := fmt.Sprintf(`[{"name":"vmnet","ipam-claim-reference":%q}]`, claimName)

	// The VM starts on node 0 and gets its address by DHCP.
	src := vmPod(t, node(0), ns, "virt-launcher-vm-m-0", "vm-m", selection, true)
	vm, err := node(0).NewVM("m-" + topology)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vm.Delete() })
	podMTU := src.ifMTU(t, "net1")
	if err := vm.PlugInto(src.netns, "net1"); err != nil {
		t.Fatal(err)
	}
	addr, err := vm.StartDHCP(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	addr6, err := vm.StartDHCP6(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	checkDHCP(t, vm, ns, claimName, []netip.Prefix{addr, addr6}, podMTU)

	// A peer on the other node pings the VM every 10 ms and keeps a TCP
	// stream to it through every migration.
	peer := mustRunPod(t, node(1), ns, "peer", "vmnet")
	peer.ping(t, "net1", addr.Addr())
	pg, err := sandbox.StartPinger(peer.netns.Netns, addr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Kill)
	stream, err := sandbox.StartStream(vm.NetnsPath, addr.Addr(), peer.netns.NetnsPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stream.Close)

	var rounds []migrationRound
	var switchovers []time.Time
	cur := src
	for i := 1; i <= migrations(); i++ {
		to := node(i % 2)
		target := vmPod(t, to, ns, fmt.Sprintf("virt-launcher-vm-m-%d", i), "vm-m", selection, false)
		// Until the switch-over the source serves and the target waits.
		wantClaimPorts(t, ns+"/"+claimName, map[string]bool{cur.obj.Name: true, target.obj.Name: false})
		at := time.Now()
		if err := vm.MigrateTo(target.netns, "net1"); err != nil {
			t.Fatal(err)
		}
		// KubeVirt's signals: the VM started on the target, then the
		// migration completed (the node label moves).
		patchPod(t, target, `{"metadata":{"annotations":{"kubevirt.io/migration-target-start-timestamp":"`+time.Now().UTC().Format(time.RFC3339Nano)+`"}}}`)
		waitReplies(t, pg, at, fmt.Sprintf("migration %d to %s", i, to.Name))
		patchPod(t, target, `{"metadata":{"labels":{"kubevirt.io/nodeName":"`+to.Name+`"}}}`)
		wantClaimPorts(t, ns+"/"+claimName, map[string]bool{cur.obj.Name: false, target.obj.Name: true})
		stopPod(t, cur)
		wantClaimPorts(t, ns+"/"+claimName, map[string]bool{target.obj.Name: true})
		time.Sleep(300 * time.Millisecond) // traffic settles before the next round
		switchovers = append(switchovers, at)
		rounds = append(rounds, migrationRound{Round: i, From: cur.node.Name, To: to.Name})
		cur = target
	}
	replies := pg.Stop()
	got, survived := stream.Finish(switchovers[len(switchovers)-1])
	for i := range rounds {
		from := switchovers[i].Add(-200 * time.Millisecond)
		to := from.Add(3 * time.Second)
		if i+1 < len(switchovers) && switchovers[i+1].Add(-200*time.Millisecond).Before(to) {
			to = switchovers[i+1].Add(-200 * time.Millisecond)
		}
		rounds[i].LossMs = ms(sandbox.LongestGap(replies, from, to, 10*time.Millisecond))
		rounds[i].StreamGapMs = ms(sandbox.LongestGap(got, from, to, 10*time.Millisecond))
	}
	reportMigrations(t, topology, rounds)
	if !survived {
		t.Errorf("the TCP stream to the VM did not survive %d migrations: %s", len(rounds), stream.Why())
	}
	if got := vmAddr(t, vm); got != addr {
		t.Errorf("after migrating, the guest has %s, want %s", got, addr)
	}
	claim, err := e.claims.K8sV1alpha1().IPAMClaims(ns).Get(ctx, claimName, metav1.GetOptions{})
	if err != nil || claim.Status.OwnerPod == nil || claim.Status.OwnerPod.Name != cur.obj.Name {
		t.Fatalf("claim after the migrations: %+v (%v), want owner pod %s", claim, err, cur.obj.Name)
	}
	wantClaimCondition(t, ns, claimName, metav1.ConditionTrue, "SuccessfulAllocation")

	// A failed migration: the target pod goes before the VM moved. The
	// source keeps serving and nothing of the target is left.
	other := node(0)
	if cur.node == other {
		other = node(1)
	}
	pg2, err := sandbox.StartPinger(peer.netns.Netns, addr.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg2.Kill)
	failed := vmPod(t, other, ns, "virt-launcher-vm-m-failed", "vm-m", selection, false)
	wantClaimPorts(t, ns+"/"+claimName, map[string]bool{cur.obj.Name: true, failed.obj.Name: false})
	stopPod(t, failed)
	wantClaimPorts(t, ns+"/"+claimName, map[string]bool{cur.obj.Name: true})
	checkAfter := time.Now()
	time.Sleep(500 * time.Millisecond)
	if pg2.RepliesSince(checkAfter) == 0 {
		t.Fatalf("after a failed migration the VM no longer answers")
	}
	pg2.Stop()
	if leftovers, err := attachcheck.OwnedIfaces(other); err != nil {
		t.Fatal(err)
	} else {
		for _, i := range leftovers {
			if i.ExternalIDs[attachcheck.ContainerIDKey] == failed.containerID {
				t.Errorf("failed migration left OVS interface %s on %s", i.Name, other.Name)
			}
		}
	}

	// The VM restarts on the other node: a new guest boots and DHCP gives
	// it the claim's address again.
	stopPod(t, cur)
	if err := vm.Delete(); err != nil {
		t.Fatal(err)
	}
	again := vmPod(t, other, ns, "virt-launcher-vm-m-restarted", "vm-m", selection, true)
	vm2, err := other.NewVM("m2-" + topology)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = vm2.Delete() })
	if err := vm2.PlugInto(again.netns, "net1"); err != nil {
		t.Fatal(err)
	}
	addr2, err := vm2.StartDHCP(30 * time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if addr2 != addr {
		t.Fatalf("restarted VM got %s by DHCP, want its claimed %s", addr2, addr)
	}
	peer.ping(t, "net1", addr.Addr())
}

// checkDHCP checks what the guest's DHCP client configured: the claim's
// address, the pod interface's MTU, the VM's name as hostname, the DNS
// server; and no default route (a secondary network must not take it).
func checkDHCP(t *testing.T, vm *sandbox.VM, ns, claimName string, addrs []netip.Prefix, mtu int) {
	t.Helper()
	claim, err := e.claims.K8sV1alpha1().IPAMClaims(ns).Get(context.Background(), claimName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got, held []string
	for _, a := range addrs {
		got = append(got, a.Addr().String())
	}
	for _, s := range claim.Status.IPs {
		held = append(held, netip.MustParsePrefix(s).Addr().String())
	}
	if !slices.Equal(got, held) {
		t.Errorf("guest got %v by DHCPv4 and DHCPv6; the claim holds %v", got, claim.Status.IPs)
	}
	addr := addrs[0]
	if addr.String() != claim.Status.IPs[0] {
		t.Errorf("guest's IPv4 address %s, the claim's %s: the prefix length comes from the subnet mask DHCP offers", addr, claim.Status.IPs[0])
	}
	if out, err := vm.Run("cat", "/sys/class/net/eth0/mtu"); err != nil || strings.TrimSpace(out) != strconv.Itoa(mtu) {
		t.Errorf("guest MTU %q (%v), want the pod interface's %d from DHCP", strings.TrimSpace(out), err, mtu)
	}
	lease, err := os.ReadFile(vm.LeaseFile(4))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(lease), `option host-name "vm-m"`) {
		t.Errorf("lease offers no hostname vm-m:\n%s", lease)
	}
	if resolv, err := vm.ResolvConf(); err != nil || !strings.Contains(resolv, "nameserver 10.96.0.10") {
		t.Errorf("guest resolv.conf %q (%v), want nameserver 10.96.0.10", resolv, err)
	}
	if out, err := vm.Run("ip", "-4", "route", "show", "default"); err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("guest has a default route %q (%v): DHCP must not offer a router on a secondary network", out, err)
	}
}

// wantClaimPorts waits (5 s) until the claim's logical switch ports are
// exactly want's pods, each enabled as want says.
func wantClaimPorts(t *testing.T, claim string, want map[string]bool) {
	t.Helper()
	var got map[string]bool
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		out, err := attachcheck.RunNB(e.cluster, "--format=csv", "--no-headings", "--columns=external_ids,enabled",
			"find", "Logical_Switch_Port", fmt.Sprintf(`external_ids:"ovn-overlay/ipam-claim"="%s"`, claim))
		if err != nil {
			t.Fatal(err)
		}
		got = map[string]bool{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			if line == "" {
				continue
			}
			i := strings.LastIndex(line, ",")
			ids, enabled := line[:i], line[i+1:]
			pod := ""
			for _, kv := range strings.Split(strings.Trim(ids, `"{}`), ", ") {
				if k, v, ok := strings.Cut(kv, "="); ok && strings.Trim(k, `"`) == "ovn-overlay/pod-name" {
					pod = strings.Trim(v, `"`)
				}
			}
			got[pod] = enabled != "false"
		}
		if mapsEqual(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("ports of IPAMClaim %s (pod: enabled) = %v, want %v", claim, got, want)
		}
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func patchPod(t *testing.T, p *runtimePod, patch string) {
	t.Helper()
	if _, err := e.kube.CoreV1().Pods(p.obj.Namespace).Patch(context.Background(), p.obj.Name, types.MergePatchType, []byte(patch), metav1.PatchOptions{}); err != nil {
		t.Fatalf("patch pod %s: %v", p.obj.Name, err)
	}
}

// waitReplies waits (10 s) until the VM answers again after the
// switch-over at: a reply within the last 30 ms (pings go every 10 ms),
// at least 100 ms after at. A reply already on its way when the VM moved
// does not count, so a slow hand-over is measured in its own round.
func waitReplies(t *testing.T, pg *sandbox.Pinger, at time.Time, what string) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if time.Since(at) > 100*time.Millisecond && pg.RepliesSince(time.Now().Add(-30*time.Millisecond)) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: the VM did not answer within 10 s", what)
		}
	}
	time.Sleep(200 * time.Millisecond)
}

func vmAddr(t *testing.T, vm *sandbox.VM) netip.Prefix {
	t.Helper()
	a, err := vm.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// reportMigrations logs the rounds with p50 and max, and writes them to
// E2E_REPORT_DIR.
func reportMigrations(t *testing.T, topology string, rounds []migrationRound) {
	t.Helper()
	var loss, gap []float64
	for _, r := range rounds {
		loss = append(loss, r.LossMs)
		gap = append(gap, r.StreamGapMs)
		t.Logf("migration %d %s -> %s: ping gap %.0f ms, TCP gap %.0f ms", r.Round, r.From, r.To, r.LossMs, r.StreamGapMs)
	}
	release := e.cluster.Release().Name
	t.Logf("%s on OVN %s, %d migrations: ping gap p50 %.0f ms max %.0f ms; TCP gap p50 %.0f ms max %.0f ms",
		topology, release, len(rounds), median(loss), slices.Max(loss), median(gap), slices.Max(gap))
	if dir := os.Getenv("E2E_REPORT_DIR"); dir != "" {
		b, _ := json.MarshalIndent(map[string]any{"release": release, "topology": topology, "mechanism": "enable-disable hand-over", "rounds": rounds}, "", "  ")
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("migration-%s-%s.json", topology, release)), b, 0o644); err != nil {
			t.Error(err)
		}
	}
}

func median(v []float64) float64 {
	s := append([]float64(nil), v...)
	sort.Float64s(s)
	return s[len(s)/2]
}

// TestKubeVirtMigrationRefused: a VM cannot live-migrate where it would lose
// its addresses, and a claim serves one VM. Each refusal names the way out
// and leaves the running pod alone.
func TestKubeVirtMigrationRefused(t *testing.T) {
	ctx := context.Background()
	ns := namespace(t, "kv-refused")
	createNAD(t, ns, "noclaim", `{"cniVersion":"1.0.0","name":"kv-noclaim","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.98.8.0/24","netAttachDefName":"`+ns+`/noclaim"}`)
	createNAD(t, ns, "l3", `{"cniVersion":"1.0.0","name":"kv-l3","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.98.64.0/18/24","netAttachDefName":"`+ns+`/l3"}`)
	createNAD(t, ns, "claimed", `{"cniVersion":"1.0.0","name":"kv-claimed","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.98.9.0/24","allowPersistentIPs":true,"netAttachDefName":"`+ns+`/claimed"}`)
	if _, err := e.claims.K8sV1alpha1().IPAMClaims(ns).Create(ctx, &ipamv1alpha1.IPAMClaim{
		ObjectMeta: metav1.ObjectMeta{Name: "vm-r.net1", Namespace: ns},
		Spec:       ipamv1alpha1.IPAMClaimSpec{Network: "kv-claimed", Interface: "net1"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, selection, otherVM string
		want                     []string
	}{
		{"no-claim", `[{"name":"noclaim"}]`, "vm-r", []string{"has no IPAMClaim", "allowPersistentIPs"}},
		{"layer3", `[{"name":"l3"}]`, "vm-r", []string{"layer3", "layer2 or localnet"}},
		{"another-vms-claim", `[{"name":"claimed","ipam-claim-reference":"vm-r.net1"}]`, "vm-other", []string{"in use by pod", "own claim"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := vmPod(t, node(0), ns, "virt-launcher-vm-r-"+tc.name, "vm-r", tc.selection, true)
			addr := src.ifAddr(t, "net1", false)
			_, err := runLabelledPod(t, node(1), ns, "virt-launcher-target-"+tc.name, tc.selection,
				map[string]string{"kubevirt.io": "virt-launcher", vmLabelName: tc.otherVM})
			if err == nil {
				t.Fatal("the second pod was attached")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal %q does not say %q", err, w)
				}
			}
			if got := src.ifAddr(t, "net1", false); got != addr {
				t.Errorf("the running pod's address changed from %s to %s", addr, got)
			}
			stopPod(t, src)
		})
	}
}
