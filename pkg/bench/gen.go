package bench

// -nostdinc: every header comes from bpf/include, as for bpf/lb.c.
//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -type gen_cfg -type sample -type gen_limits -type gen_mode -cflags "-O2 -g -Wall -Werror -nostdinc -I../../bpf/include" bench ../../bpf/bench/bench.c
