package main

import (
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// defaultReleases is what -ovn measures when it is not given: the release
// the Makefile and the tests select through the environment, so `make
// bench` measures the OVN everything else runs on.
func defaultReleases() string {
	if v := os.Getenv(sandbox.ReleaseEnv); v != "" {
		return v
	}
	return "23.03"
}

// lookupReleases resolves -ovn's names, in the order given. A release named
// twice (also as an alias: "host" is 23.03) is refused: its two runs would
// be indistinguishable in the report.
func lookupReleases(names []string) ([]sandbox.Release, error) {
	var out []sandbox.Release
	for _, name := range names {
		rel, err := sandbox.LookupRelease(strings.TrimSpace(name))
		if err != nil {
			return nil, err
		}
		for _, seen := range out {
			if seen.Name == rel.Name {
				return nil, fmt.Errorf("-ovn names OVN %s twice", rel.Name)
			}
		}
		out = append(out, rel)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("-ovn names no release")
	}
	return out, nil
}

// compareReleases orders release names ("25.03") by version, so "newest"
// means the newest OVN, whatever order -ovn gave.
func compareReleases(a, b string) int {
	as, bs := strings.Split(a, "."), strings.Split(b, ".")
	for i := 0; i < min(len(as), len(bs)); i++ {
		x, errX := strconv.Atoi(as[i])
		y, errY := strconv.Atoi(bs[i])
		if errX != nil || errY != nil {
			return strings.Compare(a, b)
		}
		if x != y {
			return x - y
		}
	}
	return len(as) - len(bs)
}

// newestFirst returns names sorted from the newest release to the oldest.
func newestFirst(names []string) []string {
	out := slices.Clone(names)
	slices.SortFunc(out, func(a, b string) int { return compareReleases(b, a) })
	return out
}

// releaseResults is one release's results, in run order.
type releaseResults struct {
	ovn     string
	results []*result
}

// byRelease splits results by release, releases in the order they ran.
// Everything that computes a ratio works on one group, so no ratio can
// divide one release's figure by another's.
func byRelease(results []*result) []releaseResults {
	var out []releaseResults
	index := map[string]int{}
	for _, r := range results {
		i, ok := index[r.OVN]
		if !ok {
			i = len(out)
			index[r.OVN] = i
			out = append(out, releaseResults{ovn: r.OVN})
		}
		out[i].results = append(out[i].results, r)
	}
	return out
}
