package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// driftEnv is an attachment set up by Setup, with handles on both ends.
type driftEnv struct {
	t    *testing.T
	path string
	a    Attachment
	res  Result
	ph   *netlink.Handle
	pod  netlink.Link
	host netlink.Link
	// linkLocal is the pod link's IPv6 link-local address, once
	// waitLinkLocal has seen it.
	linkLocal netip.Prefix
}

func newDriftEnv(t *testing.T) driftEnv {
	t.Helper()
	path := newPodNetns(t)
	a := dualStack(newHostName(t))
	res := setupOrFatal(t, path, a)
	ph := podHandle(t, path)
	pod, err := ph.LinkByName(a.ContainerIfName)
	if err != nil {
		t.Fatal(err)
	}
	host, err := netlink.LinkByName(a.HostIfName)
	if err != nil {
		t.Fatal(err)
	}
	return driftEnv{t: t, path: path, a: a, res: res, ph: ph, pod: pod, host: host}
}

// deleteDefaultRoute4 deletes the pod's main-table IPv4 default route.
func (e driftEnv) deleteDefaultRoute4() error {
	return e.ph.RouteDel(&netlink.Route{LinkIndex: e.pod.Attrs().Index, Dst: prefixToIPNet(pfx("0.0.0.0/0"), true), Gw: net.ParseIP("10.99.0.1")})
}

// plugSecond sets up another, address-less attachment "net2" in the same
// pod netns and returns its host end's name.
func (e driftEnv) plugSecond() string {
	e.t.Helper()
	other := Attachment{HostIfName: newHostName(e.t), ContainerIfName: "net2"}
	setupOrFatal(e.t, e.path, other)
	return other.HostIfName
}

