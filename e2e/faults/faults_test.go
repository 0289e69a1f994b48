package faults

import (
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/e2e/internal/attachcheck"
)

// Networks of the bursts: a layer2 /16 (large enough for any burst and its
// warm ports) and a layer3 /16 cut into /22 node subnets.
const (
	l2Subnet = "10.80.0.0/16"
	l3Subnet = "10.81.0.0/16/22"
)

// twoNetworks makes a layer2 and a layer3 network; even pods of a burst go
// on layer2, odd ones on layer3 (the pods alternate nodes by index, so
// pairs by index/2 spread both networks over both nodes).
func twoNetworks(tag string) (l2, l3 string, pick func(i int) (string, []byte)) {
	l2, l3 = tag+"-l2-"+randomID()[:4], tag+"-l3-"+randomID()[:4]
	c2, c3 := netConf(l2, "layer2", l2Subnet), netConf(l3, "layer3", l3Subnet)
	return l2, l3, func(i int) (string, []byte) {
		if (i/2)%2 == 0 {
			return l2, c2
		}
		return l3, c3
	}
}

// checkAndClean checks the pods' attachments, DELs them all and checks
// that nothing is left; it returns the leaks and duplicates found.
func checkAndClean(t *testing.T, e *env, ta *tally, base attachcheck.Baseline, pods []*fpod, networks ...string) checked {
	t.Helper()
	rep := attachcheck.Check(t, e.c, base, liveOf(pods, networks...)...)
	delAll(t, ta, pods)
	after := attachcheck.Check(t, e.c, base, liveOf(pods, networks...)...)
	return checked{rep.Leaks + after.Leaks, rep.Dups + after.Dups, rep.Missing + after.Missing, rep.Down + after.Down}
}

// checked sums attachcheck reports.
type checked struct{ leaks, dups, missing, down int }

func (c *checked) add(o checked) {
	c.leaks += o.leaks
	c.dups += o.dups
	c.missing += o.missing
	c.down += o.down
}

func (c checked) String() string {
	return fmt.Sprintf("leaks %d, duplicates %d, missing %d, links down %d", c.leaks, c.dups, c.missing, c.down)
}

// TestFaultRaftLeaderKill: clustered NB and SB (3-member RAFT each).
// E2E_FAULT_ROUNDS rounds (default 2) of a burst of E2E_FAULT_BURST ADDs
// (default 40, full 200) over both nodes, half on a layer2 and half on a
// layer3 network; 0.5-3 s into the burst the SB leader (odd rounds) or
// the NB leader (even rounds) is SIGKILLed and restarted 3 s later. The
// runtime retries failed ADDs (see attach). STATUS is polled on node 1
// every ~200 ms throughout. Acceptance: no lost attach, no failure but
// code 11, every STATUS within 1 s, and, from the NB, OVS and the kernel,
// no duplicate address and nothing left after every pod is deleted.
func TestFaultRaftLeaderKill(t *testing.T) {
	rounds, size := faultRounds(), faultBurst()
	e := startEnv(t, true)
	base := attachcheck.TakeBaseline(t, e.c)
	l2, l3, pick := twoNetworks("raft")
	t.Cleanup(func() { attachcheck.Scrub(t, e.c, base, l2, l3) })
	sconf := statusConf(l2, l2Subnet)
	ta := newTally()
	var kills []string
	var all []statusSample
	var chk checked
	timeouts := callTimeouts.Load()
	for round := 1; round <= rounds; round++ {
		db := "nb"
		if round%2 == 1 {
			db = "sb"
		}
		pods := newPods(t, e, fmt.Sprintf("r%d-", round), size, pick)
		t0 := time.Now()
		sp := pollStatus(e.c.Nodes[0], sconf, t0)
		delay := 500*time.Millisecond + time.Duration(mrand.Int64N(int64(2500*time.Millisecond)))
		type faultResult struct {
			desc string
			err  error
		}
		faultDone := make(chan faultResult, 1)
		go func() {
			time.Sleep(delay)
			// A loaded machine may be between elections: wait for a leader.
			leader, err := e.c.WaitDBLeader(db, 30*time.Second)
			if err != nil {
				faultDone <- faultResult{"no " + db + " leader", err}
				return
			}
			killAt := time.Since(t0)
			if err := e.c.KillDBMember(db, leader); err != nil {
				faultDone <- faultResult{"kill " + db, err}
				return
			}
			killed := time.Now()
			newLeader, werr := e.c.WaitDBLeader(db, 30*time.Second)
			elected := time.Since(killed)
			time.Sleep(3*time.Second - time.Since(killed))
			serr := e.c.StartDBMember(db, leader)
			faultDone <- faultResult{fmt.Sprintf("%s leader m%d killed at +%s, new leader m%d after %s, restarted at +%s",
				strings.ToUpper(db), leader, killAt.Round(time.Millisecond), newLeader, elected.Round(time.Millisecond),
				time.Since(t0).Round(time.Millisecond)), errors.Join(werr, serr)}
		}()
		burst(ta, pods, t0)
		fault := <-faultDone
		ss := sp.Stop()
		all = append(all, ss...)
		kills = append(kills, fault.desc)
		t.Logf("round %d: %s; burst done at +%s; %s", round, fault.desc, time.Since(t0).Round(time.Millisecond), summarizeStatus(t, ss))
		if fault.err != nil {
			t.Errorf("round %d: fault injection: %s: %v", round, fault.desc, fault.err)
		}
		chk.add(checkAndClean(t, e, ta, base, pods, l2, l3))
		if n := callTimeouts.Load() - timeouts; n > 0 {
			// A daemon that lets calls run into the runtime's deadline is
			// hung: later rounds would only wait on it.
			ta.report(t)
			t.Fatalf("round %d: %d plugin call(s) ran into their %s deadline: a daemon is hung (goroutine dump in its log); stopping. %s; %s",
				round, n, addTimeout, ta, chk)
		}
	}
	ta.report(t)
	t.Logf("FAULT-SUMMARY TestFaultRaftLeaderKill: rounds %d, burst %d; kills [%s]; %s; %s; %s",
		rounds, size, strings.Join(kills, " | "), ta, chk, statusFigures(t, all, false))
}

