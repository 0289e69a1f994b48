// Package faults injects faults into the control plane under load and
// checks, from OVN, OVS and the kernel directly (internal/attachcheck),
// that no attachment is lost, leaked or given a duplicate address.
//
// Each test starts the sandbox it needs (standalone or clustered central
// databases, two nodes, the real ovn-overlayd on each) and stops it when it
// ends, failed or not; failed runs keep the sandbox directory (logs,
// databases) and say where.
//
// Sizes: the default run (make test) is small, so the package stays within
// a few minutes on two cores. E2E_FAULT_ROUNDS sets the rounds of
// TestFaultRaftLeaderKill (default 2) and E2E_FAULT_BURST the ADDs per
// burst (default 40; 200 when E2E_FAULT_ROUNDS is set): `make faults` runs
// the full sizes.
package faults

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

var (
	pluginBin string
	daemonBin string
)

func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	// Missing prerequisites fail the suite loudly: a skipped fault suite
	// would pass CI while testing nothing.
	if err := sandbox.CheckPrerequisites(); err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	bin, err := os.MkdirTemp("", "ovn-overlay-faults-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "faults:", err)
		return 1
	}
	defer os.RemoveAll(bin)
	pluginBin = filepath.Join(bin, "ovn-k8s-cni-overlay")
	daemonBin = filepath.Join(bin, "ovn-overlayd")
	for out, pkg := range map[string]string{pluginBin: "./cmd/ovn-k8s-cni-overlay", daemonBin: "./cmd/ovn-overlayd"} {
		if b, err := sandbox.BuildCommand("../..", out, pkg).CombinedOutput(); err != nil {
			fmt.Fprintf(os.Stderr, "faults: build %s: %v\n%s", pkg, err, b)
			return 1
		}
	}
	return m.Run()
}
