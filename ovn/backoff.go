package ovn

import (
	"time"

	"github.com/cenkalti/backoff/v4"
)

// newBackoff is the reconnect schedule: quick first retries, since a node
// daemon without its databases cannot serve CNI requests, capped so a long
// outage does not hammer the server.
func newBackoff() backoff.BackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 100 * time.Millisecond
	b.MaxInterval = 5 * time.Second
	b.MaxElapsedTime = 0 // never give up
	return b
}
