// SPDX-License-Identifier: GPL-2.0
/* tundecap: the real-server side of halo's TUN forwarding, for kernels
 * without the ipip/ip6_tunnel modules (and for tests): a TC ingress program
 * that removes the outer IPv4 (protocol 4) or IPv6 (next header 41) header
 * in front of an inner packet of the same family, so the stack receives the
 * client's packet to the VIP as if it had been routed there. */
#include "parse.h"

#define TC_ACT_OK 0
#define TC_ACT_SHOT 2

SEC("tc")
int tun_decap(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	struct cursor c = { .pos = data, .end = data_end };
	struct ethhdr *eth;
	__be16 proto = parse_eth(&c, &eth);
	int outer;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor_take(&c, sizeof(*ip));
		if (!ip || ip->ihl != 5 || ip->protocol != IPPROTO_IPIP)
			return TC_ACT_OK;
		struct iphdr *in = cursor_take(&c, sizeof(*in));
		if (!in || in->version != 4)
			return TC_ACT_OK;
		outer = sizeof(*ip);
	} else if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor_take(&c, sizeof(*ip6));
		if (!ip6 || ip6->nexthdr != IPPROTO_IPV6)
			return TC_ACT_OK;
		struct ipv6hdr *in = cursor_take(&c, sizeof(*in));
		if (!in || in->version != 6)
			return TC_ACT_OK;
		outer = sizeof(*ip6);
	} else {
		return TC_ACT_OK;
	}
	if (bpf_skb_adjust_room(skb, -outer, BPF_ADJ_ROOM_MAC, 0))
		return TC_ACT_SHOT;
	return TC_ACT_OK;
}

char _license[] SEC("license") = "GPL";
