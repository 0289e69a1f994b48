package ovn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// ErrConflict means a transaction's precondition failed because another
// writer changed the rows it read. The caller refreshes and retries.
var ErrConflict = errors.New("concurrent NB change")

// ErrUnavailable means the NB could not be reached for a transaction (not
// connected, or the connection dropped mid-way): a transient condition the
// caller reports as "try again later".
var ErrUnavailable = errors.New("OVN Northbound database unavailable")

// ErrNameTaken means a row we create has a unique name that a row not in
// our cache (another system's) already holds.
var ErrNameTaken = errors.New("name already taken by a row not owned by ovn-overlay")

// ErrNotOwned means a row with the wanted name exists but was not created by
// this project, so it is left alone.
var ErrNotOwned = errors.New("row exists but is not owned by ovn-overlay")

// Northbound is a connection to the OVN Northbound database with a monitored
// cache of the rows this project owns.
type Northbound struct {
	client client.Client

	// changed is closed and replaced whenever a monitored switch or router
	// changes,
	// so writers whose precondition failed can wait for the cache to catch
	// up instead of polling it.
	mu      sync.Mutex
	changed chan struct{}
	// routerPorts is closed at the next router port or gateway chassis
	// change, like changed.
	routerPorts chan struct{}
	// dhcpOptions is closed at the next DHCP_Options change, like changed.
	dhcpOptions chan struct{}
}

// ConnectNorthbound connects to endpoint ("unix:/path" or "tcp:host:port")
// and monitors the switches, ports, routers, router ports, address sets,
// gateway chassis and DHCP options owned by ovn-overlay. Only owned rows
// are cached, so memory does not grow with ports that other systems put in
// the same NB.
func ConnectNorthbound(ctx context.Context, endpoint string, logger logr.Logger, options ...Option) (*Northbound, error) {
	dbModel, err := nbdb.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("nb model: %w", err)
	}
	// Logical_Switch and Logical_Router names are not unique in the
	// schema; client indexes make name look-ups O(1) in the cache.
	dbModel.SetIndexes(map[string][]model.ClientIndex{
		nbdb.LogicalSwitchTable: {{Columns: []model.ColumnKey{{Column: "name"}}}},
		nbdb.LogicalRouterTable: {{Columns: []model.ColumnKey{{Column: "name"}}}},
	})
	opts, err := connectOptions(endpoint, true, options)
	if err != nil {
		return nil, err
	}
	c, err := client.NewOVSDBClient(dbModel, append(opts, client.WithLogger(&logger))...)
	if err != nil {
		return nil, fmt.Errorf("nb client: %w", err)
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to NB %s: %w", endpoint, explainSchema("OVN Northbound", err))
	}
	nb := &Northbound{client: c, changed: make(chan struct{}), routerPorts: make(chan struct{}), dhcpOptions: make(chan struct{})}
	c.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(table string, _ model.Model) { nb.notify(table) },
		UpdateFunc: func(table string, _, _ model.Model) { nb.notify(table) },
		DeleteFunc: func(table string, _ model.Model) { nb.notify(table) },
	})
	owned := map[string]string{externalids.Owner: externalids.OwnerValue}
	ls, lsp := &nbdb.LogicalSwitch{}, &nbdb.LogicalSwitchPort{}
	lr, lrp := &nbdb.LogicalRouter{}, &nbdb.LogicalRouterPort{}
	as := &nbdb.AddressSet{}
	gc := &nbdb.GatewayChassis{}
	dhcp := &nbdb.DHCPOptions{}
	// Each table: the rows we own, the model's columns.
	ownedRows := func(m model.Model, externalIDs *map[string]string) client.MonitorOption {
		return client.WithConditionalTable(m, []model.Condition{{Field: externalIDs, Function: ovsdb.ConditionIncludes, Value: owned}}, Columns(m)...)
	}
	_, err = c.Monitor(ctx, c.NewMonitor(
		ownedRows(ls, &ls.ExternalIDs),
		ownedRows(lsp, &lsp.ExternalIDs),
		ownedRows(lr, &lr.ExternalIDs),
		ownedRows(lrp, &lrp.ExternalIDs),
		ownedRows(as, &as.ExternalIDs),
		ownedRows(gc, &gc.ExternalIDs),
		ownedRows(dhcp, &dhcp.ExternalIDs),
	))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("monitor NB %s: %w", endpoint, err)
	}
	return nb, nil
}

