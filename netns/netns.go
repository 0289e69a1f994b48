// Package netns does the pod-side plumbing of a secondary OVN network
// attachment: it creates a veth pair whose host end stays in the caller's
// (the node daemon's) network namespace, ready to be plugged into an OVS
// bridge by someone else, and whose peer is created directly inside the pod's
// network namespace and configured there (MAC, MTU, addresses, routes,
// link state, TX checksum offload).
//
// Design notes, and why:
//
//   - The peer is created in the pod netns in a single RTM_NEWLINK
//     (netlink.Veth with PeerNamespace = netlink.NsFd) instead of being created
//     in the host netns and moved afterwards. The pod-side name
//     (CNI_IFNAME, typically "eth0" or "net1") would otherwise collide with
//     host interfaces during the window between creation and move, and a
//     crash in that window would leave a stray interface on the node.
//
//   - The pod side is configured through a netlink handle bound to the pod
//     netns (netlink.NewHandleAt). A netlink socket keeps the netns it was
//     opened in, so after the socket is created no OS thread has to be switched
//     into the pod netns. Switching a Go thread's netns is error prone (the
//     runtime moves goroutines between threads, and new goroutines inherit
//     whatever namespace their thread happens to be in), so it is confined to
//     the few places where it is unavoidable: opening the handle's sockets
//     (done inside the netlink library) and opening the AF_INET socket used
//     for the ethtool ioctl. The latter is done on a dedicated, locked
//     goroutine which is discarded together with its thread if the namespace
//     cannot be restored.
//
//   - IPv6 addresses are added with IFA_F_NODAD: the addresses come from IPAM
//     and are known to be unique, and without it they stay "tentative" (not
//     usable as a source address) for about a second after the pod starts.
//
//   - IPv6 is disabled on the host end (best effort): it is a pure L2 port
//     into the overlay and must not emit router/neighbor solicitations or MLD
//     reports of its own into the logical network.
//
//   - TX checksum offload can be disabled on the pod end. With the OVS
//     userspace (netdev) datapath, packets leaving a veth with a checksum
//     left to be completed by "hardware" (CHECKSUM_PARTIAL) are forwarded
//     as-is, so they arrive with a bad checksum: ICMP works (its checksum is
//     computed by the stack) but TCP never connects. The ethtool setting is
//     applied with the SIOCETHTOOL ioctl (ETHTOOL_STXCSUM) on a socket opened
//     inside the pod netns, because the ioctl resolves the interface name in
//     the socket's namespace.
//
//   - Every failure after the veth was created removes the host end (which
//     deletes the peer as well), so a failed CNI ADD leaks nothing. Teardown
//     and TeardownPodSide are idempotent, as CNI DEL must be.
package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Route is a route installed in the pod netns through the pod interface.
type Route struct {
	Dst     netip.Prefix
	Gateway netip.Addr // invalid (zero) = on-link
}

// Attachment describes one pod interface.
type Attachment struct {
	HostIfName               string           // host end name, <= 15 chars, stays in the caller's netns
	HostAlias                string           // set on the host end at creation: marks it as this attachment's
	ContainerIfName          string           // CNI_IFNAME, created directly inside the pod netns
	MAC                      net.HardwareAddr // pod-side MAC
	Addresses                []netip.Prefix   // pod-side addresses (IPv4 and/or IPv6)
	Routes                   []Route
	MTU                      int  // both ends
	DisableTxChecksumOffload bool // pod side; needed with the OVS userspace datapath
}

// Link identifies one end of the veth pair.
type Link struct {
	Name  string
	Index int
	MAC   net.HardwareAddr
}

// Result describes both ends of the veth pair created by Setup. Pod.Index is
// the interface index inside the pod netns.
type Result struct {
	Host Link
	Pod  Link
}

// ErrHostLinkExists is returned (wrapped) by Setup when a link with the host
// end name already exists in the caller's netns.
var ErrHostLinkExists = errors.New("host link already exists")

// maxDumpRetries bounds the retries of netlink dumps interrupted by a
// concurrent change (NLM_F_DUMP_INTR).
const maxDumpRetries = 5

// Setup plugs the veth (Plug) and configures the pod end (Configure). On
// any error it removes what it created, so nothing is leaked.
func Setup(podNetnsPath string, a Attachment) (Result, error) {
	res, err := Plug(podNetnsPath, a)
	if err != nil {
		return Result{}, err
	}
	if err := Configure(podNetnsPath, a); err != nil {
		return Result{}, errors.Join(err, Unplug(a.HostIfName, a.HostAlias, podNetnsPath))
	}
	if a.MAC != nil {
		res.Pod.MAC = a.MAC
	}
	return res, nil
}

