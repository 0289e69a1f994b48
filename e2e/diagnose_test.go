package e2e

import (
	"encoding/json"
	"errors"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/diagnose"
)

// diagAtt is the attachment a TestDiagnose case breaks.
type diagAtt struct {
	pod     *testPod
	port    string // its logical switch port
	iface   string // its OVS interface (and host veth)
	addOut  []byte
	network string
}

// runDiagnose runs ovn-overlayctl diagnose for the attachment on its node,
// as an operator would, and returns the exit status and output.
func runDiagnose(t *testing.T, a *diagAtt, args ...string) (int, []byte) {
	t.Helper()
	argv := append([]string{"diagnose", "--socket", a.pod.Node.DaemonSocket(),
		"--pod", "default/" + a.pod.Name, "--net", "default/" + a.network + "@net1"}, args...)
	out, err := exec.Command(ctlBin, argv...).Output()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		return exit.ExitCode(), out
	case err != nil:
		t.Fatalf("ovn-overlayctl %q: %v", argv, err)
	}
	return 0, out
}

func diagnoseJSON(t *testing.T, a *diagAtt) (int, *diagnose.Report) {
	t.Helper()
	code, out := runDiagnose(t, a, "-o", "json")
	var r diagnose.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("diagnose -o json printed %q (exit %d): %v", out, code, err)
	}
	return code, &r
}

