package network

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/daemon/ipam"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// vmReq is the ADD of a VM's pod (container ctr on node) whose interface
// keeps the addresses of IPAMClaim ns1/vm.net1.
func vmReq(network, node, ctr string) PortRequest {
	req := podReq(network, node, ctr)
	req.Namespace = "ns1"
	req.Claim = "ipamclaim:ns1/vm.net1"
	req.ExternalIDs[externalids.IPAMClaim] = "ns1/vm.net1"
	req.ExternalIDs[externalids.PodNamespace] = "ns1"
	req.ExternalIDs[externalids.PodName] = "virt-launcher-" + ctr
	return req
}

// enabledIn reads whether port name is enabled in the database, and
// whether it exists.
func enabledIn(t *testing.T, endpoint, name string) (enabled, exists bool) {
	t.Helper()
	p, ok := committedPorts(t, endpoint)[name]
	if !ok {
		return false, false
	}
	return Enabled(&p), true
}

// inAddressSets reports whether any address set in the database lists a.
func inAddressSets(t *testing.T, endpoint string, a netip.Addr) bool {
	t.Helper()
	c := ovntest.ConnectNB(t, endpoint)
	defer c.Close()
	var sets []nbdb.AddressSet
	if err := c.List(context.Background(), &sets); err != nil {
		t.Fatal(err)
	}
	for _, s := range sets {
		if slices.Contains(s.Addresses, a.String()) {
			return true
		}
	}
	return false
}

// A live migration's two ports on a layer2 network: the target shares the
// source's MAC and addresses and is created disabled; whichever half
// leaves first, in either state, the VM keeps one enabled port with its
// addresses, in the address sets and in every node's index.
func TestLiveMigrationPorts(t *testing.T) {
	for _, tc := range []struct {
		name        string
		handOver    bool // Activate the target before anything leaves
		sourceLeads bool // the source's port is deleted (else the target's)
		// survivorEnabled: the port left behind serves the VM.
		wantSurvivor string // "source" or "target"
	}{
		{"completed: hand-over, then the source goes", true, true, "target"},
		{"failed before the hand-over: the target goes", false, false, "source"},
		{"failed after the hand-over: the target goes", true, false, "source"},
		{"source removed before the hand-over was signalled", false, true, "target"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			endpoint := startSetNB(t)
			a := simNodeWith(t, endpoint, "node-a", Options{}, nil)
			b := simNodeWith(t, endpoint, "node-b", Options{}, nil)
			conf := l2conf(t, "vm-l2", "10.210.0.0/29")
			nets := getOnAll(t, conf, 0, a, b)
			na, nb := nets[0], nets[1]

			source := na.CreatePort(ctx, vmReq(conf.Name, "node-a", "src"))
			if source.Err != nil {
				t.Fatal(source.Err)
			}
			addrs := PrefixAddrs(source.Addrs)
			for _, n := range nets {
				n.PinClaim("ipamclaim:ns1/vm.net1", addrs)
			}
			getOnAll(t, conf, 1, a, b)

			// The same request as the target's, but not marked as a
			// migration, is refused: the addresses are in use.
			plain := vmReq(conf.Name, "node-b", "dst")
			plain.Static, plain.MAC = source.Addrs, source.MAC
			if r := nb.CreatePort(ctx, plain); !errors.Is(r.Err, ipam.ErrInUse) {
				t.Fatalf("a second port with the VM's addresses, not a migration target: %v, want in use", r.Err)
			}
			targetReq := plain
			targetReq.MigrateFrom = source.LSP.Name
			target := nb.CreatePort(ctx, targetReq)
			if target.Err != nil {
				t.Fatalf("migration target: %v", target.Err)
			}
			if target.MAC.String() != source.MAC.String() || !slices.Equal(PrefixAddrs(target.Addrs), addrs) {
				t.Fatalf("target has %s %v, want the source's %s %v", target.MAC, target.Addrs, source.MAC, source.Addrs)
			}
			if on, _ := enabledIn(t, endpoint, target.LSP.Name); on {
				t.Fatal("the migration target's port is enabled before the hand-over")
			}
			// Two ports with one MAC in their addresses give ovn-northd two
			// L2 lookup flows with one match, "drop" for the disabled port;
			// ovn-controller may keep that one. Only the port that serves
			// has addresses.
			if a := committedPorts(t, endpoint)[target.LSP.Name].Addresses; len(a) != 0 {
				t.Fatalf("the disabled target port has addresses %v", a)
			}
			if target.LSP.ExternalIDs[externalids.MigrationSource] != source.LSP.Name {
				t.Errorf("target's %s = %q, want %q", externalids.MigrationSource, target.LSP.ExternalIDs[externalids.MigrationSource], source.LSP.Name)
			}
			getOnAll(t, conf, 2, a, b)

			if tc.handOver {
				if err := b.Activate(ctx, target.LSP); err != nil {
					t.Fatal(err)
				}
				src, _ := enabledIn(t, endpoint, source.LSP.Name)
				dst, _ := enabledIn(t, endpoint, target.LSP.Name)
				if src || !dst {
					t.Fatalf("after the hand-over source enabled=%t target enabled=%t, want false true", src, dst)
				}
				db := committedPorts(t, endpoint)
				if len(db[source.LSP.Name].Addresses) != 0 || len(db[target.LSP.Name].Addresses) != 1 {
					t.Fatalf("after the hand-over the source has addresses %v and the target %v; only the target should", db[source.LSP.Name].Addresses, db[target.LSP.Name].Addresses)
				}
			}
			leaving, leaver, staying := source.LSP, a, target.LSP
			if !tc.sourceLeads {
				leaving, leaver, staying = target.LSP, b, source.LSP
			}
			ovntest.Eventually(t, "the leaving port's current state in its node's cache", func() bool {
				cur, ok := leaver.nb.PortByUUID(leaving.UUID)
				return ok && Enabled(cur) == tc.handOver == (leaving == target.LSP)
			})
			cur, _ := leaver.nb.PortByUUID(leaving.UUID)
			if err := leaver.DeletePort(ctx, cur); err != nil {
				t.Fatal(err)
			}
			survivor := map[string]*nbdb.LogicalSwitchPort{"source": source.LSP, "target": target.LSP}[tc.wantSurvivor]
			if survivor != staying {
				t.Fatalf("test table: the survivor must be the port that stays")
			}
			if on, ok := enabledIn(t, endpoint, staying.Name); !ok || !on {
				t.Fatalf("the %s's port left behind: exists=%t enabled=%t, want an enabled port serving the VM", tc.wantSurvivor, ok, on)
			}
			if a := committedPorts(t, endpoint)[staying.Name].Addresses; len(a) != 1 || a[0] != source.LSP.PortSecurity[0] {
				t.Fatalf("the port left serving has addresses %v, want %v", a, source.LSP.PortSecurity)
			}
			if _, ok := enabledIn(t, endpoint, leaving.Name); ok {
				t.Fatal("the deleted port is still in the NB")
			}
			for _, ad := range addrs {
				if !inAddressSets(t, endpoint, ad) {
					t.Errorf("%s left the address sets with the %s's port, though the VM keeps it", ad, map[bool]string{true: "source", false: "target"}[tc.sourceLeads])
				}
			}
			// Every node's index knows the survivor holds the
			// addresses once the deletion reached its cache.
			for _, n := range nets {
				ovntest.Eventually(t, "the index to name the survivor as the holder", func() bool {
					owner, ok := n.pool.Owner(addrs[0])
					return ok && owner == staying.Name
				})
			}
		})
	}
}
