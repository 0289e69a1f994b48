package ovn_test

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
)

// The guard of a DHCP_Options creation (a wait on the rows of the network
// with the CIDR, there being no index) on the real ovsdb-server, whose
// wait semantics the in-memory server's tests (ovntest) only approximate:
// nodes meeting a network at once end with one row and agree on it.
func TestEnsureDHCPOptionsRaceCreatesOne(t *testing.T) {
	clients := []*ovn.Northbound{connect(t), connect(t), connect(t)}
	for round := range 5 {
		network := fmt.Sprintf("dhcp-race-%d", round)
		uuids := make([]string, len(clients))
		errs := make([]error, len(clients))
		var wg sync.WaitGroup
		for i, nb := range clients {
			wg.Add(1)
			go func() {
				defer wg.Done()
				uuids[i], errs[i] = nb.EnsureDHCPOptions(context.Background(), ovn.DHCPOptionsSpec{
					Network: network, CIDR: netip.MustParsePrefix("10.10.0.0/24"),
					Options: map[string]string{"lease_time": "3600", "server_id": "10.10.0.1", "server_mac": "0a:58:0a:0a:00:01", "router": "10.10.0.1"},
				})
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d, client %d: %v", round, i, err)
			}
			if uuids[i] != uuids[0] {
				t.Fatalf("round %d: clients disagree on the row: %v", round, uuids)
			}
		}
		got := strings.Fields(nbctl(t, "--bare", "--columns=_uuid", "find", "DHCP_Options", fmt.Sprintf("external_ids:%q=%q", externalids.Network, network)))
		if len(got) != 1 || got[0] != uuids[0] {
			t.Fatalf("round %d: rows %v, want %s only", round, got, uuids[0])
		}
	}
}