// TestCheckDriftKinds: every drift item carries the kind a diagnosis keys
// its cause and fix on.
func TestCheckDriftKinds(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name   string
		mutate func(e driftEnv) error
		// check returns the netns path and attachment given to Check;
		// default: the ones set up.
		check func(e driftEnv) (string, Attachment)
		want  []DriftKind // exactly these kinds, in any order
	}{
		{
			// The kernel also flushes the IPv6 addresses and the routes
			// through a link that goes down.
			name:   "pod link down",
			mutate: func(e driftEnv) error { return e.ph.LinkSetDown(e.pod) },
			want:   []DriftKind{DriftPodLinkDown, DriftAddress, DriftRoute, DriftRoute},
		},
		{
			name:   "pod MTU changed",
			mutate: func(e driftEnv) error { return e.ph.LinkSetMTU(e.pod, 1300) },
			want:   []DriftKind{DriftPodMTU},
		},
		{
			name:   "route deleted",
			mutate: driftEnv.deleteDefaultRoute4,
			want:   []DriftKind{DriftRoute},
		},
		{
			name: "IPv6 address removed",
			mutate: func(e driftEnv) error {
				return e.ph.AddrDel(e.pod, &netlink.Addr{IPNet: prefixToIPNet(pfx("fd00:99::5/64"), false)})
			},
			want: []DriftKind{DriftAddress},
		},
		{
			// The IPv4 default route's gateway is no longer reachable:
			// the kernel removes the route with the address.
			name: "IPv4 address removed",
			mutate: func(e driftEnv) error {
				return e.ph.AddrDel(e.pod, &netlink.Addr{IPNet: prefixToIPNet(pfx("10.99.0.5/24"), false)})
			},
			want: []DriftKind{DriftAddress, DriftRoute},
		},
		{
			name: "source rule deleted",
			mutate: func(e driftEnv) error {
				return e.ph.RuleDel(sourceRule(ip("fd00:99::5"), sourceTable(e.res.Pod.Index)))
			},
			want: []DriftKind{DriftSourceRule},
		},
		{
			name:   "host link down",
			mutate: func(e driftEnv) error { return netlink.LinkSetDown(e.host) },
			want:   []DriftKind{DriftHostLinkDown},
		},
		{
			name:   "host MTU changed",
			mutate: func(e driftEnv) error { return netlink.LinkSetMTU(e.host, 1350) },
			want:   []DriftKind{DriftHostMTU},
		},
		{
			name:   "MAC changed",
			mutate: func(e driftEnv) error { return e.ph.LinkSetHardwareAddr(e.pod, mustMAC("0a:58:0a:63:00:99")) },
			want:   []DriftKind{DriftMAC},
		},
		{
			name:   "TX checksum offload re-enabled",
			mutate: func(e driftEnv) error { return setTxChecksum(openNs(e.t, e.path), e.a.ContainerIfName, true) },
			want:   []DriftKind{DriftTxChecksum},
		},
		{
			name:   "veth deleted",
			mutate: func(e driftEnv) error { return e.ph.LinkDel(e.pod) },
			want:   []DriftKind{DriftHostLink, DriftPodLink},
		},
		{
			name: "host link replaced by a non-veth",
			mutate: func(e driftEnv) error {
				return errors.Join(netlink.LinkDel(e.host), netlink.LinkAdd(nonVeth(e.a.HostIfName, 1400)))
			},
			want: []DriftKind{DriftHostLink, DriftHostLinkDown, DriftPodLink},
		},
		{
			name:   "pod link is another host link's peer",
			mutate: func(driftEnv) error { return nil },
			check: func(e driftEnv) (string, Attachment) {
				e.plugSecond()
				return e.path, Attachment{HostIfName: e.a.HostIfName, ContainerIfName: "net2"}
			},
			want: []DriftKind{DriftPodLink},
		},
		{
			name:   "pod netns gone",
			mutate: func(driftEnv) error { return nil },
			check:  func(e driftEnv) (string, Attachment) { return e.path + "-does-not-exist", e.a },
			want:   []DriftKind{DriftNetns},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newDriftEnv(t)
			if err := Check(e.path, e.a); err != nil {
				t.Fatalf("Check before drift: %v", err)
			}
			if err := tc.mutate(e); err != nil {
				t.Fatalf("mutate: %v", err)
			}
			path, a := e.path, e.a
			if tc.check != nil {
				path, a = tc.check(e)
			}
			err := Check(path, a)
			var ce *CheckError
			if !errors.As(err, &ce) {
				t.Fatalf("Check = %v (%T), want a *CheckError", err, err)
			}
			var got []DriftKind
			for _, d := range ce.Drifts {
				got = append(got, d.Kind)
				if d.Detail == "" {
					t.Errorf("drift of kind %s without detail", d.Kind)
				}
			}
			want := slices.Clone(tc.want)
			slices.Sort(got)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Errorf("drift kinds %v, want %v; error: %v", got, want, err)
			}
		})
	}
}

