// Package netconf parses and validates a secondary network's CNI config
// (a NetworkAttachmentDefinition's spec.config) and the CNI_ARGS a runtime
// or Multus passes. It is pure: no I/O, so every rule is unit-tested.
//
// Every rejection is a *FieldError that names the field, the bad value and
// the fix: the message ends up in a pod's events, read by someone who did not
// write this code.
package netconf

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Topology is a secondary network's shape.
type Topology string

const (
	// Layer2 is one cluster-wide logical switch.
	Layer2 Topology = "layer2"
	// Layer3 is a logical switch per node joined by a router.
	Layer3 Topology = "layer3"
	// Localnet bridges to a physical network.
	Localnet Topology = "localnet"
)

// PluginType is the CNI type this project implements.
const PluginType = "ovn-k8s-cni-overlay"

// legacyPluginType is the type of the OVN secondary-networks enhancement's
// samples.
const legacyPluginType = "ovn-kubernetes"

// SupportedVersions are the CNI spec versions accepted in cniVersion: every
// version the CNI library can write a result in, as OVN-Kubernetes accepts
// (its e2e suite writes 0.3.0 into every NAD).
var SupportedVersions = []string{"0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"}

// implicitVersion is the version of a config without cniVersion. The CNI
// library's decoder, and so every plugin built on it (this one's shim
// included), reads a missing cniVersion as 0.1.0.
const implicitVersion = "0.1.0"

// reservedNames are network names OVN-Kubernetes keeps for its own cluster
// network; a secondary network with one of them would be taken for it by
// every tool that reads OVN-Kubernetes' pod annotations.
var reservedNames = []string{"default", "ovn-kubernetes"}

// Role values: a secondary network is the only kind this plugin attaches.
const (
	RoleSecondary = "secondary"
	rolePrimary   = "primary"
)

// Subnet is one entry of "subnets". HostPrefix is the per-node prefix
// length of the layer3 "cidr/hostPrefix" form, 0 for other topologies.
type Subnet struct {
	CIDR       netip.Prefix
	HostPrefix int
}

// RuntimeConfig is what the runtime passes for declared capabilities.
type RuntimeConfig struct {
	IPs []netip.Prefix
	MAC net.HardwareAddr
}

// NetConf is a validated network config.
type NetConf struct {
	CNIVersion     string
	Name           string
	Type           string
	Topology       Topology
	Subnets        []Subnet
	ExcludeSubnets []netip.Prefix
	MTU            int // 0: not set
	NADName        string
	// ReservedSubnets are never handed out dynamically; static requests
	// may use them.
	ReservedSubnets     []netip.Prefix
	AllowPersistentIPs  bool
	VLANID              int
	PhysicalNetworkName string
	// Role is "" or RoleSecondary.
	Role          string
	RuntimeConfig RuntimeConfig
	PrevResult    json.RawMessage
	// Legacy is set when the config used the enhancement's older form.
	Legacy bool
	// External is the network's external connectivity; nil: east/west
	// only (external.go).
	External *External
	// DHCP is OVN's native DHCP for the network's ports; nil: off
	// (dhcp.go).
	DHCP *DHCP
	// Notes say what was accepted but read differently from how it was
	// written, or ignored, and why: the NAD validator reports them as an
	// event so that nothing is ignored silently.
	Notes []string
}

// FieldError is a rejected config field.
type FieldError struct {
	Field   string
	Value   string
	Problem string
	Fix     string
}

func (e *FieldError) Error() string {
	var b strings.Builder
	if key, ok := strings.CutPrefix(e.Field, "CNI_ARGS "); ok {
		fmt.Fprintf(&b, "CNI_ARGS key %q", key)
	} else {
		fmt.Fprintf(&b, "network config field %q", e.Field)
	}
	if e.Value != "" {
		fmt.Fprintf(&b, " (%s)", truncate(e.Value))
	}
	b.WriteString(": " + e.Problem)
	if e.Fix != "" {
		b.WriteString("; " + e.Fix)
	}
	return b.String()
}

// maxValueLen bounds the echoed value: a whole runtimeConfig object or a
// fuzzed megabyte string would drown the message in a pod event.
const maxValueLen = 100

func truncate(v string) string {
	if len(v) <= maxValueLen {
		return v
	}
	return v[:maxValueLen] + "..."
}

func fieldErr(field, value, problem, fix string) *FieldError {
	return &FieldError{Field: field, Value: value, Problem: problem, Fix: fix}
}

