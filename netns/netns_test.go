package netns

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// These tests run against the real kernel and need root (CAP_NET_ADMIN,
// CAP_SYS_ADMIN). Every test creates its own named netns ("ovtest-<hex>")
// and host links named "ovt<hex>" in the test process's netns, and removes
// them in t.Cleanup even on failure.

const netnsDir = "/var/run/netns"

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: creates network namespaces and links")
	}
}

func randHex(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// onLockedThread runs f on a dedicated goroutine locked to its OS thread. If
// f leaves the thread in another netns and it cannot be restored, the
// goroutine exits locked so the runtime discards the thread.
func onLockedThread(t *testing.T, target netns.NsHandle, f func() error) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer orig.Close()
		if target.IsOpen() {
			if err := netns.Set(target); err != nil {
				runtime.UnlockOSThread()
				errc <- err
				return
			}
		}
		ferr := f()
		if err := netns.Set(orig); err != nil {
			errc <- errors.Join(ferr, fmt.Errorf("restore netns: %w", err))
			return // stay locked: thread is dropped
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// newPodNetns creates a named netns and returns its path. netns.NewNamed
// moves the calling thread into the new netns, so it runs on a locked
// thread that is switched back afterwards.
func newPodNetns(t *testing.T) string {
	t.Helper()
	name := "ovtest-" + randHex(t, 4)
	err := onLockedThread(t, netns.None(), func() error {
		h, err := netns.NewNamed(name)
		if err != nil {
			return err
		}
		return h.Close()
	})
	t.Cleanup(func() {
		if err := netns.DeleteNamed(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	if err != nil {
		t.Fatalf("create netns %s: %v", name, err)
	}
	return filepath.Join(netnsDir, name)
}

// newHostName returns a unique host link name and makes sure no link with
// that name survives the test.
func newHostName(t *testing.T) string {
	t.Helper()
	name := "ovt" + randHex(t, 4)
	t.Cleanup(func() {
		if l, err := netlink.LinkByName(name); err == nil {
			if err := netlink.LinkDel(l); err != nil {
				t.Errorf("cleanup: delete host link %s: %v", name, err)
			}
		}
	})
	return name
}

func openNs(t *testing.T, path string) netns.NsHandle {
	t.Helper()
	h, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatalf("open netns %s: %v", path, err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

func podHandle(t *testing.T, path string) *netlink.Handle {
	t.Helper()
	h, err := netlink.NewHandleAt(openNs(t, path), unix.NETLINK_ROUTE)
	if err != nil {
		t.Fatalf("netlink handle in %s: %v", path, err)
	}
	t.Cleanup(h.Close)
	return h
}

func hostLinkExists(t *testing.T, name string) bool {
	t.Helper()
	_, err := netlink.LinkByName(name)
	if err == nil {
		return true
	}
	if !isLinkNotFound(err) {
		t.Fatalf("look up host link %s: %v", name, err)
	}
	return false
}

// nonVeth returns a link that is not a veth (a bridge: the dummy driver may
// not be available).
func nonVeth(name string, mtu int) netlink.Link {
	return &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: mtu, TxQLen: -1}}
}

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

func pfx(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func ip(s string) netip.Addr    { return netip.MustParseAddr(s) }

func dualStack(host string) Attachment {
	return Attachment{
		HostIfName:      host,
		ContainerIfName: "net1",
		MAC:             mustMAC("0a:58:0a:63:00:05"),
		Addresses:       []netip.Prefix{pfx("10.99.0.5/24"), pfx("fd00:99::5/64")},
		Routes: []Route{
			{Dst: pfx("0.0.0.0/0"), Gateway: ip("10.99.0.1")},
			{Dst: pfx("::/0"), Gateway: ip("fd00:99::1")},
		},
		MTU:                      1400,
		DisableTxChecksumOffload: true,
	}
}

func setupOrFatal(t *testing.T, path string, a Attachment) Result {
	t.Helper()
	res, err := Setup(path, a)
	if err != nil {
		t.Fatalf("Setup: %v", err)
	}
	return res
}

func TestSetup(t *testing.T) {
	requireRoot(t)

	tests := []struct {
		name string
		a    func(host string) Attachment
		// probe is a destination whose route lookup must go via gw.
		probe, gw netip.Addr
	}{
		{
			name: "ipv4",
			a: func(host string) Attachment {
				return Attachment{
					HostIfName: host, ContainerIfName: "eth0",
					MAC:                      mustMAC("0a:58:0a:63:00:07"),
					Addresses:                []netip.Prefix{pfx("10.99.0.7/24")},
					MTU:                      1400,
					DisableTxChecksumOffload: true,
				}
			},
		},
		{
			name: "ipv6",
			a: func(host string) Attachment {
				return Attachment{
					HostIfName: host, ContainerIfName: "net1",
					MAC:       mustMAC("0a:58:00:00:00:08"),
					Addresses: []netip.Prefix{pfx("fd00:99::8/64")},
					MTU:       1450,
				}
			},
		},
		{
			name:  "dual-stack with default routes",
			a:     dualStack,
			probe: ip("203.0.113.9"), gw: ip("10.99.0.1"),
		},
		{
			name: "no addresses (L2 only), kernel MAC and MTU",
			a: func(host string) Attachment {
				return Attachment{HostIfName: host, ContainerIfName: "net2", DisableTxChecksumOffload: true}
			},
		},
		{
			name: "routes: on-link, via gateway, link-local v6 gateway, duplicate of subnet route",
			a: func(host string) Attachment {
				return Attachment{
					HostIfName: host, ContainerIfName: "net3",
					MAC:       mustMAC("0a:58:0a:63:00:09"),
					Addresses: []netip.Prefix{pfx("10.99.0.9/24"), pfx("fd00:99::9/64")},
					Routes: []Route{
						{Dst: pfx("10.99.0.0/24")},                            // same as the kernel's subnet route
						{Dst: pfx("192.168.77.0/24")},                         // on-link
						{Dst: pfx("172.16.0.0/12"), Gateway: ip("10.99.0.1")}, // via gateway
						{Dst: pfx("2001:db8:1::/48"), Gateway: ip("fe80::1")},
						{Dst: pfx("2001:db8:2::/48"), Gateway: ip("fd00:99::1")},
					},
					MTU: 9000,
				}
			},
			probe: ip("172.20.1.1"), gw: ip("10.99.0.1"),
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := newPodNetns(t)
			host := newHostName(t)
			a := tc.a(host)

			res := setupOrFatal(t, path, a)

			// Host end.
			hl, err := netlink.LinkByName(host)
			if err != nil {
				t.Fatalf("host link: %v", err)
			}
			wantMTU := a.MTU
			if wantMTU == 0 {
				wantMTU = 1500
			}
			if hl.Type() != "veth" {
				t.Errorf("host link type %s, want veth", hl.Type())
			}
			if hl.Attrs().MTU != wantMTU {
				t.Errorf("host MTU %d, want %d", hl.Attrs().MTU, wantMTU)
			}
			if hl.Attrs().Flags&net.FlagUp == 0 {
				t.Error("host link is down")
			}
			if res.Host.Name != host || res.Host.Index != hl.Attrs().Index || !slices.Equal(res.Host.MAC, hl.Attrs().HardwareAddr) {
				t.Errorf("Result.Host = %+v, live %s/%d/%s", res.Host, hl.Attrs().Name, hl.Attrs().Index, hl.Attrs().HardwareAddr)
			}
			if b, err := os.ReadFile(filepath.Join("/proc/sys/net/ipv6/conf", host, "disable_ipv6")); err == nil {
				if strings.TrimSpace(string(b)) != "1" {
					t.Errorf("host end disable_ipv6 = %q, want 1", strings.TrimSpace(string(b)))
				}
			}

			// Pod end.
			ph := podHandle(t, path)
			pl, err := ph.LinkByName(a.ContainerIfName)
			if err != nil {
				t.Fatalf("pod link: %v", err)
			}
			if a.MAC != nil && !slices.Equal(pl.Attrs().HardwareAddr, a.MAC) {
				t.Errorf("pod MAC %s, want %s", pl.Attrs().HardwareAddr, a.MAC)
			}
			if len(pl.Attrs().HardwareAddr) != 6 {
				t.Errorf("pod MAC %s", pl.Attrs().HardwareAddr)
			}
			if pl.Attrs().MTU != wantMTU {
				t.Errorf("pod MTU %d, want %d", pl.Attrs().MTU, wantMTU)
			}
			if pl.Attrs().Flags&net.FlagUp == 0 {
				t.Error("pod link is down")
			}
			if pl.Attrs().ParentIndex != hl.Attrs().Index {
				t.Errorf("pod link peer index %d, want host index %d", pl.Attrs().ParentIndex, hl.Attrs().Index)
			}
			if res.Pod.Name != a.ContainerIfName || res.Pod.Index != pl.Attrs().Index || !slices.Equal(res.Pod.MAC, pl.Attrs().HardwareAddr) {
				t.Errorf("Result.Pod = %+v, live %s/%d/%s", res.Pod, pl.Attrs().Name, pl.Attrs().Index, pl.Attrs().HardwareAddr)
			}

			addrs, err := ph.AddrList(pl, netlink.FAMILY_ALL)
			if err != nil {
				t.Fatalf("AddrList: %v", err)
			}
			for _, want := range a.Addresses {
				i := slices.IndexFunc(addrs, func(got netlink.Addr) bool {
					p, ok := ipNetToPrefix(got.IPNet)
					return ok && p == want
				})
				if i < 0 {
					t.Errorf("address %s missing; have %v", want, addrs)
					continue
				}
				if want.Addr().Is6() {
					if addrs[i].Flags&unix.IFA_F_NODAD == 0 {
						t.Errorf("address %s without IFA_F_NODAD (flags %#x)", want, addrs[i].Flags)
					}
					if addrs[i].Flags&(unix.IFA_F_TENTATIVE|unix.IFA_F_DADFAILED) != 0 {
						t.Errorf("address %s not usable (flags %#x)", want, addrs[i].Flags)
					}
				}
			}
			if len(a.Addresses) == 0 {
				for _, got := range addrs {
					if got.IP.To4() != nil || !got.IP.IsLinkLocalUnicast() {
						t.Errorf("L2-only pod link has address %s", got.IPNet)
					}
				}
			}

			for _, r := range a.Routes {
				ok, err := hasRoute(ph, pl.Attrs().Index, r)
				if err != nil || !ok {
					t.Errorf("route %s missing (err %v)", r.String(), err)
				}
			}
			if tc.probe.IsValid() {
				got, err := ph.RouteGet(net.IP(tc.probe.AsSlice()))
				if err != nil || len(got) == 0 {
					t.Fatalf("RouteGet %s: %v", tc.probe, err)
				}
				if gw, _ := netip.AddrFromSlice(got[0].Gw); gw.Unmap() != tc.gw || got[0].LinkIndex != pl.Attrs().Index {
					t.Errorf("RouteGet %s = via %s dev %d, want via %s dev %d", tc.probe, got[0].Gw, got[0].LinkIndex, tc.gw, pl.Attrs().Index)
				}
			}

			on, err := txChecksumEnabled(openNs(t, path), a.ContainerIfName)
			if err != nil {
				t.Fatalf("read TX checksum: %v", err)
			}
			if on == a.DisableTxChecksumOffload {
				t.Errorf("TX checksum offload on=%v, DisableTxChecksumOffload=%v", on, a.DisableTxChecksumOffload)
			}

			if err := Check(path, a); err != nil {
				t.Errorf("Check right after Setup: %v", err)
			}

			if err := Teardown(host); err != nil {
				t.Fatalf("Teardown: %v", err)
			}
			if hostLinkExists(t, host) {
				t.Error("host link survives Teardown")
			}
			if _, err := ph.LinkByName(a.ContainerIfName); !isLinkNotFound(err) {
				t.Errorf("pod link survives Teardown (err %v)", err)
			}
		})
	}
}

func TestCheckReportsDrift(t *testing.T) {
	requireRoot(t)

	type env struct {
		t    *testing.T
		path string
		a    Attachment
		ph   *netlink.Handle
		pod  netlink.Link
		host netlink.Link
	}
	tests := []struct {
		name   string
		mutate func(e env) error
		path   func(e env) string // netns path passed to Check; default e.path
		want   []string           // substrings expected in the error
	}{
		{
			name:   "pod MTU changed",
			mutate: func(e env) error { return e.ph.LinkSetMTU(e.pod, 1300) },
			want:   []string{`pod link "net1" has MTU 1300, want 1400`},
		},
		{
			name:   "host MTU changed",
			mutate: func(e env) error { return netlink.LinkSetMTU(e.host, 1350) },
			want:   []string{"has MTU 1350, want 1400"},
		},
		{
			name: "IPv4 address deleted",
			mutate: func(e env) error {
				return e.ph.AddrDel(e.pod, &netlink.Addr{IPNet: prefixToIPNet(pfx("10.99.0.5/24"), false)})
			},
			want: []string{"missing address 10.99.0.5/24"},
		},
		{
			name: "IPv6 address deleted",
			mutate: func(e env) error {
				return e.ph.AddrDel(e.pod, &netlink.Addr{IPNet: prefixToIPNet(pfx("fd00:99::5/64"), false)})
			},
			want: []string{"missing address fd00:99::5/64"},
		},
		{
			name: "default route deleted",
			mutate: func(e env) error {
				return e.ph.RouteDel(&netlink.Route{LinkIndex: e.pod.Attrs().Index, Dst: prefixToIPNet(pfx("0.0.0.0/0"), true), Gw: net.ParseIP("10.99.0.1")})
			},
			want: []string{"missing route 0.0.0.0/0 via 10.99.0.1"},
		},
		{
			name:   "MAC changed",
			mutate: func(e env) error { return e.ph.LinkSetHardwareAddr(e.pod, mustMAC("0a:58:0a:63:00:99")) },
			want:   []string{"has MAC 0a:58:0a:63:00:99, want 0a:58:0a:63:00:05"},
		},
		{
			// The kernel also flushes the IPv6 addresses and the routes
			// through a link that goes down: all of it is reported.
			name:   "pod link down",
			mutate: func(e env) error { return e.ph.LinkSetDown(e.pod) },
			want: []string{`pod link "net1" is down`, "missing address fd00:99::5/64",
				"missing route 0.0.0.0/0 via 10.99.0.1"},
		},
		{
			name:   "host link down",
			mutate: func(e env) error { return netlink.LinkSetDown(e.host) },
			want:   []string{"is down"},
		},
		{
			name: "TX checksum offload re-enabled",
			mutate: func(e env) error {
				return setTxChecksum(openNs(e.t, e.path), "net1", true)
			},
			want: []string{"TX checksum offload enabled"},
		},
		{
			name:   "pod link deleted",
			mutate: func(e env) error { return e.ph.LinkDel(e.pod) },
			want:   []string{`pod link "net1" is missing`, "host link", "is missing"},
		},
		{
			name: "host link replaced by a non-veth",
			mutate: func(e env) error {
				if err := netlink.LinkDel(e.host); err != nil {
					return err
				}
				return netlink.LinkAdd(nonVeth(e.a.HostIfName, 1400))
			},
			want: []string{"is a bridge, not a veth", `pod link "net1" is missing`},
		},
		{
			name: "several drifts at once",
			mutate: func(e env) error {
				return errors.Join(e.ph.LinkSetMTU(e.pod, 1280), e.ph.LinkSetHardwareAddr(e.pod, mustMAC("0a:58:0a:63:00:98")))
			},
			want: []string{"MTU 1280", "has MAC 0a:58:0a:63:00:98", "2 problem(s)"},
		},
		{
			name:   "pod netns gone",
			mutate: func(e env) error { return nil },
			path:   func(e env) string { return e.path + "-does-not-exist" },
			want:   []string{"cannot be opened"},
		},
	}

	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := newPodNetns(t)
			host := newHostName(t)
			a := dualStack(host)
			setupOrFatal(t, path, a)
			if err := Check(path, a); err != nil {
				t.Fatalf("Check before drift: %v", err)
			}

			ph := podHandle(t, path)
			pod, err := ph.LinkByName(a.ContainerIfName)
			if err != nil {
				t.Fatal(err)
			}
			hl, err := netlink.LinkByName(host)
			if err != nil {
				t.Fatal(err)
			}
			e := env{t: t, path: path, a: a, ph: ph, pod: pod, host: hl}
			if err := tc.mutate(e); err != nil {
				t.Fatalf("mutate: %v", err)
			}
			checkPath := path
			if tc.path != nil {
				checkPath = tc.path(e)
			}
			err = Check(checkPath, a)
			if err == nil {
				t.Fatal("Check returned nil after drift")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Check error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestTeardownIdempotent(t *testing.T) {
	requireRoot(t)
	path := newPodNetns(t)
	host := newHostName(t)
	setupOrFatal(t, path, dualStack(host))

	for i := range 2 {
		if err := Teardown(host); err != nil {
			t.Fatalf("Teardown #%d: %v", i+1, err)
		}
	}
	if hostLinkExists(t, host) {
		t.Error("host link survives Teardown")
	}
	if err := Teardown(newHostName(t)); err != nil {
		t.Errorf("Teardown of an unknown link: %v", err)
	}
}

func TestTeardownRefusesNonVeth(t *testing.T) {
	requireRoot(t)
	host := newHostName(t)
	if err := netlink.LinkAdd(nonVeth(host, 0)); err != nil {
		t.Fatal(err)
	}
	if err := Teardown(host); err == nil {
		t.Error("Teardown deleted a bridge link")
	}
	if !hostLinkExists(t, host) {
		t.Error("bridge link was deleted")
	}
}

// TestUnplug: only the veth carrying the attachment's alias goes, with its
// pod end and its source rules; a foreign link of that name, a veth with
// another alias and the pod's other interfaces stay.
func TestUnplug(t *testing.T) {
	requireRoot(t)
	path := newPodNetns(t)
	host := newHostName(t)
	a := dualStack(host)
	a.HostAlias = "ovn-overlay:test-" + randHex(t, 4)
	setupOrFatal(t, path, a)

	if err := Unplug(host, "ovn-overlay:someone-else", path); err != nil {
		t.Fatalf("Unplug with another alias: %v", err)
	}
	if !hostLinkExists(t, host) {
		t.Fatal("Unplug deleted a veth carrying another alias")
	}
	for i := range 2 {
		if err := Unplug(host, a.HostAlias, path); err != nil {
			t.Fatalf("Unplug #%d: %v", i+1, err)
		}
	}
	if hostLinkExists(t, host) {
		t.Error("host end survives Unplug")
	}
	if _, err := podHandle(t, path).LinkByName(a.ContainerIfName); !isLinkNotFound(err) {
		t.Errorf("pod end survives Unplug (err %v)", err)
	}
	if err := Unplug(host, a.HostAlias, filepath.Join(netnsDir, "ovtest-missing-"+randHex(t, 4))); err != nil {
		t.Errorf("Unplug with missing netns: %v", err)
	}

	// A leftover veth whose pod end lives in another (earlier) netns: the
	// rules of the same interface index in this netns are another
	// attachment's and stay. Both netns are fresh, so both pod ends
	// likely have the same index: exactly the case that must not mix up.
	oldPath, newPath := newPodNetns(t), newPodNetns(t)
	oldA, newA := dualStack(newHostName(t)), dualStack(newHostName(t))
	oldA.HostAlias, newA.HostAlias = "ovn-overlay:old-"+randHex(t, 4), "ovn-overlay:new-"+randHex(t, 4)
	setupOrFatal(t, oldPath, oldA)
	setupOrFatal(t, newPath, newA)
	before := len(ourRules(t, podHandle(t, newPath)))
	if before == 0 {
		t.Fatal("setup made no source rules to protect")
	}
	if err := Unplug(oldA.HostIfName, oldA.HostAlias, newPath); err != nil {
		t.Fatalf("Unplug of a veth whose pod end is elsewhere: %v", err)
	}
	if after := len(ourRules(t, podHandle(t, newPath))); after != before {
		t.Errorf("Unplug of another netns' veth removed %d source rules of this netns", before-after)
	}
	if err := Check(newPath, newA); err != nil {
		t.Errorf("the other attachment drifted: %v", err)
	}

	// A bridge holding the name is not ours: left alone, and no error.
	br := newHostName(t)
	if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: br}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = netlink.LinkDel(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: br}}) })
	if err := Unplug(br, "", ""); err != nil {
		t.Errorf("Unplug of a bridge: %v", err)
	}
	if !hostLinkExists(t, br) {
		t.Error("Unplug deleted a bridge")
	}
}

// TestValidatePodNetns: what a runtime might pass as CNI_NETNS.
func TestValidatePodNetns(t *testing.T) {
	requireRoot(t)
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	plain := filepath.Join(dir, "plain")
	if err := os.WriteFile(plain, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
		want error
	}{
		{"pod netns", newPodNetns(t), nil},
		{"own netns", fmt.Sprintf("/proc/%d/ns/net", os.Getpid()), ErrOwnNetns},
		{"own netns via self", "/proc/self/ns/net", ErrOwnNetns},
		{"fifo (must not block)", fifo, ErrNotNetns},
		{"directory", dir, ErrNotNetns},
		{"leftover mount point", plain, ErrStaleNetns},
		{"missing", filepath.Join(dir, "missing"), os.ErrNotExist},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidatePodNetns(tt.path)
			if (tt.want == nil) != (err == nil) || (tt.want != nil && !errors.Is(err, tt.want)) {
				t.Fatalf("ValidatePodNetns(%s) = %v, want %v", tt.path, err, tt.want)
			}
		})
	}
}

