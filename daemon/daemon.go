// Package daemon is the node daemon: it serves the CNI plugin over a unix
// socket and does the work of each verb against OVN (Northbound), the
// node's Open_vSwitch and the kernel. It keeps monitored caches of every
// database row it needs, so a CNI ADD writes but never reads from OVSDB.
package daemon

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/gateway"
	"github.com/ovn-overlay/ovn-overlay/daemon/kube"
	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovs"
	"github.com/ovn-overlay/ovn-overlay/ovs/openflow"
)

// Config is the daemon's configuration (its command-line flags).
type Config struct {
	// NodeName identifies this node in OVN rows. Empty: the chassis name
	// (Open_vSwitch external_ids:system-id).
	NodeName string
	// NBAddress, SBAddress and OVSAddress are OVSDB endpoints.
	NBAddress, SBAddress, OVSAddress string
	// Bridge is the integration bridge, normally br-int.
	Bridge string
	// OpenFlowSocket is the bridge's OpenFlow management socket (CHECK
	// and diagnose ask it for the port's flows). Empty: <bridge>.mgmt
	// beside the OVSDB socket of OVSAddress, where ovs-vswitchd puts it.
	OpenFlowSocket string
	// Socket is the CNI server's unix socket path.
	Socket string
	// ReadyTimeout bounds how long ADD waits for ovn-controller.
	ReadyTimeout time.Duration
	// Kubeconfig enables the Kubernetes integration (NAD validation and
	// Events, clean-up of pods deleted while the daemon was down, persistent
	// IPs, release of deleted nodes). Empty: the daemon works from CNI
	// requests alone.
	Kubeconfig string
	// MetricsAddress serves Prometheus /metrics (empty: off).
	MetricsAddress string
	// SSLKey, SSLCert and SSLCA are the files ssl: NB and SB endpoints
	// need (ovn-controller's --private-key, --certificate, --ca-cert).
	SSLKey, SSLCert, SSLCA string
	// NetworkIdle: a network this node has had no attachment on for this
	// long is given back (its warm ports, its layer3 subnet claim), and
	// the last node out removes the network's rows. 0: never.
	NetworkIdle time.Duration
	// WarmPorts is how many pre-provisioned logical switch ports the node
	// keeps per network, so that ADD only binds one (warm.go). 0: none.
	WarmPorts int
	// LeaseNamespace holds the Lease that elects the one daemon releasing
	// deleted nodes (normally the DaemonSet's namespace).
	LeaseNamespace string
	// External are the physical networks networks with external
	// connectivity may leave through; GatewayNode lets this node host
	// their gateways (on the physical networks it maps).
	External    gateway.Config
	GatewayNode bool
	Logger      *slog.Logger
}

// Daemon is a running node daemon.
type Daemon struct {
	cfg Config
	log *slog.Logger
	// ovnOptions are how the NB and SB clients connect (TLS).
	ovnOptions []ovn.Option
	// stop ends background work (start-up, informers, committers) when
	// the daemon closes; startUp is done once the start-up loop exits.
	stop    chan struct{}
	startUp sync.WaitGroup
	// ready is closed once the daemon is connected to OVS, the NB and the
	// SB and its attachment store is built. Until then STATUS answers 50
	// with what the daemon waits for (waiting), and other verbs wait for
	// it, bounded by their deadline.
	ready   chan struct{}
	waiting atomic.Pointer[string]

	// Set by the start-up loop before ready is closed; read by verbs
	// only after it is.
	nb  *ovn.Northbound
	sb  *ovn.Southbound
	ovs *ovs.Client
	// store maps each attachment of this node to its objects; every verb
	// goes through it and its per-attachment lock.
	store    *attachment.Store
	networks *network.Registry
	kube     *kube.Client // nil without a kubeconfig
	// ovsJobs feeds the OVS port committer (ovsbatch.go).
	ovsJobs chan *ovsJob
	// defaultMTU is safe for geneve on this node's underlay; NADs' mtu wins.
	defaultMTU int
	// userspaceDatapath: br-int uses the netdev datapath, so pod veths need
	// TX checksum offload off.
	userspaceDatapath bool
	// flows asks br-int which flows it holds (CHECK, diagnose), on one
	// kept connection to its management socket.
	flows *openflow.Session
}

