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
// It writes bench.json, bench.md (p50/p90/p99/max and ratios, and for
// ovn-overlay the mean of each ADD phase from the daemon's histograms, and
// its sequential ADD against the limit: floor-prebound plus one plugin exec,
// timed alone with CNI_COMMAND=VERSION) and latency-cdf.png to -out,
// printing progress as it goes. -short runs every
// workload with a handful of pods (CI uses it so the suite cannot rot).
//
// -ovn names the OVN releases to measure (e.g. 25.03,23.03): each runs the
// whole suite on a sandbox of its own, one after the other, and the report
// puts them side by side.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
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
	ovn := flag.String("ovn", defaultReleases(), "comma-separated OVN releases to measure one after another, each on a fresh sandbox (e.g. 25.03,23.03); default: $"+sandbox.ReleaseEnv+", else 23.03")
	scale := flag.Bool("scale", false, "run the scale runs instead (NB pre-filled with -scale-ports ports of -scale-nodes nodes; -scale-local ports on one node); writes scale.json and scale.md")
	scalePorts := flag.Int("scale-ports", 20000, "ports pre-filled in the NB for -scale")
	scaleNodes := flag.Int("scale-nodes", 200, "simulated nodes (chassis rows) owning them")
	scaleLocal := flag.Int("scale-local", 1000, "ports attached on one node for the memory measurement")
	scaleSteps := flag.Int("scale-steps", 4, "-scale fills the NB in this many equal steps, measuring after each")
	paths := flag.String("paths", "", "comma-separated paths to run (e.g. floor,ovn-overlay/layer2); empty: all")
	workloads := flag.String("workloads", "", "comma-separated workloads to run (e.g. sequential,burst-300); empty: all")
	flag.Parse()
	err := func() error {
		releases, err := lookupReleases(split(*ovn))
		if err != nil {
			return err
		}
		// Created up front: a bad -out must not cost a whole run.
		if err := os.MkdirAll(*out, 0o755); err != nil {
			return err
		}
		if *scale {
			return runScale(context.Background(), releases, *out, *scalePorts, *scaleNodes, *scaleLocal, *scaleSteps)
		}
		return run(context.Background(), releases, *short, *out, split(*paths), split(*workloads))
	}()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// onSignal undoes what is running (the sandbox, the built binaries): Ctrl-C
// or a kill must not leave network namespaces and processes behind.
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

// buildBinaries builds the CNI plugin and the daemon into a temp dir, once
// for all releases: the product is the same, only OVN changes.
func buildBinaries() (string, error) {
	bin, err := os.MkdirTemp("", "ovn-overlay-bench-bin-")
	if err != nil {
		return "", err
	}
	for _, cmd := range []string{"ovn-k8s-cni-overlay", "ovn-overlayd"} {
		progress("building %s", cmd)
		if b, err := sandbox.BuildCommand("..", filepath.Join(bin, cmd), "./cmd/"+cmd).CombinedOutput(); err != nil {
			os.RemoveAll(bin)
			return "", fmt.Errorf("build %s: %w\n%s", cmd, err, b)
		}
	}
	return bin, nil
}

// startHarness starts rel's sandbox with a daemon per node, from the
// binaries in bin. The returned function stops the sandbox; it may be
// called more than once (by a signal and by the caller).
func startHarness(ctx context.Context, bin string, rel sandbox.Release, daemonArgs ...string) (*harness, func(), error) {
	progress("starting the sandbox: OVN %s, central OVN + 2 nodes", rel.Name)
	cluster, err := sandbox.Start(ctx, sandbox.Options{Nodes: 2, Release: &rel, PhysicalNetwork: benchPhysnet})
	if err != nil {
		return nil, nil, err
	}
	var once sync.Once
	stop := func() { once.Do(cluster.Stop) }
	h := &harness{cluster: cluster, plugin: filepath.Join(bin, "ovn-k8s-cni-overlay"), daemons: map[string]*sandbox.Process{},
		daemonBin: filepath.Join(bin, "ovn-overlayd"), baseArgs: daemonArgs, daemonArgs: daemonArgs}
	for _, n := range cluster.Nodes {
		p, err := n.StartDaemon(h.daemonBin, daemonArgs...)
		if err != nil {
			stop()
			return nil, nil, err
		}
		h.daemons[n.Name] = p
	}
	return h, stop, nil
}

