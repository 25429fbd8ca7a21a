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
 * MAC and interface the flow's first packet came from (recorded in the
 * flow entry) or, for a flow this director never saw (after a failover),
 * towards the next hop the Go side resolved for the client's network.
 * bpf_fib_lookup is not used: it refuses (FWD_DISABLED) on an interface
 * with forwarding off, and the director runs with forwarding off so that
 * nothing silently falls back to the kernel.
 *
 * The flow table only remembers: entries are written on a flow's first
 * packet (TCP SYN without ACK, a UDP datagram without an entry), at most
 * flood_threshold per second per CPU, so a SYN flood cannot evict the
 * entries of established flows; packets that are not recorded still go
 * where the table sends them. */
#include "parse.h"
#include "lb.h"
#include <linux/tcp.h>
#include <linux/udp.h>
#include "lb_maps.h"
#include "lb_nat.h"
#include "lb_tun.h"

/* last_seen is refreshed at most this often: a write per packet to a
 * shared entry would bounce its cache line between CPUs for nothing. */
#define LB_TOUCH_NS 1000000000ULL

/* TCP flags as they sit in byte 13 of the header. */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* The selection key: a pure function of the packet and the service's
 * settings. pkg/dataplane/xdp.FlowHash is the same function in Go (tested
 * against this one). */
static __always_inline __u32 flow_hash(struct flow_key *f, struct vip_meta *vm)
{
	__u32 h = 0x9747b28c;
	if (vm->flags & SVC_HASH_SRC) {
		h = mix32(h ^ (f->src[0] & vm->src_mask[0]));
		h = mix32(h ^ (f->src[1] & vm->src_mask[1]));
		h = mix32(h ^ (f->src[2] & vm->src_mask[2]));
		h = mix32(h ^ (f->src[3] & vm->src_mask[3]));
		if (vm->flags & SVC_HASH_PORT)
			h = mix32(h ^ f->sport);
		return h;
	}
	h = mix32(h ^ f->src[0]);
	h = mix32(h ^ f->src[1]);
	h = mix32(h ^ f->src[2]);
	h = mix32(h ^ f->src[3]);
	h = mix32(h ^ f->dst[0]);
	h = mix32(h ^ f->dst[1]);
	h = mix32(h ^ f->dst[2]);
	h = mix32(h ^ f->dst[3]);
	h = mix32(h ^ (((__u32)f->sport << 16) | f->dport));
	return mix32(h ^ f->proto);
}

/* Resolves a new (or stale) flow through the service's table. Returns the
 * real's slot, 0 when the table has none. */
static __always_inline __u32 pick(struct vip_meta *vm, struct flow_key *f)
{
	void *ring = bpf_map_lookup_elem(&rings, &vm->id);
	if (!ring || !vm->ring_size)
		return 0;
	__u32 slot = flow_hash(f, vm) % vm->ring_size;
	__u32 ci = slot / LB_RING_CHUNK;
	struct ring_chunk *chunk = bpf_map_lookup_elem(ring, &ci);
	return chunk ? chunk->id[slot & (LB_RING_CHUNK - 1)] : 0;
}

/* Whether a new entry may be written now: at most flood_threshold per
 * second on this CPU. */
static __always_inline int flood_budget(struct lb_config *cfg, struct lb_percpu *pc, __u64 now)
{
	if (!cfg || !cfg->flood_threshold)
		return 1;
	struct flood_state *st = &pc->flood;
	if (now - st->window_start > 1000000000ULL) {
		st->window_start = now;
		st->count = 0;
	}
	if (st->count >= cfg->flood_threshold)
		return 0;
	st->count++;
	return 1;
}

/* The coarse clock, read at most once per jiffy on this CPU: every
 * timeout is in seconds, and the helper call costs more on the hit path
 * than the rest of the clock handling together. */
static __always_inline __u64 clock_now(struct lb_percpu *pc)
{
	__u64 j = bpf_jiffies64();
	if (j != pc->jiffies) {
		pc->jiffies = j;
		pc->now = bpf_ktime_get_coarse_ns();
	}
	return pc->now;
}

/* A pin that is fresh and whose real still takes new flows (a real that
 * went down, was drained or left breaks its pins). Refreshes it. */
