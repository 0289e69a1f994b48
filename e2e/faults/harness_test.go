package faults

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"net/netip"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovn-overlay/ovn-overlay/e2e/internal/attachcheck"
	"github.com/ovn-overlay/ovn-overlay/e2e/internal/parallel"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// CNI error codes the runtime tells apart.
const (
	codeTryAgain     = 11 // types.ErrTryAgainLater: the runtime retries
	codeNotAvailable = 50 // STATUS: the plugin cannot attach now
	// codeNoAnswer marks a call that printed no CNI error (crash,
	// timeout): never expected. Not a CNI code (999 is ErrInternal).
	codeNoAnswer = 100000
)

const (
	// addTimeout bounds one ADD: the daemon waits up to --ready-timeout
	// (20 s) for its connections and 20 s for ovn-installed.
	addTimeout = 90 * time.Second
	// retryFor bounds how long the runtime keeps retrying one pod.
	retryFor = 3 * time.Minute
	// retryPause is the runtime's pause between attempts.
	retryPause = 500 * time.Millisecond
	// statusLimit is the longest a STATUS may take, plugin exec included.
	statusLimit = time.Second
)

func randomID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// faultRounds is E2E_FAULT_ROUNDS (default 2).
func faultRounds() int {
	if v, err := strconv.Atoi(os.Getenv("E2E_FAULT_ROUNDS")); err == nil && v > 0 {
		return v
	}
	return 2
}

// faultBurst is E2E_FAULT_BURST; default 40 (20 with -short), or 200 when
// E2E_FAULT_ROUNDS asks for a full run.
func faultBurst() int {
	if v, err := strconv.Atoi(os.Getenv("E2E_FAULT_BURST")); err == nil && v > 0 {
		return v
	}
	if os.Getenv("E2E_FAULT_ROUNDS") != "" {
		return 200
	}
	if testing.Short() {
		return 20
	}
	return 40
}

// env is one test's sandbox and its daemons.
type env struct {
	t       *testing.T
	c       *sandbox.Cluster
	daemons map[string]*sandbox.Process
}

// startEnv starts a 2-node sandbox (clustered or standalone central DBs)
// and the real daemon on each node; everything is stopped when t ends.
func startEnv(t *testing.T, clustered bool) *env {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	begin := time.Now()
	c, err := sandbox.Start(ctx, sandbox.Options{Nodes: 2, Prefix: "ovsbx-" + randomID()[:4], ClusteredDBs: clustered})
	if err != nil {
		t.Fatalf("sandbox: %v", err)
	}
	e := &env{t: t, c: c, daemons: map[string]*sandbox.Process{}}
	timeoutsAtStart := callTimeouts.Load()
	t.Cleanup(func() {
		if t.Failed() || os.Getenv("SANDBOX_KEEP") != "" {
			if n := callTimeouts.Load() - timeoutsAtStart; n > 0 {
				// Plugin calls hit their deadline: a daemon may be hung.
				// SIGQUIT makes Go print every goroutine's stack into the
				// daemon's log (kept below) before it exits.
				for name, d := range e.daemons {
					if !d.Exited() {
						_ = syscall.Kill(d.Pid(), syscall.SIGQUIT)
						t.Logf("%d plugin call(s) timed out: sent SIGQUIT to the %s daemon (pid %d) for a goroutine dump in %s", n, name, d.Pid(), d.LogPath)
					}
				}
				time.Sleep(2 * time.Second)
			}
			for name, d := range e.daemons {
				t.Logf("%s daemon log, last warnings, errors and failed calls of %s:\n%s", name, d.LogPath, logExcerpt(d.LogPath, 25))
			}
			c.StopKeepDir()
			t.Logf("sandbox logs kept in %s", c.Dir)
			return
		}
		c.Stop()
	})
	for _, n := range c.Nodes {
		d, err := n.StartDaemon(daemonBin, "-v")
		if err != nil {
			t.Fatalf("%s: daemon: %v", n.Name, err)
		}
		e.daemons[n.Name] = d
	}
	t.Logf("sandbox (clustered DBs: %v) and daemons up in %s", clustered, time.Since(begin).Round(time.Millisecond))
	return e
}

// logExcerpt is the last n lines of a daemon log that tell of trouble:
// warnings, errors and failed CNI calls.
func logExcerpt(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	var keep []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") ||
			(strings.Contains(l, "msg=cni ") && !strings.Contains(l, "err=<nil>")) {
			keep = append(keep, "        "+l)
		}
	}
	return strings.Join(keep[max(0, len(keep)-n):], "\n")
}

