// SPDX-License-Identifier: GPL-2.0
/* halo's XDP load balancer, part 1: DR (MAC rewrite) forwarding.
 *
 * VIP traffic (address, port, protocol) is matched, a real server is chosen
 * from the service's Maglev table (or taken from the connection table for
 * a known flow), and the frame leaves with the real's MAC as destination:
 * XDP_TX when the real is on the ingress interface, a devmap redirect
 * otherwise. Anything that is not VIP traffic, or that the program does not
 * handle (fragments, IPv4 options, IPv6 extension headers, truncated
 * headers), leaves with XDP_PASS untouched. */
#include "parse.h"
#include "lb.h"
#include <linux/tcp.h>
#include <linux/udp.h>

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vips SEC(".maps");

/* Two halves per service: the new table is written into the inactive half
 * and the service flips to it in one map update, so there is never a moment
 * in which a service has no table. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES * 2 * LB_RING_SIZE);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
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

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vip_stats SEC(".maps");

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

/* Round-robin cursor per service (per CPU: no contention, and the walk
 * over a weighted table keeps each CPU's share weighted). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rr_cursor SEC(".maps");

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

/* Force BTF for bpf2go's Go mirrors. */
const enum lb_reason *unused_reason __attribute__((unused));
const enum lb_flags *unused_flags __attribute__((unused));
const enum lb_limits *unused_limits __attribute__((unused));

static __always_inline void count(void *map, __u32 key, __u64 bytes)
{
	struct counter *c = bpf_map_lookup_elem(map, &key);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
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

static __always_inline __u32 flow_hash(struct flow_key *f, __u32 flags)
{
	__u32 h = 0x9747b28c;
	h = mix32(h ^ f->src[0]);
	h = mix32(h ^ f->src[1]);
	h = mix32(h ^ f->src[2]);
	h = mix32(h ^ f->src[3]);
	if (flags & SVC_HASH_SRC) {
		if (flags & SVC_HASH_PORT)
			h = mix32(h ^ f->sport);
		return h;
	}
	h = mix32(h ^ f->dst[0]);
	h = mix32(h ^ f->dst[1]);
	h = mix32(h ^ f->dst[2]);
	h = mix32(h ^ f->dst[3]);
	h = mix32(h ^ (((__u32)f->sport << 16) | f->dport));
	return mix32(h ^ f->proto);
}

static __always_inline __u32 pick(struct vip_meta *vm, struct flow_key *f)
{
	__u32 slot;
	if (vm->flags & SVC_ROUND) {
		__u32 *cur = bpf_map_lookup_elem(&rr_cursor, &vm->id);
		if (!cur)
			return 0;
		slot = *cur % LB_RING_SIZE;
		*cur = slot + 1;
	} else {
		slot = flow_hash(f, vm->flags) % LB_RING_SIZE;
	}
	__u32 idx = (vm->id * 2 + (vm->ring & 1)) * LB_RING_SIZE + slot;
	__u32 *id = bpf_map_lookup_elem(&rings, &idx);
	return id ? *id : 0;
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
	__u8 proto;

	__be16 ethp = parse_eth(&c, &eth);
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
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP) {
			/* Extension headers (fragments included) are left to the
			 * stack; so is anything else that is not TCP or UDP. */
			count(&reason_stats, proto == IPPROTO_ICMPV6 ? R_PASS_NOT_VIP : R_PASS_IPV6_EXT, len);
			return XDP_PASS;
		}
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
		fk.sport = th->source;
		fk.dport = th->dest;
	} else if (proto == IPPROTO_UDP) {
		struct udphdr *uh = cursor_take(&c, sizeof(*uh));
		if (!uh) {
			count(&reason_stats, R_PASS_TRUNCATED, len);
			return XDP_PASS;
		}
		fk.sport = uh->source;
		fk.dport = uh->dest;
	} else {
		count(&reason_stats, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	fk.proto = proto;
	vk.port = fk.dport;
	vk.proto = proto;

	struct vip_meta *vm = bpf_map_lookup_elem(&vips, &vk);
	if (!vm) {
		count(&reason_stats, R_PASS_NOT_VIP, len);
		return XDP_PASS;
	}
	__u32 svc = vm->id;

	/* A known flow keeps its real, whatever the table says now: real-set
	 * changes and weight 0 (inhibit) only affect new flows. */
	__u32 rid = 0;
	struct real *rs = NULL;
	struct flow_val *fv = bpf_map_lookup_elem(&conntrack, &fk);
	if (fv) {
		rid = fv->real_id;
		rs = bpf_map_lookup_elem(&reals, &rid);
		if (rs && rs->valid)
			count(&reason_stats, R_CT_HIT, len);
		else
			rs = NULL;
	}
	if (!rs) {
		rid = pick(vm, &fk);
		rs = bpf_map_lookup_elem(&reals, &rid);
		if (!rid || !rs || !rs->valid) {
			count(&reason_stats, R_PASS_NO_REAL, len);
			return XDP_PASS;
		}
		struct flow_val nv = { .real_id = rid };
		bpf_map_update_elem(&conntrack, &fk, &nv, BPF_ANY);
		count(&reason_stats, R_CT_NEW, len);
	}
	if (!(rs->mac[0] | rs->mac[1] | rs->mac[2] | rs->mac[3] | rs->mac[4] | rs->mac[5])) {
		count(&reason_stats, R_PASS_NO_MAC, len);
		return XDP_PASS;
	}

	count(&vip_stats, svc, len);
	count(&real_stats, rid, len);

	/* DR: the IP packet is untouched; only the frame is re-addressed. */
	if (rs->ifindex == 0 || rs->ifindex == ctx->ingress_ifindex) {
		/* Back out of the ingress interface: our MAC is the old
		 * destination. */
		__builtin_memcpy(eth->h_source, eth->h_dest, ETH_ALEN);
		__builtin_memcpy(eth->h_dest, rs->mac, ETH_ALEN);
		count(&reason_stats, R_TX, len);
		return XDP_TX;
	}
	__u32 oif = rs->ifindex;
	struct real *om = bpf_map_lookup_elem(&if_macs, &oif);
	if (!om) {
		count(&reason_stats, R_PASS_NO_MAC, len);
		return XDP_PASS;
	}
	__builtin_memcpy(eth->h_source, om->mac, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, rs->mac, ETH_ALEN);
	count(&reason_stats, R_REDIRECT, len);
	return bpf_redirect_map(&tx_ports, oif, XDP_PASS);
}

char _license[] SEC("license") = "GPL";