// raw mirrors the JSON. Pointers tell "absent" from "zero"; json.RawMessage
// lets a wrongly typed field get an error naming it.
type raw struct {
	CNIVersion              json.RawMessage `json:"cniVersion"`
	Name                    json.RawMessage `json:"name"`
	Type                    json.RawMessage `json:"type"`
	Topology                json.RawMessage `json:"topology"`
	Subnets                 json.RawMessage `json:"subnets"`
	Subnet                  json.RawMessage `json:"subnet"`
	ExcludeSubnets          json.RawMessage `json:"excludeSubnets"`
	MTU                     json.RawMessage `json:"mtu"`
	NADName                 json.RawMessage `json:"netAttachDefName"`
	AllowPersistentIPs      json.RawMessage `json:"allowPersistentIPs"`
	ReservedSubnets         json.RawMessage `json:"reservedSubnets"`
	Role                    json.RawMessage `json:"role"`
	IPAM                    json.RawMessage `json:"ipam"`
	VLANID                  json.RawMessage `json:"vlanID"`
	PhysicalNetworkName     json.RawMessage `json:"physicalNetworkName"`
	HasExternalConnectivity json.RawMessage `json:"has_external_connectivity"`
	RuntimeConfig           json.RawMessage `json:"runtimeConfig"`
	PrevResult              json.RawMessage `json:"prevResult"`

	// subnetsKey is the key the subnets were written under: "subnet" in
	// the legacy form, so errors name what the author actually wrote.
	subnetsKey string
	// all is every key of the config, for the keys OVN-Kubernetes knows
	// and this plugin does not act on (see peerkeys.go).
	all map[string]json.RawMessage
}

// present reports whether a field was given; an explicit null counts as
// absent, as it does for every CNI config consumer using encoding/json.
func present(v json.RawMessage) bool {
	return len(v) > 0 && string(v) != "null"
}

// Parse parses and validates a network config.
func Parse(data []byte) (*NetConf, error) {
	r := raw{subnetsKey: "subnets"}
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, syntaxError(data, err)
	}
	if err := json.Unmarshal(data, &r.all); err != nil {
		return nil, syntaxError(data, err)
	}
	c := &NetConf{}
	steps := []func(*raw, *NetConf) error{
		parseVersion, parseName, parseType, parseTopology, parseRole, parseIPAM,
		parseSubnets, parseExcludes, parseReserved, parseMTU, parseNADName, parsePersistentIPs,
		parseLocalnet, parseExternal, parseDHCP, parsePeerKeys, parseRuntimeConfig, widenRuntimeIPs,
	}
	for _, step := range steps {
		if err := step(&r, c); err != nil {
			return nil, err
		}
	}
	if present(r.PrevResult) {
		c.PrevResult = append(json.RawMessage(nil), r.PrevResult...)
	}
	return c, nil
}

// syntaxError locates a JSON error and recognises the trailing comma of the
// enhancement's samples.
func syntaxError(data []byte, err error) error {
	var se *json.SyntaxError
	if !errors.As(err, &se) {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			return fieldErr("(config)", "", "the config must be a JSON object, got "+te.Value, "write {\"cniVersion\": ..., \"name\": ..., ...}")
		}
		return fieldErr("(config)", "", "invalid JSON: "+err.Error(), "fix the JSON syntax")
	}
	at := errorByte(data, se)
	line, col := position(data, at)
	problem := fmt.Sprintf("invalid JSON at line %d, column %d (byte offset %d): %s", line, col, at, se.Error())
	if trailingComma(data, at) {
		return fieldErr("(config)", "", problem, "remove the trailing comma before the closing brace or bracket")
	}
	return fieldErr("(config)", "", problem, "fix the JSON syntax")
}

// errorByte is the 0-based offset of the offending byte. encoding/json's
// Offset counts the bytes read, so it is one past an invalid character;
// at the end of input there is no such character and it points past the end.
func errorByte(data []byte, se *json.SyntaxError) int {
	at := int(min(max(se.Offset, 0), int64(len(data))))
	if at > 0 && strings.HasPrefix(se.Error(), "invalid character") {
		at--
	}
	return at
}

// position turns a byte offset into a 1-based line and column, which is
// what an editor shows the NAD author.
func position(data []byte, at int) (line, col int) {
	before := data[:at]
	line = bytes.Count(before, []byte("\n")) + 1
	col = at - bytes.LastIndexByte(before, '\n')
	return line, col
}

// trailingComma reports whether the offending byte is a '}' or ']' whose
// previous non-space character is a comma: the enhancement's samples, and
// the most common hand-written JSON mistake.
func trailingComma(data []byte, at int) bool {
	i := at
	if i >= len(data) || (data[i] != '}' && data[i] != ']') {
		return false
	}
	for i--; i >= 0; i-- {
		switch data[i] {
		case ' ', '\t', '\n', '\r':
			continue
		case ',':
			return true
		default:
			return false
		}
	}
	return false
}

func stringField(field string, v json.RawMessage) (string, bool, error) {
	if !present(v) {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", true, fieldErr(field, string(v), "must be a string", fmt.Sprintf("write \"%s\": \"...\"", field))
	}
	return s, true, nil
}

