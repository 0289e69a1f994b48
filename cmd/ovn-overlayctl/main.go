// Command ovn-overlayctl is the operator's tool for cluster-wide actions no
// single node daemon should take on its own.
//
//	ovn-overlayctl --nb-address unix:/var/run/ovn/ovnnb_db.sock release-node NODE
//
// release-node frees everything a departed node held: its layer3 node
// subnets (so other nodes can claim them), its node switches and router
// ports, its pods' logical ports and their addresses.
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

func main() {
	nbAddress := flag.String("nb-address", "unix:/var/run/ovn/ovnnb_db.sock", "OVN Northbound OVSDB endpoint")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: %s [--nb-address ENDPOINT] release-node NODE\n", os.Args[0])
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 2 || flag.Arg(0) != "release-node" {
		flag.Usage()
		os.Exit(2)
	}
	if err := releaseNode(*nbAddress, flag.Arg(1)); err != nil {
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
