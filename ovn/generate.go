// Package ovn writes this node's share of the OVN Northbound database: the
// logical switches of secondary networks and the logical switch ports of the
// pods attached to them. It talks OVSDB directly through libovsdb and keeps a
// monitored in-memory cache of the tables it needs, so the CNI hot path never
// reads from the database.
package ovn

// The typed models are generated from the schemas installed by Debian's
// ovn-central package. Rerun with `go generate ./ovn/` after an OVN upgrade.
//go:generate go run github.com/ovn-org/libovsdb/cmd/modelgen -p nbdb -o nbdb /usr/share/ovn/ovn-nb.ovsschema
//go:generate go run github.com/ovn-org/libovsdb/cmd/modelgen -p sbdb -o sbdb /usr/share/ovn/ovn-sb.ovsschema

// modelgen writes its "Code generated" notice over two lines; tools (gofmt
// -l skips, linters, GitHub's diff view) only recognise the one-line form.
//go:generate sh -c "sed -i -e '1{N;s#\\n// DO NOT EDIT\\.#. DO NOT EDIT.#}' nbdb/*.go sbdb/*.go"