func intField(field string, v json.RawMessage) (int, bool, error) {
	if !present(v) {
		return 0, false, nil
	}
	var n json.Number
	// json.Number would also take "1300" in quotes; a NAD author who
	// wrote that should learn it is wrong rather than have it guessed.
	if err := json.Unmarshal(v, &n); err != nil || v[0] == '"' {
		return 0, true, fieldErr(field, string(v), "must be a number", fmt.Sprintf("write \"%s\": 1300 without quotes", field))
	}
	i, err := strconv.Atoi(n.String())
	if err != nil {
		return 0, true, fieldErr(field, string(v), "must be a whole number", fmt.Sprintf("write \"%s\" as an integer, e.g. 1300", field))
	}
	return i, true, nil
}

func boolField(field string, v json.RawMessage) (bool, error) {
	if !present(v) {
		return false, nil
	}
	var b bool
	if err := json.Unmarshal(v, &b); err != nil {
		return false, fieldErr(field, string(v), "must be true or false", "write true or false without quotes")
	}
	return b, nil
}

func parseVersion(r *raw, c *NetConf) error {
	v, ok, err := stringField("cniVersion", r.CNIVersion)
	if err != nil {
		return err
	}
	supported := strings.Join(SupportedVersions, ", ")
	if !ok || v == "" {
		c.CNIVersion = implicitVersion
		c.note("cniVersion is not set: read as %s, as the CNI library does; results use that version's format, so set it (e.g. \"1.0.0\") to get interfaces and MACs in the result", implicitVersion)
		return nil
	}
	for _, s := range SupportedVersions {
		if v == s {
			c.CNIVersion = v
			return nil
		}
	}
	return fieldErr("cniVersion", strconv.Quote(v), "is not supported", "use one of "+supported)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

const maxNameLen = 128

func parseName(r *raw, c *NetConf) error {
	v, _, err := stringField("name", r.Name)
	if err != nil {
		return err
	}
	switch {
	case v == "":
		return fieldErr("name", "", "is required", "name the network, e.g. \"name\": \"tenant-blue\"")
	case len(v) > maxNameLen:
		return fieldErr("name", strconv.Quote(v[:20]+"..."), fmt.Sprintf("is %d characters long", len(v)), fmt.Sprintf("use at most %d", maxNameLen))
	case !nameRE.MatchString(v):
		return fieldErr("name", strconv.Quote(v), "may only contain letters, digits, '.', '_' and '-', starting with a letter or digit", "rename the network")
	case slices.Contains(reservedNames, v):
		return fieldErr("name", strconv.Quote(v), "is reserved for the cluster's default network (OVN-Kubernetes refuses it too)", "give the secondary network another name")
	}
	c.Name = v
	return nil
}

func parseType(r *raw, c *NetConf) error {
	v, _, err := stringField("type", r.Type)
	if err != nil {
		return err
	}
	legacyFields := present(r.Subnet) || present(r.HasExternalConnectivity)
	switch {
	case v == PluginType:
	case v == legacyPluginType && legacyFields:
		c.Legacy = true
	case v == legacyPluginType:
		return fieldErr("type", strconv.Quote(v), "is the OVN secondary-networks enhancement's type, which needs its \"subnet\" field", fmt.Sprintf("write \"type\": %q with \"topology\" and \"subnets\"", PluginType))
	default:
		return fieldErr("type", strconv.Quote(v), "is not this plugin's type", fmt.Sprintf("write \"type\": %q", PluginType))
	}
	c.Type = v
	if present(r.Subnet) {
		if present(r.Subnets) {
			return fieldErr("subnet", string(r.Subnet), "is given together with \"subnets\"", "keep only \"subnets\"")
		}
		c.Legacy = true
		// The enhancement's "subnet" is the flat L2 overlay's subnet.
		r.Subnets, r.subnetsKey = r.Subnet, "subnet"
	}
	return nil
}

func parseTopology(r *raw, c *NetConf) error {
	v, ok, err := stringField("topology", r.Topology)
	if err != nil {
		return err
	}
	if !ok || v == "" {
		if c.Legacy {
			c.Topology = Layer2
			return nil
		}
		return fieldErr("topology", "", "is required", "set it to \"layer2\", \"layer3\" or \"localnet\"")
	}
	switch t := Topology(v); t {
	case Layer2, Layer3, Localnet:
		// The enhancement only ever described a flat L2 overlay; mixing
		// its fields with another topology is a half-migrated config.
		if c.Legacy && t != Layer2 {
			return fieldErr("topology", strconv.Quote(v), "cannot be combined with the legacy \"type\": \"ovn-kubernetes\" / \"subnet\" form, which is always layer2",
				fmt.Sprintf("write \"type\": %q and \"subnets\" instead of \"subnet\"", PluginType))
		}
		c.Topology = t
		return nil
	}
	return fieldErr("topology", strconv.Quote(v), "is not a known topology", "use \"layer2\", \"layer3\" or \"localnet\"")
}

func parseSubnets(r *raw, c *NetConf) error {
	if err := parseSubnetList(r, c); err != nil {
		return err
	}
	return checkHostPrefixesAgree(r.subnetsKey, c.Subnets)
}

func parseSubnetList(r *raw, c *NetConf) error {
	key := r.subnetsKey
	s, _, err := stringField(key, r.Subnets)
	if err != nil {
		return fieldErr(key, string(r.Subnets), "must be a string of comma-separated CIDRs", fmt.Sprintf("write \"%s\": \"10.128.0.0/16\"", key))
	}
	if strings.TrimSpace(s) == "" {
		if c.Topology == Layer3 {
			return fieldErr(key, "", "is required for topology layer3", "add e.g. \"subnets\": \"10.128.0.0/16/24\" (cluster CIDR / per-node prefix)")
		}
		return nil
	}
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return fieldErr(key, strconv.Quote(s), "has an empty entry", "remove the extra comma")
		}
		sn, err := parseSubnet(key, entry, c.Topology)
		if err != nil {
			return err
		}
		if masked := maskedEntry(entry, sn); masked != entry {
			c.note("%s: %q has host bits set and is read as %q, as OVN-Kubernetes reads it", key, entry, masked)
		}
		// Overlapping subnets would hand the same address out twice, or
		// route one range two ways between node switches.
		for _, prev := range c.Subnets {
			if prev.CIDR.Overlaps(sn.CIDR) {
				return fieldErr(key, strconv.Quote(s), fmt.Sprintf("%s overlaps %s", sn.CIDR, prev.CIDR), "list each range once, without overlaps")
			}
		}
		c.Subnets = append(c.Subnets, sn)
	}
	return nil
}

