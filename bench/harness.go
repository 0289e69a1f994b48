package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// workload is one measured scenario.
type workload struct {
	name       string
	sequential bool // one pod at a time, with time to first packet
	pods       int
	spread     bool // pods alternate between the two nodes
}

func fullPlan() []workload {
	return []workload{
		{name: "sequential", sequential: true, pods: 50},
		{name: "burst-10", pods: 10},
		{name: "burst-100", pods: 100},
		{name: "burst-300", pods: 300},
		{name: "burst-200-spread", pods: 200, spread: true},
	}
}

func shortPlan() []workload {
	return []workload{
		{name: "sequential", sequential: true, pods: 3},
		{name: "burst-10", pods: 10},
		{name: "burst-6-spread", pods: 6, spread: true},
	}
}

type harness struct {
	cluster *sandbox.Cluster
	plugin  string
	daemons map[string]*sandbox.Process
	next    int // address counter of the reference paths
	// paths limits a run to some paths (-paths); empty: all.
	paths []string
	// The daemons' binary, the flags every run gives them, and the flags
	// they run with now.
	daemonBin            string
	baseArgs, daemonArgs []string
}

// target is one path with the peer its first-packet probes ping.
type target struct {
	path     path
	topology string
	peer     netip.Addr
}

// benchPhysnet is the sandbox's physical network, mapped on every node.
const benchPhysnet = "datacenter"

var (
	benchL2 = []byte(`{"cniVersion":"1.0.0","name":"bench-l2","type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":"10.202.0.0/16"}`)
	benchL3 = []byte(`{"cniVersion":"1.0.0","name":"bench-l3","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.203.0.0/16/20"}`)
	// benchLocalnet is VLAN 100 of the sandbox's physical network.
	benchLocalnet = []byte(`{"cniVersion":"1.0.0","name":"bench-ln","type":"ovn-k8s-cni-overlay","topology":"localnet","physicalNetworkName":"` + benchPhysnet + `","vlanID":100,"subnets":"10.204.0.0/16"}`)
)

// useDaemons restarts the node daemons if path needs other flags than
// they run with (ovn-overlay with and without warm ports).
func (h *harness) useDaemons(p path) error {
	o, ok := p.(*overlayPath)
	if !ok {
		return nil
	}
	args := append(append([]string(nil), h.baseArgs...), o.daemonArgs()...)
	if slices.Equal(args, h.daemonArgs) {
		return nil
	}
	progress("restarting the node daemons with %v", args)
	for _, n := range h.cluster.Nodes {
		h.daemons[n.Name].Stop(5 * time.Second)
		d, err := n.StartDaemon(h.daemonBin, args...)
		if err != nil {
			return err
		}
		h.daemons[n.Name] = d
	}
	h.daemonArgs = args
	return nil
}

// newTargets builds every path the suite measures, as a target without its
// peer.
func (h *harness) newTargets(ctx context.Context) ([]*target, error) {
	floor, err := newFloorPath(ctx, h.cluster, "bench-reference")
	if err != nil {
		return nil, err
	}
	prebound, err := newFloorPath(ctx, h.cluster, "bench-reference")
	if err != nil {
		return nil, err
	}
	prebound.prebound = true
	return []*target{
		{path: &overlayPath{plugin: h.plugin, config: benchL2}, topology: "layer2"},
		{path: &overlayPath{plugin: h.plugin, config: benchL3}, topology: "layer3"},
		{path: &overlayPath{plugin: h.plugin, config: benchLocalnet}, topology: "localnet"},
		{path: &overlayPath{plugin: h.plugin, config: benchL2, cold: true}, topology: "layer2"},
		{path: &overlayPath{plugin: h.plugin, config: benchL3, cold: true}, topology: "layer3"},
		{path: floor, topology: "layer2"},
		{path: prebound, topology: "layer2"},
		{path: &conventionalPath{nb: h.cluster.Central.NB, ls: "bench-reference", rel: h.cluster.Release()}, topology: "layer2"},
	}, nil
}

