package daemon

import (
	"errors"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics: where an ADD's time goes, so users can see it in their own
// clusters. Buckets span the userspace datapath's floor (a few ms per
// step) to the ADD deadline.
var (
	latencyBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 20}

	cniDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "cni_duration_seconds",
		Help:    "Duration of CNI requests served by the daemon, by command and result.",
		Buckets: latencyBuckets,
	}, []string{"command", "result"})

	addPhaseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "add_phase_duration_seconds",
		Help: "Duration of the phases of a CNI ADD: nb_port (queueing, IPAM and the NB transaction) runs " +
			"alongside plug (veth into the pod and the OVS port); then configure (pod MAC, addresses, routes) " +
			"and ovn_installed (waiting for ovn-controller); on a warm port, relabel (the pod's identity on the port) comes last. " +
			"nb_port and plug are measured from the start of ADD.",
		Buckets: latencyBuckets,
	}, []string{"phase"})

	nbTransactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ovn_overlay", Name: "nb_port_transactions_total",
		Help: "NB transactions creating ports, by result (ok, conflict: lost a race and retried, error).",
	}, []string{"result"})

	ovsTransactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ovn_overlay", Name: "ovs_transactions_total",
		Help: "Open_vSwitch transactions of ADDs, by operation (add_port).",
	}, []string{"operation"})

	nbBatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "nb_port_batch_size",
		Help:    "Ports created per NB transaction (concurrent ADDs are coalesced).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})

	ipamDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "ipam_duration_seconds",
		Help:    "Time to allocate the addresses of one NB port batch.",
		Buckets: latencyBuckets,
	})

	nbTransactionDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "nb_transaction_duration_seconds",
		Help:    "Round trip of one NB port transaction.",
		Buckets: latencyBuckets,
	})

	warmPortsFree = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "ovn_overlay", Name: "warm_ports_free",
		Help: "Pre-provisioned logical switch ports this node holds ready for the next ADDs, by network.",
	}, []string{"network"})

	addPortSource = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ovn_overlay", Name: "add_port_source_total",
		Help: "ADDs by where their logical switch port came from: warm (pre-provisioned, only bound), " +
			"cold (created for the ADD: the pool was empty or off), fixed (static IPs, MAC or IPAMClaim: never warm).",
	}, []string{"source"})
)

func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(cniDuration, addPhaseDuration, nbTransactions, ovsTransactions, nbBatchSize, ipamDuration, nbTransactionDuration,
		warmPortsFree, addPortSource,
		prometheus.NewGoCollector(), prometheus.NewProcessCollector(prometheus.ProcessCollectorOpts{}))
	return r
}

// registry is shared by all daemons of a process (tests run several).
var registry = newRegistry()

func observePhase(phase string, since time.Time) time.Time {
	now := time.Now()
	addPhaseDuration.WithLabelValues(phase).Observe(now.Sub(since).Seconds())
	return now
}

func result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// serveMetrics exposes /metrics on addr until the daemon stops. A busy port
// is reported, not fatal: CNI service matters more than metrics.
func (d *Daemon) serveMetrics(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		d.log.Warn("metrics endpoint disabled", "address", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-d.stop
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			d.log.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	d.log.Info("serving metrics", "address", l.Addr().String())
}
