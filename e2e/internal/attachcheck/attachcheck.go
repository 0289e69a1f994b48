// Package attachcheck inspects pod attachments black-box, from the OVN
// Northbound database, the nodes' OVS databases and the kernel, for the e2e
// suites: it finds leaked, duplicated and missing attachments and
// duplicated addresses of a sandbox cluster (sandbox.Cluster).
//
// Nothing here assumes how the daemon names its objects. Attachments are
// found by external_ids only:
//   - logical switch ports: ovn-overlay/network, ovn-overlay/container-id,
//     ovn-overlay/ifname (warm ports: ovn-overlay/warm=true);
//   - OVS interfaces: ovn-overlay/owner=ovn-overlay plus, when present,
//     ovn-overlay/network, ovn-overlay/container-id, ovn-overlay/ifname;
//     an owned interface without those keys is attributed through its
//     external_ids:iface-id to the logical switch port it is bound to;
//   - host veths: the node's veths, compared with a Baseline taken when the
//     test started, minus the OVS interfaces of live attachments.
//
// The query functions return errors instead of calling t.Fatal so that
// they can run on goroutines other than the test's.
package attachcheck

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// External IDs the daemon sets, and what the checker assumes of the pods.
const (
	OwnerKey       = "ovn-overlay/owner"
	OwnerValue     = "ovn-overlay"
	AddrSetNSKey   = "ovn-overlay/namespace"
	WarmKey        = "ovn-overlay/warm"
	ContainerIDKey = "ovn-overlay/container-id"
	IfNameKey      = "ovn-overlay/ifname"
	NetworkKey     = "ovn-overlay/network"
	// DefaultPodNS is the namespace of every pod the checked tests attach.
	DefaultPodNS = "default"
	IfaceIDKey   = "iface-id"
)

// LSP is a logical switch port as the NB holds it.
type LSP struct {
	Name         string
	Type         string
	Addresses    []string
	PortSecurity []string
	ExternalIDs  map[string]string
}

