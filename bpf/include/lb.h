/* SPDX-License-Identifier: GPL-2.0 */
/* The one definition of halo's XDP load balancer's limits, enums and map
 * value layouts. bpf2go exports every type named here with -type, so the Go
 * side (pkg/dataplane/xdp) reads them from the generated file and a test
 * checks the loaded maps against them: nothing is written twice. */
#pragma once

#include <linux/types.h>

/* Compiled-in sizes. The Go side may resize maps before loading (Options);
 * these are the defaults the committed object carries. */
enum lb_limits {
	LB_MAX_SERVICES = 64,
	LB_MAX_REALS = 4096,
	LB_RING_SIZE = 16381, /* prime; pkg/maglev.SizeBPF */
	LB_CT_SIZE = 262144,
	LB_MAX_IFACES = 64,
};

enum lb_flags {
	SVC_HASH_SRC = 1 << 0,  /* sh, mh, persistence: hash the source address only */
	SVC_HASH_PORT = 1 << 1, /* with SVC_HASH_SRC: add the source port (sh-port, mh-port) */
	SVC_ROUND = 1 << 2,     /* rr, wrr (and the wlc/lc substitution): walk the table */
};

enum lb_reason {
	R_PASS_NOT_IP = 0,
	R_PASS_NOT_VIP,
	R_PASS_FRAGMENT,
	R_PASS_IP_OPTIONS,
	R_PASS_IPV6_EXT,
	R_PASS_TRUNCATED,
	R_PASS_NO_REAL,
	R_PASS_NO_MAC,
	R_TX,
	R_REDIRECT,
	R_CT_HIT,
	R_CT_NEW,
	R_MAX,
};

struct vip_key {
	__u32 addr[4]; /* IPv4 in addr[0], the rest zero */
	__u16 port;    /* network order */
	__u8 proto;
	__u8 family;   /* 4 or 6 */
};

struct vip_meta {
	__u32 id;    /* service index: counters and table halves */
	__u32 ring;  /* active table half: 0 or 1 */
	__u32 flags; /* enum lb_flags */
	__u32 pad;
};

struct real {
	__u32 addr[4];
	__u8 mac[6];
	__u8 family;
	__u8 valid;
	__u32 ifindex; /* egress interface */
};

struct flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_val {
	__u32 real_id;
	__u32 pad;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};
