package e2e

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// tcpEcho proves a TCP connection from client to server's addr carries data
// both ways. Ping alone would not catch broken checksum offload on the
// userspace datapath: ICMP passes, TCP never connects.
func tcpEcho(t *testing.T, server, client *testPod, addr netip.Addr) {
	t.Helper()
	tcpEchoBetween(t, endpoint{server.Name, server.NetnsPath}, endpoint{client.Name, client.NetnsPath}, addr)
}

// endpoint is a network namespace a TCP test runs in: a pod's or the
// sandbox's external host's.
type endpoint struct{ Name, NetnsPath string }

// tcpEchoBetween is tcpEcho for any two namespaces.
func tcpEchoBetween(t *testing.T, server, client endpoint, addr netip.Addr) {
	t.Helper()
	var l net.Listener
	if err := sandbox.InNetns(server.NetnsPath, func() (err error) {
		l, err = net.Listen("tcp", netip.AddrPortFrom(addr, 0).String())
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", server.Name, err)
	}
	defer l.Close()
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		_, _ = io.Copy(c, c)
	}()
	payload := make([]byte, 64*1024) // several full-size segments
	for i := range payload {
		payload[i] = byte(i)
	}
	var conn net.Conn
	var err error
	for attempt := 0; attempt < 3; attempt++ { // first packet to a new tunnel peer may drop
		err = sandbox.InNetns(client.NetnsPath, func() (err error) {
			conn, err = net.DialTimeout("tcp", l.Addr().String(), 3*time.Second)
			return err
		})
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("TCP connect %s -> %s: %v", client.Name, l.Addr(), err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	go func() { _, _ = conn.Write(payload) }()
	got := make([]byte, len(payload))
	if _, err := io.ReadFull(conn, got); err != nil {
		t.Fatalf("TCP echo %s -> %s: %v", client.Name, l.Addr(), err)
	}
	for i := range got {
		if got[i] != payload[i] {
			t.Fatalf("TCP echo corrupted at byte %d", i)
		}
	}
}
