package main

import (
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
			md := markdown("test machine", tc.results, false)
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
	md := markdown("test machine", results, true)
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
	if one := markdown("test machine", results[:3], true); strings.Contains(one, "## OVN 23.03 vs") {
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
