package network

import (
	"context"
	"errors"
	"fmt"
	"github.com/ovn-overlay/ovn-overlay/daemon/gateway"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// These tests run the layer2 port committer (group commit guarded by the
// switch's port set) of simulated nodes against the in-memory NB server.
//
// The in-memory server skips a wait whose expected value is empty, so a
// guard built from a snapshot of a switch with no ports always passes
// (ovn/ovntest documents it). Every race below starts on a switch that
// already has a port, seen by every node's cache, so the guard is
// enforced as ovsdb-server would. The server is behind startSetNB's
// proxy, which makes its port-set waits compare sets, not slices, as
// ovsdb-server does (nbproxy_test.go says why that is needed).

// txLog records the committer's "nb port transaction" debug lines: how
// many ports each transaction carried and whether it failed, which is how
// group commit and guard conflicts can be observed from outside.
type txLog struct {
	mu  sync.Mutex
	txs []txRecord
}

type txRecord struct {
	ports int
	err   string
}

func (l *txLog) handler() slog.Handler { return &txHandler{log: l} }

func (l *txLog) summary() (txs, conflicts, maxPorts int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, r := range l.txs {
		txs++
		if strings.Contains(r.err, ovn.ErrConflict.Error()) {
			conflicts++
		}
		if r.err == "" {
			maxPorts = max(maxPorts, r.ports)
		}
	}
	return txs, conflicts, maxPorts
}

type txHandler struct{ log *txLog }

func (h *txHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h *txHandler) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *txHandler) WithGroup(string) slog.Handler            { return h }
func (h *txHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "nb port transaction" {
		return nil
	}
	var rec txRecord
	r.Attrs(func(a slog.Attr) bool {
		switch a.Key {
		case "ports":
			rec.ports = int(a.Value.Int64())
		case "err":
			if err, ok := a.Value.Any().(error); ok && err != nil {
				rec.err = err.Error()
			}
		}
		return true
	})
	h.log.mu.Lock()
	h.log.txs = append(h.log.txs, rec)
	h.log.mu.Unlock()
	return nil
}

// simNodeWith is simNode with options and a logger.
func simNodeWith(t *testing.T, nb, name string, opts Options, log *slog.Logger) *Registry {
	t.Helper()
	c := ovntest.Northbound(t, nb)
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop) })
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return NewRegistry(c, name, log, opts, stop)
}

