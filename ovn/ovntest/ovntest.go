// Package ovntest runs libovsdb's in-memory OVSDB server with the OVN
// Northbound or the Open_vSwitch schema, for tests that need a database
// but neither root nor OVN/OVS processes.
//
// The in-memory server is not ovsdb-server. Found by running (see this
// package's tests), it differs in:
//
//   - Monitor conditions: ignored. A conditional monitor (the NB client's
//     owned-rows-only monitor) receives every row of its tables, so
//     unowned rows are in the client's cache and ownership checks
//     (ErrNotOwned) cannot be tested here.
//   - "wait": a column whose expected value is the column's default
//     (empty set or map, "", 0, false) is not compared at all, so a guard
//     "the switch still has no ports" always passes. Also, a wait with a
//     timeout above 0 blocks every other transaction until it is
//     satisfied or times out (HoldNB relies on this). And a set column
//     is compared in order (reflect.DeepEqual), where ovsdb-server
//     compares sets: once a client's cached set is in another order than
//     the server's (after deleting a port from the middle, or concurrent
//     inserts), a port-set guard fails although nothing changed.
//     daemon/network's tests put an order-fixing proxy in front
//     (nbproxy_test.go) for that.
//   - Index ("constraint violation") errors: the details text differs from
//     ovsdb-server's, though both come as an extra result after the last
//     operation.
//   - Close: stops accepting connections but keeps existing ones served,
//     so it cannot be used to test a client's reconnection.
//
// Waits with timeout 0 on non-default scalar and map values, strong-reference garbage
// collection of non-root rows, name indexes, referential integrity and
// all-or-nothing transactions behave as in ovsdb-server.
package ovntest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/stdr"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/database/inmemory"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
	"github.com/ovn-org/libovsdb/server"

	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
	"github.com/ovn-overlay/ovn-overlay/ovn/sbdb"
	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// Importing libovsdb's server package sets the process-wide stdr
// verbosity to 5, which makes the server and its database log every row
// they touch; a failing test's output would drown in it. Back to stdr's
// default: errors only.
func init() { stdr.SetVerbosity(0) }

// StartNB starts an empty in-memory OVN_Northbound database listening on a
// unix socket in a temporary directory and returns its endpoint
// ("unix:/path"). The server stops when the test ends.
func StartNB(t testing.TB) (endpoint string) {
	t.Helper()
	return StartNBAt(t, socketPath(t, "OVN_Northbound"))
}

// OVSConfig is the initial content of an in-memory Open_vSwitch database.
type OVSConfig struct {
	// Bridge is the integration bridge's name; "" means "br-int".
	Bridge string
	// DatapathType is the bridge's datapath_type; "" means "netdev".
	DatapathType string
	// ExternalIDs are the Open_vSwitch row's external_ids, e.g. the
	// "system-id" and "ovn-encap-ip" ovn-controller reads.
	ExternalIDs map[string]string
}

// StartOVS starts an in-memory Open_vSwitch database holding the root
// Open_vSwitch row and a bridge br-int with datapath_type netdev, and
// returns its endpoint. The server stops when the test ends.
func StartOVS(t testing.TB) (endpoint string) {
	t.Helper()
	return StartOVSWith(t, OVSConfig{})
}

// StartOVSWith is StartOVS with a chosen bridge and root row.
func StartOVSWith(t testing.TB, cfg OVSConfig) (endpoint string) {
	t.Helper()
	if cfg.Bridge == "" {
		cfg.Bridge = "br-int"
	}
	if cfg.DatapathType == "" {
		cfg.DatapathType = "netdev"
	}
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		t.Fatalf("ovs model: %v", err)
	}
	endpoint = Start(t, vswitchd.Schema(), dbModel)
	c := Connect(t, endpoint, dbModel)
	// Bridge is not a root table: it only survives the transaction
	// because the root row refers to it.
	root := &vswitchd.OpenvSwitch{UUID: "root", Bridges: []string{"bridge"}, ExternalIDs: cfg.ExternalIDs}
	br := &vswitchd.Bridge{UUID: "bridge", Name: cfg.Bridge, DatapathType: cfg.DatapathType}
	ops, err := c.Create(root, br)
	if err != nil {
		t.Fatalf("build Open_vSwitch rows: %v", err)
	}
	Transact(t, c, ops...)
	// This helper client is done; callers connect their own.
	c.Close()
	return endpoint
}

