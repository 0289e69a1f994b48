package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
)

// BenchmarkCheck measures CNI CHECK of one attached pod as the daemon
// serves it: the request goes straight to the daemon's socket, so the
// plugin's exec (the same for every verb, see the suite's plugin-exec
// figure) is left out. It reports the checks' p50 and p99 besides ns/op.
//
// $OVN_OVERLAY_BENCH_DAEMON names a reference daemon binary (an older
// build): BenchmarkCheck/reference then serves the same pod with it, in the
// same sandbox, right after BenchmarkCheck/current, for a before/after
// comparison in one run:
//
//	OVN_OVERLAY_BENCH_DAEMON=/tmp/before/ovn-overlayd go test -run XXX -bench Check -benchtime 2000x -count 3
func BenchmarkCheck(b *testing.B) {
	h := sharedHarness(b)
	ctx := context.Background()
	node := h.cluster.Nodes[0]
	path := &overlayPath{plugin: h.plugin, config: benchL2}
	var pod *benchPod
	locked(func() {
		var err error
		if pod, err = h.newPod(node); err != nil {
			b.Fatal(err)
		}
		if err := path.attach(ctx, pod); err != nil {
			b.Fatal(err)
		}
	})
	b.Cleanup(func() {
		locked(func() {
			_ = path.detach(ctx, pod)
			_ = pod.pod.Delete()
		})
	})
	daemons := []struct{ name, bin string }{{"current", h.daemonBin}}
	if ref := os.Getenv("OVN_OVERLAY_BENCH_DAEMON"); ref != "" {
		daemons = append(daemons, struct{ name, bin string }{"reference", ref})
	}
	for _, d := range daemons {
		b.Run(d.name, func(b *testing.B) {
			restart := func(bin string) {
				locked(func() {
					h.daemons[node.Name].Stop(5 * time.Second)
					p, err := node.StartDaemon(bin, h.daemonArgs...)
					if err != nil {
						b.Fatal(err)
					}
					h.daemons[node.Name] = p
				})
			}
			if d.bin != h.daemonBin {
				restart(d.bin)
				defer restart(h.daemonBin)
			}
			benchCheck(b, node.DaemonSocket(), pod)
		})
	}
}

// benchCheck times b.N CHECKs of pod on the daemon at socket.
func benchCheck(b *testing.B, socket string, pod *benchPod) {
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	body, err := json.Marshal(cniproto.Request{Command: "CHECK", ContainerID: pod.containerID, Netns: pod.pod.NetnsPath,
		IfName: "net1", Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=bench;K8S_POD_NAME=" + pod.pod.Name, Config: benchL2})
	if err != nil {
		b.Fatal(err)
	}
	check := func() error {
		resp, err := client.Post("http://daemon"+cniproto.Path, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		var r cniproto.Response
		if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
			return err
		}
		if r.Error != nil {
			return fmt.Errorf("CHECK: %s: %s", r.Error.Msg, r.Error.Details)
		}
		return nil
	}
	// The first CHECK after a (re)start loads the network.
	if err := check(); err != nil {
		b.Fatal(err)
	}
	took := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if err := check(); err != nil {
			b.Fatal(err)
		}
		took = append(took, time.Since(start))
	}
	b.StopTimer()
	slices.Sort(took)
	b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
}
