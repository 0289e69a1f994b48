package daemon

import (
	"fmt"

	ofctl "github.com/digitalocean/go-openvswitch/ovs"

	"github.com/ovn-overlay/ovn-overlay/daemon/diagnose"
)

// ofctlView is the port's ingress flow and counters as ovs-ofctl shows
// them, through go-openvswitch. Diagnosis only: it forks ovs-ofctl, which
// CHECK must not. Either part is left out when ovs-ofctl is missing or its
// output does not parse (go-openvswitch does not know every action OVN
// uses, which is why the counts come from the native query).
func ofctlView(socket string, ofport int) (ingress []string, counters *diagnose.PortCounters) {
	c := ofctl.New(ofctl.Timeout(5), ofctl.Protocols([]string{ofctl.ProtocolOpenFlow13}))
	target := "unix:" + socket
	if flows, err := c.OpenFlow.DumpFlowsWithFlowArgs(target, &ofctl.MatchFlow{InPort: ofport, Table: 0}); err == nil {
		for _, f := range flows {
			text, err := f.MarshalText()
			if err != nil {
				continue
			}
			ingress = append(ingress, fmt.Sprintf("%s n_packets=%d n_bytes=%d", text, f.Stats.PacketCount, f.Stats.ByteCount))
		}
	}
	if s, err := c.OpenFlow.DumpPort(target, fmt.Sprint(ofport)); err == nil {
		counters = &diagnose.PortCounters{
			RxPackets: s.Received.Packets, RxDropped: s.Received.Dropped, RxErrors: s.Received.Errors,
			TxPackets: s.Transmitted.Packets, TxDropped: s.Transmitted.Dropped, TxErrors: s.Transmitted.Errors,
		}
	}
	return ingress, counters
}
