package daemon

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/diagnose"
	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
)

// maxRequest bounds a request body. A network config is a few hundred
// bytes; the largest legitimate request is a GC listing every attachment
// of a dense node (about 100 bytes each), far below this.
const maxRequest = 8 << 20

// Handler returns the CNI server's HTTP handler.
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+cniproto.Path, d.serveCNI)
	mux.HandleFunc("GET "+diagnose.Path, d.serveDiagnose)
	return mux
}

func (d *Daemon) serveCNI(w http.ResponseWriter, r *http.Request) {
	var req cniproto.Request
	var resp cniproto.Response
	body, err := io.ReadAll(io.LimitReader(r.Body, maxRequest+1))
	switch {
	case err == nil && len(body) > maxRequest:
		resp.Error = types.NewError(types.ErrInvalidNetworkConfig,
			fmt.Sprintf("request of more than %d MiB refused: the network config (with prevResult, CNI_ARGS and runtimeConfig) must be smaller", maxRequest>>20), "")
	case err == nil:
		err = json.Unmarshal(body, &req)
		fallthrough
	default:
		if err != nil {
			resp.Error = types.NewError(types.ErrDecodingFailure, "malformed request from the CNI plugin", err.Error())
		}
	}
	if resp.Error == nil {
		start := time.Now()
		resp.Result, err = d.Do(r.Context(), req)
		resp.Error = toCNIError(err)
		metrics.CNIDuration.WithLabelValues(commandLabel(req.Command), metrics.Result(err)).Observe(time.Since(start).Seconds())
		d.log.Info("cni", "cmd", req.Command, "container", req.ContainerID, "ifname", req.IfName,
			"duration", time.Since(start), "err", err)
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// Do runs one CNI verb and returns the encoded result (ADD only).
func (d *Daemon) Do(ctx context.Context, req cniproto.Request) (json.RawMessage, error) {
	verbs := map[string]func() (json.RawMessage, error){
		"ADD":   func() (json.RawMessage, error) { return d.Add(ctx, req) },
		"DEL":   func() (json.RawMessage, error) { return nil, d.Del(ctx, req) },
		"CHECK": func() (json.RawMessage, error) { return nil, d.Check(ctx, req) },
		"GC":    func() (json.RawMessage, error) { return nil, d.GC(ctx, req) },
	}
	verb, ok := verbs[req.Command]
	switch {
	case req.Command == "STATUS":
		// Answered at once, also while the daemon is starting.
		return nil, d.Status(req.Config)
	case !ok:
		return nil, types.NewError(types.ErrInvalidEnvironmentVariables,
			fmt.Sprintf("unknown CNI_COMMAND %q", req.Command), "expected ADD, DEL, CHECK, GC, STATUS or VERSION")
	}
	// Verbs arriving while the daemon connects (after a restart, or
	// before OVN is up) wait for it rather than fail at once.
	if err := d.awaitReady(ctx); err != nil {
		return nil, err
	}
	return verb()
}

// commandLabel bounds the metric's label values: a made-up verb from any
// client must not add a series for ever.
func commandLabel(cmd string) string {
	switch cmd {
	case "ADD", "DEL", "CHECK", "GC", "STATUS":
		return cmd
	}
	return "unknown"
}
