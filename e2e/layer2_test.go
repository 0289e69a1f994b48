package e2e

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

func TestSpecLayer2AcrossNodes(t *testing.T) {
	conf := []byte(netconf.SpecLayer2Config)
	a, b := newPod(t, node(t, 0), "tinypod"), newPod(t, node(t, 1), "tinypod")
	resA, resB := mustAdd(t, a, "net1", conf), mustAdd(t, b, "net1", conf)

	subnet := netip.MustParsePrefix("10.128.0.0/24")
	addrA, addrB := podAddrs(t, resA), podAddrs(t, resB)
	if len(addrA) != 1 || len(addrB) != 1 || !subnet.Contains(addrA[0].Addr()) || !subnet.Contains(addrB[0].Addr()) {
		t.Fatalf("addresses %v and %v, want one each from %s", addrA, addrB, subnet)
	}
	if addrA[0] == addrB[0] {
		t.Fatalf("both pods got %s", addrA[0])
	}
	for _, tc := range []struct {
		pod  *testPod
		addr netip.Prefix
	}{{a, addrA[0]}, {b, addrB[0]}} {
		link := podLink(t, tc.pod, "net1")
		if !strings.Contains(link, "mtu 1300") || !strings.Contains(link, tc.addr.String()) {
			t.Errorf("pod %s net1 is %q; want mtu 1300 and %s", tc.pod.Name, link, tc.addr)
		}
	}
	if err := a.Ping(addrB[0].Addr(), 5); err != nil {
		t.Fatal(err)
	}
	if err := b.Ping(addrA[0].Addr(), 5); err != nil {
		t.Fatal(err)
	}
	tcpEcho(t, b, a, addrB[0].Addr())
	// Port security lists MAC and IP.
	for _, port := range nbPorts(t, "not-so-fast-network") {
		if ps := nbPortColumn(t, port, "port_security"); !strings.Contains(ps, "10.128.0.") {
			t.Errorf("port %s port_security %q lacks its IP", port, ps)
		}
	}

	mustDel(t, a, "net1", conf)
	mustDel(t, b, "net1", conf)
	assertClean(t, "not-so-fast-network")
}

func TestLayer2WithoutSubnets(t *testing.T) {
	network := "l2-nosubnet-" + randomID()[:4]
	plain := layer2Config(network, "", nil)
	a, b := newPod(t, node(t, 0), "plain"), newPod(t, node(t, 1), "plain")

	// No subnets and no requested IPs: an L2-only port, secured by MAC.
	res := mustAdd(t, a, "net1", plain)
	if len(res.IPs) != 0 {
		t.Fatalf("got addresses %v without subnets or a request", res.IPs)
	}
	port := nbPorts(t, network)[0]
	if ps := nbPortColumn(t, port, "port_security"); strings.Contains(ps, ".") || ps == "" {
		t.Errorf("port_security %q, want the MAC only", ps)
	}
	mustDel(t, a, "net1", plain)

	// Addresses the runtime asks for (runtimeConfig.ips) are used as given.
	withIP := func(ip string) []byte {
		return layer2Config(network, "", map[string]any{"runtimeConfig": map[string]any{"ips": []string{ip}}})
	}
	ra := mustAdd(t, a, "net1", withIP("192.0.2.10/24"))
	rb := mustAdd(t, b, "net1", withIP("192.0.2.20/24"))
	if got := podAddrs(t, ra); len(got) != 1 || got[0].String() != "192.0.2.10/24" {
		t.Fatalf("pod a got %v, want 192.0.2.10/24", got)
	}
	if got := podAddrs(t, rb); len(got) != 1 || got[0].String() != "192.0.2.20/24" {
		t.Fatalf("pod b got %v, want 192.0.2.20/24", got)
	}
	if err := a.Ping(netip.MustParseAddr("192.0.2.20"), 5); err != nil {
		t.Fatal(err)
	}
	// The same static address twice on one network is refused.
	c := newPod(t, node(t, 1), "dup")
	if _, err := add(t, c, "net1", withIP("192.0.2.10/24")); err == nil {
		t.Fatal("a second pod got 192.0.2.10")
	} else {
		cniError(t, err, types.ErrInvalidNetworkConfig, "192.0.2.10", "in use")
	}
	mustDel(t, a, "net1", withIP("192.0.2.10/24"))
	mustDel(t, b, "net1", withIP("192.0.2.20/24"))
	assertClean(t, network)
}