// Plug creates the veth with its peer created directly in the pod netns,
// sets MTU (and MAC, if given), brings the host end up and disables TX
// checksum offload on the pod end when asked; the pod end stays down until
// Configure. IPv6 is disabled (best
// effort) on the host end. Addresses and routes are Configure's: splitting
// the two lets a caller plug the port while the addresses are still being
// allocated. If the host end name already exists it returns an error
// wrapping ErrHostLinkExists. On any error it removes what it created.
//
// A MTU of 0 keeps the kernel default and a nil MAC lets the kernel pick a
// random one.
func Plug(podNetnsPath string, a Attachment) (res Result, err error) {
	wrap := func(step string, err error) error {
		return fmt.Errorf("netns: setup host %q / pod %q in netns %s: %s: %w",
			a.HostIfName, a.ContainerIfName, podNetnsPath, step, err)
	}
	if err := validate(a); err != nil {
		return Result{}, wrap("invalid attachment", err)
	}
	podNs, err := openNetns(podNetnsPath)
	if err != nil {
		return Result{}, wrap("open pod netns", err)
	}
	defer podNs.Close()
	pod, err := netlink.NewHandleAt(podNs, unix.NETLINK_ROUTE)
	if err != nil {
		return Result{}, wrap("open netlink handle in pod netns", err)
	}
	defer pod.Close()
	if step, err := namesFree(pod, a); err != nil {
		return Result{}, wrap(step, err)
	}
	host, err := createVeth(podNs, a)
	if err != nil {
		return Result{}, wrap("create veth", err)
	}
	defer func() {
		if err != nil {
			// Deleting one end of a veth deletes its peer too.
			if derr := netlink.LinkDel(host); derr != nil && !isLinkNotFound(derr) && !errors.Is(derr, unix.ENODEV) {
				err = errors.Join(err, fmt.Errorf("netns: cleanup: delete host link %q: %w", a.HostIfName, derr))
			}
		}
	}()
	// The kernel ignores IFLA_IFALIAS when it creates a link, so the mark
	// that lets DEL and the start-up reconcile tell the veth is this
	// attachment's is set right after. (The reconcile also knows our
	// naming, for a crash in between.)
	if a.HostAlias != "" {
		if err := netlink.LinkSetAlias(host, a.HostAlias); err != nil {
			return Result{}, wrap("mark host link", err)
		}
	}
	// Best effort: the host end is an L2 port into the overlay and must not
	// send IPv6 traffic of its own. Done before the link goes up.
	_ = disableIPv6(a.HostIfName)
	podLink, err := pod.LinkByName(a.ContainerIfName)
	if err != nil {
		return Result{}, wrap("look up pod link", err)
	}
	if a.DisableTxChecksumOffload {
		if err := setTxChecksum(podNs, a.ContainerIfName, false); err != nil {
			return Result{}, wrap("disable TX checksum offload on pod link", err)
		}
	}
	if err := netlink.LinkSetUp(host); err != nil {
		return Result{}, wrap("set host link up", err)
	}
	// Read both ends back so the result reflects the kernel's view.
	hostNow, err := netlink.LinkByIndex(host.Attrs().Index)
	if err != nil {
		return Result{}, wrap("read back host link", err)
	}
	podNow, err := pod.LinkByIndex(podLink.Attrs().Index)
	if err != nil {
		return Result{}, wrap("read back pod link", err)
	}
	return Result{Host: toLink(hostNow), Pod: toLink(podNow)}, nil
}

// namesFree checks that neither end's name is taken, returning the step
// that failed.
func namesFree(pod *netlink.Handle, a Attachment) (string, error) {
	if l, err := netlink.LinkByName(a.HostIfName); err == nil {
		return "check host link", fmt.Errorf("%w (index %d, type %s)", ErrHostLinkExists, l.Attrs().Index, l.Type())
	} else if !isLinkNotFound(err) {
		return "check host link", err
	}
	if l, err := pod.LinkByName(a.ContainerIfName); err == nil {
		return "check pod link", fmt.Errorf("interface already exists in pod netns (index %d, type %s)", l.Attrs().Index, l.Type())
	} else if !isLinkNotFound(err) {
		return "check pod link", err
	}
	return "", nil
}

