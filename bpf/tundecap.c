// SPDX-License-Identifier: GPL-2.0
/* tundecap: the real-server side of halo's TUN forwarding, for kernels
 * without the ipip/ip6_tunnel/fou modules (and for tests): a TC ingress
 * program that removes the outer IPv4 (protocol 4) or IPv6 (next header 41)
 * header, or the outer IP + UDP + GUE headers of a packet to gue_port (the
 * `ip fou add port N gue` of a real Linux host), in front of an inner
 * packet of the same family, so the stack receives the client's packet to
 * the VIP as if it had been routed there. */
#include "parse.h"
#include <linux/udp.h>

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

/* The GUE port in network order, set by the loader; 0 leaves UDP alone. */
volatile const __be16 gue_port = 0;

/* Packets decapsulated, by kind: the tests' proof that what reached the
 * real was encapsulated, and how. */
enum decap_kind {
	DECAP_IPIP = 0, /* ipip or ip6ip6 */
	DECAP_GUE = 1,
	DECAP_MAX,
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, DECAP_MAX);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

const enum decap_kind *unused_decap_kind __attribute__((unused));

/* GUE variant 0: version (2 bits, 0), control (1 bit, 0 for data), option
 * length in 32-bit words (5 bits), the inner protocol, flags. */
struct gue_hdr {
	__u8 hlen_flags;
	__u8 proto;
	__u16 flags;
};

/* After the outer IP header: UDP to gue_port and a GUE data header that
 * announces an inner packet of protocol want (4 or 41). Returns the bytes
 * of UDP + GUE (options included), or 0 when the packet is not that. */
static __always_inline int gue_len(struct cursor *c, __u8 want)
{
	struct udphdr *uh = cursor_take(c, sizeof(*uh));
	if (!uh || !gue_port || uh->dest != gue_port)
		return 0;
	struct gue_hdr *g = cursor_take(c, sizeof(*g));
	if (!g || (g->hlen_flags & 0xe0) || g->proto != want)
		return 0;
	__u32 opts = (g->hlen_flags & 0x1f) * 4;
	if (opts && !cursor_take(c, opts))
		return 0;
	return sizeof(*uh) + sizeof(*g) + opts;
}

static __always_inline void counted(__u32 kind)
{
	__u64 *n = bpf_map_lookup_elem(&decap_stats, &kind);
	if (n)
		__sync_fetch_and_add(n, 1);
}

SEC("tc")
int tun_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct cursor c = { .pos = data, .end = data_end };
	struct ethhdr *eth;
	__be16 proto = parse_eth(&c, &eth);
	int outer, gue = 0;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor_take(&c, sizeof(*ip));
		if (!ip || ip->ihl != 5)
			return TC_ACT_OK;
		if (ip->protocol == IPPROTO_UDP)
			gue = gue_len(&c, IPPROTO_IPIP);
		else if (ip->protocol != IPPROTO_IPIP)
			return TC_ACT_OK;
		if (ip->protocol == IPPROTO_UDP && !gue)
			return TC_ACT_OK;
		struct iphdr *in = cursor_take(&c, sizeof(*in));
		if (!in || in->version != 4)
			return TC_ACT_OK;
		outer = sizeof(*ip) + gue;
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor_take(&c, sizeof(*ip6));
		if (!ip6)
			return TC_ACT_OK;
		if (ip6->nexthdr == IPPROTO_UDP)
			gue = gue_len(&c, IPPROTO_IPV6);
		else if (ip6->nexthdr != IPPROTO_IPV6)
			return TC_ACT_OK;
		if (ip6->nexthdr == IPPROTO_UDP && !gue)
			return TC_ACT_OK;
		struct ipv6hdr *in = cursor_take(&c, sizeof(*in));
		if (!in || in->version != 6)
			return TC_ACT_OK;
		outer = sizeof(*ip6) + gue;
	} else {
		return TC_ACT_OK;
	}
	if (bpf_skb_adjust_room(skb, -outer, BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	counted(gue ? DECAP_GUE : DECAP_IPIP);
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
