package xdp

//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -type vip_key -type vip_meta -type real -type flow_key -type flow_val -type counter -type lb_reason -type lb_flags -cflags "-O2 -g -Wall -Werror -I/usr/include/x86_64-linux-gnu -I../../../bpf/include" lb ../../../bpf/lb.c

// The per-CPU connection-table variant, built only so BenchmarkConntrack
// can compare it with the global table in one run.
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -cflags "-O2 -g -Wall -Werror -DCT_PERCPU -I/usr/include/x86_64-linux-gnu -I../../../bpf/include" lbpercpu ../../../bpf/lb.c
