// Package cniplugin is the CNI plugin binary's logic: it forwards every
// verb to the node daemon and prints what the daemon answers. It holds no
// state and opens no database connection, so an invocation costs one exec
// and one local HTTP round trip.
package cniplugin

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/netconf"
)

// Timeout bounds one invocation. ADD waits for ovn-controller, which the
// daemon bounds more tightly; this only catches a hung daemon.
const Timeout = 2 * time.Minute

// SupportedVersions are the CNI spec versions the plugin speaks: every one
// the daemon can write a result in, as OVN-Kubernetes' plugin does (its
// NADs say 0.3.0). The library itself refuses CHECK before 0.4.0 and GC
// and STATUS before 1.1.0, as the spec says.
var SupportedVersions = version.PluginSupports(netconf.SupportedVersions...)

// Main runs the plugin. It never returns.
func Main() {
	socket := os.Getenv(cniproto.SocketEnv)
	if socket == "" {
		socket = cniproto.DefaultSocket
	}
	c := &Client{Socket: socket, Stdout: os.Stdout}
	if err := rejectInvalidJSON(); err != nil {
		if perr := err.Print(); perr != nil {
			fmt.Fprintln(os.Stderr, perr)
		}
		os.Exit(1)
	}
	skel.PluginMainFuncs(skel.CNIFuncs{
		Add:    c.forward("ADD"),
		Del:    c.forward("DEL"),
		Check:  c.forward("CHECK"),
		GC:     c.forward("GC"),
		Status: c.forward("STATUS"),
	}, SupportedVersions, "ovn-k8s-cni-overlay: attaches pods to OVN secondary networks through the ovn-overlay node daemon")
}

// rejectInvalidJSON gives a config that is not JSON at all the same
// field-naming error the daemon gives for every other mistake (the
// library's own decoder would only say "error unmarshall network config").
// It hands the config back to stdin for the library to read.
func rejectInvalidJSON() *types.Error {
	if os.Getenv("CNI_COMMAND") == "VERSION" {
		return nil
	}
	stdin, err := io.ReadAll(os.Stdin)
	if err != nil {
		return types.NewError(types.ErrIOFailure, "read network config from stdin", err.Error())
	}
	if !json.Valid(stdin) {
		if _, perr := netconf.Parse(stdin); perr != nil {
			return types.NewError(types.ErrInvalidNetworkConfig, perr.Error(), "")
		}
	}
	r, w, err := os.Pipe()
	if err != nil {
		return types.NewError(types.ErrIOFailure, "replay stdin", err.Error())
	}
	go func() {
		_, _ = w.Write(stdin)
		w.Close()
	}()
	os.Stdin = r
	return nil
}

// Client talks to the daemon.
type Client struct {
	Socket string
	Stdout io.Writer
}

func (c *Client) forward(command string) func(*skel.CmdArgs) error {
	return func(args *skel.CmdArgs) error {
		resp, err := c.Do(context.Background(), cniproto.Request{
			Command:     command,
			ContainerID: args.ContainerID,
			Netns:       args.Netns,
			IfName:      args.IfName,
			Args:        args.Args,
			Path:        args.Path,
			Config:      args.StdinData,
		})
		if err != nil {
			code := uint(types.ErrTryAgainLater)
			if command == "STATUS" {
				code = cniproto.ErrPluginNotAvailable
			}
			return types.NewError(code, "cannot reach the ovn-overlay daemon", err.Error())
		}
		if resp.Error != nil {
			return resp.Error
		}
		if len(resp.Result) > 0 {
			if _, err := c.Stdout.Write(resp.Result); err != nil {
				return fmt.Errorf("write result: %w", err)
			}
		}
		return nil
	}
}

// Do sends one request to the daemon.
//
// It speaks HTTP/1.0 by hand instead of through net/http: the plugin is
// exec'ed for every verb of every secondary interface, and linking net/http
// (with crypto/tls and the rest it brings) more than doubled the time from
// exec to main (measured: 5.3 ms against 2.3 ms on the benchmark machine).
// HTTP/1.0 with the connection closed after the response keeps the reply
// delimited without chunked encoding, and the daemon's server is unchanged.
func (c *Client) Do(ctx context.Context, req cniproto.Request) (*cniproto.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", c.Socket)
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", c.Socket, err)
	}
	defer conn.Close()
	if deadline, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(deadline)
	}
	head := fmt.Sprintf("POST %s HTTP/1.0\r\nHost: daemon\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", cniproto.Path, len(body))
	if _, err := conn.Write(append([]byte(head), body...)); err != nil {
		return nil, fmt.Errorf("socket %s: send request: %w", c.Socket, err)
	}
	status, payload, err := readResponse(bufio.NewReader(conn))
	if err != nil {
		return nil, fmt.Errorf("socket %s: %w", c.Socket, err)
	}
	var resp cniproto.Response
	if err := json.Unmarshal(payload, &resp); err != nil {
		return nil, fmt.Errorf("decode daemon response (HTTP %d): %w", status, err)
	}
	return &resp, nil
}

// maxResponse bounds what the plugin reads back: a result is a few KiB.
const maxResponse = 16 << 20

// readResponse reads an HTTP/1.0 response: the status line, headers up to
// the blank line, and the body up to Content-Length or, without one, to
// the end of the connection.
func readResponse(r *bufio.Reader) (status int, body []byte, err error) {
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, nil, fmt.Errorf("read response status: %w", err)
	}
	var proto string
	if _, err := fmt.Sscanf(line, "%s %d", &proto, &status); err != nil || !strings.HasPrefix(proto, "HTTP/") {
		return 0, nil, fmt.Errorf("malformed response status %q", strings.TrimSpace(line))
	}
	length := -1
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return status, nil, fmt.Errorf("read response headers: %w", err)
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ":")
		if strings.EqualFold(strings.TrimSpace(name), "Content-Length") {
			n, err := strconv.Atoi(strings.TrimSpace(value))
			if err != nil || n < 0 || n > maxResponse {
				return status, nil, fmt.Errorf("malformed response Content-Length %q", value)
			}
			length = n
		}
	}
	if length >= 0 {
		body = make([]byte, length)
		if _, err := io.ReadFull(r, body); err != nil {
			return status, nil, fmt.Errorf("read response body: %w", err)
		}
		return status, body, nil
	}
	body, err = io.ReadAll(io.LimitReader(r, maxResponse+1))
	if err == nil && len(body) > maxResponse {
		err = fmt.Errorf("response of more than %d MiB", maxResponse>>20)
	}
	if err != nil {
		return status, nil, fmt.Errorf("read response body: %w", err)
	}
	return status, body, nil
}
