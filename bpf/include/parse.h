/* Bounds-checked header parsing shared by halo's XDP programs.
 *
 * Every accessor checks against data_end before it reads, in the form the
 * verifier can follow (pointer + size > end), so callers never need their own
 * checks for the headers these functions hand back. */
#pragma once

#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#ifndef ETH_P_8021Q
#define ETH_P_8021Q 0x8100
#endif

struct cursor {
	void *pos;
	void *end;
};

struct vlan_hdr {
	__be16 tci;
	__be16 proto;
};

/* Returns the pointer to len bytes at the cursor and advances it, or NULL
 * when the packet is shorter. */
static __always_inline void *cursor_take(struct cursor *c, __u32 len)
{
	void *p = c->pos;
	if (p + len > c->end)
		return NULL;
	c->pos = p + len;
	return p;
}

/* Parses Ethernet and at most one 802.1Q tag. Returns the inner EtherType in
 * network order, or 0 when the frame is too short. */
static __always_inline __be16 parse_eth(struct cursor *c, struct ethhdr **eth)
{
	struct ethhdr *e = cursor_take(c, sizeof(*e));
	if (!e)
		return 0;
	*eth = e;
	__be16 proto = e->h_proto;
	if (proto == bpf_htons(ETH_P_8021Q)) {
		struct vlan_hdr *v = cursor_take(c, sizeof(*v));
		if (!v)
			return 0;
		proto = v->proto;
	}
	return proto;
}
