package attachment

import (
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// Pure tests of the store's event handlers: each step is a cache event or
// a verb's note, in an order the caches and verbs can produce.

const testNode = "node1"

// lspOf is a logical switch port on node carrying id (the zero ID: none)
// plus extra keys.
func lspOf(name, node string, id ID, extra map[string]string) *nbdb.LogicalSwitchPort {
	ids := map[string]string{externalids.Owner: externalids.OwnerValue, externalids.Node: node}
	if id != (ID{}) {
		maps.Copy(ids, id.ExternalIDs())
	}
	maps.Copy(ids, extra)
	return &nbdb.LogicalSwitchPort{UUID: "uuid-" + name, Name: name, ExternalIDs: ids}
}

// warmLSP is a warm port: network and node, no pod identity.
func warmLSP(name, network, node string) *nbdb.LogicalSwitchPort {
	return &nbdb.LogicalSwitchPort{UUID: "uuid-" + name, Name: name, ExternalIDs: map[string]string{
		externalids.Owner: externalids.OwnerValue, externalids.Node: node,
		externalids.Network: network, externalids.Warm: "true",
	}}
}

// ifaceOf is an OVS interface bound to ifaceID, carrying id, owned by us
// or not.
func ifaceOf(name, ifaceID string, id ID, owned bool) *vswitchd.Interface {
	ids := map[string]string{externalids.IfaceID: ifaceID}
	if owned {
		ids[externalids.Owner] = externalids.OwnerValue
	}
	if id != (ID{}) {
		maps.Copy(ids, id.ExternalIDs())
	}
	return &vswitchd.Interface{UUID: "uuid-" + name, Name: name, ExternalIDs: ids}
}

var (
	pod1 = ID{Network: "blue", ContainerID: "c1", IfName: "net1"}
	pod2 = ID{Network: "blue", ContainerID: "c2", IfName: "net1"}
	pod3 = ID{Network: "red", ContainerID: "c1", IfName: "net2"}
)

func sortedIDs(ids []ID) []ID {
	return slices.SortedFunc(slices.Values(ids), func(a, b ID) int {
		switch {
		case a.String() < b.String():
			return -1
		case a.String() > b.String():
			return 1
		}
		return 0
	})
}

func wantPorts(t *testing.T, s *Store, id ID, want ...string) {
	t.Helper()
	if got := s.Get(id).Ports; !slices.Equal(got, want) && !(len(got) == 0 && len(want) == 0) {
		t.Errorf("Get(%v).Ports = %v, want %v", id, got, want)
	}
}

func wantIDs(t *testing.T, s *Store, network string, want ...ID) {
	t.Helper()
	got := sortedIDs(s.IDs(network))
	want = sortedIDs(want)
	if !slices.Equal(got, want) {
		t.Errorf("IDs(%q) = %v, want %v", network, got, want)
	}
}

func TestPortEvents(t *testing.T) {
	t.Run("this node's attachment port is recorded, deleted port forgotten", func(t *testing.T) {
		s := NewStore(testNode)
		p := lspOf("p1", testNode, pod1, nil)
		s.PortAdded(p)
		wantPorts(t, s, pod1, "p1")
		wantIDs(t, s, "", pod1)
		s.PortDeleted(p)
		wantPorts(t, s, pod1)
		// Nothing left: the entry goes, so IDs() does not grow with
		// every attachment ever seen.
		wantIDs(t, s, "")
	})

	t.Run("another node's port is ignored", func(t *testing.T) {
		// A layer2 switch is shared: the same identity on another node
		// (a container ID reused, or a test) is not ours to DEL.
		s := NewStore(testNode)
		s.PortAdded(lspOf("p1", "node2", pod1, nil))
		s.PortAdded(lspOf("p2", "", pod1, nil))
		wantIDs(t, s, "")
		// Its deletion does not touch our entry for the same identity.
		s.PortAdded(lspOf("mine", testNode, pod1, nil))
		s.PortDeleted(lspOf("mine", "node2", pod1, nil))
		wantPorts(t, s, pod1, "mine")
	})

	t.Run("warm port is ignored", func(t *testing.T) {
		// No container ID: not an attachment until a pod takes it.
		s := NewStore(testNode)
		w := warmLSP("prov1", "blue", testNode)
		s.PortAdded(w)
		s.PortDeleted(w)
		wantIDs(t, s, "")
	})

	t.Run("relabel of a warm port adds it to the pod", func(t *testing.T) {
		s := NewStore(testNode)
		w := warmLSP("prov1", "blue", testNode)
		s.PortAdded(w)
		taken := lspOf("prov1", testNode, pod1, nil)
		s.PortUpdated(w, taken)
		wantPorts(t, s, pod1, "prov1")
		wantIDs(t, s, "", pod1)
		// Northd updates every port it binds: an update that keeps the
		// identity keeps the port.
		s.PortUpdated(taken, lspOf("prov1", testNode, pod1, map[string]string{"northd": "x"}))
		wantPorts(t, s, pod1, "prov1")
	})

	t.Run("identity change moves the port", func(t *testing.T) {
		s := NewStore(testNode)
		before := lspOf("p", testNode, pod1, nil)
		s.PortAdded(before)
		after := lspOf("p", testNode, pod2, nil)
		s.PortUpdated(before, after)
		wantPorts(t, s, pod1)
		wantPorts(t, s, pod2, "p")
		wantIDs(t, s, "", pod2)
	})

	t.Run("losing the identity or moving node forgets the port", func(t *testing.T) {
		s := NewStore(testNode)
		p := lspOf("p", testNode, pod1, nil)
		s.PortAdded(p)
		s.PortUpdated(p, warmLSP("p", "blue", testNode))
		wantIDs(t, s, "")

		s.PortAdded(p)
		s.PortUpdated(p, lspOf("p", "node2", pod1, nil))
		wantIDs(t, s, "")
	})

	t.Run("one identity, several ports", func(t *testing.T) {
		// A cold port and a warm port relabelled by a retried ADD can
		// both carry the identity; DEL must find both.
		s := NewStore(testNode)
		s.PortAdded(lspOf("b", testNode, pod1, nil))
		s.PortAdded(lspOf("a", testNode, pod1, nil))
		wantPorts(t, s, pod1, "a", "b")
		s.PortDeleted(lspOf("a", testNode, pod1, nil))
		wantPorts(t, s, pod1, "b")
		wantIDs(t, s, "", pod1)
	})

	t.Run("RecordPort ahead of the event, then the event", func(t *testing.T) {
		s := NewStore(testNode)
		s.RecordPort(pod1, "p")
		s.PortAdded(lspOf("p", testNode, pod1, nil)) // recorded twice: harmless
		wantPorts(t, s, pod1, "p")
		s.PortDeleted(lspOf("p", testNode, pod1, nil))
		wantIDs(t, s, "")
	})
}

func TestInterfaceEvents(t *testing.T) {
	t.Run("owned interface with identity is recorded with its iface-id", func(t *testing.T) {
		s := NewStore(testNode)
		i := ifaceOf("ov1", "lsp1", pod1, true)
		s.InterfaceAdded(i)
		if got := s.Get(pod1).Interfaces; !maps.Equal(got, map[string]string{"ov1": "lsp1"}) {
			t.Errorf("Interfaces = %v, want ov1 -> lsp1", got)
		}
		s.InterfaceDeleted(i)
		wantIDs(t, s, "")
	})

	t.Run("interface without the owner key is ignored", func(t *testing.T) {
		// Someone else's interface carrying our keys is not ours to
		// delete.
		s := NewStore(testNode)
		s.InterfaceAdded(ifaceOf("ov1", "lsp1", pod1, false))
		wantIDs(t, s, "")
	})

	t.Run("owned interface without identity is ignored", func(t *testing.T) {
		s := NewStore(testNode)
		s.InterfaceAdded(ifaceOf("ov1", "lsp1", ID{}, true))
		wantIDs(t, s, "")
	})

	t.Run("iface-id change follows", func(t *testing.T) {
		s := NewStore(testNode)
		old := ifaceOf("ov1", "prov1", pod1, true)
		s.InterfaceAdded(old)
		s.InterfaceUpdated(old, ifaceOf("ov1", "lsp1", pod1, true))
		if got := s.Get(pod1).Interfaces; !maps.Equal(got, map[string]string{"ov1": "lsp1"}) {
			t.Errorf("Interfaces = %v, want ov1 -> lsp1", got)
		}
	})

	t.Run("update that gains the identity adds, that changes it moves", func(t *testing.T) {
		s := NewStore(testNode)
		bare := ifaceOf("ov1", "lsp1", ID{}, true)
		s.InterfaceAdded(bare)
		with1 := ifaceOf("ov1", "lsp1", pod1, true)
		s.InterfaceUpdated(bare, with1)
		wantIDs(t, s, "", pod1)
		s.InterfaceUpdated(with1, ifaceOf("ov1", "lsp1", pod2, true))
		wantIDs(t, s, "", pod2)
		if got := s.Get(pod2).Interfaces; !maps.Equal(got, map[string]string{"ov1": "lsp1"}) {
			t.Errorf("Interfaces = %v", got)
		}
	})

	t.Run("update that loses the owner key forgets", func(t *testing.T) {
		s := NewStore(testNode)
		i := ifaceOf("ov1", "lsp1", pod1, true)
		s.InterfaceAdded(i)
		s.InterfaceUpdated(i, ifaceOf("ov1", "lsp1", pod1, false))
		wantIDs(t, s, "")
	})

	t.Run("deleting an unowned interface does not touch ours", func(t *testing.T) {
		s := NewStore(testNode)
		s.InterfaceAdded(ifaceOf("ov1", "lsp1", pod1, true))
		s.InterfaceDeleted(ifaceOf("ov1", "lsp1", pod1, false))
		wantIDs(t, s, "", pod1)
	})
}

// An entry lives while anything belongs to it and no longer: host links,
// ports and interfaces each keep it alive.
func TestEntriesVanishWhenEmpty(t *testing.T) {
	s := NewStore(testNode)
	p := lspOf("p", testNode, pod1, nil)
	i := ifaceOf("ov1", "p", pod1, true)

	s.RecordHostLink(pod1, "ov1")
	s.PortAdded(p)
	s.InterfaceAdded(i)
	got := s.Get(pod1)
	if !slices.Equal(got.Ports, []string{"p"}) || !maps.Equal(got.Interfaces, map[string]string{"ov1": "p"}) || !slices.Equal(got.HostLinks, []string{"ov1"}) || got.Empty() {
		t.Fatalf("Get = %+v", got)
	}

	s.PortDeleted(p)
	wantIDs(t, s, "", pod1)
	s.InterfaceDeleted(i)
	wantIDs(t, s, "", pod1) // the host link is still there
	if hl := s.Get(pod1).HostLinks; !slices.Equal(hl, []string{"ov1"}) {
		t.Errorf("HostLinks = %v", hl)
	}
	s.ForgetHostLink(pod1, "ov1")
	wantIDs(t, s, "")
	if got := s.Get(pod1); !got.Empty() {
		t.Errorf("Get after everything went = %+v, want empty", got)
	}

	// Forgetting what was never recorded neither creates nor breaks an
	// entry.
	s.ForgetHostLink(pod2, "nope")
	s.PortDeleted(lspOf("nope", testNode, pod2, nil))
	s.InterfaceDeleted(ifaceOf("nope", "x", pod2, true))
	wantIDs(t, s, "")
}

// Get hands out copies: a verb editing what it got must not edit the store.
func TestGetReturnsCopies(t *testing.T) {
	s := NewStore(testNode)
	s.PortAdded(lspOf("p", testNode, pod1, nil))
	s.InterfaceAdded(ifaceOf("ov1", "p", pod1, true))
	got := s.Get(pod1)
	got.Ports[0] = "changed"
	got.Interfaces["ov1"] = "changed"
	got.Interfaces["extra"] = "x"
	again := s.Get(pod1)
	if again.Ports[0] != "p" || again.Interfaces["ov1"] != "p" || len(again.Interfaces) != 1 {
		t.Errorf("store changed through Get's result: %+v", again)
	}
}

func TestIDsFiltersByNetwork(t *testing.T) {
	s := NewStore(testNode)
	s.PortAdded(lspOf("p1", testNode, pod1, nil))
	s.PortAdded(lspOf("p2", testNode, pod2, nil))
	s.RecordHostLink(pod3, "ov3")
	wantIDs(t, s, "", pod1, pod2, pod3)
	wantIDs(t, s, "blue", pod1, pod2)
	wantIDs(t, s, "red", pod3)
	wantIDs(t, s, "green")
}

// Verbs of one attachment never interleave: an ADD's clean-up, a DEL and
// a CHECK of the same identity each see the others' whole effect.
func TestLockSerialisesOneID(t *testing.T) {
	s := NewStore(testNode)
	const workers, rounds = 8, 50
	var holders, maxHolders, total atomic.Int32
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				unlock := s.Lock(ID{Network: "blue", ContainerID: "c1", IfName: "net1"}) // equal value, fresh struct
				n := holders.Add(1)
				for {
					m := maxHolders.Load()
					if n <= m || maxHolders.CompareAndSwap(m, n) {
						break
					}
				}
				if r%10 == 0 {
					time.Sleep(100 * time.Microsecond) // widen the window
				}
				total.Add(1)
				holders.Add(-1)
				unlock()
			}
		}()
	}
	wg.Wait()
	if m := maxHolders.Load(); m != 1 {
		t.Fatalf("%d goroutines held the lock of one ID at once, want 1", m)
	}
	if total.Load() != workers*rounds {
		t.Fatalf("%d critical sections ran, want %d", total.Load(), workers*rounds)
	}
	// Every lock was released: the table of held locks is empty again
	// (it would otherwise grow with every attachment ever locked).
	s.locks.mu.Lock()
	left := len(s.locks.held)
	s.locks.mu.Unlock()
	if left != 0 {
		t.Errorf("%d lock entries left after every unlock", left)
	}
}

// Different attachments run fully in parallel: a slow verb on one pod must
// not hold up another's.
func TestLockDifferentIDsDoNotBlock(t *testing.T) {
	s := NewStore(testNode)
	unlock1 := s.Lock(pod1)
	defer func() { unlock1() }() // unlock1 is replaced once released below

	got := make(chan struct{})
	go func() {
		unlock2 := s.Lock(pod2)
		close(got)
		unlock2()
	}()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("Lock(pod2) blocked while pod1 was held")
	}

	// And the same ID does block until it is released.
	again := make(chan struct{})
	go func() {
		unlock := s.Lock(pod1)
		close(again)
		unlock()
	}()
	select {
	case <-again:
		t.Fatal("Lock(pod1) succeeded while pod1 was held")
	case <-time.After(50 * time.Millisecond):
	}
	unlock1()
	unlock1 = func() {}
	select {
	case <-again:
	case <-time.After(5 * time.Second):
		t.Fatal("Lock(pod1) still blocked after the holder released it")
	}
}
