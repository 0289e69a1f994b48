package network

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/gateway"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// idleNode is a simulated node whose "any attachment on the network?"
// answer the test sets.
type idleNode struct {
	*Registry
	inUse atomic.Bool
}

func newIdleNode(t *testing.T, endpoint, name string) *idleNode {
	t.Helper()
	n := &idleNode{}
	n.inUse.Store(true)
	n.Registry = simNodeWith(t, endpoint, name, Options{
		WarmPorts: 2, Idle: 300 * time.Millisecond,
		InUse:    func(string) bool { return n.inUse.Load() },
		External: testExternal(t),
	}, nil)
	n.StartJanitor()
	runGatewayAgent(t, n.Registry)
	return n
}

// runGatewayAgent makes the node host gateways, as nodes mapping the
// physical network do: a network with external connectivity waits for a
// gateway chassis on its first setup.
func runGatewayAgent(t *testing.T, r *Registry) {
	t.Helper()
	agent := &gateway.Agent{NB: r.nb, Chassis: r.node, Node: r.node, Serves: func(string) bool { return true }, Log: slog.New(slog.DiscardHandler)}
	stop, done := make(chan struct{}), make(chan struct{})
	go func() { defer close(done); agent.Run(stop) }()
	t.Cleanup(func() { close(stop); <-done })
}

// rowsOf counts a network's committed rows with a fresh client.
func rowsOf(t *testing.T, endpoint, network, node string) (switches, routers, warm, claims int) {
	t.Helper()
	c := ovntest.ConnectNB(t, endpoint)
	var ls []nbdb.LogicalSwitch
	var lr []nbdb.LogicalRouter
	var lsp []nbdb.LogicalSwitchPort
	_ = c.List(context.Background(), &ls)
	_ = c.List(context.Background(), &lr)
	_ = c.List(context.Background(), &lsp)
	for _, s := range ls {
		if s.ExternalIDs[externalids.Network] == network {
			switches++
		}
	}
	for _, r := range lr {
		if r.ExternalIDs[externalids.Network] == network {
			routers++
			if _, ok := r.ExternalIDs[externalids.NodeSubnetsPrefix+node]; ok {
				claims++
			}
		}
	}
	for _, p := range lsp {
		if p.ExternalIDs[externalids.Network] == network && p.ExternalIDs[externalids.Node] == node && IsWarm(&p) {
			warm++
		}
	}
	return
}

// TestIdleNetworksAreRetired: a node gives back its share of a network it
// has not used for Idle; the last node out removes the network; a later
// ADD sets it up again. (Before, every network ever used kept its switch
// and each node's warm ports for ever.)
func TestIdleNetworksAreRetired(t *testing.T) {
	for _, tc := range []struct {
		name string
		conf func(t *testing.T) *netconf.NetConf
	}{
		{"layer2", func(t *testing.T) *netconf.NetConf { return l2conf(t, "l2-idle", "10.203.0.0/16") }},
		{"layer3", func(t *testing.T) *netconf.NetConf { return l3conf(t, "l3-idle", "10.204.0.0/16/24") }},
		{"layer2 with external connectivity", func(t *testing.T) *netconf.NetConf { return extConf(t, "l2x-idle", "layer2", "10.205.0.0/16") }},
		{"layer3 with external connectivity", func(t *testing.T) *netconf.NetConf { return extConf(t, "l3x-idle", "layer3", "10.206.0.0/16/24") }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := startSetNB(t)
			a, b := newIdleNode(t, endpoint, "node-a"), newIdleNode(t, endpoint, "node-b")
			conf := tc.conf(t)
			ctx := context.Background()
			for _, n := range []*idleNode{a, b} {
				nw, err := n.Get(ctx, conf)
				if err != nil {
					t.Fatal(err)
				}
				if r := nw.CreatePort(ctx, podReq(conf.Name, n.node, "pod-"+n.node)); r.Err != nil {
					t.Fatal(r.Err)
				}
				nw.RefillWarm()
			}
			ovntest.Eventually(t, "warm ports on both nodes", func() bool {
				_, _, wa, _ := rowsOf(t, endpoint, conf.Name, "node-a")
				_, _, wb, _ := rowsOf(t, endpoint, conf.Name, "node-b")
				return wa == 2 && wb == 2
			})

			// Node b's pod goes; b stops using the network.
			pod, _ := b.nb.Port(podReq(conf.Name, "node-b", "pod-node-b").Name)
			if err := b.DeletePort(ctx, pod); err != nil {
				t.Fatal(err)
			}
			b.inUse.Store(false)
			ovntest.Eventually(t, "node b to give back its share", func() bool {
				_, _, wb, cb := rowsOf(t, endpoint, conf.Name, "node-b")
				return wb == 0 && cb == 0 && b.Lookup(conf.Name) == nil
			})
			if sw, rt, wa, _ := rowsOf(t, endpoint, conf.Name, "node-a"); sw == 0 && rt == 0 || wa != 2 {
				t.Fatalf("node a's share went too: switches %d routers %d warm %d", sw, rt, wa)
			}

			// Node a leaves too: the network's rows go.
			pod, _ = a.nb.Port(podReq(conf.Name, "node-a", "pod-node-a").Name)
			if err := a.DeletePort(ctx, pod); err != nil {
				t.Fatal(err)
			}
			a.inUse.Store(false)
			ovntest.Eventually(t, "the network to be removed", func() bool {
				sw, rt, _, _ := rowsOf(t, endpoint, conf.Name, "node-a")
				return sw == 0 && rt == 0
			})
			if left := networkPorts(t, endpoint, conf.Name); len(left) > 0 {
				t.Fatalf("the retired network left logical switch ports: %v", left)
			}

			// A new pod brings it back.
			a.inUse.Store(true)
			nw, err := a.Get(ctx, conf)
			if err != nil {
				t.Fatal(err)
			}
			if r := nw.CreatePort(ctx, podReq(conf.Name, "node-a", "again")); r.Err != nil {
				t.Fatalf("ADD after the network was retired: %v", r.Err)
			}
		})
	}
}

// networkPorts names the committed logical switch ports of a network (a
// gateway's switch end is one, on the external switch).
func networkPorts(t *testing.T, endpoint, network string) []string {
	t.Helper()
	c := ovntest.ConnectNB(t, endpoint)
	var lsps []nbdb.LogicalSwitchPort
	_ = c.List(context.Background(), &lsps)
	var out []string
	for _, p := range lsps {
		if p.ExternalIDs[externalids.Network] == network {
			out = append(out, p.Name)
		}
	}
	return out
}