// createVeth creates the pair, its peer directly in the pod netns, and
// returns the host end.
func createVeth(podNs netns.NsHandle, a Attachment) (netlink.Link, error) {
	attrs := netlink.NewLinkAttrs()
	attrs.Name = a.HostIfName
	attrs.MTU = a.MTU
	veth := &netlink.Veth{
		LinkAttrs:        attrs,
		PeerName:         a.ContainerIfName,
		PeerHardwareAddr: a.MAC,
		PeerNamespace:    netlink.NsFd(podNs),
		PeerTxQLen:       -1,
	}
	if a.MTU > 0 {
		veth.PeerMTU = uint32(a.MTU)
	}
	if err := netlink.LinkAdd(veth); err != nil {
		// The veth pair is created atomically: nothing to clean up. A name
		// that appeared concurrently is reported as ErrHostLinkExists; the
		// link is not ours, so it must not be deleted.
		if errors.Is(err, unix.EEXIST) {
			if _, lerr := netlink.LinkByName(a.HostIfName); lerr == nil {
				err = fmt.Errorf("%w: %w", ErrHostLinkExists, err)
			}
		}
		return nil, err
	}
	host, err := netlink.LinkByName(a.HostIfName)
	if err != nil {
		// We did create it; delete by name as a last resort.
		_ = netlink.LinkDel(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: a.HostIfName}})
		return nil, fmt.Errorf("look up created host link: %w", err)
	}
	return host, nil
}

// Configure gives the pod end of a plugged veth its MAC (when a.MAC is
// set), addresses (IPv6 with IFA_F_NODAD, usable at once), routes and the
// source-based routing of its addresses.
func Configure(podNetnsPath string, a Attachment) error {
	wrap := func(step string, err error) error {
		return fmt.Errorf("netns: configure pod %q in netns %s: %s: %w", a.ContainerIfName, podNetnsPath, step, err)
	}
	if err := validate(a); err != nil {
		return wrap("invalid attachment", err)
	}
	podNs, pod, err := openPod(podNetnsPath)
	if err != nil {
		return wrap("open pod netns", err)
	}
	defer podNs.Close()
	defer pod.Close()
	podLink, err := pod.LinkByName(a.ContainerIfName)
	if err != nil {
		return wrap("look up pod link", err)
	}
	// The pod end comes up only now, with its final MAC: it never sends
	// anything (IPv6 neighbour discovery, say) with the random one.
	if a.MAC != nil && !slices.Equal(podLink.Attrs().HardwareAddr, a.MAC) {
		if err := pod.LinkSetHardwareAddr(podLink, a.MAC); err != nil {
			return wrap("set pod MAC "+a.MAC.String(), err)
		}
	}
	if err := pod.LinkSetUp(podLink); err != nil {
		return wrap("set pod link up", err)
	}
	for _, p := range a.Addresses {
		addr := &netlink.Addr{IPNet: prefixToIPNet(p, false)}
		if p.Addr().Is6() {
			addr.Flags = unix.IFA_F_NODAD
		}
		if err := pod.AddrAdd(podLink, addr); err != nil {
			return wrap(fmt.Sprintf("add address %s to pod link", p), err)
		}
	}
	for _, r := range a.Routes {
		if err := addRoute(pod, podLink.Attrs().Index, r); err != nil {
			return wrap(fmt.Sprintf("add route %s", r.String()), err)
		}
	}
	if err := addSourceRouting(pod, podLink.Attrs().Index, a); err != nil {
		// Routes go with the link on cleanup; rules must go explicitly.
		return wrap("source-based routing", errors.Join(err, removeRulesOfTable(pod, sourceTable(podLink.Attrs().Index))))
	}
	return nil
}

// Teardown deletes the host end (and so its peer). A missing link is not an
// error (CNI DEL is idempotent). A link with that name that is not a veth is
// left alone and reported as an error.
func Teardown(hostIfName string) error {
	l, err := netlink.LinkByName(hostIfName)
	if err != nil {
		if isLinkNotFound(err) {
			return nil
		}
		return fmt.Errorf("netns: teardown host link %q: look up: %w", hostIfName, err)
	}
	if l.Type() != "veth" {
		return fmt.Errorf("netns: teardown host link %q: refusing to delete a %s link, expected a veth", hostIfName, l.Type())
	}
	if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("netns: teardown host link %q: delete: %w", hostIfName, err)
	}
	return nil
}

