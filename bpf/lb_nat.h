// SPDX-License-Identifier: GPL-2.0
/* NAT in halo's XDP load balancer: incremental checksums, the rewrite
 * both ways, the reply path through the reverse-NAT index, and sending a
 * frame out of an interface. Included once, by lb.c. */
#pragma once

#include <linux/tcp.h>
#include <linux/udp.h>
#include "lb_maps.h"

/* Incremental Internet checksum update (RFC 1624, eqn. 3): HC' = ~(~HC +
 * ~m + m'). Every 16-bit word is taken as it sits in memory, so byte order
 * does not matter as long as it is the same for all of them. */
static __always_inline __u32 csum_add16(__u32 s, __u16 from, __u16 to)
{
	return s + (__u16)~from + to;
}

static __always_inline __u32 csum_add32(__u32 s, __u32 from, __u32 to)
{
	s = csum_add16(s, (__u16)from, (__u16)to);
	return csum_add16(s, (__u16)(from >> 16), (__u16)(to >> 16));
}

static __always_inline __u16 csum_finish(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)~s;
}

/* What a NAT rewrite changes: one address (4 words, IPv4 in [0]) and one
 * port, on the side named by dst. */
struct nat_rewrite {
	__u32 addr[4];
	__u16 port; /* network order; 0: unchanged */
};

/* Rewrites the destination (dst != 0) or source address and port of an IP
 * packet whose L4 header is at l4, with checksums kept right, and
 * decrements the TTL (hop limit). The caller has checked that l3 and l4
 * hold full headers and the TTL is above 1. */
static __always_inline void nat_apply(void *l3, void *l4, void *end, int v6, __u8 proto, int dst, struct nat_rewrite *nr)
{
	__u16 *l4sum = NULL;
	__u16 *portp;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = l4;
		if ((void *)(th + 1) > end)
			return;
		l4sum = &th->check;
		portp = dst ? &th->dest : &th->source;
	} else {
		struct udphdr *uh = l4;
		if ((void *)(uh + 1) > end)
			return;
		/* IPv4 UDP without a checksum stays without one. */
		if (v6 || uh->check)
			l4sum = &uh->check;
		portp = dst ? &uh->dest : &uh->source;
	}
	__u32 ps = 0; /* pseudo-header and port changes, for the L4 checksum */
	__u16 newport = nr->port ? nr->port : *portp;
	ps = csum_add16(ps, *portp, newport);
	*portp = newport;
	if (!v6) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return;
		__u32 *ap = dst ? &ip->daddr : &ip->saddr;
		__u32 hs = csum_add32(0, *ap, nr->addr[0]);
		ps = csum_add32(ps, *ap, nr->addr[0]);
		*ap = nr->addr[0];
		__u16 *ttlw = (__u16 *)&ip->ttl; /* TTL and protocol: one word */
		__u16 oldw = *ttlw;
		ip->ttl--;
		hs = csum_add16(hs, oldw, *ttlw);
		hs += (__u16)~ip->check;
		ip->check = csum_finish(hs);
	} else {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return;
		__u32 *ap = dst ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			ps = csum_add32(ps, ap[i], nr->addr[i]);
			ap[i] = nr->addr[i];
		}
		ip6->hop_limit--;
	}
	if (l4sum) {
		ps += (__u16)~*l4sum;
		__u16 sum = csum_finish(ps);
		/* A computed 0 goes on the wire as 0xffff for UDP (0 means none). */
		if (proto == IPPROTO_UDP && sum == 0)
			sum = 0xffff;
		*l4sum = sum;
	}
}

/* Sends the frame out of oif to dmac: XDP_TX when oif is the ingress
 * interface (tags kept, our MAC is the old destination), a devmap redirect
 * otherwise (tags stripped: another interface is another link). egress:
 * oif's index in egress_ifs as the real's or next hop's entry has it (0:
 * none; a stale one is caught by egress_mac's ifindex check). */
static __always_inline int send_frame(struct xdp_md *ctx, struct lb_percpu *pc, struct ethhdr *eth, __u32 tags,
				      __u32 oif, __u32 egress, __u8 *dmac_in, __u64 len)
{
	if (oif == 0 || oif == ctx->ingress_ifindex) {
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, dmac_in, ETH_ALEN);
		reason(pc, R_TX, len);
		return XDP_TX;
	}
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	__u32 slot;
	if (egress_mac(oif, egress, smac, &slot) < 0)
		goto drop;
	__builtin_memcpy(dmac, dmac_in, ETH_ALEN);
	if (tags) {
		/* The EtherType after the tags becomes the frame's, in place,
		 * and the MACs are written in front of it. */
		if (bpf_xdp_adjust_head(ctx, (int)(tags * sizeof(struct vlan_hdr))))
			goto drop;
		void *data = (void *)(long)ctx->data;
		void *data_end = (void *)(long)ctx->data_end;
		eth = data;
		if ((void *)(eth + 1) > data_end)
			goto drop;
	}
	__builtin_memcpy(eth->h_source, smac, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, dmac, ETH_ALEN);
	long ret = egress_redirect(oif, slot);
	if (ret != XDP_REDIRECT)
		goto drop;
	reason(pc, R_REDIRECT, len);
	return XDP_REDIRECT;
