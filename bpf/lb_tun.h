// SPDX-License-Identifier: GPL-2.0
/* TUN in halo's XDP load balancer: ipip / ip6ip6 and GUE encapsulation
 * and the ICMP answer to packets that no longer fit once encapsulated
 * (docs/xdp-tun.md). Included once, by lb.c. */
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

/* GUE (draft-ietf-intarea-gue, variant 0), as Linux IPVS sends it for
 * `--tun-type gue`: outer IP, UDP to the real's port, a 4-byte header
 * (version 0, no options) whose proto names the inner packet (4: IPv4,
 * 41: IPv6), then the client's packet untouched. */
struct gue_hdr {
	__u8 hlen_flags; /* version (2 bits), control (1), option length in words (5) */
	__u8 proto;
	__u16 flags;
};

#define GUE_OVERHEAD (sizeof(struct udphdr) + sizeof(struct gue_hdr))

/* The outer UDP source port: a hash of the flow in the dynamic range
 * 49152-65535 (RFC 8086 asks this of tunnel source ports), so that a real's
 * NIC spreads one director's flows over its queues by RSS as IPVS's
 * udp_flow_src_port does; every packet of a flow gets the same port.
 * pkg/dataplane/xdp's GUE golden test computes it independently
 * (docs/xdp-tun.md#gue-wire-format). */
static __always_inline __be16 gue_sport(struct flow_key *f)
{
	__u32 h = f->src[0] ^ f->src[1] ^ f->src[2] ^ f->src[3] ^ (((__u32)f->sport << 16) | f->dport) ^ f->proto;
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return bpf_htons(0xc000 | (h & 0x3fff));
}

/* The one's-complement sum of the inner packet as the outer UDP checksum
 * needs it, without reading its payload (Linux's local checksum offload,
 * Documentation/networking/checksum-offloads.rst): a correct TCP, UDP or
 * ICMPv6 checksum makes the L4 segment sum to the complement of its
 * pseudo-header (an ICMPv4 message sums to zero), so the packet's sum is
 * its IP header's plus that complement. Returns -1 when the inner packet
 * carries no checksum to build on (IPv4 UDP with checksum 0). ip is the
 * inner IP header; its bounds and the L4 header's are checked here. */
static __always_inline int gue_inner_sum(void *ip, void *end, int v6, __u32 *sum)
{
	__u32 s = 0, ps = 0;
	__u16 *w = ip;
	if (v6) {
		struct ipv6hdr *in = ip;
		if ((void *)(in + 1) > end)
			return -1;
#pragma unroll
		for (int i = 0; i < 20; i++)
			s += w[i];
		/* Pseudo-header: addresses (words 4-19), length, next header. */
#pragma unroll
		for (int i = 4; i < 20; i++)
			ps += w[i];
		ps += in->payload_len;
		ps += bpf_htons(in->nexthdr);
	} else {
		struct iphdr *in = ip;
		if ((void *)(in + 1) > end)
			return -1;
#pragma unroll
		for (int i = 0; i < 10; i++)
			s += w[i];
		if (in->protocol == IPPROTO_UDP) {
			struct udphdr *uh = (void *)(in + 1);
			if ((void *)(uh + 1) > end || uh->check == 0)
				return -1;
		}
		if (in->protocol != IPPROTO_ICMP) {
			ps += w[6] + w[7] + w[8] + w[9];
			ps += bpf_htons(bpf_ntohs(in->tot_len) - sizeof(*in));
			ps += bpf_htons(in->protocol);
		}
	}
	*sum = s + csum_finish(ps);
	return 0;
}