// Unplug deletes an attachment's host veth, and with it the pod end, if
// hostIfName is a veth whose alias is alias (the mark Plug set); then it
// removes the pod end's source-routing rules, which outlive their link, in
// podNetnsPath (empty: the netns is gone, and the rules with it). A missing
// link, or one that is not this attachment's veth, is left alone and is not
// an error: DEL is idempotent and never touches what it did not create.
// The pod side is never looked up by name: a pod interface of that name
// may belong to another network or to someone else.
func Unplug(hostIfName, alias, podNetnsPath string) error {
	l, err := netlink.LinkByName(hostIfName)
	if err != nil {
		if isLinkNotFound(err) {
			return nil
		}
		return fmt.Errorf("netns: unplug host link %q: look up: %w", hostIfName, err)
	}
	veth, ok := l.(*netlink.Veth)
	if !ok || l.Attrs().Alias != alias {
		return nil
	}
	rulesIn := podEndIn(veth, podNetnsPath)
	if err := netlink.LinkDel(l); err != nil && !isLinkNotFound(err) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("netns: unplug host link %q: delete: %w", hostIfName, err)
	}
	if rulesIn == nil {
		return nil
	}
	defer rulesIn.close()
	if err := removeRulesOfTable(rulesIn.h, sourceTable(rulesIn.index)); err != nil {
		return fmt.Errorf("netns: unplug host link %q: source rules in %s: %w", hostIfName, podNetnsPath, err)
	}
	return nil
}

// podEnd is a veth's pod end found in a pod netns, with a handle there.
type podEnd struct {
	ns    netns.NsHandle
	h     *netlink.Handle
	index int
}

func (p *podEnd) close() {
	p.h.Close()
	p.ns.Close()
}

// podEndIn finds host's peer in podNetnsPath, or returns nil if the peer
// is not there (the path is gone, or the veth's pod end lives in another
// namespace: an earlier sandbox's). Only then are the peer's source rules
// this attachment's to remove: the same interface index in another
// namespace belongs to someone else.
func podEndIn(host *netlink.Veth, podNetnsPath string) *podEnd {
	if podNetnsPath == "" {
		return nil
	}
	// IFLA_LINK: a veth's peer's index, in the peer's namespace.
	peerIndex := host.Attrs().ParentIndex
	if peerIndex == 0 {
		return nil
	}
	ns, h, err := openPod(podNetnsPath)
	if err != nil {
		return nil
	}
	if l, err := h.LinkByIndex(peerIndex); err == nil {
		if _, ok := l.(*netlink.Veth); ok && l.Attrs().ParentIndex == host.Attrs().Index {
			return &podEnd{ns: ns, h: h, index: peerIndex}
		}
	}
	h.Close()
	ns.Close()
	return nil
}

// HostVeths lists the veths in the caller's netns that keep accepts (given
// name and alias), by name, with their alias.
func HostVeths(keep func(name, alias string) bool) (map[string]string, error) {
	links, err := retryDump(netlink.LinkList)
	if err != nil {
		return nil, fmt.Errorf("netns: list links: %w", err)
	}
	out := map[string]string{}
	for _, l := range links {
		if _, ok := l.(*netlink.Veth); ok && keep(l.Attrs().Name, l.Attrs().Alias) {
			out[l.Attrs().Name] = l.Attrs().Alias
		}
	}
	return out, nil
}

// LinksUp reports whether both ends of an attachment's veth are up: the
// host end administratively up with a running carrier, and the pod end
// ifName administratively up in podNetnsPath. ADD checks it before
// answering, so it never reports success for a link that is down.
func LinksUp(hostIfName, podNetnsPath, ifName string) error {
	host, err := netlink.LinkByName(hostIfName)
	if err != nil {
		return fmt.Errorf("host link %q: %w", hostIfName, err)
	}
	if host.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("host link %q is administratively down", hostIfName)
	}
	if host.Attrs().RawFlags&unix.IFF_LOWER_UP == 0 {
		return fmt.Errorf("host link %q has no carrier (operstate %s)", hostIfName, host.Attrs().OperState)
	}
	podNs, pod, err := openPod(podNetnsPath)
	if err != nil {
		return fmt.Errorf("pod netns %s: %w", podNetnsPath, err)
	}
	defer podNs.Close()
	defer pod.Close()
	l, err := pod.LinkByName(ifName)
	if err != nil {
		return fmt.Errorf("pod link %q: %w", ifName, err)
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		return fmt.Errorf("pod link %q is administratively down", ifName)
	}
	return nil
}

// DriftKind names one way the pod side differs from what ADD made. A
// failure to read a piece of state is reported under that piece's kind: the
// state cannot be confirmed, and the item's Detail says why.
type DriftKind string

