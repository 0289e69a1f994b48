package k8s

import (
	"fmt"
	"io"
	"net"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// forwardIntoNetns makes the API server, which listens on the test host's
// loopback, reachable on the same address inside a node's network
// namespace, where ovn-overlayd and Multus run. A real node reaches its API
// server over the host network; the sandbox's nodes are namespaces with
// only the geneve underlay. The listener is created inside the namespace
// (a socket keeps the namespace it was created in); each accepted
// connection is dialled from the test process's own namespace.
func forwardIntoNetns(netnsPath, addr string) (io.Closer, error) {
	var l net.Listener
	err := sandbox.InNetns(netnsPath, func() (err error) {
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("listen on %s in %s: %w", addr, netnsPath, err)
	}
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			go relay(in, addr)
		}
	}()
	return l, nil
}

func relay(in net.Conn, addr string) {
	defer in.Close()
	out, err := net.Dial("tcp", addr)
	if err != nil {
		return
	}
	defer out.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(out, in); done <- struct{}{} }()
	go func() { _, _ = io.Copy(in, out); done <- struct{}{} }()
	<-done
}
