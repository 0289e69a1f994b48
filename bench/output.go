package main

import (
	"encoding/json"
	"fmt"
	"image/color"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

type stats struct {
	P50  float64 `json:"p50_ms"`
	P90  float64 `json:"p90_ms"`
	P99  float64 `json:"p99_ms"`
	Max  float64 `json:"max_ms"`
	Mean float64 `json:"mean_ms"`
}

type result struct {
	// OVN is the release the sandbox ran ("25.03").
	OVN              string    `json:"ovn"`
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
	// PhaseMeans (ovn-overlay paths only) is where the daemons' ADD time
	// went, and PhaseCounts how many ADDs each mean averages.
	PhaseMeans  phaseMeans     `json:"phase_means_ms,omitempty"`
	PhaseCounts map[string]int `json:"phase_counts,omitempty"`
	// DaemonADDMs is the daemons' mean ADD time as they measured it, from
	// request to reply (ovn-overlay paths only).
	DaemonADDMs float64 `json:"daemon_add_mean_ms,omitempty"`
	Failed      int     `json:"failed_attaches"`
	FirstError  string  `json:"first_error,omitempty"`
}

// pluginExec is the plugin exec alone on one release: the plugin binary
// exec'd with CNI_COMMAND=VERSION, which answers without the daemon.
type pluginExec struct {
	OVN string  `json:"ovn"`
	P50 float64 `json:"p50_ms"`
	P99 float64 `json:"p99_ms"`
	N   int     `json:"n"`
}

// describeMachine names the machine and each release's OVS and OVN as
// they really ran: every release answers --version through its own
// binaries, since the host's are only one of them.
func describeMachine(releases []sandbox.Release) string {
	kernel, _ := exec.Command("uname", "-r").Output()
	builds := make([]string, len(releases))
	for i, rel := range releases {
		builds[i] = fmt.Sprintf("OVN %s: %s, %s", rel.Name, version(rel, "ovs-vswitchd"), version(rel, "ovn-controller"))
	}
	return fmt.Sprintf("%d CPUs, %s, kernel %s, userspace (netdev) datapath, 2 nodes over geneve; %s; %s",
		runtime.NumCPU(), runtime.Version(), strings.TrimSpace(string(kernel)), strings.Join(builds, "; "), time.Now().UTC().Format("2006-01-02"))
}

// version is the first line of rel's program --version.
func version(rel sandbox.Release, program string) string {
	argv := rel.Command([]string{program, "--version"})
	out, err := exec.Command(argv[0], argv[1:]...).Output()
	if err != nil {
		return fmt.Sprintf("%s (version unknown: %v)", program, err)
	}
	return strings.SplitN(strings.TrimSpace(string(out)), "\n", 2)[0]
}

func writeJSON(path, machine string, results []*result, execs []*pluginExec) error {
	b, err := json.MarshalIndent(struct {
		Machine    string        `json:"machine"`
		Results    []*result     `json:"results"`
		PluginExec []*pluginExec `json:"plugin_exec,omitempty"`
	}{machine, results, execs}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, b, 0o644)
}

// reference finds the result of path for r's release and workload. Taking
// r, not loose names, keeps every ratio within one release even when
// results holds several.
func reference(results []*result, r *result, path string) *result {
	for _, x := range results {
		if x.OVN == r.OVN && x.Path == path && x.Workload == r.Workload {
			return x
		}
	}
	return nil
}

// referenceTopology is reference for r's topology too.
func referenceTopology(results []*result, r *result, path string) *result {
	for _, x := range results {
		if x.OVN == r.OVN && x.Path == path && x.Topology == r.Topology && x.Workload == r.Workload {
			return x
		}
	}
	return nil
}

// execOf is release ovn's plugin exec, nil when it was not measured.
func execOf(execs []*pluginExec, ovn string) *pluginExec {
	for _, e := range execs {
		if e.OVN == ovn {
			return e
		}
	}
	return nil
}

// limitRatios are r's "vs limit p50" and "vs limit p99" columns: r's ADD
// latency over the limit of the ADD path, floor-prebound plus one plugin
// exec, both measured on r's release (floor-prebound on r's workload too).
// Only the ovn-overlay paths' sequential rows have them; elsewhere, or when
// either part of the limit is missing (or exec is another release's), they
// are "-".
func limitRatios(results []*result, exec *pluginExec, r *result) (p50, p99 string) {
	if (r.Path != "ovn-overlay" && r.Path != "ovn-overlay-cold") || !strings.HasPrefix(r.Workload, "sequential") {
		return "-", "-"
	}
	floor := reference(results, r, "floor-prebound")
	if floor == nil || exec == nil || exec.OVN != r.OVN || floor.Latency.P50 == 0 || r.Latency.P50 == 0 {
		return "-", "-"
	}
	return ratio(r.Latency.P50, floor.Latency.P50+exec.P50), ratio(r.Latency.P99, floor.Latency.P99+exec.P99)
}

func ratio(a, b float64) string {
	if b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", a/b)
}

// writeMarkdown writes the tables the README shows: one section per
// release, then, with several, how the releases compare.
func writeMarkdown(path, machine string, results []*result, execs []*pluginExec, short bool) error {
	return os.WriteFile(path, []byte(markdown(machine, results, execs, short)), 0o644)
}

func markdown(machine string, results []*result, execs []*pluginExec, short bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Machine: %s.\n\n", machine)
	if short {
		b.WriteString("**Short mode (CI smoke run): pod counts are too small for the figures to mean anything.**\n\n")
	}
	groups := byRelease(results)
	for _, g := range groups {
		fmt.Fprintf(&b, "## OVN %s\n\n", g.ovn)
		writeReleaseTable(&b, g.results, execOf(execs, g.ovn))
		writePhaseTable(&b, g.results)
		b.WriteString("\n")
	}
	if len(groups) > 1 {
		writeComparison(&b, []string{"path", "topology", "workload"}, benchComparison(groups))
	}
	return b.String()
}

// writeReleaseTable writes one release's results. Ratios compare with the
// floor and conventional paths measured on the same sandbox: for
// sequential workloads p50 ADD latency, for bursts the time until the
// whole burst is ready. The ovn-overlay paths' sequential rows also
// compare with the limit (limitRatios), p50 with p50 and p99 with p99,
// against exec, the release's plugin exec (nil: not measured).
func writeReleaseTable(b *strings.Builder, results []*result, exec *pluginExec) {
	b.WriteString("| path | topology | workload | pods | ADD p50 ms | p90 | p99 | max | ready (s) | pods/s | vs floor | vs cold | vs limit p50 | vs limit p99 | conventional vs this | first packet p50 ms | DEL pods/s | warm ADDs | NB txns | OVS txns | daemon CPU s | daemon peak RSS MB | failed |\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for _, r := range results {
		vsFloor, vsCold, convVs := referenceRatios(results, r)
		vsLimit50, vsLimit99 := limitRatios(results, exec, r)
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
		fmt.Fprintf(b, "| %s | %s | %s | %d | %.1f | %.1f | %.1f | %.1f | %.2f | %.0f | %s | %s | %s | %s | %s | %s | %.0f | %s | %s | %s | %s | %s | %d |\n",
			r.Path, r.Topology, r.Workload, r.Pods, r.Latency.P50, r.Latency.P90, r.Latency.P99, r.Latency.Max,
			r.WallSeconds, r.PodsPerSecond, vsFloor, vsCold, vsLimit50, vsLimit99, convVs, fp, r.DelPodsPerSecond,
			opt(float64(r.WarmADDs), "%.0f"), opt(float64(r.NBTransactions), "%.0f"), opt(float64(r.OVSTransactions), "%.0f"),
			opt(r.DaemonCPUSeconds, "%.2f"), opt(r.DaemonPeakRSSMB, "%.1f"), r.Failed)
	}
	if exec != nil {
		fmt.Fprintf(b, "\nlimit = floor-prebound + one plugin exec (exec p50 %.2f ms, p99 %.2f ms, %d execs of CNI_COMMAND=VERSION)\n", exec.P50, exec.P99, exec.N)
	}
	for _, r := range results {
		if r.Failed > 0 {
			fmt.Fprintf(b, "\n%s %s %s: %d of %d attaches failed; first error: `%s`\n", r.Path, r.Topology, r.Workload, r.Failed, r.Pods, strings.TrimSpace(r.FirstError))
		}
	}
}

// phaseHeading heads each release's phase table.
const phaseHeading = "### Mean ADD phase durations (ms), from the daemon's histograms"

// writePhaseTable writes where the ADD time of each result with phase
// means (the ovn-overlay paths) went, against the ADD latency the runtime
// saw: the difference is what the daemon's phases do not cover. Nothing is
// written when no result has them.
func writePhaseTable(b *strings.Builder, results []*result) {
	var rows []*result
	for _, r := range results {
		if r.PhaseMeans != nil {
			rows = append(rows, r)
		}
	}
	if len(rows) == 0 {
		return
	}
	fmt.Fprintf(b, "\n%s\n\n", phaseHeading)
	b.WriteString("Each phase is the mean over the ADDs that went through it (relabel: only those on a warm port), " +
		"with the histograms of every node that served the workload added together. nb_port and plug both start with the ADD and run side by side, " +
		"so the sum of phases counts the longer of the two (a lower bound if which one is longer varies between ADDs), " +
		"and relabel for the share of ADDs on a warm port; prepare is everything before them (validation, the lock, clearing leftovers, planning). " +
		"daemon ADD is the daemon's own mean from request to reply (its cni_duration histogram): daemon ADD − sum of phases is the server's handling around Add, " +
		"ADD mean − daemon ADD is the runtime's side (exec'ing the plugin, the request over the socket).\n\n")
	b.WriteString("| path | topology | workload | " + strings.Join(phases, " | ") + " | sum of phases | daemon ADD | ADD mean | ADD p50 |\n")
	b.WriteString("|---|---|---|" + strings.Repeat("---:|", len(phases)+4) + "\n")
	for _, r := range rows {
		cells := []string{r.Path, r.Topology, r.Workload}
		for _, ph := range phases {
			ms, ok := r.PhaseMeans[ph]
			cells = append(cells, msCell(ok, ms))
		}
		sum := phaseSum(r.PhaseMeans, r.PhaseCounts)
		cells = append(cells, msCell(true, sum), msCell(r.DaemonADDMs > 0, r.DaemonADDMs), msCell(true, r.Latency.Mean), msCell(true, r.Latency.P50))
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
}

// referenceRatios are r's "vs floor", "vs cold" and "conventional vs this"
// columns ("-" where they do not apply), against r's own release.
func referenceRatios(results []*result, r *result) (vsFloor, vsCold, convVs string) {
	metric := func(x *result) float64 {
		if strings.HasPrefix(r.Workload, "sequential") {
			return x.Latency.P50
		}
		return x.WallSeconds
	}
	vsFloor, vsCold, convVs = "-", "-", "-"
	if r.Path == "ovn-overlay" {
		if cold := referenceTopology(results, r, "ovn-overlay-cold"); cold != nil {
			vsCold = ratio(metric(r), metric(cold))
		}
	}
	if floor := reference(results, r, "floor"); floor != nil && r.Path != "floor" {
		vsFloor = ratio(metric(r), metric(floor))
	}
	if conv := reference(results, r, "conventional"); conv != nil && r.Path != "conventional" {
		convVs = ratio(metric(conv), metric(r))
	}
	return vsFloor, vsCold, convVs
}

// comparedPaths are the paths the release comparison shows: the product,
// warm ports on and off, and the floor, which tells whether a change is
// OVN's own.
var comparedPaths = []string{"ovn-overlay", "ovn-overlay-cold", "floor"}

// comparisonRow is one measurement taken on several releases.
type comparisonRow struct {
	labels    []string         // what it is: path, topology, workload
	byRelease map[string]stats // its ADD latency per release
}

// benchComparison pairs the compared paths' results across releases, in
// the order of the first release's run.
func benchComparison(groups []releaseResults) []comparisonRow {
	var rows []comparisonRow
	index := map[string]int{}
	for _, g := range groups {
		for _, r := range g.results {
			if !slices.Contains(comparedPaths, r.Path) {
				continue
			}
			key := r.Path + "\x00" + r.Topology + "\x00" + r.Workload
			i, ok := index[key]
			if !ok {
				i = len(rows)
				index[key] = i
				rows = append(rows, comparisonRow{labels: []string{r.Path, r.Topology, r.Workload}, byRelease: map[string]stats{}})
			}
			rows[i].byRelease[g.ovn] = r.Latency
		}
	}
	return rows
}

// writeComparison writes the releases side by side: p50 and p99 per
// release, newest first, then newest ÷ oldest (below 1×: the newest is
// faster). A row a release lacks (or measured nothing for) shows "-".
func writeComparison(b *strings.Builder, labels []string, rows []comparisonRow) {
	var names []string
	for _, row := range rows {
		for name := range row.byRelease {
			if !slices.Contains(names, name) {
				names = append(names, name)
			}
		}
	}
	names = newestFirst(names)
	if len(names) < 2 {
		return
	}
	newest, oldest := names[0], names[len(names)-1]
	fmt.Fprintf(b, "## OVN %s\n\n", strings.Join(names, " vs "))
	fmt.Fprintf(b, "ADD latency (ms) of the same measurement on each release; the last columns divide OVN %s's by OVN %s's (below 1×: %s is faster).\n\n", newest, oldest, newest)
	header, align := slices.Clone(labels), strings.Repeat("|---", len(labels))
	for _, n := range names {
		header = append(header, n+" p50", n+" p99")
		align += "|---:|---:"
	}
	header = append(header, fmt.Sprintf("p50 %s ÷ %s", newest, oldest), fmt.Sprintf("p99 %s ÷ %s", newest, oldest))
	align += "|---:|---:|\n"
	fmt.Fprintf(b, "| %s |\n%s", strings.Join(header, " | "), align)
	for _, row := range rows {
		cells := slices.Clone(row.labels)
		for _, n := range names {
			s, ok := row.byRelease[n]
			cells = append(cells, msCell(ok, s.P50), msCell(ok, s.P99))
		}
		nw, okN := row.byRelease[newest]
		od, okO := row.byRelease[oldest]
		cells = append(cells, releaseRatio(okN && okO, nw.P50, od.P50), releaseRatio(okN && okO, nw.P99, od.P99))
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
}

// msCell is a latency cell; zero means nothing was measured (a scale
// window that failed, a workload whose ADDs all failed).
func msCell(ok bool, ms float64) string {
	if !ok || ms == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", ms)
}

// releaseRatio is newest ÷ oldest, "-" unless both were measured.
func releaseRatio(ok bool, newest, oldest float64) string {
	if !ok || newest == 0 {
		return "-"
	}
	return ratio(newest, oldest)
}

// writeCDFs draws latency-cdf.png and, with several releases, one
// latency-cdf-<release>.png each; latency-cdf.png is then the first
// release's, so links to it (the README's) stay valid. It returns the
// files' names.
func writeCDFs(out string, results []*result) ([]string, error) {
	groups := byRelease(results)
	var files []string
	for i, g := range groups {
		var names []string
		if i == 0 {
			names = append(names, "latency-cdf.png")
		}
		if len(groups) > 1 {
			names = append(names, "latency-cdf-"+g.ovn+".png")
		}
		for _, name := range names {
			if err := plotCDF(filepath.Join(out, name), g.ovn, g.results); err != nil {
				return nil, err
			}
			files = append(files, name)
		}
	}
	return files, nil
}

// plotCDF draws the ADD latency CDF of the sequential workload on one
// release, one line per path (and topology).
func plotCDF(path, ovn string, results []*result) error {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("CNI ADD latency, sequential attaches, OVN %s (CDF)", ovn)
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