// TestFaultDatabaseStopped: standalone NB and SB. For the NB, then the
// SB: a burst of ADDs; 0.5-2 s into it the whole database is stopped,
// and started again 5 s later. Same retry and accounting as above. STATUS
// on node 1 must answer within 1 s throughout, code 50 from when the
// daemon notices (recorded) until the database is back, and success again
// afterwards.
func TestFaultDatabaseStopped(t *testing.T) {
	size := faultBurst()
	if os.Getenv("E2E_FAULT_BURST") == "" && os.Getenv("E2E_FAULT_ROUNDS") == "" {
		size = size / 2 // two bursts; keep the default run short
	}
	e := startEnv(t, false)
	base := attachcheck.TakeBaseline(t, e.c)
	l2, l3, pick := twoNetworks("stop")
	t.Cleanup(func() { attachcheck.Scrub(t, e.c, base, l2, l3) })
	sconf := statusConf(l2, l2Subnet)
	ta := newTally()
	var figures []string
	var all []statusSample
	var chk checked
	for _, db := range []string{"nb", "sb"} {
		pods := newPods(t, e, db+"-", size, pick)
		t0 := time.Now()
		sp := pollStatus(e.c.Nodes[0], sconf, t0)
		delay := 500*time.Millisecond + time.Duration(mrand.Int64N(int64(1500*time.Millisecond)))
		var stopAt, startAt, startedAt time.Duration
		var stopErr, startErr error
		faultDone := make(chan struct{})
		go func() {
			defer close(faultDone)
			time.Sleep(delay)
			stopAt = time.Since(t0)
			stopErr = e.c.StopDB(db)
			time.Sleep(5 * time.Second)
			startAt = time.Since(t0)
			startErr = e.c.StartDB(db)
			startedAt = time.Since(t0)
		}()
		burst(ta, pods, t0)
		<-faultDone
		// Keep polling until STATUS shows the recovery (or 30 s).
		recoverBy := time.Now().Add(30 * time.Second)
	wait:
		for time.Now().Before(recoverBy) {
			for _, s := range sp.Samples() {
				if s.at >= startedAt && s.code == 0 {
					break wait
				}
			}
			time.Sleep(100 * time.Millisecond)
		}
		ss := sp.Stop()
		all = append(all, ss...)
		if stopErr != nil || startErr != nil {
			t.Fatalf("%s: StopDB: %v, StartDB: %v", db, stopErr, startErr)
		}
		// When did the daemon notice, and when did it recover?
		noticed, recovered := time.Duration(-1), time.Duration(-1)
		name := map[string]string{"nb": "Northbound", "sb": "Southbound"}[db]
		for _, s := range ss {
			if s.at < stopAt {
				continue
			}
			if noticed < 0 && s.code == codeNotAvailable {
				noticed = s.at + s.took - stopAt
				// status.go's reason for a lost connection; the SB's chassis
				// check timing out is a different reason.
				if want := "not connected to the OVN " + name + " database"; !strings.Contains(s.msg, want) {
					t.Errorf("%s stopped: first STATUS code 50 (+%s) does not say %q: %q", db, s.at.Round(time.Millisecond), want, s.msg)
				}
			}
			if noticed >= 0 && s.at < startAt && s.code != codeNotAvailable {
				t.Errorf("%s stopped: STATUS at +%s (after the daemon noticed at +%s) answered code %d, want 50: %s", db, s.at.Round(time.Millisecond), (stopAt + noticed).Round(time.Millisecond), s.code, s.msg)
			}
			if s.at >= startedAt && s.code == 0 && recovered < 0 {
				recovered = s.at + s.took - startedAt
			}
		}
		if noticed < 0 || noticed > startAt-stopAt {
			t.Errorf("%s stopped for 5 s: STATUS never answered code 50 during the outage", db)
		}
		if recovered < 0 {
			t.Errorf("%s started again at +%s: STATUS not back to success within 30 s", db, startedAt.Round(time.Millisecond))
		}
		fig := fmt.Sprintf("%s stopped at +%s, started at +%s (serving at +%s); STATUS code 50 %s after the stop, success %s after the start; %s",
			strings.ToUpper(db), stopAt.Round(time.Millisecond), startAt.Round(time.Millisecond), startedAt.Round(time.Millisecond),
			noticed.Round(time.Millisecond), recovered.Round(time.Millisecond), summarizeStatus(t, ss))
		figures = append(figures, fig)
		t.Log(fig)
		chk.add(checkAndClean(t, e, ta, base, pods, l2, l3))
	}
	ta.report(t)
	t.Logf("FAULT-SUMMARY TestFaultDatabaseStopped: burst %d per database; %s; %s; %s; %s",
		size, ta, chk, strings.Join(figures, " | "), statusFigures(t, all, false))
}

