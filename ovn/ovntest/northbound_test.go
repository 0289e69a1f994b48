package ovntest_test

// Tests of the ovn package's NB writers against the in-memory server.
// They live here rather than in ovn/ because ovn's test binary has a
// TestMain that starts a real OVN sandbox (root, ovsdb-server), which
// would run before any test in that directory.

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// connect is one "node": its own connection and cache.
func connect(t *testing.T, endpoint string) *ovn.Northbound {
	t.Helper()
	return ovntest.Northbound(t, endpoint)
}

// committed returns the rows of T's table in the database: a client
// connected now gets them all in its initial monitor reply, so unlike a
// long-lived cache it cannot be behind.
func committed[T any](t *testing.T, endpoint string) []T {
	t.Helper()
	c := ovntest.ConnectNB(t, endpoint)
	defer c.Close()
	var rows []T
	if err := c.List(context.Background(), &rows); err != nil {
		t.Fatal(err)
	}
	return rows
}

func named[T any](rows []T, name func(*T) string, want string) []T {
	var out []T
	for i := range rows {
		if name(&rows[i]) == want {
			out = append(out, rows[i])
		}
	}
	return out
}

func switchName(ls *nbdb.LogicalSwitch) string    { return ls.Name }
func portName(lsp *nbdb.LogicalSwitchPort) string { return lsp.Name }
func routerName(lr *nbdb.LogicalRouter) string    { return lr.Name }
func lrpName(lrp *nbdb.LogicalRouterPort) string  { return lrp.Name }
func addressSetName(as *nbdb.AddressSet) string   { return as.Name }
func owned(ids map[string]string) map[string]string {
	ids[externalids.Owner] = externalids.OwnerValue
	return ids
}

// pod is a pod's port on node with one address.
func pod(name, node, network, ip string) *nbdb.LogicalSwitchPort {
	return &nbdb.LogicalSwitchPort{
		Name:      name,
		Addresses: []string{"0a:58:00:00:00:01 " + ip},
		ExternalIDs: owned(map[string]string{
			externalids.Node: node, externalids.Network: network,
			externalids.ContainerID: "ctr-" + name, externalids.IfName: "net1",
		}),
	}
}

// waitSwitch waits until nb's cache shows switch name with nPorts ports.
func waitSwitch(t *testing.T, nb *ovn.Northbound, name string, nPorts int) *nbdb.LogicalSwitch {
	t.Helper()
	var ls *nbdb.LogicalSwitch
	ovntest.Eventually(t, fmt.Sprintf("switch %s with %d ports in the cache", name, nPorts), func() bool {
		var ok bool
		ls, ok = nb.Switch(name)
		return ok && len(ls.Ports) == nPorts
	})
	return ls
}

// waitClaims waits until nb's cache shows router name with n node claims.
func waitClaims(t *testing.T, nb *ovn.Northbound, name string, n int) *nbdb.LogicalRouter {
	t.Helper()
	var lr *nbdb.LogicalRouter
	ovntest.Eventually(t, fmt.Sprintf("router %s with %d claims in the cache", name, n), func() bool {
		var ok bool
		lr, ok = nb.Router(name)
		return ok && len(ovn.NodeClaims(lr)) == n
	})
	return lr
}

// concurrently runs f(0..n-1) at once and returns their errors.
func concurrently(n int, f func(i int) error) []error {
	errs := make([]error, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			errs[i] = f(i)
		}()
	}
	close(start)
	wg.Wait()
	return errs
}

// raceForOne runs create on every client at once, as nodes meeting a new
// network do, and returns the UUID of the row they all got; it fails the
// test on an error or a disagreement.
func raceForOne(t *testing.T, what string, clients []*ovn.Northbound, create func(nb *ovn.Northbound) (string, error)) string {
	t.Helper()
	uuids := make([]string, len(clients))
	errs := concurrently(len(clients), func(i int) (err error) {
		uuids[i], err = create(clients[i])
		return err
	})
	for i, err := range errs {
		if err != nil {
			t.Fatalf("%s, client %d: %v", what, i, err)
		}
	}
	for _, u := range uuids[1:] {
		if u != uuids[0] {
			t.Fatalf("%s: clients disagree: %v", what, uuids)
		}
	}
	return uuids[0]
}

// outcomes counts nil errors and ErrConflicts, failing on anything else.
func outcomes(t *testing.T, errs []error) (ok, conflict int) {
	t.Helper()
	for i, err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, ovn.ErrConflict):
			conflict++
		default:
			t.Errorf("writer %d: %v", i, err)
		}
	}
	return ok, conflict
}