drop:
	reason(pc, R_DROP_NO_TXPORT, len);
	return XDP_DROP;
}

/* An ICMP error about a NAT flow, rewritten like the packet it quotes:
 * to_real (an error about a reply, from the client's side): the outer
 * destination (the VIP) and the quoted packet's source address and port
 * become the real's; otherwise (an error from a real's side about a packet
 * sent to the real) the outer source and the quoted destination address and
 * port become VIP:vport. The outer IPv4 header checksum (and TTL), the
 * quoted IPv4 header checksum and the ICMP checksum (ICMPv6: with its
 * pseudo-header) are updated; the quoted L4 checksum is left as quoted
 * (nothing checks it in an error). Returns -1, having changed nothing,
 * when the message is too short to hold the quoted ports. */
static __always_inline int nat_icmp_apply(void *l3, void *end, int v6, struct nat_rewrite *nr, int to_real)
{
	__u32 ics = 0;
	__u16 *icsum;
	__be16 *pp;
	if (!v6) {
		struct iphdr *ip = l3;
		struct icmp_hdr *ic = (void *)(ip + 1);
		struct iphdr *in = (void *)(ic + 1);
		__be16 *ports = (void *)(in + 1);
		if ((void *)(ports + 2) > end || in->ihl != 5)
			return -1;
		__u32 *oa = to_real ? &ip->daddr : &ip->saddr;
		__u32 hs = csum_add32(0, *oa, nr->addr[0]);
		*oa = nr->addr[0];
		__u16 *ttlw = (__u16 *)&ip->ttl;
		__u16 oldw = *ttlw;
		ip->ttl--;
		hs = csum_add16(hs, oldw, *ttlw);
		hs += (__u16)~ip->check;
		ip->check = csum_finish(hs);
		__u32 *ia = to_real ? &in->saddr : &in->daddr;
		__u32 h2 = csum_add32(0, *ia, nr->addr[0]);
		ics = csum_add32(ics, *ia, nr->addr[0]);
		*ia = nr->addr[0];
		h2 += (__u16)~in->check;
		__u16 nc = csum_finish(h2);
		ics = csum_add16(ics, in->check, nc);
		in->check = nc;
		pp = to_real ? &ports[0] : &ports[1];
		icsum = &ic->csum;
	} else {
		struct ipv6hdr *ip6 = l3;
		struct icmp_hdr *ic = (void *)(ip6 + 1);
		struct ipv6hdr *in = (void *)(ic + 1);
		__be16 *ports = (void *)(in + 1);
		if ((void *)(ports + 2) > end)
			return -1;
		__u32 *oa = to_real ? ip6->daddr.in6_u.u6_addr32 : ip6->saddr.in6_u.u6_addr32;
		__u32 *ia = to_real ? in->saddr.in6_u.u6_addr32 : in->daddr.in6_u.u6_addr32;
#pragma unroll
		for (int i = 0; i < 4; i++) {
			ics = csum_add32(ics, oa[i], nr->addr[i]); /* pseudo-header */
			oa[i] = nr->addr[i];
			ics = csum_add32(ics, ia[i], nr->addr[i]);
			ia[i] = nr->addr[i];
		}
		ip6->hop_limit--;
		pp = to_real ? &ports[0] : &ports[1];
		icsum = &ic->csum;
	}
	__u16 np = nr->port ? nr->port : *pp;
	ics = csum_add16(ics, *pp, np);
	*pp = np;
	ics += (__u16)~*icsum;
	*icsum = csum_finish(ics);
	return 0;
}

/* Notes where a NAT client's packets come from (f: client -> VIP), on a
 * flow's first packet: its replies are sent back that way. The entry
 * carries the interface's egress index (if_macs has it, Go writes it
 * there) so the replies take the array path; looked up only when the entry
 * is written, not on the flows that find it unchanged. */
