package main

// The suite as standard Go benchmarks:
//
//	go test -run XXX -bench . -benchtime 5x
//
// BenchmarkAttach/<path>/<topology> attaches one fresh pod per iteration on
// the sandbox's first node, through the same paths `go run .` measures, and
// reports the attaches' p50 and p99 besides ns/op, on the OVN release
// $OVN_OVERLAY_OVN selects. Pod creation, a path's untimed preparation and
// the detach stay outside the timer. The sandbox is started once, by the
// first benchmark that runs, and stopped by TestMain.

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// attachTargets are the sub-benchmarks, as -paths names them.
var attachTargets = []string{"ovn-overlay/layer2", "ovn-overlay/layer3", "ovn-overlay-cold/layer2", "floor", "floor-prebound", "conventional"}

var shared struct {
	once sync.Once
	skip string // why the sandbox cannot run here
	err  error  // why it failed to start
	h    *harness
	stop func() // nil until the sandbox runs

	// mu is held for reading by every step that uses the sandbox (see
	// locked) and for writing from stopping it until the process exits,
	// so an interrupt never stops the sandbox under a running step, which
	// could then create a pod namespace nobody deletes.
	mu sync.RWMutex
}

func TestMain(m *testing.M) {
	// Ctrl-C or a kill must not leave the sandbox behind either.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		signal.Reset(os.Interrupt, syscall.SIGTERM) // a second one kills at once
		fmt.Fprintf(os.Stderr, "bench: %v: stopping the sandbox after the current step\n", s)
		stopAndExit(1)
	}()
	stopAndExit(m.Run())
}

// stopAndExit stops the shared sandbox, if it runs, and exits.
func stopAndExit(code int) {
	shared.mu.Lock() // never released: no step starts after this
	if shared.stop != nil {
		shared.stop()
	}
	os.Exit(code)
}

// locked runs f, a step that uses the sandbox, so that stopping the
// sandbox waits for it.
func locked(f func()) {
	shared.mu.RLock()
	defer shared.mu.RUnlock()
	f()
}

// sharedHarness starts the sandbox (binaries built, a daemon per node) the
// first time it is called, and skips b when it cannot run here.
func sharedHarness(b *testing.B) *harness {
	b.Helper()
	shared.once.Do(func() {
		if err := sandbox.CheckPrerequisites(); err != nil {
			shared.skip = err.Error()
			return
		}
		// The release the environment selects, as every other suite:
		// `go test -bench` compares paths, not releases (`go run . -ovn`
		// does that).
		rel, err := sandbox.ReleaseFromEnv()
		if err != nil {
			shared.err = err
			return
		}
		locked(func() {
			shared.h, shared.stop, shared.err = setUp(context.Background(), rel)
		})
	})
	if shared.skip != "" {
		b.Skip(shared.skip)
	}
	if shared.err != nil {
		b.Fatal(shared.err)
	}
	return shared.h
}

// BenchmarkAttach measures one pod's ADD per iteration, until the port is
// installed, on each path.
func BenchmarkAttach(b *testing.B) {
	h := sharedHarness(b)
	targets, err := h.newTargets(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	targets = selectTargets(targets, attachTargets)
	// Group by path (keeping the suite's order): BenchmarkAttach/<path>/<topology>.
	var order []string
	byPath := map[string][]*target{}
	for _, t := range targets {
		name := t.path.name()
		if _, ok := byPath[name]; !ok {
			order = append(order, name)
		}
		byPath[name] = append(byPath[name], t)
	}
	for _, name := range order {
		b.Run(name, func(b *testing.B) {
			for _, t := range byPath[name] {
				warm := false
				b.Run(t.topology, func(b *testing.B) { benchAttach(b, h, t, &warm) })
			}
		})
	}
}

// benchAttach runs b.N attaches through t, each on a fresh pod. *warm says
// whether t has had its untimed first attach (network and per-node set-up).
func benchAttach(b *testing.B, h *harness, t *target, warm *bool) {
	ctx := context.Background()
	b.StopTimer()
	node := h.cluster.Nodes[0]
	if err := h.useDaemons(t.path); err != nil {
		b.Fatal(err)
	}
	if !*warm {
		// Like runPlan's peer: the first attach on a network creates it
		// (and, on layer3, claims the node's subnet), which is not what an
		// attach costs. The pod stays attached until the sandbox stops.
		locked(func() {
			p, err := h.newPod(node)
			if err != nil {
				b.Fatal(err)
			}
			if err := prepare(ctx, t.path, []*benchPod{p}); err != nil {
				b.Fatalf("warm-up prepare: %v", err)
			}
			if err := t.path.attach(ctx, p); err != nil {
				b.Fatalf("warm-up attach: %v", err)
			}
		})
		*warm = true
	}
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		locked(func() {
			p, err := h.newPod(node)
			if err != nil {
				b.Fatal(err)
			}
			if err := prepare(ctx, t.path, []*benchPod{p}); err != nil {
				b.Fatalf("prepare: %v", err)
			}
			b.StartTimer()
			begin := time.Now()
			err = t.path.attach(ctx, p)
			d := time.Since(begin)
			b.StopTimer()
			if err != nil {
				b.Fatalf("attach %s: %v", p.pod.Name, err)
			}
			lat = append(lat, d)
			if err := t.path.detach(ctx, p); err != nil {
				b.Fatalf("detach %s: %v", p.pod.Name, err)
			}
			if err := p.pod.Delete(); err != nil {
				b.Fatalf("delete pod %s: %v", p.pod.Name, err)
			}
		})
	}
	if len(lat) > 0 {
		s := summarize(lat)
		b.ReportMetric(s.P50, "p50-ms")
		b.ReportMetric(s.P99, "p99-ms")
	}
}
