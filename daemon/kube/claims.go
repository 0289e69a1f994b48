package kube

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	ipamv1alpha1 "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1"
	nadutils "github.com/k8snetworkplumbingwg/network-attachment-definition-client/pkg/utils"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/tools/cache"
)

// Persistent IPs. A network selection element may carry
// "ipam-claim-reference": the name of an IPAMClaim (KubeVirt creates one per
// VM interface). The first pod using the claim records its addresses in the
// claim's status; later pods referencing it, on any node, get the same
// addresses; they are freed only when the claim is deleted. Every daemon
// watches the claims so no node hands a claimed address to anyone else.

// Claim is the IPAMClaim an attachment uses.
type Claim struct {
	Namespace, Name string
	// IPs are the addresses recorded in the claim's status, if any yet.
	IPs []netip.Prefix
	// OwnerPod is the pod the status names; Allocated says its
	// IPsAllocated condition is True. An ADD that finds both as it would
	// write them writes nothing.
	OwnerPod  string
	Allocated bool
}

// The IPsAllocated condition of an IPAMClaim's status and its reasons, as
// KubeVirt and OVN-Kubernetes use them.
const (
	ConditionIPsAllocated = "IPsAllocated"
	ReasonAllocated       = "SuccessfulAllocation"
	ReasonSubnetExhausted = "SubnetExhausted"
	ReasonIPConflict      = "IPAddressConflict"
	ReasonMACConflict     = "MACAddressConflict"
)

// Key names the claim in the address index.
func (c *Claim) Key() string {
	if c == nil {
		return ""
	}
	return "ipamclaim:" + c.Namespace + "/" + c.Name
}

// ID names the claim on logical switch ports: "<namespace>/<name>".
func (c *Claim) ID() string {
	if c == nil {
		return ""
	}
	return c.Namespace + "/" + c.Name
}

// ClaimFromID is the claim ID names, if it is one.
func ClaimFromID(id string) (*Claim, bool) {
	namespace, name, ok := strings.Cut(id, "/")
	if !ok || namespace == "" || name == "" {
		return nil, false
	}
	return &Claim{Namespace: namespace, Name: name}, true
}

// ClaimFor returns the IPAMClaim referenced by the pod's network selection
// element for the NAD nadName (namespace/name) and interface ifName, or nil
// if the element references none.
func (c *Client) ClaimFor(ctx context.Context, podNamespace, podName, nadName, ifName string) (*Claim, error) {
	if nadName == "" {
		return nil, nil
	}
	pod, err := c.podFresh(ctx, podNamespace, podName)
	if err != nil {
		return nil, err
	}
	elements, err := nadutils.ParsePodNetworkAnnotation(pod)
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: k8s.v1.cni.cncf.io/networks: %w", podNamespace, podName, err)
	}
	for i, el := range elements {
		name := el.InterfaceRequest
		if name == "" {
			name = fmt.Sprintf("net%d", i+1) // Multus's numbering
		}
		if el.Namespace+"/"+el.Name != nadName || name != ifName || el.IPAMClaimReference == "" {
			continue
		}
		claim, err := c.Claims.K8sV1alpha1().IPAMClaims(podNamespace).Get(ctx, el.IPAMClaimReference, metav1.GetOptions{})
		if err != nil {
			return nil, fmt.Errorf("IPAMClaim %s/%s referenced by pod %s/%s: %w", podNamespace, el.IPAMClaimReference, podNamespace, podName, err)
		}
		out := &Claim{Namespace: claim.Namespace, Name: claim.Name,
			Allocated: meta.IsStatusConditionTrue(claim.Status.Conditions, ConditionIPsAllocated)}
		if claim.Status.OwnerPod != nil {
			out.OwnerPod = claim.Status.OwnerPod.Name
		}
		for _, s := range claim.Status.IPs {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				return nil, fmt.Errorf("IPAMClaim %s/%s status.ips %q: %w", claim.Namespace, claim.Name, s, err)
			}
			out.IPs = append(out.IPs, p)
		}
		return out, nil
	}
	return nil, nil
}

// podFresh reads the pod from the informer, or from the API server if the
// informer has not seen it yet (Multus calls us right after the pod is
// scheduled).
func (c *Client) podFresh(ctx context.Context, namespace, name string) (*corev1.Pod, error) {
	if p, ok := c.Pod(namespace, name); ok {
		return p, nil
	}
	p, err := c.Kube.CoreV1().Pods(namespace).Get(ctx, name, metav1.GetOptions{})
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", namespace, name, err)
	}
	return p, nil
}

