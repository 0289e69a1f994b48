package main

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// The external network the daemons are told about (--external-network):
// the untagged datacenter segment, where the external host is the router
// (the next hop) at 172.30.0.1 and gateways take addresses from .10-.99.
const (
	externalPhysnet = "datacenter"
	externalSubnet  = "172.30.0.0/24"
	externalRouter  = "172.30.0.1"
	externalNetwork = externalPhysnet + ",subnet=" + externalSubnet + ",gateways=172.30.0.10-172.30.0.99,next-hop=" + externalRouter
)

// tenantNetworks are two overlays with the same subnet, both with external
// connectivity: tenant-red in the secondary-networks enhancement's sample
// form (legacy "type": "ovn-kubernetes", "subnet", always layer2), and
// tenant-blue in this plugin's own form.
var tenantNetworks = []struct {
	name, config string
}{
	{"tenant-red", `{
            "cniVersion": "0.3.1",
            "type": "ovn-kubernetes",
            "name": "tenant-red",
            "subnet": "10.10.20.0/24",
            "has_external_connectivity": true
        }`},
	{"tenant-blue", `{"cniVersion": "1.0.0", "name": "tenant-blue", "type": "ovn-k8s-cni-overlay", "topology": "layer2",
  "subnets": "10.10.20.0/24", "has_external_connectivity": true, "netAttachDefName": "tenants/tenant-blue"%s}`},
}

// blueStatic is the address blue's pod on the second node asks for
// (runtimeConfig.ips, as Multus passes a pod's requested IP): far from
// where the networks' own allocations start, so tenant-red does not use it
// and a red pod that reached it would have crossed tenants.
const blueStatic = "10.10.20.200/24"

// tenantPod is a pod on one of the tenant networks (interface net1).
type tenantPod struct {
	attached
	network, config string
	router          netip.Addr // the network's router: the pod's next hop to the external prefixes
}

func (p tenantPod) addr() netip.Addr { return p.addrs["net1"] }

