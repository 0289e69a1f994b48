//go:build tools

// This file pins modules the e2e harness uses without importing them
// from test code: the reference loopback plugin it builds as Multus's
// cluster network, and the ipamclaims module whose CRD it installs.
package e2e

import (
	_ "github.com/containernetworking/plugins/plugins/main/loopback"
	_ "github.com/k8snetworkplumbingwg/ipamclaims/pkg/crd/ipamclaims/v1alpha1"
)
