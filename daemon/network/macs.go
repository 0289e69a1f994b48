package network

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// macIndex maps the MACs in use on a network's switch to the port holding
// each, whoever's port it is: two ports with one MAC on one switch break
// both (OVN's L2 lookup delivers to one of them). Fed like the address
// index, by cache events, the guard's snapshot and foreign ports.
type macIndex struct {
	mu     sync.Mutex
	byMAC  map[string]string
	byPort map[string]string
}

func newMACIndex() *macIndex {
	return &macIndex{byMAC: map[string]string{}, byPort: map[string]string{}}
}

// observe records that port holds mac (a port's MAC does not change, but a
// record that says otherwise is replaced).
func (m *macIndex) observe(port string, mac net.HardwareAddr) {
	if mac == nil {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releaseLocked(port)
	m.byMAC[mac.String()] = port
	m.byPort[port] = mac.String()
}

// ErrMACInUse marks a requested MAC another port of the network holds.
var ErrMACInUse = errors.New("MAC address in use")

// reserve records mac for port, or says which port holds it already. A
// port may share its MAC with sharer (a live-migration target with its
// source); "" shares with no one.
func (m *macIndex) reserve(port, sharer string, mac net.HardwareAddr) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if owner, ok := m.byMAC[mac.String()]; ok && owner != port && (sharer == "" || owner != sharer) {
		return fmt.Errorf("%w: MAC %s is already used on this network by port %s", ErrMACInUse, mac, owner)
	}
	m.byMAC[mac.String()] = port
	m.byPort[port] = mac.String()
	return nil
}

func (m *macIndex) release(port string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.releaseLocked(port)
}

func (m *macIndex) releaseLocked(port string) {
	if mac, ok := m.byPort[port]; ok {
		delete(m.byPort, port)
		if m.byMAC[mac] == port {
			delete(m.byMAC, mac)
		}
	}
}

// entryMAC is the MAC of a port's addresses column, if it has one ("router"
// and "unknown" entries do not).
func entryMAC(lsp *nbdb.LogicalSwitchPort) net.HardwareAddr {
	for _, entry := range lsp.Addresses {
		if f := strings.Fields(entry); len(f) > 0 {
			if mac, err := net.ParseMAC(f[0]); err == nil {
				return mac
			}
		}
	}
	return nil
}

// observePort indexes a port's addresses and MAC under key.
func (n *Network) observePort(key string, lsp *nbdb.LogicalSwitchPort) {
	n.pool.Observe(key, PortAddrs(lsp))
	n.macs.observe(key, entryMAC(lsp))
}

// releasePort frees what key held in both indexes.
func (n *Network) releasePort(key string) {
	n.pool.Release(key)
	n.macs.release(key)
}
