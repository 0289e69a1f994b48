package ovs

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovs/vswitchd"
)

// DatapathNetdev is the userspace datapath (also used by OVS-DPDK).
const DatapathNetdev = "netdev"

// Client is a connection to the node's Open_vSwitch database, with a cache
// of the integration bridge's ports and interfaces.
type Client struct {
	client client.Client
	bridge string

	mu      sync.Mutex
	waiters map[string][]chan error // interface name -> ovn-installed waiters
	// changed is closed and replaced at every change of a bridge or port,
	// for waiters on the node's wiring (WaitLocalnetPatch).
	changed chan struct{}
	// patches counts the patch ports ovn-controller made per localnet
	// port; physical is the physical networks snapshot (physnet.go).
	patches  map[string]int
	physical atomic.Pointer[map[string]PhysicalBridge]
}

// Connect connects to endpoint and monitors the columns the daemon needs.
// Only needed columns are monitored: Interface statistics alone would wake
// the cache every few seconds per port.
func Connect(ctx context.Context, endpoint, bridge string, logger logr.Logger) (*Client, error) {
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("ovs model: %w", err)
	}
	b := backoff.NewExponentialBackOff()
	b.InitialInterval, b.MaxInterval, b.MaxElapsedTime = 100*time.Millisecond, 5*time.Second, 0
	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint),
		client.WithReconnect(5*time.Second, b), client.WithLogger(&logger))
	if err != nil {
		return nil, fmt.Errorf("ovs client: %w", err)
	}
	if err := c.Connect(ctx); err != nil {
		if strings.Contains(err.Error(), "does not exist in schema") {
			// The model holds what Open vSwitch 3.1 and newer have
			// (schemas/README.md): an older server lacks a column.
			err = fmt.Errorf("the Open_vSwitch schema lacks a table or column ovn-overlay uses; it needs Open vSwitch 3.1 or newer: %w", err)
		}
		return nil, fmt.Errorf("connect to OVS %s: %w", endpoint, err)
	}
	o := &Client{client: c, bridge: bridge, waiters: map[string][]chan error{}, changed: make(chan struct{}), patches: map[string]int{}}
	c.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc: func(table string, m model.Model) {
			o.onInterface(table, m)
			o.onPort(table, nil, m)
			o.onPhysical(table, m)
			o.onWiring(table)
		},
		UpdateFunc: func(table string, old, m model.Model) {
			o.onInterface(table, m)
			o.onPort(table, old, m)
			o.onPhysical(table, m)
			o.onWiring(table)
		},
		DeleteFunc: func(table string, m model.Model) {
			o.onPort(table, m, nil)
			o.onPhysical(table, m)
			o.onWiring(table)
		},
	})
	root, br, port, iface := &vswitchd.OpenvSwitch{}, &vswitchd.Bridge{}, &vswitchd.Port{}, &vswitchd.Interface{}
	_, err = c.Monitor(ctx, c.NewMonitor(
		client.WithTable(root, &root.ExternalIDs, &root.Bridges),
		client.WithTable(br, &br.Name, &br.Ports, &br.DatapathType),
		client.WithTable(port, &port.Name, &port.Interfaces, &port.ExternalIDs),
		client.WithTable(iface, &iface.Name, &iface.ExternalIDs, &iface.Error, &iface.Ofport, &iface.Type, &iface.MTU),
	))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("monitor OVS %s: %w", endpoint, err)
	}
	// Events of the initial rows may still be queued: the snapshot must
	// be there before the first verb.
	o.refreshPhysical()
	return o, nil
}

// Close disconnects.
func (o *Client) Close() { o.client.Close() }

// Connected reports whether the connection is up.
func (o *Client) Connected() bool { return o.client.Connected() }

// Alive reports whether the server answers an echo now (the client's
// Connected flag stays true while it reconnects).
func (o *Client) Alive(ctx context.Context) bool { return o.client.Echo(ctx) == nil }

// Bridge returns the cached integration bridge.
func (o *Client) Bridge() (*vswitchd.Bridge, error) {
	br := &vswitchd.Bridge{Name: o.bridge}
	if err := o.client.Get(context.Background(), br); err != nil {
		return nil, fmt.Errorf("bridge %s not found in the OVS database (is the node's integration bridge created?): %w", o.bridge, err)
	}
	return br, nil
}

