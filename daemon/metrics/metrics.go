// Package metrics holds the daemon's Prometheus metrics and serves them.
package metrics

import (
	"errors"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Metrics: where an ADD's time goes, so users can see it in their own
// clusters. Buckets span the userspace datapath's floor (a few ms per
// step) to the ADD deadline.
var (
	latencyBuckets = []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .2, .5, 1, 2, 5, 10, 20}

	CNIDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "cni_duration_seconds",
		Help:    "Duration of CNI requests served by the daemon, by command and result.",
		Buckets: latencyBuckets,
	}, []string{"command", "result"})

	addPhaseDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "add_phase_duration_seconds",
		Help: "Duration of the phases of a CNI ADD: prepare (validation, the lock, clearing leftovers, planning), then nb_port (queueing, IPAM and the NB transaction) runs " +
			"alongside plug (veth into the pod and the OVS port); then configure (pod MAC, addresses, routes) " +
			"and ovn_installed (waiting for ovn-controller); on a warm port, relabel (the pod's identity on the port) comes last. " +
			"nb_port and plug are measured from the end of prepare.",
		Buckets: latencyBuckets,
	}, []string{"phase"})

	NBTransactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ovn_overlay", Name: "nb_port_transactions_total",
		Help: "NB transactions creating ports, by result (ok, conflict: lost a race and retried, error).",
	}, []string{"result"})

	OVSTransactions = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ovn_overlay", Name: "ovs_transactions_total",
		Help: "Open_vSwitch transactions of ADDs, by operation (add_port).",
	}, []string{"operation"})

	NBBatchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "nb_port_batch_size",
		Help:    "Ports created per NB transaction (concurrent ADDs are coalesced).",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128},
	})

	IPAMDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "ipam_duration_seconds",
		Help:    "Time to allocate the addresses of one NB port batch.",
		Buckets: latencyBuckets,
	})

	NBTransactionDuration = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "ovn_overlay", Name: "nb_transaction_duration_seconds",
		Help:    "Round trip of one NB port transaction.",
		Buckets: latencyBuckets,
	})

	WarmPortsFree = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "ovn_overlay", Name: "warm_ports_free",
		Help: "Pre-provisioned logical switch ports this node holds ready for the next ADDs, by network.",
	}, []string{"network"})

	PhysicalNetworks = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "ovn_overlay", Name: "physical_network_mapped",
		Help: "1 for each physical network this node maps to an existing OVS bridge (ovn-bridge-mappings), i.e. the localnet networks it can serve; " +
			"refreshed when the daemon gets ready and at every CNI STATUS.",
	}, []string{"physical_network"})

	AddPortSource = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "ovn_overlay", Name: "add_port_source_total",
		Help: "ADDs by where their logical switch port came from: warm (pre-provisioned, only bound), " +
			"cold (created for the ADD: the pool was empty or off), fixed (static IPs, MAC or IPAMClaim: never warm).",
	}, []string{"source"})
)

func newRegistry() *prometheus.Registry {
	r := prometheus.NewRegistry()
	r.MustRegister(CNIDuration, addPhaseDuration, NBTransactions, OVSTransactions, NBBatchSize, IPAMDuration, NBTransactionDuration,
		WarmPortsFree, AddPortSource, PhysicalNetworks,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return r
}

// Registry is shared by all daemons of a process (tests run several).
var Registry = newRegistry()

func ObservePhase(phase string, since time.Time) time.Time {
	now := time.Now()
	addPhaseDuration.WithLabelValues(phase).Observe(now.Sub(since).Seconds())
	return now
}

func Result(err error) string {
	if err != nil {
		return "error"
	}
	return "ok"
}

// Serve exposes /metrics on addr until stop closes. A busy port is
// reported, not fatal: CNI service matters more than metrics.
func Serve(addr string, stop <-chan struct{}, log *slog.Logger) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		log.Warn("metrics endpoint disabled", "address", addr, "err", err)
		return
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(Registry, promhttp.HandlerOpts{}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-stop
		srv.Close()
	}()
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("metrics endpoint stopped", "err", err)
		}
	}()
	log.Info("serving metrics", "address", l.Addr().String())
}
