// SPDX-License-Identifier: GPL-2.0
/* TUN in halo's XDP load balancer: ipip / ip6ip6 encapsulation and the
 * ICMP answer to packets that no longer fit once encapsulated. Included
 * once, by lb.c. */
#pragma once

#include "lb_nat.h"

/* A packet that no longer fits the link once encapsulated is answered, not
 * dropped: ICMP frag-needed (ICMPv6 packet-too-big) back out of the ingress
 * interface to the sender, from the VIP, quoting the packet's IP header and
 * the first 8 bytes after it, with the MTU left for it inside the tunnel.
 * The frame is rebuilt in place (shrunk to the message). */
#define QUOTE4 (20 + 8)
#define QUOTE6 (40 + 8)
static __always_inline int too_big(struct xdp_md *ctx, int v6, __u32 mtu, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	__u8 quote[QUOTE6];
	__u32 src[4], dst[4];
	int qlen = v6 ? QUOTE6 : QUOTE4;
	int newlen = sizeof(*eth) + (v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) + sizeof(struct icmp_hdr) + qlen;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	if (v6) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)ip6 + QUOTE6 > data_end)
			return XDP_PASS;
		__builtin_memcpy(quote, ip6, QUOTE6);
		__builtin_memcpy(src, ip6->saddr.in6_u.u6_addr32, 16);
		__builtin_memcpy(dst, ip6->daddr.in6_u.u6_addr32, 16);
	} else {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)ip + QUOTE4 > data_end)
			return XDP_PASS;
		__builtin_memcpy(quote, ip, QUOTE4);
		src[0] = ip->saddr;
		dst[0] = ip->daddr;
	}
	__u8 smac[ETH_ALEN], dmac[ETH_ALEN];
	__builtin_memcpy(dmac, eth->h_source, ETH_ALEN);
	__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
	if (bpf_xdp_adjust_tail(ctx, newlen - (int)(data_end - data)))
		return XDP_PASS; /* nothing changed */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		goto drop;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	__u32 sum = 0;
	struct icmp_hdr *ic;
	if (v6) {
		struct ipv6hdr *o = (void *)(eth + 1);
		ic = (void *)(o + 1);
		if ((void *)ic + sizeof(*ic) + QUOTE6 > data_end)
			goto drop;
		*(__u32 *)o = bpf_htonl(6 << 28);
		o->payload_len = bpf_htons(sizeof(*ic) + QUOTE6);
		o->nexthdr = IPPROTO_ICMPV6;
		o->hop_limit = 64;
		__builtin_memcpy(o->saddr.in6_u.u6_addr32, dst, 16);
		__builtin_memcpy(o->daddr.in6_u.u6_addr32, src, 16);
		ic->type = 2; /* packet too big */
		ic->code = 0;
		ic->rest = bpf_htonl(mtu);
		__builtin_memcpy((void *)(ic + 1), quote, QUOTE6);
		/* Pseudo-header: addresses, upper-layer length, next header. */
		__u16 *a = (__u16 *)o->saddr.in6_u.u6_addr32;
#pragma unroll
		for (int i = 0; i < 16; i++)
			sum += a[i];
		sum += bpf_htons(sizeof(*ic) + QUOTE6);
		sum += bpf_htons(IPPROTO_ICMPV6);
	} else {
		struct iphdr *o = (void *)(eth + 1);
		ic = (void *)(o + 1);
		if ((void *)ic + sizeof(*ic) + QUOTE4 > data_end)
			goto drop;
		eth->h_proto = bpf_htons(ETH_P_IP);
		o->version = 4;
		o->ihl = 5;
		o->tos = 0;
		o->tot_len = bpf_htons(sizeof(*o) + sizeof(*ic) + QUOTE4);
		o->id = 0;
		o->frag_off = 0;
		o->ttl = 64;
		o->protocol = IPPROTO_ICMP;
		o->check = 0;
		o->saddr = dst[0];
		o->daddr = src[0];
		__u16 *w = (__u16 *)o;
		__u32 hs = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			hs += w[i];
		o->check = csum_finish(hs);
		ic->type = 3; /* destination unreachable */
		ic->code = 4; /* fragmentation needed and DF set */
		ic->rest = bpf_htonl(mtu & 0xffff);
		__builtin_memcpy((void *)(ic + 1), quote, QUOTE4);
	}
	ic->csum = 0;
	__u16 *w = (__u16 *)ic;
	if (v6) {
		if ((void *)w + sizeof(*ic) + QUOTE6 > data_end)
			goto drop;
#pragma unroll
		for (int i = 0; i < (sizeof(struct icmp_hdr) + QUOTE6) / 2; i++)
			sum += w[i];
	} else {
		if ((void *)w + sizeof(*ic) + QUOTE4 > data_end)
			goto drop;
#pragma unroll
		for (int i = 0; i < (sizeof(struct icmp_hdr) + QUOTE4) / 2; i++)
			sum += w[i];
	}
	ic->csum = csum_finish(sum);
	count(&reason_stats, R_TUN_TOO_BIG, len);
	count(&reason_stats, R_TX, len);
	return XDP_TX;