static __always_inline __u32 pinned_real(struct persist_val *pv, __u64 now, __u64 timeout)
{
	if (!pv || now - pv->last_seen > timeout)
		return 0;
	__u32 rid = pv->real_id;
	struct real *rs = bpf_map_lookup_elem(&reals, &rid);
	if (!rs || !(rs->flags & REAL_NEW_FLOWS) || rs->gen != pv->gen)
		return 0;
	if (now - pv->last_seen > LB_TOUCH_NS)
		pv->last_seen = now;
	return rid;
}

static __always_inline int usable(struct real *rs)
{
	return rs && (rs->flags & REAL_VALID);
}

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
	struct flow_key fk = {};
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
		fk.src[0] = ip->saddr;
		fk.dst[0] = ip->daddr;
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
		__builtin_memcpy(fk.src, &ip6->saddr, 16);
		__builtin_memcpy(fk.dst, &ip6->daddr, 16);
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
		fk.sport = th->source;
		fk.dport = th->dest;
		tcp_flags = ((__u8 *)th)[13];
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = cursor_take(&c, sizeof(*uh));
		if (!uh) {
			reason(pc, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		l4 = uh;
		fk.sport = uh->source;
		fk.dport = uh->dest;
	} else if (proto == IPPROTO_ICMP || proto == IPPROTO_ICMPV6) {
		/* An ICMP error about a packet a real sent from the VIP (DR:
		 * the real answers the client directly, so a router's
		 * frag-needed, packet-too-big, unreachable or time-exceeded
		 * comes back to the VIP) goes to the real that owns the flow:
		 * the inner headers, swapped, are that flow's key. */
		if (icmp_error_flow(&c, proto, &fk) < 0) {
			reason(pc, R_PASS_NOT_VIP, len);
			return XDP_PASS;
		}
		icmp = 1;
		proto = fk.proto;
	} else {
		reason(pc, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	fk.proto = proto;
	if (icmp) {
		/* An error goes to the sender of the packet it quotes: anything
		 * else is not about one of our flows. */
		if (vk.addr[0] != fk.dst[0] || vk.addr[1] != fk.dst[1] || vk.addr[2] != fk.dst[2] ||
		    vk.addr[3] != fk.dst[3]) {
			reason(pc, R_PASS_NOT_VIP, len);
			return XDP_PASS;
		}
		/* The service is the inner packet's source: the VIP. */
		__builtin_memcpy(vk.addr, fk.dst, 16);
	}
	vk.port = fk.dport;
	vk.proto = proto;
	if (!maybe_vip(&vk))
		goto not_vip;

	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u64 now = clock_now(pc);
	int syn = proto == IPPROTO_TCP && (tcp_flags & (TH_SYN | TH_ACK)) == TH_SYN;
	int rst = proto == IPPROTO_TCP && (tcp_flags & TH_RST);

	/* The flow table first: an entry's key holds the VIP, port and
	 * protocol, so a hit is VIP traffic and needs no service lookup (the
	 * real's slot names its service). The service is looked up only when
	 * the table has no usable answer. A known flow keeps its real,
	 * whatever the table says now: weight 0 (drain) only affects new
	 * flows. A real that left the configuration (its slot invalid or
	 * reused: another gen) gets nothing more; its flows re-resolve through
	 * the table. */
	struct vip_meta *vm = NULL;
	__u32 rid = 0;
	struct real *rs = NULL;
	struct flow_val *fv = ct_lookup(&fk, v6);
	if (fv && cfg) {
		__u64 timeout = cfg->udp_timeout_ns;
		if (proto == IPPROTO_TCP)
			timeout = (fv->flags & FLOW_CLOSING) ? cfg->tcp_fin_timeout_ns : cfg->tcp_timeout_ns;
		if (timeout && now - fv->last_seen > timeout) {
			ct_delete(&fk, v6);
			reason(pc, R_CT_EXPIRED, len);
			fv = NULL;
		}
	}
	if (fv) {
		rid = fv->real_id;
		rs = bpf_map_lookup_elem(&reals, &rid);
		if (usable(rs) && rs->gen == fv->gen) {
			reason(pc, R_CT_HIT, len);
		} else {
			vm = bpf_map_lookup_elem(&vips, &vk);
			if (!vm)
				goto not_vip; /* the service is gone */
			rid = pick(vm, &fk);
			rs = bpf_map_lookup_elem(&reals, &rid);
			if (!rid || !usable(rs)) {
				reason(pc, R_PASS_NO_REAL, len);
				return XDP_PASS;
			}
			/* Rewriting an existing entry does not grow the table:
			 * allowed under flood too. */
			fv->real_id = rid;
			fv->gen = rs->gen;
			fv->flags = 0;
			reason(pc, R_CT_STALE, len);
		}
		if (now - fv->last_seen > LB_TOUCH_NS) {
			fv->last_seen = now;
			if (!vm)
				vm = bpf_map_lookup_elem(&vips, &vk);
			if (vm && vm->persist_s) {
				/* The pin lasts persist_s after the client's last
				 * packet, not after its last new connection. */
				struct persist_key pk = { .svc = vm->id };
				pk.src[0] = fk.src[0] & vm->src_mask[0];
				pk.src[1] = fk.src[1] & vm->src_mask[1];
				pk.src[2] = fk.src[2] & vm->src_mask[2];
				pk.src[3] = fk.src[3] & vm->src_mask[3];
				struct persist_val *pv = bpf_map_lookup_elem(&persist, &pk);
				if (pv && pv->real_id == rid)
					pv->last_seen = now;
			}
		}
		if (proto == IPPROTO_TCP && (tcp_flags & TH_FIN) && !(fv->flags & FLOW_CLOSING)) {
			fv->flags |= FLOW_CLOSING;
			fv->last_seen = now;
		}
	} else {
		vm = bpf_map_lookup_elem(&vips, &vk);
		if (!vm)
			goto not_vip;
		/* Persistence: a fresh pin of this client wins over the table. */
		struct persist_key pk = {};
		struct persist_val *pv = NULL;
		__u64 ptimeout = (__u64)vm->persist_s * 1000000000ULL;
		if (ptimeout) {
			pk.svc = vm->id;
			pk.src[0] = fk.src[0] & vm->src_mask[0];
			pk.src[1] = fk.src[1] & vm->src_mask[1];
			pk.src[2] = fk.src[2] & vm->src_mask[2];
			pk.src[3] = fk.src[3] & vm->src_mask[3];
			pv = bpf_map_lookup_elem(&persist, &pk);
			rid = pinned_real(pv, now, ptimeout);
		}
		int pinned = rid != 0;
		if (!rid)
			rid = pick(vm, &fk);
		rs = bpf_map_lookup_elem(&reals, &rid);
		if (!rid || !usable(rs)) {
			reason(pc, R_PASS_NO_REAL, len);
			return XDP_PASS;
		}
		if ((syn || proto == IPPROTO_UDP) && !rst && !icmp) {
			if (flood_budget(cfg, pc, now)) {
				struct flow_val nv = { .real_id = rid, .gen = rs->gen, .last_seen = now,
						       .cifindex = ctx->ingress_ifindex };
				__builtin_memcpy(nv.cmac, eth->h_source, ETH_ALEN);
				ct_update(&fk, v6, &nv);
				if (ptimeout && !pinned) {
					struct persist_val np = { .real_id = rid, .gen = rs->gen, .last_seen = now };
					bpf_map_update_elem(&persist, &pk, &np, BPF_ANY);
				}
				reason(pc, R_CT_NEW, len);
			} else {
				reason(pc, R_CT_FLOOD, len);
			}
		} else {
			reason(pc, R_CT_MISS, len);
		}
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
	if (rst && fv) {
		/* The RST itself still reaches the real; the flow is over. */
		ct_delete(&fk, v6);
		reason(pc, R_CT_CLOSED, len);
	}

	/* The slot's service: the one whose table or flow chose it. */
	count(&vip_stats, rs->svc, len);
	count(&real_stats, rid, len);

	if (tun)
		return tun_send(ctx, v6, rs, &fk, len);
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
		reason(pc, R_NAT_DNAT, len);
	}
	/* DR: the IP packet is untouched; only the frame is re-addressed. */
	__u8 dmac[ETH_ALEN];
	__builtin_memcpy(dmac, rs->mac, ETH_ALEN);
	return send_frame(ctx, pc, eth, tags, rs->ifindex, dmac, len);

not_vip:;
	int verdict = nat_reply(ctx, pc, eth, tags, l3, l4, data_end, v6, &fk, icmp, len);
	if (verdict >= 0)
		return verdict;
	reason(pc, R_PASS_NOT_VIP, len);
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