// parseSubnet parses "cidr" or, on layer3, "cidr/hostPrefix".
func parseSubnet(field, entry string, topo Topology) (Subnet, error) {
	var sn Subnet
	cidr, hostPrefix, hasHostPrefix := splitHostPrefix(entry)
	p, err := netip.ParsePrefix(cidr)
	if err != nil {
		return sn, fieldErr(field, strconv.Quote(entry), "is not a valid CIDR", "write e.g. 10.128.0.0/24 or fd00:10::/64")
	}
	// Host bits are dropped, not refused: OVN-Kubernetes' own NADs write
	// "192.168.200.0/16" for 192.168.0.0/16. The NAD validator notes it.
	p = p.Masked()
	if err := usableRange(field, entry, p); err != nil {
		return sn, err
	}
	sn.CIDR = p
	if hasHostPrefix && topo != Layer3 {
		return sn, fieldErr(field, strconv.Quote(entry), "the cidr/hostPrefix form only applies to topology layer3",
			fmt.Sprintf("drop the /hostPrefix (write %q), or use \"topology\": \"layer3\"", p.String()))
	}
	if topo != Layer3 {
		return sn, nil
	}
	hp, err := hostPrefixLen(hostPrefix, hasHostPrefix, p)
	if err != nil {
		return sn, fieldErr(field, strconv.Quote(entry), "host prefix is not a number", "write cidr/hostPrefix, e.g. 10.128.0.0/16/24")
	}
	sn.HostPrefix = hp
	return sn, checkHostPrefix(field, entry, sn)
}

// specialRanges are address ranges a pod network must not use: packets to
// and from them mean something else to every host (RFC 6890).
var specialRanges = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\" (0.0.0.0/8)"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback (127.0.0.0/8)"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local (169.254.0.0/16)"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast (224.0.0.0/4)"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved and broadcast (240.0.0.0/4)"},
	{netip.MustParsePrefix("::/128"), "the unspecified address (::)"},
	{netip.MustParsePrefix("::1/128"), "loopback (::1)"},
	{netip.MustParsePrefix("::ffff:0:0/96"), "IPv4-mapped (::ffff:0:0/96)"},
	{netip.MustParsePrefix("fe80::/10"), "link-local (fe80::/10)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast (ff00::/8)"},
}

