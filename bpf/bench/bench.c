// SPDX-License-Identifier: GPL-2.0
/* Programs of the benchmark harness (cmd/halo-bench, pkg/bench):
 *
 *  - xdp_gen: the packet generator, run with BPF_PROG_RUN in live-frames mode.
 *    Live-frame pages are recycled without being re-initialised, so whatever a
 *    program downstream rewrote (MACs, TTL, NAT addresses) would be sent again:
 *    the generator writes the whole header from a template on every frame, then
 *    varies the source address and port and patches the checksums.
 *  - xdp_drop_count, xdp_macswap: the baselines (count then XDP_DROP; swap the
 *    MACs, count, XDP_TX).
 *  - xdp_sink: counts what arrives and keeps a sample unicast frame, then drops
 *    it so the receiving stack costs nothing.
 */
#include <linux/types.h>
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

enum gen_limits {
	GEN_HDR_WORDS = 12, /* 96 bytes: Ethernet + IPv6 + TCP fit */
	GEN_SAMPLE = 96,    /* bytes of a sampled frame */
	GEN_FLOW_PORTS = 1 << 14,
};

enum gen_mode {
	GEN_FLOWS_FIXED = 0, /* flow = counter & flows_mask */
	GEN_FLOWS_NEW = 1,   /* every frame a flow never seen before */
};

struct gen_cfg {
	__u8 hdr[GEN_HDR_WORDS * 8];
	__u32 hdr_words;   /* 8-byte words of hdr written into each frame */
	__u32 flows_mask;  /* flows - 1, flows a power of two */
	__u32 mode;        /* enum gen_mode */
	__u16 saddr_off;   /* offset of the last 4 bytes of the source address */
	__u16 sport_off;   /* offset of the L4 source port */
	__u16 ip_csum_off; /* IPv4 header checksum; 0 for IPv6 */
	__u16 l4_csum_off;
	__u32 udp;         /* a zero UDP checksum stays zero; a computed 0 is sent as 0xffff */
};

struct sample {
	__u8 data[GEN_SAMPLE];
	__u32 len;
	__u32 seq;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct gen_cfg);
} gen_config SEC(".maps");

/* Per-CPU packet counter: frames generated, dropped, swapped or sunk. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} counter SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct sample);
} samples SEC(".maps");

/* Force the types into BTF for bpf2go. */
const struct gen_cfg *unused_cfg __attribute__((unused));
const struct sample *unused_sample __attribute__((unused));
const enum gen_limits *unused_limits __attribute__((unused));
const enum gen_mode *unused_mode __attribute__((unused));

static __always_inline __u64 bump(void)
{
	__u32 k = 0;
	__u64 *c = bpf_map_lookup_elem(&counter, &k);
	if (!c)
		return 0;
	return (*c)++;
}

static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 incremental update of a checksum over raw (memory-order) words:
 * one's-complement sums do not depend on byte order when every word is read
 * the same way. */
static __always_inline __u16 csum_replace(__u16 csum, __u32 from, __u32 to, __u16 pfrom, __u16 pto)
{
	__u32 s = (__u16)~csum;
	s += (__u16)~(from & 0xffff) + (__u16)~(from >> 16) + (to & 0xffff) + (to >> 16);
	s += (__u16)~pfrom + pto;
	return ~fold(s);
}

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	__u32 k = 0;
	struct gen_cfg *cfg = bpf_map_lookup_elem(&gen_config, &k);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (!cfg)
		return XDP_ABORTED;

	__u64 *w = data;
	for (int i = 0; i < GEN_HDR_WORDS; i++) {
		if (i >= cfg->hdr_words || (void *)(w + i + 1) > end)
			break;
		w[i] = ((__u64 *)cfg->hdr)[i];
	}

	__u64 n = bump();
	__u32 idx;
	if (cfg->mode == GEN_FLOWS_NEW)
		/* The CPU in the low bit: counters are per CPU. */
		idx = (__u32)(n << 1) | (bpf_get_smp_processor_id() & 1);
	else
		idx = (__u32)n & cfg->flows_mask;
	if (idx == 0)
		return XDP_TX; /* flow 0 is the template itself */

	__u32 so = cfg->saddr_off & 0x7f, po = cfg->sport_off & 0x7f;
	__u32 io = cfg->ip_csum_off & 0x7f, lo = cfg->l4_csum_off & 0x7f;
	if (data + so + 4 > end || data + po + 2 > end || data + io + 2 > end || data + lo + 2 > end)
		return XDP_TX;
	__u32 *sa = data + so;
	__u16 *sp = data + po;
	__u16 *ic = data + io;
	__u16 *lc = data + lo;

	__u32 oldsa = *sa, newsa = bpf_htonl(bpf_ntohl(oldsa) + (idx / GEN_FLOW_PORTS));
	__u16 oldsp = *sp, newsp = bpf_htons(1024 + (idx % GEN_FLOW_PORTS));
	*sa = newsa;
	*sp = newsp;
	if (io)
		*ic = csum_replace(*ic, oldsa, newsa, 0, 0);
	if (!(cfg->udp && *lc == 0)) {
		__u16 c = csum_replace(*lc, oldsa, newsa, oldsp, newsp);
		if (cfg->udp && c == 0)
			c = 0xffff;
		*lc = c;
	}
	return XDP_TX;
}

SEC("xdp")
int xdp_drop_count(struct xdp_md *ctx)
{
	bump();
	return XDP_DROP;
}

SEC("xdp")
int xdp_macswap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XDP_DROP;
	__u8 tmp[ETH_ALEN];
	__builtin_memcpy(tmp, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(eth->h_dest, eth->h_source, ETH_ALEN);
	__builtin_memcpy(eth->h_source, tmp, ETH_ALEN);
	bump();
	return XDP_TX;
}

SEC("xdp")
int xdp_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u64 n = bump();
	/* Only unicast frames are sampled: what the lab's kernels send on
	 * their own (MLD reports, router solicitations: multicast) reaches the
	 * sink too, and a sample of one is no frame of the scenario's. */
	__u8 *dst0 = data;
	if ((n & 1023) == 0 && (void *)(dst0 + 1) <= end && !(*dst0 & 1)) {
		__u32 k = 0;
		struct sample *s = bpf_map_lookup_elem(&samples, &k);
		if (s) {
			__u32 i;
			for (i = 0; i < GEN_SAMPLE; i++) {
				__u8 *p = data + i;
				if ((void *)(p + 1) > end)
					break;
				s->data[i] = *p;
			}
			s->len = (__u32)(end - data);
			s->seq = (__u32)n + 1;
		}
	}
	return XDP_DROP;
}

char _license[] SEC("license") = "GPL";