func TestEnsureSwitchConcurrentCreatesOne(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	clients := []*ovn.Northbound{connect(t, endpoint), connect(t, endpoint), connect(t, endpoint)}
	for round := range 5 {
		name := fmt.Sprintf("race-%d", round)
		raceForOne(t, fmt.Sprintf("round %d: switch", round), clients, func(nb *ovn.Northbound) (string, error) {
			ls, err := nb.EnsureSwitch(context.Background(), name, map[string]string{externalids.Network: name})
			if err != nil {
				return "", err
			}
			return ls.UUID, nil
		})
		if n := len(named(committed[nbdb.LogicalSwitch](t, endpoint), switchName, name)); n != 1 {
			t.Fatalf("round %d: switch %s exists %d times", round, name, n)
		}
	}
}

// The wait in createUnique must also hold when every creator has built
// its transaction before any commits: HoldNB forces that.
func TestEnsureSwitchRaceUnderHold(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	clients := []*ovn.Northbound{connect(t, endpoint), connect(t, endpoint), connect(t, endpoint)}
	ovntest.HoldNB(t, endpoint, 400*time.Millisecond)
	raceForOne(t, "switch", clients, func(nb *ovn.Northbound) (string, error) {
		ls, err := nb.EnsureSwitch(context.Background(), "held", nil)
		if err != nil {
			return "", err
		}
		return ls.UUID, nil
	})
	if n := len(named(committed[nbdb.LogicalSwitch](t, endpoint), switchName, "held")); n != 1 {
		t.Fatalf("switch exists %d times", n)
	}
}

// nodeClaim is a minimal ovn.NodeClaim as daemon/layer3.go builds it.
func nodeClaim(lr *nbdb.LogicalRouter, network, node, subnet string) ovn.NodeClaim {
	ids := func() map[string]string {
		return map[string]string{externalids.Network: network, externalids.Topology: "layer3", externalids.Node: node}
	}
	lrp := network + "-rtos-" + node
	return ovn.NodeClaim{
		Router:     lr,
		Node:       node,
		Subnets:    subnet,
		Switch:     &nbdb.LogicalSwitch{Name: network + "-" + node, ExternalIDs: ids()},
		RouterPort: &nbdb.LogicalRouterPort{Name: lrp, MAC: "0a:58:0a:80:01:01", Networks: []string{subnet}, ExternalIDs: ids()},
		SwitchPort: &nbdb.LogicalSwitchPort{
			Name: network + "-stor-" + node, Type: "router", Addresses: []string{"router"},
			Options: map[string]string{"router-port": lrp}, ExternalIDs: ids(),
		},
	}
}

func TestClaimNodeRace(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	a, b := connect(t, endpoint), connect(t, endpoint)
	ctx := context.Background()
	if _, err := a.EnsureRouter(ctx, "l3-router", map[string]string{externalids.Network: "l3"}); err != nil {
		t.Fatal(err)
	}
	// Both nodes read the same router (no claims yet) and pick the same
	// subnet.
	snapA, snapB := waitClaims(t, a, "l3-router", 0), waitClaims(t, b, "l3-router", 0)
	errs := concurrently(2, func(i int) error {
		nb, snap, node := a, snapA, "node-a"
		if i == 1 {
			nb, snap, node = b, snapB, "node-b"
		}
		return nb.ClaimNode(ctx, nodeClaim(snap, "l3", node, "10.128.1.0/24"))
	})
	if ok, conflict := outcomes(t, errs); ok != 1 || conflict != 1 {
		t.Fatalf("claims: %d committed, %d conflicts, want 1 and 1 (%v)", ok, conflict, errs)
	}
	winner, loser, loserNode := "node-a", b, "node-b"
	if errs[0] != nil {
		winner, loser, loserNode = "node-b", a, "node-a"
	}
	routers := committed[nbdb.LogicalRouter](t, endpoint)
	if len(routers) != 1 || len(routers[0].Ports) != 1 {
		t.Fatalf("routers %+v, want one with one port", routers)
	}
	if claims := ovn.NodeClaims(&routers[0]); len(claims) != 1 || claims[winner] != "10.128.1.0/24" {
		t.Fatalf("claims %v, want only %s's", claims, winner)
	}
	// The loser's transaction left nothing behind.
	if n := len(named(committed[nbdb.LogicalSwitch](t, endpoint), switchName, "l3-"+loserNode)); n != 0 {
		t.Fatalf("the losing claim created its switch")
	}
	if n := len(committed[nbdb.LogicalRouterPort](t, endpoint)); n != 1 {
		t.Fatalf("%d router ports, want the winner's only", n)
	}

	// The loser re-reads, sees the winner's claim, and its next claim
	// (another subnet) goes through.
	fresh := waitClaims(t, loser, "l3-router", 1)
	if err := loser.ClaimNode(ctx, nodeClaim(fresh, "l3", loserNode, "10.128.2.0/24")); err != nil {
		t.Fatalf("claim on a fresh read: %v", err)
	}
	// A claim from the now stale snapshot conflicts even for a third
	// node: any change to the router's claims invalidates it.
	if err := loser.ClaimNode(ctx, nodeClaim(fresh, "l3", "node-c", "10.128.3.0/24")); !errors.Is(err, ovn.ErrConflict) {
		t.Fatalf("claim on a stale read: got %v, want ErrConflict", err)
	}
	routers = committed[nbdb.LogicalRouter](t, endpoint)
	if claims := ovn.NodeClaims(&routers[0]); len(claims) != 2 || len(routers[0].Ports) != 2 {
		t.Fatalf("claims %v, %d router ports; want 2 and 2", claims, len(routers[0].Ports))
	}
}