// netConf is a NAD config. topology "layer3" takes "CIDR/hostPrefix".
func netConf(name, topology, subnets string) []byte {
	b, _ := json.Marshal(map[string]any{
		"cniVersion": "1.0.0", "name": name, "type": "ovn-k8s-cni-overlay", "topology": topology,
		"netAttachDefName": "default/" + name, "subnets": subnets,
	})
	return b
}

// statusConf is a CNI 1.1.0 config for STATUS.
func statusConf(name, subnets string) []byte {
	b, _ := json.Marshal(map[string]any{
		"cniVersion": "1.1.0", "name": name, "type": "ovn-k8s-cni-overlay", "topology": "layer2",
		"netAttachDefName": "default/" + name, "subnets": subnets,
	})
	return b
}

// cniCall runs the plugin binary on node n as a runtime does.
func cniCall(timeout time.Duration, n *sandbox.Node, command, containerID, netnsPath, ifName, podName string, config []byte) ([]byte, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	out, took, err := n.InvokeCNI(ctx, pluginBin, sandbox.Invocation{
		Command: command, ContainerID: containerID, Netns: netnsPath, IfName: ifName,
		Args:   fmt.Sprintf("IgnoreUnknown=1;K8S_POD_NAMESPACE=%s;K8S_POD_NAME=%s", attachcheck.DefaultPodNS, podName),
		Config: config,
	})
	if err != nil && ctx.Err() != nil {
		callTimeouts.Add(1)
		err = fmt.Errorf("%w: %w", os.ErrDeadlineExceeded, err)
	}
	return out, took, err
}

// callTimeouts counts plugin calls killed at their deadline.
var callTimeouts atomic.Int64

// codeOf is err's CNI code, 0 for success, codeNoAnswer if it is no CNI
// error at all.
func codeOf(err error) uint {
	if err == nil {
		return 0
	}
	var ce *sandbox.CNIError
	if errors.As(err, &ce) {
		return ce.CNI.Code
	}
	return codeNoAnswer
}

// fpod is one pod of a burst: its netns, node, network and current
// sandbox (container) ID.
type fpod struct {
	pod     *sandbox.Pod
	node    *sandbox.Node
	network string
	conf    []byte
	cid     string
	ok      bool         // attached (an ADD succeeded)
	addr    netip.Prefix // first address of the successful ADD
}

// newPods creates count pods, alternately on the two nodes; pick chooses
// each one's network. The netns are deleted when t ends.
func newPods(t *testing.T, e *env, prefix string, count int, pick func(i int) (network string, conf []byte)) []*fpod {
	t.Helper()
	pods := make([]*fpod, count)
	var mkErr error
	var mu sync.Mutex
	parallel.ForEach(count, 16, func(i int) {
		n := e.c.Nodes[i%len(e.c.Nodes)]
		p, err := n.NewPod(fmt.Sprintf("%s%d-%s", prefix, i, randomID()[:4]))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			mkErr = err
			return
		}
		network, conf := pick(i)
		pods[i] = &fpod{pod: p, node: n, network: network, conf: conf, cid: randomID() + randomID()}
	})
	t.Cleanup(func() {
		for _, p := range pods {
			if p != nil {
				_ = p.pod.Delete()
			}
		}
	})
	if mkErr != nil {
		t.Fatalf("create pod netns: %v", mkErr)
	}
	return pods
}

// tally is the accounting of a run's ADDs.
type tally struct {
	adds, firstTry, code11, other, lost, retried, delFailures atomic.Int64
	mu                                                        sync.Mutex
	codes                                                     map[uint]int // failed ADD attempts by code
	otherMsgs                                                 []string
	slowest                                                   time.Duration // first ADD to success, worst pod
}

func newTally() *tally { return &tally{codes: map[uint]int{}} }

func (ta *tally) fail(code uint, err error, p *fpod, at time.Duration) {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	ta.codes[code]++
	if code == codeTryAgain {
		ta.code11.Add(1)
		return
	}
	ta.other.Add(1)
	if len(ta.otherMsgs) < 20 {
		ta.otherMsgs = append(ta.otherMsgs, fmt.Sprintf("%s on %s at +%s: %.300v", p.pod.Name, p.node.Name, at.Round(time.Millisecond), err))
	}
}

