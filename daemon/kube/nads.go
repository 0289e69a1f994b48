package kube

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/record"

	"github.com/ovn-overlay/ovn-overlay/netconf"
)

// ErrInvalidNAD marks ADD failures caused by the NAD itself.
var ErrInvalidNAD = errors.New("invalid NetworkAttachmentDefinition")

// Event reasons, as users see them in `kubectl describe net-attach-def`.
const (
	ReasonInvalidConfig       = "InvalidNetworkConfig"
	ReasonNameMismatch        = "NetAttachDefNameMismatch"
	ReasonConflictingNetwork  = "ConflictingNetworkConfig"
	ReasonNetworkConfigAccept = "NetworkConfigAccepted"
)

// nadState is what the validator concluded about one NAD.
type nadState struct {
	nad  *nadv1.NetworkAttachmentDefinition
	conf *netconf.NetConf // nil if the config does not parse
	// problem is why pods using this NAD fail, "" if they do not.
	reason, problem string
	// reported is the last event sent, so resyncs do not repeat it.
	reported string
}

// unreported marks a NAD no event was sent for yet.
const unreported = "\x00"

// nadValidator checks every NAD of this plugin's type when it is created or
// changed, and tells its author through Events, not only when a pod fails.
// Two NADs that name the same network must agree on its shape; the oldest
// one defines it and later conflicting ones are refused.
type nadValidator struct {
	recorder record.EventRecorder
	log      *slog.Logger
	mu       sync.Mutex
	nads     map[string]*nadState // namespace/name
}

func newNADValidator(recorder record.EventRecorder, log *slog.Logger) *nadValidator {
	return &nadValidator{recorder: recorder, log: log, nads: map[string]*nadState{}}
}

func (v *nadValidator) handler() cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { v.upsert(obj) },
		UpdateFunc: func(_, obj any) { v.upsert(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if nad, ok := obj.(*nadv1.NetworkAttachmentDefinition); ok {
				v.mu.Lock()
				delete(v.nads, key(nad))
				v.reevaluate()
				v.mu.Unlock()
			}
		},
	}
}

func key(nad *nadv1.NetworkAttachmentDefinition) string { return nad.Namespace + "/" + nad.Name }

// ours reports whether a NAD's config is for this plugin (or the
// enhancement's legacy type, which we also serve), alone or in a
// "plugins" list. A config that is not JSON names no type, so it is
// nobody's to judge here.
func ours(config string) bool {
	if !json.Valid([]byte(config)) {
		return false
	}
	_, err := netconf.Flatten([]byte(config))
	return !errors.Is(err, netconf.ErrNotOurs)
}

func (v *nadValidator) upsert(obj any) {
	nad, ok := obj.(*nadv1.NetworkAttachmentDefinition)
	if !ok || !ours(nad.Spec.Config) {
		return
	}
	v.log.Debug("NetworkAttachmentDefinition seen", "nad", key(nad))
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.nads[key(nad)]
	if st == nil {
		st = &nadState{reported: unreported}
		v.nads[key(nad)] = st
	}
	st.nad = nad
	st.conf, st.reason, st.problem = nil, "", ""
	conf, err := netconf.ParseNAD(key(nad), []byte(nad.Spec.Config))
	var mismatch *netconf.NADNameMismatchError
	switch {
	case errors.As(err, &mismatch):
		st.conf = mismatch.Conf
		st.reason, st.problem = ReasonNameMismatch, err.Error()
	case err != nil:
		st.reason, st.problem = ReasonInvalidConfig, err.Error()
	default:
		st.conf = conf
	}
	v.reevaluate()
}

