package ovntest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/ovntest"
	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// These tests pin down how libovsdb's in-memory server behaves on the
// OVSDB features the ovn package relies on, where it matches ovsdb-server
// and where it does not, so that a change in a libovsdb upgrade shows up
// here rather than as a puzzling failure of a higher-level test.

// insertSwitch creates a switch named name with ports named after ports
// and returns its UUID.
func insertSwitch(t *testing.T, c client.Client, name string, ports ...string) string {
	t.Helper()
	ls := &nbdb.LogicalSwitch{UUID: "ls", Name: name}
	models := []model.Model{ls}
	for i, p := range ports {
		lsp := &nbdb.LogicalSwitchPort{UUID: "lsp" + string(rune('a'+i)), Name: p}
		ls.Ports = append(ls.Ports, lsp.UUID)
		models = append(models, lsp)
	}
	ops, err := c.Create(models...)
	if err != nil {
		t.Fatal(err)
	}
	return ovntest.Transact(t, c, ops...)[0].UUID.GoUUID
}

func switchPorts(t *testing.T, c client.Client, uuid string) []string {
	t.Helper()
	ls := &nbdb.LogicalSwitch{UUID: uuid}
	if err := c.Get(context.Background(), ls); err != nil {
		t.Fatal(err)
	}
	return ls.Ports
}

func countPorts(c client.Client) int {
	var ports []nbdb.LogicalSwitchPort
	_ = c.List(context.Background(), &ports)
	return len(ports)
}

// waitPorts is a "wait until ports == expected, timeout 0" on the switch,
// as ovn.ApplyPorts builds its guard.
func waitPorts(t *testing.T, c client.Client, uuid string, expected []string) ovsdb.Operation {
	t.Helper()
	zero := 0
	ls := &nbdb.LogicalSwitch{UUID: uuid, Ports: expected}
	ops, err := c.Where(ls).Wait(ovsdb.WaitConditionEqual, &zero, ls, &ls.Ports)
	if err != nil {
		t.Fatal(err)
	}
	return ops[0]
}

func TestWaitTimeoutZero(t *testing.T) {
	c := ovntest.ConnectNB(t, ovntest.StartNB(t))
	uuid := insertSwitch(t, c, "sw", "p1")
	ovntest.Eventually(t, "the switch in the cache", func() bool { return countPorts(c) == 1 })
	current := switchPorts(t, c, uuid)

	tests := []struct {
		name     string
		expected []string
		want     string // result error of the wait, "" for success
	}{
		{"matching port set passes", current, ""},
		{"stale non-empty port set times out at once", []string{current[0], "9f3ab8f2-3f55-4c8b-a0e4-000000000000"}, "timed out"},
		// ovsdb-server would time out here: the switch has a port, the
		// expected row has none. The in-memory server treats an empty
		// set in the expected row as "column not given" and skips it.
		{"empty expected port set is not compared (differs from ovsdb-server)", nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := c.Transact(context.Background(), waitPorts(t, c, uuid, tt.expected))
			if err != nil {
				t.Fatal(err)
			}
			if res[0].Error != tt.want {
				t.Fatalf("wait result %q (%s), want %q", res[0].Error, res[0].Details, tt.want)
			}
		})
	}
}

func TestFailedWaitAbortsTheTransaction(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	c := ovntest.ConnectNB(t, endpoint)
	uuid := insertSwitch(t, c, "sw", "p1")
	lsp := &nbdb.LogicalSwitchPort{UUID: "new", Name: "p2"}
	create, err := c.Create(lsp)
	if err != nil {
		t.Fatal(err)
	}
	ls := &nbdb.LogicalSwitch{UUID: uuid}
	mutate, err := c.Where(ls).Mutate(ls, model.Mutation{Field: &ls.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{"new"}})
	if err != nil {
		t.Fatal(err)
	}
	stale := waitPorts(t, c, uuid, []string{"9f3ab8f2-3f55-4c8b-a0e4-000000000000"})
	ops := append([]ovsdb.Operation{stale}, append(create, mutate...)...)
	if _, err := ovntest.TryTransact(c, ops...); err == nil {
		t.Fatal("a transaction with a failed wait committed")
	}
	check := ovntest.ConnectNB(t, endpoint)
	if n := countPorts(check); n != 1 {
		t.Fatalf("%d ports after an aborted transaction, want 1", n)
	}
}