// TestCheckErrorTextUnchanged pins the text of a multi-drift Check error:
// the daemon reports it as is, so it must stay byte for byte what it was
// before Check returned a *CheckError. The format below is the one Check
// used when it built the text itself; the error must also be found through
// the wrapping the daemon adds.
func TestCheckErrorTextUnchanged(t *testing.T) {
	requireRoot(t)
	e := newDriftEnv(t)
	table := sourceTable(e.res.Pod.Index)
	if err := errors.Join(
		e.ph.LinkSetMTU(e.pod, 1280),
		e.ph.LinkSetHardwareAddr(e.pod, mustMAC("0a:58:0a:63:00:98")),
		e.ph.RuleDel(sourceRule(ip("10.99.0.5"), table)),
		setTxChecksum(openNs(t, e.path), e.a.ContainerIfName, true),
	); err != nil {
		t.Fatalf("mutate: %v", err)
	}

	wantDrifts := []Drift{
		{DriftMAC, `pod link "net1" has MAC 0a:58:0a:63:00:98, want 0a:58:0a:63:00:05`},
		{DriftPodMTU, `pod link "net1" has MTU 1280, want 1400`},
		{DriftSourceRule, fmt.Sprintf("pod netns is missing rule from 10.99.0.5 lookup %d", table)},
		{DriftTxChecksum, `pod link "net1" has TX checksum offload enabled, want disabled`},
	}
	var items []string
	for _, d := range wantDrifts {
		items = append(items, d.Detail)
	}
	want := fmt.Sprintf("netns: check host %q / pod %q in netns %s: %d problem(s): %s",
		e.a.HostIfName, e.a.ContainerIfName, e.path, len(items), strings.Join(items, "; "))

	err := Check(e.path, e.a)
	if err == nil {
		t.Fatal("Check returned nil after drift")
	}
	if err.Error() != want {
		t.Fatalf("Check error text changed:\n got %q\nwant %q", err.Error(), want)
	}
	wrapped := fmt.Errorf("attachment drifted: %w", errors.Join(errors.New("other drift"), err))
	var ce *CheckError
	if !errors.As(wrapped, &ce) {
		t.Fatalf("errors.As(%v) found no *CheckError", wrapped)
	}
	if ce.HostIfName != e.a.HostIfName || ce.ContainerIfName != e.a.ContainerIfName || ce.Netns != e.path {
		t.Errorf("CheckError names %q / %q / %q, want %q / %q / %q",
			ce.HostIfName, ce.ContainerIfName, ce.Netns, e.a.HostIfName, e.a.ContainerIfName, e.path)
	}
	if !slices.Equal(ce.Drifts, wantDrifts) {
		t.Errorf("Drifts = %q, want %q", ce.Drifts, wantDrifts)
	}
}

