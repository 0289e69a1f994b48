// Package attachment is the node daemon's record of what belongs to each
// attachment: CNI's identity (network, container ID, interface name), the
// names derived from it, and one store that maps an identity to its logical
// switch ports, OVS interface and host veth, rebuilt from the NB and OVS
// caches and the kernel at start and kept current by their events. Every
// CNI verb finds an attachment's objects through it and works on an
// attachment only while holding that attachment's lock.
package attachment

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/ovn-overlay/ovn-overlay/externalids"
)

// ID is CNI's identity of an attachment.
type ID struct {
	Network     string
	ContainerID string
	IfName      string
}

func (id ID) String() string {
	return fmt.Sprintf("%s/%s/%s", id.Network, id.ContainerID, id.IfName)
}

// digest hashes the identity with each part length-prefixed, so no two
// identities encode alike: a plain join of ("a", "x.c") and ("a.x", "c")
// would.
func (id ID) digest() [sha256.Size]byte {
	h := sha256.New()
	for _, part := range []string{id.Network, id.ContainerID, id.IfName} {
		var n [8]byte
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write([]byte(part))
	}
	var out [sha256.Size]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Hash is a stable, unambiguous short form of the identity (32 hex digits).
func (id ID) Hash() string {
	d := id.digest()
	return hex.EncodeToString(d[:16])
}

// PortName is the logical switch port created for the attachment (the cold
// path; a warm port keeps its own name). The network name keeps it readable
// in ovn-nbctl; the hash makes it unique per identity.
func (id ID) PortName() string {
	return "ovn-overlay." + id.Network + "." + id.Hash()[:24]
}

// LinkAlias marks the host end of the attachment's veth, so that DEL and
// the start-up reconcile delete only veths ADD created, and only this
// attachment's.
func (id ID) LinkAlias() string { return LinkAliasPrefix + id.Hash() }

// LinkAliasPrefix starts the alias of every host veth the daemon creates.
const LinkAliasPrefix = "ovn-overlay:"

// ExternalIDs are the identity keys every row of the attachment carries.
func (id ID) ExternalIDs() map[string]string {
	return map[string]string{
		externalids.Network:     id.Network,
		externalids.ContainerID: id.ContainerID,
		externalids.IfName:      id.IfName,
	}
}

// FromExternalIDs reads an identity from a row's external_ids; ok is false
// for rows that are not an attachment's (router links, warm ports).
func FromExternalIDs(ids map[string]string) (ID, bool) {
	id := ID{Network: ids[externalids.Network], ContainerID: ids[externalids.ContainerID], IfName: ids[externalids.IfName]}
	return id, id.Network != "" && id.ContainerID != "" && id.IfName != ""
}

// Carries reports whether a row's external_ids name exactly this identity.
func (id ID) Carries(ids map[string]string) bool {
	got, ok := FromExternalIDs(ids)
	return ok && got == id
}

// NewHostLinkName names the host end of a new veth: "ov" and 13 random hex
// digits (kernel names hold 15 bytes). Random, not derived from the
// identity: ovs-vswitchd removes a deleted port's device a moment late, and
// a re-ADD of the same attachment reusing the name would see its new veth
// set down by that removal.
func NewHostLinkName() string {
	b := make([]byte, 7)
	_, _ = rand.Read(b)
	return "ov" + hex.EncodeToString(b)[:13]
}

// IsHostLinkName reports whether name has NewHostLinkName's form: the
// start-up reconcile uses it for a veth a crash left without its alias.
func IsHostLinkName(name string) bool {
	if len(name) != 15 || name[:2] != "ov" {
		return false
	}
	for _, c := range name[2:] {
		if !strings.ContainsRune("0123456789abcdef", c) {
			return false
		}
	}
	return true
}
