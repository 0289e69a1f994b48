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