static __always_inline void note_client(struct xdp_md *ctx, struct ethhdr *eth, struct flow_key *f, int v6)
{
	struct nh_key nk = { .prefixlen = 128 };
	if (v6) {
		__builtin_memcpy(nk.addr, f->src, 16);
	} else {
		nk.addr[2] = bpf_htonl(0xffff);
		nk.addr[3] = f->src[0];
	}
	struct nh_val nv = { .ifindex = ctx->ingress_ifindex };
	__builtin_memcpy(nv.mac, eth->h_source, ETH_ALEN);
	struct nh_val *cur = bpf_map_lookup_elem(&client_nh, &nk);
	if (cur && cur->ifindex == nv.ifindex && cur->mac[0] == nv.mac[0] && cur->mac[1] == nv.mac[1] &&
	    cur->mac[2] == nv.mac[2] && cur->mac[3] == nv.mac[3] && cur->mac[4] == nv.mac[4] && cur->mac[5] == nv.mac[5])
		return;
	struct real *om = bpf_map_lookup_elem(&if_macs, &nv.ifindex);
	if (om)
		nv.egress = om->egress;
	bpf_map_update_elem(&client_nh, &nk, &nv, BPF_ANY);
}

/* A NAT reply: f is the packet's own key (real -> client). Returns the
 * verdict, or -1 when the packet is not from a NAT real of the index. */
static __always_inline int nat_reply(struct xdp_md *ctx, struct lb_percpu *pc, struct ethhdr *eth, __u32 tags,
				     void *l3, void *l4, void *end, int v6, struct flow_key *f, int icmp, __u64 len)
{
	struct vip_key rk = { .port = f->sport, .proto = f->proto, .family = v6 ? 6 : 4 };
	__builtin_memcpy(rk.addr, f->src, 16);
	__u32 fi = vip_filter_index(&rk) & (LB_VIP_FILTER_BITS - 1);
	__u32 *fe = bpf_map_lookup_elem(&rnat_filter, &fi);
	if (!fe || !*fe)
		return -1;
	struct rnat_val *rv = bpf_map_lookup_elem(&rnat, &rk);
	if (!rv)
		return -1;
	__u8 ttl;
	if (v6) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return -1;
		ttl = ip6->hop_limit;
	} else {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end)
			return -1;
		ttl = ip->ttl;
	}
	if (icmp) {
		/* Only the real's own errors: reals are on-link, so there is no
		 * router between them and the director to speak for them. */
		__u32 osrc[4] = {};
		if (v6) {
			struct ipv6hdr *ip6 = l3;
			if ((void *)(ip6 + 1) > end)
				return -1;
			__builtin_memcpy(osrc, ip6->saddr.in6_u.u6_addr32, 16);
		} else {
			struct iphdr *ip = l3;
			if ((void *)(ip + 1) > end)
				return -1;
			osrc[0] = ip->saddr;
		}
		if (osrc[0] != f->src[0] || osrc[1] != f->src[1] || osrc[2] != f->src[2] || osrc[3] != f->src[3])
			return -1;
	}
	if (ttl <= 1) {
		reason(pc, R_PASS_TTL, len);
		return XDP_PASS;
	}
	/* The way the client's packets came in, else its network's route. */
	__u32 oif = 0;
	__u8 mac[ETH_ALEN];
	struct nh_key nk = { .prefixlen = 128 };
	if (v6) {
		__builtin_memcpy(nk.addr, f->dst, 16);
	} else {
		nk.addr[2] = bpf_htonl(0xffff);
		nk.addr[3] = f->dst[0];
	}
	struct nh_val *nh = bpf_map_lookup_elem(&client_nh, &nk);
	if (!nh || !nh->ifindex)
		nh = bpf_map_lookup_elem(&nexthops, &nk);
	if (!nh || !nh->ifindex) {
		__u32 one = 1;
		/* NOEXIST: one write per address until the Go side drains it. */
		bpf_map_update_elem(&nh_wanted, &nk, &one, BPF_NOEXIST);
		reason(pc, R_PASS_NO_NEXTHOP, len);
		return XDP_PASS;
	}
	oif = nh->ifindex;
	__u32 egress = nh->egress;
	__builtin_memcpy(mac, nh->mac, ETH_ALEN);
	struct nat_rewrite nr = { .port = rv->vport };
	__builtin_memcpy(nr.addr, rv->vip, 16);
	if (icmp) {
		/* An error from the real's side about a packet to the real:
		 * f is its quoted packet's key, swapped, which is a reply's. */
		if (nat_icmp_apply(l3, end, v6, &nr, 0) < 0)
			return -1;
	} else {
		nat_apply(l3, l4, end, v6, f->proto, 0, &nr);
	}
	reason(pc, R_NAT_REPLY, len);
	return send_frame(ctx, pc, eth, tags, oif, egress, mac, len);
}

