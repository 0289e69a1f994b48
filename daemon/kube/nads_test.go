package kube

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	nadv1 "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/apis/k8s.cni.cncf.io/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
)

// TestValidatorConflicts: which NADs the validator refuses, and why, as
// NADs arrive oldest first.
func TestValidatorConflicts(t *testing.T) {
	localnet := func(name, phys string, vlan int, subnets string) string {
		return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":"localnet","physicalNetworkName":%q,"vlanID":%d,"subnets":%q}`, name, phys, vlan, subnets)
	}
	layer2 := func(name, subnets string) string {
		return fmt.Sprintf(`{"cniVersion":"1.0.0","name":%q,"type":"ovn-k8s-cni-overlay","topology":"layer2","subnets":%q}`, name, subnets)
	}
	tests := []struct {
		name    string
		configs []string // NAD configs, oldest first
		refused map[int]string
	}{
		{name: "same network, same shape", configs: []string{layer2("a", "10.0.0.0/24"), layer2("a", "10.0.0.0/24")}},
		{name: "same network, other subnets", configs: []string{layer2("a", "10.0.0.0/24"), layer2("a", "10.1.0.0/24")},
			refused: map[int]string{1: `network "a" is already defined`}},
		{name: "localnets on different VLANs", configs: []string{localnet("a", "dc", 100, "10.0.0.0/24"), localnet("b", "dc", 200, "10.1.0.0/24")}},
		{name: "localnets on different physical networks", configs: []string{localnet("a", "dc", 100, "10.0.0.0/24"), localnet("b", "dc2", 100, "10.1.0.0/24")}},
		{name: "localnets sharing a VLAN with the same subnets", configs: []string{localnet("a", "dc", 100, "10.0.0.0/24"), localnet("b", "dc", 100, "10.0.0.0/24")}},
		{name: "localnets sharing a VLAN with other subnets", configs: []string{localnet("a", "dc", 100, "10.0.0.0/24"), localnet("b", "dc", 100, "10.1.0.0/24")},
			refused: map[int]string{1: `physical network "dc" VLAN 100 with subnets [10.1.0.0/24], where network "a"`}},
		{name: "untagged localnets with other subnets", configs: []string{localnet("a", "dc", 0, "10.0.0.0/24"), localnet("b", "dc", 0, "10.1.0.0/24")},
			refused: map[int]string{1: `physical network "dc" untagged`}},
		{name: "every NAD of the later network is refused", configs: []string{localnet("a", "dc", 7, "10.0.0.0/24"), localnet("b", "dc", 7, "10.1.0.0/24"), localnet("b", "dc", 7, "10.1.0.0/24")},
			refused: map[int]string{1: "networks on one VLAN", 2: "networks on one VLAN"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newNADValidator(record.NewFakeRecorder(100), slog.New(slog.DiscardHandler))
			base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			var keys []string
			for i, config := range tt.configs {
				nad := &nadv1.NetworkAttachmentDefinition{
					ObjectMeta: metav1.ObjectMeta{Namespace: "ns", Name: fmt.Sprintf("nad%d", i), CreationTimestamp: metav1.NewTime(base.Add(time.Duration(i) * time.Second))},
					Spec:       nadv1.NetworkAttachmentDefinitionSpec{Config: config},
				}
				v.upsert(nad)
				keys = append(keys, key(nad))
			}
			for i, k := range keys {
				st := v.nads[k]
				want, refused := tt.refused[i]
				switch {
				case refused && (st.reason != ReasonConflictingNetwork || !strings.Contains(st.problem, want)):
					t.Errorf("NAD %d: reason %q problem %q, want a conflict containing %q", i, st.reason, st.problem, want)
				case !refused && st.problem != "":
					t.Errorf("NAD %d refused: %s", i, st.problem)
				}
			}
		})
	}
}