// Close disconnects.
func (nb *Northbound) Close() { nb.client.Close() }

// Connected reports whether the connection is up.
func (nb *Northbound) Connected() bool { return nb.client.Connected() }

// Alive reports whether the server answers an echo now.
func (nb *Northbound) Alive(ctx context.Context) bool { return alive(ctx, nb.client) }

// PortHandler receives owned logical switch port changes. Its methods run on
// the cache's event goroutine, in order, and must not block. An update is
// one call, not a delete and an add: a reader between the two would see
// the port missing (northd updates every port it binds).
type PortHandler interface {
	PortAdded(*nbdb.LogicalSwitchPort)
	PortUpdated(old, new *nbdb.LogicalSwitchPort)
	PortDeleted(*nbdb.LogicalSwitchPort)
}

// AddPortHandler registers h for owned logical switch port changes.
func (nb *Northbound) AddPortHandler(h PortHandler) {
	nb.client.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc: func(table string, m model.Model) {
			if table == nbdb.LogicalSwitchPortTable {
				h.PortAdded(m.(*nbdb.LogicalSwitchPort))
			}
		},
		UpdateFunc: func(table string, old, new model.Model) {
			if table == nbdb.LogicalSwitchPortTable {
				h.PortUpdated(old.(*nbdb.LogicalSwitchPort), new.(*nbdb.LogicalSwitchPort))
			}
		},
		DeleteFunc: func(table string, m model.Model) {
			if table == nbdb.LogicalSwitchPortTable {
				h.PortDeleted(m.(*nbdb.LogicalSwitchPort))
			}
		},
	})
}

func (nb *Northbound) notify(table string) {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	switch table {
	case nbdb.LogicalSwitchTable, nbdb.LogicalRouterTable:
		close(nb.changed)
		nb.changed = make(chan struct{})
	case nbdb.LogicalRouterPortTable, nbdb.GatewayChassisTable:
		close(nb.routerPorts)
		nb.routerPorts = make(chan struct{})
	case nbdb.DHCPOptionsTable:
		close(nb.dhcpOptions)
		nb.dhcpOptions = make(chan struct{})
	}
}

// RouterPortsChanged returns a channel closed at the next change of any
// owned router port or gateway chassis in the cache.
func (nb *Northbound) RouterPortsChanged() <-chan struct{} {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	return nb.routerPorts
}

// Changed returns a channel closed at the next change of any owned
// logical switch or router in the cache.
func (nb *Northbound) Changed() <-chan struct{} {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	return nb.changed
}

// Switch returns the cached owned logical switch called name.
func (nb *Northbound) Switch(name string) (*nbdb.LogicalSwitch, bool) {
	// Get only consults schema indexes; Where+List also uses the client
	// index on name, so this stays O(1).
	var found []nbdb.LogicalSwitch
	if err := nb.client.Where(&nbdb.LogicalSwitch{Name: name}).List(context.Background(), &found); err != nil || len(found) == 0 {
		return nil, false
	}
	return &found[0], true
}

// Port returns the cached owned logical switch port called name.
func (nb *Northbound) Port(name string) (*nbdb.LogicalSwitchPort, bool) {
	lsp := &nbdb.LogicalSwitchPort{Name: name}
	if err := nb.client.Get(context.Background(), lsp); err != nil {
		return nil, false
	}
	return lsp, true
}

