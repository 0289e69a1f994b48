//go:build tools

// Package tools pins Multus's thin plugin so `go mod tidy` keeps its
// dependencies.
package tools

import _ "gopkg.in/k8snetworkplumbingwg/multus-cni.v4/cmd/multus"
