package e2e

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"

	"github.com/vishvananda/netns"
)

// inNetns runs f on a thread switched into the pod's network namespace.
// Sockets keep the namespace they were created in, so a listener made here
// keeps serving after the thread switches back.
func inNetns(t *testing.T, path string, f func() error) error {
	t.Helper()
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := netns.Get()
	if err != nil {
		return err
	}
	defer orig.Close()
	target, err := netns.GetFromPath(path)
	if err != nil {
		return err
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		return err
	}
	defer func() {
		if err := netns.Set(orig); err != nil {
			panic(fmt.Sprintf("cannot restore the test thread's netns: %v", err))
		}
	}()
	return f()
}

// tcpEcho proves a TCP connection from client to server's addr carries data
// both ways. Ping alone would not catch broken checksum offload on the
// userspace datapath: ICMP passes, TCP never connects.
func tcpEcho(t *testing.T, server, client *testPod, addr netip.Addr) {
	t.Helper()
	var l net.Listener
	if err := inNetns(t, server.NetnsPath, func() (err error) {
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
		err = inNetns(t, client.NetnsPath, func() (err error) {
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
