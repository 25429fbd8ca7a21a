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
#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
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

static __always_inline int is_vlan(__be16 proto)
{
	return proto == bpf_htons(ETH_P_8021Q) || proto == bpf_htons(ETH_P_8021AD);
}

/* Parses Ethernet and up to two VLAN tags (802.1Q, or QinQ: an 802.1ad or
 * 802.1Q outer tag and an 802.1Q inner one). Returns the EtherType after the
 * tags in network order and sets *tags, or returns 0 when the frame is too
 * short. A third tag is returned as is (a VLAN EtherType), which callers
 * treat as "not IP". */
static __always_inline __be16 parse_eth_tags(struct cursor *c, struct ethhdr **eth, __u32 *tags)
{
	struct ethhdr *e = cursor_take(c, sizeof(*e));
	*tags = 0;
	if (!e)
		return 0;
	*eth = e;
	__be16 proto = e->h_proto;
#pragma unroll
	for (int i = 0; i < 2; i++) {
		if (!is_vlan(proto))
			break;
		struct vlan_hdr *v = cursor_take(c, sizeof(*v));
		if (!v)
			return 0;
		proto = v->proto;
		*tags += 1;
	}
	return proto;
}

static __always_inline __be16 parse_eth(struct cursor *c, struct ethhdr **eth)
{
	__u32 tags;
	return parse_eth_tags(c, eth, &tags);
}
