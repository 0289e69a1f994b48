package ovn

import (
	"context"
	"fmt"

	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/ovn/sbdb"
)

// Southbound watches this node's Chassis row, so the daemon can tell a
// runtime (CNI STATUS) whether ovn-controller has registered the node and
// ADDs can complete.
type Southbound struct {
	client  client.Client
	chassis string
}

// ConnectSouthbound connects to endpoint and monitors only the Chassis row
// named chassis: the SB grows with the cluster, this node needs one row.
func ConnectSouthbound(ctx context.Context, endpoint, chassis string, logger logr.Logger, options ...Option) (*Southbound, error) {
	dbModel, err := sbdb.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("sb model: %w", err)
	}
	opts, err := connectOptions(endpoint, false, options)
	if err != nil {
		return nil, err
	}
	c, err := client.NewOVSDBClient(dbModel, append(opts, client.WithLogger(&logger))...)
	if err != nil {
		return nil, fmt.Errorf("sb client: %w", err)
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to SB %s: %w", endpoint, explainSchema("OVN Southbound", err))
	}
	ch := &sbdb.Chassis{}
	_, err = c.Monitor(ctx, c.NewMonitor(client.WithConditionalTable(ch,
		[]model.Condition{{Field: &ch.Name, Function: ovsdb.ConditionEqual, Value: chassis}},
		&ch.Name, &ch.Hostname)))
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("monitor SB %s: %w", endpoint, err)
	}
	return &Southbound{client: c, chassis: chassis}, nil
}

// Close disconnects.
func (sb *Southbound) Close() { sb.client.Close() }

// Connected reports whether the connection is up.
func (sb *Southbound) Connected() bool { return sb.client.Connected() }

// Alive reports whether the server answers an echo now.
func (sb *Southbound) Alive(ctx context.Context) bool { return alive(ctx, sb.client) }

// ChassisRegistered reports whether ovn-controller has registered this
// node's chassis.
func (sb *Southbound) ChassisRegistered() bool {
	var rows []sbdb.Chassis
	if err := sb.client.List(context.Background(), &rows); err != nil {
		return false
	}
	return len(rows) > 0
}

// Binding is a logical port's Port_Binding row, as the SB has it now.
type Binding struct {
	// Chassis is the name of the chassis that claimed the port; empty
	// while no ovn-controller has.
	Chassis string
	// Up is ovn-controller's report that the port's flows are installed
	// (nil on an SB that does not have the column filled yet).
	Up *bool
	// TunnelKey identifies the port within its datapath, DatapathKey the
	// datapath: in OpenFlow they are reg14/reg15 and metadata.
	TunnelKey, DatapathKey int
}

// PortBinding reads logicalPort's binding from the server: Port_Binding is
// not monitored (the SB's largest table; the daemon needs one row of it
// only when an operator diagnoses an attachment). found is false when
// ovn-northd has not created the binding.
func (sb *Southbound) PortBinding(ctx context.Context, logicalPort string) (b Binding, found bool, err error) {
	sel := ovsdb.Operation{
		Op: ovsdb.OperationSelect, Table: "Port_Binding",
		Where:   []ovsdb.Condition{{Column: "logical_port", Function: ovsdb.ConditionEqual, Value: logicalPort}},
		Columns: []string{"chassis", "up", "tunnel_key", "datapath"},
	}
	res, err := sb.client.Transact(ctx, sel)
	if err != nil {
		return b, false, fmt.Errorf("read port binding %s: %w", logicalPort, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		return b, false, nil
	}
	row := res[0].Rows[0]
	b.TunnelKey = rowInt(row["tunnel_key"])
	if up, ok := optional(row["up"]).(bool); ok {
		b.Up = &up
	}
	var ops []ovsdb.Operation
	chassis, hasChassis := optional(row["chassis"]).(ovsdb.UUID)
	if hasChassis {
		ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationSelect, Table: sbdb.ChassisTable,
			Where: []ovsdb.Condition{{Column: "_uuid", Function: ovsdb.ConditionEqual, Value: chassis}}, Columns: []string{"name"}})
	}
	if dp, ok := optional(row["datapath"]).(ovsdb.UUID); ok {
		ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationSelect, Table: "Datapath_Binding",
			Where: []ovsdb.Condition{{Column: "_uuid", Function: ovsdb.ConditionEqual, Value: dp}}, Columns: []string{"tunnel_key"}})
	}
	if len(ops) == 0 {
		return b, true, nil
	}
	res, err = sb.client.Transact(ctx, ops...)
	if err != nil {
		return b, true, fmt.Errorf("read chassis and datapath of port binding %s: %w", logicalPort, err)
	}
	for i, op := range ops {
		if i >= len(res) || len(res[i].Rows) == 0 {
			continue
		}
		switch op.Table {
		case sbdb.ChassisTable:
			b.Chassis, _ = res[i].Rows[0]["name"].(string)
		default:
			b.DatapathKey = rowInt(res[i].Rows[0]["tunnel_key"])
		}
	}
	return b, true, nil
}

// optional unwraps an OVSDB optional column: a one-element set is its
// element, an empty one nil.
func optional(v any) any {
	if set, ok := v.(ovsdb.OvsSet); ok {
		if len(set.GoSet) == 1 {
			return set.GoSet[0]
		}
		return nil
	}
	return v
}

func rowInt(v any) int {
	switch n := v.(type) {
	case int:
		return n
	case int64:
		return int(n)
	case float64:
		return int(n)
	}
	return 0
}
