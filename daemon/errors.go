package daemon

import (
	"context"
	"errors"
	"os"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/daemon/kube"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/netconf"
	"github.com/ovn-overlay/ovn-overlay/ovn"
)

// toCNIError maps daemon errors to the CNI spec's well-known error codes,
// keeping the message.
func toCNIError(err error) *types.Error {
	if err == nil {
		return nil
	}
	var cniErr *types.Error
	if errors.As(err, &cniErr) {
		return cniErr
	}
	var fieldErr *netconf.FieldError
	switch {
	case errors.As(err, &fieldErr), errors.Is(err, network.ErrConflictingConfig), errors.Is(err, network.ErrNotSupported), errors.Is(err, kube.ErrInvalidNAD),
		errors.Is(err, network.ErrInvalidRequest), errors.Is(err, ovn.ErrGatewayIPTaken):
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	case errors.Is(err, errBadEnv):
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, ovn.ErrUnavailable), errors.Is(err, errStarting), errors.Is(err, network.ErrRetired),
		errors.Is(err, errNotMapped), errors.Is(err, network.ErrNoExternal), errors.Is(err, ovn.ErrGatewayPoolExhausted):
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	default:
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
}

func isNotExist(err error) bool { return errors.Is(err, os.ErrNotExist) }
