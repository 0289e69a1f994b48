package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/ovn-overlay/ovn-overlay/cniproto"
	"github.com/ovn-overlay/ovn-overlay/daemon/diagnose"
)

// Exit statuses of diagnose.
const (
	exitHealthy = 0
	exitFailed  = 1
	exitUsage   = 2
	exitBroken  = 3
)

func diagnoseCommand(args []string) int {
	fs := flag.NewFlagSet("diagnose", flag.ContinueOnError)
	socket := fs.String("socket", cniproto.DefaultSocket, "the node daemon's CNI socket")
	output := fs.String("o", "text", "output format: text or json")
	pod := fs.String("pod", "", "the pod, NAMESPACE/NAME")
	element := fs.String("net", "", "the pod's network selection element, [NAMESPACE/]NAD[@IFNAME] (needed when the pod has several attachments)")
	networkName := fs.String("network", "", "the network's name (the NAD config's \"name\"), with --container and --ifname")
	container := fs.String("container", "", "the CNI container ID (the pod sandbox's ID)")
	ifName := fs.String("ifname", "", "the pod's interface name (CNI_IFNAME)")
	peer := fs.String("peer", "", "an address to ovn-trace an ICMP echo to, from the attachment")
	timeout := fs.Duration("timeout", time.Minute, "how long to wait for the daemon")
	fs.Usage = func() {
		usage()
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	q, err := queryFromFlags(*pod, *element, *networkName, *container, *ifName, *peer)
	if err == nil && *output != "text" && *output != "json" {
		err = fmt.Errorf("-o %q: want text or json", *output)
	}
	if err == nil && fs.NArg() > 0 {
		err = fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ovn-overlayctl diagnose:", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()
	report, raw, err := fetchDiagnosis(ctx, *socket, q)
	if err != nil {
		fmt.Fprintln(os.Stderr, "ovn-overlayctl diagnose:", err)
		return exitFailed
	}
	if *output == "json" {
		_, err = os.Stdout.Write(raw)
	} else {
		err = diagnose.Render(os.Stdout, report)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ovn-overlayctl diagnose:", err)
		return exitFailed
	}
	if !report.Healthy {
		return exitBroken
	}
	return exitHealthy
}

func queryFromFlags(pod, element, networkName, container, ifName, peer string) (diagnose.Query, error) {
	q := diagnose.Query{Network: networkName, ContainerID: container, IfName: ifName}
	if pod != "" {
		ns, name, ok := strings.Cut(pod, "/")
		if !ok || ns == "" || name == "" {
			return q, fmt.Errorf("--pod %q: want NAMESPACE/NAME", pod)
		}
		q.PodNamespace, q.PodName = ns, name
		if element != "" {
			nad, iface, err := diagnose.ParseSelection(element, ns)
			if err != nil {
				return q, fmt.Errorf("--net: %w", err)
			}
			q.NAD = nad
			if iface != "" {
				if q.IfName != "" && q.IfName != iface {
					return q, fmt.Errorf("--net names interface %s, --ifname %s", iface, q.IfName)
				}
				q.IfName = iface
			}
		}
	} else if element != "" {
		return q, errors.New("--net selects among a pod's attachments: give --pod too")
	}
	if peer != "" {
		a, err := netip.ParseAddr(peer)
		if err != nil {
			return q, fmt.Errorf("--peer %q is not an IP address", peer)
		}
		q.Peer = a
	}
	// The daemon validates too; checking here gives the flag names.
	if _, err := diagnose.QueryFromValues(q.Values()); err != nil {
		return q, fmt.Errorf("%w (flags: --pod and --net, or --network, --container and --ifname)", err)
	}
	return q, nil
}

// fetchDiagnosis asks the daemon and returns the report with its JSON as
// the daemon sent it (so -o json passes fields this build does not know).
func fetchDiagnosis(ctx context.Context, socket string, q diagnose.Query) (*diagnose.Report, []byte, error) {
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socket)
		},
	}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://daemon"+diagnose.Path+"?"+q.Values().Encode(), nil)
	if err != nil {
		return nil, nil, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, nil, fmt.Errorf("the daemon does not answer on %s (is ovn-overlayd running on this node? --socket names another socket): %w", socket, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("read the daemon's answer: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		var e struct {
			Error string `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error != "" {
			return nil, nil, errors.New(e.Error)
		}
		return nil, nil, fmt.Errorf("the daemon answered %s (an older daemon without diagnose answers 404 or 405)", resp.Status)
	}
	var r diagnose.Report
	if err := json.Unmarshal(raw, &r); err != nil {
		return nil, nil, fmt.Errorf("the daemon's report does not parse: %w", err)
	}
	return &r, raw, nil
}