// The drift kinds Check reports.
const (
	DriftNetns        DriftKind = "netns"     // pod netns cannot be opened, or no netlink handle in it
	DriftHostLink     DriftKind = "host-link" // host veth missing, not a veth, or its look-up failed
	DriftHostLinkDown DriftKind = "host-link-down"
	DriftHostMTU      DriftKind = "host-mtu"
	DriftPodLink      DriftKind = "pod-link" // pod link missing, not a veth, not the host's peer, or its look-up failed
	DriftPodLinkDown  DriftKind = "pod-link-down"
	DriftPodMTU       DriftKind = "pod-mtu"
	DriftMAC          DriftKind = "mac"
	DriftAddress      DriftKind = "address"
	DriftRoute        DriftKind = "route"
	DriftSourceRule   DriftKind = "source-rule" // whatever checkSourceRouting reports
	DriftTxChecksum   DriftKind = "tx-checksum"
)

// Drift is one difference Check found.
type Drift struct {
	Kind   DriftKind
	Detail string // human-readable, one item of CheckError's text
}

// CheckError is what Check returns when it finds drift. Drifts keeps the
// items in the order Check finds them, so a caller can attach a cause and a
// fix to each kind; Error gives them all in one line, the text the daemon
// has always reported.
type CheckError struct {
	HostIfName, ContainerIfName, Netns string
	Drifts                             []Drift
}

func (e *CheckError) Error() string {
	details := make([]string, len(e.Drifts))
	for i, d := range e.Drifts {
		details[i] = d.Detail
	}
	return fmt.Sprintf("netns: check host %q / pod %q in netns %s: %d problem(s): %s",
		e.HostIfName, e.ContainerIfName, e.Netns, len(e.Drifts), strings.Join(details, "; "))
}

// driftList collects drift items as Check finds them.
type driftList []Drift

func (l *driftList) add(kind DriftKind, format string, args ...any) {
	*l = append(*l, Drift{Kind: kind, Detail: fmt.Sprintf(format, args...)})
}

// Check compares the live state with a and returns a *CheckError listing
// every drift found, or nil when everything matches. MTU 0 and a nil MAC in a
// are not checked. Addresses and routes in a must be present; extra ones
// (such as the IPv6 link-local address) are not drift.
func Check(podNetnsPath string, a Attachment) error {
	var drift driftList

	hostIndex := 0
	host, err := netlink.LinkByName(a.HostIfName)
	switch {
	case isLinkNotFound(err):
		drift.add(DriftHostLink, "host link %q is missing", a.HostIfName)
	case err != nil:
		drift.add(DriftHostLink, "host link %q: look up failed: %v", a.HostIfName, err)
	default:
		hostIndex = host.Attrs().Index
		if host.Type() != "veth" {
			drift.add(DriftHostLink, "host link %q is a %s, not a veth", a.HostIfName, host.Type())
		}
		if a.MTU > 0 && host.Attrs().MTU != a.MTU {
			drift.add(DriftHostMTU, "host link %q has MTU %d, want %d", a.HostIfName, host.Attrs().MTU, a.MTU)
		}
		if host.Attrs().Flags&net.FlagUp == 0 {
			drift.add(DriftHostLinkDown, "host link %q is down", a.HostIfName)
		}
	}

	drift = append(drift, checkPodSide(podNetnsPath, a, hostIndex)...)

	if len(drift) == 0 {
		// A plain nil: a nil *CheckError would be a non-nil error.
		return nil
	}
	return &CheckError{HostIfName: a.HostIfName, ContainerIfName: a.ContainerIfName, Netns: podNetnsPath, Drifts: drift}
}

