package ovntest_test

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

func dhcpIDs(d *nbdb.DHCPOptions) map[string]string { return d.ExternalIDs }

// v4Options are DHCPv4 options as a layer2 network of 10.10.0.0/24 has
// them; lease is the lease time.
func v4Options(lease string) map[string]string {
	return map[string]string{
		"lease_time": lease, "router": "10.10.0.1",
		"server_id": "10.10.0.1", "server_mac": "0a:58:0a:0a:00:01",
	}
}

// committedDHCP returns the DHCP_Options rows of network (owned or not)
// in the database.
func committedDHCP(t *testing.T, endpoint, network string) []nbdb.DHCPOptions {
	t.Helper()
	return ofNetwork(committed[nbdb.DHCPOptions](t, endpoint), dhcpIDs, network)
}

// One node's EnsureDHCPOptions, call after call: a row per (network,
// CIDR), found again by later calls, its options rewritten when the
// network config changes them.
func TestEnsureDHCPOptions(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	other := connect(t, endpoint) // another node, reading only
	ctx := context.Background()
	// A row another system made for the same network and subnet is not
	// ours: it is neither adopted nor changed.
	foreign := &nbdb.DHCPOptions{UUID: "foreign", Cidr: "10.10.0.0/24", Options: map[string]string{"lease_time": "1"},
		ExternalIDs: map[string]string{externalids.Network: "l2"}}
	c := ovntest.ConnectNB(t, endpoint)
	ops, err := c.Create(foreign)
	if err != nil {
		t.Fatal(err)
	}
	foreignUUID := ovntest.Transact(t, c, ops...)[0].UUID.GoUUID

	steps := []struct {
		name string
		spec ovn.DHCPOptionsSpec
		// same names the earlier step whose row this one must return;
		// "": a new row.
		same string
		// wantRows is the number of network's rows of ours afterwards.
		wantRows int
	}{
		{name: "create", spec: ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("10.10.0.0/24"), Options: v4Options("3600")}, wantRows: 1},
		{name: "again", spec: ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("10.10.0.0/24"), Options: v4Options("3600")}, same: "create", wantRows: 1},
		{name: "host bits ignored", spec: ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("10.10.0.7/24"), Options: v4Options("3600")}, same: "create", wantRows: 1},
		{name: "options changed", spec: ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("10.10.0.0/24"), Options: v4Options("600")}, same: "create", wantRows: 1},
		{name: "options cleared", spec: ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("10.10.0.0/24")}, same: "create", wantRows: 1},
		{name: "options back", spec: ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("10.10.0.0/24"), Options: v4Options("3600")}, same: "create", wantRows: 1},
		{name: "second subnet", spec: ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("fd00:10::/64"), Options: map[string]string{"server_id": "0a:58:0a:0a:00:01"}}, wantRows: 2},
		{name: "same subnet, other network", spec: ovn.DHCPOptionsSpec{Network: "l2-other", CIDR: netip.MustParsePrefix("10.10.0.0/24"), Options: v4Options("60")}, wantRows: 1},
	}
	uuids := map[string]string{}
	for _, st := range steps {
		uuid, err := nb.EnsureDHCPOptions(ctx, st.spec)
		if err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		uuids[st.name] = uuid
		switch {
		case st.same != "" && uuid != uuids[st.same]:
			t.Fatalf("%s: row %s, want %s's %s", st.name, uuid, st.same, uuids[st.same])
		case st.same == "" && (uuid == foreignUUID || rowOfAnotherStep(uuids, uuid, st.name)):
			t.Fatalf("%s: row %s is not a new row (%v, foreign %s)", st.name, uuid, uuids, foreignUUID)
		}
		cidr := st.spec.CIDR.Masked().String()
		var mine []nbdb.DHCPOptions
		for _, d := range committedDHCP(t, endpoint, st.spec.Network) {
			if d.ExternalIDs[externalids.Owner] == externalids.OwnerValue {
				mine = append(mine, d)
			}
		}
		if len(mine) != st.wantRows {
			t.Fatalf("%s: network %s has %d rows of ours, want %d: %+v", st.name, st.spec.Network, len(mine), st.wantRows, mine)
		}
		var row *nbdb.DHCPOptions
		for i := range mine {
			if mine[i].UUID == uuid {
				row = &mine[i]
			}
		}
		if row == nil || row.Cidr != cidr || !maps.Equal(row.Options, st.spec.Options) {
			t.Fatalf("%s: row %s is %+v, want cidr %s and options %v", st.name, uuid, row, cidr, st.spec.Options)
		}
		// Every node's cache catches up, the caller's and another's.
		for i, n := range []*ovn.Northbound{nb, other} {
			eventually(t, fmt.Sprintf("%s: client %d's cache", st.name, i), func() bool {
				for _, d := range n.DHCPOptions(st.spec.Network) {
					if d.UUID == uuid {
						return d.Cidr == cidr && maps.Equal(d.Options, st.spec.Options)
					}
				}
				return false
			})
		}
	}
	// DHCPOptions lists a network's rows of ours, by cidr.
	var cidrs []string
	for _, d := range nb.DHCPOptions("l2") {
		cidrs = append(cidrs, d.Cidr)
	}
	if want := []string{"10.10.0.0/24", "fd00:10::/64"}; fmt.Sprint(cidrs) != fmt.Sprint(want) {
		t.Errorf("DHCPOptions(l2) cidrs %v, want %v", cidrs, want)
	}
	// The foreign row is untouched.
	for _, d := range committedDHCP(t, endpoint, "l2") {
		if d.UUID == foreignUUID && (d.ExternalIDs[externalids.Owner] != "" || d.Options["lease_time"] != "1") {
			t.Errorf("the foreign row changed: %+v", d)
		}
	}

	for _, bad := range []ovn.DHCPOptionsSpec{
		{CIDR: netip.MustParsePrefix("10.0.0.0/24")},
		{Network: "l2"},
	} {
		if _, err := nb.EnsureDHCPOptions(ctx, bad); err == nil {
			t.Errorf("EnsureDHCPOptions(%+v) accepted", bad)
		}
	}
}

