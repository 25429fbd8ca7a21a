package xdp

// -nostdinc: every header comes from bpf/include (vendored uapi and libbpf
// headers), so the objects do not depend on the build host's include tree.
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -type vip_key -type vip_meta -type real -type flow_key -type flow_val -type counter -type lb_reason -type lb_flags -type lb_limits -type real_flags -type lb_method -type flow_flags -type ring_flags -type vip_index_flags -type lb_config -type ring_chunk -type persist_key -type persist_val -type rnat_val -type nh_key -type nh_val -type egress_if -cflags "-O2 -mcpu=v3 -g -Wall -Werror -nostdinc -I../../../bpf/include" lb ../../../bpf/lb.c
