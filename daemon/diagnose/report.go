// Package diagnose describes one attachment end to end, in the order a
// packet from the pod meets each place: the NB logical switch port, its SB
// port binding, the OVS interface, the OpenFlow flows ovn-controller
// installed for it, the pod's own interface, and optionally an ovn-trace
// towards a peer. The daemon gathers the facts (daemon/diagnose.go); this
// package judges them (judge.go) and prints them (render.go), so the
// operator's tool and the daemon agree on one report format, whose JSON
// form docs/diagnose.md documents.
package diagnose

// SchemaVersion is the JSON report's version; it changes only when a field
// is removed or changes meaning (added fields do not change it).
const SchemaVersion = 1

// Verdict is one place's state.
type Verdict string

const (
	// OK: the place is as the attachment needs it.
	OK Verdict = "ok"
	// Broken: the attachment cannot pass traffic because of this place.
	Broken Verdict = "broken"
	// Warning: traffic may pass, but something is off (a counter, a
	// state another component should have updated).
	Warning Verdict = "warning"
	// Skipped: the place could not be looked at; Note says why.
	Skipped Verdict = "skipped"
)

// Problem is one thing wrong with a place, with its likely cause and what
// the operator does about it.
type Problem struct {
	What  string `json:"what"`
	Cause string `json:"cause,omitempty"`
	Fix   string `json:"fix,omitempty"`
}

// Outcome is the judgement every place carries.
type Outcome struct {
	Verdict  Verdict   `json:"verdict"`
	Problems []Problem `json:"problems,omitempty"`
	// Note says why a place was skipped, or adds context to a verdict.
	Note string `json:"note,omitempty"`
}

// Identity names the attachment: the CNI identity (network, container ID,
// interface) and who it is for.
type Identity struct {
	Node         string `json:"node"`
	Network      string `json:"network"`
	ContainerID  string `json:"containerID"`
	IfName       string `json:"ifName"`
	PodNamespace string `json:"podNamespace,omitempty"`
	PodName      string `json:"podName,omitempty"`
	NAD          string `json:"nad,omitempty"`
}

// Report is the whole diagnosis. Healthy is true when no place is broken.
type Report struct {
	SchemaVersion int          `json:"schemaVersion"`
	Attachment    Identity     `json:"attachment"`
	Healthy       bool         `json:"healthy"`
	LogicalPort   LogicalPort  `json:"logicalPort"`
	PortBinding   PortBinding  `json:"portBinding"`
	Interface     Interface    `json:"ovsInterface"`
	OpenFlow      OpenFlow     `json:"openFlow"`
	Pod           Pod          `json:"pod"`
	Trace         *Trace       `json:"trace,omitempty"`
	Problems      []Place      `json:"brokenPlaces,omitempty"`
	Expected      Expectations `json:"expected"`
}

// Place names a section of the report (in JSON, the brokenPlaces list).
type Place string

const (
	PlaceLogicalPort Place = "logicalPort"
	PlacePortBinding Place = "portBinding"
	PlaceInterface   Place = "ovsInterface"
	PlaceOpenFlow    Place = "openFlow"
	PlacePod         Place = "pod"
	PlaceTrace       Place = "trace"
)

// Expectations are what the daemon expects of the attachment beyond what
// the rows themselves record: they make a verdict checkable by the reader.
type Expectations struct {
	// Chassis is this node's chassis name (the SB binding must be ours).
	Chassis string `json:"chassis"`
	// MTU the pod interface should have; 0 when unknown (the daemon has
	// not seen the network's config since it started).
	MTU int `json:"mtu,omitempty"`
	// Routes the pod should have through the interface ("dst via gw");
	// nil when unknown, as MTU.
	Routes []string `json:"routes,omitempty"`
	// ConfigKnown tells whether MTU and Routes were checked.
	ConfigKnown bool `json:"configKnown"`
}

// LogicalPort is the NB Logical_Switch_Port serving the attachment.
type LogicalPort struct {
	Outcome
	Found        bool     `json:"found"`
	Name         string   `json:"name,omitempty"`
	Switch       string   `json:"switch,omitempty"`
	Addresses    []string `json:"addresses,omitempty"`
	PortSecurity []string `json:"portSecurity,omitempty"`
	// Enabled is the enabled column (nil: unset, which OVN takes as true).
	Enabled *bool `json:"enabled,omitempty"`
	// Up is set by ovn-northd from the SB binding's up.
	Up *bool `json:"up,omitempty"`
	// Owner and Node are the ownership marks ovn-overlay relies on: it
	// never touches a row without them.
	Owner string `json:"owner,omitempty"`
	Node  string `json:"node,omitempty"`
	// RecordedAddresses are the addresses with prefix lengths ADD gave
	// the pod (external_ids), from which addresses and port security are
	// derived.
	RecordedAddresses []string `json:"recordedAddresses,omitempty"`
	// MigrationSource: this port is a live-migration target, disabled
	// until the hand-over.
	MigrationSource string `json:"migrationSource,omitempty"`
	// ExpectedName is the port the OVS interface is bound to (iface-id),
	// when the port itself is missing.
	ExpectedName string `json:"expectedName,omitempty"`
}