// demoExternal attaches a pod of each tenant on the first two nodes, and
// shows that every pod reaches the external host through its network's
// gateway (which SNATs to the gateway's own address, one per tenant), and
// that the tenants, with the same subnet, do not reach each other.
func demoExternal(ctx context.Context, cluster *sandbox.Cluster, plugin string) ([]tenantPod, error) {
	ext := cluster.External()
	router := netip.MustParsePrefix(externalRouter + "/24")
	for _, net := range localnetNetworks {
		if net.external.Overlaps(router) {
			return nil, fmt.Errorf("external host: %s overlaps %s of %s", router, net.external, net.name)
		}
	}
	step("external connectivity: the daemons were started with --external-network=%s", externalNetwork)
	if err := ext.AddAddress(0, router); err != nil {
		return nil, err
	}
	step("external host: %s untagged, the external network's router (next hop); it has no route to any tenant subnet", router)

	step("attaching a pod of tenant-red (the enhancement's sample NAD form) and of tenant-blue on node1 and node2: both layer2 10.10.20.0/24 with has_external_connectivity")
	var pods []tenantPod
	for _, n := range cluster.Nodes[:2] {
		for _, net := range tenantNetworks {
			name := strings.TrimPrefix(net.name, "tenant-") + "-" + n.Name
			pod, err := n.NewPod(name)
			if err != nil {
				return pods, err
			}
			config := net.config
			if strings.Contains(config, "%s") {
				extra := ""
				if n != cluster.Nodes[0] {
					extra = fmt.Sprintf(`, "runtimeConfig": {"ips": [%q]}`, blueStatic)
				}
				config = fmt.Sprintf(config, extra)
			}
			p := tenantPod{
				attached: attached{pod: pod, node: n, id: fmt.Sprintf("demo%s%024d", strings.ReplaceAll(name, "-", ""), time.Now().UnixNano()), addrs: map[string]netip.Addr{}},
				network:  net.name, config: config,
			}
			out, took, err := n.InvokeCNI(ctx, plugin, sandbox.Invocation{
				Command: "ADD", ContainerID: p.id, Netns: pod.NetnsPath, IfName: "net1",
				Args:   "IgnoreUnknown=1;K8S_POD_NAMESPACE=tenants;K8S_POD_NAME=" + name,
				Config: []byte(config),
			})
			if err != nil {
				return pods, fmt.Errorf("CNI ADD of %s on %s: %w", net.name, n.Name, err)
			}
			if p.addrs["net1"], err = firstAddr(out); err != nil {
				return pods, err
			}
			pods = append(pods, p)
			route, err := pod.Run("ip", "-4", "route", "show", externalSubnet)
			if err != nil {
				return pods, err
			}
			route = strings.TrimSpace(route)
			f := strings.Fields(route)
			if len(f) < 3 || f[1] != "via" {
				return pods, fmt.Errorf("%s: want a route to %s via its network's router, have %q", name, externalSubnet, route)
			}
			pods[len(pods)-1].router, _ = netip.ParseAddr(f[2])
			step("%s: CNI ADD of %s/net1 (%s) took %s -> %s, route %s", n.Name, name, net.name, took.Round(100*time.Microsecond), p.addr(), route)
		}
	}

	gateways := map[string]netip.Addr{}
	for _, net := range tenantNetworks {
		gw, err := gatewayAddr(cluster, net.name)
		if err != nil {
			return pods, err
		}
		gateways[net.name] = gw
	}
	if gateways["tenant-red"] == gateways["tenant-blue"] {
		return pods, fmt.Errorf("both tenants got gateway address %s", gateways["tenant-red"])
	}

	for _, p := range pods {
		if err := pingOnce(p.pod, "net1", netip.MustParseAddr(externalRouter)); err != nil {
			return pods, err
		}
		out, err := p.pod.Run("ping", "-c", "3", "-i", "0.2", "-I", "net1", externalRouter)
		if err != nil {
			return pods, fmt.Errorf("ping %s -> the external host: %w", p.pod.Name, err)
		}
		step("%s -> the external host (%s) via %s's gateway: %s", p.pod.Name, externalRouter, p.network, lastLine(out))
	}
	for _, net := range tenantNetworks {
		chassis, err := gatewayChassis(cluster, net.name)
		if err != nil {
			return pods, err
		}
		step("%s: gateway port %s has %s on %s; %s", net.name, gatewayPort(net.name), gateways[net.name], externalPhysnet, chassis)
	}

	// The external host tells the tenants apart only by their gateways'
	// addresses: it sees each pod's connection come from its network's
	// gateway, never from a 10.10.20.x address it could not answer.
	seen, err := sourcesSeenByExternal(ext, pods)
	if err != nil {
		return pods, err
	}
	for i, p := range pods {
		if seen[i] != gateways[p.network] {
			return pods, fmt.Errorf("external host saw %s from %s, want %s's gateway address %s", seen[i], p.pod.Name, p.network, gateways[p.network])
		}
		step("%s (%s, %s) -> the external host over TCP: it saw the connection come from %s, %s's gateway address", p.pod.Name, p.addr(), p.network, seen[i], p.network)
	}

	// Isolation: within a tenant pods reach each other across nodes; an
	// address only the other tenant uses gets no answer.
	uses := map[string]map[netip.Addr]bool{}
	for _, p := range pods {
		if uses[p.network] == nil {
			uses[p.network] = map[netip.Addr]bool{}
		}
		uses[p.network][p.addr()], uses[p.network][p.router] = true, true
	}
	for _, src := range pods {
		if src.node != cluster.Nodes[0] {
			continue
		}
		for _, dst := range pods {
			switch {
			case dst.pod == src.pod:
				continue
			case dst.addr() == src.addr():
				if src.network == tenantNetworks[0].name && dst.node == src.node {
					step("%s and %s both hold %s on %s: the same address on two tenants, told apart by their logical switches", src.pod.Name, dst.pod.Name, src.addr(), src.node.Name)
				}
				continue
			case dst.network == src.network:
				if err := pingOnce(src.pod, "net1", dst.addr()); err != nil {
					return pods, err
				}
				out, err := src.pod.Run("ping", "-c", "3", "-i", "0.2", "-I", "net1", dst.addr().String())
				if err != nil {
					return pods, fmt.Errorf("ping %s -> %s on %s: %w", src.pod.Name, dst.pod.Name, src.network, err)
				}
				step("%s -> %s on %s (%s -> %s): %s", src.pod.Name, dst.pod.Name, src.network, src.addr(), dst.addr(), lastLine(out))
			case uses[src.network][dst.addr()]:
				step("%s -> %s (%s): skipped, %s also uses %s", src.pod.Name, dst.pod.Name, dst.addr(), src.network, dst.addr())
			default:
				if _, err := src.pod.Run("ping", "-c", "3", "-i", "0.2", "-W", "1", "-I", "net1", dst.addr().String()); err == nil {
					return pods, fmt.Errorf("isolation broken: %s (%s) reached %s, which only %s's %s holds", src.pod.Name, src.network, dst.addr(), dst.network, dst.pod.Name)
				}
				step("isolated: %s (%s) -> %s (%s's address on %s, unused on %s): no answer, as it must be", src.pod.Name, src.network, dst.addr(), dst.pod.Name, dst.network, src.network)
			}
		}
	}
	return pods, nil
}

