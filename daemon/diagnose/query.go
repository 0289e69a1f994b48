package diagnose

import (
	"fmt"
	"net/netip"
	"net/url"
	"strings"
)

// Path is where the daemon serves diagnoses, on its CNI socket.
const Path = "/diagnose"

// Query names the attachment to diagnose: either by its CNI identity
// (Network, ContainerID, IfName), or by pod (PodNamespace, PodName) with,
// when the pod has several attachments, the network selection element's
// NAD and interface. Peer asks for an ovn-trace towards that address.
type Query struct {
	Network, ContainerID, IfName string
	PodNamespace, PodName        string
	NAD                          string
	Peer                         netip.Addr
}

// ParseSelection reads a network selection element in Multus' short form,
// "[namespace/]name[@interface]"; the namespace defaults to the pod's.
func ParseSelection(element, podNamespace string) (nad, ifName string, err error) {
	nad, ifName, _ = strings.Cut(element, "@")
	if nad == "" {
		return "", "", fmt.Errorf("network selection element %q names no network attachment definition: want [namespace/]name[@interface]", element)
	}
	if !strings.Contains(nad, "/") {
		nad = podNamespace + "/" + nad
	}
	return nad, ifName, nil
}

// Values encodes q as URL query parameters.
func (q Query) Values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"network": q.Network, "container": q.ContainerID, "ifname": q.IfName,
		"namespace": q.PodNamespace, "pod": q.PodName, "nad": q.NAD} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Peer.IsValid() {
		v.Set("peer", q.Peer.String())
	}
	return v
}

// QueryFromValues decodes and validates a query.
func QueryFromValues(v url.Values) (Query, error) {
	q := Query{Network: v.Get("network"), ContainerID: v.Get("container"), IfName: v.Get("ifname"),
		PodNamespace: v.Get("namespace"), PodName: v.Get("pod"), NAD: v.Get("nad")}
	if p := v.Get("peer"); p != "" {
		a, err := netip.ParseAddr(p)
		if err != nil {
			return q, fmt.Errorf("peer %q is not an IP address", p)
		}
		q.Peer = a
	}
	byID := q.Network != "" || q.ContainerID != ""
	byPod := q.PodName != ""
	switch {
	case byID && byPod:
		return q, fmt.Errorf("name the attachment either by pod or by network, container ID and interface, not both")
	case byID && (q.Network == "" || q.ContainerID == "" || q.IfName == ""):
		return q, fmt.Errorf("an attachment named without its pod needs all three of network, container ID and interface")
	case !byID && !byPod:
		return q, fmt.Errorf("name the attachment: a pod (namespace and name), or network, container ID and interface")
	case byPod && q.PodNamespace == "":
		return q, fmt.Errorf("the pod %q needs its namespace", q.PodName)
	}
	return q, nil
}
