package daemon

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/netns"
)

// errBadEnv marks a CNI_* variable the runtime set wrong; it maps to CNI
// error 4, whose message must name the variable.
var errBadEnv = errors.New("invalid CNI environment variable")

// request is one parsed CNI request for an attachment.
type request struct {
	id    attachment.ID
	conf  *netconf.NetConf
	args  netconf.Args
	netns string
}

// parseRequest validates the config, CNI_ARGS and the identity.
func parseRequest(req cniproto.Request) (*request, error) {
	if err := noNUL(req); err != nil {
		return nil, err
	}
	conf, err := netconf.Parse(req.Config)
	if err != nil {
		return nil, err
	}
	args, err := netconf.ParseArgs(req.Args)
	if err != nil {
		return nil, err
	}
	id, err := identity(conf.Name, req)
	if err != nil {
		return nil, err
	}
	return &request{id: id, conf: conf, args: args, netns: req.Netns}, nil
}

// maxContainerID bounds CNI_CONTAINERID: runtimes use 64 hex digits.
const maxContainerID = 256

// noNUL refuses NUL characters anywhere in a request's strings: no valid
// name, path or value holds one, and ovsdb-server drops a connection that
// sends one (failing every other request on it).
func noNUL(req cniproto.Request) error {
	for name, v := range map[string]string{"CNI_NETNS": req.Netns, "CNI_ARGS": req.Args, "CNI_CONTAINERID": req.ContainerID, "CNI_IFNAME": req.IfName} {
		if strings.ContainsRune(v, 0) {
			return fmt.Errorf("%w: %s contains a NUL character", errBadEnv, name)
		}
	}
	if bytes.Contains(bytes.ToLower(req.Config), []byte(`\u0000`)) {
		return &netconf.FieldError{Field: "config", Problem: "contains a NUL character (\\u0000)", Fix: "remove it"}
	}
	return nil
}

// identity is the request's attachment identity, checked as the CNI spec
// defines its parts: what the runtime's library would refuse is refused
// here too, before any of it reaches a database or the kernel (a NUL, for
// one, makes ovsdb-server drop the whole connection).
func identity(networkName string, req cniproto.Request) (attachment.ID, error) {
	if err := validContainerID(req.ContainerID); err != nil {
		return attachment.ID{}, fmt.Errorf("%w: CNI_CONTAINERID %w", errBadEnv, err)
	}
	if err := netns.ValidateIfName(req.IfName); err != nil {
		return attachment.ID{}, fmt.Errorf("%w: CNI_IFNAME %w; use a kernel interface name such as \"net1\"", errBadEnv, err)
	}
	return attachment.ID{Network: networkName, ContainerID: req.ContainerID, IfName: req.IfName}, nil
}

// validContainerID: non-empty, letters, digits, '_', '.' and '-' only (the
// CNI spec's alphabet), at most maxContainerID bytes.
func validContainerID(id string) error {
	switch {
	case id == "":
		return errors.New("is empty")
	case len(id) > maxContainerID:
		return fmt.Errorf("is %d bytes long; at most %d", len(id), maxContainerID)
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Errorf("%q contains %q; only letters, digits, '_', '.' and '-' are allowed", id, c)
		}
	}
	return nil
}

// checkTopology rejects topologies that parse but are not implemented yet,
// instead of silently treating them as layer2.
func checkTopology(conf *netconf.NetConf) error {
	if conf.Topology == netconf.Layer2 || conf.Topology == netconf.Layer3 || conf.Topology == netconf.Localnet {
		return nil
	}
	return fmt.Errorf("network %q: topology %q is %w in this release (\"layer2\", \"layer3\" and \"localnet\" are); use one of those or wait for %s support",
		conf.Name, conf.Topology, network.ErrNotSupported, conf.Topology)
}

// podNetns checks CNI_NETNS for ADD and CHECK: it must be a network
// namespace, and not the node's own (where a pod's address, or a DEL's
// deletions, would land on the node itself).
func podNetns(path string) error {
	if path == "" {
		return fmt.Errorf("%w: CNI_NETNS is empty; ADD and CHECK need the pod's network namespace", errBadEnv)
	}
	if err := netns.ValidatePodNetns(path); err != nil {
		return fmt.Errorf("%w: CNI_NETNS %w", errBadEnv, err)
	}
	return nil
}

// netnsForDel checks CNI_NETNS for DEL, which must finish even when the pod
// is long gone: a missing path, or the empty file a netns bind mount leaves
// behind, means the namespace is gone (and everything in it); DEL goes on
// without it. The node's own namespace, or something that is not a
// namespace at all (a FIFO, a directory), is refused before anything is
// touched.
func netnsForDel(path string) (string, error) {
	if path == "" {
		return "", nil
	}
	err := netns.ValidatePodNetns(path)
	switch {
	case err == nil:
		return path, nil
	case errors.Is(err, netns.ErrStaleNetns), isNotExist(err):
		return "", nil
	default:
		return "", fmt.Errorf("%w: CNI_NETNS %w", errBadEnv, err)
	}
}

// networkNameForDel is lenient: a config that no longer validates (the NAD
// was edited since ADD) must not stop a pod from being torn down, as long as
// it still names the network.
func networkNameForDel(config []byte) (string, error) {
	conf, err := netconf.Parse(config)
	if err == nil {
		return conf.Name, nil
	}
	var raw struct {
		Name string `json:"name"`
	}
	if json.Unmarshal(config, &raw) == nil && raw.Name != "" {
		return raw.Name, nil
	}
	return "", err
}
