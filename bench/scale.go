package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// Scale runs plan past this machine: attach latency with the NB already
// holding many ports of many nodes, and the daemon's memory with many ports
// on its node.

// scaleWindow is one cluster state, measured on every path: the product
// (through its CNI binary), the floor, and the floor with its logical
// ports created beforehand (what pre-provisioned ports could reach).
type scaleWindow struct {
	// OVN is the release the sandbox ran ("25.03").
	OVN  string `json:"ovn"`
	Name string `json:"name"`
	// Paths holds sequential attach latency per path name.
	Paths map[string]stats `json:"attach"`
	// Phases are the daemon's mean ADD phase durations (ms) for the
	// product's attaches of this window, warm ports on and off.
	Phases     phaseMeans `json:"phase_means_ms"`
	ColdPhases phaseMeans `json:"cold_phase_means_ms"`
}

// scaleResult is one release's scale run.
type scaleResult struct {
	OVN            string         `json:"ovn"`
	Windows        []*scaleWindow `json:"windows"`
	PrefillPorts   int            `json:"prefill_ports"`
	PrefillChassis int            `json:"prefill_chassis"`
	PrefillSeconds float64        `json:"prefill_seconds"`
	// SettleSeconds is, per prefill step, how long OVN took to catch up
	// (until a new port could be installed at all).
	SettleSeconds     []float64 `json:"settle_seconds"`
	DaemonRSSEmptyMB  float64   `json:"daemon_rss_empty_mb"`
	DaemonRSSFullNBMB float64   `json:"daemon_rss_full_nb_mb"`
	LocalPorts        int       `json:"local_ports"`
	LocalPortsSeconds float64   `json:"local_ports_attach_seconds"`
	DaemonRSSLocalMB  float64   `json:"daemon_rss_with_local_ports_mb"`
	DaemonPeakRSSMB   float64   `json:"daemon_peak_rss_mb"`
	Failures          []string  `json:"failures,omitempty"`
}

func l2conf(name, subnets string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":%q}`, name, subnets))
}

// scalePaths are the paths measured in each window: ovn-overlay on a
// network, and the floor (plain and prebound) on a switch of the same size.
type scalePaths struct {
	overlay, cold   *overlayPath
	floor, prebound *floorPath
}

func (h *harness) newScalePaths(ctx context.Context, config []byte, floorSwitch string) (*scalePaths, error) {
	floor, err := newFloorPath(ctx, h.cluster, floorSwitch)
	if err != nil {
		return nil, err
	}
	prebound, err := newFloorPath(ctx, h.cluster, floorSwitch)
	if err != nil {
		return nil, err
	}
	prebound.prebound = true
	return &scalePaths{
		overlay: &overlayPath{plugin: h.plugin, config: config},
		cold:    &overlayPath{plugin: h.plugin, config: config, cold: true},
		floor:   floor, prebound: prebound,
	}, nil
}

// measureSequential attaches n pods on node1 one at a time through p,
// detaching each right after, and returns the latencies. A failed attach
// ends the window: at scale OVN itself may miss the deadline, and that is
// a finding to record, not a crash.
func (h *harness) measureSequential(ctx context.Context, r *scaleResult, p path, n int) (stats, error) {
	pods := make([]*benchPod, n)
	for i := range pods {
		var err error
		if pods[i], err = h.newPod(h.cluster.Nodes[0]); err != nil {
			return stats{}, err
		}
	}
	defer func() {
		for _, pod := range pods {
			_ = pod.pod.Delete()
		}
	}()
	if err := prepare(ctx, p, pods); err != nil {
		return stats{}, fmt.Errorf("%s: prepare: %w", p.name(), err)
	}
	lat := make([]time.Duration, 0, n)
	for _, pod := range pods {
		begin := time.Now()
		err := p.attach(ctx, pod)
		took := time.Since(begin)
		_ = p.detach(ctx, pod)
		if err != nil {
			r.Failures = append(r.Failures, fmt.Sprintf("%s after %s: %v", p.name(), took.Round(time.Millisecond), err))
			progress("scale: %s attach failed after %s: %v", p.name(), took.Round(time.Millisecond), err)
			break
		}
		lat = append(lat, took)
	}
	if len(lat) == 0 {
		return stats{}, nil
	}
	return summarize(lat), nil
}