// gatewayPort is the name of network's gateway router port.
func gatewayPort(network string) string { return "ovn-overlay." + network + ".gateway" }

// gatewayAddr is network's gateway address on the external network, from
// the NB.
func gatewayAddr(cluster *sandbox.Cluster, network string) (netip.Addr, error) {
	out, err := cluster.Nodes[0].Run("ovn-nbctl", "--db="+cluster.Central.NB, "--bare", "--columns=networks", "find", "Logical_Router_Port", "name="+gatewayPort(network))
	if err != nil {
		return netip.Addr{}, err
	}
	p, err := netip.ParsePrefix(strings.Trim(out, " \n\""))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("gateway port of %s: networks %q: %w", network, out, err)
	}
	return p.Addr(), nil
}

// gatewayChassis describes network's gateway chassis: the nodes that
// joined it (with their priorities) and the one that hosts it.
func gatewayChassis(cluster *sandbox.Cluster, network string) (string, error) {
	port := gatewayPort(network)
	out, err := cluster.Nodes[0].Run("ovn-nbctl", "--db="+cluster.Central.NB, "lrp-get-gateway-chassis", port)
	if err != nil {
		return "", err
	}
	var chassis []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if f := strings.Fields(line); len(f) == 2 {
			chassis = append(chassis, fmt.Sprintf("%s (priority %s)", strings.TrimPrefix(f[0], port+"-"), f[1]))
		}
	}
	active := "?"
	if uuid, err := cluster.Nodes[0].Run("ovn-sbctl", "--db="+cluster.Central.SB, "--bare", "--columns=chassis", "find", "Port_Binding", "logical_port=cr-"+port); err == nil && strings.TrimSpace(uuid) != "" {
		if name, err := cluster.Nodes[0].Run("ovn-sbctl", "--db="+cluster.Central.SB, "--bare", "--columns=name", "list", "Chassis", strings.TrimSpace(uuid)); err == nil {
			active = strings.TrimSpace(name)
		}
	}
	return fmt.Sprintf("gateway chassis %s; active on %s", strings.Join(chassis, ", "), active), nil
}

// sourcesSeenByExternal opens a TCP connection from each pod to the
// external host's router address and returns the source address the host
// saw for each.
func sourcesSeenByExternal(ext *sandbox.ExternalHost, pods []tenantPod) ([]netip.Addr, error) {
	var out []netip.Addr
	for _, p := range pods {
		seen, err := ext.SourceSeen(p.pod.NetnsPath, netip.MustParseAddr(externalRouter))
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.pod.Name, err)
		}
		out = append(out, seen)
	}
	return out, nil
}