// setUp builds the binaries and starts rel's sandbox with a daemon per
// node, for the Go benchmarks. The returned function stops everything.
func setUp(ctx context.Context, rel sandbox.Release, daemonArgs ...string) (*harness, func(), error) {
	if err := sandbox.CheckPrerequisites(); err != nil {
		return nil, nil, err
	}
	bin, err := buildBinaries()
	if err != nil {
		return nil, nil, err
	}
	h, stop, err := startHarness(ctx, bin, rel, daemonArgs...)
	if err != nil {
		os.RemoveAll(bin)
		return nil, nil, err
	}
	return h, func() { stop(); os.RemoveAll(bin) }, nil
}

// forEachRelease runs measure on a fresh sandbox of each release, in
// order, stopping each sandbox before starting the next: two at once
// would share the machine's cores and skew both measurements.
func forEachRelease(ctx context.Context, releases []sandbox.Release, daemonArgs []string, measure func(*harness) error) error {
	if err := sandbox.CheckPrerequisites(); err != nil {
		return err
	}
	bin, err := buildBinaries()
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	for _, rel := range releases {
		if err := measureRelease(ctx, bin, rel, daemonArgs, measure); err != nil {
			return fmt.Errorf("OVN %s: %w", rel.Name, err)
		}
	}
	return nil
}

// measureRelease is one release's turn of forEachRelease.
func measureRelease(ctx context.Context, bin string, rel sandbox.Release, daemonArgs []string, measure func(*harness) error) error {
	h, stop, err := startHarness(ctx, bin, rel, daemonArgs...)
	if err != nil {
		return err
	}
	defer stop()
	cleanup := func() { stop(); os.RemoveAll(bin) }
	onSignal.Store(&cleanup)
	return measure(h)
}

func runScale(ctx context.Context, releases []sandbox.Release, out string, ports, nodes, local, steps int) error {
	var runs []*scaleResult
	// At scale ovn-controller may take far longer than the default 20 s
	// deadline; the run measures how long.
	err := forEachRelease(ctx, releases, []string{"--ready-timeout=90s"}, func(h *harness) error {
		r, err := h.runScale(ctx, ports, nodes, local, max(steps, 1), 20)
		if err != nil {
			return err
		}
		runs = append(runs, r)
		return nil
	})
	if err != nil {
		return err
	}
	if err := writeScale(out, describeMachine(releases), runs); err != nil {
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

func run(ctx context.Context, releases []sandbox.Release, short bool, out string, only, workloads []string) error {
	plan := fullPlan()
	if short {
		plan = shortPlan()
	}
	plan = selectWorkloads(plan, workloads)
	execs := 50
	if short {
		execs = 5
	}
	var results []*result
	var pluginExecs []*pluginExec
	err := forEachRelease(ctx, releases, nil, func(h *harness) error {
		h.paths = only
		rs, pe, err := h.runPlan(ctx, plan, execs)
		results = append(results, rs...)
		if pe != nil {
			pluginExecs = append(pluginExecs, pe)
		}
		return err
	})
	if err != nil {
		return err
	}
	machine := describeMachine(releases)
	if err := writeJSON(filepath.Join(out, "bench.json"), machine, results, pluginExecs); err != nil {
		return err
	}
	if err := writeMarkdown(filepath.Join(out, "bench.md"), machine, results, pluginExecs, short); err != nil {
		return err
	}
	plots, err := writeCDFs(out, results)
	if err != nil {
		return err
	}
	progress("wrote %s/bench.json, bench.md, %s", out, strings.Join(plots, ", "))
	return nil
}