// measureWindow runs every path of sp for one cluster state.
func (h *harness) measureWindow(ctx context.Context, r *scaleResult, name string, sp *scalePaths, n int) error {
	w := &scaleWindow{OVN: h.cluster.Release().Name, Name: name, Paths: map[string]stats{}}
	// The product last, with warm ports: the daemon measured for memory
	// afterwards is the one users run.
	for _, p := range []path{sp.floor, sp.prebound, sp.cold, sp.overlay} {
		if err := h.useDaemons(p); err != nil {
			return err
		}
		progress("scale: %s: %d attaches, %s", name, n, p.name())
		before := scrape(h.cluster.Nodes[0])
		s, err := h.measureSequential(ctx, r, p, n)
		if err != nil {
			return err
		}
		if p == path(sp.overlay) || p == path(sp.cold) {
			if p == path(sp.cold) {
				w.ColdPhases = phaseWindow(before, scrape(h.cluster.Nodes[0]))
			} else {
				w.Phases = phaseWindow(before, scrape(h.cluster.Nodes[0]))
			}
		}
		w.Paths[p.name()] = s
		progress("scale: %s: %s p50 %.1f ms", name, p.name(), s.P50)
	}
	r.Windows = append(r.Windows, w)
	return nil
}

func (h *harness) runScale(ctx context.Context, ports, chassis, localPorts, steps, samples int) (*scaleResult, error) {
	r := &scaleResult{OVN: h.cluster.Release().Name, PrefillPorts: ports, PrefillChassis: chassis, LocalPorts: localPorts}
	// The daemons restart between paths (warm ports on and off).
	pid := func() int { return h.daemons[h.cluster.Nodes[0].Name].Pid() }
	small, err := h.newScalePaths(ctx, l2conf("scale-empty", "10.210.0.0/16"), "scale-floor")
	if err != nil {
		return nil, err
	}
	if err := h.measureWindow(ctx, r, "empty NB", small, samples); err != nil {
		return nil, err
	}
	r.DaemonRSSEmptyMB = currentRSSMB(pid())

	progress("scale: %d ports on node1 (layer3), 50 at a time", localPorts)
	path := &overlayPath{plugin: h.plugin, config: []byte(`{"cniVersion":"1.0.0","name":"scale-local","type":"ovn-k8s-cni-overlay","topology":"layer3","subnets":"10.212.0.0/16/20"}`)}
	begin := time.Now()
	var local []*benchPod
	for done := 0; done < localPorts; done += 50 {
		var wg sync.WaitGroup
		var mu sync.Mutex
		var firstErr error
		for i := done; i < min(done+50, localPorts); i++ {
			p, err := h.newPod(h.cluster.Nodes[0])
			if err != nil {
				return nil, err
			}
			local = append(local, p)
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := path.attach(ctx, p); err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		if firstErr != nil {
			return nil, fmt.Errorf("local port %d: %w", done, firstErr)
		}
		if (done+50)%250 == 0 {
			progress("scale: %d local ports", done+50)
		}
	}
	r.LocalPortsSeconds = time.Since(begin).Seconds()
	r.DaemonRSSLocalMB = currentRSSMB(pid())
	r.DaemonPeakRSSMB = peakRSSMB(pid())
	if err := h.measureWindow(ctx, r, fmt.Sprintf("%d local ports on the node (NB otherwise empty)", localPorts), small, samples); err != nil {
		return nil, err
	}
	progress("scale: removing the %d local ports", localPorts)
	var wg sync.WaitGroup
	for _, p := range local {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_ = path.detach(ctx, p)
			_ = p.pod.Delete()
		}()
	}
	wg.Wait()
	other, err := h.newScalePaths(ctx, l2conf("scale-other", "10.211.0.0/16"), "scale-floor")
	if err != nil {
		return nil, err
	}
	// The NB grows in steps, so the tables show how cost grows with it.
	var big *scalePaths
	sameFailed := false
	for step := 1; step <= steps; step++ {
		from, to := ports*(step-1)/steps, ports*step/steps
		progress("scale: pre-filling the NB with ports %d-%d of %d simulated nodes", from, to, chassis)
		begin = time.Now()
		if err := h.prefill(ctx, from, to, chassis); err != nil {
			return nil, err
		}
		r.PrefillSeconds += time.Since(begin).Seconds()
		settled, err := h.settle(ctx, other.floor, fmt.Sprintf("ovn-overlay.scale-big.sim%d.net1", to-1))
		if err != nil {
			return nil, err
		}
		r.SettleSeconds = append(r.SettleSeconds, settled.Seconds())
		progress("scale: OVN caught up with %d ports in %.1fs", to, settled.Seconds())
		if err := h.measureWindow(ctx, r, fmt.Sprintf("NB with %d ports, another network", to), other, samples); err != nil {
			return nil, err
		}
		if sameFailed {
			continue // it only gets worse: skip the minutes of timeouts
		}
		if big == nil {
			// The floors' ports go on the switch holding the pre-filled
			// ports, which exists now.
			if big, err = h.newScalePaths(ctx, l2conf("scale-big", "10.0.0.0/8"), "ovn-overlay.scale-big.layer2"); err != nil {
				return nil, err
			}
		}
		failures := len(r.Failures)
		if err := h.measureWindow(ctx, r, fmt.Sprintf("NB with %d ports, same network", to), big, samples); err != nil {
			return nil, err
		}
		sameFailed = len(r.Failures) > failures
	}
	r.DaemonRSSFullNBMB = currentRSSMB(pid())
	return r, nil
}

