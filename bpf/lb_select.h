// SPDX-License-Identifier: GPL-2.0
/* How bpf/lb.c chooses a VIP packet's real. Included once, by lb.c.
 *
 * A flow's real is a pure function of its key and the service's Maglev
 * table: every director with the same configuration picks the same real,
 * and while the table does not change nothing else is needed, so the
 * common case reads the table and no per-flow state at all.
 *
 * The flow table is the memory for when the table changes. Go keeps, per
 * table slot, the real the slot's flows had when they last all agreed with
 * the table, and marks the slot dirty (RING_DIRTY) while its real differs
 * or differed since; rings holds that (previous real | RING_DIRTY) and
 * new_rings the current table. A packet on a clean slot goes to the slot's
 * real. A packet on a dirty slot looks its flow up: an entry wins; without
 * one, a new flow (a TCP SYN, a flow flow_seen did not know before the
 * last change, a flow whose entry expired or whose real left) gets the
 * current table's real, anything else is a flow older than the change and
 * keeps the slot's previous real; either way the choice is recorded, so later
 * changes find it. A flow recorded on a slot that was clean at the time
 * is on the slot's previous real, which is why that is kept until the
 * flows have gone: Go clears a slot's mark only once idle timeouts have
 * passed since the service's last change and no live entry of the slot
 * disagrees with the current table (pkg/dataplane/xdp/transition.go).
 *
 * Services with persistence keep the flow-table-first path: a client's pin
 * lasts persistence_timeout after its last packet, which the table alone
 * cannot express. Their rings never carry RING_DIRTY. */
#pragma once

#include "parse.h"
#include "lb.h"
#include "lb_maps.h"

/* last_seen is refreshed at most this often: a write per packet to a
 * shared entry would bounce its cache line between CPUs for nothing. */
#define LB_TOUCH_NS 1000000000ULL

/* TCP flags as they sit in byte 13 of the header. */
#define TH_FIN 0x01
#define TH_SYN 0x02
#define TH_RST 0x04
#define TH_ACK 0x10

/* What the selection needs to know of the packet. */
struct pkt {
	struct flow_key fk;
	__u64 len;
	__u64 now;  /* the clock, read where the flow table is used */
	__u32 cifindex; /* ingress interface (recorded for NAT replies) */
	__u8 v6;
	__u8 syn;   /* TCP SYN without ACK: a new connection */
	__u8 rst;
	__u8 fin;
	__u8 icmp;  /* an ICMP error about the flow fk */
	__u8 seen;  /* flow_seen had the flow (ICMP errors: 1) */
	__u8 had_entry; /* set by the selection: the flow has a flow-table entry */
	__u8 smac[ETH_ALEN]; /* the frame's source MAC (recorded for NAT replies) */
	__u32 h;    /* the selection hash (flow_hash) */
	__u32 sh;   /* the flow's 5-tuple hash (flow_seen's index) */
};

static __always_inline __u32 mix32(__u32 h)
{
	h ^= h >> 16;
	h *= 0x85ebca6b;
	h ^= h >> 13;
	h *= 0xc2b2ae35;
	h ^= h >> 16;
	return h;
}

/* The selection hash. Two versions: murmur3_32 over the key's words
 * (SVC_HASH_MURMUR3, the default), and the mix32 chain halo used before it,
 * kept for a pair of directors that run both versions during an upgrade
 * (selection_hash mix32) and for the flows of a director that upgraded in
 * place (a hash change, handled as any other: SVC_REHASHED). murmur3's
 * chain through h is an xor, a rotate and a multiply-add per word, the
 * multiplications of the words themselves independent of it, and an IPv4
 * key is 4 words where the mix32 chain ran 10 full rounds one after the
 * other. pkg/dataplane/xdp.flowHash is the same in Go (tested against this
 * and against a murmur3 library). */
#define LB_HASH_SEED 0x9747b28c

static __always_inline __u32 rotl32(__u32 x, int r)
{
	return (x << r) | (x >> (32 - r));
}

static __always_inline __u32 mm3_word(__u32 h, __u32 k)
{
	k *= 0xcc9e2d51;
	k = rotl32(k, 15);
	k *= 0x1b873593;
	h ^= k;
	h = rotl32(h, 13);
	return h * 5 + 0xe6546b64;
}

