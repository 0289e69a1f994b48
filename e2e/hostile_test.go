package e2e

// TestHostileInput: what a broken runtime, a hostile NAD author or any
// root process on the node can send the daemon, through the real plugin
// binary or written raw to the daemon's unix socket. Whatever comes, the
// answer is a well-known CNI error (or, for what is not even HTTP, the
// connection is closed), the daemon stays up and answers STATUS, a normal
// ADD and DEL still work at once, and nothing leaks (checkAttachments).

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/e2e/internal/parallel"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// hostileCodes are the CNI spec's well-known error codes (1.1.0): what a
// refusal may carry. 999 (internal) means the daemon did not recognise
// bad input as such.
var hostileCodes = map[uint]bool{
	types.ErrIncompatibleCNIVersion: true, types.ErrUnsupportedField: true, types.ErrUnknownContainer: true,
	types.ErrInvalidEnvironmentVariables: true, types.ErrIOFailure: true, types.ErrDecodingFailure: true,
	types.ErrInvalidNetworkConfig: true, types.ErrTryAgainLater: true, cniproto.ErrPluginNotAvailable: true,
}

// hostileCase is one hostile call. mod changes a normal invocation (ADD of
// a fresh container ID into a fresh pod, ifname net1, Kubernetes CNI_ARGS,
// the test network's config).
type hostileCase struct {
	name string
	mod  func(inv *sandbox.Invocation)
	// codes the refusal may carry (nil: any well-known one); mention is in
	// its message. okAllowed: the input is odd but legal, and ADD may
	// succeed (then DEL must too).
	codes     []uint
	mention   string
	okAllowed bool
}