// MAC is the MAC of the port's first addresses entry.
func (p LSP) MAC() string {
	if len(p.Addresses) == 0 {
		return ""
	}
	f := strings.Fields(p.Addresses[0])
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// IPs are the addresses of the port's "MAC IP..." addresses entries.
func (p LSP) IPs() []netip.Addr {
	var out []netip.Addr
	for _, entry := range p.Addresses {
		f := strings.Fields(entry)
		for _, s := range f[min(1, len(f)):] {
			if a, err := netip.ParseAddr(s); err == nil {
				out = append(out, a)
			}
		}
	}
	return out
}

// IsLocalnet reports whether p is a localnet network's port to the
// physical network: the network's, no attachment's.
func IsLocalnet(p LSP) bool { return p.Type == "localnet" }

// IsWarm reports whether p is a warm (pre-provisioned, unbound) port.
func IsWarm(p LSP) bool { return p.ExternalIDs[WarmKey] == "true" }

// Live is an attachment that should exist: its CNI identity and the pod
// (netns, node) it lives in.
type Live struct {
	Pod         *sandbox.Pod
	ContainerID string
	IfName      string
}

func (a Live) Key() Key { return Key{a.ContainerID, a.IfName} }

// Key is an attachment's identity within one network.
type Key struct{ ContainerID, IfName string }

func (k Key) String() string { return k.ContainerID + "/" + k.IfName }

// NetLive is one network and the attachments of it that should exist.
type NetLive struct {
	Network string
	Live    []Live
}

// OVSIface is an OVS Interface row the project owns.
type OVSIface struct {
	Name        string
	ExternalIDs map[string]string
}

// ---- raw readers (no t.Fatal) ----

func RunNB(c *sandbox.Cluster, args ...string) (string, error) {
	out, err := sandbox.RunIn(c.Nodes[0].Netns, append([]string{"ovn-nbctl", "--db=" + c.Central.NB}, args...)...)
	return strings.TrimSpace(out), err
}

type ovsdbTable struct {
	Headings []string            `json:"headings"`
	Data     [][]json.RawMessage `json:"data"`
}

func DecodeSet(raw json.RawMessage) ([]string, error) {
	var atom string
	if json.Unmarshal(raw, &atom) == nil {
		return []string{atom}, nil
	}
	var num float64
	if json.Unmarshal(raw, &num) == nil {
		return []string{fmt.Sprint(num)}, nil
	}
	var set []json.RawMessage
	if err := json.Unmarshal(raw, &set); err != nil || len(set) != 2 {
		return nil, fmt.Errorf("not an OVSDB set: %s", raw)
	}
	var tag string
	_ = json.Unmarshal(set[0], &tag)
	if tag == "uuid" {
		var u string
		_ = json.Unmarshal(set[1], &u)
		return []string{u}, nil
	}
	if tag != "set" {
		return nil, fmt.Errorf("not an OVSDB set: %s", raw)
	}
	var elems []json.RawMessage
	if err := json.Unmarshal(set[1], &elems); err != nil {
		return nil, fmt.Errorf("OVSDB set %s: %w", raw, err)
	}
	var out []string
	for _, e := range elems {
		var s string
		if json.Unmarshal(e, &s) == nil {
			out = append(out, s)
			continue
		}
		var n float64
		if json.Unmarshal(e, &n) == nil {
			out = append(out, fmt.Sprint(n))
		}
	}
	return out, nil
}

func DecodeMap(raw json.RawMessage) (map[string]string, error) {
	var m []json.RawMessage
	var pairs [][2]string
	if err := json.Unmarshal(raw, &m); err != nil || len(m) != 2 || string(m[0]) != `"map"` {
		return nil, fmt.Errorf("not an OVSDB map: %s", raw)
	}
	if err := json.Unmarshal(m[1], &pairs); err != nil {
		return nil, fmt.Errorf("OVSDB map %s: %w", raw, err)
	}
	out := map[string]string{}
	for _, kv := range pairs {
		out[kv[0]] = kv[1]
	}
	return out, nil
}

// QueryLSPs reads logical switch ports matching ovn-nbctl find conditions.
func QueryLSPs(c *sandbox.Cluster, conditions ...string) ([]LSP, error) {
	out, err := RunNB(c, append([]string{"--format=json", "--columns=name,addresses,port_security,external_ids,type",
		"find", "Logical_Switch_Port"}, conditions...)...)
	if err != nil {
		return nil, err
	}
	var table ovsdbTable
	if err := json.Unmarshal([]byte(out), &table); err != nil {
		return nil, fmt.Errorf("ovn-nbctl printed %q: %w", out, err)
	}
	var ports []LSP
	for _, row := range table.Data {
		if len(row) != 5 {
			return nil, fmt.Errorf("ovn-nbctl row %s: want 5 columns", row)
		}
		var p LSP
		if err := json.Unmarshal(row[0], &p.Name); err != nil {
			return nil, err
		}
		if p.Addresses, err = DecodeSet(row[1]); err != nil {
			return nil, err
		}
		if p.PortSecurity, err = DecodeSet(row[2]); err != nil {
			return nil, err
		}
		if p.ExternalIDs, err = DecodeMap(row[3]); err != nil {
			return nil, err
		}
		if err := json.Unmarshal(row[4], &p.Type); err != nil {
			return nil, err
		}
		ports = append(ports, p)
	}
	return ports, nil
}

// NetworkLSPs reads every logical switch port of a network, warm included.
func NetworkLSPs(c *sandbox.Cluster, network string) ([]LSP, error) {
	return QueryLSPs(c, fmt.Sprintf(`external_ids:"%s"="%s"`, NetworkKey, network))
}

// AttachmentLSPs are the non-warm ports of a network carrying the identity.
func AttachmentLSPs(c *sandbox.Cluster, network string, k Key) ([]LSP, error) {
	ports, err := QueryLSPs(c, fmt.Sprintf(`external_ids:"%s"="%s"`, NetworkKey, network),
		fmt.Sprintf(`external_ids:"%s"="%s"`, ContainerIDKey, k.ContainerID),
		fmt.Sprintf(`external_ids:"%s"="%s"`, IfNameKey, k.IfName))
	if err != nil {
		return nil, err
	}
	var out []LSP
	for _, p := range ports {
		if !IsWarm(p) {
			out = append(out, p)
		}
	}
	return out, nil
}

// OwnedIfaces reads the OVS interfaces carrying the project's owner key on n.
func OwnedIfaces(n *sandbox.Node) ([]OVSIface, error) {
	out, err := n.Run("ovs-vsctl", "--db="+n.OVS, "--format=json", "--columns=name,external_ids",
		"find", "Interface", fmt.Sprintf(`external_ids:"%s"="%s"`, OwnerKey, OwnerValue))
	if err != nil {
		return nil, err
	}
	var table ovsdbTable
	if err := json.Unmarshal([]byte(out), &table); err != nil {
		return nil, fmt.Errorf("ovs-vsctl printed %q: %w", out, err)
	}
	var ifaces []OVSIface
	for _, row := range table.Data {
		if len(row) != 2 {
			return nil, fmt.Errorf("ovs-vsctl row %s: want 2 columns", row)
		}
		var i OVSIface
		if err := json.Unmarshal(row[0], &i.Name); err != nil {
			return nil, err
		}
		if i.ExternalIDs, err = DecodeMap(row[1]); err != nil {
			return nil, err
		}
		ifaces = append(ifaces, i)
	}
	return ifaces, nil
}

// IfaceOwner attributes an owned OVS interface to (network, identity): by
// its own identity keys, else by the logical switch port its iface-id
// names. warmBound is true when it is bound to a port still marked warm.
func IfaceOwner(i OVSIface, lspsByName map[string]LSP) (network string, k Key, warmBound, ok bool) {
	if nw := i.ExternalIDs[NetworkKey]; nw != "" && i.ExternalIDs[ContainerIDKey] != "" {
		return nw, Key{i.ExternalIDs[ContainerIDKey], i.ExternalIDs[IfNameKey]}, false, true
	}
	p, found := lspsByName[i.ExternalIDs[IfaceIDKey]]
	if !found {
		return "", Key{}, false, false
	}
	if IsWarm(p) {
		return p.ExternalIDs[NetworkKey], Key{}, true, true
	}
	return p.ExternalIDs[NetworkKey], Key{p.ExternalIDs[ContainerIDKey], p.ExternalIDs[IfNameKey]}, false, true
}

// AttachmentIfaces finds the OVS interfaces of one attachment on node n.
func AttachmentIfaces(c *sandbox.Cluster, n *sandbox.Node, network string, k Key) ([]string, error) {
	ifaces, err := OwnedIfaces(n)
	if err != nil {
		return nil, err
	}
	ports, err := AttachmentLSPs(c, network, k)
	if err != nil {
		return nil, err
	}
	byName := map[string]LSP{}
	for _, p := range ports {
		byName[p.Name] = p
	}
	var out []string
	for _, i := range ifaces {
		if nw, ik, _, ok := IfaceOwner(i, byName); ok && nw == network && ik == k {
			out = append(out, i.Name)
		}
	}
	return out, nil
}

// IPLink is one `ip -j link` entry.
type IPLink struct {
	IfIndex   int      `json:"ifindex"`
	IfName    string   `json:"ifname"`
	Flags     []string `json:"flags"`
	OperState string   `json:"operstate"`
	Address   string   `json:"address"`
	LinkType  string   `json:"link_type"`
	Info      struct {
		Kind string `json:"info_kind"`
	} `json:"linkinfo"`
}

func (l IPLink) Up() bool { return slices.Contains(l.Flags, "UP") && l.OperState != "DOWN" }

func (l IPLink) String() string {
	return fmt.Sprintf("%s(#%d flags=%s operstate=%s)", l.IfName, l.IfIndex, strings.Join(l.Flags, ","), l.OperState)
}

// links runs `ip -d -j link show args...` in netns.
func Links(netns string, args ...string) ([]IPLink, error) {
	out, err := sandbox.RunIn(netns, append([]string{"ip", "-d", "-j", "link", "show"}, args...)...)
	if err != nil {
		return nil, err
	}
	var ls []IPLink
	if strings.TrimSpace(out) == "" {
		return nil, nil
	}
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		return nil, fmt.Errorf("ip -j link printed %q: %w", out, err)
	}
	return ls, nil
}

