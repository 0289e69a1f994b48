package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/daemon/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// Scale runs plan past this machine: attach latency with the NB already
// holding many ports of many nodes, and the daemon's memory with many ports
// on its node.

// phaseMeans is the mean duration (ms) of each ADD phase over a window,
// from the daemon's own histograms: it says where the time goes.
type phaseMeans map[string]float64

var phases = []string{"nb_port", "plug", "configure", "ovn_installed"}

func phaseWindow(before, after map[string]float64) phaseMeans {
	out := phaseMeans{}
	for _, ph := range phases {
		sum := fmt.Sprintf(`ovn_overlay_add_phase_duration_seconds_sum{phase="%s"}`, ph)
		cnt := fmt.Sprintf(`ovn_overlay_add_phase_duration_seconds_count{phase="%s"}`, ph)
		if n := after[cnt] - before[cnt]; n > 0 {
			out[ph] = (after[sum] - before[sum]) / n * 1000
		}
	}
	return out
}

type scaleResult struct {
	Phases              map[string]phaseMeans `json:"phase_means_ms"`
	PrefillPorts        int                   `json:"prefill_ports"`
	PrefillChassis      int                   `json:"prefill_chassis"`
	PrefillSeconds      float64               `json:"prefill_seconds"`
	EmptyNB             stats                 `json:"attach_empty_nb"`
	FullNBOtherNetwork  stats                 `json:"attach_full_nb_other_network"`
	FullNBSameNetwork   stats                 `json:"attach_full_nb_same_network"`
	DaemonRSSEmptyMB    float64               `json:"daemon_rss_empty_mb"`
	DaemonRSSFullNBMB   float64               `json:"daemon_rss_full_nb_mb"`
	LocalPorts          int                   `json:"local_ports"`
	LocalPortsSeconds   float64               `json:"local_ports_attach_seconds"`
	DaemonRSSLocalMB    float64               `json:"daemon_rss_with_local_ports_mb"`
	DaemonPeakRSSMB     float64               `json:"daemon_peak_rss_mb"`
	AttachWithLocalPort stats                 `json:"attach_with_local_ports"`
	Failures            []string              `json:"failures,omitempty"`
}