// rowOfAnotherStep reports whether uuid is the row of a step other than
// step.
func rowOfAnotherStep(uuids map[string]string, uuid, step string) bool {
	for name, u := range uuids {
		if name != step && u == uuid {
			return true
		}
	}
	return false
}

// The nodes of a network meet it at once: one row per subnet comes out,
// and all get its UUID. Under a hold every node builds its transaction
// before any commits, so only the creation's guard keeps it to one row.
func TestEnsureDHCPOptionsConcurrentCreatesOne(t *testing.T) {
	for _, hold := range []bool{false, true} {
		t.Run(map[bool]string{false: "free", true: "under hold"}[hold], func(t *testing.T) {
			endpoint := ovntest.StartNB(t)
			clients := []*ovn.Northbound{connect(t, endpoint), connect(t, endpoint), connect(t, endpoint)}
			rounds := 5
			if hold {
				rounds = 2
			}
			for round := range rounds {
				network := fmt.Sprintf("race-%d", round)
				spec := ovn.DHCPOptionsSpec{Network: network, CIDR: netip.MustParsePrefix("10.10.0.0/24"), Options: v4Options("3600")}
				if hold {
					ovntest.HoldNB(t, endpoint, 400*time.Millisecond)
				}
				uuid := raceForOne(t, fmt.Sprintf("round %d: DHCP options", round), clients, func(nb *ovn.Northbound) (string, error) {
					return nb.EnsureDHCPOptions(context.Background(), spec)
				})
				rows := committedDHCP(t, endpoint, network)
				if len(rows) != 1 || rows[0].UUID != uuid {
					t.Fatalf("round %d: rows %+v, want one, %s", round, rows, uuid)
				}
			}
		})
	}
}