func TestSetupFailuresLeaveNothing(t *testing.T) {
	requireRoot(t)

	tests := []struct {
		name    string
		prepare func(t *testing.T, path string) // runs in a fresh netns
		path    func(path string) string
		mutate  func(a *Attachment)
		want    string // substring of the error
	}{
		{
			name: "nonexistent netns path",
			path: func(path string) string { return path + "-nope" },
			want: "open pod netns",
		},
		{
			name: "path is not a netns",
			path: func(string) string { return "/proc/self/status" },
			want: "not a network namespace",
		},
		{
			name: "container interface already exists in the pod netns",
			prepare: func(t *testing.T, path string) {
				if err := podHandle(t, path).LinkAdd(nonVeth("net1", 0)); err != nil {
					t.Fatal(err)
				}
			},
			want: "already exists in pod netns",
		},
		{
			name: "unreachable gateway (fails after the veth exists)",
			mutate: func(a *Attachment) {
				a.Routes = append(a.Routes, Route{Dst: pfx("198.18.0.0/15"), Gateway: ip("192.0.2.1")})
			},
			want: "add route 198.18.0.0/15 via 192.0.2.1",
		},
		{
			name:   "IPv4 address on an IPv6 gateway route",
			mutate: func(a *Attachment) { a.Routes = []Route{{Dst: pfx("10.0.0.0/8"), Gateway: ip("fd00::1")}} },
			want:   "families differ",
		},
		{
			name:   "multicast MAC",
			mutate: func(a *Attachment) { a.MAC = mustMAC("01:00:5e:00:00:01") },
			want:   "multicast",
		},
		{
			name:   "container name too long",
			mutate: func(a *Attachment) { a.ContainerIfName = "a-very-long-ifname" },
			want:   "longer than 15",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			path := newPodNetns(t)
			host := newHostName(t)
			a := dualStack(host)
			if tc.prepare != nil {
				tc.prepare(t, path)
			}
			if tc.mutate != nil {
				tc.mutate(&a)
			}
			setupPath := path
			if tc.path != nil {
				setupPath = tc.path(path)
			}
			_, err := Setup(setupPath, a)
			if err == nil {
				t.Fatal("Setup succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not mention %q", err, tc.want)
			}
			if errors.Is(err, ErrHostLinkExists) {
				t.Errorf("unexpected ErrHostLinkExists: %v", err)
			}
			if hostLinkExists(t, host) {
				t.Error("host link leaked")
			}
			links, err := podHandle(t, path).LinkList()
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range links {
				if l.Type() == "veth" {
					t.Errorf("veth %s leaked in pod netns", l.Attrs().Name)
				}
			}
		})
	}
}

