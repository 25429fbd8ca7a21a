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

/* last_seen is refreshed at most this often: a write per packet to a
 * shared entry would bounce its cache line between CPUs for nothing. */
#define LB_TOUCH_NS 1000000000ULL

/* TCP flags as they sit in byte 13 of the header. */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vips SEC(".maps");

/* A service's Maglev table is a map of its own: memory follows the
 * services installed, a table is replaced in one update of the outer slot
 * (no moment without a table), and tables may differ in size. */
struct ring {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_RING_CHUNKS);
	__uint(map_flags, BPF_F_INNER_MAP);
	__type(key, __u32);
	__type(value, struct ring_chunk);
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ring);
} rings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct real);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reals SEC(".maps");

/* One global LRU: veth and multi-queue NICs may move a flow between CPUs,
 * and a per-CPU table would then forget it. CT_PERCPU builds the per-CPU
 * variant that BenchmarkConntrack measures against this one. */
struct {
#ifdef CT_PERCPU
	__uint(type, BPF_MAP_TYPE_LRU_PERCPU_HASH);
#else
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
#endif
	__uint(max_entries, LB_CT_SIZE);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

/* Persistence pins, with expiry checked on use (the LRU bounds them). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_PERSIST_SIZE);
	__type(key, struct persist_key);
	__type(value, struct persist_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} persist SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vip_stats SEC(".maps");

/* Per (service, real) entry, so per-real counters are per service. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} real_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, R_MAX);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reason_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

/* New-entry budget per CPU and second (Katran's flood guard, per CPU so
 * that counting costs no shared write). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct flood_state);
} flood SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, LB_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_ports SEC(".maps");

/* Egress interface MACs, for frames redirected to another interface. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct real);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} if_macs SEC(".maps");

/* Reverse-NAT index: (real address, real port, protocol) -> VIP:vport. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_RNAT);
	__type(key, struct vip_key);
	__type(value, struct rnat_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rnat SEC(".maps");

/* Next hops towards client networks, for NAT replies without a flow entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_NEXTHOPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nh_key);
	__type(value, struct nh_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nexthops SEC(".maps");

/* Force BTF for bpf2go's Go mirrors. */
const enum lb_reason *unused_reason __attribute__((unused));
const enum lb_flags *unused_flags __attribute__((unused));
const enum lb_limits *unused_limits __attribute__((unused));
const enum real_flags *unused_real_flags __attribute__((unused));
const enum lb_method *unused_method __attribute__((unused));
const enum flow_flags *unused_flow_flags __attribute__((unused));
const struct lb_config *unused_config __attribute__((unused));
const struct flood_state *unused_flood __attribute__((unused));
const struct ring_chunk *unused_chunk __attribute__((unused));
const struct rnat_val *unused_rnat __attribute__((unused));
const struct nh_key *unused_nh_key __attribute__((unused));
const struct nh_val *unused_nh_val __attribute__((unused));

static __always_inline void count(void *map, __u32 key, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(map, &key);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

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
 * otherwise (tags stripped: another interface is another link). */
static __always_inline int send_to(struct xdp_md *ctx, struct ethhdr *eth, __u32 tags, __u32 oif, __u8 *dmac_in, __u64 len)
{
	if (oif == 0 || oif == ctx->ingress_ifindex) {
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, dmac_in, ETH_ALEN);
		count(&reason_stats, R_TX, len);
		return XDP_TX;
	}
	struct real *om = bpf_map_lookup_elem(&if_macs, &oif);
	if (!om)
		goto drop;
	__u8 dmac[ETH_ALEN], smac[ETH_ALEN];
	__builtin_memcpy(dmac, dmac_in, ETH_ALEN);
	__builtin_memcpy(smac, om->mac, ETH_ALEN);
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
	long ret = bpf_redirect_map(&tx_ports, oif, 0);
	if (ret != XDP_REDIRECT)
		goto drop;
	count(&reason_stats, R_REDIRECT, len);
	return XDP_REDIRECT;
drop:
	count(&reason_stats, R_DROP_NO_TXPORT, len);
	return XDP_DROP;
}

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
static __always_inline int flood_budget(struct lb_config *cfg, __u64 now)
{
	if (!cfg || !cfg->flood_threshold)
		return 1;
	__u32 zero = 0;
	struct flood_state *st = bpf_map_lookup_elem(&flood, &zero);
	if (!st)
		return 1;
	if (now - st->window_start > 1000000000ULL) {
		st->window_start = now;
		st->count = 0;
	}
	if (st->count >= cfg->flood_threshold)
		return 0;
	st->count++;
	return 1;
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

struct icmp_hdr {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u32 rest;
};

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

/* A NAT reply: f is the packet's own key (real -> client). Returns the
 * verdict, or -1 when the packet is not from a NAT real of the index. */
static __always_inline int nat_reply(struct xdp_md *ctx, struct ethhdr *eth, __u32 tags, void *l3, void *l4,
				     void *end, int v6, struct flow_key *f, __u64 len)
{
	struct vip_key rk = { .port = f->sport, .proto = f->proto, .family = v6 ? 6 : 4 };
	__builtin_memcpy(rk.addr, f->src, 16);
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
	if (ttl <= 1) {
		count(&reason_stats, R_PASS_TTL, len);
		return XDP_PASS;
	}
	/* The client's flow, as the forward path recorded it. */
	struct flow_key ck = { .sport = f->dport, .dport = rv->vport, .proto = f->proto };
	__builtin_memcpy(ck.src, f->dst, 16);
	__builtin_memcpy(ck.dst, rv->vip, 16);
	__u32 oif = 0;
	__u8 mac[ETH_ALEN];
	struct flow_val *fv = bpf_map_lookup_elem(&conntrack, &ck);
	if (fv && fv->cifindex) {
		oif = fv->cifindex;
		__builtin_memcpy(mac, fv->cmac, ETH_ALEN);
	} else {
		struct nh_key nk = { .prefixlen = 128 };
		if (v6) {
			__builtin_memcpy(nk.addr, f->dst, 16);
		} else {
			nk.addr[2] = bpf_htonl(0xffff);
			nk.addr[3] = f->dst[0];
		}
		struct nh_val *nh = bpf_map_lookup_elem(&nexthops, &nk);
		if (!nh || !nh->ifindex) {
			count(&reason_stats, R_PASS_NO_NEXTHOP, len);
			return XDP_PASS;
		}
		oif = nh->ifindex;
		__builtin_memcpy(mac, nh->mac, ETH_ALEN);
	}
	struct nat_rewrite nr = { .port = rv->vport };
	__builtin_memcpy(nr.addr, rv->vip, 16);
	nat_apply(l3, l4, end, v6, f->proto, 0, &nr);
	count(&reason_stats, R_NAT_REPLY, len);
	return send_to(ctx, eth, tags, oif, mac, len);
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

	__be16 ethp = parse_eth_tags(&c, &eth, &tags);
	if (!ethp) {
		count(&reason_stats, R_PASS_TRUNCATED, len);
		return XDP_PASS;
	}
	if (ethp == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor_take(&c, sizeof(*ip));
		if (!ip) {
			count(&reason_stats, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		if (ip->ihl != 5) {
			count(&reason_stats, R_PASS_IP_OPTIONS, len);
			return XDP_PASS;
		}
		if (ip->frag_off & bpf_htons(0x3fff)) {
			count(&reason_stats, R_PASS_FRAGMENT, len);
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
			count(&reason_stats, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		proto = ip6->nexthdr;
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_ICMPV6) {
			/* Extension headers (fragments included) are left to the
			 * stack; so is anything else that is not TCP or UDP. */
			count(&reason_stats, R_PASS_IPV6_EXT, len);
			return XDP_PASS;
		}
		l3 = ip6;
		v6 = 1;
		__builtin_memcpy(fk.src, &ip6->saddr, 16);
		__builtin_memcpy(fk.dst, &ip6->daddr, 16);
		__builtin_memcpy(vk.addr, &ip6->daddr, 16);
		vk.family = 6;
	} else {
		count(&reason_stats, R_PASS_NOT_IP, len);
		return XDP_PASS;
	}

	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = cursor_take(&c, sizeof(*th));
		if (!th) {
			count(&reason_stats, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		l4 = th;
		fk.sport = th->source;
		fk.dport = th->dest;
		tcp_flags = ((__u8 *)th)[13];
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = cursor_take(&c, sizeof(*uh));
		if (!uh) {
			count(&reason_stats, R_PASS_TRUNCATED, len);
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
			count(&reason_stats, R_PASS_NOT_VIP, len);
			return XDP_PASS;
		}
		icmp = 1;
		proto = fk.proto;
	} else {
		count(&reason_stats, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	fk.proto = proto;
	if (icmp) {
		/* The service is the inner packet's source: the VIP. */
		__builtin_memcpy(vk.addr, fk.dst, 16);
	}
	vk.port = fk.dport;
	vk.proto = proto;

	struct vip_meta *vm = bpf_map_lookup_elem(&vips, &vk);
	if (!vm) {
		if (!icmp) {
			int verdict = nat_reply(ctx, eth, tags, l3, l4, data_end, v6, &fk, len);
			if (verdict >= 0)
				return verdict;
		}
		count(&reason_stats, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	__u32 svc = vm->id;
	__u32 zero = 0;
	struct lb_config *cfg = bpf_map_lookup_elem(&config, &zero);
	__u64 now = bpf_ktime_get_coarse_ns();
	int syn = proto == IPPROTO_TCP && (tcp_flags & (TH_SYN | TH_ACK)) == TH_SYN;
	int rst = proto == IPPROTO_TCP && (tcp_flags & TH_RST);

	/* A known flow keeps its real, whatever the table says now: weight 0
	 * (drain) only affects new flows. A real that left the configuration
	 * (its slot invalid or reused: another gen) gets nothing more; its
	 * flows re-resolve through the table. */
	__u32 rid = 0;
	struct real *rs = NULL;
	struct flow_val *fv = bpf_map_lookup_elem(&conntrack, &fk);
	if (fv && cfg) {
		__u64 timeout = cfg->udp_timeout_ns;
		if (proto == IPPROTO_TCP)
			timeout = (fv->flags & FLOW_CLOSING) ? cfg->tcp_fin_timeout_ns : cfg->tcp_timeout_ns;
		if (timeout && now - fv->last_seen > timeout) {
			bpf_map_delete_elem(&conntrack, &fk);
			count(&reason_stats, R_CT_EXPIRED, len);
			fv = NULL;
		}
	}
	if (fv) {
		rid = fv->real_id;
		rs = bpf_map_lookup_elem(&reals, &rid);
		if (usable(rs) && rs->gen == fv->gen) {
			count(&reason_stats, R_CT_HIT, len);
		} else {
			rid = pick(vm, &fk);
			rs = bpf_map_lookup_elem(&reals, &rid);
			if (!rid || !usable(rs)) {
				count(&reason_stats, R_PASS_NO_REAL, len);
				return XDP_PASS;
			}
			/* Rewriting an existing entry does not grow the table:
			 * allowed under flood too. */
			fv->real_id = rid;
			fv->gen = rs->gen;
			fv->flags = 0;
			count(&reason_stats, R_CT_STALE, len);
		}
		if (now - fv->last_seen > LB_TOUCH_NS) {
			fv->last_seen = now;
			if (vm->persist_s) {
				/* The pin lasts persist_s after the client's last
				 * packet, not after its last new connection. */
				struct persist_key pk = { .svc = svc };
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
		/* Persistence: a fresh pin of this client wins over the table. */
		struct persist_key pk = {};
		struct persist_val *pv = NULL;
		__u64 ptimeout = (__u64)vm->persist_s * 1000000000ULL;
		if (ptimeout) {
			pk.svc = svc;
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
			count(&reason_stats, R_PASS_NO_REAL, len);
			return XDP_PASS;
		}
		if ((syn || proto == IPPROTO_UDP) && !rst && !icmp) {
			if (flood_budget(cfg, now)) {
				struct flow_val nv = { .real_id = rid, .gen = rs->gen, .last_seen = now,
						       .cifindex = ctx->ingress_ifindex };
				__builtin_memcpy(nv.cmac, eth->h_source, ETH_ALEN);
				bpf_map_update_elem(&conntrack, &fk, &nv, BPF_ANY);
				if (ptimeout && !pinned) {
					struct persist_val np = { .real_id = rid, .gen = rs->gen, .last_seen = now };
					bpf_map_update_elem(&persist, &pk, &np, BPF_ANY);
				}
				count(&reason_stats, R_CT_NEW, len);
			} else {
				count(&reason_stats, R_CT_FLOOD, len);
			}
		} else {
			count(&reason_stats, R_CT_MISS, len);
		}
	}
	if (!(rs->flags & REAL_HAS_MAC)) {
		/* Never a frame with an empty destination MAC. */
		count(&reason_stats, R_PASS_NO_MAC, len);
		return XDP_PASS;
	}
	int nat = rs->method == METHOD_NAT;
	int tun = rs->method == METHOD_TUN;
	if (tun && tags) {
		/* The encapsulated frame is built behind an untagged Ethernet
		 * header; tagged ingress is left to the stack. */
		count(&reason_stats, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	if (nat) {
		/* ICMP errors about NAT flows are not translated (yet): the
		 * stack gets them rather than a real that does not own the VIP. */
		if (icmp) {
			count(&reason_stats, R_PASS_NOT_VIP, len);
			return XDP_PASS;
		}
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
			count(&reason_stats, R_PASS_TTL, len);
			return XDP_PASS;
		}
	}
	if (icmp)
		count(&reason_stats, R_ICMP_TO_REAL, len);
	if (rst && fv) {
		/* The RST itself still reaches the real; the flow is over. */
		bpf_map_delete_elem(&conntrack, &fk);
		count(&reason_stats, R_CT_CLOSED, len);
	}

	count(&vip_stats, svc, len);
	count(&real_stats, rid, len);

	if (tun)
		return tun_send(ctx, v6, rs, &fk, len);
	if (nat) {
		struct nat_rewrite nr = { .port = rs->port };
		__builtin_memcpy(nr.addr, rs->addr, 16);
		nat_apply(l3, l4, data_end, v6, proto, 1, &nr);
		count(&reason_stats, R_NAT_DNAT, len);
	}
	/* DR: the IP packet is untouched; only the frame is re-addressed. */
	__u8 dmac[ETH_ALEN];
	__builtin_memcpy(dmac, rs->mac, ETH_ALEN);
	return send_to(ctx, eth, tags, rs->ifindex, dmac, len);
}

char _license[] SEC("license") = "GPL";
