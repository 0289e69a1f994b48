package attachment_test

import (
	"context"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
	"github.com/ovn-overlay/ovn-overlay/ovs"
	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// The scenario: attachments were made by an earlier daemon (here: rows
// written with raw clients), then a new daemon starts. Its caches are
// filled when it connects, before the store's handlers exist, so only
// Rebuild can tell it about those attachments; from then on the events
// keep the store current. This is what daemon/reconcile.go does, against
// in-memory NB and OVS servers (no root, no OVN processes).

const (
	node      = "node1"
	otherNode = "node2"
)

// attachmentLSP is a port an ADD of node made for id.
func attachmentLSP(uuid, name, node string, id attachment.ID) *nbdb.LogicalSwitchPort {
	ids := id.ExternalIDs()
	ids[externalids.Owner] = externalids.OwnerValue
	ids[externalids.Node] = node
	return &nbdb.LogicalSwitchPort{UUID: uuid, Name: name, Addresses: []string{"0a:58:0a:00:00:01 10.0.0.1"}, ExternalIDs: ids}
}

func warmPort(uuid, name, network, node string) *nbdb.LogicalSwitchPort {
	return &nbdb.LogicalSwitchPort{UUID: uuid, Name: name, ExternalIDs: map[string]string{
		externalids.Owner: externalids.OwnerValue, externalids.Node: node,
		externalids.Network: network, externalids.Warm: "true",
	}}
}

// addOVSPorts puts interfaces (each with a port of the same name) on the
// only bridge, with a raw client, as an earlier daemon's AddPorts left
// them.
func addOVSPorts(t *testing.T, c client.Client, ifaces ...*vswitchd.Interface) {
	t.Helper()
	var bridges []vswitchd.Bridge
	if err := c.List(context.Background(), &bridges); err != nil || len(bridges) != 1 {
		t.Fatalf("bridges %v: %v", bridges, err)
	}
	var models []model.Model
	var ports []string
	for i, iface := range ifaces {
		iface.UUID = "iface" + string(rune('a'+i))
		p := &vswitchd.Port{UUID: "port" + string(rune('a'+i)), Name: iface.Name, Interfaces: []string{iface.UUID},
			ExternalIDs: map[string]string{externalids.Owner: externalids.OwnerValue}}
		models = append(models, iface, p)
		ports = append(ports, p.UUID)
	}
	ops, err := c.Create(models...)
	if err != nil {
		t.Fatal(err)
	}
	br := &vswitchd.Bridge{UUID: bridges[0].UUID}
	mutate, err := c.Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: ovsdb.MutateOperationInsert, Value: ports})
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, c, append(ops, mutate...)...)
}

// mutateSwitch adds (insert) or removes (delete) port UUIDs, creating the
// ports in create in the same transaction.
func mutateSwitch(t *testing.T, c client.Client, ls string, mutator ovsdb.Mutator, uuids []string, create ...model.Model) {
	t.Helper()
	var ops []ovsdb.Operation
	if len(create) > 0 {
		var err error
		if ops, err = c.Create(create...); err != nil {
			t.Fatal(err)
		}
	}
	sw := &nbdb.LogicalSwitch{UUID: ls}
	mutate, err := c.Where(sw).Mutate(sw, model.Mutation{Field: &sw.Ports, Mutator: mutator, Value: uuids})
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, c, append(ops, mutate...)...)
}

func ids(s *attachment.Store) []string {
	var out []string
	for _, id := range s.IDs("") {
		out = append(out, id.String())
	}
	slices.Sort(out)
	return out
}

func idStrings(ids ...attachment.ID) []string {
	var out []string
	for _, id := range ids {
		out = append(out, id.String())
	}
	slices.Sort(out)
	return out
}

