package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netconf"
)

// GC removes this node's attachments of the network that the runtime does
// not list in cni.dev/valid-attachments (CNI 1.1).
func (d *Daemon) GC(ctx context.Context, req cniproto.Request) error {
	if err := noNUL(req); err != nil {
		return err
	}
	conf, err := netconf.Parse(req.Config)
	if err != nil {
		return err
	}
	var gc struct {
		Valid []struct {
			ContainerID string `json:"containerID"`
			IfName      string `json:"ifname"`
		} `json:"cni.dev/valid-attachments"`
	}
	if err := json.Unmarshal(req.Config, &gc); err != nil {
		return fmt.Errorf("cni.dev/valid-attachments: %w", err)
	}
	valid := map[attachment.ID]bool{}
	for _, v := range gc.Valid {
		valid[attachment.ID{Network: conf.Name, ContainerID: v.ContainerID, IfName: v.IfName}] = true
	}
	var errs []error
	for _, id := range d.store.IDs(conf.Name) {
		if valid[id] {
			continue
		}
		d.log.Info("gc: removing stale attachment", "attachment", id)
		if err := d.remove(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// remove tears down an attachment no runtime asked about (GC, deleted
// pods), under its lock, in the pod netns ADD recorded if it still is one.
func (d *Daemon) remove(ctx context.Context, id attachment.ID) error {
	unlock := d.store.Lock(id)
	defer unlock()
	return d.teardown(ctx, id, d.recordedNetns(id))
}

// recordedNetns is the pod netns ADD recorded on the attachment's rows,
// if it is still a pod's netns; "" otherwise.
func (d *Daemon) recordedNetns(id attachment.ID) string {
	objs := d.store.Get(id)
	var paths []string
	for _, lsp := range d.portsOf(id, objs, false) {
		paths = append(paths, lsp.ExternalIDs[externalids.Netns])
	}
	for name := range objs.Interfaces {
		if iface, ok := d.ovs.Interface(name); ok {
			paths = append(paths, iface.ExternalIDs[externalids.Netns])
		}
	}
	for _, p := range paths {
		if p != "" && podNetns(p) == nil {
			return p
		}
	}
	return ""
}