// settle waits until OVN has caught up with a bulk prefill: northd has
// compiled the last port into the SB, and a floor attach succeeds (one
// untimed attach, retried for up to five minutes). Measuring before that
// would time OVN's catching up, not an attach.
func (h *harness) settle(ctx context.Context, floor *floorPath, lastPort string) (time.Duration, error) {
	begin := time.Now()
	if _, err := runTool(h.cluster.Release(), "ovn-sbctl", "--db="+h.cluster.Central.SB, "--timeout=300", "wait-until", "Port_Binding", lastPort); err != nil {
		return 0, fmt.Errorf("waiting for northd to compile the prefill: %w", err)
	}
	for time.Since(begin) < 5*time.Minute {
		p, err := h.newPod(h.cluster.Nodes[0])
		if err != nil {
			return 0, err
		}
		err = floor.attach(ctx, p)
		_ = floor.detach(ctx, p)
		_ = p.pod.Delete()
		if err == nil {
			return time.Since(begin), nil
		}
		progress("scale: OVN still catching up after %s: %v", time.Since(begin).Round(time.Second), err)
	}
	return 0, fmt.Errorf("OVN did not install a port within 5 minutes of the prefill")
}

// prefill writes ports from..to-1 of simulated nodes into one layer2
// network, in transactions of 1,000 ports, and the nodes' chassis rows
// with the first ports.
func (h *harness) prefill(ctx context.Context, from, to, chassis int) error {
	for i := 0; i < chassis && from == 0; i++ {
		name := fmt.Sprintf("sim-node-%d", i)
		ip := netip.AddrFrom4([4]byte{192, 168, 251, byte(i)})
		if _, err := runTool(h.cluster.Release(), "ovn-sbctl", "--db="+h.cluster.Central.SB, "chassis-add", name, "geneve", ip.String()); err != nil {
			return err
		}
	}
	conf, err := netconf.Parse(l2conf("scale-big", "10.0.0.0/8"))
	if err != nil {
		return err
	}
	nb, err := ovn.ConnectNorthbound(ctx, h.cluster.Central.NB, logr.Discard())
	if err != nil {
		return err
	}
	defer nb.Close()
	ls, err := nb.EnsureSwitch(ctx, "ovn-overlay.scale-big.layer2", map[string]string{
		externalids.Network: "scale-big", externalids.Topology: "layer2", externalids.Fingerprint: conf.Fingerprint(),
	})
	if err != nil {
		return err
	}
	for done := from; done < to; done += 1000 {
		var add []*nbdb.LogicalSwitchPort
		for i := done; i < min(done+1000, to); i++ {
			ip := netip.AddrFrom4([4]byte{10, 1 + byte(i>>16), byte(i >> 8), byte(i)})
			b := ip.As4()
			entry := fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x %s", b[0], b[1], b[2], b[3], ip)
			add = append(add, &nbdb.LogicalSwitchPort{
				Name: fmt.Sprintf("ovn-overlay.scale-big.sim%d.net1", i), Addresses: []string{entry}, PortSecurity: []string{entry},
				ExternalIDs: map[string]string{
					externalids.Owner: externalids.OwnerValue, externalids.Network: "scale-big", externalids.Node: fmt.Sprintf("sim-node-%d", i%chassis),
					externalids.ContainerID: fmt.Sprintf("sim%d", i), externalids.IfName: "net1", externalids.Switch: ls.Name,
				},
			})
		}
		if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: add}); err != nil {
			return err
		}
	}
	return nil
}

func secondsList(xs []float64) string {
	var out []string
	for _, x := range xs {
		out = append(out, fmt.Sprintf("%.1f", x))
	}
	return strings.Join(out, ", ")
}

// currentRSSMB is pid's resident set now (VmRSS).
func currentRSSMB(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			var kb float64
			fmt.Sscanf(strings.TrimSpace(v), "%f", &kb)
			return kb / 1024
		}
	}
	return 0
}

// writeScale writes scale.json (one entry per release, in run order) and
// scale.md.
func writeScale(out, machine string, runs []*scaleResult) error {
	b, err := json.MarshalIndent(struct {
		Machine string         `json:"machine"`
		Scale   []*scaleResult `json:"scale"`
	}{machine, runs}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "scale.json"), b, 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(out, "scale.md"), []byte(scaleMarkdown(machine, runs)), 0o644)
}

