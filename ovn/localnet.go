package ovn

import (
	"context"
	"fmt"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// LocalnetPortType is the Logical_Switch_Port type that connects a logical
// switch to a physical network on every chassis that maps it.
const LocalnetPortType = "localnet"

// EnsureLocalnetPort returns the switch's localnet port lsp (by name),
// creating it on the switch if it does not exist. Every node of the
// network may race to create it: the port name is unique in the schema and
// a wait makes the loser adopt the winner's.
func (nb *Northbound) EnsureLocalnetPort(ctx context.Context, ls *nbdb.LogicalSwitch, lsp *nbdb.LogicalSwitchPort) (*nbdb.LogicalSwitchPort, error) {
	return ensure(ctx, nb, "localnet port "+lsp.Name,
		func() (*nbdb.LogicalSwitchPort, bool) { return nb.Port(lsp.Name) },
		func() error { return nb.createLocalnetPort(ctx, ls, lsp) })
}

func (nb *Northbound) createLocalnetPort(ctx context.Context, ls *nbdb.LogicalSwitch, lsp *nbdb.LogicalSwitchPort) error {
	row := *lsp
	row.UUID = "newlocalnet"
	row.Type = LocalnetPortType
	row.ExternalIDs = owned(lsp.ExternalIDs)
	create, err := nb.client.Create(&row)
	if err != nil {
		return fmt.Errorf("localnet port %s: build create: %w", lsp.Name, err)
	}
	s := &nbdb.LogicalSwitch{UUID: ls.UUID}
	attach, err := nb.client.Where(s).Mutate(s, model.Mutation{Field: &s.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{row.UUID}})
	if err != nil {
		return fmt.Errorf("localnet port %s: build switch mutation: %w", lsp.Name, err)
	}
	return nb.createUnique(ctx, nbdb.LogicalSwitchPortTable, lsp.Name, nil, func() bool { _, ok := nb.Port(lsp.Name); return ok }, append(create, attach...)...)
}

// IsLocalnet reports whether lsp is a localnet port: the switch's link to
// the physical network, not anyone's attachment.
func IsLocalnet(lsp *nbdb.LogicalSwitchPort) bool { return lsp.Type == LocalnetPortType }