func (ta *tally) String() string {
	ta.mu.Lock()
	defer ta.mu.Unlock()
	var cs []string
	for c, n := range ta.codes {
		cs = append(cs, fmt.Sprintf("%d:%d", c, n))
	}
	sort.Strings(cs)
	return fmt.Sprintf("ADDs %d, first-try successes %d, code-11 failures %d (pods retried %d), other failures %d, DEL failures %d, lost attaches %d, failed attempts by code {%s}, slowest pod %s",
		ta.adds.Load(), ta.firstTry.Load(), ta.code11.Load(), ta.retried.Load(), ta.other.Load(), ta.delFailures.Load(), ta.lost.Load(), strings.Join(cs, " "), ta.slowest.Round(time.Millisecond))
}

// report fails t for every lost attach and every failure that is not
// code 11.
func (ta *tally) report(t *testing.T) {
	t.Helper()
	ta.mu.Lock()
	defer ta.mu.Unlock()
	if n := ta.lost.Load(); n > 0 {
		t.Errorf("%d pod(s) never attached within %s of retries", n, retryFor)
	}
	if n := ta.other.Load(); n > 0 {
		t.Errorf("%d ADD(s) failed with a code other than 11 (runtime would not retry as transient): %s", n, strings.Join(ta.otherMsgs, "\n  "))
	}
}

// attach runs the runtime's ADD loop for p, starting at start: ADD; on
// failure DEL the identity (retried until it succeeds) and ADD again with a
// new container ID in the same netns, as kubelet/containerd do (a failed
// RunPodSandbox is torn down and a new sandbox made), until it succeeds or
// retryFor passes. Every failure is tallied by code.
func attach(ta *tally, p *fpod, t0 time.Time) {
	ta.adds.Add(1)
	begin := time.Now()
	giveUp := begin.Add(retryFor)
	for attempt := 0; ; attempt++ {
		out, _, err := cniCall(addTimeout, p.node, "ADD", p.cid, p.pod.NetnsPath, "net1", p.pod.Name, p.conf)
		if err == nil {
			if r, perr := current.NewResult(out); perr == nil {
				if res, cerr := current.GetResult(r); cerr == nil && len(res.IPs) > 0 {
					a, _ := netip.AddrFromSlice(res.IPs[0].Address.IP)
					bits, _ := res.IPs[0].Address.Mask.Size()
					p.addr = netip.PrefixFrom(a.Unmap(), bits)
				}
			}
			p.ok = true
			if attempt == 0 {
				ta.firstTry.Add(1)
			}
			ta.mu.Lock()
			ta.slowest = max(ta.slowest, time.Since(begin))
			ta.mu.Unlock()
			return
		}
		ta.fail(codeOf(err), err, p, time.Since(t0))
		if attempt == 0 {
			ta.retried.Add(1)
		}
		// Tear the failed sandbox down.
		for {
			_, _, derr := cniCall(addTimeout, p.node, "DEL", p.cid, p.pod.NetnsPath, "net1", p.pod.Name, p.conf)
			if derr == nil {
				break
			}
			ta.delFailures.Add(1)
			if time.Now().After(giveUp) {
				ta.lost.Add(1)
				return
			}
			time.Sleep(retryPause)
		}
		if time.Now().After(giveUp) {
			ta.lost.Add(1)
			return
		}
		time.Sleep(retryPause)
		p.cid = randomID() + randomID()
	}
}

// burstSpread is how long a burst's ADDs keep starting: longer than the
// latest fault time (3 s), so that calls are in every stage when the fault
// comes, whatever the burst size.
const burstSpread = 4 * time.Second

// burst attaches every pod, each starting at a random point of the first
// burstSpread, and returns when all are done.
func burst(ta *tally, pods []*fpod, t0 time.Time) {
	var wg sync.WaitGroup
	for _, p := range pods {
		wg.Add(1)
		go func() {
			defer wg.Done()
			time.Sleep(time.Duration(mrand.Int64N(int64(burstSpread))))
			attach(ta, p, t0)
		}()
	}
	wg.Wait()
}

// delAll deletes every attached pod's attachment (retrying failures) and
// counts DEL failures in ta.
func delAll(t *testing.T, ta *tally, pods []*fpod) {
	t.Helper()
	parallel.ForEach(len(pods), 32, func(i int) {
		p := pods[i]
		deadline := time.Now().Add(retryFor)
		for {
			_, _, err := cniCall(addTimeout, p.node, "DEL", p.cid, p.pod.NetnsPath, "net1", p.pod.Name, p.conf)
			if err == nil {
				p.ok = false
				return
			}
			ta.delFailures.Add(1)
			if time.Now().After(deadline) {
				t.Errorf("DEL %s on %s never succeeded: %v", p.pod.Name, p.node.Name, err)
				return
			}
			time.Sleep(retryPause)
		}
	})
}

