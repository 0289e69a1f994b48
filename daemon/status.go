package daemon

import (
	"strings"
	"sync"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
)

// statusProbe bounds each look at a connection: libovsdb's Connected waits
// for a lock its reconnect loop holds while it tries endpoints, and a
// runtime's STATUS must not wait for an outage to end. A connection that
// does not answer in time is reconnecting: not connected.
const statusProbe = 300 * time.Millisecond

// Status tells the runtime whether ADD can succeed now (CNI 1.1 STATUS):
// code 50 with every reason it cannot, answered within about statusProbe.
func (d *Daemon) Status() error {
	select {
	case <-d.ready:
	default:
		return notAvailable([]string{*d.waiting.Load()})
	}
	checks := []struct {
		ok      func() bool
		problem string
	}{
		{d.nb.Connected, "not connected to the OVN Northbound database"},
		{d.sb.Connected, "not connected to the OVN Southbound database"},
		{d.ovs.Connected, "not connected to the local Open_vSwitch database"},
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