drop:
	count(&reason_stats, R_DROP_NO_TXPORT, len);
	return XDP_DROP;
}

/* TUN (ipip): the whole IP packet goes to the real inside an outer IPv4
 * (IPv6) header, protocol 4 (41). The outer source is chosen per flow
 * (172.16.0.0/16, or 100::/64, the low 16 bits from the client's port and
 * address, as Katran does) so that a real's NIC spreads the flows of one
 * director over its queues. Returns the verdict; the frame is rebuilt in
 * front of the untouched inner packet. */
static __always_inline int tun_send(struct xdp_md *ctx, int v6, struct real *rs, struct flow_key *f, __u64 len)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > data_end)
		return XDP_PASS;
	__u32 oif = rs->ifindex;
	int tx = oif == 0 || oif == ctx->ingress_ifindex;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	__builtin_memcpy(dmac, rs->mac, ETH_ALEN);
	if (tx) {
		__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
	} else {
		struct real *om = bpf_map_lookup_elem(&if_macs, &oif);
		if (!om) {
			count(&reason_stats, R_DROP_NO_TXPORT, len);
			return XDP_DROP;
		}
		__builtin_memcpy(smac, om->mac, ETH_ALEN);
	}
	__u32 inner_len = (__u32)(data_end - data) - sizeof(struct ethhdr);
	__u16 spread = bpf_ntohs(f->sport) ^ (__u16)bpf_ntohl(v6 ? f->src[3] : f->src[0]);
	int hdr = v6 ? (int)sizeof(struct ipv6hdr) : (int)sizeof(struct iphdr);
	__u32 mtu = 0;
	if (bpf_check_mtu(ctx, tx ? 0 : oif, &mtu, hdr, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED)
		return too_big(ctx, v6, mtu > (__u32)hdr ? mtu - hdr : 0, len);
	if (bpf_xdp_adjust_head(ctx, -hdr))
		return XDP_PASS; /* nothing changed yet */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		goto drop;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	if (!v6) {
		struct iphdr *o = (void *)(eth + 1);
		if ((void *)(o + 1) > data_end)
			goto drop;
		eth->h_proto = bpf_htons(ETH_P_IP);
		o->version = 4;
		o->ihl = 5;
		o->tos = 0;
		o->tot_len = bpf_htons(inner_len + sizeof(*o));
		o->id = 0;
		o->frag_off = bpf_htons(0x4000); /* DF: the tunnel never fragments */
		o->ttl = 64;
		o->protocol = IPPROTO_IPIP;
		o->check = 0;
		o->saddr = bpf_htonl(0xac100000 | spread);
		o->daddr = rs->addr[0];
		__u16 *w = (__u16 *)o;
		__u32 sum = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			sum += w[i];
		o->check = csum_finish(sum);
	} else {
		struct ipv6hdr *o = (void *)(eth + 1);
		if ((void *)(o + 1) > data_end)
			goto drop;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__u32 *)o = bpf_htonl(6 << 28);
		o->payload_len = bpf_htons(inner_len);
		o->nexthdr = IPPROTO_IPV6;
		o->hop_limit = 64;
		o->saddr.in6_u.u6_addr32[0] = bpf_htonl(0x01000000);
		o->saddr.in6_u.u6_addr32[1] = 0;
		o->saddr.in6_u.u6_addr32[2] = 0;
		o->saddr.in6_u.u6_addr32[3] = bpf_htonl(spread);
		__builtin_memcpy(o->daddr.in6_u.u6_addr32, rs->addr, 16);
	}
	count(&reason_stats, R_TUN_ENCAP, len);
	if (tx) {
		count(&reason_stats, R_TX, len);
		return XDP_TX;
	}
	if (bpf_redirect_map(&tx_ports, oif, 0) != XDP_REDIRECT)
		goto drop;
	count(&reason_stats, R_REDIRECT, len);
	return XDP_REDIRECT;
drop:
	count(&reason_stats, R_DROP_NO_TXPORT, len);
	return XDP_DROP;
}