/* The 5-tuple hash; an IPv4 key hashes only the words it has. */
static __always_inline __u32 flow_hash5_mm3(struct flow_key *f, int v6)
{
	__u32 h = LB_HASH_SEED;
	__u32 ports = ((__u32)f->sport << 16) | f->dport;
	if (!v6) {
		h = mm3_word(h, f->src[0]);
		h = mm3_word(h, f->dst[0]);
		h = mm3_word(h, ports);
		h = mm3_word(h, f->proto);
		return mix32(h ^ 16);
	}
	h = mm3_word(h, f->src[0]);
	h = mm3_word(h, f->src[1]);
	h = mm3_word(h, f->src[2]);
	h = mm3_word(h, f->src[3]);
	h = mm3_word(h, f->dst[0]);
	h = mm3_word(h, f->dst[1]);
	h = mm3_word(h, f->dst[2]);
	h = mm3_word(h, f->dst[3]);
	h = mm3_word(h, ports);
	h = mm3_word(h, f->proto);
	return mix32(h ^ 40);
}

static __always_inline __u32 flow_hash5_mix(struct flow_key *f)
{
	__u32 h = LB_HASH_SEED;
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

/* The 5-tuple hash in the version flags name: the selection key of most
 * schedulers and, for every service, the flow's index in flow_seen. */
static __always_inline __u32 flow_hash5(struct flow_key *f, int v6, __u32 flags)
{
	return (flags & SVC_HASH_MURMUR3) ? flow_hash5_mm3(f, v6) : flow_hash5_mix(f);
}

/* The selection key: a pure function of the packet and the service's
 * settings (sh/mh and persistence hash the masked source). */
static __always_inline __u32 flow_hash_with(struct flow_key *f, int v6, __u32 flags, __u32 *mask)
{
	if (!(flags & SVC_HASH_SRC))
		return flow_hash5(f, v6, flags);
	__u32 h = LB_HASH_SEED;
	if (flags & SVC_HASH_MURMUR3) {
		__u32 n = 4;
		h = mm3_word(h, f->src[0] & mask[0]);
		if (v6) {
			h = mm3_word(h, f->src[1] & mask[1]);
			h = mm3_word(h, f->src[2] & mask[2]);
			h = mm3_word(h, f->src[3] & mask[3]);
			n = 16;
		}
		if (flags & SVC_HASH_PORT) {
			h = mm3_word(h, f->sport);
			n += 4;
		}
		return mix32(h ^ n);
	}
	h = mix32(h ^ (f->src[0] & mask[0]));
	h = mix32(h ^ (f->src[1] & mask[1]));
	h = mix32(h ^ (f->src[2] & mask[2]));
	h = mix32(h ^ (f->src[3] & mask[3]));
	if (flags & SVC_HASH_PORT)
		h = mix32(h ^ f->sport);
	return h;
}

/* The table position of hash h: every table has LB_RING_SIZE slots (Go
 * builds no other size), and a remainder by a constant compiles to a
 * multiplication where one by a loaded value is a division (~20 cycles). */
static __always_inline __u32 ring_slot(__u32 h, __u32 size)
{
	return size == LB_RING_SIZE ? h % LB_RING_SIZE : h % size;
}

/* Slot `slot` of service svc's table in outer (rings or new_rings); 0 when
 * the service has no table there. */
static __always_inline __u32 ring_at(void *outer, __u32 svc, __u32 slot)
{
	void *ring = bpf_map_lookup_elem(outer, &svc);
	if (!ring)
		return 0;
	__u32 ci = slot / LB_RING_CHUNK;
	struct ring_chunk *chunk = bpf_map_lookup_elem(ring, &ci);
	return chunk ? chunk->id[slot & (LB_RING_CHUNK - 1)] : 0;
}

/* Whether flow_seen has hash h's bit in either epoch of its protocol;
 * sets it in this epoch's word. The word is written only when its bit is
 * clear, so a busy flow's packets only read it; the atomic or keeps
 * another CPU's bit in the same word. */
static __always_inline int seen_mark(struct lb_config *cfg, __u32 h, int tcp)
{
	if (!cfg)
		return 1;
	__u32 k = (((h >> 6) & cfg->seen_mask) + (tcp ? cfg->seen_mask + 1 : 0)) * 2;
	__u32 k1 = k + 1;
	__u64 *even = bpf_map_lookup_elem(&flow_seen, &k);
	__u64 *odd = bpf_map_lookup_elem(&flow_seen, &k1);
	if (!even || !odd)
		return 1;
	__u64 bit = 1ULL << (h & 63);
	int was = ((*even | *odd) & bit) != 0;
	__u64 *cur = ((tcp ? cfg->seen_epoch_tcp : cfg->seen_epoch) & 1) ? odd : even;
	if (!(*cur & bit))
		__sync_fetch_and_or(cur, bit);
	return was;
}

/* Whether hash h's flow was active before the last table change. */
static __always_inline int seen_before_change(struct lb_config *cfg, __u32 h)
{
	if (!cfg)
		return 1;
	__u32 k = (cfg->seen_mask + 1) * 4 + ((h >> 6) & cfg->seen_mask);
	__u64 *snap = bpf_map_lookup_elem(&flow_seen, &k);
	return !snap || ((*snap >> (h & 63)) & 1);
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

static __always_inline int usable(struct real *rs)
{
	return rs && (rs->flags & REAL_VALID);
}

/* The flow's entry if it is still fresh; an expired one is removed (and
 * *expired set). */
static __always_inline struct flow_val *fresh_entry(struct lb_config *cfg, struct lb_percpu *pc, struct pkt *p,
						    int *expired)
{
	struct flow_val *fv = ct_lookup(&p->fk, p->v6);
	if (!fv || !cfg)
		return fv;
	__u64 timeout = cfg->udp_timeout_ns;
	if (p->fk.proto == IPPROTO_TCP)
		timeout = (fv->flags & FLOW_CLOSING) ? cfg->tcp_fin_timeout_ns : cfg->tcp_timeout_ns;
	if (timeout && p->now - fv->last_seen > timeout) {
		ct_delete(&p->fk, p->v6);
		reason(pc, R_CT_EXPIRED, p->len);
		*expired = 1;
		return NULL;
	}
	return fv;
}

/* Refreshes a live entry and notes a FIN. */
static __always_inline void touch(struct flow_val *fv, struct pkt *p)
{
	if (p->now - fv->last_seen > LB_TOUCH_NS)
		fv->last_seen = p->now;
	if (p->fin && !(fv->flags & FLOW_CLOSING)) {
		fv->flags |= FLOW_CLOSING;
		fv->last_seen = p->now;
	}
}

/* Records the flow's real (unless the packet ends or is about the flow,
 * or the budget is spent). */
static __always_inline void record(struct lb_config *cfg, struct lb_percpu *pc, struct pkt *p, __u32 rid,
				   struct real *rs, __u32 why)
{
	if (p->rst || p->icmp) {
		reason(pc, R_CT_MISS, p->len);
		return;
	}
	if (!flood_budget(cfg, pc, p->now)) {
		reason(pc, R_CT_FLOOD, p->len);
		return;
	}
	struct lb_percpu *s = percpu();
	if (!s)
		return;
	s->val = (struct flow_val){ .real_id = rid, .gen = rs->gen, .last_seen = p->now, .cifindex = p->cifindex };
	__builtin_memcpy(s->val.cmac, p->smac, ETH_ALEN);
	ct_update(&p->fk, p->v6, &s->val);
	reason(pc, why, p->len);
}

/* The real of a packet of service vm (no persistence): the table's slot
 * when it is clean, else the flow table's memory (see the top of the
 * file). Returns 0 when there is none; sets p->had_entry when the flow
 * has an entry. A global function: the verifier checks it once, on its
 * own, instead of once per path of the program that reaches it. */
__attribute__((noinline)) __u32 select_ring(struct vip_meta *vm, struct lb_config *cfg, struct lb_percpu *pc,
					    struct pkt *p)
{
	if (!vm || !pc || !p)
		return 0;
	__u32 h = p->h;
	if (!vm->ring_size)
		return 0;
	__u32 slot = ring_slot(h, vm->ring_size);
	__u32 e, rid;
	if (vm->flags & SVC_REHASHED) {
		/* Every slot is dirty; the previous real is where the
		 * previous hash put the flow. */
		__u32 ph = flow_hash_with(&p->fk, p->v6, vm->prev_flags, vm->prev_mask);
		e = ring_at(&rings, vm->id, ring_slot(ph, vm->ring_size)) | RING_DIRTY;
		/* The flows before the change were marked in flow_seen by the
		 * previous hash's version (an upgrade from mix32). */
		if ((vm->prev_flags ^ vm->flags) & SVC_HASH_MURMUR3)
			p->sh = flow_hash5(&p->fk, p->v6, vm->prev_flags);
	} else {
		e = ring_at(&rings, vm->id, slot);
	}
	rid = e & RING_ID_MASK;
	if (!(e & RING_DIRTY)) {
		reason(pc, R_RING, p->len);
		return rid;
	}
	/* Only the flow table needs the time. */
	p->now = clock_now(pc);
	int expired = 0;
	struct flow_val *fv = fresh_entry(cfg, pc, p, &expired);
	if (fv) {
		__u32 fid = fv->real_id;
		struct real *frs = bpf_map_lookup_elem(&reals, &fid);
		if (usable(frs) && frs->gen == fv->gen) {
			touch(fv, p);
			p->had_entry = 1;
			reason(pc, R_CT_HIT, p->len);
			return fid;
		}
		/* Its real left the configuration: the flow starts over. */
		rid = ring_at(&new_rings, vm->id, slot) & RING_ID_MASK;
		struct real *rs = bpf_map_lookup_elem(&reals, &rid);
		if (!rid || !usable(rs))
			return 0;
		fv->real_id = rid;
		fv->gen = rs->gen;
		fv->flags = 0;
		fv->last_seen = p->now;
		p->had_entry = 1;
		reason(pc, R_CT_STALE, p->len);
		return rid;
	}
	__u32 why = R_CT_PREV;
	if (p->syn || expired || !rid || !seen_before_change(cfg, p->sh)) {
		rid = ring_at(&new_rings, vm->id, slot) & RING_ID_MASK;
		why = R_CT_NEW;
	}
	struct real *rs = bpf_map_lookup_elem(&reals, &rid);
	if (!rid || !usable(rs))
		return 0;
	record(cfg, pc, p, rid, rs, why);
	return rid;
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

/* The real of a packet of a service with persistence: the flow table
 * first (a known flow keeps its real whatever the table says now), then a
 * fresh pin of the client, then the table; first packets are recorded
 * and pin the client. A global function, as select_ring. */
__attribute__((noinline)) __u32 select_pinned(struct vip_meta *vm, struct lb_config *cfg, struct lb_percpu *pc,
					      struct pkt *p)
{
	if (!vm || !pc || !p)
		return 0;
	__u32 h = p->h;
	struct lb_percpu *s = percpu();
	if (!s)
		return 0;
	struct persist_key *pk = &s->pkey;
	*pk = (struct persist_key){ .svc = vm->id };
	pk->src[0] = p->fk.src[0] & vm->src_mask[0];
	pk->src[1] = p->fk.src[1] & vm->src_mask[1];
	pk->src[2] = p->fk.src[2] & vm->src_mask[2];
	pk->src[3] = p->fk.src[3] & vm->src_mask[3];
	__u32 slot = vm->ring_size ? ring_slot(h, vm->ring_size) : 0;
	p->now = clock_now(pc);
	int expired = 0;
	struct flow_val *fv = fresh_entry(cfg, pc, p, &expired);
	if (fv) {
		__u32 rid = fv->real_id;
		struct real *rs = bpf_map_lookup_elem(&reals, &rid);
		if (usable(rs) && rs->gen == fv->gen) {
			reason(pc, R_CT_HIT, p->len);
		} else {
			rid = vm->ring_size ? ring_at(&rings, vm->id, slot) & RING_ID_MASK : 0;
			rs = bpf_map_lookup_elem(&reals, &rid);
			if (!rid || !usable(rs))
				return 0;
			/* Rewriting an existing entry does not grow the table:
			 * allowed under flood too. */
			fv->real_id = rid;
			fv->gen = rs->gen;
			fv->flags = 0;
			reason(pc, R_CT_STALE, p->len);
		}
		if (p->now - fv->last_seen > LB_TOUCH_NS) {
			/* The pin lasts persist_s after the client's last
			 * packet, not after its last new connection. */
			struct persist_val *pv = bpf_map_lookup_elem(&persist, pk);
			if (pv && pv->real_id == rid)
				pv->last_seen = p->now;
		}
		touch(fv, p);
		p->had_entry = 1;
		return rid;
	}
	__u64 ptimeout = (__u64)vm->persist_s * 1000000000ULL;
	struct persist_val *pv = bpf_map_lookup_elem(&persist, pk);
	__u32 rid = pinned_real(pv, p->now, ptimeout);
	int pinned = rid != 0;
	if (!rid && vm->ring_size)
		rid = ring_at(&rings, vm->id, slot) & RING_ID_MASK;
	struct real *rs = bpf_map_lookup_elem(&reals, &rid);
	if (!rid || !usable(rs))
		return 0;
	if ((p->syn || p->fk.proto == IPPROTO_UDP) && !p->rst && !p->icmp) {
		if (flood_budget(cfg, pc, p->now)) {
			s->val = (struct flow_val){ .real_id = rid, .gen = rs->gen, .last_seen = p->now,
						    .cifindex = p->cifindex };
			__builtin_memcpy(s->val.cmac, p->smac, ETH_ALEN);
			ct_update(&p->fk, p->v6, &s->val);
			if (!pinned) {
				s->pval = (struct persist_val){ .real_id = rid, .gen = rs->gen, .last_seen = p->now };
				bpf_map_update_elem(&persist, pk, &s->pval, BPF_ANY);
			}
			reason(pc, R_CT_NEW, p->len);
		} else {
			reason(pc, R_CT_FLOOD, p->len);
		}
	} else {
		reason(pc, R_CT_MISS, p->len);
	}
	return rid;
}
