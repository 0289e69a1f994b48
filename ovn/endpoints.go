package ovn

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/ovn-org/libovsdb/client"
)

// Endpoints splits an OVSDB address as ovn-controller takes it: one
// endpoint ("unix:/path", "tcp:host:port") or a comma-separated list of
// the members of a clustered database.
func Endpoints(address string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(address, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case strings.HasPrefix(e, "unix:"), strings.HasPrefix(e, "tcp:"):
			out = append(out, e)
		case strings.HasPrefix(e, "ssl:"):
			// Accepting it would only retry a handshake for ever: the
			// daemon has no key, certificate and CA flags yet.
			return nil, fmt.Errorf("OVSDB endpoint %q: ssl: is not supported yet (no TLS key, certificate and CA settings); use tcp: or unix:", e)
		default:
			return nil, fmt.Errorf("OVSDB endpoint %q: want unix:PATH or tcp:HOST:PORT (comma-separated for a cluster)", e)
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
func connectOptions(address string, leaderOnly bool) ([]client.Option, error) {
	eps, err := Endpoints(address)
	if err != nil {
		return nil, err
	}
	var opts []client.Option
	for _, e := range eps {
		opts = append(opts, client.WithEndpoint(e))
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
