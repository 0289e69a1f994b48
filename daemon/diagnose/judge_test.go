package diagnose

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func ptr[T any](v T) *T { return &v }

// healthy is a report of a working attachment, as the daemon gathers it.
func healthy() *Report {
	entry := "0a:58:0a:80:00:05 10.128.0.5"
	return &Report{
		Attachment: Identity{Node: "node1", Network: "l2", ContainerID: "c1", IfName: "net1"},
		Expected:   Expectations{Chassis: "node1", MTU: 1400, ConfigKnown: true},
		LogicalPort: LogicalPort{Found: true, Name: "ovn-overlay.l2.x", Addresses: []string{entry}, PortSecurity: []string{entry},
			Up: ptr(true), Owner: "ovn-overlay", Node: "node1", RecordedAddresses: []string{"10.128.0.5/24"}},
		PortBinding: PortBinding{Found: true, Chassis: "node1", Up: ptr(true), TunnelKey: 3, DatapathKey: 2},
		Interface:   Interface{Found: true, Name: "ovabc", Bridge: "br-int", Ofport: 7, IfaceID: "ovn-overlay.l2.x", OVNInstalled: true},
		OpenFlow:    OpenFlow{IngressFlows: 1, OutputFlows: 1, PortFlows: 12},
		Pod:         Pod{Netns: "/var/run/netns/p", Link: Link{Name: "net1", Exists: true, AdminUp: true, MTU: 1400, MAC: "0a:58:0a:80:00:05"}},
	}
}

