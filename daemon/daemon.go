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
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/daemon/attachment"
	"github.com/ovn-overlay/ovn-overlay/daemon/kube"
	"github.com/ovn-overlay/ovn-overlay/daemon/metrics"
	"github.com/ovn-overlay/ovn-overlay/daemon/network"
	"github.com/ovn-overlay/ovn-overlay/externalids"
	"github.com/ovn-overlay/ovn-overlay/netns"
	"github.com/ovn-overlay/ovn-overlay/ovn"
	"github.com/ovn-overlay/ovn-overlay/ovs"
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
	// WarmPorts is how many pre-provisioned logical switch ports the node
	// keeps per network, so that ADD only binds one (warm.go). 0: none.
	WarmPorts int
	// LeaseNamespace holds the Lease that elects the one daemon releasing
	// deleted nodes (normally the DaemonSet's namespace).
	LeaseNamespace string
	Logger         *slog.Logger
}

// Daemon is a running node daemon.
type Daemon struct {
	cfg Config
	log *slog.Logger
	nb  *ovn.Northbound
	sb  *ovn.Southbound
	ovs *ovs.Client
	// store maps each attachment of this node to its objects; every verb
	// goes through it and its per-attachment lock.
	store    *attachment.Store
	networks *network.Registry
	kube     *kube.Client // nil without a kubeconfig
	// stop ends background work (informers, committers) when the daemon
	// closes.
	stop chan struct{}
	// ovsJobs feeds the OVS port committer (ovsbatch.go).
	ovsJobs chan *ovsJob
	// defaultMTU is safe for geneve on this node's underlay; NADs' mtu wins.
	defaultMTU int
	// userspaceDatapath: br-int uses the netdev datapath, so pod veths need
	// TX checksum offload off.
	userspaceDatapath bool
}

// GeneveOverhead is what geneve encapsulation with OVN's options adds to a
// packet on an IPv4 underlay (measured: a 1500-byte underlay carries at most
// 1442-byte pod packets). An IPv6 underlay adds 20 more bytes.
const (
	GeneveOverheadIPv4 = 58
	GeneveOverheadIPv6 = 78
	fallbackMTU        = 1400
)

// New connects to the databases and prepares the daemon. It does not yet
// listen; call Serve.
func New(ctx context.Context, cfg Config) (*Daemon, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Bridge == "" {
		cfg.Bridge = "br-int"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 20 * time.Second
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, stop: make(chan struct{}), ovsJobs: make(chan *ovsJob, 1024)}
	dbLog := logr.FromSlogHandler(cfg.Logger.Handler())
	var err error
	if d.ovs, err = ovs.Connect(ctx, cfg.OVSAddress, cfg.Bridge, dbLog.WithName("ovs")); err != nil {
		return nil, err
	}
	chassis, err := d.ovs.Chassis()
	if err != nil {
		d.Close()
		return nil, err
	}
	if d.cfg.NodeName == "" {
		d.cfg.NodeName = chassis.SystemID
	}
	if d.cfg.NodeName == "" {
		d.Close()
		return nil, errors.New("node name unknown: pass --node-name or set external_ids:system-id in Open_vSwitch")
	}
	if d.nb, err = ovn.ConnectNorthbound(ctx, cfg.NBAddress, dbLog.WithName("nb")); err != nil {
		d.Close()
		return nil, err
	}
	if d.sb, err = ovn.ConnectSouthbound(ctx, cfg.SBAddress, chassis.SystemID, dbLog.WithName("sb")); err != nil {
		d.Close()
		return nil, err
	}
	d.networks = network.NewRegistry(d.nb, d.cfg.NodeName, d.log, network.Options{
		WarmPorts: cfg.WarmPorts, BoundPorts: d.boundPorts,
	}, d.stop)
	if err := d.buildStore(); err != nil {
		d.Close()
		return nil, err
	}
	go d.ovsCommitLoop()
	d.defaultMTU = d.underlayMTU(chassis.EncapIP)
	if d.userspaceDatapath, err = d.ovs.UserspaceDatapath(); err != nil {
		d.log.Warn("cannot read the integration bridge yet; assuming the kernel datapath", "err", err)
	}
	if cfg.Kubeconfig != "" {
		if err := d.startKube(ctx); err != nil {
			d.Close()
			return nil, err
		}
	}
	if cfg.MetricsAddress != "" {
		metrics.Serve(cfg.MetricsAddress, d.stop, d.log)
	}
	d.log.Info("daemon ready", "node", d.cfg.NodeName, "defaultMTU", d.defaultMTU, "userspaceDatapath", d.userspaceDatapath)
	return d, nil
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
	return d.collectDeletedPods(ctx)
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

// Close disconnects from the databases.
func (d *Daemon) Close() {
	select {
	case <-d.stop:
	default:
		close(d.stop)
	}
	if d.nb != nil {
		d.nb.Close()
	}
	if d.sb != nil {
		d.sb.Close()
	}
	if d.ovs != nil {
		d.ovs.Close()
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
	d.log.Info("serving CNI", "socket", d.cfg.Socket)
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