// link reads one interface in netns.
func Link(netns, dev string) (IPLink, error) {
	ls, err := Links(netns, "dev", dev)
	if err != nil {
		return IPLink{}, err
	}
	if len(ls) != 1 {
		return IPLink{}, fmt.Errorf("ip link show dev %s in %s: %d entries", dev, netns, len(ls))
	}
	return ls[0], nil
}

func NodeVeths(n *sandbox.Node) (map[string]bool, error) {
	ls, err := Links(n.Netns, "type", "veth")
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, l := range ls {
		out[l.IfName] = true
	}
	return out, nil
}

// ---- Baseline, checker and scrubbing ----

// Baseline is what the nodes held when a test started: veths and owned OVS
// interfaces that are not the test's.
type Baseline map[string]struct {
	veths, ifaces map[string]bool
}

func TakeBaseline(t testing.TB, c *sandbox.Cluster) Baseline {
	t.Helper()
	b := Baseline{}
	for _, n := range c.Nodes {
		veths, err := NodeVeths(n)
		if err != nil {
			t.Fatal(err)
		}
		ifaces, err := OwnedIfaces(n)
		if err != nil {
			t.Fatal(err)
		}
		names := map[string]bool{}
		for _, i := range ifaces {
			names[i.Name] = true
		}
		b[n.Name] = struct{ veths, ifaces map[string]bool }{veths, names}
	}
	return b
}