func TestHostileInput(t *testing.T) {
	start := time.Now()
	n := node(t, 0)
	base := takeBaseline(t)
	network := "hostile-" + randomID()[:4]
	const subnets = "10.81.0.0/24"
	conf := layer2Config(network, subnets, nil)
	t.Cleanup(func() { scrub(t, base, network) })
	sock := n.DaemonSocket()
	pid := daemons[n.Name].Pid()

	// A pod attached before, and kept through, everything below.
	keeper := newPod(t, n, "hostile-keep")
	mustAdd(t, keeper, "net1", conf)
	live := []liveAtt{liveOf(keeper, "net1")}
	probe := newPod(t, n, "hostile-probe")

	// healthy: the same daemon process runs, answers STATUS at once, and
	// a normal ADD and DEL work quickly.
	healthy := func(t *testing.T) {
		t.Helper()
		if d := daemons[n.Name]; d.Exited() || d.Pid() != pid {
			t.Fatalf("the daemon died (pid %d, now %d); log:\n%s", pid, d.Pid(), d.LogTail(40))
		}
		began := time.Now()
		resp, err := postCNI(sock, mustJSON(t, cniproto.Request{Command: "STATUS", Config: conf}), 5*time.Second)
		if err != nil || resp.Error != nil || time.Since(began) > 2*time.Second {
			t.Fatalf("STATUS: %+v %v after %s; want ready within 2s", resp, err, time.Since(began))
		}
		cid := randomID() + randomID()
		began = time.Now()
		if _, err := cniCall(20*time.Second, n, "ADD", cid, probe.NetnsPath, "net1", probe.Name, conf); err != nil {
			t.Fatalf("a normal ADD after hostile input: %v", err)
		}
		if _, err := cniCall(20*time.Second, n, "DEL", cid, probe.NetnsPath, "net1", probe.Name, conf); err != nil {
			t.Fatalf("a normal DEL after hostile input: %v", err)
		}
		if took := time.Since(began); took > 10*time.Second {
			t.Errorf("a normal ADD+DEL took %s after hostile input", took)
		}
	}
	clean := func(t *testing.T) {
		t.Helper()
		healthy(t)
		checkAttachments(t, base, netLive{network, live})
	}

	// Paths that are not a pod netns.
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unblockFIFO(fifo) })
	nsDir := filepath.Join(dir, "dir")
	if err := os.Mkdir(nsDir, 0o700); err != nil {
		t.Fatal(err)
	}

	setConf := func(c string) func(*sandbox.Invocation) {
		return func(inv *sandbox.Invocation) { inv.Config = []byte(c) }
	}
	confWith := func(extra map[string]any) func(*sandbox.Invocation) {
		return func(inv *sandbox.Invocation) { inv.Config = layer2Config(network, subnets, extra) }
	}
	// confText is the test network's config as text, with raw JSON
	// inserted before the closing brace.
	confText := func(insert string) string {
		c := string(conf)
		return c[:len(c)-1] + "," + insert + "}"
	}
	manyKeys := make([]string, 0, 3000)
	for i := range 3000 {
		manyKeys = append(manyKeys, fmt.Sprintf("KEY%d=value%d", i, i))
	}

	pluginCases := []hostileCase{
		// Configs.
		{name: "config nested 100000 deep", mod: setConf(confText(`"x":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000))),
			codes: []uint{types.ErrDecodingFailure, types.ErrInvalidNetworkConfig}},
		{name: "config nested 5000 deep", mod: setConf(confText(`"x":` + strings.Repeat(`{"a":`, 5000) + "1" + strings.Repeat("}", 5000))),
			codes: []uint{types.ErrInvalidNetworkConfig}, okAllowed: true},
		{name: "config of 2 MiB (unknown field)", mod: confWith(map[string]any{"padding": strings.Repeat("p", 2<<20)}), okAllowed: true,
			codes: []uint{types.ErrInvalidNetworkConfig}},
		{name: "config of 2 MiB (subnets)", mod: confWith(map[string]any{"subnets": strings.Repeat("10.81.0.0/24,", 2<<20/13)}),
			codes: []uint{types.ErrInvalidNetworkConfig}, mention: "subnets"},
		{name: "config with invalid UTF-8 in the name", mod: setConf(`{"cniVersion":"1.0.0","name":"hostile-` + "\xff\xfe" + `","type":"ovn-k8s-cni-overlay","topology":"layer2"}`),
			codes: []uint{types.ErrInvalidNetworkConfig}},
		{name: "config with invalid UTF-8 in a value", mod: setConf(confText(`"netAttachDefName":"default/x` + "\xc3\x28" + `"`)),
			codes: []uint{types.ErrInvalidNetworkConfig}, mention: "netAttachDefName"},
		{name: "config not UTF-8 at all", mod: setConf("\xff\xfe\x00{\x00}"), codes: []uint{types.ErrDecodingFailure, types.ErrInvalidNetworkConfig}},
		{name: "config with duplicate topology", mod: setConf(confText(`"topology":"layer3"`)),
			codes: []uint{types.ErrInvalidNetworkConfig}, okAllowed: true},
		{name: "config with duplicate name", mod: setConf(`{"name":"other-net","cniVersion":"1.0.0","type":"ovn-k8s-cni-overlay","topology":"layer2","name":"` + network + `","subnets":"` + subnets + `"}`),
			codes: []uint{types.ErrInvalidNetworkConfig}, okAllowed: true},
		{name: "config with mtu as a string", mod: confWith(map[string]any{"mtu": "1400"}), codes: []uint{types.ErrInvalidNetworkConfig}, mention: "mtu"},
		{name: "config with cniVersion as a number", mod: confWith(map[string]any{"cniVersion": 1.0}),
			codes: []uint{types.ErrDecodingFailure, types.ErrInvalidNetworkConfig, types.ErrIncompatibleCNIVersion}},
		{name: "config with subnets as a number", mod: confWith(map[string]any{"subnets": 10}), codes: []uint{types.ErrInvalidNetworkConfig}, mention: "subnets"},
		{name: "config that is an array", mod: setConf(`[` + string(conf) + `]`), codes: []uint{types.ErrDecodingFailure, types.ErrInvalidNetworkConfig}},
		{name: "config empty", mod: setConf(``), codes: []uint{types.ErrDecodingFailure, types.ErrInvalidNetworkConfig}},

		// CNI_ARGS.
		{name: "K8S_POD_NAME of 10k chars", mod: func(inv *sandbox.Invocation) {
			inv.Args = "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + strings.Repeat("n", 10000)
		}, okAllowed: true},
		{name: "CNI_ARGS IP=garbage", mod: func(inv *sandbox.Invocation) { inv.Args += ";IP=garbage" },
			codes: []uint{types.ErrInvalidNetworkConfig, types.ErrInvalidEnvironmentVariables}, mention: "IP"},
		{name: "CNI_ARGS IP outside the subnet", mod: func(inv *sandbox.Invocation) { inv.Args += ";IP=192.0.2.7/24" },
			codes: []uint{types.ErrInvalidNetworkConfig, types.ErrInvalidEnvironmentVariables}},
		{name: "CNI_ARGS MAC=garbage", mod: func(inv *sandbox.Invocation) { inv.Args += ";MAC=garbage" },
			codes: []uint{types.ErrInvalidNetworkConfig, types.ErrInvalidEnvironmentVariables}, mention: "MAC"},
		{name: "CNI_ARGS MAC multicast", mod: func(inv *sandbox.Invocation) { inv.Args += ";MAC=01:00:5e:00:00:01" },
			codes: []uint{types.ErrInvalidNetworkConfig, types.ErrInvalidEnvironmentVariables}, mention: "MAC"},
		{name: "CNI_ARGS with 3000 keys", mod: func(inv *sandbox.Invocation) { inv.Args += ";" + strings.Join(manyKeys, ";") }, okAllowed: true},
		{name: "CNI_ARGS without separators", mod: func(inv *sandbox.Invocation) { inv.Args = strings.Repeat("=;", 5000) + "K8S_POD_NAMESPACE" }, okAllowed: true},

		// CNI_IFNAME (the plugin's CNI library refuses these before the daemon).
		{name: "ifname too long", mod: func(inv *sandbox.Invocation) { inv.IfName = "net1234567890123" },
			codes: []uint{types.ErrInvalidEnvironmentVariables}},
		{name: "ifname ..", mod: func(inv *sandbox.Invocation) { inv.IfName = ".." }, codes: []uint{types.ErrInvalidEnvironmentVariables}},
		{name: "ifname /", mod: func(inv *sandbox.Invocation) { inv.IfName = "/" }, codes: []uint{types.ErrInvalidEnvironmentVariables}},
		{name: "ifname empty", mod: func(inv *sandbox.Invocation) { inv.IfName = "" }, codes: []uint{types.ErrInvalidEnvironmentVariables}},

		// CNI_CONTAINERID.
		{name: "container ID empty", mod: func(inv *sandbox.Invocation) { inv.ContainerID = "" },
			codes: []uint{types.ErrInvalidEnvironmentVariables, types.ErrUnknownContainer}},
		{name: "container ID of 1 KiB", mod: func(inv *sandbox.Invocation) { inv.ContainerID = strings.Repeat("c", 1024) }, okAllowed: true},
		{name: "container ID with /", mod: func(inv *sandbox.Invocation) { inv.ContainerID = "../../etc/" + randomID() },
			codes: []uint{types.ErrInvalidEnvironmentVariables}},

		// CNI_NETNS.
		{name: "netns: the node's own", mod: func(inv *sandbox.Invocation) { inv.Netns = n.NetnsPath },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "netns: a FIFO", mod: func(inv *sandbox.Invocation) { inv.Netns = fifo },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "netns: a directory", mod: func(inv *sandbox.Invocation) { inv.Netns = nsDir },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "netns: /dev/null", mod: func(inv *sandbox.Invocation) { inv.Netns = "/dev/null" },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "netns: /proc/self/ns/net", mod: func(inv *sandbox.Invocation) { inv.Netns = "/proc/self/ns/net" },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "DEL netns: the node's own", mod: func(inv *sandbox.Invocation) { inv.Command, inv.Netns = "DEL", n.NetnsPath },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "DEL netns: a FIFO", mod: func(inv *sandbox.Invocation) { inv.Command, inv.Netns = "DEL", fifo },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "DEL netns: /dev/null", mod: func(inv *sandbox.Invocation) { inv.Command, inv.Netns = "DEL", "/dev/null" },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
		{name: "CHECK netns: /proc/self/ns/net", mod: func(inv *sandbox.Invocation) { inv.Command, inv.Netns = "CHECK", "/proc/self/ns/net" },
			codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
	}

	t.Run("plugin", func(t *testing.T) {
		for _, tc := range pluginCases {
			t.Run(tc.name, func(t *testing.T) {
				pod := newPod(t, n, "hostile")
				inv := sandbox.Invocation{Command: "ADD", ContainerID: randomID() + randomID(), Netns: pod.NetnsPath, IfName: "net1",
					Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + pod.Name, Config: conf}
				tc.mod(&inv)
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				_, took, err := n.InvokeCNI(ctx, pluginBin, inv)
				t.Logf("%s: %v after %s", tc.name, trunc(fmt.Sprint(err), 300), took.Round(time.Millisecond))
				if ctx.Err() != nil {
					t.Fatalf("did not answer within 30s")
				}
				checkRefusal(t, err, tc)
				if inv.Command == "ADD" {
					// DEL follows every ADD, failed or not, as a runtime
					// does; it may only refuse an identity ADD refused.
					del := inv
					del.Command = "DEL"
					dctx, dcancel := context.WithTimeout(context.Background(), 30*time.Second)
					defer dcancel()
					_, _, derr := n.InvokeCNI(dctx, pluginBin, del)
					checkDelAfterAdd(t, err, derr)
				}
				clean(t)
			})
		}
	})

	// Identities the plugin's CNI library would refuse, sent raw: the
	// daemon must refuse them as well, without touching anything.
	rawCases := []struct {
		hostileCase
		req func(r *cniproto.Request)
		// bystanders: normal ADDs racing the hostile one must succeed.
		bystanders bool
	}{
		{hostileCase: hostileCase{name: "ifname ..", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_IFNAME"},
			req: func(r *cniproto.Request) { r.IfName = ".." }},
		{hostileCase: hostileCase{name: "ifname /", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_IFNAME"},
			req: func(r *cniproto.Request) { r.IfName = "/" }},
		{hostileCase: hostileCase{name: "ifname too long", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_IFNAME"},
			req: func(r *cniproto.Request) { r.IfName = "net1234567890123" }},
		{hostileCase: hostileCase{name: "ifname with a NUL", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_IFNAME"},
			req: func(r *cniproto.Request) { r.IfName = "ne\x00t1" }},
		{hostileCase: hostileCase{name: "ifname empty", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_IFNAME"},
			req: func(r *cniproto.Request) { r.IfName = "" }},
		{hostileCase: hostileCase{name: "container ID empty", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_CONTAINERID"},
			req: func(r *cniproto.Request) { r.ContainerID = "" }},
		{hostileCase: hostileCase{name: "container ID with /", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_CONTAINERID", okAllowed: true},
			req: func(r *cniproto.Request) { r.ContainerID = "../../" + randomID() }},
		{hostileCase: hostileCase{name: "container ID with a NUL", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_CONTAINERID"},
			req: func(r *cniproto.Request) { r.ContainerID = randomID() + "\x00" + randomID() }, bystanders: true},
		{hostileCase: hostileCase{name: "pod namespace with a NUL", codes: []uint{types.ErrInvalidEnvironmentVariables, types.ErrInvalidNetworkConfig}},
			req: func(r *cniproto.Request) { r.Args = "K8S_POD_NAMESPACE=def\x00ault;K8S_POD_NAME=x" }, bystanders: true},
		{hostileCase: hostileCase{name: "container ID of 64 KiB", okAllowed: true, codes: []uint{types.ErrInvalidEnvironmentVariables}},
			req: func(r *cniproto.Request) { r.ContainerID = strings.Repeat("c", 64<<10) }},
		{hostileCase: hostileCase{name: "netns relative path", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_NETNS"},
			req: func(r *cniproto.Request) { r.Netns = "../../proc/self/ns/net" }},
		{hostileCase: hostileCase{name: "config null", codes: []uint{types.ErrInvalidNetworkConfig, types.ErrDecodingFailure}},
			req: func(r *cniproto.Request) { r.Config = json.RawMessage(`null`) }},
		{hostileCase: hostileCase{name: "verb lower case", codes: []uint{types.ErrInvalidEnvironmentVariables}, mention: "CNI_COMMAND"},
			req: func(r *cniproto.Request) { r.Command = "add" }},
	}
	t.Run("raw identity", func(t *testing.T) {
		for _, tc := range rawCases {
			t.Run(tc.name, func(t *testing.T) {
				pod := newPod(t, n, "hostile-raw")
				req := cniproto.Request{Command: "ADD", ContainerID: randomID() + randomID(), Netns: pod.NetnsPath, IfName: "net1",
					Args: "IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=" + pod.Name, Config: conf}
				tc.req(&req)
				var wg sync.WaitGroup
				var bystanderErrs atomic.Int64
				if tc.bystanders {
					// Normal ADDs (and DELs) committed alongside the
					// hostile one, in the same NB batches.
					for i := range 4 {
						wg.Add(1)
						go func() {
							defer wg.Done()
							p := newPodNoCleanup(n, fmt.Sprintf("bystander%d", i))
							if p == nil {
								bystanderErrs.Add(1)
								return
							}
							defer p.Pod.Delete()
							if _, err := cniCall(20*time.Second, n, "ADD", p.containerID, p.NetnsPath, "net1", p.Name, conf); err != nil {
								t.Errorf("a normal ADD alongside the hostile one: %v", err)
							}
							if _, err := cniCall(20*time.Second, n, "DEL", p.containerID, p.NetnsPath, "net1", p.Name, conf); err != nil {
								t.Errorf("a normal DEL alongside the hostile one: %v", err)
							}
						}()
					}
				}
				began := time.Now()
				resp, err := postCNI(sock, mustJSON(t, req), 30*time.Second)
				wg.Wait()
				if bystanderErrs.Load() > 0 {
					t.Fatal("cannot create bystander pods")
				}
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				t.Logf("%s: %+v after %s", tc.name, resp.Error, time.Since(began).Round(time.Millisecond))
				var cerr error
				if resp.Error != nil {
					cerr = &sandbox.CNIError{CNI: *resp.Error}
				}
				checkRefusal(t, cerr, tc.hostileCase)
				if req.Command == "ADD" {
					del := req
					del.Command = "DEL"
					dresp, err := postCNI(sock, mustJSON(t, del), 30*time.Second)
					if err != nil {
						t.Fatalf("DEL after ADD: no answer: %v", err)
					}
					var derr error
					if dresp.Error != nil {
						derr = &sandbox.CNIError{CNI: *dresp.Error}
					}
					checkDelAfterAdd(t, cerr, derr)
				}
				clean(t)
			})
		}
	})

	t.Run("raw protocol", func(t *testing.T) {
		for _, tc := range []struct {
			name    string
			payload []byte
			// code: the CNI error the HTTP answer must carry (0: an HTTP
			// refusal or a closed connection is as good).
			code    uint
			mention string
		}{
			{"not JSON", httpPost([]byte("hello, daemon")), types.ErrDecodingFailure, "malformed"},
			{"JSON of the wrong shape", httpPost([]byte(`[1,2,3]`)), types.ErrDecodingFailure, ""},
			{"request nested 100000 deep", httpPost([]byte(`{"command":"ADD","config":` + strings.Repeat("[", 100000) + strings.Repeat("]", 100000) + `}`)), types.ErrDecodingFailure, ""},
			{"invalid UTF-8 command", httpPost([]byte("{\"command\":\"\xff\xfeADD\"}")), types.ErrInvalidEnvironmentVariables, "CNI_COMMAND"},
			{"truncated JSON body", httpPost([]byte(`{"command":"ADD","config":{"name":"x"`)), types.ErrDecodingFailure, ""},
			{"body shorter than Content-Length", []byte("POST /cni HTTP/1.1\r\nHost: d\r\nContent-Length: 500\r\n\r\n{\"command\":\"STATUS\"}"), 0, ""},
			{"9 MiB body", httpPost(append([]byte(`{"command":"ADD","config":{"name":"`), bytes.Repeat([]byte("x"), 9<<20)...)), types.ErrInvalidNetworkConfig, "8 MiB"},
			{"9 MiB chunked body", chunkedPost(bytes.Repeat([]byte(" "), 9<<20)), types.ErrInvalidNetworkConfig, "8 MiB"},
			{"not HTTP", []byte("\x00\x01\x02GARBAGE\r\n\r\n"), 0, ""},
			{"GET", []byte("GET /cni HTTP/1.1\r\nHost: d\r\n\r\n"), 0, ""},
			{"wrong path", []byte("POST /../cni HTTP/1.1\r\nHost: d\r\nContent-Length: 2\r\n\r\n{}"), 0, ""},
			{"header of 2 MiB", []byte("POST /cni HTTP/1.1\r\nHost: d\r\nX: " + strings.Repeat("h", 2<<20) + "\r\n\r\n"), 0, ""},
			{"HTTP/2 preface", []byte("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), 0, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				began := time.Now()
				reply, closed, err := rawExchange(sock, tc.payload, true, 15*time.Second)
				t.Logf("%s: %d bytes back, closed %v, err %v after %s: %q", tc.name, len(reply), closed, err, time.Since(began).Round(time.Millisecond), trunc(string(reply), 200))
				if err != nil {
					t.Fatalf("no answer within 15s and not closed: %v", err)
				}
				checkHTTPReply(t, reply, closed, tc.code, tc.mention)
				healthy(t)
			})
		}
		t.Run("50 concurrent garbage connections", func(t *testing.T) {
			payloads := [][]byte{
				[]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not TLS either"),
				httpPost([]byte("{{{{")),
				httpPost([]byte(`{"command":"FROB"}`)),
				[]byte("POST /cni HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
				[]byte("POST /cni HTTP/1.1\r\nHost: d\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
			}
			var failed atomic.Int64
			began := time.Now()
			parallel.ForEach(50, 50, func(i int) {
				reply, closed, err := rawExchange(sock, payloads[i%len(payloads)], true, 15*time.Second)
				if err != nil || (!closed && len(reply) == 0) {
					failed.Add(1)
					t.Errorf("garbage connection %d: %v (closed %v, %q)", i, err, closed, trunc(string(reply), 100))
				}
			})
			// STATUS and a normal ADD+DEL while they are handled too.
			healthy(t)
			t.Logf("50 garbage connections answered or closed in %s; %d failed", time.Since(began).Round(time.Millisecond), failed.Load())
		})
		t.Run("stalled connections do not block others", func(t *testing.T) {
			// 20 connections stop half-way through a request (10 in the
			// headers, 10 in the body) and stay open; meanwhile normal
			// requests are served at once.
			var conns []net.Conn
			for i := range 20 {
				c, err := net.Dial("unix", sock)
				if err != nil {
					t.Fatal(err)
				}
				conns = append(conns, c)
				half := []byte("POST /cni HTTP/1.1\r\nHost: d\r\nContent-Le")
				if i%2 == 1 {
					half = []byte("POST /cni HTTP/1.1\r\nHost: d\r\nContent-Length: 1000\r\n\r\n{\"command\":\"ADD\",")
				}
				if _, err := c.Write(half); err != nil {
					t.Fatal(err)
				}
			}
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			began := time.Now()
			healthy(t)
			if took := time.Since(began); took > 5*time.Second {
				t.Errorf("STATUS and ADD+DEL took %s while 20 connections stalled", took)
			}
			// The stalled ones are still open (nothing was answered yet).
			for i, c := range conns {
				_ = c.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
				if n, err := c.Read(make([]byte, 1)); n > 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("stalled connection %d: read %d bytes, %v; want nothing yet", i, n, err)
				}
			}
		})
		t.Run("stalled connections are closed by the read timeouts", func(t *testing.T) {
			if testing.Short() {
				t.Skip("waits for the daemon's 30s read timeout")
			}
			// ReadHeaderTimeout 10s for a stall in the headers,
			// ReadTimeout 30s for one in the body (both from the
			// start of the request).
			measure := func(half []byte, lo, hi time.Duration) func() error {
				return func() error {
					c, err := net.Dial("unix", sock)
					if err != nil {
						return err
					}
					defer c.Close()
					began := time.Now()
					if _, err := c.Write(half); err != nil {
						return err
					}
					_ = c.SetReadDeadline(time.Now().Add(hi + 5*time.Second))
					reply, err := io.ReadAll(c)
					took := time.Since(began)
					if err != nil {
						return fmt.Errorf("stall %q: not closed after %s: %v", half, took, err)
					}
					if took < lo || took > hi {
						return fmt.Errorf("stall %q: closed after %s, want %s-%s (answer %q)", half, took, lo, hi, trunc(string(reply), 200))
					}
					t.Logf("stall %q closed after %s (answer %q)", half, took.Round(time.Millisecond), trunc(string(reply), 200))
					return nil
				}
			}
			checks := []func() error{
				measure([]byte("POST /cni HTTP/1.1\r\nHost: d\r\nContent-Le"), 9*time.Second, 15*time.Second),
				measure([]byte("POST /cni HTTP/1.1\r\nHost: d\r\nContent-Length: 1000\r\n\r\n{\"command\":\"ADD\","), 29*time.Second, 36*time.Second),
			}
			errs := make([]error, len(checks))
			parallel.ForEach(len(checks), len(checks), func(i int) { errs[i] = checks[i]() })
			for _, err := range errs {
				if err != nil {
					t.Error(err)
				}
			}
			healthy(t)
		})
		checkAttachments(t, base, netLive{network, live})
	})

	// The daemon's metrics still answer; and say how many command series
	// hostile verbs created (see TestUnknownCommandsDoNotGrowMetrics in
	// daemon/fuzz_test.go).
	body := daemonMetrics(t, n)
	t.Logf("cni_duration_seconds series: %d", strings.Count(body, "ovn_overlay_cni_duration_seconds_count{"))
	clean(t)
	t.Logf("TestHostileInput took %s", time.Since(start).Round(time.Millisecond))
}

// checkDelAfterAdd: the DEL following an ADD succeeds, or (when ADD was
// refused too) refuses with a well-known code.
func checkDelAfterAdd(t *testing.T, addErr, delErr error) {
	t.Helper()
	if delErr == nil {
		return
	}
	var ce *sandbox.CNIError
	switch {
	case addErr == nil:
		t.Errorf("DEL after the accepted ADD: %v", delErr)
	case !errors.As(delErr, &ce):
		t.Errorf("DEL after the refused ADD: not a CNI error: %v", delErr)
	case !hostileCodes[ce.CNI.Code]:
		t.Errorf("DEL after the refused ADD: CNI error %d %q; want a well-known code", ce.CNI.Code, trunc(ce.CNI.Msg, 300))
	default:
		t.Logf("DEL after the refused ADD: %v", trunc(delErr.Error(), 300))
	}
}

// checkRefusal asserts err is a CNI error with a well-known code (one of
// tc.codes, if given) mentioning tc.mention, or nil where tc allows it.
func checkRefusal(t *testing.T, err error, tc hostileCase) {
	t.Helper()
	if err == nil {
		if !tc.okAllowed {
			t.Errorf("accepted; want a CNI error %v", tc.codes)
		}
		return
	}
	var ce *sandbox.CNIError
	if !errors.As(err, &ce) {
		t.Fatalf("not a CNI error: %v", err)
	}
	if !hostileCodes[ce.CNI.Code] || ce.CNI.Msg == "" {
		t.Errorf("CNI error code %d %q; want a well-known code with a message", ce.CNI.Code, ce.CNI.Msg)
	}
	if len(tc.codes) > 0 && !containsCode(tc.codes, ce.CNI.Code) {
		t.Errorf("CNI error code %d (%s); want one of %v", ce.CNI.Code, trunc(ce.CNI.Msg, 300), tc.codes)
	}
	if tc.mention != "" && !strings.Contains(ce.CNI.Msg+" "+ce.CNI.Details, tc.mention) {
		t.Errorf("CNI error %q does not mention %s", trunc(ce.CNI.Msg, 300), tc.mention)
	}
}

func containsCode(codes []uint, c uint) bool {
	for _, x := range codes {
		if x == c {
			return true
		}
	}
	return false
}

// checkHTTPReply: what came back on a raw connection is an HTTP answer
// with a well-known CNI error (code, if given), or an HTTP refusal, or
// nothing with the connection closed.
func checkHTTPReply(t *testing.T, reply []byte, closed bool, code uint, mention string) {
	t.Helper()
	if len(reply) == 0 {
		if code != 0 {
			t.Errorf("the connection was closed without an answer; want CNI error %d", code)
		} else if !closed {
			t.Errorf("no answer and the connection is open")
		}
		return
	}
	resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(reply)), nil)
	if err != nil {
		t.Fatalf("answer is not HTTP: %v (%q)", err, trunc(string(reply), 200))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		if code != 0 {
			t.Errorf("HTTP %s; want a CNI error %d", resp.Status, code)
		}
		if !closed && resp.Close {
			t.Errorf("HTTP %s announces a close, but the connection stays open", resp.Status)
		}
		return
	}
	var out cniproto.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("HTTP 200 with a body that is no cniproto.Response: %v", err)
	}
	if out.Error == nil {
		t.Errorf("HTTP 200 without a CNI error for hostile input (result %q)", trunc(string(out.Result), 200))
		return
	}
	if !hostileCodes[out.Error.Code] || out.Error.Msg == "" {
		t.Errorf("CNI error %d %q; want a well-known code with a message", out.Error.Code, out.Error.Msg)
	}
	if code != 0 && out.Error.Code != code {
		t.Errorf("CNI error %d (%s); want %d", out.Error.Code, trunc(out.Error.Msg, 200), code)
	}
	if mention != "" && !strings.Contains(out.Error.Msg+" "+out.Error.Details, mention) {
		t.Errorf("CNI error %q does not mention %s", trunc(out.Error.Msg, 200), mention)
	}
}

// postCNI posts one raw body to the daemon's CNI endpoint.
func postCNI(sock string, body []byte, timeout time.Duration) (*cniproto.Response, error) {
	c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true,
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", sock)
		}}}
	resp, err := c.Post("http://daemon"+cniproto.Path, "application/json", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var out cniproto.Response
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return nil, fmt.Errorf("HTTP %d: %w", resp.StatusCode, err)
	}
	return &out, nil
}