// GeneveOverhead is what geneve encapsulation with OVN's options adds to a
// packet on an IPv4 underlay (measured: a 1500-byte underlay carries at most
// 1442-byte pod packets). An IPv6 underlay adds 20 more bytes.
const (
	GeneveOverheadIPv4 = 58
	GeneveOverheadIPv6 = 78
	fallbackMTU        = 1400
)

// New prepares the daemon; it connects to nothing yet. Serve listens at
// once and connects in the background, so a node whose OVN is not up yet
// (or is restarting) still answers STATUS, and starts serving as soon as
// the databases are reachable, without a crash loop.
func New(cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "br-int"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 20 * time.Second
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), ready: make(chan struct{}), ovsJobs: make(chan *ovsJob, 1024)}
	if cfg.SSLKey != "" || cfg.SSLCert != "" || cfg.SSLCA != "" {
		tlsConfig, err := ovn.LoadTLS(cfg.SSLKey, cfg.SSLCert, cfg.SSLCA)
		if err != nil {
			return nil, fmt.Errorf("--ovn-ssl-key, --ovn-ssl-cert, --ovn-ssl-ca: %w", err)
		}
		d.ovnOptions = append(d.ovnOptions, ovn.WithTLS(tlsConfig))
	}
	for name, addr := range map[string]string{"--nb-address": cfg.NBAddress, "--sb-address": cfg.SBAddress, "--ovs-address": cfg.OVSAddress} {
		eps, err := ovn.Endpoints(addr)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		for _, e := range eps {
			if strings.HasPrefix(e, "ssl:") && (len(d.ovnOptions) == 0 || name == "--ovs-address") {
				return nil, fmt.Errorf("%s %s: ssl: endpoints need --ovn-ssl-key, --ovn-ssl-cert and --ovn-ssl-ca (the local OVS database takes unix: or tcp:)", name, e)
			}
		}
	}
	flowSocket := cfg.OpenFlowSocket
	if flowSocket == "" {
		var err error
		if flowSocket, err = openflow.SocketPath(cfg.OVSAddress, cfg.Bridge); err != nil {
			return nil, fmt.Errorf("--ovs-address %s: CHECK reads the bridge's flows from its OpenFlow management socket, which only a unix: endpoint locates: pass --openflow-socket (normally /var/run/openvswitch/%s.mgmt)", cfg.OVSAddress, cfg.Bridge)
		}
	}
	d.flows = openflow.NewSession(flowSocket)
	d.setWaiting("starting: connecting to the local Open_vSwitch, OVN Northbound and Southbound databases")
	return d, nil
}

// run connects and builds the daemon, retrying with backoff until it
// succeeds or the daemon closes; then it opens ready.
func (d *Daemon) run() {
	defer d.startUp.Done()
	delay := 100 * time.Millisecond
	for {
		err := d.connect()
		if err == nil {
			d.setWaiting("")
			close(d.ready)
			d.log.Info("daemon ready", "node", d.cfg.NodeName, "defaultMTU", d.defaultMTU, "userspaceDatapath", d.userspaceDatapath,
				"physicalNetworks", d.publishPhysicalNetworks())
			return
		}
		if prev := d.setWaiting(err.Error()); prev != err.Error() {
			d.log.Warn("not serving yet; retrying", "err", err)
		}
		select {
		case <-time.After(delay):
			delay = min(2*delay, 5*time.Second)
		case <-d.stop:
			return
		}
	}
}