// usableRange refuses subnets pods cannot live in: special ranges, /0, and
// ranges too small to hold a pod next to the network (and broadcast)
// address.
func usableRange(field, entry string, p netip.Prefix) error {
	fix := "use a private range such as 10.128.0.0/16 or fd00:10::/64"
	if p.Bits() == 0 {
		return fieldErr(field, strconv.Quote(entry), "/0 covers every address, including the node's own and the Internet", fix)
	}
	for _, r := range specialRanges {
		if r.prefix.Overlaps(p) {
			return fieldErr(field, strconv.Quote(entry), "overlaps "+r.what+", which pods cannot use", fix)
		}
	}
	limit := 126
	if p.Addr().Is4() {
		limit = 30
	}
	if p.Bits() > limit {
		return fieldErr(field, strconv.Quote(entry), fmt.Sprintf("/%d leaves no address for pods", p.Bits()),
			fmt.Sprintf("use at most /%d (a /%d holds two pods)", limit, limit))
	}
	return nil
}

// usableAddr refuses a requested pod address in a special range.
func usableAddr(field, value string, a netip.Addr) error {
	for _, r := range specialRanges {
		if r.prefix.Contains(a) {
			return fieldErr(field, strconv.Quote(value), "is in "+r.what+", which pods cannot use", "request an address from the network's subnets")
		}
	}
	return nil
}

// splitHostPrefix splits "10.128.0.0/16/24" into "10.128.0.0/16" and "24".
// Only a third '/'-separated part counts: anything else is left for
// netip.ParsePrefix to reject with its own message.
func splitHostPrefix(entry string) (cidr, hostPrefix string, ok bool) {
	if strings.Count(entry, "/") != 2 {
		return entry, "", false
	}
	i := strings.LastIndexByte(entry, '/')
	return entry[:i], entry[i+1:], true
}

