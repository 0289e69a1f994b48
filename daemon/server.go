package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/kube"
	"github.com/ovn-overlay/ovn-overlay/netconf"
)

// maxRequest bounds a request body; a network config is a few hundred bytes.
const maxRequest = 1 << 20

// Handler returns the CNI server's HTTP handler.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+cniproto.Path, d.serveCNI)
	return mux
}

func (d *Daemon) serveCNI(w http.ResponseWriter, r *http.Request) {
	var req cniproto.Request
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest))
	if err == nil {
		err = json.Unmarshal(body, &req)
	}
	var resp cniproto.Response
	if err != nil {
		resp.Error = types.NewError(types.ErrDecodingFailure, "malformed request from the CNI plugin", err.Error())
	} else {
		start := time.Now()
		resp.Result, err = d.Do(r.Context(), req)
		resp.Error = toCNIError(err)
		cniDuration.WithLabelValues(req.Command, result(err)).Observe(time.Since(start).Seconds())
		d.log.Info("cni", "cmd", req.Command, "container", req.ContainerID, "ifname", req.IfName,
			"duration", time.Since(start), "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// Do runs one CNI verb and returns the encoded result (ADD only).
func (d *Daemon) Do(ctx context.Context, req cniproto.Request) (json.RawMessage, error) {
	switch req.Command {
	case "ADD":
		return d.Add(ctx, req)
	case "DEL":
		return nil, d.Del(ctx, req)
	case "CHECK":
		return nil, d.Check(ctx, req)
	case "GC":
		return nil, d.GC(ctx, req)
	case "STATUS":
		return nil, d.Status()
	default:
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables,
			fmt.Sprintf("unknown CNI_COMMAND %q", req.Command), "expected ADD, DEL, CHECK, GC, STATUS or VERSION")
	}
}

// toCNIError maps daemon errors to CNI error codes, keeping the message.
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
	case errors.As(err, &fieldErr), errors.Is(err, ErrConflictingConfig), errors.Is(err, ErrNotSupported), errors.Is(err, kube.ErrInvalidNAD):
		return types.NewError(types.ErrInvalidNetworkConfig, err.Error(), "")
	case errors.Is(err, errBadNetns):
		return types.NewError(types.ErrInvalidNetNS, err.Error(), "")
	case errors.Is(err, errBadRequest):
		return types.NewError(types.ErrInvalidEnvironmentVariables, err.Error(), "")
	case errors.Is(err, context.DeadlineExceeded):
		return types.NewError(types.ErrTryAgainLater, err.Error(), "")
	default:
		return types.NewError(types.ErrInternal, err.Error(), "")
	}
}
