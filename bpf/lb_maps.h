// SPDX-License-Identifier: GPL-2.0
/* The maps of halo's XDP load balancer (bpf/lb.c) and the counter helper
 * every part of it uses. Included once, by lb.c. */
#pragma once

#include "parse.h"
#include "lb.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, struct vip_key);
	__type(value, struct vip_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vips SEC(".maps");

/* The services again, by id: a packet finds its service through vip_index
 * and this array (two array reads) instead of a hash of its key. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__type(value, struct vip_meta);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} svc_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_VIP_FILTER_BITS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} vip_index SEC(".maps");

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

/* The same tables as rings, read only for a dirty slot's new flows: a
 * dirty slot in rings names the real its flows had before the change
 * (bpf/lb_select.h); this names the real new flows get now. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY_OF_MAPS);
	__uint(max_entries, LB_MAX_SERVICES);
	__type(key, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__array(values, struct ring);
} new_rings SEC(".maps");

/* Which flows were active lately, and which were before the last table
 * change: bit (flow hash % 64) of the words of index i = (flow hash / 64)
 * % indexes (n). Words 2i and 2i+1 are UDP's even and odd epoch, words
 * 2(n+i) and 2(n+i)+1 TCP's, word 4n+i the flows before the last change:
 * a packet reads one pair of adjacent words, and a protocol's pairs take
 * 16 bytes per index (what stays in the caches). Every packet of a service
 * sets its bit in its protocol's word of the current epoch
 * (cfg->seen_epoch, seen_epoch_tcp); Go clears a protocol's coming epoch
 * and then switches it once per idle timeout (udp_timeout, tcp_timeout),
 * so a flow active within the last one to two timeouts has a bit. Right
 * before it publishes a changed table, Go copies the union of the four
 * into the fifth word: the flows that existed before the change. A packet
 * without an entry on a dirty slot is an old flow when its bit is there, a
 * new one otherwise (a UDP flow has no SYN; a TCP flow whose SYN the flood
 * budget left unrecorded has none to show either). A NAT UDP flow's first
 * packet (its client's next hop is noted then) is one without a bit. Go
 * sizes the map (8 bits per flow-table entry); collisions make a new flow
 * look old, never the reverse. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(map_flags, BPF_F_MMAPABLE); /* Go reads and clears it in place */
	__uint(max_entries, LB_SEEN_GROUP * LB_SEEN_WORDS);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flow_seen SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct real);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reals SEC(".maps");

/* One global LRU per family: veth and multi-queue NICs may move a flow
 * between CPUs, and a per-CPU table would then forget it.
 * conntrack holds IPv6 flows, conntrack4 IPv4 flows (a key of 16 bytes:
 * ct_lookup and the others below choose). */