/* TUN: the whole IP packet goes to the real inside an outer IPv4 (IPv6)
 * header: protocol 4 (41) for ipip (ip6ip6), or UDP + GUE for a GUE real
 * (METHOD_GUE, UDP port in rs->port). The outer source is chosen per flow
 * (172.16.0.0/16, or 100::/64, the low 16 bits from the client's port and
 * address, as Katran does) so that a real's NIC spreads the flows of one
 * director over its queues. Returns the verdict; the frame is rebuilt in
 * front of the untouched inner packet.
 *
 * GUE's UDP checksum: 0 (none) over IPv4 unless the real asks for csum
 * (REAL_TUN_CSUM), as IPVS does; always computed over IPv6, where a zero
 * UDP checksum is not allowed (RFC 8200 §8.1) although IPVS sends one with
 * nocsum: Linux's fou accepts both, other receivers need a real one
 * (docs/xdp-tun.md#gue-checksum). */
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
	__u32 slot = 0;
	__builtin_memcpy(dmac, rs->mac, ETH_ALEN);
	if (tx) {
		__builtin_memcpy(smac, eth->h_dest, ETH_ALEN);
	} else if (egress_mac(oif, rs->egress, smac, &slot) < 0) {
		count(&reason_stats, R_DROP_NO_TXPORT, len);
		return XDP_DROP;
	}
	__u32 inner_len = (__u32)(data_end - data) - sizeof(struct ethhdr);
	__u16 spread = bpf_ntohs(f->sport) ^ (__u16)bpf_ntohl(v6 ? f->src[3] : f->src[0]);
	int gue = rs->method == METHOD_GUE;
	if (gue) {
		/* The UDP datagram carries the IP packet and nothing after it
		 * (Ethernet padding would enter its checksum unaccounted): the
		 * frame is cut to the packet's own length, as the stack does
		 * before IPVS sees it. A packet longer than its frame is left to
		 * the stack, which drops it. */
		__u32 iplen;
		if (v6) {
			struct ipv6hdr *in = (void *)(eth + 1);
			if ((void *)(in + 1) > data_end)
				return XDP_PASS;
			iplen = bpf_ntohs(in->payload_len) + sizeof(*in);
		} else {
			struct iphdr *in = (void *)(eth + 1);
			if ((void *)(in + 1) > data_end)
				return XDP_PASS;
			iplen = bpf_ntohs(in->tot_len);
		}
		if (iplen > inner_len || iplen < (v6 ? sizeof(struct ipv6hdr) : sizeof(struct iphdr)) + 8) {
			count(&reason_stats, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		if (iplen < inner_len) {
			if (bpf_xdp_adjust_tail(ctx, -(int)(inner_len - iplen)))
				return XDP_PASS; /* nothing changed */
			inner_len = iplen;
			data = (void *)(long)ctx->data;
			data_end = (void *)(long)ctx->data_end;
			eth = data;
			if ((void *)(eth + 1) > data_end)
				goto drop;
		}
	}
	int iphdr = v6 ? (int)sizeof(struct ipv6hdr) : (int)sizeof(struct iphdr);
	int hdr = iphdr + (gue ? (int)GUE_OVERHEAD : 0);
	__u32 mtu = 0;
	if (bpf_check_mtu(ctx, tx ? 0 : oif, &mtu, hdr, 0) == BPF_MTU_CHK_RET_FRAG_NEEDED)
		return too_big(ctx, v6, mtu > (__u32)hdr ? mtu - hdr : 0, len);
	/* The inner packet's part of GUE's checksum, read before it moves. */
	__u32 isum = 0;
	int csum = gue && (v6 || (rs->flags & REAL_TUN_CSUM));
	if (csum && gue_inner_sum((void *)(eth + 1), data_end, v6, &isum) < 0) {
		if (v6)
			return XDP_PASS; /* headers the parser saw are gone: cannot happen */
		csum = 0; /* IPv4 UDP without a checksum: none outside either */
	}
	__be16 sport = gue_sport(f);
	if (bpf_xdp_adjust_head(ctx, -hdr))
		return XDP_PASS; /* nothing changed yet */
	data = (void *)(long)ctx->data;
	data_end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > data_end)
		goto drop;
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	__u32 ps = 0; /* the outer pseudo-header's addresses, for GUE's checksum */
	struct udphdr *uh;
	if (!v6) {
		struct iphdr *o = (void *)(eth + 1);
		if ((void *)(o + 1) > data_end)
			goto drop;
		eth->h_proto = bpf_htons(ETH_P_IP);
		o->version = 4;
		o->ihl = 5;
		o->tos = 0;
		o->tot_len = bpf_htons(inner_len + hdr);
		o->id = 0;
		o->frag_off = bpf_htons(0x4000); /* DF: the tunnel never fragments */
		o->ttl = 64;
		o->protocol = gue ? IPPROTO_UDP : IPPROTO_IPIP;
		o->check = 0;
		o->saddr = bpf_htonl(0xac100000 | spread);
		o->daddr = rs->addr[0];
		__u16 *w = (__u16 *)o;
		__u32 sum = 0;
#pragma unroll
		for (int i = 0; i < 10; i++)
			sum += w[i];
		o->check = csum_finish(sum);
		ps = w[6] + w[7] + w[8] + w[9];
		uh = (void *)(o + 1);
	} else {
		struct ipv6hdr *o = (void *)(eth + 1);
		if ((void *)(o + 1) > data_end)
			goto drop;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
		*(__u32 *)o = bpf_htonl(6 << 28);
		o->payload_len = bpf_htons(inner_len + hdr - iphdr);
		o->nexthdr = gue ? IPPROTO_UDP : IPPROTO_IPV6;
		o->hop_limit = 64;
		o->saddr.in6_u.u6_addr32[0] = bpf_htonl(0x01000000);
		o->saddr.in6_u.u6_addr32[1] = 0;
		o->saddr.in6_u.u6_addr32[2] = 0;
		o->saddr.in6_u.u6_addr32[3] = bpf_htonl(spread);
		__builtin_memcpy(o->daddr.in6_u.u6_addr32, rs->addr, 16);
		__u16 *w = (__u16 *)o;
#pragma unroll
		for (int i = 4; i < 20; i++)
			ps += w[i];
		uh = (void *)(o + 1);
	}
	if (gue) {
		struct gue_hdr *gh = (void *)(uh + 1);
		if ((void *)(gh + 1) > data_end)
			goto drop;
		__u16 ulen = inner_len + GUE_OVERHEAD;
		uh->source = sport;
		uh->dest = rs->port;
		uh->len = bpf_htons(ulen);
		uh->check = 0;
		gh->hlen_flags = 0;
		gh->proto = v6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
		gh->flags = 0;
		if (csum) {
			__u16 *g = (__u16 *)gh;
			__u32 sum = ps + isum + bpf_htons(IPPROTO_UDP) + uh->len;
			sum += uh->source + uh->dest + uh->len + g[0] + g[1];
			__u16 c = csum_finish(sum);
			uh->check = c ? c : 0xffff; /* 0 means none */
		}
	}
	count(&reason_stats, R_TUN_ENCAP, len);
	if (tx) {
		count(&reason_stats, R_TX, len);
		return XDP_TX;
	}
	if (egress_redirect(oif, slot) != XDP_REDIRECT)
		goto drop;
	count(&reason_stats, R_REDIRECT, len);
	return XDP_REDIRECT;
drop:
	count(&reason_stats, R_DROP_NO_TXPORT, len);
	return XDP_DROP;
}