// runPlan runs plan on every selected path. Before the first sequential
// workload it also times the plugin exec alone (nil when no ovn-overlay
// path runs or no workload is sequential), for the limit ratios.
func (h *harness) runPlan(ctx context.Context, plan []workload, execs int) ([]*result, *pluginExec, error) {
	targets, err := h.newTargets(ctx)
	if err != nil {
		return nil, nil, err
	}
	targets = selectTargets(targets, h.paths)
	// Each path's first-packet probes ping a peer on the other node,
	// attached through the same path.
	for _, t := range targets {
		peer, err := h.newPod(h.cluster.Nodes[1])
		if err != nil {
			return nil, nil, err
		}
		if err := h.useDaemons(t.path); err != nil {
			return nil, nil, err
		}
		if err := prepare(ctx, t.path, []*benchPod{peer}); err != nil {
			return nil, nil, fmt.Errorf("%s peer: %w", t.path.name(), err)
		}
		if err := t.path.attach(ctx, peer); err != nil {
			return nil, nil, fmt.Errorf("%s peer: %w", t.path.name(), err)
		}
		addr, err := podAddr(peer)
		if err != nil {
			return nil, nil, err
		}
		t.peer = addr
	}
	var results []*result
	var exec *pluginExec
	for _, w := range plan {
		if w.sequential && exec == nil && overlayTarget(targets) {
			progress("plugin exec: %d sequential execs of CNI_COMMAND=VERSION", execs)
			if exec, err = h.timePluginExec(ctx, execs); err != nil {
				return nil, nil, fmt.Errorf("plugin exec: %w", err)
			}
			progress("  exec p50 %.2f ms, p99 %.2f ms", exec.P50, exec.P99)
		}
		for _, t := range targets {
			if err := h.useDaemons(t.path); err != nil {
				return nil, nil, err
			}
			progress("%s %s %s: %d pods", t.path.name(), t.topology, w.name, w.pods)
			r, err := h.runWorkload(ctx, t, w)
			if err != nil {
				return nil, nil, fmt.Errorf("%s %s %s: %w", t.path.name(), t.topology, w.name, err)
			}
			progress("  ADD p50 %.1f ms, p99 %.1f ms, %.0f pods/s; DEL %.0f pods/s", r.Latency.P50, r.Latency.P99, r.PodsPerSecond, r.DelPodsPerSecond)
			results = append(results, r)
		}
	}
	return results, exec, nil
}

// overlayTarget tells whether any target is an ovn-overlay path, the only
// rows the limit applies to.
func overlayTarget(targets []*target) bool {
	for _, t := range targets {
		if _, ok := t.path.(*overlayPath); ok {
			return true
		}
	}
	return false
}

// versionConfig is the stdin of the timed VERSION execs: the least a
// runtime sends (the plugin's CNI library does not read it for VERSION).
var versionConfig = []byte(`{"cniVersion":"1.0.0"}`)

// timePluginExec execs the plugin n times in a row with CNI_COMMAND=VERSION,
// exactly as the ovn-overlay path execs it for an ADD (same binary, same
// environment, a pod's netns and container ID on the first node, timed the
// same way), and summarizes the wall times. VERSION answers without
// contacting the daemon, so this is the cost of one exec alone.
func (h *harness) timePluginExec(ctx context.Context, n int) (*pluginExec, error) {
	if n < 1 {
		return nil, fmt.Errorf("%d execs", n)
	}
	p, err := h.newPod(h.cluster.Nodes[0])
	if err != nil {
		return nil, err
	}
	defer func() { _ = p.pod.Delete() }()
	o := &overlayPath{plugin: h.plugin, config: versionConfig}
	took := make([]time.Duration, n)
	for i := range took {
		begin := time.Now()
		if err := o.invoke(ctx, p, "VERSION"); err != nil {
			return nil, err
		}
		took[i] = time.Since(begin)
	}
	s := summarize(took)
	return &pluginExec{OVN: h.cluster.Release().Name, P50: s.P50, P99: s.P99, N: n}, nil
}

// selectWorkloads keeps the workloads named in only (all when empty).
func selectWorkloads(plan []workload, only []string) []workload {
	if len(only) == 0 {
		return plan
	}
	var out []workload
	for _, w := range plan {
		for _, o := range only {
			if o == w.name {
				out = append(out, w)
			}
		}
	}
	return out
}

// prepare does a path's untimed set-up for pods, if it has any.
func prepare(ctx context.Context, p path, pods []*benchPod) error {
	if pr, ok := p.(interface {
		prepare(context.Context, []*benchPod) error
	}); ok {
		return pr.prepare(ctx, pods)
	}
	return nil
}