// rawExchange writes payload on a new connection to sock (closing the
// write side after it if halfClose) and reads until the daemon closes the
// connection, or until it has answered one HTTP response and gone quiet
// for a second (keep-alive), or timeout. closed: the daemon closed it.
func rawExchange(sock string, payload []byte, halfClose bool, timeout time.Duration) (reply []byte, closed bool, err error) {
	c, err := net.Dial("unix", sock)
	if err != nil {
		return nil, false, err
	}
	defer c.Close()
	deadline := time.Now().Add(timeout)
	_ = c.SetDeadline(deadline)
	writeErr := make(chan error, 1)
	go func() {
		_, err := c.Write(payload)
		if err == nil && halfClose {
			err = c.(*net.UnixConn).CloseWrite()
		}
		writeErr <- err
	}()
	var buf bytes.Buffer
	chunk := make([]byte, 64<<10)
	for {
		if buf.Len() > 0 {
			// An answer came: a keep-alive connection goes quiet.
			_ = c.SetReadDeadline(minTime(deadline, time.Now().Add(time.Second)))
		}
		k, rerr := c.Read(chunk)
		buf.Write(chunk[:k])
		switch {
		case rerr == nil:
			continue
		case errors.Is(rerr, io.EOF), errors.Is(rerr, syscall.ECONNRESET):
			return buf.Bytes(), true, nil
		case errors.Is(rerr, os.ErrDeadlineExceeded) && buf.Len() > 0:
			return buf.Bytes(), false, nil
		default:
			<-writeErr
			return buf.Bytes(), false, rerr
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func httpPost(body []byte) []byte {
	return append([]byte(fmt.Sprintf("POST %s HTTP/1.1\r\nHost: daemon\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n", cniproto.Path, len(body))), body...)
}

func chunkedPost(body []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "POST %s HTTP/1.1\r\nHost: daemon\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n", cniproto.Path)
	for len(body) > 0 {
		k := min(len(body), 1<<20)
		fmt.Fprintf(&b, "%x\r\n%s\r\n", k, body[:k])
		body = body[k:]
	}
	b.WriteString("0\r\n\r\n")
	return b.Bytes()
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// newPodNoCleanup is newPod for goroutines: the caller deletes the pod.
func newPodNoCleanup(n *sandbox.Node, name string) *testPod {
	p, err := n.NewPod(name + "-" + randomID()[:6])
	if err != nil {
		return nil
	}
	return &testPod{Pod: p, containerID: randomID() + randomID()}
}

// unblockFIFO opens a FIFO for writing a few times, releasing whoever may
// be stuck opening it for reading.
func unblockFIFO(fifo string) {
	for range 20 {
		f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return
		}
		f.Close()
		time.Sleep(50 * time.Millisecond)
	}
}

func trunc(s string, n int) string {
	if len(s) > n {
		return s[:n] + fmt.Sprintf("...(%d bytes)", len(s))
	}
	return s
}
