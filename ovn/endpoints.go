package ovn

import (
	"fmt"
	"strings"
	"time"

	"github.com/ovn-org/libovsdb/client"
)

// Endpoints splits an OVSDB address as ovn-controller takes it: one
// endpoint ("unix:/path", "tcp:host:port", "ssl:host:port") or a
// comma-separated list of the members of a clustered database.
func Endpoints(address string) ([]string, error) {
	var out []string
	for _, e := range strings.Split(address, ",") {
		e = strings.TrimSpace(e)
		switch {
		case e == "":
			continue
		case strings.HasPrefix(e, "unix:"), strings.HasPrefix(e, "tcp:"), strings.HasPrefix(e, "ssl:"):
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

// inactivityProbe is how long a quiet connection may stay silent before
// the client sends an echo: a server that died without closing the
// connection (a killed VM, a network partition) is noticed within about
// twice this, and the client moves on to another cluster member.
const inactivityProbe = 5 * time.Second

// connectOptions are the client options for address: every endpoint of a
// cluster, reconnection with backoff, echo probes, and for writers
// (leaderOnly) only the cluster's leader, as ovn-northd and ovn-kubernetes
// do: followers' caches may lag, and a guarded write built from a lagging
// cache would only fail its precondition.
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
	return append(opts, client.WithInactivityCheck(inactivityProbe, 5*time.Second, newBackoff())), nil
}