// TestDiagnose breaks one attachment in each way the issue lists and checks
// that `ovn-overlayctl diagnose` names the broken place, what is wrong and
// the fix, that a healthy attachment is reported healthy, and that CNI
// CHECK fails where it must (the missing flows among them).
func TestDiagnose(t *testing.T) {
	network := "diag-" + randomID()[:4]
	const subnets = "10.150.0.0/16/24"
	conf := layer3Config(network, subnets)
	n := node(t, 0)
	tests := []struct {
		name    string
		breakIt func(t *testing.T, a *diagAtt)
		place   diagnose.Place
		what    string // fragment of the place's first problem
		fix     string // fragment of its fix ({mtu}: the MTU the daemon expects)
		check   string // fragment of CHECK's error
	}{
		{name: "healthy"},
		{name: "logical port deleted", breakIt: func(t *testing.T, a *diagAtt) {
			nbctl(t, "lsp-del", a.port)
		}, place: diagnose.PlaceLogicalPort, what: "missing from the NB", fix: "delete the pod", check: "has no logical switch port"},
		{name: "port security changed", breakIt: func(t *testing.T, a *diagAtt) {
			mac := strings.Fields(nbPortColumn(t, a.port, "addresses"))[0]
			nbctl(t, "lsp-set-port-security", a.port, mac+" 10.150.0.250")
		}, place: diagnose.PlaceLogicalPort, what: "port security is", fix: "ovn-nbctl lsp-set-port-security", check: "port security"},
		{name: "OVS interface removed", breakIt: func(t *testing.T, a *diagAtt) {
			if _, err := a.pod.Node.Run("ovs-vsctl", "--db="+a.pod.Node.OVS, "del-port", "br-int", a.iface); err != nil {
				t.Fatal(err)
			}
		}, place: diagnose.PlaceInterface, what: "is missing from br-int", fix: "delete the pod", check: "missing from bridge br-int"},
		{name: "flows gone: ovn-controller stopped, ovs-vswitchd restarted", breakIt: func(t *testing.T, a *diagAtt) {
			node := a.pod.Node
			node.KillOVNController()
			t.Cleanup(func() {
				if err := node.StartOVNController(); err != nil {
					t.Errorf("restart ovn-controller: %v", err)
				}
				if err := node.WaitOVNControllerConnected(time.Minute); err != nil {
					t.Errorf("ovn-controller back: %v", err)
				}
			})
			if err := node.RestartVSwitchd(); err != nil {
				t.Fatal(err)
			}
		}, place: diagnose.PlaceOpenFlow, what: "no flow matches in_port=", fix: "ovn-controller", check: "ovn-controller has no flows on br-int"},
		{name: "pod link down", breakIt: func(t *testing.T, a *diagAtt) {
			mustRun(t, a.pod, "ip", "link", "set", "net1", "down")
		}, place: diagnose.PlacePod, what: `pod link "net1" is down`, fix: "ip link set dev net1 up", check: `pod link "net1" is down`},
		{name: "route deleted", breakIt: func(t *testing.T, a *diagAtt) {
			mustRun(t, a.pod, "ip", "route", "del", "10.150.0.0/16", "dev", "net1")
		}, place: diagnose.PlacePod, what: "missing route 10.150.0.0/16 via", fix: "ip route add 10.150.0.0/16 via", check: "missing route 10.150.0.0/16"},
		{name: "wrong MTU", breakIt: func(t *testing.T, a *diagAtt) {
			mustRun(t, a.pod, "ip", "link", "set", "net1", "mtu", "1280")
		}, place: diagnose.PlacePod, what: `pod link "net1" has MTU 1280`, fix: "ip link set dev net1 mtu {mtu}", check: "has MTU 1280"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := newPod(t, n, "diag")
			addOut, err := invoke(t, p, "ADD", "net1", conf)
			if err != nil {
				t.Fatalf("ADD: %v", err)
			}
			t.Cleanup(func() {
				if _, err := invoke(t, p, "DEL", "net1", conf); err != nil {
					t.Errorf("DEL of the broken attachment: %v", err)
				}
			})
			att := &diagAtt{pod: p, addOut: addOut, network: network}
			key := attKey{ContainerID: p.containerID, IfName: "net1"}
			ports, err := attachmentLSPs(network, key)
			if err != nil || len(ports) != 1 {
				t.Fatalf("logical ports of the attachment: %v %v", ports, err)
			}
			ifaces, err := attachmentIfaces(n, network, key)
			if err != nil || len(ifaces) != 1 {
				t.Fatalf("OVS interfaces of the attachment: %v %v", ifaces, err)
			}
			att.port, att.iface = ports[0].Name, ifaces[0]
			check := func() error {
				_, err := invoke(t, p, "CHECK", "net1", checkConf(network, subnets, addOut, map[string]any{"topology": "layer3"}))
				return err
			}

			// Healthy first: every case starts from a working attachment.
			code, r := diagnoseJSON(t, att)
			if code != 0 || !r.Healthy || len(r.Problems) > 0 {
				t.Fatalf("fresh attachment: exit %d, broken places %v: %+v", code, r.Problems, r)
			}
			if err := check(); err != nil {
				t.Fatalf("CHECK of the fresh attachment: %v", err)
			}
			if tc.breakIt == nil {
				assertHealthyReport(t, att, r)
				return
			}

			tc.breakIt(t, att)
			code, r = diagnoseJSON(t, att)
			if code != 3 || r.Healthy || !slices.Contains(r.Problems, tc.place) {
				t.Fatalf("exit %d, broken places %v, want %s among them (exit 3)", code, r.Problems, tc.place)
			}
			o := outcomeOf(r, tc.place)
			fix := strings.ReplaceAll(tc.fix, "{mtu}", strconv.Itoa(r.Expected.MTU))
			if len(o.Problems) == 0 || !strings.Contains(o.Problems[0].What, tc.what) || !strings.Contains(o.Problems[0].Fix, fix) {
				t.Fatalf("%s problems %+v: want the first to say %q with a fix containing %q", tc.place, o.Problems, tc.what, fix)
			}
			_, text := runDiagnose(t, att)
			if !strings.Contains(string(text), "[broken]") || !strings.Contains(string(text), "fix:   ") ||
				!strings.Contains(string(text), "verdict: BROKEN at "+string(r.Problems[0])) {
				t.Errorf("human output lacks the verdict or the fix:\n%s", text)
			}
			t.Logf("diagnose after %q:\n%s", tc.name, text)
			if err := check(); err == nil || !strings.Contains(err.Error(), tc.check) {
				t.Errorf("CHECK says %v, want an error containing %q", err, tc.check)
			}
		})
	}
}

func mustRun(t *testing.T, p *testPod, argv ...string) {
	t.Helper()
	if out, err := p.Run(argv...); err != nil {
		t.Fatalf("%q in pod %s: %v: %s", argv, p.Name, err, out)
	}
}

func outcomeOf(r *diagnose.Report, place diagnose.Place) diagnose.Outcome {
	switch place {
	case diagnose.PlaceLogicalPort:
		return r.LogicalPort.Outcome
	case diagnose.PlacePortBinding:
		return r.PortBinding.Outcome
	case diagnose.PlaceInterface:
		return r.Interface.Outcome
	case diagnose.PlaceOpenFlow:
		return r.OpenFlow.Outcome
	case diagnose.PlacePod:
		return r.Pod.Outcome
	}
	return r.Trace.Outcome
}

