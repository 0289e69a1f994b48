package netns

import (
	"net"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Announce's frames are what the kernel of a neighbour accepts: a
// gratuitous ARP and an unsolicited neighbour advertisement (checksum,
// hop limit, override flag and all) each move the neighbour's existing
// entry for the address to the announced MAC.
func TestAnnounceUpdatesNeighbours(t *testing.T) {
	requireRoot(t)
	pod, peer := newPodNetns(t), newPodNetns(t)
	ip := func(ns string, args ...string) string {
		t.Helper()
		out, err := exec.Command("ip", append([]string{"-n", filepath.Base(ns)}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ip -n %s %v: %v: %s", filepath.Base(ns), args, err, out)
		}
		return string(out)
	}
	ip(pod, "link", "add", "net1", "type", "veth", "peer", "name", "eth0", "netns", filepath.Base(peer))
	ip(pod, "link", "set", "net1", "up")
	ip(peer, "link", "set", "eth0", "up")
	ip(peer, "addr", "add", "10.99.0.1/24", "dev", "eth0")
	ip(peer, "addr", "add", "fd00:99::1/64", "dev", "eth0", "nodad")
	vm := []netip.Addr{netip.MustParseAddr("10.99.0.2"), netip.MustParseAddr("fd00:99::2")}
	for _, a := range vm {
		ip(peer, "neigh", "replace", a.String(), "lladdr", "02:00:00:00:00:01", "dev", "eth0", "nud", "stale")
	}
	moved, _ := net.ParseMAC("0a:58:0a:63:00:02")
	if err := Announce(pod, "net1", moved, vm); err != nil {
		t.Fatal(err)
	}
	for _, a := range vm {
		got := ip(peer, "neigh", "show", a.String(), "dev", "eth0")
		if !strings.Contains(got, moved.String()) {
			t.Errorf("after the announcement the neighbour has %q for %s, want lladdr %s", strings.TrimSpace(got), a, moved)
		}
	}
}
