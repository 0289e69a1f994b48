package network

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
)

// TestOneBadRequestFailsOnlyItself: a port whose name another system's
// row already holds fails, clearly, and its batch-mates are committed.
// (Before, the whole group-commit batch failed with it.)
func TestOneBadRequestFailsOnlyItself(t *testing.T) {
	endpoint := startSetNB(t)
	node := simNodeWith(t, endpoint, "node-a", Options{}, nil)
	conf := l2conf(t, "l2-batch", "10.201.0.0/24")
	n, err := node.Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	victim := podReq(conf.Name, "node-a", "victim")
	// Someone else's port (no owner key) on someone else's switch, with
	// the very name this ADD will use.
	raw := ovntest.ConnectNB(t, endpoint)
	foreign, _ := raw.Create(
		&nbdb.LogicalSwitchPort{UUID: "foreignport", Name: victim.Name},
		&nbdb.LogicalSwitch{UUID: "foreignswitch", Name: "someone-elses", Ports: []string{"foreignport"}},
	)
	ovntest.Transact(t, raw, foreign...)

	// Held, the first ADD's transaction blocks in the server and the rest
	// queue behind it: the victim and its mates form one batch.
	done := ovntest.HoldNB(t, endpoint, 300*time.Millisecond)
	reqs := []PortRequest{podReq(conf.Name, "node-a", "first")}
	results := make([]PortResult, 4)
	var wg sync.WaitGroup
	run := func(i int, req PortRequest) {
		defer wg.Done()
		results[i] = n.CreatePort(context.Background(), req)
	}
	wg.Add(1)
	go run(0, reqs[0])
	time.Sleep(50 * time.Millisecond)
	for i, req := range []PortRequest{podReq(conf.Name, "node-a", "mate1"), victim, podReq(conf.Name, "node-a", "mate2")} {
		wg.Add(1)
		go run(i+1, req)
	}
	<-done
	wg.Wait()

	for i, r := range results {
		isVictim := i == 2
		switch {
		case isVictim && !errors.Is(r.Err, ovn.ErrNameTaken):
			t.Errorf("the port whose name is taken: %v, want an error wrapping ovn.ErrNameTaken", r.Err)
		case !isVictim && r.Err != nil:
			t.Errorf("batch-mate %d failed with the bad request: %v", i, r.Err)
		}
	}
	ports := committedPorts(t, endpoint)
	for _, ctr := range []string{"first", "mate1", "mate2"} {
		if _, ok := ports[podReq(conf.Name, "node-a", ctr).Name]; !ok {
			t.Errorf("port of %s not committed", ctr)
		}
	}
}

// TestMACsAreUniquePerSwitch: a requested MAC another port of the switch
// holds (ours or anyone's, on any node) is refused clearly; two ports with
// one MAC on one switch break both. (Before, it was accepted.)
func TestMACsAreUniquePerSwitch(t *testing.T) {
	endpoint := startSetNB(t)
	a := simNodeWith(t, endpoint, "node-a", Options{}, nil)
	b := simNodeWith(t, endpoint, "node-b", Options{}, nil)
	conf := l2conf(t, "l2-macs", "10.202.0.0/24")
	na, err := a.Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	mac, _ := net.ParseMAC("0a:58:0a:ca:00:63")
	first := podReq(conf.Name, "node-a", "first")
	first.MAC = mac
	if r := na.CreatePort(context.Background(), first); r.Err != nil || r.MAC.String() != mac.String() {
		t.Fatalf("first port with %s: %+v", mac, r)
	}
	nb, err := b.Get(context.Background(), conf)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		n    *Network
	}{{"same node", na}, {"other node", nb}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := podReq(conf.Name, "node-x", "second-"+tt.name)
			req.MAC = mac
			// Node b connected after the first port was committed, so
			// its cache (and index) start with it.
			r := tt.n.CreatePort(context.Background(), req)
			if r.Err == nil || !strings.Contains(r.Err.Error(), "MAC "+mac.String()+" is already used") || !strings.Contains(r.Err.Error(), first.Name) {
				t.Errorf("second port with %s: %v, want an error naming the MAC and the port holding it", mac, r.Err)
			}
		})
	}
}
