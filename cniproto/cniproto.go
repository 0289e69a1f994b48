// Package cniproto is the wire protocol between the thin CNI plugin binary
// and the node daemon: one JSON request per CNI invocation, over HTTP on a
// root-only unix socket. The plugin forwards exactly what the runtime gave
// it, so all logic (and all state) lives in the long-running daemon, where
// caches are warm.
package cniproto

import (
	"encoding/json"

	"github.com/containernetworking/cni/pkg/types"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/ovn-overlay/cni.sock"

// SocketEnv overrides DefaultSocket for the plugin. The sandbox uses it to
// point each simulated node's runtime at that node's daemon.
const SocketEnv = "OVN_OVERLAY_CNI_SOCKET"

// Path is the HTTP path of the CNI endpoint.
const Path = "/cni"

// Request is one CNI invocation, as the runtime made it.
type Request struct {
	Command     string `json:"command"` // ADD, DEL, CHECK, GC, STATUS
	ContainerID string `json:"containerID,omitempty"`
	Netns       string `json:"netns,omitempty"`
	IfName      string `json:"ifName,omitempty"`
	Args        string `json:"args,omitempty"` // CNI_ARGS
	Path        string `json:"path,omitempty"` // CNI_PATH
	// Config is stdin: the network configuration, verbatim.
	Config json.RawMessage `json:"config"`
}

// Response carries either the CNI result (already encoded in the version
// the config asked for, ready for stdout) or a CNI error.
type Response struct {
	Result json.RawMessage `json:"result,omitempty"`
	Error  *types.Error    `json:"error,omitempty"`
}

// CNI 1.1 error codes the cni library does not name.
const (
	// ErrPluginNotAvailable (50): the plugin cannot serve ADD right now.
	ErrPluginNotAvailable uint = 50
)
