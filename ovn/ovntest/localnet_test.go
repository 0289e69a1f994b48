package ovntest_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

func localnetPort(network string, vlan int) *nbdb.LogicalSwitchPort {
	lsp := &nbdb.LogicalSwitchPort{
		Name:        network + ".physnet",
		Addresses:   []string{"unknown"},
		Options:     map[string]string{"network_name": "dc"},
		ExternalIDs: map[string]string{externalids.Network: network},
	}
	if vlan > 0 {
		lsp.TagRequest = &vlan
	}
	return lsp
}

// Every node of a localnet network meets it at once: one localnet port
// comes out, on the switch, and all agree on it.
func TestEnsureLocalnetPortConcurrentCreatesOne(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	clients := []*ovn.Northbound{connect(t, endpoint), connect(t, endpoint), connect(t, endpoint)}
	for round := range 5 {
		network := fmt.Sprintf("ln-%d", round)
		ls, err := clients[0].EnsureSwitch(context.Background(), network, map[string]string{externalids.Network: network})
		if err != nil {
			t.Fatal(err)
		}
		raceForOne(t, fmt.Sprintf("round %d: localnet port", round), clients, func(nb *ovn.Northbound) (string, error) {
			lsp, err := nb.EnsureLocalnetPort(context.Background(), ls, localnetPort(network, 100))
			if err != nil {
				return "", err
			}
			return lsp.UUID, nil
		})
		ports := named(committed[nbdb.LogicalSwitchPort](t, endpoint), portName, network+".physnet")
		if len(ports) != 1 {
			t.Fatalf("round %d: localnet port exists %d times", round, len(ports))
		}
		p := ports[0]
		if p.Type != ovn.LocalnetPortType || p.TagRequest == nil || *p.TagRequest != 100 || p.Options["network_name"] != "dc" || p.ExternalIDs[externalids.Owner] != externalids.OwnerValue {
			t.Fatalf("round %d: localnet port %+v", round, p)
		}
		sw := waitSwitch(t, clients[0], network, 1)
		if sw.Ports[0] != p.UUID {
			t.Fatalf("round %d: switch ports %v, want the localnet port %s", round, sw.Ports, p.UUID)
		}
	}
}

// A localnet switch whose only port is its localnet port holds nothing
// of anyone: the network may go. With a pod on it, it stays.
func TestDeleteNetworkIfUnusedIgnoresLocalnetPort(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	nb := connect(t, endpoint)
	ctx := context.Background()
	for _, tt := range []struct {
		name    string
		withPod bool
	}{{"localnet port only", false}, {"localnet port and a pod", true}} {
		t.Run(tt.name, func(t *testing.T) {
			network := "del-" + map[bool]string{false: "empty", true: "pod"}[tt.withPod]
			ls, err := nb.EnsureSwitch(ctx, network, map[string]string{externalids.Network: network})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := nb.EnsureLocalnetPort(ctx, ls, localnetPort(network, 0)); err != nil {
				t.Fatal(err)
			}
			ls = waitSwitch(t, nb, network, 1)
			if tt.withPod {
				if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{pod(network+"-p", "node1", network, "10.0.0.5")}, Guard: true}); err != nil {
					t.Fatal(err)
				}
				ls = waitSwitch(t, nb, network, 2)
			}
			if empty := slices.Contains(nb.EmptyNetworks(), network); empty == tt.withPod {
				t.Fatalf("EmptyNetworks lists %s: %v, want %v", network, empty, !tt.withPod)
			}
			deleted, err := nb.DeleteNetworkIfUnused(ctx, network, ls, nil)
			if err != nil {
				t.Fatal(err)
			}
			if deleted == tt.withPod {
				t.Fatalf("deleted = %v with a pod = %v", deleted, tt.withPod)
			}
			if left := len(named(committed[nbdb.LogicalSwitchPort](t, endpoint), portName, network+".physnet")); deleted && left != 0 {
				t.Fatalf("the localnet port outlived its switch")
			}
		})
	}
}