// UserspaceDatapath reports whether the integration bridge uses the netdev
// (userspace) datapath, where pod veths need TX checksum offload off.
func (o *Client) UserspaceDatapath() (bool, error) {
	br, err := o.Bridge()
	if err != nil {
		return false, err
	}
	return br.DatapathType == DatapathNetdev, nil
}

// ChassisConfig is what ovn-controller's configuration tells about the node.
type ChassisConfig struct {
	SystemID string
	EncapIP  netip.Addr
}

// Chassis reads the node's OVN chassis settings from Open_vSwitch.
func (o *Client) Chassis() (ChassisConfig, error) {
	var roots []vswitchd.OpenvSwitch
	if err := o.client.List(context.Background(), &roots); err != nil {
		return ChassisConfig{}, fmt.Errorf("read Open_vSwitch row: %w", err)
	}
	if len(roots) == 0 {
		return ChassisConfig{}, errors.New("the Open_vSwitch table is empty (database not initialised)")
	}
	ids := roots[0].ExternalIDs
	cfg := ChassisConfig{SystemID: ids["system-id"]}
	if s := ids["ovn-encap-ip"]; s != "" {
		// ovn-encap-ip may list several addresses; the first is the default.
		for i := range s {
			if s[i] == ',' {
				s = s[:i]
				break
			}
		}
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return cfg, fmt.Errorf("external_ids:ovn-encap-ip %q: %w", ids["ovn-encap-ip"], err)
		}
		cfg.EncapIP = ip
	}
	return cfg, nil
}

// PortSpec is a pod veth to plug into the integration bridge.
type PortSpec struct {
	// Name is both the Port and Interface name: the host end of the veth.
	Name string
	// IfaceID is the logical switch port name ovn-controller binds it to.
	IfaceID string
	// MAC is the pod-side MAC (attached-mac).
	MAC string
	// ExternalIDs are extra keys for the Interface (ownership, identity).
	ExternalIDs map[string]string
}

// AddPort creates the Port and Interface and adds them to the bridge in one
// transaction.
func (o *Client) AddPort(ctx context.Context, spec PortSpec) error {
	return o.AddPorts(ctx, []PortSpec{spec})
}

// AddPorts creates several ports in one transaction (a burst of ADDs
// shares it).
func (o *Client) AddPorts(ctx context.Context, specs []PortSpec) error {
	br, err := o.Bridge()
	if err != nil {
		return err
	}
	var ops []ovsdb.Operation
	var portUUIDs []string
	var names []string
	for i, spec := range specs {
		ids := map[string]string{externalids.Owner: externalids.OwnerValue, externalids.IfaceID: spec.IfaceID}
		if spec.MAC != "" {
			ids[externalids.AttachedMAC] = spec.MAC
		}
		for k, v := range spec.ExternalIDs {
			ids[k] = v
		}
		iface := &vswitchd.Interface{UUID: fmt.Sprintf("newiface%d", i), Name: spec.Name, ExternalIDs: ids}
		port := &vswitchd.Port{UUID: fmt.Sprintf("newport%d", i), Name: spec.Name, Interfaces: []string{iface.UUID},
			ExternalIDs: map[string]string{externalids.Owner: externalids.OwnerValue}}
		create, err := o.client.Create(iface, port)
		if err != nil {
			return fmt.Errorf("build OVS port %s: %w", spec.Name, err)
		}
		ops = append(ops, create...)
		portUUIDs = append(portUUIDs, port.UUID)
		names = append(names, spec.Name)
	}
	bridge := &vswitchd.Bridge{UUID: br.UUID}
	mutate, err := o.client.Where(bridge).Mutate(bridge, model.Mutation{
		Field: &bridge.Ports, Mutator: ovsdb.MutateOperationInsert, Value: portUUIDs,
	})
	if err != nil {
		return fmt.Errorf("build bridge mutation for %v: %w", names, err)
	}
	if err := o.transact(ctx, append(ops, mutate...)); err != nil {
		return fmt.Errorf("add OVS ports %v to %s: %w", names, o.bridge, err)
	}
	return nil
}

