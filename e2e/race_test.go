package e2e

import (
	"fmt"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/e2e/internal/parallel"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// racePodsPerNode is how many concurrent ADDs each node's daemon gets.
// OVN_OVERLAY_RACE_PODS overrides it for quicker local runs.
func racePodsPerNode() int {
	if v, err := strconv.Atoi(os.Getenv("OVN_OVERLAY_RACE_PODS")); err == nil && v > 0 {
		return v
	}
	return 200
}

// TestConcurrentAddsAcrossNodesGetUniqueAddresses fires racePodsPerNode
// ADDs at each of the two daemons at once, all on one cluster-wide layer2
// network: the case where nodes without a coordinator could hand out the
// same address.
func TestConcurrentAddsAcrossNodesGetUniqueAddresses(t *testing.T) {
	perNode := racePodsPerNode()
	network := "race-" + randomID()[:4]
	conf := layer2Config(network, "10.160.0.0/22", nil)
	nodes := []*sandbox.Node{node(t, 0), node(t, 1)}
	total := perNode * len(nodes)

	pods := make([]*testPod, total)
	var mu sync.Mutex
	var setupErr error
	parallel.ForEach(total, 16, func(i int) {
		p, err := nodes[i%len(nodes)].NewPod(fmt.Sprintf("race%d-%s", i, randomID()[:4]))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			setupErr = err
			return
		}
		pods[i] = &testPod{Pod: p, containerID: randomID() + randomID()}
	})
	t.Cleanup(func() {
		parallel.ForEach(total, 16, func(i int) {
			if pods[i] != nil {
				_, _ = invokeQuiet(pods[i], "DEL", "net1", conf)
				_ = pods[i].Delete()
			}
		})
	})
	if setupErr != nil {
		t.Fatal(setupErr)
	}

	// All ADDs at once: every plugin process is started before any is
	// waited for.
	logMarks := daemonLogSizes(t)
	addrs := make([]netip.Addr, total)
	errs := make([]error, total)
	took := make([]time.Duration, total)
	start := time.Now()
	parallel.ForEach(total, total, func(i int) {
		begin := time.Now()
		res, err := addQuiet(pods[i], "net1", conf)
		took[i] = time.Since(begin)
		if err != nil {
			errs[i] = err
			return
		}
		if len(res) != 1 {
			errs[i] = fmt.Errorf("got %d addresses", len(res))
			return
		}
		addrs[i] = res[0].Addr()
	})
	elapsed := time.Since(start)
	failed := 0
	for i, err := range errs {
		if err != nil {
			failed++
			if failed <= 5 {
				t.Errorf("ADD %d on %s: %v", i, pods[i].Node.Name, err)
			}
		}
	}
	if failed > 0 {
		t.Fatalf("%d of %d concurrent ADDs failed", failed, total)
	}
	t.Logf("%d concurrent ADDs on 2 nodes (one layer2 network) done in %s (%.0f pods/s); per-ADD latency %s",
		total, elapsed.Round(time.Millisecond), float64(total)/elapsed.Seconds(), percentiles(took))
	t.Logf("NB port transactions during the burst: %s", nbTransactionStats(t, logMarks))

	owner := map[netip.Addr]int{}
	for i, a := range addrs {
		if j, dup := owner[a]; dup {
			t.Fatalf("pods %d (%s) and %d (%s) both got %s", j, pods[j].Node.Name, i, pods[i].Node.Name, a)
		}
		owner[a] = i
	}
	// The NB agrees: as many ports as pods, each with its own address.
	if ports := nbPorts(t, network); len(ports) != total {
		t.Fatalf("NB has %d ports for %d pods", len(ports), total)
	}
	assertAddressSet(t, network, "default", addrs)

	// Every pod is reachable: pod 0 pings all the others, pod 1 (the
	// other node) pings pod 0.
	unreachable := 0
	var umu sync.Mutex
	parallel.ForEach(total, 8, func(i int) {
		if i == 0 {
			return
		}
		if err := pods[0].Ping(addrs[i], 3); err != nil {
			umu.Lock()
			unreachable++
			umu.Unlock()
		}
	})
	if unreachable > 0 {
		t.Fatalf("%d of %d pods unreachable from pod 0", unreachable, total-1)
	}
	if err := pods[1].Ping(addrs[0], 3); err != nil {
		t.Fatal(err)
	}

	start = time.Now()
	parallel.ForEach(total, total, func(i int) {
		if _, err := invokeQuiet(pods[i], "DEL", "net1", conf); err != nil {
			t.Errorf("DEL %d: %v", i, err)
		}
	})
	t.Logf("%d concurrent DELs done in %s", total, time.Since(start).Round(time.Millisecond))
	assertClean(t, network)
	assertAddressSet(t, network, "default", nil)
}

// assertAddressSet checks the network's IPv4 address set for namespace.
func assertAddressSet(t *testing.T, network, namespace string, want []netip.Addr) {
	t.Helper()
	out := nbctl(t, "--bare", "--columns=addresses", "find", "Address_Set",
		fmt.Sprintf(`external_ids:"ovn-overlay/network"="%s"`, network),
		fmt.Sprintf(`external_ids:"ovn-overlay/namespace"="%s"`, namespace),
		`external_ids:"ovn-overlay/ip-family"=ipv4`)
	got := strings.Fields(out)
	var w []string
	for _, a := range want {
		w = append(w, a.String())
	}
	sort.Strings(got)
	sort.Strings(w)
	if strings.Join(got, " ") != strings.Join(w, " ") {
		t.Fatalf("address set of %s/%s has %d addresses, want %d", network, namespace, len(got), len(w))
	}
}

func percentiles(d []time.Duration) string {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	at := func(q float64) time.Duration { return s[int(q*float64(len(s)-1))].Round(time.Millisecond) }
	return fmt.Sprintf("p50 %s p90 %s p99 %s max %s", at(0.5), at(0.9), at(0.99), at(1))
}

// daemonLogSizes marks where each daemon's log ends now.
func daemonLogSizes(t *testing.T) map[string]int64 {
	marks := map[string]int64{}
	for name, p := range daemons {
		if fi, err := os.Stat(p.LogPath); err == nil {
			marks[name] = fi.Size()
		}
	}
	return marks
}

// nbTransactionStats summarises the daemons' "nb port transaction" debug
// lines written since marks: how many transactions, how many ports they
// carried, and how many lost a race (conflict) and were retried.
func nbTransactionStats(t *testing.T, marks map[string]int64) string {
	var txns, ports, conflicts int
	for name, p := range daemons {
		b, err := os.ReadFile(p.LogPath)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b[marks[name]:]), "\n") {
			if !strings.Contains(line, `msg="nb port transaction"`) {
				continue
			}
			txns++
			if strings.Contains(line, "concurrent NB change") {
				conflicts++
				continue
			}
			for _, f := range strings.Fields(line) {
				if v, ok := strings.CutPrefix(f, "ports="); ok {
					n, _ := strconv.Atoi(v)
					ports += n
				}
			}
		}
	}
	return fmt.Sprintf("%d transactions (%d lost a race and were retried) committed %d ports", txns, conflicts, ports)
}
