package ovn

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"time"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/ovn/nbdb"
)

// OVN native DHCP. ovn-controller answers a port's DHCP requests from the
// DHCP_Options row its dhcpv4_options (or dhcpv6_options) column points to.
// A network has one such row per subnet, shared by every node like the
// network's switch: it is ours (externalids.Owner), names the network
// (externalids.Network), and its cidr column is the subnet, so no
// external_ids key is needed for it. Its options are derived from the
// network config, which all nodes share, so any node may (re)write them.
// The rows go with the network's shared rows (DeleteNetworkIfUnused).

// DHCPOptionsSpec is one DHCP_Options row of a network.
type DHCPOptionsSpec struct {
	Network string
	// CIDR is the subnet the options serve; its host bits are ignored.
	CIDR netip.Prefix
	// Options is the row's options column (lease_time, router,
	// server_id, server_mac, ... for IPv4; server_id, ... for IPv6).
	Options map[string]string
}

// DHCPOptions returns the cached owned DHCP_Options rows of network,
// ordered by cidr.
func (nb *Northbound) DHCPOptions(network string) []nbdb.DHCPOptions {
	var out []nbdb.DHCPOptions
	_ = nb.client.WhereCache(func(d *nbdb.DHCPOptions) bool {
		return d.ExternalIDs[externalids.Owner] == externalids.OwnerValue && d.ExternalIDs[externalids.Network] == network
	}).List(context.Background(), &out)
	slices.SortFunc(out, func(a, b nbdb.DHCPOptions) int {
		return cmp.Or(cmp.Compare(a.Cidr, b.Cidr), cmp.Compare(a.UUID, b.UUID))
	})
	return out
}

// dhcpOptionsRow returns the cached row of (network, cidr). Were there
// two, every node picks the same one.
func (nb *Northbound) dhcpOptionsRow(network, cidr string) (*nbdb.DHCPOptions, bool) {
	for _, d := range nb.DHCPOptions(network) {
		if d.Cidr == cidr {
			return &d, true
		}
	}
	return nil, false
}

// dhcpOptionsChanged returns a channel closed at the next change of any
// owned DHCP_Options row in the cache.
func (nb *Northbound) dhcpOptionsChanged() <-chan struct{} {
	nb.mu.Lock()
	defer nb.mu.Unlock()
	return nb.dhcpOptions
}

// EnsureDHCPOptions returns the UUID of the network's DHCP_Options row for
// s.CIDR, creating it with s.Options if it does not exist, or setting its
// options to s.Options if they differ. Creation is guarded by a wait
// operation, as EnsureSwitch's is: of nodes racing to create the row, one
// commits, the others' transactions fail and they adopt its row. A
// created row is returned once the cache shows it; an options update
// returns once committed.
func (nb *Northbound) EnsureDHCPOptions(ctx context.Context, s DHCPOptionsSpec) (string, error) {
	if s.Network == "" || !s.CIDR.IsValid() {
		return "", fmt.Errorf("DHCP options need a network and a CIDR, got %q and %v", s.Network, s.CIDR)
	}
	cidr := s.CIDR.Masked().String()
	what := fmt.Sprintf("DHCP options of network %s for %s", s.Network, cidr)
	for attempt := 0; attempt < 5; attempt++ {
		changed := nb.dhcpOptionsChanged()
		if row, ok := nb.dhcpOptionsRow(s.Network, cidr); ok {
			if maps.Equal(row.Options, s.Options) {
				return row.UUID, nil
			}
			err := nb.updateDHCPOptions(ctx, row.UUID, s.Options)
			if err == nil {
				return row.UUID, nil
			}
			if !errors.Is(err, ErrConflict) {
				return "", fmt.Errorf("%s: %w", what, err)
			}
			// Deleted meanwhile (the network retired): wait for the
			// cache to say so, then create it again.
		} else if err := nb.createDHCPOptions(ctx, s.Network, cidr, s.Options); err != nil && !errors.Is(err, ErrConflict) {
			return "", fmt.Errorf("%s: %w", what, err)
		}
		if err := waitClosed(ctx, changed, 5*time.Second); err != nil {
			return "", fmt.Errorf("%s: waiting for the NB cache: %w", what, err)
		}
	}
	return "", fmt.Errorf("%s: not settled in the NB cache after 5 attempts", what)
}

// createDHCPOptions inserts the (network, cidr) row unless one of ours
// exists, atomically: the schema has no index on DHCP_Options, so a wait
// operation does what createUnique's does for names. "Our rows of the
// network with this cidr, projected on cidr, differ from [{cidr}]" holds
// exactly when there is none yet; otherwise the transaction fails with
// ErrConflict.
func (nb *Northbound) createDHCPOptions(ctx context.Context, network, cidr string, options map[string]string) error {
	zero := 0
	probe := &nbdb.DHCPOptions{Cidr: cidr}
	absent, err := nb.client.WhereAll(probe,
		model.Condition{Field: &probe.Cidr, Function: ovsdb.ConditionEqual, Value: cidr},
		model.Condition{Field: &probe.ExternalIDs, Function: ovsdb.ConditionIncludes,
			Value: map[string]string{externalids.Owner: externalids.OwnerValue, externalids.Network: network}},
	).Wait(ovsdb.WaitConditionNotEqual, &zero, probe, &probe.Cidr)
	if err != nil {
		return fmt.Errorf("build absence guard: %w", err)
	}
	create, err := nb.client.Create(&nbdb.DHCPOptions{
		UUID: "newdhcpoptions", Cidr: cidr, Options: options,
		ExternalIDs: owned(map[string]string{externalids.Network: network}),
	})
	if err != nil {
		return fmt.Errorf("build create: %w", err)
	}
	if _, err := nb.transact(ctx, append(absent, create...)); err != nil {
		return fmt.Errorf("create: %w", err)
	}
	return nil
}

// updateDHCPOptions sets a row's options column. It returns ErrConflict
// if the row no longer exists.
func (nb *Northbound) updateDHCPOptions(ctx context.Context, uuid string, options map[string]string) error {
	d := &nbdb.DHCPOptions{UUID: uuid, Options: options}
	update, err := nb.client.Where(d).Update(d, &d.Options)
	if err != nil {
		return fmt.Errorf("build update of options: %w", err)
	}
	res, err := nb.transact(ctx, update)
	if err != nil {
		return fmt.Errorf("update options: %w", err)
	}
	if res[0].Count == 0 {
		return ErrConflict
	}
	return nil
}

// deleteDHCPOptionsOps deletes the network's cached DHCP_Options rows.
// Ports referring to them lose the reference (it is weak).
func (nb *Northbound) deleteDHCPOptionsOps(network string) ([]ovsdb.Operation, error) {
	var ops []ovsdb.Operation
	for _, d := range nb.DHCPOptions(network) {
		del, err := nb.client.Where(&nbdb.DHCPOptions{UUID: d.UUID}).Delete()
		if err != nil {
			return nil, fmt.Errorf("build delete of DHCP options %s of network %s: %w", d.Cidr, network, err)
		}
		ops = append(ops, del...)
	}
	return ops, nil
}
