package daemon

import (
	"context"
	"time"

	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/ovs"
)

// OVS ports of concurrent ADDs share transactions the same way their
// logical ports do (see commit.go): whatever queued while one transaction
// was in flight goes into the next; a lone ADD is not delayed.

// ovsMaxBatch bounds the ports of one OVS transaction; ovsTimeout bounds
// one transaction.
const (
	ovsMaxBatch = 128
	ovsTimeout  = 30 * time.Second
)

type ovsJob struct {
	spec ovs.PortSpec
	done chan error
}

// addOVSPort queues spec for the node's OVS committer and waits for it.
func (d *Daemon) addOVSPort(ctx context.Context, spec ovs.PortSpec) error {
	job := &ovsJob{spec: spec, done: make(chan error, 1)}
	select {
	case d.ovsJobs <- job:
	case <-ctx.Done():
		return ctx.Err()
	}
	return <-job.done
}

func (d *Daemon) ovsCommitLoop() {
	for {
		var job *ovsJob
		select {
		case job = <-d.ovsJobs:
		case <-d.stop:
			return
		}
		batch := []*ovsJob{job}
	drain:
		for len(batch) < ovsMaxBatch {
			select {
			case j := <-d.ovsJobs:
				batch = append(batch, j)
			default:
				break drain
			}
		}
		specs := make([]ovs.PortSpec, len(batch))
		for i, j := range batch {
			specs[i] = j.spec
		}
		ctx, cancel := context.WithTimeout(context.Background(), ovsTimeout)
		err := d.ovs.AddPorts(ctx, specs)
		cancel()
		metrics.OVSTransactions.WithLabelValues("add_port").Inc()
		if err != nil && len(batch) > 1 {
			// One bad port must not fail its neighbours: retry alone.
			for _, j := range batch {
				ctx, cancel := context.WithTimeout(context.Background(), ovsTimeout)
				j.done <- d.ovs.AddPort(ctx, j.spec)
				cancel()
			}
			continue
		}
		for _, j := range batch {
			j.done <- err
		}
	}
}