// reevaluate recomputes conflicts between NADs and emits an Event for
// every NAD whose verdict changed. Called with mu held. Two kinds of
// conflict: NADs naming the same network with different shapes, and
// localnet networks sharing one VLAN of a physical network with different
// subnets (their pods would meet on one segment, each network's addresses
// unknown to the other's). In both, the oldest NAD wins.
func (v *nadValidator) reevaluate() {
	for _, st := range v.nads {
		if st.reason == ReasonConflictingNetwork {
			st.reason, st.problem = "", ""
		}
	}
	groups := map[string][]*nadState{}
	for _, st := range v.nads {
		if st.conf != nil {
			groups[st.conf.Name] = append(groups[st.conf.Name], st)
		}
	}
	segments := map[string][]*nadState{}
	for network, members := range groups {
		oldestFirst(members)
		owner := members[0]
		for _, st := range members[1:] {
			if st.problem == "" && st.conf.Fingerprint() != owner.conf.Fingerprint() {
				st.reason = ReasonConflictingNetwork
				st.problem = fmt.Sprintf("network %q is already defined by NetworkAttachmentDefinition %s with a different topology, subnets, excludeSubnets, mtu, vlanID, physicalNetworkName or allowPersistentIPs; pods using this NAD are refused; make the configs identical or give this network another name",
					network, key(owner.nad))
			}
		}
		if owner.problem == "" && owner.conf.Topology == netconf.Localnet {
			seg := fmt.Sprintf("%s/%d", owner.conf.PhysicalNetwork(), owner.conf.VLANID)
			segments[seg] = append(segments[seg], owner)
		}
	}
	for _, owners := range segments {
		oldestFirst(owners)
		first := owners[0]
		for _, st := range owners[1:] {
			if subnetsKey(st.conf) == subnetsKey(first.conf) {
				continue
			}
			vlan := "untagged"
			if st.conf.VLANID > 0 {
				vlan = fmt.Sprintf("VLAN %d", st.conf.VLANID)
			}
			problem := fmt.Sprintf("localnet network %q uses physical network %q %s with subnets [%s], where network %q of NetworkAttachmentDefinition %s already uses subnets [%s]; networks on one VLAN must use the same subnets; pods using this NAD are refused; use another vlanID, or the same subnets",
				st.conf.Name, st.conf.PhysicalNetwork(), vlan, subnetsKey(st.conf), first.conf.Name, key(first.nad), subnetsKey(first.conf))
			for _, member := range groups[st.conf.Name] {
				if member.problem == "" {
					member.reason, member.problem = ReasonConflictingNetwork, problem
				}
			}
		}
	}
	for _, st := range v.nads {
		v.report(st)
	}
}

// oldestFirst orders NADs by creation, then by key.
func oldestFirst(members []*nadState) {
	sort.Slice(members, func(i, j int) bool {
		a, b := members[i].nad, members[j].nad
		if !a.CreationTimestamp.Equal(&b.CreationTimestamp) {
			return a.CreationTimestamp.Before(&b.CreationTimestamp)
		}
		return key(a) < key(b)
	})
}

// subnetsKey is a network's subnets, sorted, for comparison.
func subnetsKey(c *netconf.NetConf) string {
	var out []string
	for _, s := range c.Subnets {
		out = append(out, s.CIDR.String())
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func (v *nadValidator) report(st *nadState) {
	verdict := st.reason + st.problem
	if verdict == st.reported {
		return
	}
	st.reported = verdict
	if st.problem == "" {
		msg := "network config is valid"
		if len(st.conf.Notes) > 0 {
			msg += "; note: " + strings.Join(st.conf.Notes, "; ")
		}
		v.recorder.Event(st.nad, corev1.EventTypeNormal, ReasonNetworkConfigAccept, msg)
		return
	}
	v.log.Warn("NetworkAttachmentDefinition refused", "nad", key(st.nad), "reason", st.reason, "problem", st.problem)
	v.recorder.Event(st.nad, corev1.EventTypeWarning, st.reason, st.problem)
}

// check is ADD's view: may a pod use the config that claims to come from
// the NAD conf.NADName?
func (v *nadValidator) check(conf *netconf.NetConf) error {
	if conf.NADName == "" {
		return nil
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	st := v.nads[conf.NADName]
	if st == nil {
		carrier := ""
		for k, other := range v.nads {
			if other.conf != nil && other.conf.NADName == conf.NADName && other.conf.Name == conf.Name {
				carrier = fmt.Sprintf(" (this config comes from NetworkAttachmentDefinition %s: set its \"netAttachDefName\" to %q)", k, k)
			}
		}
		return fmt.Errorf("%w: netAttachDefName %q names no NetworkAttachmentDefinition of type %s%s", ErrInvalidNAD, conf.NADName, netconf.PluginType, carrier)
	}
	if st.problem != "" {
		return fmt.Errorf("%w %s: %s", ErrInvalidNAD, conf.NADName, st.problem)
	}
	return nil
}

// CheckNAD is what ADD asks before attaching a pod.
func (c *Client) CheckNAD(conf *netconf.NetConf) error { return c.validator.check(conf) }
