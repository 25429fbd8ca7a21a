package e2e

// The TC decapsulation program the TUN tests attach to their reals
// (bpf/tundecap.c): this kernel has no ipip module.
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -nostdinc -I../../bpf/include" -type decap_kind tun ../../bpf/tundecap.c
