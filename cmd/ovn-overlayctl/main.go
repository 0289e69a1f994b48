// Command ovn-overlayctl is the operator's tool: cluster-wide actions no
// single node daemon should take on its own, and a node's view of one
// attachment.
//
//	ovn-overlayctl --nb-address unix:/var/run/ovn/ovnnb_db.sock release-node NODE
//	ovn-overlayctl diagnose --pod NAMESPACE/NAME [--net [NAMESPACE/]NAD[@IFNAME]] [--peer IP] [-o json]
//	ovn-overlayctl diagnose --network NAME --container ID --ifname IFNAME
//
// release-node frees everything a departed node held: its layer3 node
// subnets (so other nodes can claim them), its node switches and router
// ports, its pods' logical ports and their addresses.
//
// diagnose asks the node's daemon (over its CNI socket) to walk one
// attachment from the NB logical port to the pod's routes and say which
// place is broken and how to fix it (docs/diagnose.md). Exit status: 0
// healthy, 3 broken, 1 when no diagnosis could be made, 2 for bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/go-logr/logr"

	"github.com/ovn-overlay/ovn-overlay/ovn"
)

func usage() {
	fmt.Fprintf(os.Stderr, `usage:
  %[1]s [--nb-address ENDPOINT] release-node NODE
  %[1]s diagnose [--socket PATH] [-o text|json] [--peer IP] --pod NAMESPACE/NAME [--net [NAMESPACE/]NAD[@IFNAME]]
  %[1]s diagnose [--socket PATH] [-o text|json] [--peer IP] --network NAME --container ID --ifname IFNAME
`, os.Args[0])
}

func main() {
	nbAddress := flag.String("nb-address", "unix:/var/run/ovn/ovnnb_db.sock", "OVN Northbound OVSDB endpoint (release-node)")
	flag.Usage = func() {
		usage()
		flag.PrintDefaults()
	}
	flag.Parse()
	var err error
	switch {
	case flag.NArg() == 2 && flag.Arg(0) == "release-node":
		err = releaseNode(*nbAddress, flag.Arg(1))
	case flag.NArg() >= 1 && flag.Arg(0) == "diagnose":
		os.Exit(diagnoseCommand(flag.Args()[1:]))
	default:
		flag.Usage()
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "ovn-overlayctl:", err)
		os.Exit(1)
	}
}

func releaseNode(nbAddress, node string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	logger := logr.FromSlogHandler(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})).Handler())
	nb, err := ovn.ConnectNorthbound(ctx, nbAddress, logger)
	if err != nil {
		return err
	}
	defer nb.Close()
	summary, err := nb.ReleaseNode(ctx, node)
	if err != nil {
		return err
	}
	fmt.Printf("released node %s: %s\n", node, summary)
	return nil
}