// assertHealthyReport checks that a healthy report says what is there:
// each place ok, the binding on this node, the port's flows counted, the
// pod's address and routes, and a trace to the network's gateway
// delivered.
func assertHealthyReport(t *testing.T, a *diagAtt, r *diagnose.Report) {
	t.Helper()
	for _, place := range []diagnose.Place{diagnose.PlaceLogicalPort, diagnose.PlacePortBinding, diagnose.PlaceInterface, diagnose.PlaceOpenFlow, diagnose.PlacePod} {
		if o := outcomeOf(r, place); o.Verdict != diagnose.OK {
			t.Errorf("%s: %s %+v, want ok", place, o.Verdict, o)
		}
	}
	if r.LogicalPort.Name != a.port || r.Interface.Name != a.iface || !r.PortBinding.ThisNode || r.PortBinding.Chassis != a.pod.Node.Name {
		t.Errorf("report names port %s, interface %s, chassis %s (this node %v); want %s, %s, %s",
			r.LogicalPort.Name, r.Interface.Name, r.PortBinding.Chassis, r.PortBinding.ThisNode, a.port, a.iface, a.pod.Node.Name)
	}
	if r.OpenFlow.IngressFlows == 0 || r.OpenFlow.OutputFlows == 0 || r.OpenFlow.PortFlows < r.OpenFlow.IngressFlows+r.OpenFlow.OutputFlows || len(r.OpenFlow.Tables) < 2 {
		t.Errorf("flows: %+v", r.OpenFlow)
	}
	if !r.Expected.ConfigKnown || r.Expected.MTU != r.Pod.Link.MTU || len(r.Expected.Routes) == 0 {
		t.Errorf("expected %+v, pod link MTU %d", r.Expected, r.Pod.Link.MTU)
	}
	if len(r.Pod.Addresses) == 0 || len(r.Pod.Rules) == 0 || !slices.ContainsFunc(r.Pod.Routes, func(rt diagnose.Route) bool { return rt.Dst == "10.150.0.0/16" }) {
		t.Errorf("pod side: %+v", r.Pod)
	}
	if r.Attachment.PodName != a.pod.Name || r.Attachment.NAD != "default/"+a.network {
		t.Errorf("attachment %+v", r.Attachment)
	}
	// A peer on the other node: ovn-trace must take the packet through
	// the network's router to the peer's own port.
	peer := newPod(t, node(t, 1), "diag-peer")
	peerRes := mustAdd(t, peer, "net1", layer3Config(a.network, "10.150.0.0/16/24"))
	peerAddr := podAddrs(t, peerRes)[0].Addr().String()
	peerPorts, err := attachmentLSPs(a.network, attKey{ContainerID: peer.containerID, IfName: "net1"})
	if err != nil || len(peerPorts) != 1 {
		t.Fatalf("peer's logical port: %v %v", peerPorts, err)
	}
	code, text := runDiagnose(t, a, "--peer", peerAddr)
	if code != 0 || !strings.Contains(string(text), "[ok]       ovn-trace to "+peerAddr) ||
		!strings.Contains(string(text), `output("`+peerPorts[0].Name+`")`) {
		t.Errorf("diagnose --peer %s: exit %d, want the trace delivered to %s\n%s", peerAddr, code, peerPorts[0].Name, text)
	}
	t.Logf("healthy attachment:\n%s", text)
}

// TestCheckAcrossOVNControllerRestart: an ovn-controller that dies and
// starts again (OVN 25.03.0 aborts under churn; an upgrade restarts it)
// replaces br-int's flows with what it has recomputed, and a port added
// just before may lack its flows for a moment; CHECK right after waits for
// them instead of reporting the gap as a fault.
func TestCheckAcrossOVNControllerRestart(t *testing.T) {
	network := "diag-rst-" + randomID()[:4]
	const subnets = "10.151.0.0/24"
	conf := layer2Config(network, subnets, nil)
	n := node(t, 0)
	t.Cleanup(func() {
		if err := n.WaitOVNControllerConnected(time.Minute); err != nil {
			t.Errorf("ovn-controller back: %v", err)
		}
	})
	for round := range 5 {
		p := newPod(t, n, "diag-rst")
		addOut, err := invoke(t, p, "ADD", "net1", conf)
		if err != nil {
			t.Fatalf("ADD: %v", err)
		}
		t.Cleanup(func() { _, _ = invoke(t, p, "DEL", "net1", conf) })
		n.KillOVNController()
		if err := n.StartOVNController(); err != nil {
			t.Fatal(err)
		}
		// Through the new ovn-controller's first recompute and flow
		// replacement, which come a few hundred ms after its start.
		start := time.Now()
		for time.Since(start) < 1500*time.Millisecond {
			if _, err := invokeQuiet(p, "CHECK", "net1", checkConf(network, subnets, addOut, nil)); err != nil {
				t.Fatalf("round %d: CHECK %s after ovn-controller restarted: %v", round, time.Since(start).Round(time.Millisecond), err)
			}
		}
	}
}