// selectTargets keeps the targets whose "path" or "path/topology" is in
// only (all of them when only is empty).
func selectTargets(targets []*target, only []string) []*target {
	if len(only) == 0 {
		return targets
	}
	var out []*target
	for _, t := range targets {
		for _, o := range only {
			if o == t.path.name() || o == t.path.name()+"/"+t.topology {
				out = append(out, t)
				break
			}
		}
	}
	return out
}

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newPod creates a pod netns (not measured: the runtime does it before CNI
// ADD) and picks the reference paths' address, MAC and host veth name.
func (h *harness) newPod(n *sandbox.Node) (*benchPod, error) {
	id := randomID()
	pod, err := n.NewPod("b" + id[:10])
	if err != nil {
		return nil, err
	}
	h.next++
	a := netip.AddrFrom4([4]byte{10, 201, byte(h.next >> 8), byte(h.next)})
	b := a.As4()
	return &benchPod{
		pod: pod, node: n, containerID: id + randomID(),
		addr: netip.PrefixFrom(a, 16),
		mac:  net.HardwareAddr{0x0a, 0x58, b[0], b[1], b[2], b[3]},
		host: "bh" + id[:12],
	}, nil
}

// podAddr reads net1's IPv4 address inside the pod.
func podAddr(p *benchPod) (netip.Addr, error) {
	out, err := p.pod.Run("ip", "-o", "-4", "addr", "show", "dev", "net1")
	if err != nil {
		return netip.Addr{}, err
	}
	for _, f := range strings.Fields(out) {
		if pfx, err := netip.ParsePrefix(f); err == nil {
			return pfx.Addr(), nil
		}
	}
	return netip.Addr{}, fmt.Errorf("pod %s has no IPv4 address on net1", p.pod.Name)
}

func (h *harness) runWorkload(ctx context.Context, t *target, w workload) (*result, error) {
	pods := make([]*benchPod, w.pods)
	for i := range pods {
		n := h.cluster.Nodes[0]
		if w.spread {
			n = h.cluster.Nodes[i%len(h.cluster.Nodes)]
		}
		p, err := h.newPod(n)
		if err != nil {
			return nil, err
		}
		pods[i] = p
	}
	defer func() {
		for _, p := range pods {
			_ = p.pod.Delete()
		}
	}()
	if err := prepare(ctx, t.path, pods); err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	before := h.sample()
	lat := make([]time.Duration, len(pods))
	var first []time.Duration
	errs, firstErr := 0, ""
	start := time.Now()
	if w.sequential {
		for i, p := range pods {
			begin := time.Now()
			if err := t.path.attach(ctx, p); err != nil {
				return nil, err
			}
			lat[i] = time.Since(begin)
			if err := firstPacket(p, t.peer); err != nil {
				return nil, err
			}
			first = append(first, time.Since(begin))
		}
	} else {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for i, p := range pods {
			wg.Add(1)
			go func() {
				defer wg.Done()
				begin := time.Now()
				err := t.path.attach(ctx, p)
				mu.Lock()
				defer mu.Unlock()
				lat[i] = time.Since(begin)
				if err != nil {
					errs++
					if firstErr == "" {
						firstErr = err.Error()
					}
				}
			}()
		}
		wg.Wait()
	}
	wall := time.Since(start)
	after := h.sample()
	// Failures are a result, not a crash of the suite: the conventional
	// path is expected to fail under large bursts (fork storms, timeouts).
	if errs > 0 {
		progress("  %d of %d attaches failed; first error: %s", errs, len(pods), firstErr)
	}
	delStart := time.Now()
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = t.path.detach(ctx, p)
		}()
	}
	wg.Wait()
	delWall := time.Since(delStart)

	r := &result{
		OVN: h.cluster.Release().Name, Path: t.path.name(), Topology: t.topology, Workload: w.name, Pods: w.pods,
		Latency: summarize(lat), LatenciesMs: millis(lat),
		WallSeconds: wall.Seconds(), PodsPerSecond: float64(len(pods)) / wall.Seconds(),
		DelWallSeconds: delWall.Seconds(), DelPodsPerSecond: float64(len(pods)) / delWall.Seconds(),
		Failed: errs, FirstError: firstErr,
	}
	if len(first) > 0 {
		s := summarize(first)
		r.FirstPacket = &s
	}
	if _, ours := t.path.(*overlayPath); ours {
		recordDaemon(r, before, after, servingNodes(pods))
	}
	return r, nil
}