func TestRestartedDaemonKnowsEarlierAttachments(t *testing.T) {
	nbEndpoint, ovsEndpoint := ovntest.StartNB(t), ovntest.StartOVS(t)

	var (
		// A: complete (port and interface).
		podA = attachment.ID{Network: "blue", ContainerID: "ctr-a", IfName: "net1"}
		// B: its ADD died after the port, before the OVS port.
		podB = attachment.ID{Network: "blue", ContainerID: "ctr-b", IfName: "net1"}
		// C: its ADD took a warm port and bound it, then died before
		// relabelling it: only the interface carries the identity.
		podC = attachment.ID{Network: "red", ContainerID: "ctr-c", IfName: "net2"}
		// Another node's pod on the shared layer2 switch.
		podO = attachment.ID{Network: "blue", ContainerID: "ctr-o", IfName: "net1"}
		// Its interface exists but is not ours (no owner key).
		podD = attachment.ID{Network: "blue", ContainerID: "ctr-d", IfName: "net1"}
	)
	warmName := "ovn-overlay.blue.prov." + node + ".0001"
	warmOfC := "ovn-overlay.red.prov." + node + ".0002"

	// --- What the earlier daemon left. ---
	raw := ovntest.ConnectNB(t, nbEndpoint)
	ls := &nbdb.LogicalSwitch{UUID: "ls", Name: "ovn-overlay.blue.layer2", ExternalIDs: map[string]string{externalids.Owner: externalids.OwnerValue, externalids.Network: "blue"}}
	rows := []*nbdb.LogicalSwitchPort{
		attachmentLSP("pa", podA.PortName(), node, podA),
		attachmentLSP("pb", podB.PortName(), node, podB),
		attachmentLSP("po", podO.PortName(), otherNode, podO),
		// The same identity as A on another node (a reused container
		// ID): not A's port here.
		attachmentLSP("pa2", "other-node-port-of-a", otherNode, podA),
		warmPort("pw", warmName, "blue", node),
	}
	models := []model.Model{ls}
	for _, r := range rows {
		ls.Ports = append(ls.Ports, r.UUID)
		models = append(models, r)
	}
	ops, err := raw.Create(models...)
	if err != nil {
		t.Fatal(err)
	}
	lsUUID := ovntest.Transact(t, raw, ops...)[0].UUID.GoUUID

	rawOVS := ovntest.ConnectOVS(t, ovsEndpoint)
	owned := func(id attachment.ID, ifaceID string, mine bool) map[string]string {
		m := map[string]string{externalids.IfaceID: ifaceID}
		if mine {
			m[externalids.Owner] = externalids.OwnerValue
		}
		if id != (attachment.ID{}) {
			maps.Copy(m, id.ExternalIDs())
		}
		return m
	}
	addOVSPorts(t, rawOVS,
		&vswitchd.Interface{Name: "ovaaaaaaaaaaaaa", ExternalIDs: owned(podA, podA.PortName(), true)},
		&vswitchd.Interface{Name: "ovccccccccccccc", ExternalIDs: owned(podC, warmOfC, true)},
		&vswitchd.Interface{Name: "foreign0", ExternalIDs: owned(podD, "x", false)},
		&vswitchd.Interface{Name: "ovnoidentity000", ExternalIDs: owned(attachment.ID{}, warmName, true)},
	)

	// --- The new daemon starts: connect (caches filled), handlers, list, rebuild. ---
	nb := ovntest.Northbound(t, nbEndpoint)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o, err := ovs.Connect(ctx, ovsEndpoint, "br-int", logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(o.Close)

	store := attachment.NewStore(node)
	nb.AddPortHandler(store)
	o.AddInterfaceHandler(store)
	// The listing daemon/reconcile.go makes.
	ports, err := nb.Ports(func(p *nbdb.LogicalSwitchPort) bool {
		return p.ExternalIDs[externalids.Node] == node && p.ExternalIDs[externalids.ContainerID] != ""
	})
	if err != nil {
		t.Fatal(err)
	}
	ifaces, err := o.OwnedInterfaces()
	if err != nil {
		t.Fatal(err)
	}
	if len(ports) != 2 || len(ifaces) != 3 {
		t.Fatalf("listed %d ports and %d owned interfaces, want 2 and 3 (caches not filled at connect?)", len(ports), len(ifaces))
	}
	store.Rebuild(ports, ifaces)

	check := func(t *testing.T, s *attachment.Store) {
		t.Helper()
		if got, want := ids(s), idStrings(podA, podB, podC); !slices.Equal(got, want) {
			t.Errorf("IDs() = %v, want %v", got, want)
		}
		if got := s.IDs("red"); len(got) != 1 || got[0] != podC {
			t.Errorf("IDs(red) = %v, want [%v]", got, podC)
		}
		a := s.Get(podA)
		if !slices.Equal(a.Ports, []string{podA.PortName()}) || !maps.Equal(a.Interfaces, map[string]string{"ovaaaaaaaaaaaaa": podA.PortName()}) {
			t.Errorf("Get(A) = %+v, want its port and interface (not node2's port of the same identity)", a)
		}
		if b := s.Get(podB); !slices.Equal(b.Ports, []string{podB.PortName()}) || len(b.Interfaces) != 0 {
			t.Errorf("Get(B) = %+v, want its port only", b)
		}
		// The interface's iface-id is the only record of the warm port
		// C's ADD took: its DEL must find it.
		if c := s.Get(podC); len(c.Ports) != 0 || !maps.Equal(c.Interfaces, map[string]string{"ovccccccccccccc": warmOfC}) {
			t.Errorf("Get(C) = %+v, want the interface bound to %s", c, warmOfC)
		}
		if o := s.Get(podO); !o.Empty() {
			t.Errorf("Get(other node's pod) = %+v, want nothing", o)
		}
		if d := s.Get(podD); !d.Empty() {
			t.Errorf("Get(unowned interface's identity) = %+v, want nothing", d)
		}
	}
	t.Run("rebuilt from the reconcile listing", func(t *testing.T) { check(t, store) })

	// The store's own checks (node, identity, owner) do not depend on the
	// caller's filter: unfiltered listings give the same store.
	t.Run("rebuilt from unfiltered listings", func(t *testing.T) {
		all, err := nb.Ports(func(*nbdb.LogicalSwitchPort) bool { return true })
		if err != nil {
			t.Fatal(err)
		}
		var allIfaces []vswitchd.Interface
		for _, name := range []string{"ovaaaaaaaaaaaaa", "ovccccccccccccc", "foreign0", "ovnoidentity000"} {
			i, ok := o.Interface(name)
			if !ok {
				t.Fatalf("interface %s not in the cache", name)
			}
			allIfaces = append(allIfaces, *i)
		}
		s := attachment.NewStore(node)
		s.Rebuild(all, allIfaces)
		check(t, s)
	})

	// --- After the rebuild, events keep the store current. ---
	podE := attachment.ID{Network: "blue", ContainerID: "ctr-e", IfName: "net1"}
	podF := attachment.ID{Network: "blue", ContainerID: "ctr-f", IfName: "net1"}

	// A new pod's port, with another node's port in the same transaction:
	// once E shows up, the other one has been seen and ignored.
	mutateSwitch(t, raw, lsUUID, ovsdb.MutateOperationInsert, []string{"pe", "pz"},
		attachmentLSP("pe", podE.PortName(), node, podE),
		attachmentLSP("pz", "node2-port", otherNode, attachment.ID{Network: "blue", ContainerID: "ctr-z", IfName: "net1"}))
	ovntest.Eventually(t, "E's port in the store", func() bool {
		return slices.Equal(store.Get(podE).Ports, []string{podE.PortName()})
	})
	if got, want := ids(store), idStrings(podA, podB, podC, podE); !slices.Equal(got, want) {
		t.Errorf("after adding E and node2's port: IDs() = %v, want %v", got, want)
	}

	// A warm port relabelled for pod F.
	cached, ok := nb.Port(warmName)
	if !ok {
		t.Fatal("warm port not in the cache")
	}
	relabelled := *cached
	relabelled.ExternalIDs = maps.Clone(cached.ExternalIDs)
	delete(relabelled.ExternalIDs, externalids.Warm)
	maps.Copy(relabelled.ExternalIDs, podF.ExternalIDs())
	update, err := raw.Where(&nbdb.LogicalSwitchPort{UUID: cached.UUID}).Update(&relabelled, &relabelled.ExternalIDs)
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, raw, update...)
	ovntest.Eventually(t, "relabelled warm port under F", func() bool {
		return slices.Equal(store.Get(podF).Ports, []string{warmName})
	})

	// E's OVS port, as ADD plugs it.
	if err := o.AddPorts(ctx, []ovs.PortSpec{{Name: "oveeeeeeeeeeeee", IfaceID: podE.PortName(), ExternalIDs: podE.ExternalIDs()}}); err != nil {
		t.Fatal(err)
	}
	ovntest.Eventually(t, "E's interface in the store", func() bool {
		return maps.Equal(store.Get(podE).Interfaces, map[string]string{"oveeeeeeeeeeeee": podE.PortName()})
	})

	// A DEL of A: the port goes first, the entry stays while the
	// interface is there; then the OVS port goes and so does A.
	portA, ok := nb.Port(podA.PortName())
	if !ok {
		t.Fatal("A's port not in the cache")
	}
	mutateSwitch(t, raw, lsUUID, ovsdb.MutateOperationDelete, []string{portA.UUID})
	ovntest.Eventually(t, "A's port gone from the store", func() bool { return len(store.Get(podA).Ports) == 0 })
	if a := store.Get(podA); len(a.Interfaces) != 1 {
		t.Errorf("A's interface forgotten with its port: %+v", a)
	}
	if err := o.DeletePort(ctx, "ovaaaaaaaaaaaaa"); err != nil {
		t.Fatal(err)
	}
	ovntest.Eventually(t, "A gone from IDs()", func() bool { return !slices.Contains(store.IDs(""), podA) })
	if got, want := ids(store), idStrings(podB, podC, podE, podF); !slices.Equal(got, want) {
		t.Errorf("at the end: IDs() = %v, want %v", got, want)
	}
	if s := strings.Join(ids(store), " "); strings.Contains(s, "ctr-z") || strings.Contains(s, "ctr-o") || strings.Contains(s, "ctr-d") {
		t.Errorf("store holds identities that are not this node's attachments: %s", s)
	}
}