func TestApplyPortsGuard(t *testing.T) {
	tests := []struct {
		name  string
		guard bool
		// with guard, one of two writers from the same snapshot loses
		wantOK, wantConflict int
	}{
		{"guarded writers from one snapshot: one wins", true, 1, 1},
		{"unguarded writers from one snapshot: both commit", false, 2, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint := ovntest.StartNB(t)
			a, b := connect(t, endpoint), connect(t, endpoint)
			ctx := context.Background()
			ls, err := a.EnsureSwitch(ctx, "l2", nil)
			if err != nil {
				t.Fatal(err)
			}
			// The switch starts with a port: the in-memory server does
			// not compare an empty expected port set (see
			// TestApplyPortsGuardOnEmptySwitch).
			if _, err := a.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{pod("first", "n", "l2", "10.0.0.1")}}); err != nil {
				t.Fatal(err)
			}
			snaps := []*nbdb.LogicalSwitch{waitSwitch(t, a, "l2", 1), waitSwitch(t, b, "l2", 1)}
			clients := []*ovn.Northbound{a, b}
			errs := concurrently(2, func(i int) error {
				_, err := clients[i].ApplyPorts(ctx, ovn.PortChange{
					Switch: snaps[i], Guard: tt.guard,
					Add: []*nbdb.LogicalSwitchPort{pod(fmt.Sprintf("p%d", i), "n", "l2", fmt.Sprintf("10.0.0.%d", 10+i))},
				})
				return err
			})
			ok, conflict := outcomes(t, errs)
			if ok != tt.wantOK || conflict != tt.wantConflict {
				t.Fatalf("%d committed, %d conflicts; want %d and %d (%v)", ok, conflict, tt.wantOK, tt.wantConflict, errs)
			}
			sw := named(committed[nbdb.LogicalSwitch](t, endpoint), switchName, "l2")
			ports := committed[nbdb.LogicalSwitchPort](t, endpoint)
			if len(sw) != 1 || len(sw[0].Ports) != 1+ok || len(ports) != 1+ok {
				t.Fatalf("switch %+v and %d ports, want %d ports", sw, len(ports), 1+ok)
			}
		})
	}
}

// In ovsdb-server a guard built from a switch with no ports fails once a
// port was added. The in-memory server's wait skips columns whose
// expected value is the column default (here the empty set), so the
// guard passes. This test pins that difference: if it fails after a
// libovsdb upgrade, the in-memory server got it right, and
// TestApplyPortsGuard can drop its initial port.
func TestApplyPortsGuardOnEmptySwitch(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	a := connect(t, endpoint)
	ctx := context.Background()
	empty, err := a.EnsureSwitch(ctx, "l2", nil)
	if err != nil {
		t.Fatal(err)
	}
	stale := *empty
	if _, err := a.ApplyPorts(ctx, ovn.PortChange{Switch: empty, Guard: true, Add: []*nbdb.LogicalSwitchPort{pod("p0", "n", "l2", "10.0.0.1")}}); err != nil {
		t.Fatal(err)
	}
	waitSwitch(t, a, "l2", 1)
	_, err = a.ApplyPorts(ctx, ovn.PortChange{Switch: &stale, Guard: true, Add: []*nbdb.LogicalSwitchPort{pod("p1", "n", "l2", "10.0.0.2")}})
	if err != nil {
		t.Fatalf("stale empty-set guard: %v; the in-memory server now enforces it (ovsdb-server does)", err)
	}
}