// TestJudge breaks one place at a time and checks that exactly that place
// is named broken (or warned about), with a problem that says what and a
// fix that names the command or the action.
func TestJudge(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(r *Report)
		broken  []Place
		warned  Place
		what    string // fragment of the first problem of the first broken (or warned) place
		fix     string // fragment of its fix
	}{
		{name: "healthy", breakIt: func(*Report) {}},
		{name: "logical port deleted", breakIt: func(r *Report) {
			r.LogicalPort = LogicalPort{ExpectedName: "ovn-overlay.l2.x"}
			r.PortBinding = PortBinding{}
		}, broken: []Place{PlaceLogicalPort, PlacePortBinding}, what: "ovn-overlay.l2.x (the OVS interface's iface-id) is missing from the NB", fix: "delete the pod"},
		{name: "port security changed", breakIt: func(r *Report) {
			r.LogicalPort.PortSecurity = []string{"0a:58:0a:80:00:05 10.128.0.99"}
		}, broken: []Place{PlaceLogicalPort}, what: "port security is", fix: `ovn-nbctl lsp-set-port-security ovn-overlay.l2.x "0a:58:0a:80:00:05 10.128.0.5"`},
		{name: "port security cleared", breakIt: func(r *Report) { r.LogicalPort.PortSecurity = nil },
			broken: []Place{PlaceLogicalPort}, what: "port security is empty", fix: "lsp-set-port-security"},
		{name: "addresses changed", breakIt: func(r *Report) { r.LogicalPort.Addresses = []string{"dynamic"} },
			broken: []Place{PlaceLogicalPort}, what: "addresses are", fix: "lsp-set-addresses"},
		{name: "disabled", breakIt: func(r *Report) { r.LogicalPort.Enabled = ptr(false) },
			broken: []Place{PlaceLogicalPort}, what: "is disabled", fix: "lsp-set-enabled"},
		{name: "migration target disabled is fine", breakIt: func(r *Report) {
			r.LogicalPort.Enabled, r.LogicalPort.Addresses, r.LogicalPort.MigrationSource = ptr(false), nil, "src"
		}},
		{name: "not up", breakIt: func(r *Report) { r.LogicalPort.Up = ptr(false) }, warned: PlaceLogicalPort, what: "is not up"},
		{name: "binding on another chassis", breakIt: func(r *Report) { r.PortBinding.Chassis = "node2" },
			broken: []Place{PlacePortBinding}, what: "claimed by chassis node2", fix: "remove that interface on node2"},
		{name: "binding unclaimed", breakIt: func(r *Report) { r.PortBinding.Chassis = "" },
			broken: []Place{PlacePortBinding}, what: "not claimed by any chassis", fix: "ovn-controller"},
		{name: "no binding", breakIt: func(r *Report) { r.PortBinding = PortBinding{} },
			broken: []Place{PlacePortBinding}, what: "no Port_Binding", fix: "ovn-northd"},
		{name: "interface removed", breakIt: func(r *Report) { r.Interface = Interface{Name: "ovabc", Bridge: "br-int"} },
			broken: []Place{PlaceInterface}, what: "ovabc is missing from br-int", fix: "delete the pod"},
		{name: "interface error", breakIt: func(r *Report) {
			r.Interface.Error, r.Interface.Ofport = "could not open network device ovabc (No such device)", -1
		},
			broken: []Place{PlaceInterface}, what: "No such device"},
		{name: "iface-id changed", breakIt: func(r *Report) { r.Interface.IfaceID = "other" },
			broken: []Place{PlaceInterface}, what: `iface-id "other"`, fix: "external_ids:iface-id=ovn-overlay.l2.x"},
		{name: "not ovn-installed", breakIt: func(r *Report) { r.Interface.OVNInstalled = false },
			broken: []Place{PlaceInterface}, what: "not ovn-installed", fix: "ovn-controller"},
		{name: "flows gone", breakIt: func(r *Report) { r.OpenFlow.IngressFlows, r.OpenFlow.OutputFlows, r.OpenFlow.PortFlows = 0, 0, 0 },
			broken: []Place{PlaceOpenFlow}, what: "no flow matches in_port=7", fix: "connection-status"},
		{name: "bridge unreachable stays skipped", breakIt: func(r *Report) {
			r.OpenFlow = OpenFlow{Outcome: Outcome{Verdict: Skipped, Note: "cannot ask"}}
		}},
		{name: "pod link down", breakIt: func(r *Report) {
			r.Pod.Link.AdminUp = false
			r.Pod.Drifts = []Drift{{Kind: "pod-link-down", Detail: `pod link "net1" is down`}}
		}, broken: []Place{PlacePod}, what: `pod link "net1" is down`, fix: "nsenter --net=/var/run/netns/p ip link set dev net1 up"},
		{name: "route deleted", breakIt: func(r *Report) {
			r.Pod.Drifts = []Drift{{Kind: "route", Detail: "pod netns is missing route 10.129.0.0/16 via 10.128.0.1"}}
		}, broken: []Place{PlacePod}, what: "missing route 10.129.0.0/16", fix: "ip route add 10.129.0.0/16 via 10.128.0.1 dev net1"},
		{name: "wrong MTU", breakIt: func(r *Report) {
			r.Pod.Drifts = []Drift{{Kind: "pod-mtu", Detail: `pod link "net1" has MTU 1300, want 1400`}}
		}, broken: []Place{PlacePod}, what: "has MTU 1300, want 1400", fix: "ip link set dev net1 mtu 1400"},
		{name: "unknown drift kind still reported", breakIt: func(r *Report) {
			r.Pod.Drifts = []Drift{{Kind: "new-kind", Detail: "something else"}}
		}, broken: []Place{PlacePod}, what: "something else"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := healthy()
			tc.breakIt(r)
			Judge(r)
			if !slices.Equal(r.Problems, tc.broken) {
				t.Fatalf("broken places %v, want %v", r.Problems, tc.broken)
			}
			if r.Healthy != (len(tc.broken) == 0) {
				t.Fatalf("healthy %v with broken places %v", r.Healthy, r.Problems)
			}
			place := tc.warned
			if len(tc.broken) > 0 {
				place = tc.broken[0]
			}
			if place == "" {
				for _, o := range outcomes(r) {
					if o.Verdict != OK && o.Verdict != Skipped {
						t.Fatalf("unexpected %s: %+v", o.Verdict, o.Problems)
					}
				}
				return
			}
			o := outcomes(r)[place]
			if len(o.Problems) == 0 {
				t.Fatalf("%s is %s without a problem", place, o.Verdict)
			}
			if p := o.Problems[0]; !strings.Contains(p.What, tc.what) || !strings.Contains(p.Fix, tc.fix) {
				t.Fatalf("%s: problem %+v, want what containing %q and fix containing %q", place, p, tc.what, tc.fix)
			}
			if tc.warned != "" && o.Verdict != Warning {
				t.Fatalf("%s is %s, want a warning", place, o.Verdict)
			}
		})
	}
}