func l2conf(t *testing.T, name, subnets string) *netconf.NetConf {
	t.Helper()
	c, err := netconf.Parse([]byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":%q}`, name, subnets)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// extConf is a config with external connectivity on testExternal's
// physical network.
func extConf(t *testing.T, name, topology, subnets string) *netconf.NetConf {
	t.Helper()
	c, err := netconf.Parse([]byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":%q,"subnets":%q,"has_external_connectivity":true}`, name, topology, subnets)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testExternal is an operator's --external-network.
func testExternal(t *testing.T) gateway.Config {
	t.Helper()
	var c gateway.Config
	if err := c.Set("dc,subnet=172.30.0.0/24,gateways=172.30.0.10-172.30.0.99,next-hop=172.30.0.1"); err != nil {
		t.Fatal(err)
	}
	return c
}

// podReq is the request of an ADD for container ctr on node.
func podReq(network, node, ctr string) PortRequest {
	return PortRequest{Name: "ovn-overlay." + network + "." + ctr, ExternalIDs: map[string]string{
		externalids.Network: network, externalids.Node: node,
		externalids.ContainerID: ctr, externalids.IfName: "net1",
	}}
}

// committedPorts reads the database's ports with a fresh client, whose
// initial monitor reply holds every committed row: unlike a long-lived
// cache it cannot be behind.
func committedPorts(t *testing.T, endpoint string) map[string]nbdb.LogicalSwitchPort {
	t.Helper()
	c := ovntest.ConnectNB(t, endpoint)
	defer c.Close()
	var rows []nbdb.LogicalSwitchPort
	if err := c.List(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	out := map[string]nbdb.LogicalSwitchPort{}
	for _, r := range rows {
		out[r.Name] = r
	}
	return out
}

// getOnAll makes every node use conf, and waits until each node's cache
// shows the switch with at least minPorts ports, so that the guards the
// nodes build next are enforced by the in-memory server.
func getOnAll(t *testing.T, conf *netconf.NetConf, minPorts int, nodes ...*Registry) []*Network {
	t.Helper()
	var nets []*Network
	for _, r := range nodes {
		n, err := r.Get(context.Background(), conf)
		if err != nil {
			t.Fatalf("%s: %v", r.node, err)
		}
		nets = append(nets, n)
	}
	for _, r := range nodes {
		ovntest.Eventually(t, fmt.Sprintf("%s's cache shows %d port(s) on the switch", r.node, minPorts), func() bool {
			ls, ok := r.nb.Switch(layer2SwitchName(conf.Name))
			return ok && len(ls.Ports) >= minPorts
		})
	}
	return nets
}

// Many ADDs at once on two nodes of one layer2 network: every one gets a
// port and no address is handed out twice, across nodes. Under HoldNB the
// nodes' first transactions are built from the same snapshot, so all but
// one fail their guard and are retried: the guard is what keeps the
// addresses unique.
func TestConcurrentCreatePortOnTwoNodesGivesUniqueAddresses(t *testing.T) {
	const perNode = 25
	endpoint := startSetNB(t)
	var txs txLog
	log := slog.New(txs.handler())
	nodes := []*Registry{
		simNodeWith(t, endpoint, "node-a", Options{}, log),
		simNodeWith(t, endpoint, "node-b", Options{}, log),
	}
	conf := l2conf(t, "l2-race", "10.200.0.0/24")
	na, err := nodes[0].Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	// Make the switch non-empty first (see the top of this file).
	if r := na.CreatePort(context.Background(), podReq(conf.Name, "node-a", "first")); r.Err != nil {
		t.Fatal(r.Err)
	}
	nets := getOnAll(t, conf, 1, nodes...)

	ovntest.HoldNB(t, endpoint, 400*time.Millisecond)
	type outcome struct {
		node string
		req  PortRequest
		res  PortResult
	}
	results := make(chan outcome, 2*perNode)
	var wg sync.WaitGroup
	for i, n := range nets {
		node := nodes[i].node
		for j := 0; j < perNode; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				req := podReq(conf.Name, node, fmt.Sprintf("%s-ctr%02d", node, j))
				results <- outcome{node, req, n.CreatePort(context.Background(), req)}
			}()
		}
	}
	wg.Wait()
	close(results)

	db := committedPorts(t, endpoint)
	byAddr := map[netip.Addr]string{}
	for o := range results {
		if o.res.Err != nil {
			t.Errorf("%s %s: %v", o.node, o.req.Name, o.res.Err)
			continue
		}
		if len(o.res.Addrs) != 1 || o.res.Addrs[0].Bits() != 24 {
			t.Errorf("%s: addresses %v, want one /24", o.req.Name, o.res.Addrs)
			continue
		}
		a := o.res.Addrs[0].Addr()
		if prev, dup := byAddr[a]; dup {
			t.Errorf("%s handed to both %s and %s", a, prev, o.req.Name)
		}
		byAddr[a] = o.req.Name
		// What the ADD configures is what the NB holds.
		row, ok := db[o.req.Name]
		if !ok {
			t.Errorf("%s reported created but not in the NB", o.req.Name)
			continue
		}
		if got := PortAddrs(&row); len(got) != 1 || got[0] != a {
			t.Errorf("%s: NB has %v, ADD got %s", o.req.Name, got, a)
		}
		if mac, err := PortMAC(&row); err != nil || mac.String() != o.res.MAC.String() {
			t.Errorf("%s: NB MAC %v (%v), ADD got %s", o.req.Name, mac, err, o.res.MAC)
		}
		if !slices.Equal(row.Addresses, row.PortSecurity) {
			t.Errorf("%s: port_security %v differs from addresses %v", o.req.Name, row.PortSecurity, row.Addresses)
		}
	}

	// The database as a whole, first port included: one port per ADD,
	// no address twice.
	if len(db) != 2*perNode+1 {
		t.Errorf("%d ports in the NB, want %d", len(db), 2*perNode+1)
	}
	seen := map[netip.Addr]string{}
	for name, row := range db {
		for _, a := range PortAddrs(&row) {
			if prev, dup := seen[a]; dup {
				t.Errorf("NB: %s is on both %s and %s", a, prev, name)
			}
			seen[a] = name
		}
	}

	n, conflicts, maxPorts := txs.summary()
	t.Logf("%d ADDs on 2 nodes: %d NB port transactions, %d guard conflicts, largest committed batch %d ports", 2*perNode, n, conflicts, maxPorts)
	// Held, each node's first transaction was built from the snapshot
	// with only "first": the one committed second must have failed its
	// guard.
	if conflicts == 0 {
		t.Error("no guard conflict although both nodes wrote from the same snapshot: is the port-set guard enforced?")
	}
	// While the first transactions were held, the rest queued: they
	// went out in shared transactions.
	if maxPorts < 2 {
		t.Error("no transaction carried more than one port: group commit did not happen")
	}
}

// A requested (static) address is given once: a second request for it,
// on the same node or on another one racing it, is refused with
// ipam.ErrInUse.
func TestStaticAddressRequestedTwice(t *testing.T) {
	endpoint := startSetNB(t)
	nodes := []*Registry{
		simNodeWith(t, endpoint, "node-a", Options{}, nil),
		simNodeWith(t, endpoint, "node-b", Options{}, nil),
	}
	conf := l2conf(t, "l2-static", "10.200.0.0/24")
	na, err := nodes[0].Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	static := netip.MustParsePrefix("10.200.0.50/32")

	t.Run("same node", func(t *testing.T) {
		req := podReq(conf.Name, "node-a", "s1")
		req.Static = []netip.Prefix{static}
		r := na.CreatePort(ctx, req)
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		// A bare address gets the subnet's prefix length (on-link route).
		if len(r.Addrs) != 1 || r.Addrs[0] != netip.MustParsePrefix("10.200.0.50/24") {
			t.Errorf("addresses %v, want 10.200.0.50/24", r.Addrs)
		}
		again := podReq(conf.Name, "node-a", "s2")
		again.Static = []netip.Prefix{static}
		r2 := na.CreatePort(ctx, again)
		if !errors.Is(r2.Err, ipam.ErrInUse) {
			t.Fatalf("second request for %s: %v, want an error wrapping ipam.ErrInUse", static, r2.Err)
		}
		if !strings.Contains(r2.Err.Error(), conf.Name) || !strings.Contains(r2.Err.Error(), "10.200.0.50") {
			t.Errorf("error %q does not name the network and the address", r2.Err)
		}
	})

	t.Run("outside the subnets", func(t *testing.T) {
		req := podReq(conf.Name, "node-a", "outside")
		req.Static = []netip.Prefix{netip.MustParsePrefix("10.99.0.1/32")}
		r := na.CreatePort(ctx, req)
		if r.Err == nil || !strings.Contains(r.Err.Error(), "outside") || !strings.Contains(r.Err.Error(), "10.200.0.0/24") {
			t.Errorf("address outside the subnets: %v, want an error naming the allowed range", r.Err)
		}
	})

	t.Run("two nodes at once", func(t *testing.T) {
		// Both caches show the switch with s1, so the guard is enforced;
		// held, both transactions are built before either commits.
		nets := getOnAll(t, conf, 1, nodes...)
		contested := netip.MustParsePrefix("10.200.0.60/32")
		ovntest.HoldNB(t, endpoint, 400*time.Millisecond)
		errs := make([]error, len(nets))
		var wg sync.WaitGroup
		for i, n := range nets {
			wg.Add(1)
			go func() {
				defer wg.Done()
				// Distinct port names: the same name on both nodes would
				// make the loser's index take the winner's address for
				// its own.
				req := podReq(conf.Name, nodes[i].node, "race-"+nodes[i].node)
				req.Static = []netip.Prefix{contested}
				errs[i] = n.CreatePort(ctx, req).Err
			}()
		}
		wg.Wait()
		won, inUse := 0, 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case errors.Is(err, ipam.ErrInUse):
				inUse++
			default:
				t.Errorf("%s: %v", nodes[i].node, err)
			}
		}
		if won != 1 || inUse != 1 {
			t.Fatalf("%d nodes got %s and %d were refused (%v); want exactly one of each", won, contested, inUse, errs)
		}
		holders := 0
		for _, row := range committedPorts(t, endpoint) {
			if slices.Contains(PortAddrs(&row), contested.Addr()) {
				holders++
			}
		}
		if holders != 1 {
			t.Errorf("%d ports hold %s in the NB, want 1", holders, contested.Addr())
		}
	})
}

// A /29 has 6 addresses for pods (network and broadcast excluded). The
// 7th and 8th ADD fail with an error that says what to change; deleting a
// port gives its address back.
func TestExhaustionAndDeletePortFreesTheAddress(t *testing.T) {
	endpoint := startSetNB(t)
	r := simNodeWith(t, endpoint, "node-a", Options{}, nil)
	conf := l2conf(t, "l2-tiny", "10.200.1.0/29")
	n, err := r.Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	// Concurrently: they share batches, so a batch where some requests
	// fail to allocate must still commit the others.
	const asked = 8
	res := make([]PortResult, asked)
	var wg sync.WaitGroup
	for i := range asked {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i] = n.CreatePort(ctx, podReq(conf.Name, "node-a", fmt.Sprintf("c%d", i)))
		}()
	}
	wg.Wait()
	var ok []PortResult
	for i, pr := range res {
		if pr.Err == nil {
			ok = append(ok, pr)
			continue
		}
		if !errors.Is(pr.Err, ipam.ErrExhausted) || !strings.Contains(pr.Err.Error(), `"subnets"`) {
			t.Errorf("request %d: %v; want ipam.ErrExhausted with advice naming \"subnets\"", i, pr.Err)
		}
	}
	if len(ok) != 6 {
		t.Fatalf("%d ports created in a /29, want 6", len(ok))
	}
	if got := len(committedPorts(t, endpoint)); got != 6 {
		t.Fatalf("%d ports in the NB, want 6", got)
	}

	// Full: one more fails.
	if pr := n.CreatePort(ctx, podReq(conf.Name, "node-a", "extra")); !errors.Is(pr.Err, ipam.ErrExhausted) {
		t.Fatalf("ADD on a full network: %v, want ipam.ErrExhausted", pr.Err)
	}

	// Any port will do: startSetNB keeps the guards of the same node
	// working after a deletion (see nbproxy_test.go).
	victim := ok[len(ok)/2]
	freed := victim.Addrs[0].Addr()
	if err := r.DeletePort(ctx, victim.LSP); err != nil {
		t.Fatal(err)
	}
	// The index frees the address at once, not only when the cache
	// event arrives.
	if owner, held := n.pool.Owner(freed); held {
		t.Errorf("after DeletePort %s is still held by %s in the index", freed, owner)
	}
	// Deleting again is not an error (DEL is idempotent).
	ovntest.Eventually(t, "the deleted port gone from the cache", func() bool {
		_, ok := r.nb.PortByUUID(victim.LSP.UUID)
		return !ok
	})
	if err := r.DeletePort(ctx, victim.LSP); err != nil {
		t.Errorf("second DeletePort: %v", err)
	}
	// The freed address is the only free one: the next ADD gets it.
	var again PortResult
	ovntest.Eventually(t, "an ADD to get the freed address", func() bool {
		again = n.CreatePort(ctx, podReq(conf.Name, "node-a", "after-delete"))
		return again.Err == nil
	})
	if again.Addrs[0].Addr() != freed {
		t.Errorf("after deleting the holder of %s the next ADD got %s", freed, again.Addrs[0])
	}
	db := committedPorts(t, endpoint)
	if _, still := db[victim.LSP.Name]; still || len(db) != 6 {
		t.Errorf("NB after delete and re-add: %d ports, deleted port present: %v", len(db), still)
	}
}