func checkPodSide(podNetnsPath string, a Attachment, hostIndex int) []Drift {
	var drift driftList

	podNs, err := openNetns(podNetnsPath)
	if err != nil {
		drift.add(DriftNetns, "pod netns %s cannot be opened: %v", podNetnsPath, err)
		return drift
	}
	defer podNs.Close()

	pod, err := netlink.NewHandleAt(podNs, unix.NETLINK_ROUTE)
	if err != nil {
		drift.add(DriftNetns, "cannot open a netlink handle in pod netns %s: %v", podNetnsPath, err)
		return drift
	}
	defer pod.Close()

	l, err := pod.LinkByName(a.ContainerIfName)
	if isLinkNotFound(err) {
		drift.add(DriftPodLink, "pod link %q is missing", a.ContainerIfName)
		return drift
	} else if err != nil {
		drift.add(DriftPodLink, "pod link %q: look up failed: %v", a.ContainerIfName, err)
		return drift
	}
	attrs := l.Attrs()
	if l.Type() != "veth" {
		drift.add(DriftPodLink, "pod link %q is a %s, not a veth", a.ContainerIfName, l.Type())
	} else if hostIndex != 0 && attrs.ParentIndex != hostIndex {
		drift.add(DriftPodLink, "pod link %q is not the peer of host link %q (peer index %d, host index %d)",
			a.ContainerIfName, a.HostIfName, attrs.ParentIndex, hostIndex)
	}
	if a.MAC != nil && !slices.Equal(attrs.HardwareAddr, a.MAC) {
		drift.add(DriftMAC, "pod link %q has MAC %s, want %s", a.ContainerIfName, attrs.HardwareAddr, a.MAC)
	}
	if a.MTU > 0 && attrs.MTU != a.MTU {
		drift.add(DriftPodMTU, "pod link %q has MTU %d, want %d", a.ContainerIfName, attrs.MTU, a.MTU)
	}
	if attrs.Flags&net.FlagUp == 0 {
		drift.add(DriftPodLinkDown, "pod link %q is down", a.ContainerIfName)
	}

	if len(a.Addresses) > 0 {
		addrs, err := retryDump(func() ([]netlink.Addr, error) { return pod.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			drift.add(DriftAddress, "pod link %q: listing addresses failed: %v", a.ContainerIfName, err)
		} else {
			for _, want := range a.Addresses {
				if !slices.ContainsFunc(addrs, func(got netlink.Addr) bool {
					p, ok := ipNetToPrefix(got.IPNet)
					return ok && p == want
				}) {
					drift.add(DriftAddress, "pod link %q is missing address %s", a.ContainerIfName, want)
				}
			}
		}
	}

	for _, r := range a.Routes {
		found, err := hasRoute(pod, attrs.Index, r)
		if err == nil && !found {
			// The main-table route may belong to another interface (see
			// addRoute); this interface's own table must have it then.
			var elsewhere bool
			if elsewhere, err = hasRoute(pod, 0, r); err == nil && elsewhere {
				found, err = hasRouteInTable(pod, attrs.Index, sourceTable(attrs.Index), r)
			}
		}
		if err != nil {
			drift.add(DriftRoute, "pod link %q: listing routes failed: %v", a.ContainerIfName, err)
			break
		}
		if !found {
			drift.add(DriftRoute, "pod netns is missing route %s", r.String())
		}
	}

	drift = append(drift, checkSourceRouting(pod, attrs.Index, a)...)

	if a.DisableTxChecksumOffload {
		on, err := txChecksumEnabled(podNs, a.ContainerIfName)
		if err != nil {
			drift.add(DriftTxChecksum, "pod link %q: reading TX checksum offload failed: %v", a.ContainerIfName, err)
		} else if on {
			drift.add(DriftTxChecksum, "pod link %q has TX checksum offload enabled, want disabled", a.ContainerIfName)
		}
	}
	return drift
}

// MTUOfLinkWithAddress returns the MTU of the link in the caller's netns that
// carries addr (used to derive a safe pod MTU from the geneve underlay).
func MTUOfLinkWithAddress(addr netip.Addr) (int, error) {
	if !addr.IsValid() {
		return 0, errors.New("netns: MTU of link with address: invalid address")
	}
	addr = addr.Unmap().WithZone("")
	addrs, err := retryDump(func() ([]netlink.Addr, error) { return netlink.AddrList(nil, netlink.FAMILY_ALL) })
	if err != nil {
		return 0, fmt.Errorf("netns: MTU of link with address %s: list addresses: %w", addr, err)
	}
	for _, a := range addrs {
		if a.IPNet == nil {
			continue
		}
		got, ok := netip.AddrFromSlice(a.IP)
		if !ok || got.Unmap() != addr {
			continue
		}
		l, err := netlink.LinkByIndex(a.LinkIndex)
		if err != nil {
			return 0, fmt.Errorf("netns: MTU of link with address %s: look up link index %d: %w", addr, a.LinkIndex, err)
		}
		return l.Attrs().MTU, nil
	}
	return 0, fmt.Errorf("netns: MTU of link with address %s: no link carries this address", addr)
}

// Errors of ValidatePodNetns (and of every function given a pod netns).
var (
	// ErrNotNetns: the path exists but is not a network namespace.
	ErrNotNetns = errors.New("not a network namespace")
	// ErrStaleNetns: a regular file that is not a network namespace, what
	// a netns bind mount leaves behind once the namespace is gone.
	ErrStaleNetns = errors.New("not a network namespace any more (a leftover mount point)")
	// ErrOwnNetns: the path is the daemon's own network namespace (the
	// node's), which is never a pod's.
	ErrOwnNetns = errors.New("is the node's own network namespace, not a pod's")
)

// ownNetns identifies the caller's network namespace (device and inode of
// its nsfs file), read once: the daemon never moves.
var ownNetns = sync.OnceValues(func() (unix.Stat_t, error) {
	var st unix.Stat_t
	err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), &st)
	return st, err
})

