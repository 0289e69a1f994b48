package netconf

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
)

// peerKey is a NAD key OVN-Kubernetes knows and this plugin does not act
// on. Users moving from OVN-Kubernetes keep their NADs, so each such key is
// either accepted with a note saying it is ignored and why (OVN-Kubernetes
// does nothing with it on a secondary network either), or refused where
// OVN-Kubernetes would act on it: a user must not believe a feature is in
// effect when it is not.
type peerKey struct {
	name string
	// only lists the topologies OVN-Kubernetes accepts the key on; nil
	// means all. Elsewhere it is refused, as there.
	only []Topology
	// ignored is why the key does nothing here; "" for keys refused
	// whenever they are set.
	ignored string
	// refused and fix explain a refusal.
	refused, fix string
	// silent keys are standard CNI keys: ignoring them needs no note.
	silent bool
}

var peerKeys = []peerKey{
	{name: "joinSubnet", only: []Topology{Layer2, Layer3},
		ignored: "it sets the join subnet of OVN-Kubernetes' primary networks, which carries service traffic; secondary networks have none"},
	{name: "transitSubnet", ignored: "it sets the transit subnet of OVN-Kubernetes' primary networks; secondary networks have none"},
	{name: "infrastructureSubnets", only: []Topology{Layer2},
		ignored: "it holds the gateway and management addresses of OVN-Kubernetes' primary layer2 networks; secondary networks have none (keep addresses out with \"excludeSubnets\" or \"reservedSubnets\")"},
	{name: "defaultGatewayIPs", only: []Topology{Layer2},
		ignored: "it sets the default gateway of OVN-Kubernetes' primary layer2 networks; secondary networks have none"},
	{name: "transport", refused: "is not supported: secondary networks are carried by the geneve overlay (or, on localnet, the physical network)", fix: "remove \"transport\""},
	{name: "outboundSNAT", refused: "is not supported: it needs \"transport\": \"no-overlay\", which this plugin does not offer", fix: "remove \"outboundSNAT\""},
	{name: "evpn", refused: "is not supported: EVPN transport is not offered by this plugin", fix: "remove \"evpn\""},
	{name: "uplink", refused: "is not supported: external connectivity through an uplink is not offered yet", fix: "remove \"uplink\""},
	{name: "deviceID", refused: "is not supported: this plugin attaches veth pairs, not SR-IOV or DPU devices", fix: "remove \"deviceID\" and the NAD's resourceName annotation"},
	{name: "logFile", ignored: "the plugin binary is a thin shim; the node daemon logs every request (its --log-level flag)"},
	{name: "logLevel", ignored: "the plugin binary is a thin shim; the node daemon logs every request (its --log-level flag)"},
	{name: "logfile-maxsize", ignored: "the plugin binary is a thin shim; the node daemon logs every request"},
	{name: "logfile-maxbackups", ignored: "the plugin binary is a thin shim; the node daemon logs every request"},
	{name: "logfile-maxage", ignored: "the plugin binary is a thin shim; the node daemon logs every request"},
	// Standard CNI keys and a retired OVN-Kubernetes one: nothing to say.
	{name: "capabilities", silent: true},
	{name: "dns", silent: true},
	{name: "cni.dev/valid-attachments", silent: true},
	{name: "primaryNetwork", silent: true},
}

// given reports whether a key carries a value: OVN-Kubernetes' e2e NADs
// write every optional field, as "" when unused.
func given(v json.RawMessage) bool {
	return present(v) && string(v) != `""`
}

func parsePeerKeys(r *raw, c *NetConf) error {
	for _, k := range peerKeys {
		v, ok := r.all[k.name]
		if !ok || !given(v) || k.silent {
			continue
		}
		if k.only != nil && !slices.Contains(k.only, c.Topology) {
			var names []string
			for _, t := range k.only {
				names = append(names, string(t))
			}
			return fieldErr(k.name, string(v), fmt.Sprintf("does not apply to topology %s (OVN-Kubernetes refuses it too)", c.Topology),
				fmt.Sprintf("remove it; it only applies to %s", strings.Join(names, " and ")))
		}
		if k.refused != "" {
			return fieldErr(k.name, string(v), k.refused, k.fix)
		}
		c.note("%s is ignored: %s", k.name, k.ignored)
	}
	return nil
}