// Warm ports: after the first ADD asks for the refill, the node holds
// WarmPorts ready ports; an ADD that takes one relabels it with the pod's
// identity, the warm mark goes, the addresses stay, and it is never
// offered again.
func TestWarmPortIsFilledAndAdopted(t *testing.T) {
	endpoint := startSetNB(t)
	const node = "node-a"
	r := simNodeWith(t, endpoint, node, Options{WarmPorts: 2}, nil)
	conf := l2conf(t, "l2-warm", "10.200.0.0/24")
	ctx := context.Background()
	n, err := r.Get(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	// No refill before the first ADD (it could take that ADD's address).
	if lsp := n.TakeWarm(true); lsp != nil {
		t.Fatalf("a warm port (%s) before any ADD", lsp.Name)
	}
	if first := n.CreatePort(ctx, podReq(conf.Name, node, "first")); first.Err != nil {
		t.Fatal(first.Err)
	}
	n.RefillWarm()
	ovntest.Eventually(t, "two warm ports", func() bool { return n.warm.count() == 2 })

	// An ADD with static addresses or a MAC does not take one.
	if lsp := n.TakeWarm(false); lsp != nil {
		t.Fatalf("an ineligible ADD got warm port %s", lsp.Name)
	}
	warm := n.TakeWarm(true)
	if warm == nil {
		t.Fatal("no warm port although the pool holds two")
	}
	if !IsWarm(warm) || warm.ExternalIDs[externalids.Node] != node || !strings.HasPrefix(warm.Name, warmPortPrefix(conf.Name)+node+".") {
		t.Fatalf("taken port %s has external_ids %v, want this node's warm port", warm.Name, warm.ExternalIDs)
	}
	warmAddrs := slices.Clone(warm.Addresses)
	if len(PortAddrs(warm)) != 1 {
		t.Fatalf("warm port addresses %v, want one IPv4", warm.Addresses)
	}

	req := podReq(conf.Name, node, "pod1")
	req.Namespace = "ns1"
	req.ExternalIDs[externalids.PodNamespace] = "ns1"
	res := n.AdoptPort(ctx, warm, req)
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if res.LSP.Name != warm.Name || len(res.Addrs) != 1 || res.Addrs[0].Addr() != PortAddrs(warm)[0] {
		t.Errorf("AdoptPort result %+v, want the warm port's name and address", res)
	}

	db := committedPorts(t, endpoint)
	row, ok := db[warm.Name]
	if !ok {
		t.Fatalf("adopted port %s not in the NB", warm.Name)
	}
	if IsWarm(&row) {
		t.Errorf("adopted port still marked warm: %v", row.ExternalIDs)
	}
	for k, v := range req.ExternalIDs {
		if row.ExternalIDs[k] != v {
			t.Errorf("adopted port: external_ids[%s] = %q, want %q", k, row.ExternalIDs[k], v)
		}
	}
	if row.ExternalIDs[externalids.Owner] != externalids.OwnerValue || row.ExternalIDs[externalids.Addresses] == "" {
		t.Errorf("adopted port lost its owner or addresses key: %v", row.ExternalIDs)
	}
	if !slices.Equal(row.Addresses, warmAddrs) {
		t.Errorf("adopted port addresses %v, were %v", row.Addresses, warmAddrs)
	}
	// The relabel puts the pod in its namespace's address set in the
	// same transaction.
	raw := ovntest.ConnectNB(t, endpoint)
	as := &nbdb.AddressSet{Name: addressSetName(conf.Name, "ns1", false)}
	var sets []nbdb.AddressSet
	if err := raw.List(ctx, &sets); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range sets {
		if s.Name == as.Name {
			found = slices.Contains(s.Addresses, PortAddrs(warm)[0].String())
		}
	}
	if !found {
		t.Errorf("address set %s does not list %s: %v", as.Name, PortAddrs(warm)[0], sets)
	}

	// The adopted port is never handed out again, even after the cache
	// events of its relabel and a refill.
	n.RefillWarm()
	ovntest.Eventually(t, "the pool topped up to two", func() bool { return n.warm.count() == 2 })
	for range 2 {
		lsp := n.TakeWarm(true)
		if lsp == nil {
			t.Fatal("pool shrank while being read")
		}
		if lsp.Name == warm.Name {
			t.Fatalf("adopted port %s offered again as warm", warm.Name)
		}
	}
	if lsp := n.TakeWarm(true); lsp != nil {
		t.Errorf("a third warm port %s from a pool of two", lsp.Name)
	}
}

// A pod asking for an address one of this node's warm ports holds gets a
// clear error, then ReclaimWarm frees the address for it.
func TestReclaimWarmFreesARequestedAddress(t *testing.T) {
	endpoint := startSetNB(t)
	const node = "node-a"
	r := simNodeWith(t, endpoint, node, Options{WarmPorts: 2}, nil)
	conf := l2conf(t, "l2-reclaim", "10.200.0.0/24")
	ctx := context.Background()
	n, err := r.Get(ctx, conf)
	if err != nil {
		t.Fatal(err)
	}
	if first := n.CreatePort(ctx, podReq(conf.Name, node, "first")); first.Err != nil {
		t.Fatal(first.Err)
	}
	n.RefillWarm()
	ovntest.Eventually(t, "two warm ports", func() bool { return n.warm.count() == 2 })
	var warmAddr netip.Addr
	n.warm.mu.Lock()
	for _, lsp := range n.warm.free {
		warmAddr = PortAddrs(lsp)[0]
		break
	}
	n.warm.mu.Unlock()
	static := []netip.Prefix{netip.PrefixFrom(warmAddr, 32)}

	req := podReq(conf.Name, node, "wants-warm-addr")
	req.Static = static
	if refused := n.CreatePort(ctx, req); !errors.Is(refused.Err, ipam.ErrInUse) || !strings.Contains(refused.Err.Error(), "warm") {
		t.Fatalf("static request for a warm port's address: %v; want ErrInUse explaining the warm port", refused.Err)
	}
	if err := r.ReclaimWarm(ctx, n, static); err != nil {
		t.Fatal(err)
	}
	var res PortResult
	ovntest.Eventually(t, "the reclaimed address to be granted", func() bool {
		res = n.CreatePort(ctx, req)
		return res.Err == nil
	})
	if res.Addrs[0].Addr() != warmAddr {
		t.Errorf("got %v, want %s", res.Addrs, warmAddr)
	}
	holders := 0
	for _, row := range committedPorts(t, endpoint) {
		if slices.Contains(PortAddrs(&row), warmAddr) {
			holders++
			if IsWarm(&row) {
				t.Errorf("warm port %s still holds %s", row.Name, warmAddr)
			}
		}
	}
	if holders != 1 {
		t.Errorf("%d ports hold %s, want 1", holders, warmAddr)
	}
}
