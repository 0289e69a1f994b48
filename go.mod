module github.com/ovn-overlay/ovn-overlay

go 1.26.8

require github.com/ovn-org/libovsdb v0.7.1-0.20240820095311-ce1951614a20
