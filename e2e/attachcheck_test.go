package e2e

// Black-box inspection of attachments for the TestAttachment* suite: thin
// wrappers over internal/attachcheck (which the faults suite shares) bound
// to the package's sandbox, cluster. See that package for what is checked.

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/e2e/internal/attachcheck"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

const defaultPodNS = attachcheck.DefaultPodNS

// liveAtt is an attachment that should exist: its CNI identity and the pod
// (netns, node) it lives in.
type liveAtt struct {
	Pod         *sandbox.Pod
	ContainerID string
	IfName      string
}

// attKey is an attachment's identity within one network.
type attKey struct{ ContainerID, IfName string }

func (k attKey) String() string { return k.ContainerID + "/" + k.IfName }

// netLive is one network and the attachments of it that should exist.
type netLive struct {
	Network string
	Live    []liveAtt
}

// ipLink is one `ip -j link` entry.
type ipLink struct{ attachcheck.IPLink }

func (l ipLink) up() bool { return l.Up() }

type (
	baseline    = attachcheck.Baseline
	checkReport = attachcheck.Report
)

func runNB(args ...string) (string, error) { return attachcheck.RunNB(cluster, args...) }

func lsps(ps []attachcheck.LSP, err error) ([]lsp, error) {
	out := make([]lsp, len(ps))
	for i, p := range ps {
		out[i] = lsp(p)
	}
	return out, err
}

// networkLSPs reads every logical switch port of a network, warm included.
func networkLSPs(network string) ([]lsp, error) {
	return lsps(attachcheck.NetworkLSPs(cluster, network))
}

// attachmentLSPs are the non-warm ports of a network carrying the identity.
func attachmentLSPs(network string, k attKey) ([]lsp, error) {
	return lsps(attachcheck.AttachmentLSPs(cluster, network, attachcheck.Key(k)))
}

// attachmentIfaces finds the OVS interfaces of one attachment on node n.
func attachmentIfaces(n *sandbox.Node, network string, k attKey) ([]string, error) {
	return attachcheck.AttachmentIfaces(cluster, n, network, attachcheck.Key(k))
}

// links runs `ip -d -j link show args...` in netns.
func links(netns string, args ...string) ([]ipLink, error) {
	ls, err := attachcheck.Links(netns, args...)
	out := make([]ipLink, len(ls))
	for i, l := range ls {
		out[i] = ipLink{l}
	}
	return out, err
}

// link reads one interface in netns.
func link(netns, dev string) (ipLink, error) {
	l, err := attachcheck.Link(netns, dev)
	return ipLink{l}, err
}

func takeBaseline(t *testing.T) baseline {
	t.Helper()
	return attachcheck.TakeBaseline(t, cluster)
}

// checkAttachments asserts, from the NB, the nodes' OVS and the kernel,
// that exactly the given attachments exist on the given networks
// (attachcheck.Check).
func checkAttachments(t *testing.T, base baseline, nets ...netLive) checkReport {
	t.Helper()
	var ns []attachcheck.NetLive
	for _, nl := range nets {
		n := attachcheck.NetLive{Network: nl.Network}
		for _, a := range nl.Live {
			n.Live = append(n.Live, attachcheck.Live(a))
		}
		ns = append(ns, n)
	}
	return attachcheck.Check(t, cluster, base, ns...)
}

// scrub removes what a test may have left behind on its networks
// (attachcheck.Scrub). Registered first, it runs after every DEL and netns
// deletion.
func scrub(t *testing.T, base baseline, networks ...string) {
	attachcheck.Scrub(t, cluster, base, networks...)
}

// ---- invocation helpers ----

// cniCall runs the plugin on node n for an arbitrary identity and netns.
func cniCall(timeout time.Duration, n *sandbox.Node, command, containerID, netnsPath, ifName, podName string, config []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, _, err := n.InvokeCNI(ctx, pluginBin, sandbox.Invocation{
		Command: command, ContainerID: containerID, Netns: netnsPath, IfName: ifName,
		Args:   fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s", defaultPodNS, podName),
		Config: config,
	})
	if err != nil && ctx.Err() != nil {
		err = fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	}
	return out, err
}

// restartDaemon kills node n's daemon with SIGKILL, as a crash would, and
// starts a new one.
func restartDaemon(n *sandbox.Node) error {
	daemons[n.Name].Kill()
	d, err := n.StartDaemon(daemonBin, daemonArgs...)
	if err != nil {
		return err
	}
	daemons[n.Name] = d
	return nil
}

// checkConf is conf with prevResult set to an ADD's output.
func checkConf(network, subnets string, addOut []byte, extra map[string]any) []byte {
	m := map[string]any{"prevResult": rawJSON(addOut)}
	for k, v := range extra {
		m[k] = v
	}
	return layer2Config(network, subnets, m)
}
