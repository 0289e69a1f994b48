package daemon

import (
	"strings"
	"testing"
)

// TestNewValidatesEndpoints: a config the daemon cannot work with is
// refused at start with the flag to fix, not at the first CNI call.
func TestNewValidatesEndpoints(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		wantErr string // "" accepted
	}{
		{name: "unix OVS: management socket beside it", cfg: Config{NBAddress: "unix:/r/nb.sock", SBAddress: "unix:/r/sb.sock", OVSAddress: "unix:/var/run/openvswitch/db.sock"}},
		{name: "tcp OVS with --openflow-socket", cfg: Config{NBAddress: "unix:/r/nb.sock", SBAddress: "unix:/r/sb.sock", OVSAddress: "tcp:127.0.0.1:6640", OpenFlowSocket: "/var/run/openvswitch/br-int.mgmt"}},
		{name: "tcp OVS without --openflow-socket", cfg: Config{NBAddress: "unix:/r/nb.sock", SBAddress: "unix:/r/sb.sock", OVSAddress: "tcp:127.0.0.1:6640"},
			wantErr: "pass --openflow-socket (normally /var/run/openvswitch/br-int.mgmt)"},
		{name: "ssl NB without files", cfg: Config{NBAddress: "ssl:10.0.0.1:6641", SBAddress: "unix:/r/sb.sock", OVSAddress: "unix:/r/db.sock"},
			wantErr: "need --ovn-ssl-key"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			d, err := New(tc.cfg)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatal(err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
			case err == nil:
				d.Close()
			}
		})
	}
}