func TestExcludeSubnetsAndExhaustion(t *testing.T) {
	network := "l2-small-" + randomID()[:4]
	// .0 is the network address and .7 broadcast; .1-.3 are excluded.
	conf := layer2Config(network, "10.30.0.0/29", map[string]any{"excludeSubnets": "10.30.0.0/30,10.30.0.3/32"})
	var got []string
	for i := 0; i < 3; i++ {
		p := newPod(t, node(t, i%2), fmt.Sprintf("ex%d", i))
		res := mustAdd(t, p, "net1", conf)
		for _, a := range podAddrs(t, res) {
			got = append(got, a.Addr().String())
		}
	}
	want := map[string]bool{"10.30.0.4": true, "10.30.0.5": true, "10.30.0.6": true}
	for _, a := range got {
		if !want[a] {
			t.Errorf("allocated %s; only .4-.6 are outside excludeSubnets", a)
		}
		delete(want, a)
	}
	if len(want) > 0 {
		t.Errorf("addresses never allocated: %v (got %v)", want, got)
	}
	// The pool is now empty: a clear error, and nothing left behind.
	p := newPod(t, node(t, 0), "ex-full")
	_, err := add(t, p, "net1", conf)
	cniError(t, err, types.ErrInternal, "out of addresses", "subnets")
	for _, port := range nbPorts(t, network) {
		if strings.Contains(port, p.containerID) {
			t.Errorf("failed ADD left logical switch port %s", port)
		}
	}
}

func TestDelIsIdempotent(t *testing.T) {
	network := "l2-del-" + randomID()[:4]
	conf := layer2Config(network, "10.31.0.0/24", nil)
	p := newPod(t, node(t, 0), "del")
	// DEL of an attachment that never existed.
	mustDel(t, p, "net1", conf)
	mustAdd(t, p, "net1", conf)
	mustDel(t, p, "net1", conf)
	mustDel(t, p, "net1", conf)
	// DEL after the runtime already removed the pod's netns.
	mustAdd(t, p, "net2", conf)
	if err := p.Delete(); err != nil {
		t.Fatal(err)
	}
	mustDel(t, p, "net2", conf)
	assertClean(t, network)
}

// TestCheckPrevResultInEveryVersion: the runtime sends prevResult in the
// config's cniVersion, and a 0.4.0 result has another shape than a 1.x one.
func TestCheckPrevResultInEveryVersion(t *testing.T) {
	for _, v := range []string{"0.4.0", "1.0.0", "1.1.0"} {
		t.Run(v, func(t *testing.T) {
			network := "l2-checkv-" + randomID()[:4]
			conf := layer2Config(network, "10.33.0.0/24", map[string]any{"cniVersion": v})
			p := newPod(t, node(t, 0), "checkv")
			out, err := invoke(t, p, "ADD", "net1", conf)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _, _ = invoke(t, p, "DEL", "net1", conf) })
			checkConf := layer2Config(network, "10.33.0.0/24", map[string]any{"cniVersion": v, "prevResult": rawJSON(out)})
			if _, err := invoke(t, p, "CHECK", "net1", checkConf); err != nil {
				t.Fatalf("CHECK with a CNI %s prevResult: %v", v, err)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	network := "l2-check-" + randomID()[:4]
	conf := layer2Config(network, "10.32.0.0/24", nil)
	p := newPod(t, node(t, 0), "check")
	out, err := invoke(t, p, "ADD", "net1", conf)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = invoke(t, p, "DEL", "net1", conf) })
	checkConf := layer2Config(network, "10.32.0.0/24", map[string]any{"prevResult": rawJSON(out)})
	if _, err := invoke(t, p, "CHECK", "net1", checkConf); err != nil {
		t.Fatalf("CHECK right after ADD: %v", err)
	}
	// Drift in the pod: someone changed the MTU.
	if _, err := p.Run("ip", "link", "set", "net1", "mtu", "1280"); err != nil {
		t.Fatal(err)
	}
	_, err = invoke(t, p, "CHECK", "net1", checkConf)
	cniError(t, err, types.ErrInternal, "MTU")
	// Drift on the node: the OVS port vanished.
	n := p.Node
	for _, port := range ovsPorts(t, n) {
		if _, err := n.Run("ovs-vsctl", "--db="+n.OVS, "del-port", "br-int", port); err != nil {
			t.Fatal(err)
		}
	}
	_, err = invoke(t, p, "CHECK", "net1", checkConf)
	cniError(t, err, types.ErrInternal, "OVS interface", "missing")
}

type rawJSON []byte

func (r rawJSON) MarshalJSON() ([]byte, error) { return r, nil }