// RecordClaim makes the claim's status say that podName holds it with
// ips: the addresses (only the first pod's are ever recorded: later pods
// get them), the owner pod and IPsAllocated True.
func (c *Client) RecordClaim(ctx context.Context, claim *Claim, podName string, ips []netip.Prefix) error {
	return c.updateClaimStatus(ctx, claim, func(st *ipamv1alpha1.IPAMClaimStatus) {
		if len(st.IPs) == 0 {
			for _, p := range ips {
				st.IPs = append(st.IPs, p.String())
			}
		}
		st.OwnerPod = &ipamv1alpha1.OwnerPod{Name: podName}
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: ConditionIPsAllocated, Status: metav1.ConditionTrue, Reason: ReasonAllocated,
			Message: fmt.Sprintf("pod %s holds %s", podName, strings.Join(st.IPs, ",")),
		})
	})
}

// ClaimNotAllocated records in the claim's status why podName could not
// get its addresses: IPsAllocated False with reason, keeping the
// addresses and owner already recorded.
func (c *Client) ClaimNotAllocated(ctx context.Context, claim *Claim, podName, reason, message string) error {
	return c.updateClaimStatus(ctx, claim, func(st *ipamv1alpha1.IPAMClaimStatus) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: ConditionIPsAllocated, Status: metav1.ConditionFalse, Reason: reason,
			Message: fmt.Sprintf("pod %s: %s", podName, message),
		})
	})
}

func (c *Client) updateClaimStatus(ctx context.Context, claim *Claim, change func(*ipamv1alpha1.IPAMClaimStatus)) error {
	obj, err := c.Claims.K8sV1alpha1().IPAMClaims(claim.Namespace).Get(ctx, claim.Name, metav1.GetOptions{})
	if err != nil {
		return fmt.Errorf("IPAMClaim %s/%s: %w", claim.Namespace, claim.Name, err)
	}
	change(&obj.Status)
	if obj.Status.IPs == nil {
		// The CRD requires the list; nil would be sent as null.
		obj.Status.IPs = []string{}
	}
	// The update carries the resourceVersion read above: if another node
	// recorded addresses in between, it fails instead of overwriting them.
	if _, err := c.Claims.K8sV1alpha1().IPAMClaims(claim.Namespace).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		if apierrors.IsConflict(err) {
			return fmt.Errorf("IPAMClaim %s/%s changed while its status was written; retry the ADD: %w", claim.Namespace, claim.Name, err)
		}
		return fmt.Errorf("write the status of IPAMClaim %s/%s: %w", claim.Namespace, claim.Name, err)
	}
	return nil
}

// ClaimHandler learns of claims' addresses: ips is nil when the claim is
// deleted.
type ClaimHandler func(network, key string, ips []netip.Addr)

// OnClaims registers h for every IPAMClaim with addresses, now and later.
func (c *Client) OnClaims(h ClaimHandler) error {
	emit := func(obj any, deleted bool) {
		if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			obj, deleted = d.Obj, true
		}
		claim, ok := obj.(*ipamv1alpha1.IPAMClaim)
		if !ok {
			return
		}
		key := (&Claim{Namespace: claim.Namespace, Name: claim.Name}).Key()
		if deleted {
			h(claim.Spec.Network, key, nil)
			return
		}
		h(claim.Spec.Network, key, claimAddrs(claim))
	}
	_, err := c.claimInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { emit(obj, false) },
		UpdateFunc: func(_, obj any) { emit(obj, false) },
		DeleteFunc: func(obj any) { emit(obj, true) },
	})
	return err
}

// ClaimsOf returns the addresses of every claim of network, by claim key.
func (c *Client) ClaimsOf(network string) map[string][]netip.Addr {
	out := map[string][]netip.Addr{}
	claims, err := c.claimLister.List(labels.Everything())
	if err != nil {
		return out
	}
	for _, claim := range claims {
		if claim.Spec.Network == network {
			out[(&Claim{Namespace: claim.Namespace, Name: claim.Name}).Key()] = claimAddrs(claim)
		}
	}
	return out
}

func claimAddrs(claim *ipamv1alpha1.IPAMClaim) []netip.Addr {
	var out []netip.Addr
	for _, s := range claim.Status.IPs {
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Addr())
		}
	}
	return out
}