func TestSetupHostLinkExists(t *testing.T) {
	requireRoot(t)

	t.Run("foreign link", func(t *testing.T) {
		path := newPodNetns(t)
		host := newHostName(t)
		if err := netlink.LinkAdd(nonVeth(host, 0)); err != nil {
			t.Fatal(err)
		}
		_, err := Setup(path, dualStack(host))
		if !errors.Is(err, ErrHostLinkExists) {
			t.Fatalf("Setup error %v, want ErrHostLinkExists", err)
		}
		l, lerr := netlink.LinkByName(host)
		if lerr != nil || l.Type() != "bridge" {
			t.Errorf("existing link was touched: %v %v", l, lerr)
		}
		if _, err := podHandle(t, path).LinkByName("net1"); !isLinkNotFound(err) {
			t.Errorf("pod link created despite the error (err %v)", err)
		}
	})

	t.Run("second Setup of the same attachment", func(t *testing.T) {
		path := newPodNetns(t)
		host := newHostName(t)
		a := dualStack(host)
		setupOrFatal(t, path, a)
		a2 := a
		a2.ContainerIfName = "net9"
		if _, err := Setup(path, a2); !errors.Is(err, ErrHostLinkExists) {
			t.Fatalf("second Setup error %v, want ErrHostLinkExists", err)
		}
		if err := Check(path, a); err != nil {
			t.Errorf("first attachment damaged by the failed second Setup: %v", err)
		}
	})
}