// DeletePort removes the named port from the bridge. A port that does not
// exist is not an error (CNI DEL is idempotent). Ports not created by this
// project are left alone.
func (o *Client) DeletePort(ctx context.Context, name string) error {
	uuid, ids, found, err := o.lookUpPort(ctx, name)
	if err != nil || !found {
		return err
	}
	if ids[externalids.Owner] != externalids.OwnerValue {
		return fmt.Errorf("OVS port %s exists but was not created by ovn-overlay; leaving it alone", name)
	}
	br, err := o.Bridge()
	if err != nil {
		return err
	}
	bridge := &vswitchd.Bridge{UUID: br.UUID}
	// Port and Interface are not root tables: dropping the reference from
	// the bridge deletes them.
	ops, err := o.client.Where(bridge).Mutate(bridge, model.Mutation{
		Field: &bridge.Ports, Mutator: ovsdb.MutateOperationDelete, Value: []string{uuid},
	})
	if err != nil {
		return fmt.Errorf("build delete of OVS port %s: %w", name, err)
	}
	if err := o.transact(ctx, ops); err != nil {
		return fmt.Errorf("delete OVS port %s: %w", name, err)
	}
	return nil
}

// lookUpPort finds a port in the cache or, if the cache does not have it,
// on the server: a port committed a moment ago (an ADD rolling back) may
// not have reached the cache yet, and must not be taken for gone.
func (o *Client) lookUpPort(ctx context.Context, name string) (uuid string, ids map[string]string, found bool, err error) {
	port := &vswitchd.Port{Name: name}
	switch err := o.client.Get(ctx, port); {
	case err == nil:
		return port.UUID, port.ExternalIDs, true, nil
	case !errors.Is(err, client.ErrNotFound):
		return "", nil, false, fmt.Errorf("look up OVS port %s: %w", name, err)
	}
	sel := ovsdb.Operation{
		Op: ovsdb.OperationSelect, Table: vswitchd.PortTable,
		Where:   []ovsdb.Condition{{Column: "name", Function: ovsdb.ConditionEqual, Value: name}},
		Columns: []string{"_uuid", "external_ids"},
	}
	res, err := o.client.Transact(ctx, sel)
	if err != nil {
		return "", nil, false, fmt.Errorf("look up OVS port %s: %w", name, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return "", nil, false, nil
	}
	row := res[0].Rows[0]
	if u, ok := row["_uuid"].(ovsdb.UUID); ok {
		uuid = u.GoUUID
	}
	ids = map[string]string{}
	if m, ok := row["external_ids"].(ovsdb.OvsMap); ok {
		for k, v := range m.GoMap {
			ks, _ := k.(string)
			vs, _ := v.(string)
			ids[ks] = vs
		}
	}
	return uuid, ids, uuid != "", nil
}

// Interface returns the cached interface called name.
func (o *Client) Interface(name string) (*vswitchd.Interface, bool) {
	iface := &vswitchd.Interface{Name: name}
	if err := o.client.Get(context.Background(), iface); err != nil {
		return nil, false
	}
	return iface, true
}

// OwnedInterfaces returns the cached interfaces this project created.
func (o *Client) OwnedInterfaces() ([]vswitchd.Interface, error) {
	var out []vswitchd.Interface
	err := o.client.WhereCache(func(i *vswitchd.Interface) bool {
		return i.ExternalIDs[externalids.Owner] == externalids.OwnerValue
	}).List(context.Background(), &out)
	if err != nil {
		return nil, fmt.Errorf("list OVS interfaces from cache: %w", err)
	}
	return out, nil
}

// ErrInterfaceFailed wraps the error OVS reported for an interface.
var ErrInterfaceFailed = errors.New("OVS could not open the interface")

// WaitInstalled blocks until ovn-controller has marked the interface
// ovn-installed=true, i.e. its flows are in place, or ctx ends. It is driven
// by the cache's update events; nothing polls.
func (o *Client) WaitInstalled(ctx context.Context, name string) error {
	ch := make(chan error, 1)
	o.mu.Lock()
	o.waiters[name] = append(o.waiters[name], ch)
	o.mu.Unlock()
	defer o.dropWaiter(name, ch)
	// Registered first, then checked: an update landing in between is not
	// missed.
	if iface, ok := o.Interface(name); ok {
		if done, err := installState(iface); done {
			return err
		}
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		state := "interface not in the OVS database"
		if iface, ok := o.Interface(name); ok {
			ofport := "none"
			if iface.Ofport != nil {
				ofport = fmt.Sprint(*iface.Ofport)
			}
			state = fmt.Sprintf("ofport=%s external_ids:ovn-installed=%q", ofport, iface.ExternalIDs[externalids.OVNInstalled])
		}
		return fmt.Errorf("waiting for ovn-controller to install %s (%s): %w", name, state, ctx.Err())
	}
}

// installState says whether waiting on iface is over, and how it ended.
func installState(iface *vswitchd.Interface) (bool, error) {
	if iface.Error != nil && *iface.Error != "" {
		return true, fmt.Errorf("%w %s: %s", ErrInterfaceFailed, iface.Name, *iface.Error)
	}
	if iface.ExternalIDs[externalids.OVNInstalled] == "true" {
		return true, nil
	}
	return false, nil
}

func (o *Client) onInterface(table string, m model.Model) {
	if table != vswitchd.InterfaceTable {
		return
	}
	iface := m.(*vswitchd.Interface)
	done, err := installState(iface)
	if !done {
		return
	}
	o.mu.Lock()
	waiters := o.waiters[iface.Name]
	delete(o.waiters, iface.Name)
	o.mu.Unlock()
	for _, ch := range waiters {
		ch <- err
	}
}

func (o *Client) onWiring(table string) {
	if table != vswitchd.BridgeTable && table != vswitchd.PortTable {
		return
	}
	o.mu.Lock()
	close(o.changed)
	o.changed = make(chan struct{})
	o.mu.Unlock()
}

// wiringChanged returns a channel closed at the next change of a cached
// bridge or port.
func (o *Client) wiringChanged() <-chan struct{} {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.changed
}

func (o *Client) dropWaiter(name string, ch chan error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	list := o.waiters[name]
	for i, c := range list {
		if c == ch {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(o.waiters, name)
	} else {
		o.waiters[name] = list
	}
}

func (o *Client) transact(ctx context.Context, ops []ovsdb.Operation) error {
	res, err := o.client.Transact(ctx, ops...)
	if err != nil {
		return err
	}
	if _, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		var details string
		for _, r := range res {
			if r.Error != "" {
				details += r.Error + ": " + r.Details + "; "
			}
		}
		return fmt.Errorf("%w: %s", err, details)
	}
	return nil
}

// InterfaceHandler receives changes of the interfaces in the cache. Its
// methods run on the cache's event goroutine, in order, and must not block.
type InterfaceHandler interface {
	InterfaceAdded(*vswitchd.Interface)
	InterfaceUpdated(old, new *vswitchd.Interface)
	InterfaceDeleted(*vswitchd.Interface)
}

// AddInterfaceHandler registers h for interface changes. Rows already in
// the cache are not replayed: list them with OwnedInterfaces after
// registering.
func (o *Client) AddInterfaceHandler(h InterfaceHandler) {
	o.client.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc: func(table string, m model.Model) {
			if table == vswitchd.InterfaceTable {
				h.InterfaceAdded(m.(*vswitchd.Interface))
			}
		},
		UpdateFunc: func(table string, old, new model.Model) {
			if table == vswitchd.InterfaceTable {
				h.InterfaceUpdated(old.(*vswitchd.Interface), new.(*vswitchd.Interface))
			}
		},
		DeleteFunc: func(table string, m model.Model) {
			if table == vswitchd.InterfaceTable {
				h.InterfaceDeleted(m.(*vswitchd.Interface))
			}
		},
	})
}

// Ofport returns the OpenFlow port number ovs-vswitchd gave the interface;
// 0 while it has none (not opened yet) and -1 if opening failed.
func Ofport(iface *vswitchd.Interface) int {
	if iface.Ofport == nil {
		return 0
	}
	return *iface.Ofport
}
