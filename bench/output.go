package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"runtime"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

type stats struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

type result struct {
	Path             string    `json:"path"`
	Topology         string    `json:"topology"`
	Workload         string    `json:"workload"`
	Pods             int       `json:"pods"`
	Latency          stats     `json:"add_latency"`
	LatenciesMs      []float64 `json:"add_latencies_ms"`
	FirstPacket      *stats    `json:"time_to_first_packet,omitempty"`
	WallSeconds      float64   `json:"wall_seconds"`
	PodsPerSecond    float64   `json:"pods_per_second"`
	DelWallSeconds   float64   `json:"del_wall_seconds"`
	DelPodsPerSecond float64   `json:"del_pods_per_second"`
	DaemonCPUSeconds float64   `json:"daemon_cpu_seconds,omitempty"`
	DaemonPeakRSSMB  float64   `json:"daemon_peak_rss_mb,omitempty"`
	NBTransactions   int       `json:"nb_transactions,omitempty"`
	OVSTransactions  int       `json:"ovs_transactions,omitempty"`
	WarmADDs         int       `json:"adds_on_warm_ports,omitempty"`
	Failed           int       `json:"failed_attaches"`
	FirstError       string    `json:"first_error,omitempty"`
}

func describeMachine() string {
	kernel, _ := exec.Command("uname", "-r").Output()
	ovs, _ := exec.Command("ovs-vswitchd", "--version").Output()
	ovn, _ := exec.Command("ovn-controller", "--version").Output()
	first := func(b []byte) string { return strings.SplitN(strings.TrimSpace(string(b)), "\n", 2)[0] }
	return fmt.Sprintf("%d CPUs, %s, kernel %s, %s, %s, userspace (netdev) datapath, 2 nodes over geneve; %s",
		runtime.NumCPU(), runtime.Version(), strings.TrimSpace(string(kernel)), first(ovs), first(ovn), time.Now().UTC().Format("2006-01-02"))
}

func writeJSON(path, machine string, results []*result) error {
	b, err := json.MarshalIndent(struct {
		Machine string    `json:"machine"`
		Results []*result `json:"results"`
	}{machine, results}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// reference finds the same workload measured on another path.
func reference(results []*result, path, workload string) *result {
	for _, r := range results {
		if r.Path == path && r.Workload == workload {
			return r
		}
	}
	return nil
}

// referenceTopology is reference for one topology.
func referenceTopology(results []*result, path, topology, workload string) *result {
	for _, r := range results {
		if r.Path == path && r.Topology == topology && r.Workload == workload {
			return r
		}
	}
	return nil
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// writeMarkdown writes the table the README shows. Ratios compare with the
// floor and conventional paths measured in the same run: for sequential
// workloads p50 ADD latency, for bursts the time until the whole burst is
// ready.
func writeMarkdown(path, machine string, results []*result, short bool) error {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine)
	if short {
		b.WriteString("**Short mode (CI smoke run): pod counts are too small for the figures to mean anything.**\n\n")
	}
	b.WriteString("| path | topology | workload | pods | ADD p50 ms | p90 | p99 | max | ready (s) | pods/s | vs floor | vs cold | conventional vs this | first packet p50 ms | DEL pods/s | warm ADDs | NB txns | OVS txns | daemon CPU s | daemon peak RSS MB | failed |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		floor, conv := reference(results, "floor", r.Workload), reference(results, "conventional", r.Workload)
		metric := func(x *result) float64 {
			if x == nil {
				return 0
			}
			if strings.HasPrefix(r.Workload, "sequential") {
				return x.Latency.P50
			}
			return x.WallSeconds
		}
		vsFloor, convVs, vsCold := "-", "-", "-"
		if r.Path == "ovn-overlay" {
			if cold := referenceTopology(results, "ovn-overlay-cold", r.Topology, r.Workload); cold != nil {
				vsCold = ratio(metric(r), metric(cold))
			}
		}
		if floor != nil && r.Path != "floor" {
			vsFloor = ratio(metric(r), metric(floor))
		}
		if conv != nil && r.Path != "conventional" {
			convVs = ratio(metric(conv), metric(r))
		}
		fp := "-"
		if r.FirstPacket != nil {
			fp = fmt.Sprintf("%.1f", r.FirstPacket.P50)
		}
		opt := func(v float64, format string) string {
			if v == 0 {
				return "-"
			}
			return fmt.Sprintf(format, v)
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f | %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %d |\n",
			r.Path, r.Topology, r.Workload, r.Pods, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max,
			r.WallSeconds, r.PodsPerSecond, vsFloor, vsCold, convVs, fp, r.DelPodsPerSecond,
			opt(float64(r.WarmADDs), "%.0f"), opt(float64(r.NBTransactions), "%.0f"), opt(float64(r.OVSTransactions), "%.0f"),
			opt(r.DaemonCPUSeconds, "%.2f"), opt(r.DaemonPeakRSSMB, "%.1f"), r.Failed)
	}
	for _, r := range results {
		if r.Failed > 0 {
			fmt.Fprintf(&b, "\n%s %s %s: %d of %d attaches failed; first error: `%s`\n", r.Path, r.Topology, r.Workload, r.Failed, r.Pods, strings.TrimSpace(r.FirstError))
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// plotCDF draws the ADD latency CDF of the sequential workload, one line
// per path (and topology).
func plotCDF(path string, results []*result) error {
	p := plot.New()
	p.Title.Text = "CNI ADD latency, sequential attaches (CDF)"
	p.X.Label.Text = "ADD latency (ms, log scale)"
	p.Y.Label.Text = "fraction of attaches"
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = plot.LogTicks{Prec: -1}
	p.Legend.Top = false
	p.Legend.Left = false
	lo, hi := math.Inf(1), 0.0
	colors := []color.RGBA{{0, 114, 178, 255}, {0, 158, 115, 255}, {213, 94, 0, 255}, {204, 121, 167, 255}, {86, 180, 233, 255}, {230, 159, 0, 255}, {0, 0, 0, 255}}
	i := 0
	for _, r := range results {
		if r.Workload != "sequential" || len(r.LatenciesMs) == 0 {
			continue
		}
		ms := append([]float64(nil), r.LatenciesMs...)
		sort.Float64s(ms)
		lo, hi = math.Min(lo, max(ms[0], 0.1)), math.Max(hi, ms[len(ms)-1])
		pts := make(plotter.XYs, len(ms))
		for j, v := range ms {
			pts[j].X = max(v, 0.1)
			pts[j].Y = float64(j+1) / float64(len(ms))
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = colors[i%len(colors)]
		line.Width = vg.Points(2)
		i++
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s (%s)", r.Path, r.Topology), line)
	}
	p.Add(plotter.NewGrid())
	// Whole decades, so the log axis always has labelled ticks.
	if hi > 0 {
		p.X.Min = math.Pow(10, math.Floor(math.Log10(lo)))
		p.X.Max = math.Pow(10, math.Ceil(math.Log10(hi)))
	}
	p.Y.Min, p.Y.Max = 0, 1
	return p.Save(8*vg.Inch, 5*vg.Inch, path)
}