// PortByUUID returns the cached owned logical switch port with that UUID.
func (nb *Northbound) PortByUUID(uuid string) (*nbdb.LogicalSwitchPort, bool) {
	lsp := &nbdb.LogicalSwitchPort{UUID: uuid}
	if err := nb.client.Get(context.Background(), lsp); err != nil {
		return nil, false
	}
	return lsp, true
}

// Ports returns the cached owned ports for which keep returns true.
func (nb *Northbound) Ports(keep func(*nbdb.LogicalSwitchPort) bool) ([]nbdb.LogicalSwitchPort, error) {
	var out []nbdb.LogicalSwitchPort
	if err := nb.client.WhereCache(keep).List(context.Background(), &out); err != nil {
		return nil, fmt.Errorf("list ports from NB cache: %w", err)
	}
	return out, nil
}

// EnsureSwitch returns the owned logical switch called name, creating it
// with externalIDs if it does not exist. Creation is guarded by a wait
// operation, so two nodes racing to create the same network end up with
// one switch: the loser's transaction fails and it adopts the winner's.
func (nb *Northbound) EnsureSwitch(ctx context.Context, name string, externalIDs map[string]string) (*nbdb.LogicalSwitch, error) {
	return ensure(ctx, nb, "logical switch "+name,
		func() (*nbdb.LogicalSwitch, bool) { return nb.Switch(name) },
		func() error { return nb.createSwitch(ctx, name, externalIDs) })
}

// ensure looks a row up in the cache and creates it if missing, then waits
// for the cache to show it (ours or a racing node's).
func ensure[T any](ctx context.Context, nb *Northbound, what string, lookup func() (T, bool), create func() error) (T, error) {
	var zero T
	for attempt := 0; attempt < 5; attempt++ {
		if row, ok := lookup(); ok {
			return row, nil
		}
		changed := nb.Changed()
		if row, ok := lookup(); ok { // created between the two looks
			return row, nil
		}
		if err := create(); err != nil && !errors.Is(err, ErrConflict) {
			return zero, err
		}
		if err := waitClosed(ctx, changed, 5*time.Second); err != nil {
			return zero, fmt.Errorf("%s: waiting for the NB cache: %w", what, err)
		}
	}
	return zero, fmt.Errorf("%s: created but never seen in the NB cache", what)
}

func (nb *Northbound) createSwitch(ctx context.Context, name string, externalIDs map[string]string) error {
	ls := &nbdb.LogicalSwitch{UUID: "newswitch", Name: name, ExternalIDs: owned(externalIDs)}
	return nb.createUnique(ctx, nbdb.LogicalSwitchTable, name, ls, func() bool { _, ok := nb.Switch(name); return ok })
}

// owned returns ids plus the ownership mark.
func owned(ids map[string]string) map[string]string {
	out := map[string]string{externalids.Owner: externalids.OwnerValue}
	for k, v := range ids {
		out[k] = v
	}
	return out
}

// createUnique inserts m (a row called name in table) unless a row of that
// name exists, atomically: the schema does not make these names unique, a
// wait operation does.
//
// The operations that create the row are m's insert, or ops when m is nil
// (a row that must be linked from its parent in the same transaction).
func (nb *Northbound) createUnique(ctx context.Context, table, name string, m model.Model, inCache func() bool, ops ...ovsdb.Operation) error {
	create := ops
	if m != nil {
		var err error
		if create, err = nb.client.Create(m); err != nil {
			return fmt.Errorf("%s %s: build create: %w", table, name, err)
		}
	}
	// "The rows named name, projected on name, differ from [{name}]" holds
	// exactly when no such row exists yet (owned or not).
	zero := 0
	absent := ovsdb.Operation{
		Op:      ovsdb.OperationWait,
		Table:   table,
		Where:   []ovsdb.Condition{{Column: "name", Function: ovsdb.ConditionEqual, Value: name}},
		Columns: []string{"name"},
		Until:   string(ovsdb.WaitConditionNotEqual),
		Rows:    []ovsdb.Row{{"name": name}},
		Timeout: &zero,
	}
	_, err := nb.transact(ctx, append([]ovsdb.Operation{absent}, create...))
	if errors.Is(err, ErrConflict) && !inCache() {
		// Not in our owned-only cache: maybe someone else's row.
		if exists, _ := nb.existsUnowned(ctx, table, name); exists {
			return fmt.Errorf("%s %s: %w", table, name, ErrNotOwned)
		}
	}
	if err != nil {
		return fmt.Errorf("create %s %s: %w", table, name, err)
	}
	return nil
}

