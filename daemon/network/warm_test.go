package network

import (
	"context"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

func warmLSP(name string) *nbdb.LogicalSwitchPort {
	return &nbdb.LogicalSwitchPort{Name: name, Addresses: []string{"0a:58:0a:00:00:05 10.0.0.5"},
		ExternalIDs: map[string]string{externalids.Warm: "true", externalids.Node: "node1", externalids.Addresses: "10.0.0.5/24"}}
}

// The pool's bookkeeping decides whether a port can be handed to two pods:
// each step is an event or an ADD, in the order they can happen.
func TestWarmPoolNeverHandsOutAPortTwice(t *testing.T) {
	type step struct {
		op   string // offer, take, forget, drop, hold
		port string
		// for take: the port expected, "" for none
		want string
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{name: "offered port is taken once", steps: []step{
			{op: "offer", port: "a"}, {op: "take", want: "a"}, {op: "take", want: ""},
		}},
		{name: "late event with the warm state does not free a taken port", steps: []step{
			{op: "offer", port: "a"}, {op: "take", want: "a"},
			{op: "forget", port: "a"}, {op: "offer", port: "a"}, {op: "take", want: ""},
		}},
		{name: "a port bound at start is held", steps: []step{
			{op: "hold", port: "a"}, {op: "offer", port: "a"}, {op: "take", want: ""},
		}},
		{name: "a deleted port is gone for good", steps: []step{
			{op: "offer", port: "a"}, {op: "drop", port: "a"}, {op: "take", want: ""},
		}},
		{name: "an update's old side forgets, its new side offers again", steps: []step{
			{op: "offer", port: "a"}, {op: "forget", port: "a"}, {op: "offer", port: "a"}, {op: "take", want: "a"},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWarmPool("net", 8)
			for i, s := range tt.steps {
				switch s.op {
				case "offer":
					w.offer(warmLSP(s.port))
				case "forget":
					w.forget(s.port)
				case "drop":
					w.drop(s.port)
				case "hold":
					w.hold(s.port)
				case "take":
					lsp, ok := w.take()
					got := ""
					if ok {
						got = lsp.Name
					}
					if got != s.want {
						t.Fatalf("step %d: take() = %q, want %q", i, got, s.want)
					}
				}
			}
		})
	}
}

func TestAdoptedPortCarriesThePodNotTheWarmMark(t *testing.T) {
	warm := warmLSP("ovn-overlay.net.prov.node1.abc")
	got := adoptedPort(warm, PortRequest{ExternalIDs: map[string]string{externalids.ContainerID: "c1", externalids.IfName: "net1"}})
	if IsWarm(got) {
		t.Error("adopted port still carries the warm mark")
	}
	if got.ExternalIDs[externalids.ContainerID] != "c1" || got.ExternalIDs[externalids.Addresses] != "10.0.0.5/24" || got.Name != warm.Name {
		t.Errorf("adopted port = %+v, want the pod's identity, the warm port's name and addresses", got)
	}
	if !IsWarm(warm) {
		t.Error("adoptedPort changed the cached warm port it was given")
	}
	r := WarmResult(got)
	if r.Err != nil || r.MAC.String() != "0a:58:0a:00:00:05" || len(r.Addrs) != 1 || r.Addrs[0].String() != "10.0.0.5/24" {
		t.Errorf("warmResult = %+v", r)
	}
}

// TestTakeNamedWaitsForAPortOnItsWay: a static request for an address a
// refill has just committed finds the warm port once its cache event
// offers it; a port an ADD holds, or one that never comes, is not waited
// for past the limit.
func TestTakeNamedWaitsForAPortOnItsWay(t *testing.T) {
	offer := func(w *warmPool) { w.offer(warmLSP("p")) }
	tests := []struct {
		name   string
		before func(w *warmPool) // before the wait starts
		during func(w *warmPool) // 50 ms into the wait
		want   bool
		atMost time.Duration
	}{
		{name: "offered during the wait", during: offer, want: true, atMost: 250 * time.Millisecond},
		{name: "already free", before: offer, want: true, atMost: 50 * time.Millisecond},
		{name: "held by an ADD", before: func(w *warmPool) { w.hold("p") }, want: false, atMost: 50 * time.Millisecond},
		{name: "never comes", want: false, atMost: 450 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWarmPool("n", 8)
			if tt.before != nil {
				tt.before(w)
			}
			if tt.during != nil {
				go func() { time.Sleep(50 * time.Millisecond); tt.during(w) }()
			}
			start := time.Now()
			lsp, ok := w.takeNamedWait(context.Background(), "p", 300*time.Millisecond)
			if took := time.Since(start); ok != tt.want || took > tt.atMost || (ok && lsp.Name != "p") {
				t.Fatalf("got %v, %v after %s; want %v within %s", lsp, ok, took, tt.want, tt.atMost)
			}
			if _, again := w.takeNamed("p"); ok && again {
				t.Fatal("the port was handed out twice")
			}
		})
	}
}