// TestFaultDaemonStartedBeforeNB: standalone. The NB is stopped and node
// 1's daemon killed and started again while it is down: it must listen at
// once, answer STATUS code 50 naming the Northbound database within 1 s,
// fail an ADD with code 11 (or succeed, if it only waited for the NB), and
// serve once the NB is back, without being restarted.
func TestFaultDaemonStartedBeforeNB(t *testing.T) {
	e := startEnv(t, false)
	n := e.c.Nodes[0]
	base := attachcheck.TakeBaseline(t, e.c)
	network := "early-" + randomID()[:4]
	conf := netConf(network, "layer2", l2Subnet)
	sconf := statusConf(network, l2Subnet)
	t.Cleanup(func() { attachcheck.Scrub(t, e.c, base, network) })

	if err := e.c.StopDB("nb"); err != nil {
		t.Fatal(err)
	}
	e.daemons[n.Name].Kill()
	t0 := time.Now()
	d, err := n.StartDaemonNoWait(daemonBin, "-v")
	if err != nil {
		t.Fatal(err)
	}
	e.daemons[n.Name] = d
	for {
		if _, err := os.Stat(n.DaemonSocket()); err == nil {
			break
		}
		if d.Exited() {
			t.Fatalf("daemon started without an NB exited: %v\n%s", d.Wait(), d.LogTail(2000))
		}
		if time.Since(t0) > 20*time.Second {
			t.Fatalf("daemon socket %s never appeared with the NB down", n.DaemonSocket())
		}
		time.Sleep(10 * time.Millisecond)
	}
	listening := time.Since(t0)
	var sfig []string
	for i := 0; i < 5; i++ {
		took, code, msg := status(n, sconf)
		sfig = append(sfig, fmt.Sprintf("%d/%s", code, took.Round(time.Millisecond)))
		if took >= statusLimit {
			t.Errorf("STATUS with the NB down took %s (limit %s)", took, statusLimit)
		}
		if code != codeNotAvailable || !strings.Contains(msg, "Northbound") {
			t.Errorf("STATUS with the NB down: code %d %q, want 50 naming the Northbound database", code, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
	_, _, msg := status(n, sconf)

	// An ADD while the NB is still down.
	p, err := n.NewPod("early-" + randomID()[:4])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Delete() })
	pod := &fpod{pod: p, node: n, network: network, conf: conf, cid: randomID() + randomID()}
	_, took, err := cniCall(addTimeout, n, "ADD", pod.cid, p.NetnsPath, "net1", p.Name, conf)
	downCode := codeOf(err)
	if downCode != codeTryAgain {
		t.Errorf("ADD with the NB down: %v after %s, want code 11", err, took.Round(time.Millisecond))
	}
	if err == nil {
		t.Errorf("ADD succeeded with the NB down")
		pod.ok = true
	}
	downFig := fmt.Sprintf("ADD with NB down: code %d after %s (%.160v)", downCode, took.Round(time.Millisecond), err)

	startAt := time.Now()
	if err := e.c.StartDB("nb"); err != nil {
		t.Fatal(err)
	}
	ta := newTally()
	if !pod.ok {
		// The runtime tears the failed sandbox down (a DEL with the NB down
		// would only wait out --ready-timeout too) and makes a new one.
		ta.retried.Add(1)
		ta.fail(downCode, err, pod, 0)
		for {
			if _, _, err := cniCall(addTimeout, n, "DEL", pod.cid, p.NetnsPath, "net1", p.Name, conf); err == nil {
				break
			} else if time.Since(startAt) > retryFor {
				t.Fatalf("DEL of the failed ADD never succeeded: %v", err)
			}
			ta.delFailures.Add(1)
			time.Sleep(retryPause)
		}
		pod.cid = randomID() + randomID()
	}
	before := ta.firstTry.Load()
	attach(ta, pod, startAt)
	if !pod.ok || downCode != 0 {
		ta.firstTry.Add(before - ta.firstTry.Load()) // its first try was the failed one
	}
	served := time.Since(startAt)
	if !pod.ok {
		t.Errorf("ADD never succeeded after the NB came back: %s", ta)
	}
	if d.Exited() {
		t.Errorf("the daemon exited: %v", d.Wait())
	}
	var upCode uint = 1
	var upAfter time.Duration
	for time.Since(startAt) < 30*time.Second {
		_, upCode, _ = status(n, sconf)
		if upCode == 0 {
			upAfter = time.Since(startAt)
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if upCode != 0 {
		t.Errorf("STATUS not back to success 30 s after the NB came back")
	}
	// The other node's daemon, up all along, serves too.
	other := &fpod{node: e.c.Nodes[1], network: network, conf: conf, cid: randomID() + randomID()}
	if op, err := other.node.NewPod("early-o-" + randomID()[:4]); err != nil {
		t.Fatal(err)
	} else {
		other.pod = op
		t.Cleanup(func() { _ = op.Delete() })
	}
	attach(ta, other, startAt)
	if !other.ok {
		t.Errorf("node 2: ADD never succeeded after the NB came back")
	}
	pods := []*fpod{pod, other}
	chk := checkAndClean(t, e, ta, base, pods, network)
	ta.report(t)
	t.Logf("FAULT-SUMMARY TestFaultDaemonStartedBeforeNB: daemon listening %s after start with NB down; STATUS [%s] %q; %s; NB back: node-1 ADD succeeded %s after StartDB (same daemon pid %d, exited %v), STATUS success after %s; %s; %s",
		listening.Round(time.Millisecond), strings.Join(sfig, " "), msg, downFig, served.Round(time.Millisecond), d.Pid(), d.Exited(), upAfter.Round(time.Millisecond), ta, chk)
}

// TestFaultNodeRestartsMidBurst: standalone. A burst of ADDs over both
// nodes; 0.5-2 s into it ovn-controller is restarted on node 1 and
// ovs-vswitchd on node 2. Every ADD eventually succeeds (codes recorded),
// links are up, two pods on different nodes ping each other, and nothing
// is left after the DELs.
func TestFaultNodeRestartsMidBurst(t *testing.T) {
	size := faultBurst()
	e := startEnv(t, false)
	base := attachcheck.TakeBaseline(t, e.c)
	network := "noderst-" + randomID()[:4]
	conf := netConf(network, "layer2", l2Subnet)
	t.Cleanup(func() { attachcheck.Scrub(t, e.c, base, network) })
	pods := newPods(t, e, "nr-", size, func(int) (string, []byte) { return network, conf })
	ta := newTally()
	t0 := time.Now()
	sp := pollStatus(e.c.Nodes[0], statusConf(network, l2Subnet), t0)
	delay := 500*time.Millisecond + time.Duration(mrand.Int64N(int64(1500*time.Millisecond)))
	type restart struct {
		what     string
		at, took time.Duration
		err      error
	}
	restarts := make(chan restart, 2)
	for _, r := range []struct {
		what string
		do   func() error
	}{
		{e.c.Nodes[0].Name + " ovn-controller", e.c.Nodes[0].RestartOVNController},
		{e.c.Nodes[1].Name + " ovs-vswitchd", e.c.Nodes[1].RestartVSwitchd},
	} {
		go func() {
			time.Sleep(delay)
			at := time.Now()
			err := r.do()
			restarts <- restart{r.what, at.Sub(t0), time.Since(at), err}
		}()
	}
	burst(ta, pods, t0)
	var figs []string
	for range 2 {
		r := <-restarts
		if r.err != nil {
			t.Errorf("restart %s: %v", r.what, r.err)
		}
		figs = append(figs, fmt.Sprintf("%s restarted at +%s in %s", r.what, r.at.Round(time.Millisecond), r.took.Round(time.Millisecond)))
	}
	ss := sp.Stop()
	// One pod per node: ping both ways.
	var a, b *fpod
	for _, p := range pods {
		if p.ok && p.node == e.c.Nodes[0] && a == nil {
			a = p
		}
		if p.ok && p.node == e.c.Nodes[1] && b == nil {
			b = p
		}
	}
	pingFig := "no pod pair to ping"
	if a != nil && b != nil {
		tookAB, errAB := pingEventually(a.pod, b.addr.Addr(), 30*time.Second)
		tookBA, errBA := pingEventually(b.pod, a.addr.Addr(), 30*time.Second)
		if errAB != nil || errBA != nil {
			t.Errorf("pods %s (%s, %s) and %s (%s, %s) do not ping each other: %v / %v", a.pod.Name, a.node.Name, a.addr, b.pod.Name, b.node.Name, b.addr, errAB, errBA)
		}
		pingFig = fmt.Sprintf("ping %s->%s ok after %s, back after %s", a.addr.Addr(), b.addr.Addr(), tookAB.Round(time.Millisecond), tookBA.Round(time.Millisecond))
	} else {
		t.Errorf("no attached pod on each node to ping")
	}
	chk := checkAndClean(t, e, ta, base, pods, network)
	ta.report(t)
	t.Logf("FAULT-SUMMARY TestFaultNodeRestartsMidBurst: burst %d; %s; %s; %s; %s; %s",
		size, strings.Join(figs, "; "), ta, pingFig, chk, summarizeStatus(t, ss))
}

// TestFaultNodeOVSDatabaseStopped: STATUS answers code 50 within 1 s,
// naming the local Open_vSwitch database, while the node's ovsdb-server
// is down, and ready again once it is back.
func TestFaultNodeOVSDatabaseStopped(t *testing.T) {
	e := startEnv(t, false)
	n := e.c.Nodes[0]
	conf := statusConf("ovsdown-"+randomID()[:4], "10.83.0.0/24")
	// The daemon serves its socket at once and answers STATUS with code
	// 50 ("starting") until it has connected: wait for it to be ready.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		took, code, msg := status(n, conf)
		if code == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("STATUS before the outage: code %d %q after %s", code, msg, took)
		}
	}
	n.StopOVSDB()
	var noticed time.Duration
	stopped := time.Now()
	for {
		took, code, msg := status(n, conf)
		if took > time.Second {
			t.Fatalf("STATUS took %s during the OVS outage", took)
		}
		if code == 50 && strings.Contains(msg, "Open_vSwitch") {
			noticed = time.Since(stopped)
			break
		}
		if time.Since(stopped) > 5*time.Second {
			t.Fatalf("STATUS during the OVS outage: code %d %q, want 50 naming the Open_vSwitch database", code, msg)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := n.StartOVSDB(); err != nil {
		t.Fatal(err)
	}
	started := time.Now()
	for {
		took, code, msg := status(n, conf)
		if code == 0 {
			t.Logf("FAULT-SUMMARY TestFaultNodeOVSDatabaseStopped: STATUS code 50 naming Open_vSwitch %s after the stop; ready %s after the restart (last answer %s)",
				noticed.Round(time.Millisecond), time.Since(started).Round(time.Millisecond), took.Round(time.Millisecond))
			return
		}
		if time.Since(started) > 30*time.Second {
			t.Fatalf("STATUS after the OVS restart: code %d %q", code, msg)
		}
		time.Sleep(200 * time.Millisecond)
	}
}