func l2conf(name, subnets string) []byte {
	return []byte(fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":%q}`, name, subnets))
}

func (h *harness) runScale(ctx context.Context, ports, chassis, localPorts, samples int) (*scaleResult, error) {
	r := &scaleResult{PrefillPorts: ports, PrefillChassis: chassis, LocalPorts: localPorts, Phases: map[string]phaseMeans{}}
	pid := h.daemons[h.cluster.Nodes[0].Name].Pid()
	attachN := func(config []byte, n int) (stats, error) {
		before := scrape(h.cluster.Nodes[0])
		defer func() {
			var c struct {
				Name string `json:"name"`
			}
			_ = json.Unmarshal(config, &c)
			r.Phases[fmt.Sprintf("%s/%d", c.Name, len(r.Phases))] = phaseWindow(before, scrape(h.cluster.Nodes[0]))
		}()
		path := &overlayPath{plugin: h.plugin, config: config}
		lat := make([]time.Duration, 0, n)
		for i := 0; i < n; i++ {
			p, err := h.newPod(h.cluster.Nodes[0])
			if err != nil {
				return stats{}, err
			}
			begin := time.Now()
			err = path.attach(ctx, p)
			took := time.Since(begin)
			_ = path.detach(ctx, p)
			_ = p.pod.Delete()
			if err != nil {
				// At scale OVN itself may not make the deadline: that
				// is the finding, so record it and stop the window.
				r.Failures = append(r.Failures, fmt.Sprintf("after %s: %v", took.Round(time.Millisecond), err))
				progress("scale: attach failed after %s: %v", took.Round(time.Millisecond), err)
				break
			}
			lat = append(lat, took)
		}
		if len(lat) == 0 {
			return stats{}, nil
		}
		return summarize(lat), nil
	}
	var err error
	progress("scale: %d attaches with an empty NB", samples)
	if r.EmptyNB, err = attachN(l2conf("scale-empty", "10.210.0.0/16"), samples); err != nil {
		return nil, err
	}
	r.DaemonRSSEmptyMB = currentRSSMB(pid)

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
	r.DaemonRSSLocalMB = currentRSSMB(pid)
	r.DaemonPeakRSSMB = peakRSSMB(pid)
	progress("scale: %d attaches with %d local ports", samples, localPorts)
	if r.AttachWithLocalPort, err = attachN(l2conf("scale-empty", "10.210.0.0/16"), samples); err != nil {
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
	progress("scale: pre-filling the NB with %d ports of %d simulated nodes", ports, chassis)
	begin = time.Now()
	if err := h.prefill(ctx, ports, chassis); err != nil {
		return nil, err
	}
	r.PrefillSeconds = time.Since(begin).Seconds()
	progress("scale: pre-filled in %.1fs", r.PrefillSeconds)

	progress("scale: %d attaches on another network, NB full", samples)
	if r.FullNBOtherNetwork, err = attachN(l2conf("scale-other", "10.211.0.0/16"), samples); err != nil {
		return nil, err
	}
	progress("scale: %d attaches on the network holding the %d ports", samples, ports)
	if r.FullNBSameNetwork, err = attachN(l2conf("scale-big", "10.0.0.0/8"), samples); err != nil {
		return nil, err
	}
	r.DaemonRSSFullNBMB = currentRSSMB(pid)

	return r, nil
}

// prefill writes chassis rows for simulated nodes and ports owned by them
// into one layer2 network, in transactions of 1,000 ports.
func (h *harness) prefill(ctx context.Context, ports, chassis int) error {
	for i := 0; i < chassis; i++ {
		name := fmt.Sprintf("sim-node-%d", i)
		ip := netip.AddrFrom4([4]byte{192, 168, 251, byte(i)})
		if _, err := sandbox.RunIn("", "ovn-sbctl", "--db="+h.cluster.Central.SB, "chassis-add", name, "geneve", ip.String()); err != nil {
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
		ovn.NetworkKey: "scale-big", ovn.TopologyKey: "layer2", ovn.FingerprintKey: conf.Fingerprint(),
	})
	if err != nil {
		return err
	}
	for done := 0; done < ports; done += 1000 {
		var add []*nbdb.LogicalSwitchPort
		for i := done; i < min(done+1000, ports); i++ {
			ip := netip.AddrFrom4([4]byte{10, 1 + byte(i>>16), byte(i >> 8), byte(i)})
			b := ip.As4()
			entry := fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x %s", b[0], b[1], b[2], b[3], ip)
			add = append(add, &nbdb.LogicalSwitchPort{
				Name: fmt.Sprintf("ovn-overlay.scale-big.sim%d.net1", i), Addresses: []string{entry}, PortSecurity: []string{entry},
				ExternalIDs: map[string]string{
					ovn.OwnerKey: ovn.OwnerValue, ovn.NetworkKey: "scale-big", ovn.NodeKey: fmt.Sprintf("sim-node-%d", i%chassis),
					ovn.ContainerIDKey: fmt.Sprintf("sim%d", i), ovn.IfNameKey: "net1", ovn.SwitchKey: ls.Name,
				},
			})
		}
		if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: add}); err != nil {
			return err
		}
	}
	return nil
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

func writeScale(out, machine string, r *scaleResult) error {
	b, err := json.MarshalIndent(struct {
		Machine string       `json:"machine"`
		Scale   *scaleResult `json:"scale"`
	}{machine, r}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "scale.json"), b, 0o644); err != nil {
		return err
	}
	var md strings.Builder
	fmt.Fprintf(&md, "Machine: %s.\n\n", machine)
	fmt.Fprintf(&md, "NB pre-filled with %d ports of %d simulated nodes (chassis rows) in %.1f s.\n\n", r.PrefillPorts, r.PrefillChassis, r.PrefillSeconds)
	md.WriteString("| attach (sequential, node1) | p50 ms | p90 ms | max ms | vs empty NB |\n|---|---:|---:|---:|---:|\n")
	row := func(name string, s stats) {
		fmt.Fprintf(&md, "| %s | %.1f | %.1f | %.1f | %s |\n", name, s.P50, s.P90, s.Max, ratio(s.P50, r.EmptyNB.P50))
	}
	row("empty NB", r.EmptyNB)
	row(fmt.Sprintf("NB with %d ports, another network", r.PrefillPorts), r.FullNBOtherNetwork)
	row(fmt.Sprintf("NB with %d ports, same network", r.PrefillPorts), r.FullNBSameNetwork)
	row(fmt.Sprintf("with %d local ports on the node (NB otherwise empty)", r.LocalPorts), r.AttachWithLocalPort)
	fmt.Fprintf(&md, "\n| daemon memory (node1), in run order | RSS MB |\n|---|---:|\n| empty NB | %.1f |\n| with %d local ports attached | %.1f |\n| peak while attaching them | %.1f |\n| local ports removed, NB pre-filled with %d ports (all cached) | %.1f |\n",
		r.DaemonRSSEmptyMB, r.LocalPorts, r.DaemonRSSLocalMB, r.DaemonPeakRSSMB, r.PrefillPorts, r.DaemonRSSFullNBMB)
	fmt.Fprintf(&md, "\n%d local ports attached (50 at a time) in %.1f s.\n", r.LocalPorts, r.LocalPortsSeconds)
	md.WriteString("\nMean ADD phase durations (ms) from the daemon's histograms, per measurement window:\n\n| window | nb_port | plug | configure | ovn_installed |\n|---|---:|---:|---:|---:|\n")
	var windows []string
	for w := range r.Phases {
		windows = append(windows, w)
	}
	sort.Slice(windows, func(i, j int) bool {
		return windows[i][strings.LastIndexByte(windows[i], '/'):] < windows[j][strings.LastIndexByte(windows[j], '/'):]
	})
	for _, w := range windows {
		m := r.Phases[w]
		fmt.Fprintf(&md, "| %s | %.1f | %.1f | %.1f | %.1f |\n", w, m["nb_port"], m["plug"], m["configure"], m["ovn_installed"])
	}
	return os.WriteFile(filepath.Join(out, "scale.md"), []byte(md.String()), 0o644)
}
