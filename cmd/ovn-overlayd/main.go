// Command ovn-overlayd is the node daemon: one per node, next to
// ovn-controller. The CNI plugin forwards every invocation to it.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon"
	"github.com/ovn-overlay/ovn-overlay/daemon/gateway"
)

func main() {
	cfg := daemon.Config{}
	flag.StringVar(&cfg.NodeName, "node-name", "", "this node's name in OVN rows (default: the chassis system-id)")
	flag.StringVar(&cfg.NBAddress, "nb-address", "unix:/var/run/ovn/ovnnb_db.sock", "OVN Northbound OVSDB endpoint")
	flag.StringVar(&cfg.SBAddress, "sb-address", "unix:/var/run/ovn/ovnsb_db.sock", "OVN Southbound OVSDB endpoint")
	flag.StringVar(&cfg.SSLKey, "ovn-ssl-key", "", "private key for ssl: NB and SB endpoints (PEM)")
	flag.StringVar(&cfg.SSLCert, "ovn-ssl-cert", "", "certificate for ssl: NB and SB endpoints (PEM)")
	flag.StringVar(&cfg.SSLCA, "ovn-ssl-ca", "", "CA certificate the NB and SB servers' certificates must be signed by (PEM)")
	flag.StringVar(&cfg.OVSAddress, "ovs-address", "unix:/var/run/openvswitch/db.sock", "local Open_vSwitch OVSDB endpoint")
	flag.StringVar(&cfg.Bridge, "bridge", "br-int", "OVN integration bridge")
	flag.StringVar(&cfg.OpenFlowSocket, "openflow-socket", "", "the bridge's OpenFlow management socket (default: <bridge>.mgmt beside the --ovs-address unix socket)")
	flag.StringVar(&cfg.Socket, "socket", cniproto.DefaultSocket, "CNI server unix socket (root-only)")
	flag.DurationVar(&cfg.ReadyTimeout, "ready-timeout", 20*time.Second, "how long ADD waits for ovn-controller to install a port")
	flag.StringVar(&cfg.Kubeconfig, "kubeconfig", "", "kubeconfig for the Kubernetes integration; \"in-cluster\" uses the pod's service account (empty: work from CNI requests alone)")
	flag.StringVar(&cfg.LeaseNamespace, "lease-namespace", os.Getenv("POD_NAMESPACE"), "namespace of the Lease electing the daemon that releases deleted nodes (default $POD_NAMESPACE; empty: never release)")
	flag.StringVar(&cfg.MetricsAddress, "metrics-address", "127.0.0.1:9476",
		"address of the Prometheus /metrics endpoint (empty: off); loopback by default, since the daemon runs in the host network and its metrics name networks")
	flag.IntVar(&cfg.WarmPorts, "warm-ports", 8, "pre-provisioned logical switch ports kept per network on this node, so ADD only binds one (0: off; see docs/performance.md)")
	flag.DurationVar(&cfg.NetworkIdle, "network-idle", 10*time.Minute,
		"give back a network this node has had no pod on for this long (its warm ports and layer3 subnet claim; the last node removes the network's rows); 0: never")
	flag.Var(&cfg.External, gateway.FlagName,
		"a physical network that networks with external connectivity leave through, repeatable (the first is the default): <physical network>,subnet=<CIDR>,gateways=<first>-<last>[,next-hop=<IP>][,prefix=<CIDR>]... (see README, External connectivity)")
	flag.BoolVar(&cfg.GatewayNode, "gateway-node", true, "host networks' gateways on the physical networks this node maps in ovn-bridge-mappings (false: never a gateway)")
	verbose := flag.Bool("v", false, "debug logging")
	flag.Parse()
	// The heap is mostly the OVSDB caches, which live as long as the
	// daemon; collecting at 50% growth instead of Go's 100% keeps RSS
	// ~20% lower (62.8 -> 51.5 MB with 1,000 local ports, same attach
	// latency: docs/performance.md). GOGC still overrides.
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(50)
	}

	level := slog.LevelInfo
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	d, err := daemon.New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ovn-overlayd:", err)
		os.Exit(1)
	}
	defer d.Close()
	if err := d.Serve(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "ovn-overlayd:", err)
		os.Exit(1)
	}
}
