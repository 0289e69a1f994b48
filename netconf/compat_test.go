package netconf

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// The compatibility promise: a NAD written for OVN-Kubernetes works here
// unchanged. These tests run OVN-Kubernetes' own cases (testdata, see its
// README) and require the same verdict and the same network shape, or a
// listed exception with its reason.

const compatData = "testdata/ovn-kubernetes-nads.json"

type compatCase struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Level      string          `json:"level"`
	NAD        string          `json:"nad"`
	Config     string          `json:"config"`
	Expect     string          `json:"ovnk_expect"`
	Error      string          `json:"ovnk_error"`
	Fields     json.RawMessage `json:"ovnk_fields"`
	Scope      string          `json:"scope"`
	Notes      string          `json:"notes"`
	ExcuseText string          `json:"excuse"`
}

// ovnkFields is what OVN-Kubernetes parsed out of an accepted config.
// Pointers tell a field the case does not assert from a zero value.
type ovnkFields struct {
	Name               *string   `json:"name"`
	CNIVersion         *string   `json:"cniVersion"`
	Topology           *string   `json:"topology"`
	NADName            *string   `json:"netAttachDefName"`
	MTU                *int      `json:"mtu"`
	MTUDefault         bool      `json:"mtu_default"`
	Subnets            *[]string `json:"subnets"`
	ExcludeSubnets     *[]string `json:"excludeSubnets"`
	ReservedSubnets    *string   `json:"reservedSubnets"`
	VLANID             *int      `json:"vlanID"`
	PhysicalNetwork    *string   `json:"physicalNetworkName"`
	AllowPersistentIPs *bool     `json:"allowPersistentIPs"`
	Role               *string   `json:"role"`
}

// difference is how an excepted case differs from OVN-Kubernetes.
type difference int

const (
	weRefuse     difference = iota // OVN-Kubernetes accepts, we refuse
	weAccept                       // OVN-Kubernetes refuses, we accept
	shapeDiffers                   // both accept, with a different shape
)

func (d difference) String() string {
	return [...]string{"we refuse what OVN-Kubernetes accepts", "we accept what OVN-Kubernetes refuses", "both accept, shapes differ"}[d]
}

type exception struct {
	diff   difference
	reason string
}

// Reasons shared by several cases.
const (
	reasonPrimary = "role \"primary\" makes a primary network in OVN-Kubernetes; this plugin attaches secondary networks only, " +
		"so it refuses the key with an error naming OVN-Kubernetes' UserDefinedNetwork instead of attaching an ordinary secondary network"
	reasonDefaultNetwork = "a config without topology is OVN-Kubernetes' cluster default network, its primary CNI; this plugin is not a primary CNI"
	reasonClusterCIDRs   = "the check needs OVN-Kubernetes' cluster settings (its pod, service, join, transit and masquerade subnets), " +
		"which a secondary-network plugin does not have; the subnets do not collide with anything of ours"
)

// compatExceptions lists every case where we knowingly differ. The test
// fails if a listed case agrees after all, so the list stays true.
var compatExceptions = map[string]exception{
	"PNC-07": {weAccept, "netAttachDefName is optional: the daemon serves CNI requests without Kubernetes too, " +
		"and the NAD validator fills in the NAD's own name when it is missing"},
	"PNC-09": {weRefuse, reasonDefaultNetwork},
	"CNI-01": {weRefuse, reasonDefaultNetwork},
	"CNI-02": {weRefuse, reasonDefaultNetwork},
	"PNC-14": {weRefuse, reasonPrimary},
	"PNC-15": {weRefuse, reasonPrimary},
	"SOC-01": {weAccept, reasonClusterCIDRs},
	"SOC-02": {weAccept, reasonClusterCIDRs},
	"SOC-03": {weAccept, reasonClusterCIDRs},
	"SOC-04": {weAccept, reasonClusterCIDRs},
	"SOC-05": {weAccept, reasonClusterCIDRs},
	"SUB-04": {weRefuse, "layer3 needs subnets to route between node switches; OVN-Kubernetes' multi-homing guide documents subnets as required for layer3, " +
		"only its parser lets an empty value through"},
	"K-03": {weRefuse, "a /31 node subnet holds only the router port's address, leaving none for pods; /30 is the longest usable per-node prefix"},
	"K-04": {weAccept, "OVN-Kubernetes' guide documents excludeSubnets as \"CIDRs / IPs\" and a bare address means exactly one address; only its code refuses it"},
	"K-05": {shapeDiffers, "OVN-Kubernetes silently ignores excludeSubnets on layer3; we keep the excluded addresses out of every node's subnet, as the author asked"},
}