func TestConditionalMonitorGetsAllRows(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	writer := ovntest.ConnectNB(t, endpoint)
	insertSwitch(t, writer, "unowned")

	dbModel, err := nbdb.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	ls := &nbdb.LogicalSwitch{}
	owned := map[string]string{"ovn-overlay/owner": "ovn-overlay"}
	if _, err := c.Monitor(context.Background(), c.NewMonitor(client.WithConditionalTable(ls,
		[]model.Condition{{Field: &ls.ExternalIDs, Function: ovsdb.ConditionIncludes, Value: owned}}))); err != nil {
		t.Fatal(err)
	}
	var got []nbdb.LogicalSwitch
	if err := c.List(context.Background(), &got); err != nil {
		t.Fatal(err)
	}
	// ovsdb-server would send nothing: the switch lacks the owner key.
	if len(got) != 1 {
		t.Fatalf("conditional monitor cached %d switches; the in-memory server is expected to ignore the condition and send 1", len(got))
	}
}

func TestIndexViolation(t *testing.T) {
	c := ovntest.ConnectNB(t, ovntest.StartNB(t))
	as := func() []ovsdb.Operation {
		ops, err := c.Create(&nbdb.AddressSet{UUID: "as", Name: "set"})
		if err != nil {
			t.Fatal(err)
		}
		return ops
	}
	ovntest.Transact(t, c, as()...)
	ops := as()
	res, err := c.Transact(context.Background(), ops...)
	if err != nil {
		t.Fatal(err)
	}
	// The error comes as an extra result after the operations (as from
	// ovsdb-server), the insert itself "succeeded".
	if len(res) != len(ops)+1 || res[0].Error != "" {
		t.Fatalf("results %+v", res)
	}
	last := res[len(res)-1]
	t.Logf("index violation: error %q, details %q", last.Error, last.Details)
	if last.Error != "constraint violation" {
		t.Fatalf("error %q, want constraint violation", last.Error)
	}
	// Neither server says "duplicate" in its details: ovsdb-server 3.1
	// writes 'Transaction causes multiple rows in "Address_Set" table to
	// have identical values ... for index on column "name"'.
	if strings.Contains(last.Details, "duplicate") {
		t.Errorf("details %q mention duplicate", last.Details)
	}
}

func TestGarbageCollection(t *testing.T) {
	endpoint := ovntest.StartNB(t)
	c := ovntest.ConnectNB(t, endpoint)
	keep := insertSwitch(t, c, "keep", "k1", "k2")
	drop := insertSwitch(t, c, "drop", "d1")
	ovntest.Eventually(t, "3 ports", func() bool { return countPorts(c) == 3 })

	// A port removed from its switch is deleted.
	ls := &nbdb.LogicalSwitch{UUID: keep}
	ports := switchPorts(t, c, keep)
	mutate, err := c.Where(ls).Mutate(ls, model.Mutation{Field: &ls.Ports, Mutator: ovsdb.MutateOperationDelete, Value: ports[:1]})
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, c, mutate...)
	ovntest.Eventually(t, "2 ports", func() bool { return countPorts(c) == 2 })

	// A deleted switch takes its ports with it.
	del, err := c.Where(&nbdb.LogicalSwitch{UUID: drop}).Delete()
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, c, del...)
	ovntest.Eventually(t, "1 port", func() bool { return countPorts(c) == 1 })

	// An inserted port nothing refers to is dropped at commit.
	create, err := c.Create(&nbdb.LogicalSwitchPort{Name: "orphan"})
	if err != nil {
		t.Fatal(err)
	}
	ovntest.Transact(t, c, create...)
	fresh := ovntest.ConnectNB(t, endpoint)
	if n := countPorts(fresh); n != 1 {
		t.Fatalf("%d ports after inserting an unreferenced one, want 1", n)
	}
}

func TestStartOVS(t *testing.T) {
	c := ovntest.ConnectOVS(t, ovntest.StartOVSWith(t, ovntest.OVSConfig{ExternalIDs: map[string]string{"system-id": "node1"}}))
	var roots []vswitchd.OpenvSwitch
	if err := c.List(context.Background(), &roots); err != nil {
		t.Fatal(err)
	}
	if len(roots) != 1 || roots[0].ExternalIDs["system-id"] != "node1" || len(roots[0].Bridges) != 1 {
		t.Fatalf("Open_vSwitch rows %+v", roots)
	}
	br := &vswitchd.Bridge{UUID: roots[0].Bridges[0]}
	if err := c.Get(context.Background(), br); err != nil {
		t.Fatal(err)
	}
	if br.Name != "br-int" || br.DatapathType != "netdev" {
		t.Fatalf("bridge %+v", br)
	}
}