func addresses(t *testing.T, endpoint, set string) []string {
	t.Helper()
	sets := named(committed[nbdb.AddressSet](t, endpoint), addressSetName, set)
	if len(sets) != 1 {
		t.Fatalf("address set %s exists %d times", set, len(sets))
	}
	out := slices.Clone(sets[0].Addresses)
	slices.Sort(out)
	return out
}

func TestApplyPortsAddressSets(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	ctx := context.Background()
	_, err := nb.EnsureSwitch(ctx, "l2", nil)
	if err != nil {
		t.Fatal(err)
	}
	setIDs := map[string]string{externalids.Network: "l2"}
	steps := []struct {
		name      string
		add       []string // port names; the port's IP is 10.0.0.<len(name)>
		remove    []string // port names
		asAdd     []string
		asRemove  []string
		wantPorts []string
		wantAddrs []string
	}{
		{"first port creates the set", []string{"a"}, nil, []string{"10.0.0.1"}, nil, []string{"a"}, []string{"10.0.0.1"}},
		{"second port mutates it", []string{"bb"}, nil, []string{"10.0.0.2"}, nil, []string{"a", "bb"}, []string{"10.0.0.1", "10.0.0.2"}},
		{"add and remove in one transaction", []string{"ccc"}, []string{"a"}, []string{"10.0.0.3"}, []string{"10.0.0.1"}, []string{"bb", "ccc"}, []string{"10.0.0.2", "10.0.0.3"}},
		{"removing the last addresses keeps an empty set", nil, []string{"bb", "ccc"}, nil, []string{"10.0.0.2", "10.0.0.3"}, nil, nil},
	}
	nPorts := 0
	for _, st := range steps {
		// Each step builds on the cache, as the daemon does.
		cur := waitSwitch(t, nb, "l2", nPorts)
		change := ovn.PortChange{Switch: cur, Guard: true, AddressSets: []ovn.AddressSetChange{{Name: "as-l2", ExternalIDs: setIDs, Add: st.asAdd, Remove: st.asRemove}}}
		for _, p := range st.add {
			change.Add = append(change.Add, pod(p, "n", "l2", fmt.Sprintf("10.0.0.%d", len(p))))
		}
		for _, p := range st.remove {
			lsp, ok := nb.Port(p)
			if !ok {
				t.Fatalf("%s: port %s not in the cache", st.name, p)
			}
			change.RemoveUUIDs = append(change.RemoveUUIDs, lsp.UUID)
		}
		if _, err := nb.ApplyPorts(ctx, change); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		var names []string
		for _, p := range committed[nbdb.LogicalSwitchPort](t, endpoint) {
			names = append(names, p.Name)
		}
		slices.Sort(names)
		if !slices.Equal(names, st.wantPorts) {
			t.Fatalf("%s: ports %v, want %v", st.name, names, st.wantPorts)
		}
		if got := addresses(t, endpoint, "as-l2"); !slices.Equal(got, st.wantAddrs) {
			t.Fatalf("%s: addresses %v, want %v", st.name, got, st.wantAddrs)
		}
		nPorts = len(st.wantPorts)
		// The next step's address-set edit is built from the cache too.
		ovntest.Eventually(t, "the address set in the cache", func() bool {
			as, ok := nb.AddressSet("as-l2")
			return ok && len(as.Addresses) == len(st.wantAddrs)
		})
	}

	// A guarded change that conflicts changes no address set either.
	if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: waitSwitch(t, nb, "l2", 0), Add: []*nbdb.LogicalSwitchPort{pod("d", "n", "l2", "10.0.0.4")}}); err != nil {
		t.Fatal(err)
	}
	// A non-empty snapshot: see TestApplyPortsGuardOnEmptySwitch.
	stale := waitSwitch(t, nb, "l2", 1)
	if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: stale, Add: []*nbdb.LogicalSwitchPort{pod("e", "n", "l2", "10.0.0.5")}}); err != nil {
		t.Fatal(err)
	}
	_, err = nb.ApplyPorts(ctx, ovn.PortChange{Switch: stale, Guard: true,
		Add:         []*nbdb.LogicalSwitchPort{pod("f", "n", "l2", "10.0.0.6")},
		AddressSets: []ovn.AddressSetChange{{Name: "as-l2", Add: []string{"10.0.0.6"}}}})
	if !errors.Is(err, ovn.ErrConflict) {
		t.Fatalf("stale guarded change: got %v, want ErrConflict", err)
	}
	if got := addresses(t, endpoint, "as-l2"); len(got) != 0 {
		t.Fatalf("a failed transaction changed the address set: %v", got)
	}
	if n := len(committed[nbdb.LogicalSwitchPort](t, endpoint)); n != 2 {
		t.Fatalf("%d ports, want 2: the failed transaction must not create its port", n)
	}
}