// recordDaemon fills in what the daemons did for r's ADDs: the two samples
// frame them. The phase means cover only the nodes that served the ADDs.
func recordDaemon(r *result, before, after daemonSample, served []string) {
	r.DaemonCPUSeconds = after.cpu - before.cpu
	r.DaemonPeakRSSMB = after.peakRSSMB
	r.NBTransactions = int(after.nbTxns - before.nbTxns)
	r.OVSTransactions = int(after.ovsTxns - before.ovsTxns)
	r.WarmADDs = int(after.warmADDs - before.warmADDs)
	b, a := sumNodes(before.metrics, served), sumNodes(after.metrics, served)
	r.PhaseMeans, r.PhaseCounts = phaseWindow(b, a), phaseCounts(b, a)
	r.DaemonADDMs = daemonADDMean(b, a)
}

// firstPacket pings peer from the new pod until one reply arrives.
func firstPacket(p *benchPod, peer netip.Addr) error {
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if _, err := p.pod.Run("ping", "-c", "1", "-W", "0.2", "-I", "net1", peer.String()); err == nil {
			return nil
		}
	}
	return fmt.Errorf("pod %s never reached %s", p.pod.Name, peer)
}

// daemonSample is what the daemons have used and done so far.
type daemonSample struct {
	cpu             float64 // seconds, all daemons
	peakRSSMB       float64 // the largest daemon's peak
	nbTxns, ovsTxns float64
	warmADDs        float64 // ADDs served by a warm port
	// metrics is each daemon's /metrics, by node name, for figures that
	// must count only the nodes that served a workload (the ADD phases).
	metrics map[string]map[string]float64
}

func (h *harness) sample() daemonSample {
	s := daemonSample{metrics: map[string]map[string]float64{}}
	for _, n := range h.cluster.Nodes {
		pid := h.daemons[n.Name].Pid()
		s.cpu += processCPU(pid)
		s.peakRSSMB = max(s.peakRSSMB, peakRSSMB(pid))
		m := scrape(n)
		s.metrics[n.Name] = m
		s.nbTxns += m[`ovn_overlay_nb_port_transactions_total{result="ok"}`] + m[`ovn_overlay_nb_port_transactions_total{result="conflict"}`]
		s.ovsTxns += m[`ovn_overlay_ovs_transactions_total{operation="add_port"}`]
		s.warmADDs += m[`ovn_overlay_add_port_source_total{source="warm"}`]
	}
	return s
}

// processCPU is user+system CPU seconds of pid, from /proc.
func processCPU(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the parenthesised command name; utime and stime are
	// the 14th and 15th fields overall.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseFloat(f[11], 64)
	stime, _ := strconv.ParseFloat(f[12], 64)
	return (utime + stime) / 100 // USER_HZ
}

// peakRSSMB is pid's peak resident set (VmHWM).
func peakRSSMB(pid int) float64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, _ := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024
		}
	}
	return 0
}

var metricLine = regexp.MustCompile(`^(\S+) (\S+)$`)

// scrape reads the node daemon's /metrics (inside the node's netns).
func scrape(n *sandbox.Node) map[string]float64 {
	out := map[string]float64{}
	var conn net.Conn
	if err := sandbox.InNetns(n.NetnsPath, func() (err error) {
		conn, err = net.DialTimeout("tcp", "127.0.0.1:9476", 2*time.Second)
		return err
	}); err != nil {
		return out
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := http.NewRequest(http.MethodGet, "http://127.0.0.1:9476/metrics", nil)
	if req.Write(conn) != nil {
		return out
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		return out
	}
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if m := metricLine.FindStringSubmatch(line); m != nil {
			v, _ := strconv.ParseFloat(m[2], 64)
			out[m[1]] = v
		}
	}
	return out
}

func millis(d []time.Duration) []float64 {
	out := make([]float64, len(d))
	for i, x := range d {
		out[i] = float64(x.Microseconds()) / 1000
	}
	return out
}

func summarize(d []time.Duration) stats {
	ms := millis(d)
	sort.Float64s(ms)
	at := func(q float64) float64 { return ms[int(q*float64(len(ms)-1)+0.5)] }
	var sum float64
	for _, v := range ms {
		sum += v
	}
	return stats{P50: at(0.5), P90: at(0.9), P99: at(0.99), Max: ms[len(ms)-1], Mean: sum / float64(len(ms))}
}
