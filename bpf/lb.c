// SPDX-License-Identifier: GPL-2.0
/* halo's XDP load balancer: DR (MAC rewrite), NAT and TUN (ipip) forwarding.
 *
 * VIP traffic (address, port, protocol) is matched; the real comes from the
 * flow table for a known flow, otherwise from the service's Maglev table by
 * a hash of the flow key that involves nothing local to this director, so
 * every director with the same configuration picks the same real and a
 * director that takes over (or restarts without its maps) keeps flows where
 * they were. The frame leaves with the real's MAC as destination: XDP_TX
 * when the real is on the ingress interface, a devmap redirect otherwise.
 * Anything that is not VIP traffic, or that the program does not handle
 * (fragments, IPv4 options, IPv6 extension headers, truncated headers),
 * leaves with XDP_PASS untouched.
 *
 * NAT: the packet to a NAT real also gets its destination address and
 * port rewritten (checksums updated incrementally, TTL decremented as a
 * router would). The real's reply comes back through the director: a
 * packet that is not VIP traffic but comes from a (real address, port,
 * protocol) of the reverse-NAT index leaves from VIP:vport, towards the
 * MAC and interface the client's flows came in by (client_nh, noted on a
 * flow's first packet) or, for a client this director never saw (after a
 * failover), towards the next hop the Go side resolved for the client's
 * network.
 * bpf_fib_lookup is not used: it refuses (FWD_DISABLED) on an interface
 * with forwarding off, and the director runs with forwarding off so that
 * nothing silently falls back to the kernel.
 *
 * The flow table only remembers, and only where a service's table changed:
 * bpf/lb_select.h says when it is read and written. Entries are written at
 * most flood_threshold per second per CPU, so a SYN flood cannot evict the
 * entries of established flows; packets that are not recorded still go
 * where the table sends them. */
#include "parse.h"
#include "lb.h"
#include <linux/tcp.h>
#include <linux/udp.h>
#include "lb_maps.h"
#include "lb_nat.h"
#include "lb_tun.h"
#include "lb_select.h"

/* Fills f with the flow an ICMP error is about (the inner packet went VIP ->
 * client; the flow is client -> VIP) and returns 0, or -1 when the message
 * is not such an error (echo and the rest stay with the stack). */
static __always_inline int icmp_error_flow(struct cursor *c, __u8 proto, struct flow_key *f)
{
	struct icmp_hdr *ih = cursor_take(c, sizeof(*ih));
	if (!ih)
		return -1;
	__u8 inner;
	if (proto == IPPROTO_ICMP) {
		if (ih->type != 3 && ih->type != 11) /* unreachable (incl. frag needed), time exceeded */
			return -1;
		struct iphdr *ip = cursor_take(c, sizeof(*ip));
		if (!ip || ip->ihl != 5)
			return -1;
		inner = ip->protocol;
		__builtin_memset(f->src, 0, 16);
		__builtin_memset(f->dst, 0, 16);
		f->src[0] = ip->daddr;
		f->dst[0] = ip->saddr;
	} else {
		if (ih->type < 1 || ih->type > 3) /* unreachable, packet too big, time exceeded */
			return -1;
		struct ipv6hdr *ip6 = cursor_take(c, sizeof(*ip6));
		if (!ip6)
			return -1;
		inner = ip6->nexthdr;
		__builtin_memcpy(f->src, &ip6->daddr, 16);
		__builtin_memcpy(f->dst, &ip6->saddr, 16);
	}
	if (inner != IPPROTO_TCP && inner != IPPROTO_UDP)
		return -1;
	__be16 *ports = cursor_take(c, 4);
	if (!ports)
		return -1;
	f->sport = ports[1];
	f->dport = ports[0];
	f->proto = inner;
	return 0;
}