// The last node out of a network removes its DHCP options with its shared
// rows, in the same transaction; a network still in use keeps them, and
// other networks' rows stay.
func TestDeleteNetworkIfUnusedRemovesDHCPOptions(t *testing.T) {
	for _, tt := range []struct {
		name     string
		topology string // layer2: a switch; layer3: a router
		withPod  bool
	}{
		{name: "layer2 empty", topology: "layer2"},
		{name: "layer2 with a pod", topology: "layer2", withPod: true},
		{name: "layer3 without nodes", topology: "layer3"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			endpoint := ovntest.StartNB(t)
			nb := connect(t, endpoint)
			ctx := context.Background()
			const network, stays = "net", "stays"
			for _, n := range []string{network, stays} {
				for _, cidr := range []string{"10.10.0.0/24", "fd00:10::/64"} {
					if _, err := nb.EnsureDHCPOptions(ctx, ovn.DHCPOptionsSpec{Network: n, CIDR: netip.MustParsePrefix(cidr), Options: map[string]string{"server_id": "x"}}); err != nil {
						t.Fatal(err)
					}
				}
			}
			var ls *nbdb.LogicalSwitch
			var lr *nbdb.LogicalRouter
			var err error
			switch tt.topology {
			case "layer2":
				if ls, err = nb.EnsureSwitch(ctx, network, map[string]string{externalids.Network: network}); err != nil {
					t.Fatal(err)
				}
				if tt.withPod {
					if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{pod(network+"-p", "node1", network, "10.10.0.5")}, Guard: true}); err != nil {
						t.Fatal(err)
					}
					ls = waitSwitch(t, nb, network, 1)
				}
			case "layer3":
				if lr, err = nb.EnsureRouter(ctx, network+".router", map[string]string{externalids.Network: network}); err != nil {
					t.Fatal(err)
				}
			}
			deleted, err := nb.DeleteNetworkIfUnused(ctx, network, ls, lr)
			if err != nil {
				t.Fatal(err)
			}
			if deleted == tt.withPod {
				t.Fatalf("deleted = %v with a pod = %v", deleted, tt.withPod)
			}
			want := 0
			if tt.withPod {
				want = 2
			}
			if got := len(committedDHCP(t, endpoint, network)); got != want {
				t.Errorf("%s has %d DHCP_Options rows, want %d", network, got, want)
			}
			if got := len(committedDHCP(t, endpoint, stays)); got != 2 {
				t.Errorf("the other network has %d DHCP_Options rows, want 2", got)
			}
			eventually(t, "the cache", func() bool { return len(nb.DHCPOptions(network)) == want })
		})
	}
}

// A row deleted behind the cache's back (the network retired by another
// node) is not returned: an update that finds no row makes Ensure wait
// for the cache and create the row again. The hold makes the delete
// commit between this node's read of its cache and its update.
func TestEnsureDHCPOptionsRowDeletedMeanwhile(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	ctx := context.Background()
	spec := ovn.DHCPOptionsSpec{Network: "l2", CIDR: netip.MustParsePrefix("10.10.0.0/24"), Options: v4Options("3600")}
	old, err := nb.EnsureDHCPOptions(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	c := ovntest.ConnectNB(t, endpoint)
	del, err := c.Where(&nbdb.DHCPOptions{UUID: old}).Delete()
	if err != nil {
		t.Fatal(err)
	}
	ovntest.HoldNB(t, endpoint, 400*time.Millisecond)
	deleted := make(chan error, 1)
	go func() { _, err := ovntest.TryTransact(c, del...); deleted <- err }()
	time.Sleep(100 * time.Millisecond) // the delete queues first
	spec.Options = v4Options("600")
	uuid, err := nb.EnsureDHCPOptions(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-deleted; err != nil {
		t.Fatal(err)
	}
	rows := committedDHCP(t, endpoint, "l2")
	if uuid == old || len(rows) != 1 || rows[0].UUID != uuid || !maps.Equal(rows[0].Options, spec.Options) {
		t.Fatalf("Ensure returned %s (the deleted row was %s); rows %+v, want one with options %v", uuid, old, rows, spec.Options)
	}
}
