package network

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// These tests run the layer3 claim protocol of several simulated nodes
// (each its own NB connection and cache, as separate daemons would have)
// against an OVSDB server holding the Northbound schema.

// simNB is a Northbound database for one test: libovsdb's in-memory
// server, so these tests need neither root nor OVN processes. The claim
// protocol's guard is on a column that is never empty (external_ids holds
// the owner key), where the in-memory server's wait behaves like
// ovsdb-server's (ovn/ovntest lists where it does not).
func simNB(t *testing.T) string { return ovntest.StartNB(t) }

// simNode is one node's view of nb: its own connection, cache and network
// state, as a separate daemon would have.
func simNode(t *testing.T, nb, name string) *Registry {
	t.Helper()
	c := ovntest.Northbound(t, nb)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	return NewRegistry(c, name, slog.New(slog.DiscardHandler), Options{}, stop)
}

func l3conf(t *testing.T, name, subnets string) *netconf.NetConf {
	t.Helper()
	c, err := netconf.Parse([]byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":%q}`, name, subnets)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// claimAll makes every node take the network at the same moment.
func claimAll(nodes []*Registry, conf *netconf.NetConf) ([]*Network, []error, []time.Duration) {
	nets := make([]*Network, len(nodes))
	errs := make([]error, len(nodes))
	took := make([]time.Duration, len(nodes))
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i, ns := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			begin := time.Now()
			nets[i], errs[i] = ns.Get(context.Background(), conf)
			took[i] = time.Since(begin)
		}()
	}
	close(start)
	wg.Wait()
	return nets, errs, took
}

func TestConcurrentNodeSubnetClaimsAreDistinct(t *testing.T) {
	const nodeCount, rounds = 5, 6
	var all []time.Duration
	nb := simNB(t)
	for round := 0; round < rounds; round++ {
		var nodes []*Registry
		for i := 0; i < nodeCount; i++ {
			nodes = append(nodes, simNode(t, nb, fmt.Sprintf("claim-node%d", i)))
		}
		conf := l3conf(t, fmt.Sprintf("claims-%d", round), "10.180.0.0/16/24,fd00:180::/48/64")
		nets, errs, took := claimAll(nodes, conf)
		all = append(all, took...)
		seen := map[string]int{}
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d node %d: %v", round, i, err)
			}
			for _, s := range nets[i].nodeSubnets {
				if j, dup := seen[s.String()]; dup {
					t.Fatalf("round %d: nodes %d and %d both hold %s", round, j, i, s)
				}
				seen[s.String()] = i
			}
			if len(nets[i].nodeSubnets) != 2 {
				t.Fatalf("node %d holds %v, want one IPv4 and one IPv6 subnet", i, nets[i].nodeSubnets)
			}
		}
	}
	sort.Slice(all, func(i, j int) bool { return all[i] < all[j] })
	t.Logf("%d nodes claiming at once, %d rounds: claim latency p50 %s, p90 %s, max %s",
		nodeCount, rounds, all[len(all)/2].Round(time.Microsecond), all[len(all)*9/10].Round(time.Microsecond), all[len(all)-1].Round(time.Microsecond))
}

func TestNodeSubnetExhaustionAndRelease(t *testing.T) {
	// /24 split into /26: room for four nodes.
	conf := l3conf(t, "small-l3", "10.170.0.0/24/26")
	nb := simNB(t)
	var nodes []*Registry
	for i := 0; i < 5; i++ {
		nodes = append(nodes, simNode(t, nb, fmt.Sprintf("small-node%d", i)))
	}
	_, errs, _ := claimAll(nodes, conf)
	var failed []int
	for i, err := range errs {
		if err != nil {
			failed = append(failed, i)
			if !errors.Is(err, ipam.ErrNoNodeSubnet) || !strings.Contains(err.Error(), "release-node") {
				t.Errorf("node %d: %v; want a no-free-subnet error that says how to fix it", i, err)
			}
		}
	}
	if len(failed) != 1 {
		t.Fatalf("%d nodes failed to claim, want exactly 1 (4 subnets for 5 nodes)", len(failed))
	}
	// An operator releases a departed node; the waiting node gets its subnet.
	departed := (failed[0] + 1) % len(nodes)
	released := nodes[departed].Lookup("small-l3").nodeSubnets[0]
	if _, err := nodes[departed].nb.ReleaseNode(context.Background(), nodes[departed].node); err != nil {
		t.Fatal(err)
	}
	late := simNode(t, nb, nodes[failed[0]].node)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := late.Get(context.Background(), conf)
		if err == nil {
			if n.nodeSubnets[0] != released {
				t.Fatalf("late node got %s, want the released %s", n.nodeSubnets[0], released)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("claim after release: %v", err)
		}
		time.Sleep(20 * time.Millisecond) // the release reaches this fresh cache asynchronously
	}
}

func TestNodeSubnetSurvivesRestart(t *testing.T) {
	conf := l3conf(t, "restart-l3", "10.190.0.0/16/24")
	nb := simNB(t)
	first, err := simNode(t, nb, "restart-node").Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := simNode(t, nb, "other-node").Get(context.Background(), conf); err != nil {
		t.Fatal(err)
	}
	// A new daemon for the same node (fresh connection and cache).
	again, err := simNode(t, nb, "restart-node").Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(again.nodeSubnets) != fmt.Sprint(first.nodeSubnets) {
		t.Fatalf("after restart the node holds %v, before %v", again.nodeSubnets, first.nodeSubnets)
	}
}