func outcomes(r *Report) map[Place]Outcome {
	return map[Place]Outcome{PlaceLogicalPort: r.LogicalPort.Outcome, PlacePortBinding: r.PortBinding.Outcome,
		PlaceInterface: r.Interface.Outcome, PlaceOpenFlow: r.OpenFlow.Outcome, PlacePod: r.Pod.Outcome}
}

// TestRenderAndJSON: the human form names the broken place and its fix,
// and the JSON form round-trips.
func TestRenderAndJSON(t *testing.T) {
	r := healthy()
	r.Pod.Drifts = []Drift{{Kind: "pod-link-down", Detail: `pod link "net1" is down`}}
	Judge(r)
	var out bytes.Buffer
	if err := Render(&out, r); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"[ok]       NB logical switch port ovn-overlay.l2.x", "[broken]   pod interface net1", "fix:   nsenter", "verdict: BROKEN at pod"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	if back.Healthy || back.Pod.Verdict != Broken || back.SchemaVersion != SchemaVersion || !strings.Contains(string(raw), `"brokenPlaces":["pod"]`) {
		t.Fatalf("round trip: %s", raw)
	}
}

func TestQuery(t *testing.T) {
	tests := []struct {
		name    string
		q       Query
		wantErr string
	}{
		{name: "by identity", q: Query{Network: "n", ContainerID: "c", IfName: "net1"}},
		{name: "by pod", q: Query{PodNamespace: "ns", PodName: "p"}},
		{name: "by pod with peer", q: Query{PodNamespace: "ns", PodName: "p", NAD: "ns/n", IfName: "net1", Peer: netip.MustParseAddr("fd00::1")}},
		{name: "identity without interface", q: Query{Network: "n", ContainerID: "c"}, wantErr: "all three"},
		{name: "both", q: Query{Network: "n", ContainerID: "c", IfName: "i", PodNamespace: "ns", PodName: "p"}, wantErr: "not both"},
		{name: "nothing", q: Query{}, wantErr: "name the attachment"},
		{name: "pod without namespace", q: Query{PodName: "p"}, wantErr: "namespace"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := QueryFromValues(tc.q.Values())
			switch {
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr == "" && got != tc.q:
				t.Fatalf("round trip %+v, want %+v", got, tc.q)
			}
		})
	}
}

func TestParseSelection(t *testing.T) {
	tests := []struct{ element, nad, ifName, wantErr string }{
		{element: "l2", nad: "pods/l2"},
		{element: "other/l2@net3", nad: "other/l2", ifName: "net3"},
		{element: "l2@net1", nad: "pods/l2", ifName: "net1"},
		{element: "@net1", wantErr: "names no network attachment definition"},
	}
	for _, tc := range tests {
		nad, ifName, err := ParseSelection(tc.element, "pods")
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want %q", tc.element, err, tc.wantErr)
			}
			continue
		}
		if err != nil || nad != tc.nad || ifName != tc.ifName {
			t.Errorf("%s: %q %q %v, want %q %q", tc.element, nad, ifName, err, tc.nad, tc.ifName)
		}
	}
}
