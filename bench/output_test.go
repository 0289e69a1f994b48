package main

import (
	"maps"
	"math"
	"strings"
	"testing"
)

// res is a result of ovn with a sequential p50 (ms) and a burst's ready
// time (s).
func res(ovn, path, topology, workload string, p50, wall float64) *result {
	return &result{OVN: ovn, Path: path, Topology: topology, Workload: workload, Pods: 1,
		Latency: stats{P50: p50, P90: p50, P99: 2 * p50, Max: 2 * p50}, WallSeconds: wall}
}

// table is the first markdown table after heading: one map per row, from
// column header to cell.
func table(t *testing.T, md, heading string) []map[string]string {
	t.Helper()
	_, after, ok := strings.Cut(md, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q in:\n%s", heading, md)
	}
	var header []string
	var rows []map[string]string
	for _, line := range strings.Split(after, "\n") {
		if strings.HasPrefix(line, "## ") {
			break
		}
		if !strings.HasPrefix(line, "|") {
			if header != nil {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		switch {
		case header == nil:
			header = cells
		case strings.HasPrefix(cells[0], "---"):
		default:
			row := map[string]string{}
			for i, c := range cells {
				row[header[i]] = c
			}
			rows = append(rows, row)
		}
	}
	return rows
}

// find is the row whose columns have the given values.
func find(t *testing.T, rows []map[string]string, match map[string]string) map[string]string {
	t.Helper()
next:
	for _, row := range rows {
		for k, v := range match {
			if row[k] != v {
				continue next
			}
		}
		return row
	}
	t.Fatalf("no row %v in %v", match, rows)
	return nil
}

// TestRatiosStayWithinRelease: each release's ratios divide by that
// release's floor, cold and conventional results, whatever order the
// releases ran in and even when only another release has the reference.
func TestRatiosStayWithinRelease(t *testing.T) {
	newest := []*result{
		res("25.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("25.03", "ovn-overlay-cold", "layer2", "sequential", 40, 1),
		res("25.03", "floor", "layer2", "sequential", 10, 1),
		res("25.03", "conventional", "layer2", "sequential", 80, 1),
		res("25.03", "ovn-overlay", "layer2", "burst-10", 1, 0.3),
		res("25.03", "floor", "layer2", "burst-10", 1, 0.1),
	}
	oldest := []*result{
		res("23.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("23.03", "ovn-overlay-cold", "layer2", "sequential", 10, 1),
		res("23.03", "floor", "layer2", "sequential", 40, 1),
		res("23.03", "conventional", "layer2", "sequential", 20, 1),
		res("23.03", "ovn-overlay", "layer2", "burst-10", 1, 0.4),
		res("23.03", "floor", "layer2", "burst-10", 1, 0.8),
	}
	// Only ovn-overlay: every ratio of 23.03 must stay "-".
	bare := []*result{
		res("23.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("23.03", "ovn-overlay", "layer2", "burst-10", 1, 0.4),
	}
	type want struct {
		ovn, workload                     string
		vsFloor, vsCold, conventionalVsIt string
	}
	full25 := []want{
		{"25.03", "sequential", "2.00×", "0.50×", "4.00×"},
		{"25.03", "burst-10", "3.00×", "-", "-"},
	}
	full23 := []want{
		{"23.03", "sequential", "0.50×", "2.00×", "1.00×"},
		{"23.03", "burst-10", "0.50×", "-", "-"},
	}
	for _, tc := range []struct {
		name    string
		results []*result
		want    []want
	}{
		{"newest first", append(append([]*result(nil), newest...), oldest...), append(full25, full23...)},
		{"oldest first", append(append([]*result(nil), oldest...), newest...), append(full25, full23...)},
		{"references in the other release only", append(append([]*result(nil), newest...), bare...), append(full25,
			want{"23.03", "sequential", "-", "-", "-"}, want{"23.03", "burst-10", "-", "-", "-"})},
		{"references in the other release only, run first", append(append([]*result(nil), bare...), newest...), append(full25,
			want{"23.03", "sequential", "-", "-", "-"}, want{"23.03", "burst-10", "-", "-", "-"})},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := markdown("test machine", tc.results, nil, false)
			for _, w := range tc.want {
				row := find(t, table(t, md, "## OVN "+w.ovn), map[string]string{"path": "ovn-overlay", "workload": w.workload})
				got := want{w.ovn, w.workload, row["vs floor"], row["vs cold"], row["conventional vs this"]}
				if got != w {
					t.Errorf("OVN %s %s: got vs floor %s, vs cold %s, conventional vs this %s; want %s, %s, %s",
						w.ovn, w.workload, got.vsFloor, got.vsCold, got.conventionalVsIt, w.vsFloor, w.vsCold, w.conventionalVsIt)
				}
			}
		})
	}
}

// TestReleaseComparison: the comparison divides the newest release by the
// oldest whatever order they ran in, shows only the compared paths, and is
// left out when one release ran.
func TestReleaseComparison(t *testing.T) {
	results := []*result{
		res("23.03", "ovn-overlay", "layer2", "sequential", 40, 1),
		res("23.03", "floor", "layer2", "sequential", 10, 1),
		res("23.03", "conventional", "layer2", "sequential", 80, 1),
		res("25.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("25.03", "floor", "layer2", "sequential", 30, 1),
		res("25.03", "ovn-overlay-cold", "layer2", "sequential", 50, 1),
		res("25.03", "conventional", "layer2", "sequential", 90, 1),
	}
	md := markdown("test machine", results, nil, true)
	rows := table(t, md, "## OVN 25.03 vs 23.03")
	for _, tc := range []struct {
		path                           string
		p50new, p50old, ratio, ratio99 string
	}{
		{"ovn-overlay", "20.0", "40.0", "0.50×", "0.50×"},
		{"floor", "30.0", "10.0", "3.00×", "3.00×"},
		{"ovn-overlay-cold", "50.0", "-", "-", "-"},
	} {
		row := find(t, rows, map[string]string{"path": tc.path})
		got := [4]string{row["25.03 p50"], row["23.03 p50"], row["p50 25.03 ÷ 23.03"], row["p99 25.03 ÷ 23.03"]}
		if want := [4]string{tc.p50new, tc.p50old, tc.ratio, tc.ratio99}; got != want {
			t.Errorf("%s: got %v, want %v", tc.path, got, want)
		}
	}
	for _, row := range rows {
		if row["path"] == "conventional" {
			t.Errorf("the comparison shows the conventional path: %v", row)
		}
	}
	if one := markdown("test machine", results[:3], nil, true); strings.Contains(one, "## OVN 23.03 vs") {
		t.Errorf("one release has a comparison:\n%s", one)
	}
}

// TestScaleMarkdownPerRelease: each release's scale ratios use its own
// windows; the comparison pairs windows by name.
func TestScaleMarkdownPerRelease(t *testing.T) {
	window := func(ovn string, floor, overlay float64) *scaleResult {
		return &scaleResult{OVN: ovn, Windows: []*scaleWindow{{OVN: ovn, Name: "empty NB", Paths: map[string]stats{
			"floor": {P50: floor, P99: floor}, "ovn-overlay": {P50: overlay, P99: overlay},
		}}}}
	}
	md := scaleMarkdown("test machine", []*scaleResult{window("23.03", 10, 40), window("25.03", 40, 20)})
	for _, tc := range []struct{ ovn, vsFloor string }{{"23.03", "4.00×"}, {"25.03", "0.50×"}} {
		row := find(t, table(t, md, "## OVN "+tc.ovn), map[string]string{"window": "empty NB"})
		if got := row["ovn-overlay vs floor"]; got != tc.vsFloor {
			t.Errorf("OVN %s: ovn-overlay vs floor %s, want %s", tc.ovn, got, tc.vsFloor)
		}
	}
	row := find(t, table(t, md, "## OVN 25.03 vs 23.03"), map[string]string{"window": "empty NB", "path": "ovn-overlay"})
	if got := row["p50 25.03 ÷ 23.03"]; got != "0.50×" {
		t.Errorf("scale comparison ovn-overlay p50 25.03 ÷ 23.03 = %s, want 0.50×", got)
	}
}

func TestCompareReleases(t *testing.T) {
	for _, tc := range []struct {
		a, b string
		want int // sign
	}{
		{"25.03", "23.03", 1},
		{"23.03", "25.03", -1},
		{"23.09", "23.03", 1},
		{"24.03", "24.03", 0},
		{"100.03", "25.03", 1},
	} {
		got := compareReleases(tc.a, tc.b)
		if (got > 0) != (tc.want > 0) || (got < 0) != (tc.want < 0) {
			t.Errorf("compareReleases(%s, %s) = %d, want sign %d", tc.a, tc.b, got, tc.want)
		}
	}
}

func TestLookupReleasesRefuses(t *testing.T) {
	for _, names := range [][]string{
		{"23.03", "host"}, // the same release twice
		{"22.03"},         // unknown
		{},
	} {
		if _, err := lookupReleases(names); err == nil {
			t.Errorf("lookupReleases(%q) accepted", names)
		}
	}
}

// scrapeOf is a daemon's /metrics holding the ADD phase histograms given
// as phase → {seconds, count}.
func scrapeOf(hist map[string][2]float64) map[string]float64 {
	out := map[string]float64{"go_goroutines": 42} // present in every real scrape
	for ph, h := range hist {
		out[phaseSeries("sum", ph)] = h[0]
		out[phaseSeries("count", ph)] = h[1]
	}
	return out
}

// TestRecordDaemonPhases: a workload's phase means divide its ADDs' summed
// seconds by their summed count over the nodes that served them, and over
// those only.
func TestRecordDaemonPhases(t *testing.T) {
	type scrapes = map[string]map[string]float64
	for _, tc := range []struct {
		name          string
		before, after scrapes
		served        []string
		want          phaseMeans
		wantCounts    map[string]int
	}{
		{
			name:       "one node: only the window's ADDs count",
			before:     scrapes{"node1": scrapeOf(map[string][2]float64{"nb_port": {1, 10}, "relabel": {0.5, 10}})},
			after:      scrapes{"node1": scrapeOf(map[string][2]float64{"nb_port": {1.5, 20}, "relabel": {0.54, 20}})},
			served:     []string{"node1"},
			want:       phaseMeans{"nb_port": 50, "relabel": 4},
			wantCounts: map[string]int{"nb_port": 10, "relabel": 10},
		},
		{
			name: "spread: sums and counts add up before dividing",
			before: scrapes{
				"node1": scrapeOf(map[string][2]float64{"plug": {0, 0}}),
				"node2": scrapeOf(map[string][2]float64{"plug": {1, 5}}),
			},
			// 10 ADDs of 20 ms and 30 of 40 ms: 35 ms, not the means' mean (30 ms).
			after: scrapes{
				"node1": scrapeOf(map[string][2]float64{"plug": {0.2, 10}}),
				"node2": scrapeOf(map[string][2]float64{"plug": {2.2, 35}}),
			},
			served:     []string{"node1", "node2"},
			want:       phaseMeans{"plug": 35},
			wantCounts: map[string]int{"plug": 40},
		},
		{
			name: "a node that served none is left out",
			before: scrapes{
				"node1": scrapeOf(map[string][2]float64{"configure": {0, 0}}),
				"node2": scrapeOf(nil), // say, a failed scrape: everything reads 0
			},
			after: scrapes{
				"node1": scrapeOf(map[string][2]float64{"configure": {0.02, 10}}),
				"node2": scrapeOf(map[string][2]float64{"configure": {100, 1000}}),
			},
			served:     []string{"node1"},
			want:       phaseMeans{"configure": 2},
			wantCounts: map[string]int{"configure": 10},
		},
		{
			name:       "a daemon restarted for the workload has no series yet; a phase no ADD ran is absent",
			before:     scrapes{"node1": scrapeOf(nil)},
			after:      scrapes{"node1": scrapeOf(map[string][2]float64{"ovn_installed": {0.3, 10}, "relabel": {0, 0}})},
			served:     []string{"node1"},
			want:       phaseMeans{"ovn_installed": 30},
			wantCounts: map[string]int{"ovn_installed": 10},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := &result{}
			recordDaemon(r, daemonSample{metrics: tc.before}, daemonSample{metrics: tc.after}, tc.served)
			if len(r.PhaseMeans) != len(tc.want) {
				t.Errorf("phase means %v, want %v", r.PhaseMeans, tc.want)
			}
			for ph, want := range tc.want {
				if got, ok := r.PhaseMeans[ph]; !ok || math.Abs(got-want) > 1e-9 {
					t.Errorf("%s mean %v ms, want %v ms (all: %v)", ph, got, want, r.PhaseMeans)
				}
			}
			if !maps.Equal(r.PhaseCounts, tc.wantCounts) {
				t.Errorf("phase counts %v, want %v", r.PhaseCounts, tc.wantCounts)
			}
		})
	}
}

// phased is an ovn-overlay result of ovn with phase means and counts, and
// its ADD mean and p50 (ms).
func phased(ovn, path, workload string, means phaseMeans, counts map[string]int, mean, p50 float64) *result {
	r := res(ovn, path, "layer2", workload, p50, 1)
	r.Latency.Mean = mean
	r.PhaseMeans, r.PhaseCounts = means, counts
	return r
}

// section is md's part under heading, up to the next "## " heading.
func section(t *testing.T, md, heading string) string {
	t.Helper()
	_, after, ok := strings.Cut(md, "\n"+heading+"\n")
	if !ok {
		t.Fatalf("no %q in:\n%s", heading, md)
	}
	after, _, _ = strings.Cut(after, "\n## ")
	return "\n" + after
}

// TestPhaseTable: each release's section has its own phase table, with a
// row per result that has phase means; the sum of phases counts nb_port
// and plug (which overlap) once and relabel for the warm share of ADDs.
func TestPhaseTable(t *testing.T) {
	all := func(n int) map[string]int {
		return map[string]int{"nb_port": n, "plug": n, "configure": n, "ovn_installed": n, "relabel": n}
	}
	results := []*result{
		phased("25.03", "ovn-overlay", "sequential",
			phaseMeans{"nb_port": 10, "plug": 15, "configure": 2, "ovn_installed": 30, "relabel": 4}, all(10), 60, 55),
		phased("25.03", "ovn-overlay", "burst-10", // 5 of 10 ADDs on a warm port
			phaseMeans{"nb_port": 25, "plug": 15, "configure": 2, "ovn_installed": 30, "relabel": 4},
			map[string]int{"nb_port": 10, "plug": 10, "configure": 10, "ovn_installed": 10, "relabel": 5}, 70, 66),
		phased("25.03", "ovn-overlay-cold", "sequential",
			phaseMeans{"nb_port": 20, "plug": 15, "configure": 2, "ovn_installed": 30},
			map[string]int{"nb_port": 10, "plug": 10, "configure": 10, "ovn_installed": 10}, 58, 57),
		res("25.03", "floor", "layer2", "sequential", 40, 1),
		phased("23.03", "ovn-overlay", "sequential",
			phaseMeans{"nb_port": 5, "plug": 5, "configure": 1, "ovn_installed": 10, "relabel": 1}, all(4), 20, 19),
		res("23.03", "floor", "layer2", "sequential", 10, 1),
	}
	md := markdown("test machine", results, nil, false)
	for _, tc := range []struct {
		ovn, path, workload string
		want                map[string]string
	}{
		{"25.03", "ovn-overlay", "sequential", map[string]string{
			"nb_port": "10.0", "plug": "15.0", "configure": "2.0", "ovn_installed": "30.0", "relabel": "4.0",
			"sum of phases": "51.0", "ADD mean": "60.0", "ADD p50": "55.0"}},
		{"25.03", "ovn-overlay", "burst-10", map[string]string{
			"nb_port": "25.0", "relabel": "4.0", "sum of phases": "59.0", "ADD mean": "70.0", "ADD p50": "66.0"}},
		{"25.03", "ovn-overlay-cold", "sequential", map[string]string{
			"relabel": "-", "sum of phases": "52.0", "ADD mean": "58.0", "ADD p50": "57.0"}},
		{"23.03", "ovn-overlay", "sequential", map[string]string{
			"nb_port": "5.0", "sum of phases": "17.0", "ADD mean": "20.0", "ADD p50": "19.0"}},
	} {
		t.Run(tc.ovn+" "+tc.path+" "+tc.workload, func(t *testing.T) {
			rows := table(t, section(t, md, "## OVN "+tc.ovn), phaseHeading)
			row := find(t, rows, map[string]string{"path": tc.path, "topology": "layer2", "workload": tc.workload})
			for col, want := range tc.want {
				if row[col] != want {
					t.Errorf("%s = %q, want %q (row %v)", col, row[col], want, row)
				}
			}
		})
	}
	for ovn, want := range map[string]int{"25.03": 3, "23.03": 1} {
		rows := table(t, section(t, md, "## OVN "+ovn), phaseHeading)
		if len(rows) != want {
			t.Errorf("OVN %s: %d phase rows, want %d (no floor, no other release's): %v", ovn, len(rows), want, rows)
		}
	}
	// Without phase means (only other paths ran) there is no phase table.
	if md := markdown("test machine", []*result{res("25.03", "floor", "layer2", "sequential", 40, 1)}, nil, false); strings.Contains(md, phaseHeading) {
		t.Errorf("phase table without phase means:\n%s", md)
	}
}

// TestLimitRatios: the ovn-overlay paths' sequential rows divide their p50
// and p99 by floor-prebound's plus the plugin exec's, all of their own
// release whatever order the releases ran in; every other row, and a
// release missing either part of the limit, shows "-", even when the other
// release has it.
func TestLimitRatios(t *testing.T) {
	// res gives p99 = 2 × p50. 25.03's limit: p50 8+2 = 10, p99 16+14 = 30;
	// 23.03's: p50 18+2 = 20, p99 36+4 = 40.
	newest := []*result{
		res("25.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("25.03", "ovn-overlay", "layer3", "sequential", 25, 1),
		res("25.03", "ovn-overlay-cold", "layer2", "sequential", 30, 1),
		res("25.03", "floor", "layer2", "sequential", 12, 1),
		res("25.03", "floor-prebound", "layer2", "sequential", 8, 1),
		res("25.03", "conventional", "layer2", "sequential", 80, 1),
		res("25.03", "ovn-overlay", "layer2", "burst-10", 1, 0.3),
		res("25.03", "floor-prebound", "layer2", "burst-10", 1, 0.1),
	}
	oldest := []*result{
		res("23.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("23.03", "ovn-overlay-cold", "layer2", "sequential", 10, 1),
		res("23.03", "floor-prebound", "layer2", "sequential", 18, 1),
		res("23.03", "ovn-overlay", "layer2", "burst-10", 1, 0.4),
		res("23.03", "floor-prebound", "layer2", "burst-10", 1, 0.8),
	}
	// 23.03 without floor-prebound: its limit cannot be formed.
	noFloor := []*result{
		res("23.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("23.03", "ovn-overlay-cold", "layer2", "sequential", 10, 1),
	}
	exec25 := &pluginExec{OVN: "25.03", P50: 2, P99: 14, N: 50}
	exec23 := &pluginExec{OVN: "23.03", P50: 2, P99: 4, N: 5}
	type cell struct{ ovn, path, topology, workload, p50, p99 string }
	full25 := []cell{
		{"25.03", "ovn-overlay", "layer2", "sequential", "2.00×", "1.33×"},
		{"25.03", "ovn-overlay", "layer3", "sequential", "2.50×", "1.67×"},
		{"25.03", "ovn-overlay-cold", "layer2", "sequential", "3.00×", "2.00×"},
		{"25.03", "floor", "layer2", "sequential", "-", "-"},
		{"25.03", "floor-prebound", "layer2", "sequential", "-", "-"},
		{"25.03", "conventional", "layer2", "sequential", "-", "-"},
		{"25.03", "ovn-overlay", "layer2", "burst-10", "-", "-"},
		{"25.03", "floor-prebound", "layer2", "burst-10", "-", "-"},
	}
	full23 := []cell{
		{"23.03", "ovn-overlay", "layer2", "sequential", "1.00×", "1.00×"},
		{"23.03", "ovn-overlay-cold", "layer2", "sequential", "0.50×", "0.50×"},
		{"23.03", "ovn-overlay", "layer2", "burst-10", "-", "-"},
	}
	none23 := []cell{
		{"23.03", "ovn-overlay", "layer2", "sequential", "-", "-"},
		{"23.03", "ovn-overlay-cold", "layer2", "sequential", "-", "-"},
	}
	line25 := "limit = floor-prebound + one plugin exec (exec p50 2.00 ms, p99 14.00 ms, 50 execs of CNI_COMMAND=VERSION)"
	line23 := "limit = floor-prebound + one plugin exec (exec p50 2.00 ms, p99 4.00 ms, 5 execs of CNI_COMMAND=VERSION)"
	cat := func(parts ...[]*result) []*result {
		var out []*result
		for _, p := range parts {
			out = append(out, p...)
		}
		return out
	}
	for _, tc := range []struct {
		name    string
		results []*result
		execs   []*pluginExec
		want    []cell
		lines   map[string]string // release → its limit line, "" for none
	}{
		{"newest first", cat(newest, oldest), []*pluginExec{exec25, exec23},
			append(append([]cell(nil), full25...), full23...), map[string]string{"25.03": line25, "23.03": line23}},
		{"oldest first", cat(oldest, newest), []*pluginExec{exec23, exec25},
			append(append([]cell(nil), full25...), full23...), map[string]string{"25.03": line25, "23.03": line23}},
		{"exec of the other release only", cat(newest, oldest), []*pluginExec{exec25},
			append(append([]cell(nil), full25...), cell{"23.03", "ovn-overlay", "layer2", "sequential", "-", "-"},
				cell{"23.03", "ovn-overlay-cold", "layer2", "sequential", "-", "-"}), map[string]string{"25.03": line25, "23.03": ""}},
		{"exec of the other release only, run first", cat(oldest, newest), []*pluginExec{exec23},
			append(append([]cell(nil), full23...), cell{"25.03", "ovn-overlay", "layer2", "sequential", "-", "-"},
				cell{"25.03", "ovn-overlay-cold", "layer2", "sequential", "-", "-"}), map[string]string{"25.03": "", "23.03": line23}},
		{"floor-prebound of the other release only", cat(newest, noFloor), []*pluginExec{exec25, exec23},
			append(append([]cell(nil), full25...), none23...), map[string]string{"25.03": line25, "23.03": line23}},
		{"floor-prebound of the other release only, run first", cat(noFloor, newest), []*pluginExec{exec23, exec25},
			append(append([]cell(nil), full25...), none23...), map[string]string{"25.03": line25, "23.03": line23}},
		{"no exec measured", cat(newest), nil,
			[]cell{{"25.03", "ovn-overlay", "layer2", "sequential", "-", "-"}, {"25.03", "ovn-overlay-cold", "layer2", "sequential", "-", "-"}},
			map[string]string{"25.03": ""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			md := markdown("test machine", tc.results, tc.execs, false)
			for _, w := range tc.want {
				row := find(t, table(t, md, "## OVN "+w.ovn), map[string]string{"path": w.path, "topology": w.topology, "workload": w.workload})
				if got := (cell{w.ovn, w.path, w.topology, w.workload, row["vs limit p50"], row["vs limit p99"]}); got != w {
					t.Errorf("OVN %s %s %s %s: vs limit p50 %s, p99 %s; want %s, %s", w.ovn, w.path, w.topology, w.workload, got.p50, got.p99, w.p50, w.p99)
				}
			}
			for ovn, line := range tc.lines {
				sec := section(t, md, "## OVN "+ovn)
				n := strings.Count(sec, "limit = floor-prebound")
				switch {
				case line == "" && n > 0:
					t.Errorf("OVN %s has a limit line without its own exec:\n%s", ovn, sec)
				case line != "" && (n != 1 || !strings.Contains(sec, "\n"+line+"\n")):
					t.Errorf("OVN %s: want the one line %q in:\n%s", ovn, line, sec)
				}
			}
		})
	}
}

// TestLimitRatiosRefuseOtherRelease: limitRatios itself never divides by
// another release's exec, even when handed one.
func TestLimitRatiosRefuseOtherRelease(t *testing.T) {
	results := []*result{
		res("25.03", "ovn-overlay", "layer2", "sequential", 20, 1),
		res("25.03", "floor-prebound", "layer2", "sequential", 8, 1),
	}
	for _, tc := range []struct {
		name     string
		exec     *pluginExec
		p50, p99 string
	}{
		{"own release", &pluginExec{OVN: "25.03", P50: 2, P99: 4}, "2.00×", "2.00×"},
		{"other release", &pluginExec{OVN: "23.03", P50: 2, P99: 4}, "-", "-"},
		{"none", nil, "-", "-"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if p50, p99 := limitRatios(results, tc.exec, results[0]); p50 != tc.p50 || p99 != tc.p99 {
				t.Errorf("got %s, %s; want %s, %s", p50, p99, tc.p50, tc.p99)
			}
		})
	}
}

func TestDaemonADDMean(t *testing.T) {
	const sum, count = `ovn_overlay_cni_duration_seconds_sum{command="ADD",result="ok"}`, `ovn_overlay_cni_duration_seconds_count{command="ADD",result="ok"}`
	for _, tc := range []struct {
		name          string
		before, after map[string]float64
		want          float64
	}{
		{"only the window's ADDs", map[string]float64{sum: 1, count: 10}, map[string]float64{sum: 1.3, count: 20}, 30},
		{"no ADD in the window", map[string]float64{sum: 1, count: 10}, map[string]float64{sum: 1, count: 10}, 0},
		{"failed ADDs do not count", map[string]float64{}, map[string]float64{`ovn_overlay_cni_duration_seconds_sum{command="ADD",result="error"}`: 9, `ovn_overlay_cni_duration_seconds_count{command="ADD",result="error"}`: 1}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := daemonADDMean(tc.before, tc.after); math.Abs(got-tc.want) > 1e-9 {
				t.Errorf("got %v ms, want %v ms", got, tc.want)
			}
		})
	}
}