// ValidatePodNetns checks that path is a network namespace other than the
// caller's own, without blocking on whatever else it may be (a FIFO).
// A missing path gives an error wrapping os.ErrNotExist.
func ValidatePodNetns(path string) error {
	h, err := openNetns(path)
	if err != nil {
		return err
	}
	return h.Close()
}

// openPod opens the pod's netns and a netlink handle bound to it, so the
// pod side is configured without switching any thread's namespace.
func openPod(path string) (netns.NsHandle, *netlink.Handle, error) {
	ns, err := openNetns(path)
	if err != nil {
		return ns, nil, err
	}
	h, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		ns.Close()
		return ns, nil, fmt.Errorf("netlink handle in pod netns: %w", err)
	}
	return ns, h, nil
}

// openNetns opens a network namespace by path and verifies it is one, and
// not the caller's own. O_NONBLOCK: opening a FIFO must not hang the
// daemon (it is then refused as not a netns).
func openNetns(path string) (netns.NsHandle, error) {
	if path == "" {
		return netns.None(), errors.New("empty netns path")
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return netns.None(), &os.PathError{Op: "open", Path: path, Err: err}
	}
	fail := func(err error) (netns.NsHandle, error) {
		unix.Close(fd)
		return netns.None(), err
	}
	var fs unix.Statfs_t
	if err := unix.Fstatfs(fd, &fs); err != nil {
		return fail(fmt.Errorf("statfs %s: %w", path, err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return fail(fmt.Errorf("stat %s: %w", path, err))
	}
	if fs.Type != unix.NSFS_MAGIC {
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			return fail(fmt.Errorf("%s: %w", path, ErrStaleNetns))
		}
		return fail(fmt.Errorf("%s: %w", path, ErrNotNetns))
	}
	if own, err := ownNetns(); err == nil && own.Dev == st.Dev && own.Ino == st.Ino {
		return fail(fmt.Errorf("%s %w", path, ErrOwnNetns))
	}
	return netns.NsHandle(fd), nil
}

func validate(a Attachment) error {
	if err := validateIfName(a.HostIfName); err != nil {
		return fmt.Errorf("host interface name: %w", err)
	}
	if err := validateIfName(a.ContainerIfName); err != nil {
		return fmt.Errorf("container interface name: %w", err)
	}
	if a.MAC != nil {
		if len(a.MAC) != 6 {
			return fmt.Errorf("MAC %s: want a 6-byte Ethernet address", a.MAC)
		}
		if a.MAC[0]&1 != 0 {
			return fmt.Errorf("MAC %s: multicast address", a.MAC)
		}
		if slices.Equal(a.MAC, net.HardwareAddr{0, 0, 0, 0, 0, 0}) {
			return fmt.Errorf("MAC %s: all-zero address", a.MAC)
		}
	}
	if a.MTU < 0 {
		return fmt.Errorf("MTU %d: negative", a.MTU)
	}
	for _, p := range a.Addresses {
		if !p.IsValid() {
			return errors.New("invalid address prefix")
		}
		if p.Addr().Is4In6() || p.Addr().Zone() != "" {
			return fmt.Errorf("address %s: IPv4-mapped or zoned addresses are not supported", p)
		}
	}
	for _, r := range a.Routes {
		if !r.Dst.IsValid() {
			return errors.New("route with invalid destination")
		}
		if r.Dst.Addr().Is4In6() {
			return fmt.Errorf("route %s: IPv4-mapped destinations are not supported", r.String())
		}
		if r.Gateway.IsValid() && r.Gateway.Unmap().Is4() != r.Dst.Addr().Is4() {
			return fmt.Errorf("route %s: gateway and destination families differ", r.String())
		}
	}
	return nil
}

// ValidateIfName checks an interface name the way the kernel will.
func ValidateIfName(name string) error { return validateIfName(name) }

func validateIfName(name string) error {
	switch {
	case name == "":
		return errors.New("empty")
	case len(name) >= unix.IFNAMSIZ:
		return fmt.Errorf("%q is longer than %d bytes", name, unix.IFNAMSIZ-1)
	case name == "." || name == "..":
		return fmt.Errorf("%q is reserved", name)
	case strings.ContainsAny(name, "/: \t\n\v\f\r\x00"):
		return fmt.Errorf("%q contains '/', ':', whitespace or NUL", name)
	}
	return nil
}

// disableIPv6 sets disable_ipv6 on ifName in the netns this process's
// /proc/sys belongs to (the caller's). Missing IPv6 support is not an error.
func disableIPv6(ifName string) error {
	p := filepath.Join("/proc/sys/net/ipv6/conf", ifName, "disable_ipv6")
	err := os.WriteFile(p, []byte("1"), 0o644)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	return err
}

func addRoute(h *netlink.Handle, linkIndex int, r Route) error {
	nr := &netlink.Route{
		LinkIndex: linkIndex,
		Dst:       prefixToIPNet(r.Dst, true),
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.Gateway.IsValid() {
		nr.Gw = net.IP(r.Gateway.Unmap().AsSlice())
	} else {
		nr.Scope = netlink.SCOPE_LINK
	}
	err := h.RouteAdd(nr)
	if errors.Is(err, unix.EEXIST) {
		// e.g. the subnet route the kernel installs for an address: fine if
		// the existing route is equivalent.
		if ok, lerr := hasRoute(h, linkIndex, r); lerr == nil && ok {
			return nil
		}
		// Another interface of the pod already routes there (the same
		// network attached twice, or overlapping networks). Its main-table
		// route stays; this interface's own table, which source-based
		// routing consults for its addresses, carries the route.
		if ok, lerr := hasRoute(h, 0, r); lerr == nil && ok {
			return nil
		}
		return fmt.Errorf("a different route to %s already exists: %w", r.Dst.Masked(), err)
	}
	return err
}

// hasRoute reports whether the main table has a route to r.Dst through
// linkIndex with r's gateway (or on-link when r has none).
// hasRoute reports whether the main table routes r via linkIndex (0: via
// any interface).
func hasRoute(h *netlink.Handle, linkIndex int, r Route) (bool, error) {
	family := netlink.FAMILY_V4
	if r.Dst.Addr().Is6() {
		family = netlink.FAMILY_V6
	}
	filter := &netlink.Route{LinkIndex: linkIndex, Table: unix.RT_TABLE_MAIN}
	mask := netlink.RT_FILTER_OIF | netlink.RT_FILTER_TABLE
	if linkIndex == 0 {
		mask = netlink.RT_FILTER_TABLE // any interface
	}
	routes, err := retryDump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(family, filter, mask)
	})
	if err != nil {
		return false, err
	}
	wantDst := r.Dst.Masked()
	wantGw := r.Gateway.Unmap()
	for _, got := range routes {
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if family == netlink.FAMILY_V6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if got.Dst != nil {
			p, ok := ipNetToPrefix(got.Dst)
			if !ok {
				continue
			}
			dst = p.Masked()
		}
		if dst != wantDst {
			continue
		}
		var gw netip.Addr
		if got.Gw != nil {
			gw, _ = netip.AddrFromSlice(got.Gw)
			gw = gw.Unmap()
		}
		if gw == wantGw {
			return true, nil
		}
	}
	return false, nil
}

func retryDump[T any](f func() (T, error)) (T, error) {
	var (
		v   T
		err error
	)
	for range maxDumpRetries {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	return v, err
}

func prefixToIPNet(p netip.Prefix, masked bool) *net.IPNet {
	if masked {
		p = p.Masked()
	}
	a := p.Addr().Unmap()
	return &net.IPNet{IP: net.IP(a.AsSlice()), Mask: net.CIDRMask(p.Bits(), a.BitLen())}
}

func ipNetToPrefix(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := netip.AddrFromSlice(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	a = a.Unmap()
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

// String is the route as CHECK and diagnose report it: "dst via gateway",
// or "dst on-link".
func (r Route) String() string {
	if r.Gateway.IsValid() {
		return fmt.Sprintf("%s via %s", r.Dst, r.Gateway)
	}
	return fmt.Sprintf("%s on-link", r.Dst)
}

func toLink(l netlink.Link) Link {
	a := l.Attrs()
	return Link{Name: a.Name, Index: a.Index, MAC: slices.Clone(a.HardwareAddr)}
}

func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}