// PortBinding is the SB Port_Binding of the logical port.
type PortBinding struct {
	Outcome
	Found       bool   `json:"found"`
	Chassis     string `json:"chassis,omitempty"`
	ThisNode    bool   `json:"thisNode"`
	Up          *bool  `json:"up,omitempty"`
	TunnelKey   int    `json:"tunnelKey,omitempty"`
	DatapathKey int    `json:"datapathKey,omitempty"`
}

// Interface is the attachment's OVS Interface on the integration bridge.
type Interface struct {
	Outcome
	Found        bool   `json:"found"`
	Name         string `json:"name,omitempty"`
	Bridge       string `json:"bridge,omitempty"`
	Ofport       int    `json:"ofport,omitempty"`
	IfaceID      string `json:"ifaceID,omitempty"`
	OVNInstalled bool   `json:"ovnInstalled"`
	Error        string `json:"error,omitempty"`
}

// OpenFlow is what ovn-controller installed on the bridge for the port.
type OpenFlow struct {
	Outcome
	// Socket is the bridge's OpenFlow management socket.
	Socket string `json:"socket,omitempty"`
	// IngressFlows match in_port=<ofport>: the classification of the
	// pod's packets into the logical pipeline (table 0).
	IngressFlows int `json:"ingressFlows"`
	// IngressPackets are the packets those flows matched: packets from
	// the pod reach OVN's pipeline when this grows.
	IngressPackets uint64 `json:"ingressPackets"`
	// OutputFlows output to the port: how packets reach the pod.
	OutputFlows int `json:"outputFlows"`
	// PortFlows are all flows that match the port's logical keys (inport
	// or outport), its MAC on its datapath, its ofport, or output to it.
	PortFlows int `json:"portFlows"`
	// Tables counts PortFlows per OpenFlow table.
	Tables []TableCount `json:"tables,omitempty"`
	// Ingress is the ingress flow as ovs-ofctl prints it (through
	// go-openvswitch), for the actions; empty when ovs-ofctl is missing.
	Ingress []string `json:"ingress,omitempty"`
	// Port are the bridge's counters for the port (ovs-ofctl dump-ports).
	Port *PortCounters `json:"portCounters,omitempty"`
}

// TableCount is how many of the port's flows one table holds, and the
// packets they matched.
type TableCount struct {
	Table   int    `json:"table"`
	Flows   int    `json:"flows"`
	Packets uint64 `json:"packets"`
}

// PortCounters are the bridge's counters for the pod's port. RX is what
// the bridge received from the pod.
type PortCounters struct {
	RxPackets uint64 `json:"rxPackets"`
	TxPackets uint64 `json:"txPackets"`
	RxDropped uint64 `json:"rxDropped"`
	TxDropped uint64 `json:"txDropped"`
	RxErrors  uint64 `json:"rxErrors"`
	TxErrors  uint64 `json:"txErrors"`
}

// Pod is the pod side: the veth's two ends, addresses, routes, and the
// source-routing rules of the interface.
type Pod struct {
	Outcome
	Netns string `json:"netns,omitempty"`
	Link  Link   `json:"link"`
	Host  Link   `json:"hostLink"`
	// TxChecksumOffload must be off with the userspace datapath (nil:
	// not read).
	TxChecksumOffload *bool    `json:"txChecksumOffload,omitempty"`
	Addresses         []string `json:"addresses,omitempty"`
	Routes            []Route  `json:"routes,omitempty"`
	Rules             []Rule   `json:"rules,omitempty"`
	// Drifts are the differences from what ADD made, by kind (netns
	// package): judge.go turns each into a Problem.
	Drifts []Drift `json:"drifts,omitempty"`
}

// Link is one end of the veth.
type Link struct {
	Name      string `json:"name"`
	Exists    bool   `json:"exists"`
	AdminUp   bool   `json:"adminUp"`
	OperState string `json:"operState,omitempty"`
	MTU       int    `json:"mtu,omitempty"`
	MAC       string `json:"mac,omitempty"`
}

// Route is a route through the pod interface; Table 254 is main.
type Route struct {
	Table int    `json:"table"`
	Dst   string `json:"dst"`
	Via   string `json:"via,omitempty"`
}

// Rule is a source-routing rule steering the interface's addresses to its
// table.
type Rule struct {
	Priority int    `json:"priority"`
	From     string `json:"from"`
	Table    int    `json:"table"`
}

// Drift is one difference between the pod side and what ADD made.
type Drift struct {
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Trace is ovn-trace's verdict on a packet from the port to a peer.
type Trace struct {
	Outcome
	Peer    string `json:"peer"`
	Command string `json:"command"`
	Output  string `json:"output"`
	// Delivered is true when the trace ends in an output to a port.
	Delivered bool `json:"delivered"`
}
