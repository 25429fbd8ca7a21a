package sink

//go:generate go tool bpf2go -tags linux -cc clang -target bpfel -type proto_class -type counter -cflags "-O2 -g -Wall -Werror -nostdinc -I../../../bpf/include" protocount ../../../bpf/protocount.c