// connect does what is not done yet, in order; each step is done once, so
// a retry picks up where the last attempt stopped.
func (d *Daemon) connect() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	dbLog := logr.FromSlogHandler(d.cfg.Logger.Handler())
	if d.ovs == nil {
		o, err := ovs.Connect(ctx, d.cfg.OVSAddress, d.cfg.Bridge, dbLog.WithName("ovs"))
		if err != nil {
			return fmt.Errorf("waiting for the local Open_vSwitch database: %w", err)
		}
		d.ovs = o
	}
	chassis, err := d.ovs.Chassis()
	if err != nil {
		return err
	}
	if d.cfg.NodeName == "" {
		if d.cfg.NodeName = chassis.SystemID; d.cfg.NodeName == "" {
			return errors.New("node name unknown: pass --node-name or set external_ids:system-id in Open_vSwitch")
		}
	}
	if d.nb == nil {
		if d.nb, err = ovn.ConnectNorthbound(ctx, d.cfg.NBAddress, dbLog.WithName("nb"), d.ovnOptions...); err != nil {
			return fmt.Errorf("waiting for the OVN Northbound database: %w", err)
		}
	}
	if d.sb == nil {
		if d.sb, err = ovn.ConnectSouthbound(ctx, d.cfg.SBAddress, chassis.SystemID, dbLog.WithName("sb"), d.ovnOptions...); err != nil {
			return fmt.Errorf("waiting for the OVN Southbound database: %w", err)
		}
	}
	if d.store == nil {
		if err := d.build(chassis.EncapIP); err != nil {
			return err
		}
		d.startGatewayAgent(chassis.SystemID)
	}
	if d.cfg.Kubeconfig != "" && d.kube == nil {
		// Informers of a big cluster take longer to sync than a database
		// connection.
		kctx, kcancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer kcancel()
		if err := d.startKube(kctx); err != nil {
			return fmt.Errorf("waiting for the Kubernetes API: %w", err)
		}
	}
	return nil
}

// build makes the per-network registry and the attachment store (from the
// caches and the kernel) and starts the OVS committer.
func (d *Daemon) build(encapIP netip.Addr) error {
	d.networks = network.NewRegistry(d.nb, d.cfg.NodeName, d.log, network.Options{
		WarmPorts: d.cfg.WarmPorts, BoundPorts: d.boundPorts,
		Idle: d.cfg.NetworkIdle, InUse: func(name string) bool { return len(d.store.IDs(name)) > 0 },
		External: d.cfg.External,
	}, d.stop)
	if err := d.buildStore(); err != nil {
		d.store = nil
		return err
	}
	d.networks.StartJanitor()
	go d.ovsCommitLoop()
	d.defaultMTU = d.underlayMTU(encapIP)
	var err error
	if d.userspaceDatapath, err = d.ovs.UserspaceDatapath(); err != nil {
		d.log.Warn("cannot read the integration bridge yet; assuming the kernel datapath", "err", err)
	}
	return nil
}

// setWaiting records what the daemon waits for ("" once ready) and returns
// the previous value.
func (d *Daemon) setWaiting(what string) string {
	prev := d.waiting.Swap(&what)
	if prev == nil {
		return ""
	}
	return *prev
}

// errStarting marks verbs refused because the daemon is not connected yet:
// transient, CNI code 11.
var errStarting = errors.New("ovn-overlay is starting")

// awaitReady holds a verb until the daemon is ready, at most until ctx ends
// or the ready deadline passes.
func (d *Daemon) awaitReady(ctx context.Context) error {
	select {
	case <-d.ready:
		return nil
	default:
	}
	t := time.NewTimer(d.cfg.ReadyTimeout)
	defer t.Stop()
	select {
	case <-d.ready:
		return nil
	case <-ctx.Done():
	case <-t.C:
	}
	return fmt.Errorf("%w: %s; try again later", errStarting, *d.waiting.Load())
}

// boundPorts names the logical ports local OVS interfaces are bound to.
func (d *Daemon) boundPorts() []string {
	ifaces, err := d.ovs.OwnedInterfaces()
	if err != nil {
		d.log.Warn("cannot list OVS interfaces; warm ports they hold may be offered again", "err", err)
		return nil
	}
	var out []string
	for _, i := range ifaces {
		if id := i.ExternalIDs[externalids.IfaceID]; id != "" {
			out = append(out, id)
		}
	}
	return out
}