// existsUnowned asks the server (not the owned-only cache) whether a row
// of that name exists. Only used on the rare create-conflict path.
func (nb *Northbound) existsUnowned(ctx context.Context, table, name string) (bool, error) {
	sel := ovsdb.Operation{
		Op:      ovsdb.OperationSelect,
		Table:   table,
		Where:   []ovsdb.Condition{{Column: "name", Function: ovsdb.ConditionEqual, Value: name}},
		Columns: []string{"external_ids"},
	}
	res, err := nb.transact(ctx, []ovsdb.Operation{sel})
	if err != nil {
		return false, err
	}
	for _, row := range res[0].Rows {
		if ids, ok := row["external_ids"].(ovsdb.OvsMap); ok && ids.GoMap[externalids.Owner] == externalids.OwnerValue {
			return false, nil
		}
	}
	return len(res[0].Rows) > 0, nil
}

// PortChange is a set of logical switch port additions and removals on one
// switch, applied in one transaction.
type PortChange struct {
	Switch *nbdb.LogicalSwitch
	// Add are new ports. Their UUID field must be empty.
	Add []*nbdb.LogicalSwitchPort
	// RemoveUUIDs are ports to drop from the switch (OVSDB garbage
	// collects them, since nothing else refers to them).
	RemoveUUIDs []string
	// Relabel are existing ports (UUID set) whose external_ids are
	// replaced: a pre-provisioned port handed to a pod.
	Relabel []*nbdb.LogicalSwitchPort
	// Enable and Disable are ports (UUIDs) whose enabled column is set:
	// a live migration hands a VM's traffic from its source port to its
	// target port in one transaction, so the two are never both enabled.
	// A disabled port also has no addresses (its port_security keeps
	// them): ovn-northd gives a disabled port's MAC a "drop" L2 lookup
	// flow with the same match and priority as the enabled port's
	// "output", and ovn-controller keeps whichever it met first, so two
	// ports with one MAC in the addresses column can black-hole the VM.
	// Enabling a port copies its port_security back into addresses.
	Enable, Disable []string
	// AddressSets are address-set edits made in the same transaction, so
	// a set never lists an address whose port does not exist, or misses
	// one whose port does.
	AddressSets []AddressSetChange
	// Guard makes the transaction fail with ErrConflict if the switch's
	// port set differs from Switch.Ports, i.e. someone else added or
	// removed a port since the cache was read. Address uniqueness on a
	// cluster-wide switch rests on it.
	Guard bool
}

