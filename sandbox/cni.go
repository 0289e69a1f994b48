package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/types"
)

// StartDaemon runs the ovn-overlayd binary on the node, pointed at central
// OVN and the node's OVS, and waits until its CNI socket is up.
func (n *Node) StartDaemon(binary string, extraArgs ...string) (*Process, error) {
	return n.StartDaemonAs(binary, n.Name, n.DaemonSocket(), extraArgs...)
}

// StartDaemonAs runs a daemon on the node's OVS under another node name and
// socket: tests use it to stand in for a node that is not simulated.
func (n *Node) StartDaemonAs(binary, nodeName, sock string, extraArgs ...string) (*Process, error) {
	p, err := n.startDaemon(binary, nodeName, sock, extraArgs)
	if err != nil {
		return nil, err
	}
	if err := waitForFile(sock, p, startTimeout); err != nil {
		return nil, err
	}
	return p, nil
}

// StartDaemonNoWait is StartDaemon without waiting for the CNI socket: it
// returns as soon as the process runs. Tests of start-up ordering use it,
// e.g. a daemon started while the NB is down (Cluster.StopDB), which must
// come up and serve once the NB is back; they wait for DaemonSocket
// themselves. The process is tracked and stopped like any other.
func (n *Node) StartDaemonNoWait(binary string, extraArgs ...string) (*Process, error) {
	return n.startDaemon(binary, n.Name, n.DaemonSocket(), extraArgs)
}

func (n *Node) startDaemon(binary, nodeName, sock string, extraArgs []string) (*Process, error) {
	// A socket file left by a killed daemon would look like readiness.
	_ = os.Remove(sock)
	args := append([]string{binary,
		"--node-name=" + nodeName,
		"--nb-address=" + n.cluster.Central.NB,
		"--sb-address=" + n.cluster.Central.SB,
		"--ovs-address=" + n.OVS,
		"--socket=" + sock,
	}, extraArgs...)
	return n.cluster.Start(nodeName+"-ovn-overlayd", n.Netns, []string{n.cluster.ToolPath()}, args...)
}

// DaemonSocket is where the node's daemon serves CNI.
func (n *Node) DaemonSocket() string { return filepath.Join(n.Dir, "cni.sock") }

// Invocation is one CNI call as a container runtime makes it.
type Invocation struct {
	Command     string // ADD, DEL, CHECK, GC, STATUS, VERSION
	ContainerID string
	Netns       string
	IfName      string
	Args        string // CNI_ARGS
	Config      []byte // stdin
	// Socket overrides the node daemon's socket (to test an unreachable
	// daemon).
	Socket string
}

// CNIError is a failed invocation: the plugin's CNI error, as printed.
type CNIError struct {
	CNI    types.Error
	Stderr string
}

func (e *CNIError) Error() string {
	return fmt.Sprintf("CNI error %d: %s %s", e.CNI.Code, e.CNI.Msg, e.CNI.Details)
}

// InvokeCNI executes the plugin binary exactly as a runtime on the node
// would: config on stdin, parameters in CNI_* environment variables. It
// returns stdout and how long the plugin ran.
//
// The plugin is exec'd directly, not through `ip netns exec` into the node's
// namespace: it reaches the node's daemon by the socket path and the pod by
// CNI_NETNS, and a runtime pays no namespace switch (which alone costs
// milliseconds) before exec'ing a plugin.
func (n *Node) InvokeCNI(ctx context.Context, plugin string, inv Invocation) ([]byte, time.Duration, error) {
	socket := inv.Socket
	if socket == "" {
		socket = n.DaemonSocket()
	}
	cmd := exec.CommandContext(ctx, plugin)
	cmd.Env = []string{
		"CNI_COMMAND=" + inv.Command,
		"CNI_CONTAINERID=" + inv.ContainerID,
		"CNI_NETNS=" + inv.Netns,
		"CNI_IFNAME=" + inv.IfName,
		"CNI_ARGS=" + inv.Args,
		"CNI_PATH=" + filepath.Dir(plugin),
		"OVN_OVERLAY_CNI_SOCKET=" + socket,
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin",
	}
	cmd.Stdin = bytes.NewReader(inv.Config)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	err := cmd.Run()
	took := time.Since(start)
	if err != nil {
		cniErr := &CNIError{Stderr: stderr.String()}
		if jerr := json.Unmarshal(stdout.Bytes(), &cniErr.CNI); jerr != nil || cniErr.CNI.Msg == "" {
			return stdout.Bytes(), took, fmt.Errorf("plugin %s failed: %w (stdout %q, stderr %q)", inv.Command, err, stdout.String(), strings.TrimSpace(stderr.String()))
		}
		return stdout.Bytes(), took, cniErr
	}
	return stdout.Bytes(), took, nil
}
