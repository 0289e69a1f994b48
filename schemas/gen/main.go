// Command gen generates the project's OVSDB models (ovn/nbdb, ovn/sbdb,
// ovs/vswitchd) with libovsdb's modelgen, from the newest supported
// OVN/OVS schemas, pruned so that one daemon binary works against every
// supported server: see schemas/README.md. Run it with `make generate`.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ovn-org/libovsdb/ovsdb"
)

// database is one schema and the model package generated from it.
type database struct {
	schema string   // path inside an OVN/OVS root
	pkg    string   // Go package name
	out    string   // output directory, relative to the repository
	tables []string // the tables the project reads or writes
}

// The tables the daemon uses. A table added here must exist in the oldest
// supported release with every column the model keeps.
var databases = []database{
	{"usr/share/ovn/ovn-nb.ovsschema", "nbdb", "ovn/nbdb",
		[]string{"Logical_Switch", "Logical_Switch_Port", "Logical_Router", "Logical_Router_Port", "Address_Set",
			"NAT", "Logical_Router_Static_Route", "Gateway_Chassis", "DHCP_Options"}},
	{"usr/share/ovn/ovn-sb.ovsschema", "sbdb", "ovn/sbdb", []string{"Chassis"}},
	{"usr/share/openvswitch/vswitch.ovsschema", "vswitchd", "ovs/vswitchd",
		[]string{"Open_vSwitch", "Bridge", "Port", "Interface"}},
}

func main() {
	newest := flag.String("newest", "/var/cache/ovn-overlay/ovn-25.03", "root of the newest supported OVN/OVS (scripts/ovn-root.sh prepares it)")
	oldest := flag.String("oldest", "/", "root of the oldest supported OVN/OVS (the host's Debian 12 packages)")
	flag.Parse()
	for _, db := range databases {
		if err := generate(db, *newest, *oldest); err != nil {
			log.Fatalf("%s: %v", db.pkg, err)
		}
	}
}

func generate(db database, newestRoot, oldestRoot string) error {
	newest, err := readSchema(filepath.Join(newestRoot, db.schema))
	if err != nil {
		return err
	}
	oldest, err := readSchema(filepath.Join(oldestRoot, db.schema))
	if err != nil {
		return err
	}
	pruned, dropped, err := prune(newest, oldest, db.tables)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", db.pkg+"-*.ovsschema")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := json.NewEncoder(tmp).Encode(pruned); err != nil {
		return err
	}
	tmp.Close()
	// Old files of tables no longer generated must go.
	old, _ := filepath.Glob(filepath.Join(db.out, "*.go"))
	for _, f := range old {
		if err := os.Remove(f); err != nil {
			return err
		}
	}
	if out, err := exec.Command("go", "run", "github.com/ovn-org/libovsdb/cmd/modelgen", "-p", db.pkg, "-o", db.out, tmp.Name()).CombinedOutput(); err != nil {
		return fmt.Errorf("modelgen: %w: %s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(db.out, "*.go"))
	for _, f := range files {
		if err := oneLineNotice(f); err != nil {
			return err
		}
	}
	fmt.Printf("%s: %s %s (oldest supported %s), tables %s\n", db.out, newest.Name, newest.Version, oldest.Version, strings.Join(db.tables, ", "))
	for _, d := range dropped {
		fmt.Printf("  left out (not in %s): %s\n", oldest.Version, d)
	}
	return nil
}

func readSchema(path string) (*ovsdb.DatabaseSchema, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s ovsdb.DatabaseSchema
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &s, nil
}

// prune keeps the given tables of newest, and of each the columns the
// oldest release has with the same Go type: a model column the server
// lacks makes libovsdb refuse the connection, so the model holds what every
// supported server has. Indexes stay only if all their columns do.
func prune(newest, oldest *ovsdb.DatabaseSchema, tables []string) (*ovsdb.DatabaseSchema, []string, error) {
	out := *newest
	out.Tables = map[string]ovsdb.TableSchema{}
	var dropped []string
	for _, name := range tables {
		nt, ok := newest.Tables[name]
		if !ok {
			return nil, nil, fmt.Errorf("table %s is not in %s %s", name, newest.Name, newest.Version)
		}
		ot, ok := oldest.Tables[name]
		if !ok {
			return nil, nil, fmt.Errorf("table %s is not in the oldest supported %s %s", name, oldest.Name, oldest.Version)
		}
		t := nt
		t.Columns = map[string]*ovsdb.ColumnSchema{}
		for col, cs := range nt.Columns {
			ocs, ok := ot.Columns[col]
			if !ok {
				dropped = append(dropped, name+"."+col)
				continue
			}
			if nw, od := ovsdb.NativeType(cs), ovsdb.NativeType(ocs); nw != od {
				dropped = append(dropped, fmt.Sprintf("%s.%s (type %s, was %s)", name, col, nw, od))
				continue
			}
			t.Columns[col] = cs
		}
		t.Indexes = nil
		for _, idx := range nt.Indexes {
			keep := true
			for _, col := range idx {
				_, has := t.Columns[col]
				keep = keep && has
			}
			if keep {
				t.Indexes = append(t.Indexes, idx)
			}
		}
		out.Tables[name] = t
	}
	sort.Strings(dropped)
	return &out, dropped, nil
}

// oneLineNotice turns modelgen's two-line "Code generated" notice into the
// one-line form tools recognise.
func oneLineNotice(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	fixed := strings.Replace(string(b), "// Code generated by \"libovsdb.modelgen\"\n// DO NOT EDIT.", "// Code generated by \"libovsdb.modelgen\". DO NOT EDIT.", 1)
	if fixed == string(b) {
		return nil
	}
	return os.WriteFile(path, []byte(fixed), 0o644)
}
