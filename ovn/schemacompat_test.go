package ovn_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/sandbox"
)

// Daemons and OVN are upgraded at different times, so one daemon binary
// must work against every supported Northbound schema: older ones (the
// models leave out what 23.03 lacks) and newer ones (the monitors ask for
// the model's columns only, and writes name only those, so a column the
// daemon does not know keeps its value). A server older than the oldest
// supported release is refused with an error that says so.

const nbSchemaPath = "usr/share/ovn/ovn-nb.ovsschema"

func schemaOf(t *testing.T, path string) map[string]any {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s map[string]any
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s
}

func writeSchema(t *testing.T, s map[string]any) string {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "nb.ovsschema")
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func lspColumns(s map[string]any) map[string]any {
	return s["tables"].(map[string]any)["Logical_Switch_Port"].(map[string]any)["columns"].(map[string]any)
}

// newestSchema is OVN 25.03's NB schema, from the prepared root.
func newestSchema(t *testing.T) map[string]any {
	t.Helper()
	r, err := sandbox.LookupRelease("25.03")
	if err != nil {
		t.Skipf("OVN 25.03 not prepared (make deps prepares it): %v", err)
	}
	return schemaOf(t, r.Path("/"+nbSchemaPath))
}

func TestNorthboundSchemaVersions(t *testing.T) {
	oldest := func(t *testing.T) map[string]any { return schemaOf(t, "/"+nbSchemaPath) }
	tests := []struct {
		name   string
		schema func(t *testing.T) map[string]any
		// future names a column only the server knows; the daemon must
		// leave its value alone.
		future  string
		refused string // a word the refusal must contain; "" if accepted
	}{
		{name: "OVN 23.03, the oldest supported", schema: oldest},
		{name: "OVN 25.03", schema: newestSchema},
		{name: "a newer OVN with a column and a table the models lack", future: "future_option", schema: func(t *testing.T) map[string]any {
			s := newestSchema(t)
			s["version"] = "99.0.0"
			lspColumns(s)["future_option"] = map[string]any{"type": map[string]any{"key": "string", "value": "string", "min": 0, "max": "unlimited"}}
			s["tables"].(map[string]any)["Future_Table"] = map[string]any{"columns": map[string]any{"name": map[string]any{"type": "string"}}, "isRoot": true}
			return s
		}},
		{name: "an OVN older than supported", refused: "port_security", schema: func(t *testing.T) map[string]any {
			s := oldest(t)
			delete(lspColumns(s), "port_security")
			return s
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			endpoint, err := central.StartExtraDB("schema"+string(rune('a'+i)), writeSchema(t, tt.schema(t)))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			nb, err := ovn.ConnectNorthbound(ctx, endpoint, logr.Discard())
			if tt.refused != "" {
				if err == nil {
					nb.Close()
					t.Fatal("connected to a server that lacks a column the models use")
				}
				for _, want := range []string{tt.refused, ovn.OldestSupported} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("refusal %q does not name %q", err, want)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer nb.Close()
			exerciseNorthbound(t, ctx, nb, endpoint, tt.future)
		})
	}
}

func waitForLabel(t *testing.T, nb *ovn.Northbound, want string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got, ok := nb.Port("compat-port")
		if ok && got.ExternalIDs["k"] == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the cache never showed external_ids:k=%s on the port: %+v %v", want, got, ok)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exerciseNorthbound creates a switch and a port the way the daemon does,
// lets another client set a column the models lack (when future is set),
// relabels the port and checks that the cache follows and nothing the
// daemon does not own was lost.
func exerciseNorthbound(t *testing.T, ctx context.Context, nb *ovn.Northbound, endpoint, future string) {
	t.Helper()
	owned := map[string]string{externalids.Owner: externalids.OwnerValue}
	ls, err := nb.EnsureSwitch(ctx, "compat", owned)
	if err != nil {
		t.Fatal(err)
	}
	p := &nbdb.LogicalSwitchPort{Name: "compat-port", Addresses: []string{"0a:58:0a:00:00:05 10.0.0.5"},
		PortSecurity: []string{"0a:58:0a:00:00:05 10.0.0.5"}, ExternalIDs: map[string]string{externalids.Owner: externalids.OwnerValue, "k": "1"}}
	uuids, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Add: []*nbdb.LogicalSwitchPort{p}, Guard: true})
	if err != nil {
		t.Fatal(err)
	}
	if future != "" {
		// Another client (a newer OVN component) writes the column together
		// with one the daemon knows, in one transaction: the cache must
		// apply the known change and skip the unknown column.
		txn := `["OVN_Northbound",{"op":"update","table":"Logical_Switch_Port","where":[["_uuid","==",["uuid","` + uuids[0] + `"]]],` +
			`"row":{"` + future + `":["map",[["x","y"]]],"external_ids":["map",[["` + externalids.Owner + `","` + externalids.OwnerValue + `"],["k","other"]]]}}]`
		if out, err := central.Run("ovsdb-client", "transact", endpoint, txn); err != nil {
			t.Fatalf("set %s: %v: %s", future, err, out)
		}
		waitForLabel(t, nb, "other")
	}
	relabel := *p
	relabel.UUID = uuids[0]
	relabel.ExternalIDs = map[string]string{externalids.Owner: externalids.OwnerValue, "k": "2"}
	if _, err := nb.ApplyPorts(ctx, ovn.PortChange{Switch: ls, Relabel: []*nbdb.LogicalSwitchPort{&relabel}}); err != nil {
		t.Fatalf("relabel after another client's write: %v", err)
	}
	waitForLabel(t, nb, "2")
	if future != "" {
		out, err := central.Run("ovsdb-client", "dump", endpoint, "OVN_Northbound", "Logical_Switch_Port", future)
		if err != nil || !strings.Contains(out, `x=y`) {
			t.Errorf("%s lost its value after the daemon's write: %q %v", future, out, err)
		}
	}
}
