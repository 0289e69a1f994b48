package daemon

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
)

// TestServeRefusesBadRequests: what the socket refuses before any verb
// runs, with the CNI code and a message that says why.
func TestServeRefusesBadRequests(t *testing.T) {
	huge, _ := json.Marshal(cniproto.Request{Command: "ADD", Config: json.RawMessage(`{"name":"` + strings.Repeat("x", maxRequest) + `"}`)})
	tests := []struct {
		name string
		body []byte
		code uint
		want string
	}{
		{"larger than the limit", huge, types.ErrInvalidNetworkConfig, "MiB refused"},
		{"not JSON", []byte("{"), types.ErrDecodingFailure, "malformed request"},
		{"unknown verb", []byte(`{"command":"FROB"}`), types.ErrInvalidEnvironmentVariables, "CNI_COMMAND"},
	}
	d := &Daemon{log: discardLogger()}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			d.Handler().ServeHTTP(rec, httptest.NewRequest(http.MethodPost, cniproto.Path, bytes.NewReader(tt.body)))
			var resp cniproto.Response
			if err := json.Unmarshal(rec.Body.Bytes(), &resp); err != nil {
				t.Fatalf("answer %q: %v", rec.Body.String(), err)
			}
			if resp.Error == nil || resp.Error.Code != tt.code || !strings.Contains(resp.Error.Msg, tt.want) {
				t.Fatalf("got %+v, want code %d mentioning %q", resp.Error, tt.code, tt.want)
			}
		})
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