// hostPrefixLen returns the written per-node prefix length, or the
// OVN-Kubernetes default (/24 for IPv4, /64 for IPv6) when omitted.
func hostPrefixLen(s string, given bool, cluster netip.Prefix) (int, error) {
	if !given {
		if cluster.Addr().Is6() {
			return 64, nil
		}
		return 24, nil
	}
	// Digits only: Atoi would also take "+24", and "" must not silently
	// become the default.
	if s == "" || len(s) > 3 || strings.Trim(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

// checkHostPrefix makes sure the cluster CIDR really splits into node
// subnets, each holding a gateway and at least one pod. IPv6 node subnets
// are /64, as OVN-Kubernetes requires: a NAD valid here stays valid there.
func checkHostPrefix(field, entry string, sn Subnet) error {
	p := sn.CIDR
	if p.Addr().Is6() {
		if sn.HostPrefix == 64 && p.Bits() < 64 {
			return nil
		}
		return fieldErr(field, strconv.Quote(entry),
			fmt.Sprintf("an IPv6 per-node prefix must be /64 within a cluster prefix shorter than /64, got /%d in /%d", sn.HostPrefix, p.Bits()),
			fmt.Sprintf("write e.g. %s/64", netip.PrefixFrom(p.Addr(), min(p.Bits(), 48)).Masked()))
	}
	const limit = 30 // network, gateway, pod, broadcast
	if sn.HostPrefix > p.Bits() && sn.HostPrefix <= limit {
		return nil
	}
	return fieldErr(field, strconv.Quote(entry),
		fmt.Sprintf("per-node prefix /%d must be longer than the cluster prefix /%d and at most /%d", sn.HostPrefix, p.Bits(), limit),
		fmt.Sprintf("write e.g. %s/%d", p, min(p.Bits()+8, limit)))
}

// checkHostPrefixesAgree requires one per-node prefix length per address
// family, as OVN-Kubernetes does: every node gets one subnet of each
// family's size.
func checkHostPrefixesAgree(field string, subnets []Subnet) error {
	var first *Subnet
	for i, sn := range subnets {
		if sn.HostPrefix == 0 || !sn.CIDR.Addr().Is4() {
			continue
		}
		if first == nil {
			first = &subnets[i]
			continue
		}
		if sn.HostPrefix != first.HostPrefix {
			return fieldErr(field, fmt.Sprintf("%s/%d, %s/%d", first.CIDR, first.HostPrefix, sn.CIDR, sn.HostPrefix),
				"IPv4 entries have different per-node prefixes", fmt.Sprintf("use one per-node prefix for all IPv4 entries, e.g. /%d", first.HostPrefix))
		}
	}
	return nil
}

// maskedEntry is how a subnets entry is read: the CIDR without host bits,
// with the per-node prefix if one was written.
func maskedEntry(entry string, sn Subnet) string {
	_, hostPrefix, ok := splitHostPrefix(entry)
	if ok {
		return sn.CIDR.String() + "/" + hostPrefix
	}
	return sn.CIDR.String()
}

func (c *NetConf) note(format string, args ...any) {
	c.Notes = append(c.Notes, fmt.Sprintf(format, args...))
}

func parseRole(r *raw, c *NetConf) error {
	v, _, err := stringField("role", r.Role)
	if err != nil {
		return err
	}
	switch v {
	case "", RoleSecondary:
		c.Role = v
		return nil
	case rolePrimary:
		return fieldErr("role", strconv.Quote(v), "is not supported: this plugin attaches secondary networks; the pod keeps its cluster network as its primary one",
			"remove \"role\" or set it to \"secondary\"; for a primary user-defined network use OVN-Kubernetes' UserDefinedNetwork")
	}
	return fieldErr("role", strconv.Quote(v), "is not a network role", "set it to \"secondary\" or remove it (values are lower case)")
}

// parseIPAM refuses an "ipam" section: this plugin allocates addresses
// itself, and a user who adds whereabouts must not believe it is in effect.
// An empty object asks for nothing and is accepted, as OVN-Kubernetes does.
func parseIPAM(r *raw, _ *NetConf) error {
	if !present(r.IPAM) {
		return nil
	}
	var ipam struct {
		Type string `json:"type"`
	}
	if err := json.Unmarshal(r.IPAM, &ipam); err != nil {
		return fieldErr("ipam", string(r.IPAM), "must be an object, and is not supported anyway", "remove \"ipam\" and give the network \"subnets\"")
	}
	if ipam.Type != "" {
		return fieldErr("ipam", string(r.IPAM), "is not supported: this plugin allocates addresses from the network's \"subnets\" (static ones through runtimeConfig, CNI_ARGS or IPAMClaims)",
			"remove \"ipam\" and set \"subnets\" (and \"excludeSubnets\"/\"reservedSubnets\" to keep addresses out)")
	}
	return nil
}

func parseExcludes(r *raw, c *NetConf) error {
	list, err := parseRanges("excludeSubnets", r.ExcludeSubnets, c)
	c.ExcludeSubnets = list
	return err
}

// parseReserved reads "reservedSubnets": kept out of dynamic allocation,
// open to static requests (OVN-Kubernetes' layer2 feature; localnet shares
// layer2's allocation here). Layer3 allocates per node, where a
// cluster-wide reserved range has no meaning, and OVN-Kubernetes refuses it.
func parseReserved(r *raw, c *NetConf) error {
	list, err := parseRanges("reservedSubnets", r.ReservedSubnets, c)
	if err != nil || len(list) == 0 {
		return err
	}
	if c.Topology == Layer3 {
		return fieldErr("reservedSubnets", string(r.ReservedSubnets), "only applies to topologies layer2 and localnet", "use \"excludeSubnets\" on layer3")
	}
	c.ReservedSubnets = list
	return nil
}

// parseRanges reads a comma-separated list of ranges inside the network's
// subnets (excludeSubnets, reservedSubnets). An empty string is absent:
// OVN-Kubernetes' e2e NADs write every optional field as "".
func parseRanges(field string, v json.RawMessage, c *NetConf) ([]netip.Prefix, error) {
	s, _, err := stringField(field, v)
	if err != nil || strings.TrimSpace(s) == "" {
		return nil, err
	}
	if len(c.Subnets) == 0 {
		return nil, fieldErr(field, strconv.Quote(s), "needs \"subnets\" to apply to", fmt.Sprintf("add \"subnets\" or remove %q", field))
	}
	var list []netip.Prefix
	for _, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			return nil, fieldErr(field, strconv.Quote(s), "has an empty entry", "remove the extra comma")
		}
		p, err := parsePrefixOrAddr(entry)
		if err != nil {
			return nil, fieldErr(field, strconv.Quote(entry), "is not a CIDR or IP address", "write e.g. 10.128.0.0/29 or 10.128.0.1")
		}
		// A range outside every subnet does nothing: almost always a typo
		// that would leave the intended addresses allocatable.
		if !insideAny(p, c.Subnets) {
			return nil, fieldErr(field, strconv.Quote(entry), "is not inside any of \"subnets\"", "list only ranges of the network's subnets")
		}
		// Covering a whole subnet leaves it nothing to hand out: ADD
		// would only ever fail.
		for _, sn := range c.Subnets {
			if p.Contains(sn.CIDR.Addr()) && p.Bits() <= sn.CIDR.Bits() {
				return nil, fieldErr(field, strconv.Quote(entry), fmt.Sprintf("covers all of subnet %s, leaving no address to hand out", sn.CIDR),
					"list only part of the subnet, or remove the subnet from \"subnets\"")
			}
		}
		list = append(list, p.Masked())
	}
	return list, nil
}

func insideAny(p netip.Prefix, subnets []Subnet) bool {
	for _, sn := range subnets {
		if sn.CIDR.Contains(p.Addr()) && sn.CIDR.Bits() <= p.Bits() {
			return true
		}
	}
	return false
}

