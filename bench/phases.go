package main

import "fmt"

// Where an ovn-overlay ADD's time goes, from the daemon's own histograms
// (ovn_overlay_add_phase_duration_seconds): the bench reads them before and
// after a window of attaches, so each figure covers that window's ADDs only.

// phaseMeans is the mean duration (ms) of each ADD phase over a window,
// from the daemon's own histograms: it says where the time goes. A phase
// no ADD of the window went through (relabel without warm ports) is absent.
type phaseMeans map[string]float64

// phases are the daemon's ADD phases, in the order an ADD runs them.
var phases = []string{"prepare", "nb_port", "plug", "configure", "ovn_installed", "relabel"}

// phaseSeries names one series of a phase's histogram: kind is "sum"
// (seconds) or "count" (observations).
func phaseSeries(kind, phase string) string {
	return fmt.Sprintf(`ovn_overlay_add_phase_duration_seconds_%s{phase="%s"}`, kind, phase)
}

// phaseWindow is each phase's mean over the ADDs between two scrapes.
func phaseWindow(before, after map[string]float64) phaseMeans {
	out := phaseMeans{}
	for _, ph := range phases {
		sum, cnt := phaseSeries("sum", ph), phaseSeries("count", ph)
		if n := after[cnt] - before[cnt]; n > 0 {
			out[ph] = (after[sum] - before[sum]) / n * 1000
		}
	}
	return out
}

// phaseCounts is how many ADDs each mean of phaseWindow averages over:
// relabel's differs from the others' when only some ADDs had a warm port,
// and phaseSum needs that share.
func phaseCounts(before, after map[string]float64) map[string]int {
	out := map[string]int{}
	for _, ph := range phases {
		cnt := phaseSeries("count", ph)
		if n := after[cnt] - before[cnt]; n > 0 {
			out[ph] = int(n)
		}
	}
	return out
}

// sumNodes adds up the named nodes' scrapes series by series. Each daemon
// keeps its own histograms, so the mean over a workload spread over two
// nodes is the summed sums over the summed counts; averaging the nodes'
// means would weigh a node's few ADDs like the other's many.
func sumNodes(byNode map[string]map[string]float64, nodes []string) map[string]float64 {
	out := map[string]float64{}
	for _, n := range nodes {
		for series, v := range byNode[n] {
			out[series] += v
		}
	}
	return out
}

// servingNodes names the nodes whose daemons served the pods' ADDs, in the
// order they first appear. Only those are summed: another node's daemon
// serves none of them, and a failed scrape of it (read as all zeros) would
// only add error.
func servingNodes(pods []*benchPod) []string {
	var out []string
	seen := map[string]bool{}
	for _, p := range pods {
		if !seen[p.node.Name] {
			seen[p.node.Name] = true
			out = append(out, p.node.Name)
		}
	}
	return out
}

// phaseSum is the daemon's mean time per ADD inside its phases. nb_port
// and plug are both timed from the start of the ADD and run side by side,
// so only the longer counts (which makes the sum a lower bound when the
// longer one changes from ADD to ADD); relabel runs only on ADDs that had a
// warm port, so it counts for their share of the ADDs.
func phaseSum(means phaseMeans, counts map[string]int) float64 {
	sum := means["prepare"] + max(means["nb_port"], means["plug"]) + means["configure"] + means["ovn_installed"]
	if n := counts["ovn_installed"]; n > 0 {
		sum += means["relabel"] * float64(counts["relabel"]) / float64(n)
	}
	return sum
}

// daemonADDMean is the daemon's own mean time per successful ADD (its
// cni_duration histogram: from the request's arrival to the reply), 0
// without ADDs. Between it and the latency the runtime sees lie the plugin
// exec and the request's trip over the socket; between it and the sum of
// phases, the server's handling around Add.
func daemonADDMean(before, after map[string]float64) float64 {
	const series = `ovn_overlay_cni_duration_seconds_%s{command="ADD",result="ok"}`
	n := after[fmt.Sprintf(series, "count")] - before[fmt.Sprintf(series, "count")]
	if n <= 0 {
		return 0
	}
	return (after[fmt.Sprintf(series, "sum")] - before[fmt.Sprintf(series, "sum")]) / n * 1000
}
