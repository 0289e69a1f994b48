package ovn

import (
	"context"
	"fmt"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// AddressSetChange adds and removes addresses of one address set, creating
// the set if it does not exist yet.
type AddressSetChange struct {
	Name        string
	ExternalIDs map[string]string
	Add         []string
	Remove      []string
}

// AddressSet returns the cached owned address set called name.
func (nb *Northbound) AddressSet(name string) (*nbdb.AddressSet, bool) {
	as := &nbdb.AddressSet{Name: name}
	if err := nb.client.Get(context.Background(), as); err != nil {
		return nil, false
	}
	return as, true
}

// addressSetOps turns changes into operations: a mutation of an existing
// set, or an insert of a new one. If a racing node inserts the same set
// first, the name index makes the transaction fail and it is retried as a
// conflict, then as a mutation.
func (nb *Northbound) addressSetOps(changes []AddressSetChange) ([]ovsdb.Operation, error) {
	var ops []ovsdb.Operation
	for i, c := range changes {
		existing, ok := nb.AddressSet(c.Name)
		if !ok {
			if len(c.Add) == 0 {
				continue // nothing to remove from a set that does not exist
			}
			create, err := nb.client.Create(&nbdb.AddressSet{
				UUID: fmt.Sprintf("newas%d", i), Name: c.Name, Addresses: c.Add, ExternalIDs: owned(c.ExternalIDs),
			})
			if err != nil {
				return nil, fmt.Errorf("build address set %s: %w", c.Name, err)
			}
			ops = append(ops, create...)
			continue
		}
		as := &nbdb.AddressSet{UUID: existing.UUID}
		var mutations []model.Mutation
		if len(c.Add) > 0 {
			mutations = append(mutations, model.Mutation{Field: &as.Addresses, Mutator: ovsdb.MutateOperationInsert, Value: c.Add})
		}
		if len(c.Remove) > 0 {
			mutations = append(mutations, model.Mutation{Field: &as.Addresses, Mutator: ovsdb.MutateOperationDelete, Value: c.Remove})
		}
		if len(mutations) == 0 {
			continue
		}
		mutate, err := nb.client.Where(as).Mutate(as, mutations...)
		if err != nil {
			return nil, fmt.Errorf("build address set %s mutation: %w", c.Name, err)
		}
		ops = append(ops, mutate...)
	}
	return ops, nil
}
