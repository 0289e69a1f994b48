package daemon

import (
	"context"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
)

// Del detaches a pod. It succeeds when there is nothing to remove, as the
// CNI spec requires: DEL may come twice, for an ADD that never happened or
// failed, after the pod's netns is gone, or with a config that no longer
// validates.
func (d *Daemon) Del(ctx context.Context, req cniproto.Request) error {
	if err := noNUL(req); err != nil {
		return err
	}
	name, err := networkNameForDel(req.Config)
	if err != nil {
		return err
	}
	id, err := identity(name, req)
	if err != nil {
		return err
	}
	podNetns, err := netnsForDel(req.Netns)
	if err != nil {
		return err
	}
	unlock := d.store.Lock(id)
	defer unlock()
	return d.teardown(ctx, id, podNetns)
}
