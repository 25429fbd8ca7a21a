// SPDX-License-Identifier: GPL-2.0
/* protocount: counts packets and bytes per protocol class in a per-CPU array
 * and passes every packet. halo uses it as the traffic sink in labs (a veth
 * peer needs an XDP program to accept redirected frames) and as the smallest
 * program that proves the bpf2go pipeline works end to end. */
#include "parse.h"

enum proto_class {
	CLASS_OTHER = 0, /* not IP, or an EtherType we do not know */
	CLASS_ARP,
	CLASS_IPV4_TCP,
	CLASS_IPV4_UDP,
	CLASS_IPV4_ICMP,
	CLASS_IPV4_OTHER,
	CLASS_IPV6_TCP,
	CLASS_IPV6_UDP,
	CLASS_IPV6_ICMP,
	CLASS_IPV6_OTHER,
	CLASS_TRUNCATED, /* a header ran past the end of the frame */
	CLASS_MAX,
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, CLASS_MAX);
	__type(key, __u32);
	__type(value, struct counter);
} proto_counters SEC(".maps");

/* Force the enum and struct into BTF so bpf2go emits Go mirrors of them. */
const enum proto_class *unused_class __attribute__((unused));

static __always_inline __u32 l4_class(__u8 proto, __u32 tcp, __u32 udp, __u32 icmp, __u32 other)
{
	switch (proto) {
	case IPPROTO_TCP:
		return tcp;
	case IPPROTO_UDP:
		return udp;
	case IPPROTO_ICMP:
	case IPPROTO_ICMPV6:
		return icmp;
	}
	return other;
}

static __always_inline __u32 classify(struct xdp_md *ctx)
{
	struct cursor c = { .pos = (void *)(long)ctx->data, .end = (void *)(long)ctx->data_end };
	struct ethhdr *eth;
	__be16 proto = parse_eth(&c, &eth);

	if (!proto)
		return CLASS_TRUNCATED;
	if (proto == bpf_htons(ETH_P_ARP))
		return CLASS_ARP;
	if (proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = cursor_take(&c, sizeof(*ip));
		if (!ip)
			return CLASS_TRUNCATED;
		return l4_class(ip->protocol, CLASS_IPV4_TCP, CLASS_IPV4_UDP, CLASS_IPV4_ICMP, CLASS_IPV4_OTHER);
	}
	if (proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = cursor_take(&c, sizeof(*ip6));
		if (!ip6)
			return CLASS_TRUNCATED;
		return l4_class(ip6->nexthdr, CLASS_IPV6_TCP, CLASS_IPV6_UDP, CLASS_IPV6_ICMP, CLASS_IPV6_OTHER);
	}
	return CLASS_OTHER;
}

SEC("xdp")
int xdp_protocount(struct xdp_md *ctx)
{
	__u32 key = classify(ctx);
	struct counter *cnt = bpf_map_lookup_elem(&proto_counters, &key);
	if (cnt) {
		cnt->packets++;
		cnt->bytes += ctx->data_end - ctx->data;
	}
	return XDP_PASS;
}

char _license[] SEC("license") = "GPL";