// parsePrefixOrAddr accepts a CIDR or a bare address (as a host prefix).
func parsePrefixOrAddr(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		return netip.ParsePrefix(s)
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func parseMTU(r *raw, c *NetConf) error {
	mtu, ok, err := intField("mtu", r.MTU)
	if err != nil || !ok || mtu == 0 {
		return err
	}
	floor := 576
	for _, sn := range c.Subnets {
		if sn.CIDR.Addr().Is6() {
			floor = 1280 // IPv6's minimum link MTU
		}
	}
	if mtu < floor || mtu > 65535 {
		return fieldErr("mtu", strconv.Itoa(mtu), fmt.Sprintf("must be between %d and 65535", floor), "omit it to use the node's safe default, or pick a value in range")
	}
	c.MTU = mtu
	return nil
}

var dns1123Label = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?$`)
var dns1123Subdomain = regexp.MustCompile(`^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$`)

func parseNADName(r *raw, c *NetConf) error {
	v, ok, err := stringField("netAttachDefName", r.NADName)
	if err != nil || !ok {
		return err
	}
	ns, name, found := strings.Cut(v, "/")
	if !found || !dns1123Label.MatchString(ns) || len(ns) > 63 || !dns1123Subdomain.MatchString(name) || len(name) > 253 {
		return fieldErr("netAttachDefName", strconv.Quote(v), "must be <namespace>/<name> of the NetworkAttachmentDefinition", "write e.g. \"left-one/l3-network\"")
	}
	c.NADName = v
	return nil
}

func parsePersistentIPs(r *raw, c *NetConf) error {
	v, err := boolField("allowPersistentIPs", r.AllowPersistentIPs)
	if err != nil {
		return err
	}
	if v && c.Topology == Layer3 {
		return fieldErr("allowPersistentIPs", "true", "is only supported on layer2 and localnet topologies", "remove it, or use \"topology\": \"layer2\"")
	}
	c.AllowPersistentIPs = v
	return nil
}

// parseLocalnet reads vlanID and physicalNetworkName. A vlanID of 0 means
// untagged, as in OVN-Kubernetes, whose e2e NADs write "vlanID": 0 on every
// topology; outside localnet both fields are ignored, as there.
func parseLocalnet(r *raw, c *NetConf) error {
	vlan, hasVLAN, err := intField("vlanID", r.VLANID)
	if err != nil {
		return err
	}
	phys, _, err := stringField("physicalNetworkName", r.PhysicalNetworkName)
	if err != nil {
		return err
	}
	if c.Topology != Localnet {
		if vlan != 0 {
			c.note("vlanID %d is ignored: it only applies to topology localnet", vlan)
		}
		if phys != "" {
			c.note("physicalNetworkName %q is ignored: it only applies to topology localnet", phys)
		}
		return nil
	}
	if hasVLAN && (vlan < 0 || vlan > 4094) {
		return fieldErr("vlanID", strconv.Itoa(vlan), "must be between 1 and 4094, or 0 for untagged", "use a valid 802.1Q VLAN ID, or omit it for untagged traffic")
	}
	// An empty name means "use the network name", so it is as good as absent.
	c.VLANID, c.PhysicalNetworkName = vlan, phys
	return nil
}

func parseRuntimeConfig(r *raw, c *NetConf) error {
	if len(r.RuntimeConfig) == 0 || string(r.RuntimeConfig) == "null" {
		return nil
	}
	var rc struct {
		IPs []string `json:"ips"`
		MAC string   `json:"mac"`
	}
	if err := json.Unmarshal(r.RuntimeConfig, &rc); err != nil {
		return fieldErr("runtimeConfig", string(r.RuntimeConfig), "must be an object with \"ips\" (list of strings) and \"mac\" (string)",
			"write e.g. {\"ips\": [\"10.128.0.10/24\"], \"mac\": \"0a:58:0a:80:00:0a\"}")
	}
	ips, err := parseIPList("runtimeConfig.ips", rc.IPs)
	if err != nil {
		return err
	}
	c.RuntimeConfig.IPs = ips
	if rc.MAC != "" {
		mac, err := parseMAC("runtimeConfig.mac", rc.MAC)
		if err != nil {
			return err
		}
		c.RuntimeConfig.MAC = mac
	}
	return nil
}

// widenRuntimeIPs gives a bare requested address the prefix length of the
// subnet it falls in (the per-node length on layer3), so the pod gets the
// on-link route it expects; outside every subnet it stays a host prefix.
// CNI_ARGS IPs cannot be widened here: ParseArgs does not see the subnets.
func widenRuntimeIPs(_ *raw, c *NetConf) error {
	for i, p := range c.RuntimeConfig.IPs {
		if p.Bits() != p.Addr().BitLen() {
			continue
		}
		for _, sn := range c.Subnets {
			if sn.CIDR.Contains(p.Addr()) {
				c.RuntimeConfig.IPs[i] = netip.PrefixFrom(p.Addr(), podPrefixLen(sn))
			}
		}
	}
	return nil
}

// podPrefixLen is the prefix length of the subnet a pod's address lives
// in: the node subnet on layer3, the whole subnet otherwise.
func podPrefixLen(sn Subnet) int {
	if sn.HostPrefix > 0 {
		return sn.HostPrefix
	}
	return sn.CIDR.Bits()
}

// parseIPList parses requested addresses; a bare address becomes a host
// prefix.
func parseIPList(field string, list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, s := range list {
		p, err := parsePrefixOrAddr(strings.TrimSpace(s))
		if err != nil {
			return nil, fieldErr(field, strconv.Quote(s), "is not an IP address or CIDR", "write e.g. \"10.128.0.10/24\"")
		}
		if err := usableAddr(field, s, p.Addr()); err != nil {
			return nil, err
		}
		for _, prev := range out {
			if prev.Addr() == p.Addr() {
				return nil, fieldErr(field, strconv.Quote(s), "is listed twice", "list each address once")
			}
		}
		out = append(out, p)
	}
	return out, nil
}

func parseMAC(field, s string) (net.HardwareAddr, error) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fieldErr(field, strconv.Quote(s), "is not a 6-byte MAC address", "write e.g. \"0a:58:0a:80:00:05\"")
	}
	if mac[0]&0x01 != 0 || bytes.Equal(mac, make(net.HardwareAddr, 6)) {
		return nil, fieldErr(field, strconv.Quote(s), "is not a unicast MAC address", "use a unicast address (lowest bit of the first byte clear), e.g. \"0a:58:0a:80:00:05\"")
	}
	return mac, nil
}

// Fingerprint identifies the network's shape: two configs with the same
// name must have the same fingerprint to share the network.
func (c *NetConf) Fingerprint() string {
	var subnets []string
	for _, s := range c.Subnets {
		subnets = append(subnets, fmt.Sprintf("%s/%d", s.CIDR, s.HostPrefix))
	}
	sort.Strings(subnets)
	canonical := fmt.Sprintf("topology=%s;subnets=%s;exclude=%s;mtu=%d;vlan=%d;phys=%s;persistent=%t",
		c.Topology, strings.Join(subnets, ","), sortedPrefixes(c.ExcludeSubnets), c.MTU, c.VLANID, c.PhysicalNetwork(), c.AllowPersistentIPs)
	// Appended only when set, so networks made before reservedSubnets
	// existed keep their fingerprint across the upgrade.
	if len(c.ReservedSubnets) > 0 {
		canonical += ";reserved=" + sortedPrefixes(c.ReservedSubnets)
	}
	canonical += c.External.fingerprint()
	if c.DHCP != nil {
		// DHCP reserves an address for the server: nodes must agree.
		// Lease time and DNS servers are not shape: the options row
		// follows the config.
		canonical += ";dhcp"
	}
	sum := sha256.Sum256([]byte(canonical))
	return hex.EncodeToString(sum[:16])
}

func sortedPrefixes(list []netip.Prefix) string {
	var out []string
	for _, p := range list {
		out = append(out, p.String())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

// PhysicalNetwork is the localnet's bridge mapping name: an empty
// physicalNetworkName means the network name, so both spellings are the
// same shape. Empty outside localnet.
func (c *NetConf) PhysicalNetwork() string {
	if c.Topology == Localnet && c.PhysicalNetworkName == "" {
		return c.Name
	}
	return c.PhysicalNetworkName
}

// Args is what the daemon uses from CNI_ARGS.
type Args struct {
	PodNamespace, PodName, PodUID, InfraContainerID string
	IPs                                             []netip.Prefix
	MAC                                             net.HardwareAddr
}

// ParseArgs parses CNI_ARGS ("K=V;K=V"). Unknown keys are ignored, as
// Multus sends IgnoreUnknown=1 and keys for other plugins.
func ParseArgs(s string) (Args, error) {
	var a Args
	for _, kv := range strings.Split(s, ";") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			continue
		}
		switch strings.TrimSpace(k) {
		case "K8S_POD_NAMESPACE":
			a.PodNamespace = v
		case "K8S_POD_NAME":
			a.PodName = v
		case "K8S_POD_UID":
			a.PodUID = v
		case "K8S_POD_INFRA_CONTAINER_ID":
			a.InfraContainerID = v
		case "IP":
			if v == "" {
				continue // an empty value requests nothing
			}
			ips, err := parseIPList("CNI_ARGS IP", strings.Split(v, ","))
			if err != nil {
				return a, err
			}
			a.IPs = ips
		case "MAC":
			if v == "" {
				continue
			}
			mac, err := parseMAC("CNI_ARGS MAC", v)
			if err != nil {
				return a, err
			}
			a.MAC = mac
		}
	}
	return a, nil
}