// Start serves an in-memory database with schema (whose name must be
// dbModel's name) on a unix socket and returns its endpoint. StartNB and
// StartOVS are the usual entry points.
func Start(t testing.TB, schema ovsdb.DatabaseSchema, dbModel model.ClientDBModel) (endpoint string) {
	t.Helper()
	return StartAt(t, schema, dbModel, socketPath(t, schema.Name))
}

// StartAt is Start on a socket path of the caller's choosing: a test can
// point a client at a database before it exists.
func StartAt(t testing.TB, schema ovsdb.DatabaseSchema, dbModel model.ClientDBModel, sock string) (endpoint string) {
	t.Helper()
	fullModel, errs := model.NewDatabaseModel(schema, dbModel)
	if len(errs) > 0 {
		t.Fatalf("%s database model: %v", schema.Name, errs)
	}
	db := inmemory.NewDatabase(map[string]model.ClientDBModel{schema.Name: dbModel})
	srv, err := server.NewOvsdbServer(db, fullModel)
	if err != nil {
		t.Fatalf("%s in-memory server: %v", schema.Name, err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve("unix", sock) }()
	deadline := time.Now().Add(5 * time.Second)
	for !srv.Ready() {
		select {
		case err := <-served:
			t.Fatalf("%s in-memory server on %s: %v", schema.Name, sock, err)
		case <-time.After(5 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s in-memory server on %s: not ready after 5s", schema.Name, sock)
		}
	}
	// Cleanups run last-in first-out, so clients a test connects after
	// this point are closed before the server.
	t.Cleanup(srv.Close)
	return "unix:" + sock
}

// socketPath picks a socket path in t.TempDir(), or in a shorter
// temporary directory if that one would exceed the 108-byte limit of a
// unix socket address (long test names make long TempDirs).
func socketPath(t testing.TB, dbName string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), dbName+".sock")
	if len(sock) < 100 {
		return sock
	}
	dir, err := os.MkdirTemp("", "ovntest")
	if err != nil {
		t.Fatalf("socket directory: %v", err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, dbName+".sock")
}

// Connect returns a plain libovsdb client of endpoint monitoring every
// table of dbModel (and, the server ignoring conditions, every row),
// closed when the test ends. Tests use it to look at the database as a
// whole or to write rows the code under test did not write, e.g. rows
// that are not owned by ovn-overlay.
func Connect(t testing.TB, endpoint string, dbModel model.ClientDBModel) client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	quiet := logr.Discard()
	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint), client.WithLogger(&quiet))
	if err != nil {
		t.Fatalf("client of %s: %v", endpoint, err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect to %s: %v", endpoint, err)
	}
	t.Cleanup(c.Close)
	if _, err := c.MonitorAll(ctx); err != nil {
		t.Fatalf("monitor %s: %v", endpoint, err)
	}
	return c
}

// ConnectNB is Connect with the Northbound model.
func ConnectNB(t testing.TB, endpoint string) client.Client {
	t.Helper()
	dbModel, err := nbdb.FullDatabaseModel()
	if err != nil {
		t.Fatalf("nb model: %v", err)
	}
	return Connect(t, endpoint, dbModel)
}

// ConnectOVS is Connect with the Open_vSwitch model.
func ConnectOVS(t testing.TB, endpoint string) client.Client {
	t.Helper()
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		t.Fatalf("ovs model: %v", err)
	}
	return Connect(t, endpoint, dbModel)
}

