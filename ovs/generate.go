// Package ovs manages this node's Open_vSwitch database: it plugs pod veths
// into the integration bridge and watches ovn-controller mark them
// ovn-installed. It talks OVSDB directly through libovsdb; it never forks
// ovs-vsctl.
package ovs

// The typed models are generated from the schema installed by Debian's
// openvswitch-switch package. Rerun with `go generate ./ovs/` after an upgrade.
//go:generate go run github.com/ovn-org/libovsdb/cmd/modelgen -p vswitchd -o vswitchd /usr/share/openvswitch/vswitch.ovsschema

// modelgen writes its "Code generated" notice over two lines; tools only
// recognise the one-line form.
//go:generate sh -c "sed -i -e '1{N;s#\\n// DO NOT EDIT\\.#. DO NOT EDIT.#}' vswitchd/*.go"