// startKube starts the informers and removes the attachments of pods that
// were deleted while the daemon was not running: their DELs never came.
func (d *Daemon) startKube(ctx context.Context) error {
	k, err := kube.New(d.cfg.Kubeconfig, d.cfg.NodeName, d.log.With("component", "kube"))
	if err != nil {
		return err
	}
	d.networks.SetClaims(k.ClaimsOf)
	if err := k.OnClaims(d.networks.OnClaim); err != nil {
		return err
	}
	// ctx only bounds start-up; the informers live as long as the daemon.
	if err := k.Start(ctx, d.stop); err != nil {
		return err
	}
	d.kube = k
	// KubeVirt's signal that a migrated VM runs on this node. Registered
	// once d.kube is set: the handler uses it. A handler added to a
	// started informer is still given every pod it holds.
	if err := k.OnLocalPods(d.podChanged); err != nil {
		return err
	}
	if d.cfg.LeaseNamespace != "" {
		k.RunNodeCleanup(d.cfg.LeaseNamespace, kube.NodeReleaser{
			Release: func(ctx context.Context, node string) error {
				summary, err := d.nb.ReleaseNode(ctx, node)
				if err == nil {
					d.log.Info("released deleted node", "node", node, "released", summary)
				}
				return err
			},
			Owners: d.nb.NodesWithRows,
		}, d.stop)
	}
	// The pods' DELs will come, or GC: a failure here is not worth
	// refusing service for.
	if err := d.collectDeletedPods(ctx); err != nil {
		d.log.Warn("clean-up of pods deleted while the daemon was down is incomplete", "err", err)
	}
	return nil
}

// collectDeletedPods tears down this node's attachments whose pod no longer
// exists (or was recreated under the same name: another UID).
func (d *Daemon) collectDeletedPods(ctx context.Context) error {
	var errs []error
	for _, id := range d.store.IDs("") {
		lsp, ok := d.attachedPort(id, d.store.Get(id))
		if !ok || lsp.ExternalIDs[externalids.PodNamespace] == "" {
			continue
		}
		ids := lsp.ExternalIDs
		pod, ok := d.kube.Pod(ids[externalids.PodNamespace], ids[externalids.PodName])
		if ok && (ids[externalids.PodUID] == "" || string(pod.UID) == ids[externalids.PodUID]) {
			continue
		}
		d.log.Info("removing attachment of a pod deleted while the daemon was down",
			"pod", ids[externalids.PodNamespace]+"/"+ids[externalids.PodName], "attachment", id)
		if err := d.remove(ctx, id); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// underlayMTU derives the default pod MTU from the link carrying the geneve
// encap IP, so pods never send packets the underlay silently drops.
func (d *Daemon) underlayMTU(encapIP netip.Addr) int {
	if !encapIP.IsValid() {
		d.log.Warn("no ovn-encap-ip configured; default pod MTU falls back", "mtu", fallbackMTU)
		return fallbackMTU
	}
	mtu, err := netns.MTUOfLinkWithAddress(encapIP)
	if err != nil {
		d.log.Warn("cannot find the underlay link; default pod MTU falls back", "encapIP", encapIP, "mtu", fallbackMTU, "err", err)
		return fallbackMTU
	}
	if encapIP.Is4() {
		return mtu - GeneveOverheadIPv4
	}
	return mtu - GeneveOverheadIPv6
}

// Close stops the daemon's background work and disconnects.
func (d *Daemon) Close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	d.startUp.Wait() // the start-up loop owns the clients until it exits
	if d.nb != nil {
		d.nb.Close()
	}
	if d.sb != nil {
		d.sb.Close()
	}
	if d.ovs != nil {
		d.ovs.Close()
	}
	if d.flows != nil {
		d.flows.Close()
	}
}

// Serve listens on the configured socket (root-only) until ctx ends.
func (d *Daemon) Serve(ctx context.Context) error {
	if err := os.MkdirAll(filepath.Dir(d.cfg.Socket), 0o700); err != nil {
		return fmt.Errorf("socket dir: %w", err)
	}
	// A socket left by a previous run would make Listen fail.
	if err := os.Remove(d.cfg.Socket); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("remove stale socket: %w", err)
	}
	l, err := net.Listen("unix", d.cfg.Socket)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", d.cfg.Socket, err)
	}
	if err := os.Chmod(d.cfg.Socket, 0o600); err != nil {
		l.Close()
		return fmt.Errorf("restrict %s to root: %w", d.cfg.Socket, err)
	}
	// A client that sends slowly or never reads its answer must not hold
	// a goroutine forever; the write deadline leaves ADD its ready
	// deadline plus the NB commit's.
	srv := &http.Server{Handler: d.Handler(), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: d.cfg.ReadyTimeout + 2*time.Minute, IdleTimeout: time.Minute}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	if d.cfg.MetricsAddress != "" {
		metrics.Serve(d.cfg.MetricsAddress, d.stop, d.log)
	}
	d.startUp.Add(1)
	go d.run()
	d.log.Info("serving CNI", "socket", d.cfg.Socket)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