// scaleMarkdown is one section per release, then, with several, how the
// releases compare window by window.
func scaleMarkdown(machine string, runs []*scaleResult) string {
	var md strings.Builder
	fmt.Fprintf(&md, "Machine: %s.\n\n", machine)
	for _, r := range runs {
		fmt.Fprintf(&md, "## OVN %s\n\n", r.OVN)
		writeScaleRun(&md, r)
		md.WriteString("\n")
	}
	if len(runs) > 1 {
		md.WriteString("Sequential attaches on node1 in each window.\n\n")
		writeComparison(&md, []string{"window", "path"}, scaleComparison(runs))
	}
	return md.String()
}

// writeScaleRun writes one release's scale tables; every ratio in them is
// within r, so within one release.
func writeScaleRun(md *strings.Builder, r *scaleResult) {
	fmt.Fprintf(md, "NB pre-filled in steps up to %d ports of %d simulated nodes (chassis rows) in %.1f s in all. "+
		"After each step the run waits for OVN to catch up (northd compiled the prefill and a port can be installed): %s s. "+
		"Sequential attaches on node1; floor-prebound binds a logical port created (and compiled by northd) before the attach.\n\n",
		r.PrefillPorts, r.PrefillChassis, r.PrefillSeconds, secondsList(r.SettleSeconds))
	md.WriteString("| window | floor p50 ms | floor-prebound p50 ms | ovn-overlay-cold p50 ms | ovn-overlay p50 ms | ovn-overlay p90 ms | ovn-overlay vs floor | ovn-overlay vs cold | ovn-overlay vs its empty NB |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	var empty stats
	for i, w := range r.Windows {
		f, pb, c, o := w.Paths["floor"], w.Paths["floor-prebound"], w.Paths["ovn-overlay-cold"], w.Paths["ovn-overlay"]
		if i == 0 {
			empty = o
		}
		fmt.Fprintf(md, "| %s | %.1f | %.1f | %.1f | %.1f | %.1f | %s | %s | %s |\n", w.Name, f.P50, pb.P50, c.P50, o.P50, o.P90,
			ratio(o.P50, f.P50), ratio(o.P50, c.P50), ratio(o.P50, empty.P50))
	}
	fmt.Fprintf(md, "\n| daemon memory (node1), in run order | RSS MB |\n|---|---:|\n| empty NB | %.1f |\n| with %d local ports attached | %.1f |\n| peak while attaching them | %.1f |\n| local ports removed, NB pre-filled with %d ports (all cached) | %.1f |\n",
		r.DaemonRSSEmptyMB, r.LocalPorts, r.DaemonRSSLocalMB, r.DaemonPeakRSSMB, r.PrefillPorts, r.DaemonRSSFullNBMB)
	fmt.Fprintf(md, "\n%d local ports attached (50 at a time) in %.1f s.\n", r.LocalPorts, r.LocalPortsSeconds)
	md.WriteString("\nMean ADD phase durations (ms) from the daemon's histograms, per window, warm ports on (ovn-overlay) and off (cold):\n\n| window | path | prepare | nb_port | plug | configure | ovn_installed | relabel |\n|---|---|---:|---:|---:|---:|---:|---:|\n")
	for _, w := range r.Windows {
		for _, ph := range []struct {
			name string
			m    phaseMeans
		}{{"ovn-overlay", w.Phases}, {"ovn-overlay-cold", w.ColdPhases}} {
			fmt.Fprintf(md, "| %s | %s | %.1f | %.1f | %.1f | %.1f | %.1f | %.1f |\n", w.Name, ph.name, ph.m["prepare"], ph.m["nb_port"], ph.m["plug"], ph.m["configure"], ph.m["ovn_installed"], ph.m["relabel"])
		}
	}
	if len(r.Failures) > 0 {
		md.WriteString("\nFailed attaches (each ends its window):\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(md, "- %s\n", f)
		}
	}
}

// scaleComparison pairs the compared paths' windows across releases by
// window name (the same flags give every release the same windows), in
// the first release's order.
func scaleComparison(runs []*scaleResult) []comparisonRow {
	var rows []comparisonRow
	index := map[string]int{}
	for _, r := range runs {
		for _, w := range r.Windows {
			for _, p := range comparedPaths {
				s, ok := w.Paths[p]
				if !ok {
					continue
				}
				key := w.Name + "\x00" + p
				i, seen := index[key]
				if !seen {
					i = len(rows)
					index[key] = i
					rows = append(rows, comparisonRow{labels: []string{w.Name, p}, byRelease: map[string]stats{}})
				}
				rows[i].byRelease[r.OVN] = s
			}
		}
	}
	return rows
}