func TestApplyPortsAddressSetCreateRace(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	a, b := connect(t, endpoint), connect(t, endpoint)
	ctx := context.Background()
	if _, err := a.EnsureSwitch(ctx, "l2", nil); err != nil {
		t.Fatal(err)
	}
	snaps := []*nbdb.LogicalSwitch{waitSwitch(t, a, "l2", 0), waitSwitch(t, b, "l2", 0)}
	clients := []*ovn.Northbound{a, b}
	ovntest.HoldNB(t, endpoint, 400*time.Millisecond)
	errs := concurrently(2, func(i int) error {
		_, err := clients[i].ApplyPorts(ctx, ovn.PortChange{
			Switch:      snaps[i],
			Add:         []*nbdb.LogicalSwitchPort{pod(fmt.Sprintf("p%d", i), "n", "l2", fmt.Sprintf("10.0.0.%d", i+1))},
			AddressSets: []ovn.AddressSetChange{{Name: "as-l2", Add: []string{fmt.Sprintf("10.0.0.%d", i+1)}}},
		})
		return err
	})
	var lost error
	for _, err := range errs {
		if err != nil {
			if lost != nil {
				t.Fatalf("both writers failed: %v", errs)
			}
			lost = err
		}
	}
	if lost == nil {
		t.Fatal("both writers created the address set")
	}
	t.Logf("losing writer's error: %v", lost)
	// Two nodes creating one namespace's address set is a race, not an
	// error: the loser must get a retryable conflict (the index violation
	// on Address_Set's name), and retry on a fresh cache. Before, it got
	// a plain error (code 999 for its ADD and its batch-mates).
	if !errors.Is(lost, ovn.ErrConflict) {
		t.Fatalf("losing writer: %v, want an error wrapping ovn.ErrConflict", lost)
	}
	if got := addresses(t, endpoint, "as-l2"); len(got) != 1 {
		t.Fatalf("addresses %v, want the winner's only", got)
	}
	if n := len(committed[nbdb.LogicalSwitchPort](t, endpoint)); n != 1 {
		t.Fatalf("%d ports, want the winner's only: the loser's transaction must not commit", n)
	}
}