#define LB_CT_TYPE BPF_MAP_TYPE_LRU_HASH
struct {
	__uint(type, LB_CT_TYPE);
	__uint(max_entries, LB_CT_SIZE);
	__type(key, struct flow_key);
	__type(value, struct flow_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack SEC(".maps");

struct {
	__uint(type, LB_CT_TYPE);
	__uint(max_entries, LB_CT_SIZE);
	__type(key, struct flow_key4);
	__type(value, struct flow_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} conntrack4 SEC(".maps");

/* Persistence pins, with expiry checked on use (the LRU bounds them). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_PERSIST_SIZE);
	__type(key, struct persist_key);
	__type(value, struct persist_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} persist SEC(".maps");

/* Per (service, real) entry, so per-real counters are per service. A
 * service's own counters are the sum of its entries' (pkg/dataplane/xdp
 * stats.go): a second per-CPU lookup and two more writes per packet cost
 * about 6 ns of ~60 on the established-flow path. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, LB_MAX_REALS);
	__type(key, __u32);
	__type(value, struct counter);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} real_stats SEC(".maps");

/* One element per CPU: the reason counters, the flood guard's budget and
 * the clock (struct lb_percpu). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_percpu);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} reason_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct lb_config);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP_HASH);
	__uint(max_entries, LB_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_ports SEC(".maps");

/* Egress interface MACs, for frames redirected to another interface; an
 * entry's egress field is the interface's index in egress_ifs, which the
 * program copies into the client_nh entries it writes. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct real);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} if_macs SEC(".maps");

/* The same interfaces by the index a real or a next hop carries (struct
 * real's and struct nh_val's egress): two array reads instead of a hash
 * lookup in if_macs and one in tx_ports per redirected frame. An entry
 * without an index (0, or one an older halod or program wrote) takes the
 * if_macs and tx_ports path. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct egress_if);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} egress_ifs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, LB_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} tx_slots SEC(".maps");

/* The source MAC for frames leaving by oif, into smac: from egress_ifs
 * when the real's index names oif there (*slot set to it), else from
 * if_macs (*slot 0). -1: neither knows oif. */
static __always_inline int egress_mac(__u32 oif, __u32 idx, __u8 *smac, __u32 *slot)
{
	*slot = 0;
	if (idx) {
		struct egress_if *e = bpf_map_lookup_elem(&egress_ifs, &idx);
		if (e && e->ifindex == oif) {
			__builtin_memcpy(smac, e->mac, ETH_ALEN);
			*slot = idx;
			return 0;
		}
	}
	struct real *om = bpf_map_lookup_elem(&if_macs, &oif);
	if (!om)
		return -1;
	__builtin_memcpy(smac, om->mac, ETH_ALEN);
	return 0;
}

/* Redirects to oif: through tx_slots when egress_mac found its slot. */
static __always_inline long egress_redirect(__u32 oif, __u32 slot)
{
	if (slot)
		return bpf_redirect_map(&tx_slots, slot, 0);
	return bpf_redirect_map(&tx_ports, oif, 0);
}

/* Reverse-NAT index: (real address, real port, protocol) -> VIP:vport. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, LB_MAX_RNAT);
	__type(key, struct vip_key);
	__type(value, struct rnat_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rnat SEC(".maps");

/* rnat's keys by vip_filter_index, as vip_index is the services': nonzero
 * where a key of rnat hashes. A packet that is neither for a VIP nor from
 * a NAT real (the director's own traffic, whatever else the interface
 * carries) then costs an array read instead of a hash lookup in rnat. Go
 * sets an entry before the keys that need it are written and clears it
 * after the last one left (pkg/dataplane/xdp/rnatfilter.go). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, LB_VIP_FILTER_BITS);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} rnat_filter SEC(".maps");

/* Next hops towards client networks, for NAT replies without a flow entry. */
struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, LB_MAX_NEXTHOPS);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct nh_key);
	__type(value, struct nh_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nexthops SEC(".maps");

/* Where a NAT client's packets came from (interface, source MAC), noted
 * on a flow's first packet: its replies go back the same way without a
 * per-flow entry. Key: the client's address (prefixlen 128, IPv4 mapped). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_CLIENT_NH);
	__type(key, struct nh_key);
	__type(value, struct nh_val);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} client_nh SEC(".maps");

/* Addresses a NAT reply found no next hop for (nexthops' key): a director
 * that takes over has never talked to on-link clients, and the client sends
 * nothing during a download, so nothing would make its kernel learn the
 * MAC. The Go side drains this, asks the kernel to resolve each address and
 * mirrors the result into nexthops; LRU keeps a flood of unknown
 * destinations bounded. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, LB_MAX_NH_WANTED);
	__type(key, struct nh_key);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} nh_wanted SEC(".maps");

/* Force BTF for bpf2go's Go mirrors. */
const enum lb_reason *unused_reason __attribute__((unused));
const enum lb_flags *unused_flags __attribute__((unused));
const enum lb_limits *unused_limits __attribute__((unused));
const enum real_flags *unused_real_flags __attribute__((unused));
const enum lb_method *unused_method __attribute__((unused));
const enum flow_flags *unused_flow_flags __attribute__((unused));
const enum ring_flags *unused_ring_flags __attribute__((unused));
const struct lb_config *unused_config __attribute__((unused));
const struct flood_state *unused_flood __attribute__((unused));
const struct lb_percpu *unused_percpu __attribute__((unused));
const enum vip_index_flags *unused_vip_index_flags __attribute__((unused));
const struct ring_chunk *unused_chunk __attribute__((unused));
const struct rnat_val *unused_rnat __attribute__((unused));
const struct nh_key *unused_nh_key __attribute__((unused));
const struct nh_val *unused_nh_val __attribute__((unused));
const struct egress_if *unused_egress_if __attribute__((unused));

/* pkg/dataplane/xdp.vipFilterIndex is the same function in Go. */
static __always_inline __u32 vip_filter_index(struct vip_key *vk)
{
	__u32 x = vk->addr[0] ^ vk->addr[1] ^ vk->addr[2] ^ vk->addr[3] ^ ((__u32)vk->port << 16 | vk->proto);
	return (x * 0x9e3779b1u) >> LB_VIP_FILTER_SHIFT;
}

/* The service of vk (address, port, protocol), or NULL. */
static __always_inline struct vip_meta *find_service(struct vip_key *vk)
{
	__u32 i = vip_filter_index(vk) & (LB_VIP_FILTER_BITS - 1);
	__u32 *e = bpf_map_lookup_elem(&vip_index, &i);
	if (!e || !*e)
		return NULL;
	if (*e == VIP_INDEX_MANY)
		return bpf_map_lookup_elem(&vips, vk);
	__u32 id = *e - 1;
	struct vip_meta *vm = bpf_map_lookup_elem(&svc_meta, &id);
	if (!vm)
		return NULL;
	__u32 *a = (__u32 *)&vm->key, *b = (__u32 *)vk;
	if (a[0] != b[0] || a[1] != b[1] || a[2] != b[2] || a[3] != b[3] || a[4] != b[4])
		return NULL;
	return vm;
}

/* The flow table of f's family: v6 says which (a v4 key has its address
 * in src[0], dst[0]). */
static __always_inline struct flow_key4 flow_key4_of(struct flow_key *f)
{
	struct flow_key4 k = { .src = f->src[0], .dst = f->dst[0], .sport = f->sport, .dport = f->dport,
			       .proto = f->proto };
	return k;
}

/* IPv6 keys are copied into this CPU's state first: f may point into a
 * global function's argument (struct pkt), which kernels before 6.2 or so
 * do not take as a map key, and a copy on the stack would cost 40 bytes of
 * the 512 the program and the selection share. */
static __always_inline struct lb_percpu *percpu(void);
static __always_inline struct flow_key *ct_key6(struct flow_key *f)
{
	struct lb_percpu *pc = percpu();
	if (!pc)
		return NULL;
	pc->key = *f;
	return &pc->key;
}

static __always_inline struct flow_val *ct_lookup(struct flow_key *f, int v6)
{
	if (v6) {
		struct flow_key *k = ct_key6(f);
		return k ? bpf_map_lookup_elem(&conntrack, k) : NULL;
	}
	struct flow_key4 k = flow_key4_of(f);
	return bpf_map_lookup_elem(&conntrack4, &k);
}

static __always_inline void ct_delete(struct flow_key *f, int v6)
{
	if (v6) {
		struct flow_key *k = ct_key6(f);
		if (k)
			bpf_map_delete_elem(&conntrack, k);
		return;
	}
	struct flow_key4 k = flow_key4_of(f);
	bpf_map_delete_elem(&conntrack4, &k);
}

static __always_inline void ct_update(struct flow_key *f, int v6, struct flow_val *v)
{
	if (v6) {
		struct flow_key *k = ct_key6(f);
		if (k)
			bpf_map_update_elem(&conntrack, k, v, BPF_ANY);
		return;
	}
	struct flow_key4 k = flow_key4_of(f);
	bpf_map_update_elem(&conntrack4, &k, v, BPF_ANY);
}

static __always_inline struct lb_percpu *percpu(void)
{
	__u32 zero = 0;
	return bpf_map_lookup_elem(&reason_stats, &zero);
}

/* Counts a packet under reason r in this CPU's state p (looked up when
 * the caller has none at hand). */
static __always_inline void reason(struct lb_percpu *p, __u32 r, __u64 bytes)
{
	if (!p)
		p = percpu();
	if (p && r < R_MAX) {
		p->reasons[r].packets++;
		p->reasons[r].bytes += bytes;
	}
}

/* count(&reason_stats, r, len) counts a reason; any other map is an array
 * of struct counter indexed by key. */
static __always_inline void count(void *map, __u32 key, __u64 bytes)
{
	if (map == (void *)&reason_stats) {
		reason(NULL, key, bytes);
		return;
	}
	struct counter *c = bpf_map_lookup_elem(map, &key);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

struct icmp_hdr {
	__u8 type;
	__u8 code;
	__u16 csum;
	__u32 rest;
};