SEC("xdp")
int xdp_lb(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u64 len = data_end - data;
	struct cursor c = { .pos = data, .end = data_end };
	struct ethhdr *eth;
	struct vip_key vk = {};
	/* The packet as the selection sees it; its flow key is filled here. */
	struct pkt p = {};
	__u32 tags = 0;
	__u8 tcp_flags = 0;
	int icmp = 0;
	int v6 = 0;
	/* Packet pointers on every path (the verifier cannot null-check
	 * them); nat_apply checks the bounds it needs. */
	void *l3 = data, *l4 = data;
	__u8 proto;

	/* This CPU's counters, budget and clock: one lookup per packet. */
	struct lb_percpu *pc = percpu();
	if (!pc)
		return XDP_PASS;

	__be16 ethp = parse_eth_tags(&c, &eth, &tags);
	if (!ethp) {
		reason(pc, R_PASS_TRUNCATED, len);
		return XDP_PASS;
	}
	if (ethp == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor_take(&c, sizeof(*ip));
		if (!ip) {
			reason(pc, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		if (ip->ihl != 5) {
			reason(pc, R_PASS_IP_OPTIONS, len);
			return XDP_PASS;
		}
		if (ip->frag_off & bpf_htons(0x3fff)) {
			reason(pc, R_PASS_FRAGMENT, len);
			return XDP_PASS;
		}
		proto = ip->protocol;
		l3 = ip;
		p.fk.src[0] = ip->saddr;
		p.fk.dst[0] = ip->daddr;
		vk.addr[0] = ip->daddr;
		vk.family = 4;
	} else if (ethp == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor_take(&c, sizeof(*ip6));
		if (!ip6) {
			reason(pc, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		proto = ip6->nexthdr;
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_ICMPV6) {
			/* Extension headers (fragments included) are left to the
			 * stack; so is anything else that is not TCP or UDP. */
			reason(pc, R_PASS_IPV6_EXT, len);
			return XDP_PASS;
		}
		l3 = ip6;
		v6 = 1;
		__builtin_memcpy(p.fk.src, &ip6->saddr, 16);
		__builtin_memcpy(p.fk.dst, &ip6->daddr, 16);
		__builtin_memcpy(vk.addr, &ip6->daddr, 16);
		vk.family = 6;
	} else {
		reason(pc, R_PASS_NOT_IP, len);
		return XDP_PASS;
	}

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = cursor_take(&c, sizeof(*th));
		if (!th) {
			reason(pc, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		l4 = th;
		p.fk.sport = th->source;
		p.fk.dport = th->dest;
		tcp_flags = ((__u8 *)th)[13];
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = cursor_take(&c, sizeof(*uh));
		if (!uh) {
			reason(pc, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		l4 = uh;
		p.fk.sport = uh->source;
		p.fk.dport = uh->dest;
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		/* An ICMP error about a packet a real sent from the VIP (DR:
		 * the real answers the client directly, so a router's
		 * frag-needed, packet-too-big, unreachable or time-exceeded
		 * comes back to the VIP) goes to the real that owns the flow:
		 * the inner headers, swapped, are that flow's key. */
		if (icmp_error_flow(&c, proto, &p.fk) < 0) {
			reason(pc, R_PASS_NOT_VIP, len);
			return XDP_PASS;
		}
		icmp = 1;
		proto = p.fk.proto;
	} else {
		reason(pc, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	p.fk.proto = proto;
	if (icmp) {
		/* An error goes to the sender of the packet it quotes: anything
		 * else is not about one of our flows. */
		if (vk.addr[0] != p.fk.dst[0] || vk.addr[1] != p.fk.dst[1] || vk.addr[2] != p.fk.dst[2] ||
		    vk.addr[3] != p.fk.dst[3]) {
			reason(pc, R_PASS_NOT_VIP, len);
			return XDP_PASS;
		}
		/* The service is the inner packet's source: the VIP. */
		__builtin_memcpy(vk.addr, p.fk.dst, 16);
	}
	vk.port = p.fk.dport;
	vk.proto = proto;
	struct vip_meta *vm = find_service(&vk);
	if (!vm)
		goto not_vip;
	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&config, &zero);
	p.len = len;
	p.cifindex = ctx->ingress_ifindex;
	p.v6 = v6;
	p.icmp = icmp;
	p.seen = 1;
	if (proto == IPPROTO_TCP) {
		p.syn = (tcp_flags & (TH_SYN | TH_ACK)) == TH_SYN;
		p.rst = !!(tcp_flags & TH_RST);
		p.fin = !!(tcp_flags & TH_FIN);
	}
	p.h = flow_hash_with(&p.fk, v6, vm->flags, vm->src_mask);
	p.sh = (vm->flags & SVC_HASH_SRC) ? flow_hash5(&p.fk, v6, vm->flags) : p.h;
	if (!icmp)
		p.seen = seen_mark(cfg, p.sh, proto == IPPROTO_TCP);
	__builtin_memcpy(p.smac, eth->h_source, ETH_ALEN);

	/* A clean slot of an unchanged hash is the common case: its real is
	 * read here, without the call into the selection. */
	__u32 rid = RING_DIRTY;
	if (!vm->persist_s && vm->ring_size && !(vm->flags & SVC_REHASHED))
		rid = ring_at(&rings, vm->id, ring_slot(p.h, vm->ring_size));
	if (!(rid & RING_DIRTY))
		reason(pc, R_RING, len);
	else if (vm->persist_s)
		rid = select_pinned(vm, cfg, pc, &p);
	else
		rid = select_ring(vm, cfg, pc, &p);
	struct real *rs = bpf_map_lookup_elem(&reals, &rid);
	if (!rid || !usable(rs)) {
		reason(pc, R_PASS_NO_REAL, len);
		return XDP_PASS;
	}
	if (!(rs->flags & REAL_HAS_MAC)) {
		/* Never a frame with an empty destination MAC. */
		reason(pc, R_PASS_NO_MAC, len);
		return XDP_PASS;
	}
	int nat = rs->method == METHOD_NAT;
	int tun = rs->method == METHOD_TUN || rs->method == METHOD_GUE;
	if (tun && tags) {
		/* The encapsulated frame is built behind an untagged Ethernet
		 * header; tagged ingress is left to the stack. */
		reason(pc, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	if (nat) {
		__u8 ttl;
		if (v6) {
			struct ipv6hdr *ip6 = l3;
			if ((void *)(ip6 + 1) > data_end)
				return XDP_PASS;
			ttl = ip6->hop_limit;
		} else {
			struct iphdr *ip = l3;
			if ((void *)(ip + 1) > data_end)
				return XDP_PASS;
			ttl = ip->ttl;
		}
		if (ttl <= 1) {
			reason(pc, R_PASS_TTL, len);
			return XDP_PASS;
		}
	}
	if (icmp)
		reason(pc, R_ICMP_TO_REAL, len);
	if (p.rst && p.had_entry) {
		/* The RST itself still reaches the real; the flow is over. */
		ct_delete(&p.fk, v6);
		reason(pc, R_CT_CLOSED, len);
	}

	/* One counter per packet: rid is a (service, real) entry, and Go
	 * sums a service's entries for the service's counters. */
	count(&real_stats, rid, len);

	if (tun)
		return tun_send(ctx, v6, rs, &p.fk, len);
	if (nat) {
		struct nat_rewrite nr = { .port = rs->port };
		__builtin_memcpy(nr.addr, rs->addr, 16);
		if (icmp) {
			/* An error about a reply (VIP:vport -> client), from the
			 * client's side: to the real, as its own reply quoted. */
			if (nat_icmp_apply(l3, data_end, v6, &nr, 1) < 0) {
				reason(pc, R_PASS_TRUNCATED, len);
				return XDP_PASS;
			}
		} else {
			nat_apply(l3, l4, data_end, v6, proto, 1, &nr);
		}
		if (p.syn || (proto == IPPROTO_UDP && !p.seen))
			note_client(ctx, eth, &p.fk, v6);
		reason(pc, R_NAT_DNAT, len);
	}
	/* DR: the IP packet is untouched; only the frame is re-addressed. */
	__u8 dmac[ETH_ALEN];
	__builtin_memcpy(dmac, rs->mac, ETH_ALEN);
	return send_frame(ctx, pc, eth, tags, rs->ifindex, rs->egress, dmac, len);

not_vip:;
	int verdict = nat_reply(ctx, pc, eth, tags, l3, l4, data_end, v6, &p.fk, icmp, len);
	if (verdict >= 0)
		return verdict;
	reason(pc, R_PASS_NOT_VIP, len);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
