module github.com/halo-lb/halo

go 1.26.8

require (
	github.com/cilium/ebpf v0.22.0
	github.com/vishvananda/netns v0.0.5
	golang.org/x/sys v0.50.0
)

require golang.org/x/net v0.59.0 // indirect

tool github.com/cilium/ebpf/cmd/bpf2go
