package ovn

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ovn-org/libovsdb/client"
)

// Endpoints splits an OVSDB address as ovn-controller takes it: one
// endpoint ("unix:/path", "tcp:host:port", "ssl:host:port") or a
// comma-separated list of the members of a clustered database.
func Endpoints(address string) ([]string, error) { return endpoints(address, true) }

func endpoints(address string, sslOK bool) ([]string, error) {
	var out []string
	for _, e := range strings.Split(address, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case strings.HasPrefix(e, "unix:"), strings.HasPrefix(e, "tcp:"):
			out = append(out, e)
		case strings.HasPrefix(e, "ssl:"):
			if !sslOK {
				// Without them it would only retry a handshake for ever.
				return nil, fmt.Errorf("OVSDB endpoint %q: ssl: needs a private key, a certificate and a CA certificate", e)
			}
			out = append(out, e)
		default:
			return nil, fmt.Errorf("OVSDB endpoint %q: want unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT (comma-separated for a cluster)", e)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("OVSDB address %q names no endpoint", address)
	}
	return out, nil
}

// connectOptions are the client options for address: every endpoint of a
// cluster, reconnection with backoff, and for writers (leaderOnly) only the
// cluster's leader, as ovn-northd and ovn-kubernetes do: followers' caches
// may lag, and a guarded write built from a lagging cache would only fail
// its precondition.
//
// No inactivity probes: in the pinned libovsdb, a probe, a transaction and
// a leader change can deadlock the client for good (the fault suite hung a
// daemon that way; upstream ovn-kubernetes/libovsdb#391). A killed server
// closes its connections, which the client notices without probes; a
// silent network partition is the case left uncovered (docs/reliability.md).
func connectOptions(address string, leaderOnly bool, extra []Option) ([]client.Option, error) {
	var cc connectConfig
	for _, o := range extra {
		o(&cc)
	}
	eps, err := endpoints(address, cc.tls != nil)
	if err != nil {
		return nil, err
	}
	var opts []client.Option
	for _, e := range eps {
		opts = append(opts, client.WithEndpoint(e))
	}
	if cc.tls != nil {
		opts = append(opts, client.WithTLSConfig(cc.tls))
	}
	if len(eps) > 1 && leaderOnly {
		opts = append(opts, client.WithLeaderOnly(true))
	}
	return append(opts, client.WithReconnect(5*time.Second, newBackoff())), nil
}

// alive asks the server for an echo: the truthful answer to "is this
// connection up?", where the client's own flag stays true while it
// reconnects.
func alive(ctx context.Context, c client.Client) bool {
	return c.Echo(ctx) == nil
}