// liveOf lists the attached pods per network for the checker.
func liveOf(pods []*fpod, networks ...string) []attachcheck.NetLive {
	by := map[string][]attachcheck.Live{}
	for _, p := range pods {
		if p.ok {
			by[p.network] = append(by[p.network], attachcheck.Live{Pod: p.pod, ContainerID: p.cid, IfName: "net1"})
		}
	}
	var out []attachcheck.NetLive
	for _, nw := range networks {
		out = append(out, attachcheck.NetLive{Network: nw, Live: by[nw]})
	}
	return out
}

// ---- STATUS ----

// statusSample is one STATUS answer.
type statusSample struct {
	at, took time.Duration // since the poll's t0; how long the plugin ran
	code     uint
	msg      string
}

// status runs STATUS through the real plugin binary on n.
func status(n *sandbox.Node, conf []byte) (time.Duration, uint, string) {
	_, took, err := cniCall(10*time.Second, n, "STATUS", "", "", "", "", conf)
	msg := ""
	var ce *sandbox.CNIError
	if errors.As(err, &ce) {
		msg = ce.CNI.Msg
	} else if err != nil {
		msg = err.Error()
	}
	return took, codeOf(err), msg
}

// statusPoller runs STATUS on n every ~200 ms until stopped.
type statusPoller struct {
	mu      sync.Mutex
	samples []statusSample
	stop    chan struct{}
	done    chan struct{}
}

func pollStatus(n *sandbox.Node, conf []byte, t0 time.Time) *statusPoller {
	sp := &statusPoller{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(sp.done)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			at := time.Since(t0)
			took, code, msg := status(n, conf)
			sp.mu.Lock()
			sp.samples = append(sp.samples, statusSample{at, took, code, msg})
			sp.mu.Unlock()
			select {
			case <-sp.stop:
				return
			case <-tick.C:
			}
		}
	}()
	return sp
}

// Samples returns the samples so far.
func (sp *statusPoller) Samples() []statusSample {
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return append([]statusSample(nil), sp.samples...)
}

// Stop ends the polling and returns the samples.
func (sp *statusPoller) Stop() []statusSample {
	close(sp.stop)
	<-sp.done
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.samples
}

// summarizeStatus checks every answer came within statusLimit with code 0
// or 50 and returns "n, p50, max, codes".
func summarizeStatus(t *testing.T, ss []statusSample) string {
	t.Helper()
	return statusFigures(t, ss, true)
}

// statusFigures is summarizeStatus, asserting only if assert is set.
func statusFigures(t *testing.T, ss []statusSample, assert bool) string {
	t.Helper()
	if len(ss) == 0 {
		return "no STATUS samples"
	}
	var tooks []time.Duration
	codes := map[uint]int{}
	slow := 0
	for _, s := range ss {
		tooks = append(tooks, s.took)
		codes[s.code]++
		if s.took >= statusLimit {
			slow++
			if assert && slow <= 5 {
				t.Errorf("STATUS at +%s took %s (limit %s): code %d %s", s.at.Round(time.Millisecond), s.took.Round(time.Millisecond), statusLimit, s.code, s.msg)
			}
		}
		if assert && s.code != 0 && s.code != codeNotAvailable {
			t.Errorf("STATUS at +%s answered code %d (want 0 or 50): %s", s.at.Round(time.Millisecond), s.code, s.msg)
		}
	}
	sort.Slice(tooks, func(i, j int) bool { return tooks[i] < tooks[j] })
	var cs []string
	for c, n := range codes {
		cs = append(cs, fmt.Sprintf("%d:%d", c, n))
	}
	sort.Strings(cs)
	return fmt.Sprintf("STATUS n=%d p50=%s max=%s over-1s=%d codes={%s}", len(ss), tooks[len(tooks)/2].Round(time.Millisecond),
		tooks[len(tooks)-1].Round(time.Millisecond), slow, strings.Join(cs, " "))
}

// pingEventually pings dst from p until it answers or within passes.
func pingEventually(p *sandbox.Pod, dst netip.Addr, within time.Duration) (time.Duration, error) {
	begin := time.Now()
	for {
		err := p.Ping(dst, 1)
		if err == nil {
			return time.Since(begin), nil
		}
		if time.Since(begin) > within {
			return time.Since(begin), err
		}
	}
}
