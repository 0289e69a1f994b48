// Package e2e runs the product end to end on real OVS and OVN: a sandbox
// with central OVN and two nodes (network namespaces, userspace datapath,
// geneve between them), the real ovn-overlayd on each node, and the real
// CNI plugin binary executed exactly as a container runtime executes it.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

var (
	cluster   *sandbox.Cluster
	pluginBin string
	daemonBin string
	ctlBin    string
	daemons   = map[string]*sandbox.Process{}
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Missing prerequisites fail the suite loudly: a skipped e2e suite
	// would pass CI while testing nothing.
	if err := sandbox.CheckPrerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	bin, err := os.MkdirTemp("", "ovn-overlay-e2e-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		return 1
	}
	defer os.RemoveAll(bin)
	pluginBin = filepath.Join(bin, "ovn-k8s-cni-overlay")
	daemonBin = filepath.Join(bin, "ovn-overlayd")
	ctlBin = filepath.Join(bin, "ovn-overlayctl")
	for out, pkg := range map[string]string{pluginBin: "./cmd/ovn-k8s-cni-overlay", daemonBin: "./cmd/ovn-overlayd", ctlBin: "./cmd/ovn-overlayctl"} {
		if b, err := sandbox.BuildCommand("..", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "e2e: build %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cluster, err = sandbox.Start(ctx, sandbox.Options{Nodes: 2, Progress: os.Stderr, PhysicalNetwork: physnet, PhysicalMTU: physnetMTU})
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e: sandbox:", err)
		return 1
	}
	code := 1
	defer func() {
		if code != 0 {
			// Keep logs and databases of a failed run for diagnosis.
			cluster.StopKeepDir()
			fmt.Fprintf(os.Stderr, "e2e: failed; sandbox logs kept in %s\n", cluster.Dir)
			return
		}
		cluster.Stop()
	}()
	for _, n := range cluster.Nodes {
		p, err := n.StartDaemon(daemonBin, daemonArgs...)
		if err != nil {
			fmt.Fprintln(os.Stderr, "e2e: daemon:", err)
			return 1
		}
		daemons[n.Name] = p
	}
	code = m.Run()
	if crashes := cluster.UnexpectedCrashes(); code == 0 && len(crashes) > 0 {
		fmt.Fprintf(os.Stderr, "%s: OVN/OVS daemons crashed during the run: %q\n", "e2e", crashes)
		code = 1
	}
	return code
}
