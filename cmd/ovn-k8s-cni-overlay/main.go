// Command ovn-k8s-cni-overlay is the CNI plugin a runtime (or Multus)
// executes. It forwards to the ovn-overlay node daemon.
package main

import "github.com/ovn-overlay/ovn-overlay/cniplugin"

func main() { cniplugin.Main() }
