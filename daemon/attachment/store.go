package attachment

import (
	"maps"
	"slices"
	"sync"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// Objects is what belongs to one attachment on this node. The names are
// what the caches said when they were recorded: a verb looks each one up
// again and checks its identity before it acts on it.
type Objects struct {
	// Ports are the logical switch ports carrying the identity: the port
	// ADD created, or the warm port it took once relabelled.
	Ports []string
	// Interfaces maps the attachment's OVS interfaces (each also the name
	// of a host veth) to the logical port each is bound to (iface-id).
	// The iface-id is the only record of a warm port whose ADD died
	// before relabelling it.
	Interfaces map[string]string
	// HostLinks are host veths ADD created for the attachment, whether or
	// not their OVS interface exists yet.
	HostLinks []string
}

// Empty reports whether nothing is known to belong to the attachment.
func (o Objects) Empty() bool {
	return len(o.Ports) == 0 && len(o.Interfaces) == 0 && len(o.HostLinks) == 0
}

type entry struct {
	ports     map[string]bool
	ifaces    map[string]string
	hostLinks map[string]bool
}

func (e *entry) empty() bool { return len(e.ports) == 0 && len(e.ifaces) == 0 && len(e.hostLinks) == 0 }

// Store maps this node's attachment identities to their objects. It is fed
// by the NB port events and OVS interface events (it implements both
// handler interfaces), rebuilt from full cache listings at start, and told
// by ADD and DEL about the host veths they create and remove.
type Store struct {
	node    string
	mu      sync.Mutex
	entries map[ID]*entry
	locks   locks
}

// NewStore returns an empty store for node's attachments.
func NewStore(node string) *Store {
	return &Store{node: node, entries: map[ID]*entry{}}
}

// Lock serialises verbs on id; call the returned function when done.
func (s *Store) Lock(id ID) (unlock func()) { return s.locks.lock(id) }

// Get returns what belongs to id.
func (s *Store) Get(id ID) Objects {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil {
		return Objects{}
	}
	return Objects{
		Ports:      slices.Sorted(maps.Keys(e.ports)),
		Interfaces: maps.Clone(e.ifaces),
		HostLinks:  slices.Sorted(maps.Keys(e.hostLinks)),
	}
}

// IDs returns every identity the store knows, of one network ("" for all).
func (s *Store) IDs(network string) []ID {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ID
	for id := range s.entries {
		if network == "" || id.Network == network {
			out = append(out, id)
		}
	}
	return out
}

// edit runs f on id's entry, creating it if needed and dropping it when
// nothing is left.
func (s *Store) edit(id ID, f func(*entry)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e := s.entries[id]
	if e == nil {
		e = &entry{ports: map[string]bool{}, ifaces: map[string]string{}, hostLinks: map[string]bool{}}
		s.entries[id] = e
	}
	f(e)
	if e.empty() {
		delete(s.entries, id)
	}
}

// RecordPort notes that logical switch port name serves id, ahead of the
// cache event that will say the same.
func (s *Store) RecordPort(id ID, name string) {
	s.edit(id, func(e *entry) { e.ports[name] = true })
}

// RecordHostLink notes a host veth ADD created for id.
func (s *Store) RecordHostLink(id ID, name string) {
	s.edit(id, func(e *entry) { e.hostLinks[name] = true })
}

// ForgetHostLink notes that a host veth of id is gone.
func (s *Store) ForgetHostLink(id ID, name string) {
	s.edit(id, func(e *entry) { delete(e.hostLinks, name) })
}

// mine tells this node's attachment ports from other nodes' (a layer2
// switch is shared) and from ports that are not attachments.
func (s *Store) portID(lsp *nbdb.LogicalSwitchPort) (ID, bool) {
	if lsp.ExternalIDs[externalids.Node] != s.node {
		return ID{}, false
	}
	return FromExternalIDs(lsp.ExternalIDs)
}

// PortAdded records a port that carries one of this node's identities.
func (s *Store) PortAdded(lsp *nbdb.LogicalSwitchPort) {
	if id, ok := s.portID(lsp); ok {
		s.RecordPort(id, lsp.Name)
	}
}

// PortUpdated follows a relabel: a warm port gaining a pod's identity.
func (s *Store) PortUpdated(old, lsp *nbdb.LogicalSwitchPort) {
	oldID, hadID := s.portID(old)
	newID, hasID := s.portID(lsp)
	if hadID && (!hasID || oldID != newID || old.Name != lsp.Name) {
		s.edit(oldID, func(e *entry) { delete(e.ports, old.Name) })
	}
	if hasID {
		s.RecordPort(newID, lsp.Name)
	}
}

// PortDeleted forgets a port.
func (s *Store) PortDeleted(lsp *nbdb.LogicalSwitchPort) {
	if id, ok := s.portID(lsp); ok {
		s.edit(id, func(e *entry) { delete(e.ports, lsp.Name) })
	}
}

func ifaceID(iface *vswitchd.Interface) (ID, bool) {
	if iface.ExternalIDs[externalids.Owner] != externalids.OwnerValue {
		return ID{}, false
	}
	return FromExternalIDs(iface.ExternalIDs)
}

// InterfaceAdded records one of our OVS interfaces.
func (s *Store) InterfaceAdded(iface *vswitchd.Interface) {
	if id, ok := ifaceID(iface); ok {
		s.edit(id, func(e *entry) { e.ifaces[iface.Name] = iface.ExternalIDs[externalids.IfaceID] })
	}
}

// InterfaceUpdated follows an interface's external_ids.
func (s *Store) InterfaceUpdated(old, iface *vswitchd.Interface) {
	if id, ok := ifaceID(old); ok {
		if nid, ok := ifaceID(iface); !ok || nid != id {
			s.edit(id, func(e *entry) { delete(e.ifaces, old.Name) })
		}
	}
	s.InterfaceAdded(iface)
}

// InterfaceDeleted forgets an interface.
func (s *Store) InterfaceDeleted(iface *vswitchd.Interface) {
	if id, ok := ifaceID(iface); ok {
		s.edit(id, func(e *entry) { delete(e.ifaces, iface.Name) })
	}
}

// Rebuild records everything in full listings of the NB ports and OVS
// interfaces. The daemon registers the store's event handlers first and
// rebuilds second, before it serves CNI: a row that appears in between is
// recorded twice, which is harmless, and none is missed. The daemon's
// own caches were filled before the handlers existed, so without this a
// restarted daemon would not know the attachments made before it.
func (s *Store) Rebuild(ports []nbdb.LogicalSwitchPort, ifaces []vswitchd.Interface) {
	for i := range ports {
		s.PortAdded(&ports[i])
	}
	for i := range ifaces {
		s.InterfaceAdded(&ifaces[i])
	}
}
