// Module e2e holds the end-to-end suites. It is a module of its own so that
// test-only dependencies (Kubernetes API machinery for the harness, Multus,
// the reference loopback plugin) stay out of the product's go.mod.
module github.com/ovn-overlay/ovn-overlay/e2e

go 1.26.8

require (
	github.com/containernetworking/cni v1.3.0
	github.com/ovn-overlay/ovn-overlay v0.0.0
	github.com/vishvananda/netns v0.0.5
)

require (
	github.com/Masterminds/semver/v3 v3.5.0 // indirect
	go.uber.org/automaxprocs v1.6.0 // indirect
	golang.org/x/sys v0.35.0 // indirect
)

replace github.com/ovn-overlay/ovn-overlay => ../