// ApplyPorts commits c and returns the UUIDs of the added ports, in order.
func (nb *Northbound) ApplyPorts(ctx context.Context, c PortChange) ([]string, error) {
	var ops []ovsdb.Operation
	if c.Guard {
		wait, err := nb.portSetGuard(c.Switch)
		if err != nil {
			return nil, err
		}
		ops = append(ops, wait...)
	}
	var named []string
	for i, lsp := range c.Add {
		lsp.UUID = fmt.Sprintf("newport%d", i)
		named = append(named, lsp.UUID)
		create, err := nb.client.Create(lsp)
		if err != nil {
			return nil, fmt.Errorf("build create of port %s: %w", lsp.Name, err)
		}
		ops = append(ops, create...)
	}
	ls := &nbdb.LogicalSwitch{UUID: c.Switch.UUID}
	var mutations []model.Mutation
	if len(named) > 0 {
		mutations = append(mutations, model.Mutation{Field: &ls.Ports, Mutator: ovsdb.MutateOperationInsert, Value: named})
	}
	if len(c.RemoveUUIDs) > 0 {
		mutations = append(mutations, model.Mutation{Field: &ls.Ports, Mutator: ovsdb.MutateOperationDelete, Value: c.RemoveUUIDs})
	}
	if len(mutations) > 0 {
		mutate, err := nb.client.Where(ls).Mutate(ls, mutations...)
		if err != nil {
			return nil, fmt.Errorf("build switch %s port mutation: %w", c.Switch.Name, err)
		}
		ops = append(ops, mutate...)
	}
	for _, lsp := range c.Relabel {
		update, err := nb.client.Where(&nbdb.LogicalSwitchPort{UUID: lsp.UUID}).Update(lsp, &lsp.ExternalIDs)
		if err != nil {
			return nil, fmt.Errorf("build relabel of port %s: %w", lsp.Name, err)
		}
		ops = append(ops, update...)
	}
	for _, set := range []struct {
		uuids   []string
		enabled bool
	}{{c.Enable, true}, {c.Disable, false}} {
		for _, uuid := range set.uuids {
			addresses := []string{}
			if set.enabled {
				cur, ok := nb.PortByUUID(uuid)
				if !ok {
					return nil, fmt.Errorf("enable port %s: not in the NB cache", uuid)
				}
				addresses = cur.PortSecurity
			}
			lsp := &nbdb.LogicalSwitchPort{UUID: uuid, Enabled: &set.enabled, Addresses: addresses}
			update, err := nb.client.Where(lsp).Update(lsp, &lsp.Enabled, &lsp.Addresses)
			if err != nil {
				return nil, fmt.Errorf("build update of port %s enabled=%t: %w", uuid, set.enabled, err)
			}
			ops = append(ops, update...)
		}
	}
	if len(ops) == 0 {
		return nil, nil
	}
	asOps, err := nb.addressSetOps(c.AddressSets)
	if err != nil {
		return nil, err
	}
	ops = append(ops, asOps...)
	res, err := nb.transact(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("switch %s: %w", c.Switch.Name, err)
	}
	offset := 0
	if c.Guard {
		offset = 1
	}
	uuids := make([]string, len(c.Add))
	for i := range c.Add {
		uuids[i] = res[offset+i].UUID.GoUUID
		c.Add[i].UUID = uuids[i]
	}
	return uuids, nil
}

// transact runs ops and turns a failed wait into ErrConflict.
func (nb *Northbound) transact(ctx context.Context, ops []ovsdb.Operation) ([]ovsdb.OperationResult, error) {
	res, err := nb.client.Transact(ctx, ops...)
	if err != nil {
		if transient(err) {
			return nil, fmt.Errorf("NB transaction: %w: %w", ErrUnavailable, err)
		}
		return nil, fmt.Errorf("NB transaction: %w", err)
	}
	for i, r := range res {
		if i < len(ops) && ops[i].Op == ovsdb.OperationWait && r.Error == "timed out" {
			return nil, ErrConflict
		}
		// A unique name taken by a racing writer (e.g. two nodes creating
		// the same address set) is a conflict too: retry on a fresh cache.
		// ovsdb-server says "... multiple rows in "T" table to have
		// identical values ... for index on column ..."; libovsdb's
		// in-memory server says "... to have identical values ...".
		if r.Error == "constraint violation" && isIndexConflict(r.Details) {
			if strings.Contains(r.Details, `"`+nbdb.AddressSetTable+`" table`) {
				return nil, ErrConflict
			}
			// Any other unique name (a port's) held by a row we cannot
			// see is not a race: retrying will not free it.
			return nil, fmt.Errorf("%w: %s", ErrNameTaken, r.Details)
		}
	}
	if _, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		return nil, fmt.Errorf("NB transaction: %w: %s", err, resultErrors(res))
	}
	return res, nil
}

