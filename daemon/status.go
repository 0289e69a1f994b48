package daemon

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/netconf"
)

// statusProbe bounds each look at a connection. A connection counts as up
// only if its server answers an echo within it: libovsdb's own connected
// flag stays true while the client reconnects (the fault suite saw STATUS
// report ready through a whole NB outage), and a runtime's STATUS must not
// wait for an outage to end.
const statusProbe = 300 * time.Millisecond

// Status tells the runtime whether ADD can succeed now (CNI 1.1 STATUS):
// code 50 with every reason it cannot, answered within about statusProbe.
// STATUS carries the network's config: for a localnet network, a node
// whose Open_vSwitch does not map its physical network cannot serve it.
func (d *Daemon) Status(config []byte) error {
	select {
	case <-d.ready:
	default:
		return notAvailable([]string{*d.waiting.Load()})
	}
	echo := func(alive func(context.Context) bool) func() bool {
		return func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), statusProbe)
			defer cancel()
			return alive(ctx)
		}
	}
	checks := []struct {
		ok      func() bool
		problem string
	}{
		{echo(d.nb.Alive), "not connected to the OVN Northbound database"},
		{echo(d.sb.Alive), "not connected to the OVN Southbound database"},
		{echo(d.ovs.Alive), "not connected to the local Open_vSwitch database"},
		{d.sb.ChassisRegistered, "ovn-controller has not registered this node's chassis in the Southbound database"},
	}
	failed := make([]bool, len(checks))
	var wg sync.WaitGroup
	for i, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			failed[i] = !within(c.ok, statusProbe)
		}()
	}
	wg.Wait()
	var problems []string
	for i, c := range checks {
		// A chassis the SB cannot be asked about is not news.
		if failed[i] && !(i == 3 && failed[1]) {
			problems = append(problems, c.problem)
		}
	}
	d.publishPhysicalNetworks()
	if conf, err := netconf.Parse(config); err == nil {
		if conf.Topology == netconf.Localnet {
			if _, err := d.physicalBridge(conf); err != nil {
				problems = append(problems, err.Error())
			}
		}
		if err := d.networks.CheckExternal(conf); err != nil {
			problems = append(problems, err.Error())
		}
	}
	if len(problems) > 0 {
		return notAvailable(problems)
	}
	return nil
}

func notAvailable(problems []string) error {
	return types.NewError(cniproto.ErrPluginNotAvailable, "ovn-overlay cannot attach pods: "+strings.Join(problems, "; "), "")
}

// within runs f and reports its answer, or false if it takes longer than
// limit (f goes on in the background and its answer is dropped).
func within(f func() bool, limit time.Duration) bool {
	answer := make(chan bool, 1)
	go func() { answer <- f() }()
	t := time.NewTimer(limit)
	defer t.Stop()
	select {
	case ok := <-answer:
		return ok
	case <-t.C:
		return false
	}
}