func TestReleaseNode(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	ctx := context.Background()

	// layer3: both nodes claim a subnet, each gets a switch with a pod.
	if _, err := nb.EnsureRouter(ctx, "l3-router", map[string]string{externalids.Network: "l3"}); err != nil {
		t.Fatal(err)
	}
	for i, node := range []string{"node1", "node2"} {
		lr := waitClaims(t, nb, "l3-router", i)
		if err := nb.ClaimNode(ctx, nodeClaim(lr, "l3", node, fmt.Sprintf("10.128.%d.0/24", i+1))); err != nil {
			t.Fatal(err)
		}
		ls := waitSwitch(t, nb, "l3-"+node, 1)
		if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{pod("l3-pod-"+node, node, "l3", fmt.Sprintf("10.128.%d.5", i+1))}}); err != nil {
			t.Fatal(err)
		}
		waitSwitch(t, nb, "l3-"+node, 2)
	}
	// layer2: a pod and a warm port of node1, a pod of node2, and the
	// network's address set listing them.
	l2, err := nb.EnsureSwitch(ctx, "l2", map[string]string{externalids.Network: "l2"})
	if err != nil {
		t.Fatal(err)
	}
	warm := &nbdb.LogicalSwitchPort{Name: "l2-warm-node1", Addresses: []string{"0a:58:00:00:00:02 10.0.0.6"},
		ExternalIDs: owned(map[string]string{externalids.Node: "node1", externalids.Network: "l2", externalids.Warm: "true"})}
	if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: l2,
		Add: []*nbdb.LogicalSwitchPort{pod("l2-pod-node1", "node1", "l2", "10.0.0.5"), warm, pod("l2-pod-node2", "node2", "l2", "10.0.0.7")},
		AddressSets: []ovn.AddressSetChange{{Name: "as-l2", ExternalIDs: map[string]string{externalids.Network: "l2"},
			Add: []string{"10.0.0.5", "10.0.0.6", "10.0.0.7"}}},
	}); err != nil {
		t.Fatal(err)
	}
	waitSwitch(t, nb, "l2", 3)
	ovntest.Eventually(t, "the address set in the cache", func() bool { _, ok := nb.AddressSet("as-l2"); return ok })

	summary, err := nb.ReleaseNode(ctx, "node1")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("summary: %s", summary)
	for _, want := range []string{"subnets 10.128.1.0/24 of l3", "2 pod ports", "1 warm ports"} {
		if !strings.Contains(summary, want) {
			t.Errorf("summary %q lacks %q", summary, want)
		}
	}

	routers := committed[nbdb.LogicalRouter](t, endpoint)
	if claims := ovn.NodeClaims(&routers[0]); len(claims) != 1 || claims["node2"] == "" {
		t.Errorf("claims after release: %v, want node2's only", claims)
	}
	if len(routers[0].Ports) != 1 {
		t.Errorf("router has %d ports, want node2's only", len(routers[0].Ports))
	}
	// Router ports and switch ports are not root rows: the ones no longer
	// referenced must be gone, not just unlinked.
	var lrps []string
	for _, lrp := range committed[nbdb.LogicalRouterPort](t, endpoint) {
		lrps = append(lrps, lrpName(&lrp))
	}
	if !slices.Equal(lrps, []string{"l3-rtos-node2"}) {
		t.Errorf("router ports %v, want node2's only", lrps)
	}
	var switches []string
	for _, ls := range committed[nbdb.LogicalSwitch](t, endpoint) {
		switches = append(switches, ls.Name)
	}
	slices.Sort(switches)
	if !slices.Equal(switches, []string{"l2", "l3-node2"}) {
		t.Errorf("switches %v, want l2 and l3-node2", switches)
	}
	var ports []string
	for _, lsp := range committed[nbdb.LogicalSwitchPort](t, endpoint) {
		ports = append(ports, portName(&lsp))
	}
	slices.Sort(ports)
	if want := []string{"l2-pod-node2", "l3-pod-node2", "l3-stor-node2"}; !slices.Equal(ports, want) {
		t.Errorf("ports %v, want %v", ports, want)
	}
	if got := addresses(t, endpoint, "as-l2"); !slices.Equal(got, []string{"10.0.0.7"}) {
		t.Errorf("address set %v, want node2's address only", got)
	}
	if n := len(named(committed[nbdb.LogicalRouter](t, endpoint), routerName, "l3-router")); n != 1 {
		t.Errorf("router exists %d times", n)
	}

	// Once the cache has caught up, there is nothing left to release.
	ovntest.Eventually(t, "node1 gone from the cache", func() bool { return !slices.Contains(nb.NodesWithRows(), "node1") })
	if summary, err := nb.ReleaseNode(ctx, "node1"); err != nil || !strings.Contains(summary, "nothing owned") {
		t.Errorf("second release: %q, %v", summary, err)
	}
}

// ovsdb-server sends a conditional monitor only the rows matching its
// condition, so ConnectNorthbound caches owned rows only and EnsureSwitch
// over someone else's switch fails with ErrNotOwned. The in-memory server
// ignores monitor conditions: the foreign switch is in the cache and
// EnsureSwitch adopts it. This test pins that difference; ownership
// checks cannot be tested against the in-memory server.
func TestUnownedRowsAreCachedInMemory(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	raw := ovntest.ConnectNB(t, endpoint)
	ops, err := raw.Create(&nbdb.LogicalSwitch{Name: "foreign"})
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, raw, ops...)
	nb := connect(t, endpoint)
	ovntest.Eventually(t, "the foreign switch in the owned-rows cache", func() bool { _, ok := nb.Switch("foreign"); return ok })
	if _, err := nb.EnsureSwitch(context.Background(), "foreign", nil); err != nil {
		t.Fatalf("EnsureSwitch over a cached foreign switch: %v", err)
	}
}
