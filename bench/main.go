// Command bench measures pod attach as a container runtime sees it, on the
// multi-node OVN sandbox, for three paths in the same run:
//
//   - ovn-overlay: the CNI plugin binary exec'd like a runtime, served by
//     ovn-overlayd (layer2 and layer3 networks);
//   - floor: the least work the pipeline needs (netlink veth, one NB and one
//     OVS transaction, event wait for ovn-installed), in-process, no IPAM;
//   - conventional: ovn-nbctl, `ip`, seven ovs-vsctl calls and polling
//     ovn-installed every 200 ms, as other OVN CNIs do.
//
// It writes bench.json, bench.md (p50/p90/p99/max and ratios) and
// latency-cdf.png to -out, printing progress as it goes. -short runs every
// workload with a handful of pods (CI uses it so the suite cannot rot).
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

func main() {
	stopOnSignal()
	short := flag.Bool("short", false, "tiny workloads: check that every path and output works")
	out := flag.String("out", "results", "directory for bench.json, bench.md and latency-cdf.png")
	scale := flag.Bool("scale", false, "run the scale runs instead (NB pre-filled with -scale-ports ports of -scale-nodes nodes; -scale-local ports on one node); writes scale.json and scale.md")
	scalePorts := flag.Int("scale-ports", 20000, "ports pre-filled in the NB for -scale")
	scaleNodes := flag.Int("scale-nodes", 200, "simulated nodes (chassis rows) owning them")
	scaleLocal := flag.Int("scale-local", 1000, "ports attached on one node for the memory measurement")
	scaleSteps := flag.Int("scale-steps", 4, "-scale fills the NB in this many equal steps, measuring after each")
	paths := flag.String("paths", "", "comma-separated paths to run (e.g. floor,ovn-overlay/layer2); empty: all")
	workloads := flag.String("workloads", "", "comma-separated workloads to run (e.g. sequential,burst-300); empty: all")
	flag.Parse()
	if *scale {
		if err := runScale(*out, *scalePorts, *scaleNodes, *scaleLocal, *scaleSteps); err != nil {
			fmt.Fprintln(os.Stderr, "bench:", err)
			os.Exit(1)
		}
		return
	}
	only := split(*paths)
	if err := run(*short, *out, only, split(*workloads)); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// onSignal is the running sandbox's stop function: Ctrl-C or a kill must
// not leave network namespaces and processes behind.
var onSignal atomic.Pointer[func()]

func stopOnSignal() {
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "bench: %v: stopping the sandbox\n", s)
		if stop := onSignal.Load(); stop != nil {
			(*stop)()
		}
		os.Exit(1)
	}()
}

func progress(format string, args ...any) {
	fmt.Printf("[%s] "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// setUp builds the binaries and starts the sandbox with a daemon per node.
// The returned function stops everything.
func setUp(ctx context.Context, out string, daemonArgs ...string) (*harness, func(), error) {
	if err := sandbox.CheckPrerequisites(); err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return nil, nil, err
	}
	bin, err := os.MkdirTemp("", "ovn-overlay-bench-bin-")
	if err != nil {
		return nil, nil, err
	}
	for _, cmd := range []string{"ovn-k8s-cni-overlay", "ovn-overlayd"} {
		progress("building %s", cmd)
		if b, err := exec.Command("go", "build", "-C", "..", "-o", filepath.Join(bin, cmd), "./cmd/"+cmd).CombinedOutput(); err != nil {
			os.RemoveAll(bin)
			return nil, nil, fmt.Errorf("build %s: %w\n%s", cmd, err, b)
		}
	}
	progress("starting the sandbox: central OVN + 2 nodes")
	cluster, err := sandbox.Start(ctx, sandbox.Options{Nodes: 2})
	if err != nil {
		os.RemoveAll(bin)
		return nil, nil, err
	}
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cluster.Stop()
			os.RemoveAll(bin)
		})
	}
	onSignal.Store(&stop)
	h := &harness{cluster: cluster, plugin: filepath.Join(bin, "ovn-k8s-cni-overlay"), daemons: map[string]*sandbox.Process{},
		daemonBin: filepath.Join(bin, "ovn-overlayd"), baseArgs: daemonArgs, daemonArgs: daemonArgs}
	for _, n := range cluster.Nodes {
		p, err := n.StartDaemon(filepath.Join(bin, "ovn-overlayd"), daemonArgs...)
		if err != nil {
			stop()
			return nil, nil, err
		}
		h.daemons[n.Name] = p
	}
	return h, stop, nil
}

func runScale(out string, ports, nodes, local, steps int) error {
	ctx := context.Background()
	// At scale ovn-controller may take far longer than the default 20 s
	// deadline; the run measures how long.
	h, stop, err := setUp(ctx, out, "--ready-timeout=90s")
	if err != nil {
		return err
	}
	defer stop()
	r, err := h.runScale(ctx, ports, nodes, local, max(steps, 1), 20)
	if err != nil {
		return err
	}
	if err := writeScale(out, describeMachine(), r); err != nil {
		return err
	}
	progress("wrote %s/scale.json, scale.md", out)
	return nil
}

func split(list string) []string {
	if list == "" {
		return nil
	}
	return strings.Split(list, ",")
}

func run(short bool, out string, only, workloads []string) error {
	ctx := context.Background()
	h, stop, err := setUp(ctx, out)
	if err != nil {
		return err
	}
	defer stop()
	h.paths = only
	plan := fullPlan()
	if short {
		plan = shortPlan()
	}
	plan = selectWorkloads(plan, workloads)
	results, err := h.runPlan(ctx, plan)
	if err != nil {
		return err
	}
	machine := describeMachine()
	if err := writeJSON(filepath.Join(out, "bench.json"), machine, results); err != nil {
		return err
	}
	if err := writeMarkdown(filepath.Join(out, "bench.md"), machine, results, short); err != nil {
		return err
	}
	if err := plotCDF(filepath.Join(out, "latency-cdf.png"), results); err != nil {
		return err
	}
	progress("wrote %s/bench.json, bench.md, latency-cdf.png", out)
	return nil
}