// Report is what Check found.
type Report struct {
	Leaks, Dups, Missing, Down int
}

// Check asserts, from the NB, the nodes' OVS and the kernel,
// that exactly the given attachments exist on the given networks:
//
//	(a) one non-warm logical switch port per live attachment, none else;
//	(b) one owned OVS interface per live attachment, none for anything else;
//	(c) no veth on a node that was not there at base and is not the host
//	    end of a live attachment;
//	(d) every address of each network's ports (warm ones too) is unique;
//	(e) the network's address sets hold exactly the live ports' addresses
//	    (all pods of these tests are in namespace "default");
//	(f) every live attachment's pod interface and host end are UP.
func Check(t testing.TB, c *sandbox.Cluster, base Baseline, nets ...NetLive) Report {
	t.Helper()
	var rep Report
	all, err := QueryLSPs(c)
	if err != nil {
		t.Fatalf("read NB: %v", err)
	}
	byName := map[string]LSP{}
	for _, p := range all {
		byName[p.Name] = p
	}
	hostEnds := map[string]map[string]bool{} // node -> live host ends
	for _, n := range c.Nodes {
		hostEnds[n.Name] = map[string]bool{}
	}
	type ifaceAt struct {
		node  *sandbox.Node
		iface OVSIface
	}
	var ifaces []ifaceAt
	for _, n := range c.Nodes {
		is, err := OwnedIfaces(n)
		if err != nil {
			t.Fatalf("read OVS of %s: %v", n.Name, err)
		}
		for _, i := range is {
			ifaces = append(ifaces, ifaceAt{n, i})
		}
	}
	attributed := map[string]bool{} // node/iface attributed to one of nets
	inNets := map[string]bool{}
	for _, nl := range nets {
		inNets[nl.Network] = true
	}

	for _, nl := range nets {
		network := nl.Network
		live := map[Key]Live{}
		for _, a := range nl.Live {
			live[a.Key()] = a
		}
		// (a) logical switch ports; (d) unique addresses.
		ports := map[Key][]LSP{}
		holders := map[netip.Addr][]string{}
		for _, p := range all {
			if p.ExternalIDs[NetworkKey] != network {
				continue
			}
			for _, ip := range p.IPs() {
				holders[ip] = append(holders[ip], p.Name)
			}
			if IsWarm(p) || p.ExternalIDs[ContainerIDKey] == "" {
				continue
			}
			k := Key{p.ExternalIDs[ContainerIDKey], p.ExternalIDs[IfNameKey]}
			ports[k] = append(ports[k], p)
		}
		for k, ps := range ports {
			var names []string
			for _, p := range ps {
				names = append(names, p.Name)
			}
			if _, ok := live[k]; !ok {
				rep.Leaks += len(ps)
				t.Errorf("[%s] leaked logical switch port(s) of dead attachment %s: %v", network, k, names)
			} else if len(ps) > 1 {
				rep.Dups += len(ps) - 1
				t.Errorf("[%s] attachment %s has %d logical switch ports: %v", network, k, len(ps), names)
			}
		}
		for k := range live {
			if len(ports[k]) == 0 {
				rep.Missing++
				t.Errorf("[%s] live attachment %s has no logical switch port", network, k)
			}
		}
		for ip, hs := range holders {
			if len(hs) > 1 {
				rep.Dups += len(hs) - 1
				t.Errorf("[%s] address %s held by %d ports: %v", network, ip, len(hs), hs)
			}
		}
		// (b) OVS interfaces.
		ifacesOf := map[Key][]string{}
		for _, ia := range ifaces {
			nw, k, warmBound, ok := IfaceOwner(ia.iface, byName)
			if !ok || nw != network {
				continue
			}
			attributed[ia.node.Name+"/"+ia.iface.Name] = true
			if warmBound {
				rep.Leaks++
				t.Errorf("[%s] OVS interface %s on %s is bound to a still-warm port %s", network, ia.iface.Name, ia.node.Name, ia.iface.ExternalIDs[IfaceIDKey])
				continue
			}
			ifacesOf[k] = append(ifacesOf[k], ia.node.Name+"/"+ia.iface.Name)
			if a, isLive := live[k]; isLive && a.Pod.Node.Name == ia.node.Name {
				hostEnds[ia.node.Name][ia.iface.Name] = true
			}
		}
		for k, is := range ifacesOf {
			if _, ok := live[k]; !ok {
				rep.Leaks += len(is)
				t.Errorf("[%s] leaked OVS interface(s) of dead attachment %s: %v", network, k, is)
			} else if len(is) > 1 {
				rep.Dups += len(is) - 1
				t.Errorf("[%s] attachment %s has %d OVS interfaces: %v", network, k, len(is), is)
			}
		}
		for k := range live {
			if len(ifacesOf[k]) == 0 {
				rep.Missing++
				t.Errorf("[%s] live attachment %s has no OVS interface", network, k)
			}
		}
		// (e) address sets.
		want := map[string]bool{}
		for k := range live {
			for _, p := range ports[k] {
				for _, ip := range p.IPs() {
					want[ip.String()] = true
				}
			}
		}
		out, err := RunNB(c, "--format=json", "--columns=addresses,external_ids", "find", "Address_Set",
			fmt.Sprintf(`external_ids:"%s"="%s"`, NetworkKey, network))
		if err != nil {
			t.Fatalf("read address sets: %v", err)
		}
		var table ovsdbTable
		if err := json.Unmarshal([]byte(out), &table); err != nil {
			t.Fatalf("address sets %q: %v", out, err)
		}
		got := map[string]bool{}
		for _, row := range table.Data {
			addrs, err := DecodeSet(row[0])
			if err != nil {
				t.Fatal(err)
			}
			ids, err := DecodeMap(row[1])
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range addrs {
				if ids[AddrSetNSKey] != DefaultPodNS {
					rep.Leaks++
					t.Errorf("[%s] address set of namespace %q holds %s; no pod of this test is there", network, ids[AddrSetNSKey], a)
					continue
				}
				if pa, err := netip.ParseAddr(a); err == nil {
					a = pa.String()
				}
				got[a] = true
			}
		}
		var extra, missing []string
		for a := range got {
			if !want[a] {
				extra = append(extra, a)
			}
		}
		for a := range want {
			if !got[a] {
				missing = append(missing, a)
			}
		}
		sort.Strings(extra)
		sort.Strings(missing)
		if len(extra) > 0 {
			rep.Leaks += len(extra)
			t.Errorf("[%s] address sets hold %d addresses of no live attachment: %v", network, len(extra), extra)
		}
		if len(missing) > 0 {
			rep.Missing += len(missing)
			t.Errorf("[%s] address sets lack %d addresses of live attachments: %v", network, len(missing), missing)
		}
		// (f) links up.
		for k, a := range live {
			pl, err := Link(a.Pod.Netns, a.IfName)
			if err != nil {
				rep.Down++
				t.Errorf("[%s] live attachment %s: pod interface: %v", network, k, err)
			} else if !pl.Up() {
				rep.Down++
				t.Errorf("[%s] live attachment %s: pod interface not up: %s", network, k, pl)
			}
			for _, qualified := range ifacesOf[k] {
				nodeName, name, _ := strings.Cut(qualified, "/")
				n, _ := c.Node(nodeName)
				hl, err := Link(n.Netns, name)
				if err != nil {
					rep.Down++
					t.Errorf("[%s] live attachment %s: host end %s: %v", network, k, qualified, err)
				} else if !hl.Up() {
					rep.Down++
					t.Errorf("[%s] live attachment %s: host end not up: %s", network, k, hl)
				}
			}
		}
	}
	// Owned OVS interfaces new since base that belong to no port at all.
	for _, ia := range ifaces {
		if attributed[ia.node.Name+"/"+ia.iface.Name] || base[ia.node.Name].ifaces[ia.iface.Name] {
			continue
		}
		if nw, _, _, ok := IfaceOwner(ia.iface, byName); ok && !inNets[nw] {
			continue // another network's, with its port: not ours to judge
		}
		rep.Leaks++
		t.Errorf("orphan OVS interface %s on %s (external_ids %v): bound to no port", ia.iface.Name, ia.node.Name, ia.iface.ExternalIDs)
	}
	// (c) veths.
	for _, n := range c.Nodes {
		veths, err := NodeVeths(n)
		if err != nil {
			t.Fatal(err)
		}
		var leaked []string
		for v := range veths {
			if !base[n.Name].veths[v] && !hostEnds[n.Name][v] {
				leaked = append(leaked, v)
			}
		}
		sort.Strings(leaked)
		if len(leaked) > 0 {
			rep.Leaks += len(leaked)
			t.Errorf("%s: %d leaked veth(s) (new since the test started, host end of no live attachment): %v", n.Name, len(leaked), leaked)
		}
	}
	t.Logf("attachment check of %d network(s): leaks %d, duplicates %d, missing %d, links down %d", len(nets), rep.Leaks, rep.Dups, rep.Missing, rep.Down)
	return rep
}