func TestFailedAddLeavesNothing(t *testing.T) {
	network := "l2-fail-" + randomID()[:4]
	// Two usable addresses: if a failed ADD leaked one, the last ADD fails.
	conf := layer2Config(network, "10.33.0.0/30", nil)

	t.Run("nonexistent netns", func(t *testing.T) {
		p := newPod(t, node(t, 0), "nonetns")
		p.NetnsPath = "/var/run/netns/does-not-exist-" + randomID()
		_, err := add(t, p, "net1", conf)
		cniError(t, err, types.ErrInvalidEnvironmentVariables, "CNI_NETNS")
	})
	t.Run("interface name taken inside the pod", func(t *testing.T) {
		// Fails after the logical port exists, so rollback must undo it.
		p := newPod(t, node(t, 1), "taken")
		if _, err := p.Run("ip", "link", "add", "net1", "type", "bridge"); err != nil {
			t.Fatal(err)
		}
		_, err := add(t, p, "net1", conf)
		if err == nil {
			t.Fatal("ADD succeeded with net1 already present in the pod")
		}
		assertClean(t, network)
	})
	t.Run("addresses were released", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			mustAdd(t, newPod(t, node(t, i), "after"), "net1", conf)
		}
	})
	assertClean(t, network)
}

func TestInvalidConfigsAreRejectedByField(t *testing.T) {
	p := newPod(t, node(t, 0), "invalid")
	tests := []struct {
		name   string
		config string
		code   uint
		want   []string
	}{
		{"bad subnet", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.300/24"}`, types.ErrInvalidNetworkConfig, []string{"subnets"}},
		{"unknown topology", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer4"}`, types.ErrInvalidNetworkConfig, []string{"topology", "layer2"}},
		{"layer3 host prefix too short", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.128.0.0/16/8"}`, types.ErrInvalidNetworkConfig, []string{"subnets", "longer"}},
		{"localnet on a physical network no node maps", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"localnet","physicalNetworkName":"nowhere"}`, types.ErrTryAgainLater, []string{"nowhere", "ovn-bridge-mappings"}},
		{"enhancement sample with trailing comma", `{"cniVersion": "0.3.1", "type": "ovn-kubernetes", "name": "tenant-overlay", "subnet": "10.10.10.0/24", }`, types.ErrInvalidNetworkConfig, []string{"trailing comma"}},
		{"external connectivity on a physical network the daemon was not given", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24","externalPhysicalNetworkName":"nowhere"}`, types.ErrTryAgainLater, []string{"nowhere", "--external-network"}},
		{"external gateway address off the external subnet", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.0.0.0/16/24","externalGatewayIPs":"192.0.2.10"}`, types.ErrInvalidNetworkConfig, []string{"externalGatewayIPs", "172.30.0.0/24"}},
		{"exclude outside subnets", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24","excludeSubnets":"10.1.0.0/24"}`, types.ErrInvalidNetworkConfig, []string{"excludeSubnets"}},
		{"primary role", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.0.0.0/24","role":"primary"}`, types.ErrInvalidNetworkConfig, []string{"role", "UserDefinedNetwork"}},
		{"ipam plugin", `{"cniVersion":"1.0.0","name":"x","type":"ovn-k8s-cni-overlay","topology":"layer2","ipam":{"type":"whereabouts"}}`, types.ErrInvalidNetworkConfig, []string{"ipam", "subnets"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := add(t, p, "net1", []byte(tt.config))
			cniError(t, err, tt.code, tt.want...)
		})
	}
	if links := hostVeths(t, p.Node); len(links) > 0 {
		t.Errorf("rejected configs left veths: %v", links)
	}
	for _, table := range []string{"Logical_Switch", "Logical_Router"} {
		if rows := nbctl(t, "--bare", "--columns=name", "find", table, `external_ids:"ovn-overlay/network"=x`); rows != "" {
			t.Errorf("rejected configs left %s rows: %s", table, rows)
		}
	}
}

func TestConflictingConfigForSameNetwork(t *testing.T) {
	network := "l2-conflict-" + randomID()[:4]
	p := newPod(t, node(t, 0), "conflict")
	mustAdd(t, p, "net1", layer2Config(network, "10.34.0.0/24", nil))
	// The other node sees the network for the first time with other subnets.
	q := newPod(t, node(t, 1), "conflict")
	_, err := add(t, q, "net1", layer2Config(network, "10.35.0.0/24", nil))
	cniError(t, err, types.ErrInvalidNetworkConfig, network, "different")
}

func TestDaemonRestartKeepsState(t *testing.T) {
	network := "l2-restart-" + randomID()[:4]
	conf := layer2Config(network, "10.36.0.0/29", nil)
	n := node(t, 0)
	p := newPod(t, n, "before")
	first := podAddrs(t, mustAdd(t, p, "net1", conf))

	daemons[n.Name].Kill()
	d, err := n.StartDaemon(daemonBin, daemonArgs...)
	if err != nil {
		t.Fatal(err)
	}
	daemons[n.Name] = d

	// The restarted daemon knows the address is taken...
	q := newPod(t, n, "after")
	second := podAddrs(t, mustAdd(t, q, "net1", conf))
	if first[0] == second[0] {
		t.Fatalf("restarted daemon handed out %s twice", first[0])
	}
	// ...and can still tear down what its predecessor built.
	mustDel(t, p, "net1", conf)
	if err := q.Ping(second[0].Addr(), 1); err != nil {
		t.Logf("self-ping: %v", err)
	}
}

func TestStatusAndVersion(t *testing.T) {
	p := newPod(t, node(t, 0), "status")
	conf := layer2Config("l2-status", "", map[string]any{"cniVersion": "1.1.0"})
	if _, err := invoke(t, p, "STATUS", "", conf); err != nil {
		t.Fatalf("STATUS with a healthy daemon: %v", err)
	}
	out, err := invoke(t, p, "VERSION", "", []byte(`{"cniVersion":"1.1.0"}`))
	if err != nil || !strings.Contains(string(out), "1.1.0") || !strings.Contains(string(out), "0.3.1") {
		t.Fatalf("VERSION printed %q, %v", out, err)
	}
	// With the daemon unreachable, STATUS says the plugin is unavailable.
	_, _, err = p.Node.InvokeCNI(t.Context(), pluginBin, sandbox.Invocation{
		Command: "STATUS", Config: conf, Socket: "/nonexistent/cni.sock",
	})
	cniError(t, err, cniproto.ErrPluginNotAvailable, "daemon")
}

func TestGCRemovesAttachmentsNotListed(t *testing.T) {
	network := "l2-gc-" + randomID()[:4]
	conf := layer2Config(network, "10.37.0.0/24", map[string]any{"cniVersion": "1.1.0"})
	keep, drop := newPod(t, node(t, 0), "keep"), newPod(t, node(t, 0), "drop")
	mustAdd(t, keep, "net1", conf)
	mustAdd(t, drop, "net1", conf)
	// Another node's attachment is not this node's to collect.
	other := newPod(t, node(t, 1), "other")
	mustAdd(t, other, "net1", conf)

	gcConf := layer2Config(network, "10.37.0.0/24", map[string]any{
		"cniVersion":                "1.1.0",
		"cni.dev/valid-attachments": []map[string]string{{"containerID": keep.containerID, "ifname": "net1"}},
	})
	if _, err := invoke(t, keep, "GC", "", gcConf); err != nil {
		t.Fatalf("GC: %v", err)
	}
	ports := strings.Join(nbContainers(t, network), " ")
	if strings.Contains(ports, drop.containerID) {
		t.Errorf("GC left the unlisted attachment: %s", ports)
	}
	if !strings.Contains(ports, keep.containerID) || !strings.Contains(ports, other.containerID) {
		t.Errorf("GC removed a listed or another node's attachment: %s", ports)
	}
	if len(ovsPorts(t, node(t, 0))) != 1 || len(hostVeths(t, node(t, 0))) != 1 {
		t.Errorf("node1 has OVS ports %v and veths %v, want only the kept one", ovsPorts(t, node(t, 0)), hostVeths(t, node(t, 0)))
	}
}

// TestForeignPortAddressesAreNotHandedOut: every address on our switch
// counts, whoever's port holds it. An admin's lsp-add (a port without our
// owner key, so not in the daemon's cache) used to have its addresses
// handed to the next pods.
func TestForeignPortAddressesAreNotHandedOut(t *testing.T) {
	network := "l2-foreign-" + randomID()[:4]
	conf := layer2Config(network, "10.39.0.0/28", nil)
	first := newPod(t, node(t, 0), "foreign0")
	mustAdd(t, first, "net1", conf)
	held := []string{"10.39.0.2", "10.39.0.3", "10.39.0.4", "10.39.0.5"}
	nbctl(t, "lsp-add", "ovn-overlay."+network+".layer2", "admin-"+network, "--",
		"lsp-set-addresses", "admin-"+network, "0a:00:00:39:00:99 "+strings.Join(held, " "))
	t.Cleanup(func() { nbctl(t, "lsp-del", "admin-"+network) })
	for i := range 6 {
		p := newPod(t, node(t, i%2), fmt.Sprintf("foreign%d", i+1))
		for _, a := range podAddrs(t, mustAdd(t, p, "net1", conf)) {
			if slices.Contains(held, a.Addr().String()) {
				t.Errorf("pod %s got %s, which the admin's port holds", p.Name, a.Addr())
			}
		}
	}
}