func loadCompatCases(t *testing.T) []compatCase {
	t.Helper()
	data, err := os.ReadFile(compatData)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Cases []compatCase `json:"cases"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if len(doc.Cases) == 0 {
		t.Fatal("no cases")
	}
	return doc.Cases
}

// parseAsDelivered parses a case's config the way it reaches this plugin:
// a NAD's spec.config through the NAD validator's ParseNAD, anything else
// as a runtime passes it (libcni and Multus flatten "plugins" lists).
func parseAsDelivered(c compatCase) (*NetConf, error) {
	if c.Level == "nad" {
		return ParseNAD(c.NAD, []byte(c.Config))
	}
	flat, err := Flatten([]byte(c.Config))
	if err != nil {
		return nil, err
	}
	return Parse(flat)
}

func TestOVNKubernetesCompat(t *testing.T) {
	cases := loadCompatCases(t)
	counts := map[string]int{}
	for _, c := range cases {
		t.Run(c.ID, func(t *testing.T) {
			ours, err := parseAsDelivered(c)
			diffs := compare(c, ours, err)
			ex, excepted := compatExceptions[c.ID]
			switch {
			case !excepted && len(diffs) == 0:
				counts["agree"]++
			case !excepted:
				t.Errorf("%s (%s): differs from OVN-Kubernetes: %s", c.ID, c.Name, strings.Join(diffs, "; "))
			case len(diffs) == 0:
				t.Errorf("%s is listed as an exception (%s) but agrees with OVN-Kubernetes now: remove it from compatExceptions", c.ID, ex.diff)
			case kindOf(c, err) != ex.diff:
				t.Errorf("%s is listed as %q but %s: %s", c.ID, ex.diff, kindOf(c, err), strings.Join(diffs, "; "))
			default:
				counts[ex.diff.String()]++
				t.Logf("%s: listed exception (%s): %s", c.ID, ex.diff, ex.reason)
			}
		})
	}
	for id := range compatExceptions {
		if !slices.ContainsFunc(cases, func(c compatCase) bool { return c.ID == id }) {
			t.Errorf("exception %s names no case", id)
		}
	}
	t.Logf("%d cases: %v", len(cases), counts)
}

func kindOf(c compatCase, err error) difference {
	switch {
	case c.Expect == "ok" && err != nil:
		return weRefuse
	case c.Expect != "ok" && err == nil:
		return weAccept
	}
	return shapeDiffers
}

// compare lists how our verdict and shape differ from OVN-Kubernetes'.
func compare(c compatCase, ours *NetConf, err error) []string {
	switch {
	case c.Expect == "ok" && err != nil:
		return []string{"OVN-Kubernetes accepts, we refuse: " + err.Error()}
	case c.Expect != "ok" && err == nil:
		return []string{"OVN-Kubernetes refuses (" + c.Error + "), we accept"}
	case err != nil:
		return nil
	}
	var f ovnkFields
	if len(c.Fields) > 0 && string(c.Fields) != "null" {
		if uerr := json.Unmarshal(c.Fields, &f); uerr != nil {
			return []string{"bad ovnk_fields: " + uerr.Error()}
		}
	}
	var diffs []string
	differs := func(field string, theirs, mine any) {
		if fmt.Sprint(theirs) != fmt.Sprint(mine) {
			diffs = append(diffs, fmt.Sprintf("%s: OVN-Kubernetes %v, ours %v", field, theirs, mine))
		}
	}
	if f.Name != nil {
		differs("name", *f.Name, ours.Name)
	}
	if f.CNIVersion != nil {
		differs("cniVersion", *f.CNIVersion, ours.CNIVersion)
	}
	if f.Topology != nil {
		differs("topology", *f.Topology, ours.Topology)
	}
	if f.NADName != nil {
		differs("netAttachDefName", *f.NADName, ours.NADName)
	}
	// OVN-Kubernetes' default MTU is its cluster's; ours derives from the
	// underlay at ADD (README, NAD reference). Only written MTUs compare.
	if f.MTU != nil && !f.MTUDefault {
		differs("mtu", *f.MTU, ours.MTU)
	}
	if f.Subnets != nil {
		var mine []string
		for _, sn := range ours.Subnets {
			s := sn.CIDR.String()
			if sn.HostPrefix > 0 {
				s += fmt.Sprintf("/%d", sn.HostPrefix)
			}
			mine = append(mine, s)
		}
		differs("subnets", canonicalList(*f.Subnets), canonicalList(mine))
	}
	if f.ExcludeSubnets != nil {
		differs("excludeSubnets", canonicalList(*f.ExcludeSubnets), prefixStrings(ours.ExcludeSubnets))
	}
	if f.ReservedSubnets != nil {
		differs("reservedSubnets", canonicalList(strings.Split(*f.ReservedSubnets, ",")), prefixStrings(ours.ReservedSubnets))
	}
	if f.VLANID != nil {
		differs("vlanID", *f.VLANID, ours.VLANID)
	}
	if f.PhysicalNetwork != nil {
		differs("physicalNetworkName", *f.PhysicalNetwork, ours.PhysicalNetworkName)
	}
	if f.AllowPersistentIPs != nil {
		differs("allowPersistentIPs", *f.AllowPersistentIPs, ours.AllowPersistentIPs)
	}
	if f.Role != nil {
		differs("role", *f.Role, ours.Role)
	}
	return diffs
}

// canonicalList normalises CIDR strings ("fda6::0/80" and "fda6::/80" are
// one range); a layer3 "cidr/hostPrefix" keeps its host prefix.
func canonicalList(list []string) []string {
	var out []string
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		cidr, host, hasHost := splitHostPrefix(s)
		if p, err := netip.ParsePrefix(cidr); err == nil {
			s = p.Masked().String()
			if hasHost {
				s += "/" + host
			}
		}
		out = append(out, s)
	}
	return out
}

func prefixStrings(list []netip.Prefix) []string {
	var out []string
	for _, p := range list {
		out = append(out, p.String())
	}
	return out
}

// TestCompatDataIsCurrent keeps testdata equal to the project's shared
// compatibility data, where that is checked out beside the repository.
func TestCompatDataIsCurrent(t *testing.T) {
	shared, err := os.ReadFile(filepath.Join("..", "..", "shared", "compat", "ovn-kubernetes-nads.json"))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("shared compatibility data not checked out beside the repository")
	}
	if err != nil {
		t.Fatal(err)
	}
	ours, err := os.ReadFile(compatData)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(shared, ours) {
		t.Errorf("%s differs from the shared copy: copy it again and rerun", compatData)
	}
}

// TestCompatErrorsNameTheField checks that the cases we refuse, as
// OVN-Kubernetes does, name the same field it names.
func TestCompatErrorsNameTheField(t *testing.T) {
	for _, c := range loadCompatCases(t) {
		if c.Expect == "ok" {
			continue
		}
		_, err := parseAsDelivered(c)
		var fe *FieldError
		var mismatch *NADNameMismatchError
		switch {
		case err == nil:
			continue
		case errors.Is(err, ErrNotOurs), errors.As(err, &mismatch):
			continue
		case !errors.As(err, &fe):
			t.Errorf("%s: error is not a FieldError: %v", c.ID, err)
		}
	}
}