// transient tells a lost connection (the server restarting, a leader
// change, a reply lost on the way) from a transaction the server refused:
// the first is worth retrying once the client has reconnected. Whether the
// transaction committed is then unknown; callers make their retries
// idempotent.
func transient(err error) bool {
	var netErr net.Error
	return errors.Is(err, client.ErrNotConnected) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.As(err, &netErr) || strings.Contains(err.Error(), "connection is shut down")
}

func isIndexConflict(details string) bool {
	return strings.Contains(details, "identical values") || strings.Contains(details, "duplicate")
}

func resultErrors(res []ovsdb.OperationResult) string {
	var s string
	for i, r := range res {
		if r.Error != "" {
			s += fmt.Sprintf("[op %d: %s: %s] ", i, r.Error, r.Details)
		}
	}
	return s
}

func waitClosed(ctx context.Context, ch <-chan struct{}, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return fmt.Errorf("no change seen within %s", timeout)
	}
}

// portSetGuard is the operation that fails a transaction (ErrConflict) if
// the switch's ports are no longer exactly ls.Ports: someone added or
// removed one since the cache was read. Nodes agree on a shared switch's
// addresses through it.
func (nb *Northbound) portSetGuard(ls *nbdb.LogicalSwitch) ([]ovsdb.Operation, error) {
	zero := 0
	g := &nbdb.LogicalSwitch{UUID: ls.UUID, Ports: ls.Ports}
	wait, err := nb.client.Where(g).Wait(ovsdb.WaitConditionEqual, &zero, g, &g.Ports)
	if err != nil {
		return nil, fmt.Errorf("build port-set guard on switch %s: %w", ls.Name, err)
	}
	return wait, nil
}

// ForeignPorts reads, from the server, the ports with these UUIDs (name,
// addresses, external_ids): ports on our switches that are not ours (an
// admin's lsp-add), which the owned-rows-only cache does not hold, or
// ours that the cache does not show yet. Their addresses still count.
func (nb *Northbound) ForeignPorts(ctx context.Context, uuids []string) ([]nbdb.LogicalSwitchPort, error) {
	var ops []ovsdb.Operation
	for _, u := range uuids {
		ops = append(ops, ovsdb.Operation{
			Op: ovsdb.OperationSelect, Table: nbdb.LogicalSwitchPortTable,
			Where:   []ovsdb.Condition{{Column: "_uuid", Function: ovsdb.ConditionEqual, Value: ovsdb.UUID{GoUUID: u}}},
			Columns: []string{"_uuid", "name", "addresses", "external_ids"},
		})
	}
	if len(ops) == 0 {
		return nil, nil
	}
	res, err := nb.transact(ctx, ops)
	if err != nil {
		return nil, fmt.Errorf("read ports missing from the NB cache: %w", err)
	}
	var out []nbdb.LogicalSwitchPort
	for _, r := range res {
		for _, row := range r.Rows {
			lsp := nbdb.LogicalSwitchPort{}
			if u, ok := row["_uuid"].(ovsdb.UUID); ok {
				lsp.UUID = u.GoUUID
			}
			lsp.Name, _ = row["name"].(string)
			switch a := row["addresses"].(type) {
			case string:
				lsp.Addresses = []string{a}
			case ovsdb.OvsSet:
				for _, e := range a.GoSet {
					if s, ok := e.(string); ok {
						lsp.Addresses = append(lsp.Addresses, s)
					}
				}
			}
			if ids, ok := row["external_ids"].(ovsdb.OvsMap); ok {
				lsp.ExternalIDs = map[string]string{}
				for k, v := range ids.GoMap {
					ks, _ := k.(string)
					vs, _ := v.(string)
					lsp.ExternalIDs[ks] = vs
				}
			}
			out = append(out, lsp)
		}
	}
	return out, nil
}
