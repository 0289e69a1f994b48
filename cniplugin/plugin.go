// Package cniplugin is the CNI plugin binary's logic: it forwards every
// verb to the node daemon and prints what the daemon answers. It holds no
// state and opens no database connection, so an invocation costs one exec
// and one local HTTP round trip.
package cniplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
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
func (c *Client) Do(ctx context.Context, req cniproto.Request) (*cniproto.Response, error) {
	body, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encode request: %w", err)
	}
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	defer cancel()
	httpc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", c.Socket)
		},
	}}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://daemon"+cniproto.Path, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	hresp, err := httpc.Do(hreq)
	if err != nil {
		return nil, fmt.Errorf("daemon socket %s: %w", c.Socket, err)
	}
	defer hresp.Body.Close()
	var resp cniproto.Response
	if err := json.NewDecoder(hresp.Body).Decode(&resp); err != nil {
		return nil, fmt.Errorf("decode daemon response (HTTP %d): %w", hresp.StatusCode, err)
	}
	return &resp, nil
}
