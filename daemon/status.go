package daemon

import (
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
)

// Status tells the runtime whether ADD can succeed now (CNI 1.1 STATUS).
func (d *Daemon) Status() error {
	var problems []string
	if !d.nb.Connected() {
		problems = append(problems, "not connected to the OVN Northbound database")
	}
	if !d.sb.Connected() {
		problems = append(problems, "not connected to the OVN Southbound database")
	} else if !d.sb.ChassisRegistered() {
		problems = append(problems, "ovn-controller has not registered this node's chassis in the Southbound database")
	}
	if !d.ovs.Connected() {
		problems = append(problems, "not connected to the local Open_vSwitch database")
	}
	if len(problems) > 0 {
		return types.NewError(cniproto.ErrPluginNotAvailable, "ovn-overlay cannot attach pods: "+strings.Join(problems, "; "), "")
	}
	return nil
}