// Scrub removes what a test may have left behind on its networks so that
// later tests start clean: owned OVS ports of those networks (and orphans
// created since base), veths created since base, and non-warm ports.
// Registered first, it runs after every DEL and netns deletion.
func Scrub(t testing.TB, c *sandbox.Cluster, base Baseline, networks ...string) {
	inNets := map[string]bool{}
	for _, nw := range networks {
		inNets[nw] = true
	}
	all, err := QueryLSPs(c)
	if err != nil {
		t.Logf("Scrub: %v", err)
		return
	}
	byName := map[string]LSP{}
	for _, p := range all {
		byName[p.Name] = p
	}
	for _, n := range c.Nodes {
		is, _ := OwnedIfaces(n)
		for _, i := range is {
			nw, _, _, ok := IfaceOwner(i, byName)
			if (ok && inNets[nw]) || (!ok && !base[n.Name].ifaces[i.Name]) {
				_, _ = n.Run("ovs-vsctl", "--db="+n.OVS, "--if-exists", "del-port", i.Name)
			}
		}
		veths, _ := NodeVeths(n)
		for v := range veths {
			if !base[n.Name].veths[v] {
				_, _ = n.Run("ip", "link", "del", v)
			}
		}
	}
	for _, p := range all {
		if inNets[p.ExternalIDs[NetworkKey]] && !IsWarm(p) && p.ExternalIDs[ContainerIDKey] != "" {
			_, _ = RunNB(c, "--if-exists", "lsp-del", p.Name)
		}
	}
}