// Transact runs ops through c and fails the test unless every operation
// succeeded. It returns the results, e.g. the UUIDs of inserted rows.
func Transact(t testing.TB, c client.Client, ops ...ovsdb.Operation) []ovsdb.OperationResult {
	t.Helper()
	res, err := TryTransact(c, ops...)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// TryTransact runs ops through c and returns an error naming every failed
// operation if the transaction did not commit.
func TryTransact(c client.Client, ops ...ovsdb.Operation) ([]ovsdb.OperationResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := c.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("transact: %w", err)
	}
	if _, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		var details string
		for i, r := range res {
			if r.Error != "" {
				details += fmt.Sprintf(" [result %d: %s: %s]", i, r.Error, r.Details)
			}
		}
		return res, fmt.Errorf("transaction failed: %w:%s", err, details)
	}
	return res, nil
}

// Eventually polls cond every 10ms until it returns true, and fails the
// test if it has not within 5 seconds. Client caches are updated
// asynchronously after a commit; this is how a test waits for them.
func Eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after 5s waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// HoldNB makes the in-memory NB server at endpoint hold every transaction
// that arrives during the next d (rounded up to a multiple of 200ms):
// they queue, and run one after the other once the hold ends. It returns
// once the hold is in effect; done is closed when it has ended.
//
// This makes races deterministic: clients that build their transactions
// from their caches while the hold is on all see the same state, and the
// server then commits them in some order, so every precondition after the
// first is checked against a database the writer did not read.
//
// It works because the in-memory server runs transactions under one
// mutex and, for a "wait" with a timeout, sleeps holding it until the
// timeout: HoldNB sends such a wait on a row that never exists.
// ovsdb-server does not block other transactions during a wait, so this
// is a test device for the in-memory server only.
func HoldNB(t testing.TB, endpoint string, d time.Duration) (done <-chan struct{}) {
	t.Helper()
	holder := ConnectNB(t, endpoint)
	prober := ConnectNB(t, endpoint)
	ms := int(d / time.Millisecond)
	hold := ovsdb.Operation{
		Op:      ovsdb.OperationWait,
		Table:   nbdb.LogicalSwitchTable,
		Where:   []ovsdb.Condition{{Column: "name", Function: ovsdb.ConditionEqual, Value: "ovntest-hold"}},
		Columns: []string{"name"},
		Until:   string(ovsdb.WaitConditionEqual),
		Rows:    []ovsdb.Row{{"name": "never"}},
		Timeout: &ms,
	}
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		// The wait times out by design; its result does not matter.
		ctx, cancel := context.WithTimeout(context.Background(), d+10*time.Second)
		defer cancel()
		_, _ = holder.Transact(ctx, hold)
	}()
	// The hold is on once a trivial transaction stops going through.
	probe := ovsdb.Operation{Op: ovsdb.OperationSelect, Table: nbdb.LogicalSwitchTable,
		Where: []ovsdb.Condition{{Column: "name", Function: ovsdb.ConditionEqual, Value: "ovntest-probe"}}}
	deadline := time.Now().Add(5 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := prober.Transact(ctx, probe)
		cancel()
		if err != nil {
			return ended
		}
		if time.Now().After(deadline) {
			t.Fatalf("HoldNB: transactions still go through after 5s")
		}
	}
}

// Northbound connects the product's NB client to endpoint, as one daemon
// would (its own connection and cache), and closes it on cleanup.
func Northbound(t testing.TB, endpoint string) *ovn.Northbound {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	nb, err := ovn.ConnectNorthbound(ctx, endpoint, logr.Discard())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nb.Close)
	return nb
}

// StartSBAt starts an empty in-memory OVN Southbound database on sock.
func StartSBAt(t testing.TB, sock string) (endpoint string) {
	t.Helper()
	dbModel, err := sbdb.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	return StartAt(t, sbdb.Schema(), dbModel, sock)
}

// StartNBAt starts an empty in-memory OVN Northbound database on sock.
func StartNBAt(t testing.TB, sock string) (endpoint string) {
	t.Helper()
	dbModel, err := nbdb.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	return StartAt(t, nbdb.Schema(), dbModel, sock)
}