func TestMTUOfLinkWithAddress(t *testing.T) {
	requireRoot(t)
	path := newPodNetns(t)
	ph := podHandle(t, path)

	// The "underlay" lives in the test netns; MTUOfLinkWithAddress is run
	// from a thread switched into it, as it works in the caller's netns.
	underlay := nonVeth("ovtul0", 1442)
	if err := ph.LinkAdd(underlay); err != nil {
		t.Fatal(err)
	}
	other := nonVeth("ovtul1", 9000)
	if err := ph.LinkAdd(other); err != nil {
		t.Fatal(err)
	}
	for _, x := range []struct {
		link netlink.Link
		p    string
	}{{underlay, "198.51.100.7/24"}, {underlay, "2001:db8::7/64"}, {other, "198.51.101.7/24"}} {
		addr := &netlink.Addr{IPNet: prefixToIPNet(pfx(x.p), false), Flags: unix.IFA_F_NODAD}
		if err := ph.AddrAdd(x.link, addr); err != nil {
			t.Fatalf("add %s: %v", x.p, err)
		}
	}

	tests := []struct {
		addr    netip.Addr
		want    int
		wantErr bool
	}{
		{addr: ip("198.51.100.7"), want: 1442},
		{addr: ip("2001:db8::7"), want: 1442},
		{addr: ip("::ffff:198.51.100.7"), want: 1442},
		{addr: ip("198.51.101.7"), want: 9000},
		{addr: ip("198.51.100.8"), wantErr: true},
		{addr: netip.Addr{}, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.addr.String(), func(t *testing.T) {
			var got int
			err := onLockedThread(t, openNs(t, path), func() error {
				var err error
				got, err = MTUOfLinkWithAddress(tc.addr)
				return err
			})
			if tc.wantErr {
				if err == nil {
					t.Errorf("got MTU %d, want an error", got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %d, %v; want %d", got, err, tc.want)
			}
		})
	}

	// In the test's own netns the pod-netns addresses are invisible.
	if _, err := MTUOfLinkWithAddress(ip("198.51.100.7")); err == nil {
		t.Error("address of another netns found in the caller's netns")
	}
}

// TestNoThreadLeftInPodNetns runs concurrent Setup/Check/Teardown and then
// verifies that every OS thread of the process is back in the original
// netns: the package must never leave a thread switched.
func TestNoThreadLeftInPodNetns(t *testing.T) {
	requireRoot(t)
	self, err := os.Readlink("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}

	const n = 6
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		path := newPodNetns(t)
		host := newHostName(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := dualStack(host)
			if _, err := Setup(path, a); err != nil {
				errs[i] = err
				return
			}
			errs[i] = errors.Join(Check(path, a), Teardown(host))
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}

	tasks, err := os.ReadDir("/proc/self/task")
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		ns, err := os.Readlink(filepath.Join("/proc/self/task", task.Name(), "ns/net"))
		if err != nil {
			continue // thread exited meanwhile
		}
		if ns != self {
			t.Errorf("thread %s is in %s, process in %s", task.Name(), ns, self)
		}
	}
}