// waitOperUp waits until both ends report operstate up: the kernel sets
// it asynchronously (linkwatch) after the carrier comes up.
func waitOperUp(t *testing.T, e driftEnv) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		h, herr := netlink.LinkByName(e.a.HostIfName)
		p, perr := e.ph.LinkByName(e.a.ContainerIfName)
		if herr == nil && perr == nil && h.Attrs().OperState == netlink.OperUp && p.Attrs().OperState == netlink.OperUp {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("links not operationally up: host %v %v, pod %v %v", h, herr, p, perr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitLinkLocal waits for the kernel to give the pod link its IPv6
// link-local address (addrconf does it once the carrier is up) and returns
// it.
func waitLinkLocal(t *testing.T, e driftEnv) netip.Prefix {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		addrs, err := e.ph.AddrList(e.pod, netlink.FAMILY_V6)
		if err != nil {
			t.Fatal(err)
		}
		for _, a := range addrs {
			if p, ok := ipNetToPrefix(a.IPNet); ok && p.Addr().IsLinkLocalUnicast() {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no IPv6 link-local address on the pod link: %v", addrs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func route(table int, dst, gw, scope string) RouteState {
	r := RouteState{Table: table, Dst: pfx(dst), Scope: scope}
	if gw != "" {
		r.Gateway = ip(gw)
	}
	return r
}

func TestInspect(t *testing.T) {
	requireRoot(t)
	tests := []struct {
		name   string
		mutate func(e driftEnv) error
		verify func(t *testing.T, e driftEnv, st PodState)
	}{
		{
			name:   "healthy",
			mutate: func(driftEnv) error { return nil },
			verify: func(t *testing.T, e driftEnv, st PodState) {
				wantHost := LinkState{Name: e.a.HostIfName, Exists: true, Index: e.res.Host.Index, AdminUp: true,
					OperState: "up", MTU: 1400, MAC: e.res.Host.MAC, Type: "veth"}
				wantPod := LinkState{Name: "net1", Exists: true, Index: e.res.Pod.Index, AdminUp: true,
					OperState: "up", MTU: 1400, MAC: e.a.MAC, Type: "veth"}
				if !reflect.DeepEqual(st.Host, wantHost) {
					t.Errorf("Host = %+v, want %+v", st.Host, wantHost)
				}
				if !reflect.DeepEqual(st.Pod, wantPod) {
					t.Errorf("Pod = %+v, want %+v", st.Pod, wantPod)
				}
				if !st.PeerOfHost {
					t.Error("PeerOfHost = false")
				}
				wantAddrs := []netip.Prefix{pfx("10.99.0.5/24"), pfx("fd00:99::5/64"), e.linkLocal}
				if got := slices.SortedFunc(slices.Values(st.Addresses), netip.Prefix.Compare); !slices.Equal(got, wantAddrs) {
					t.Errorf("Addresses = %v, want %v", got, wantAddrs)
				}
				if st.TxChecksumOffload == nil || *st.TxChecksumOffload {
					t.Errorf("TxChecksumOffload = %v, want false", st.TxChecksumOffload)
				}
				table := sourceTable(e.res.Pod.Index)
				main := unix.RT_TABLE_MAIN
				// IPv6 routes have no scope of their own: universe.
				for _, want := range []RouteState{
					route(main, "10.99.0.0/24", "", "link"),
					route(main, "0.0.0.0/0", "10.99.0.1", "universe"),
					route(main, "fd00:99::/64", "", "universe"),
					route(main, "::/0", "fd00:99::1", "universe"),
					route(table, "10.99.0.0/24", "", "link"),
					route(table, "0.0.0.0/0", "10.99.0.1", "universe"),
					route(table, "fd00:99::/64", "", "universe"),
					route(table, "::/0", "fd00:99::1", "universe"),
				} {
					if !slices.Contains(st.Routes, want) {
						t.Errorf("route %+v missing from %+v", want, st.Routes)
					}
				}
				for _, r := range st.Routes {
					if r.Table != main && r.Table != table {
						t.Errorf("route %+v is in neither the main table nor %d", r, table)
					}
				}
				wantRules := []RuleState{
					{Priority: table, Src: pfx("10.99.0.5/32"), Table: table},
					{Priority: table, Src: pfx("fd00:99::5/128"), Table: table},
				}
				if !slices.Equal(st.Rules, wantRules) {
					t.Errorf("Rules = %+v, want %+v", st.Rules, wantRules)
				}
			},
		},
		{
			// The kernel flushes the IPv6 addresses and every route
			// through a link that goes down; the rules stay.
			name:   "pod link down",
			mutate: func(e driftEnv) error { return e.ph.LinkSetDown(e.pod) },
			verify: func(t *testing.T, e driftEnv, st PodState) {
				if st.Pod.AdminUp || st.Pod.OperState != "down" {
					t.Errorf("Pod admin up %v, operstate %q; want down", st.Pod.AdminUp, st.Pod.OperState)
				}
				if !st.Host.AdminUp || !st.PeerOfHost {
					t.Errorf("host admin up %v, peer %v; want both", st.Host.AdminUp, st.PeerOfHost)
				}
				if !slices.Contains(st.Addresses, pfx("10.99.0.5/24")) || slices.Contains(st.Addresses, pfx("fd00:99::5/64")) {
					t.Errorf("Addresses = %v, want the IPv4 one only", st.Addresses)
				}
				if len(st.Routes) != 0 {
					t.Errorf("Routes = %+v, want none", st.Routes)
				}
				if len(st.Rules) != 2 {
					t.Errorf("Rules = %+v, want both", st.Rules)
				}
			},
		},
		{
			name:   "pod MTU changed",
			mutate: func(e driftEnv) error { return e.ph.LinkSetMTU(e.pod, 1300) },
			verify: func(t *testing.T, e driftEnv, st PodState) {
				if st.Pod.MTU != 1300 || st.Host.MTU != 1400 {
					t.Errorf("MTU pod %d, host %d; want 1300, 1400", st.Pod.MTU, st.Host.MTU)
				}
			},
		},
		{
			name:   "route deleted",
			mutate: driftEnv.deleteDefaultRoute4,
			verify: func(t *testing.T, e driftEnv, st PodState) {
				gone := route(unix.RT_TABLE_MAIN, "0.0.0.0/0", "10.99.0.1", "universe")
				kept := route(sourceTable(e.res.Pod.Index), "0.0.0.0/0", "10.99.0.1", "universe")
				if slices.Contains(st.Routes, gone) || !slices.Contains(st.Routes, kept) {
					t.Errorf("Routes = %+v, want %+v without %+v", st.Routes, kept, gone)
				}
			},
		},
		{
			name:   "host link down",
			mutate: func(e driftEnv) error { return netlink.LinkSetDown(e.host) },
			verify: func(t *testing.T, e driftEnv, st PodState) {
				if st.Host.AdminUp || st.Host.OperState != "down" {
					t.Errorf("Host admin up %v, operstate %q; want down", st.Host.AdminUp, st.Host.OperState)
				}
				if !st.Pod.AdminUp {
					t.Error("Pod link down")
				}
			},
		},
		{
			name:   "veth deleted (missing links are state, not errors)",
			mutate: func(e driftEnv) error { return e.ph.LinkDel(e.pod) },
			verify: func(t *testing.T, e driftEnv, st PodState) {
				want := PodState{Host: LinkState{Name: e.a.HostIfName}, Pod: LinkState{Name: "net1"}}
				if !reflect.DeepEqual(st, want) {
					t.Errorf("state %+v, want %+v", st, want)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newDriftEnv(t)
			waitOperUp(t, e)
			e.linkLocal = waitLinkLocal(t, e)
			if err := Check(e.path, e.a); err != nil {
				t.Fatalf("Check before the change: %v", err)
			}
			if err := tc.mutate(e); err != nil {
				t.Fatalf("mutate: %v", err)
			}
			st, err := Inspect(e.path, e.a.HostIfName, e.a.ContainerIfName)
			if err != nil {
				t.Fatalf("Inspect: %v", err)
			}
			tc.verify(t, e, st)
		})
	}
}

// TestInspectPeer: PeerOfHost is false for a pod link that is another
// host link's peer, though both links exist.
func TestInspectPeer(t *testing.T) {
	requireRoot(t)
	e := newDriftEnv(t)
	other := e.plugSecond()
	st, err := Inspect(e.path, e.a.HostIfName, "net2")
	if err != nil {
		t.Fatal(err)
	}
	if st.PeerOfHost || !st.Host.Exists || !st.Pod.Exists {
		t.Errorf("host %s / net2: peer %v, host exists %v, pod exists %v; want not peers, both there",
			e.a.HostIfName, st.PeerOfHost, st.Host.Exists, st.Pod.Exists)
	}
	if st, err := Inspect(e.path, other, "net2"); err != nil || !st.PeerOfHost {
		t.Errorf("host %s / net2: peer %v, err %v; want peers", other, st.PeerOfHost, err)
	}
}

// TestInspectErrors: what keeps Inspect from reading the state at all.
func TestInspectErrors(t *testing.T) {
	requireRoot(t)
	path := newPodNetns(t)
	tests := []struct {
		name          string
		path, host, p string
		want          error  // errors.Is target, if any
		text          string // substring of the error
	}{
		{name: "netns missing", path: path + "-nope", host: "ovtnone", p: "net1", want: os.ErrNotExist, text: "open pod netns"},
		{name: "own netns", path: "/proc/self/ns/net", host: "ovtnone", p: "net1", want: ErrOwnNetns},
		{name: "invalid pod name", path: path, host: "ovtnone", p: "a-very-long-ifname", text: "pod interface name"},
		{name: "invalid host name", path: path, host: "", p: "net1", text: "host interface name"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Inspect(tc.path, tc.host, tc.p)
			if err == nil {
				t.Fatal("Inspect succeeded")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("error %v, want one wrapping %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not mention %q", err, tc.text)
			}
		})
	}
}
