/* SPDX-License-Identifier: GPL-2.0 */
/* The one definition of halo's XDP load balancer's limits, enums and map
 * value layouts. bpf2go exports every type named here with -type, so the Go
 * side (pkg/dataplane/xdp) reads them from the generated file and a test
 * checks the loaded maps against them: nothing is written twice. */
#pragma once

#include <linux/types.h>

/* Compiled-in sizes: the defaults the committed object carries. The Go side
 * resizes vips/reals/conntrack before loading when configured to, and pins
 * the maps in a directory named after the layout version and the sizes, so
 * a halod with another layout builds fresh maps beside the running ones. */
enum lb_limits {
	LB_LAYOUT_VERSION = 8, /* bump whenever a pinned map's key, value or type changes */
	LB_MAX_SERVICES = 1024,
	LB_MAX_REALS = 131072, /* (service, real) entries: a real in 3 services takes 3 */
	LB_RING_SIZE = 16381,  /* largest per-service Maglev table; prime (pkg/maglev) */
	LB_RING_CHUNK = 16,    /* table slots per map element (see struct ring_chunk) */
	LB_RING_CHUNKS = (16381 + 15) / 16,
	LB_CT_SIZE = 262144,
	LB_PERSIST_SIZE = 65536, /* persistence pins (client or client network, service) */
	LB_MAX_IFACES = 64,
	LB_MAX_VLAN_TAGS = 2, /* 802.1Q, or 802.1ad outer + 802.1Q inner (QinQ) */
	LB_MAX_RNAT = 131072, /* reverse-NAT index: one per (real address, port, protocol) */
	LB_MAX_NEXTHOPS = 1024, /* routes towards clients for NAT replies of unseen flows */
	LB_MAX_NH_WANTED = 1024, /* client addresses a NAT reply found no next hop for */
	LB_VIP_FILTER_BITS = 4096, /* vip_index entries: a power of two */
	LB_VIP_FILTER_SHIFT = 20,  /* 32 - log2(LB_VIP_FILTER_BITS) */
	LB_SEEN_GROUP = 5,         /* flow_seen words per index: UDP even/odd, TCP even/odd, before the change (lb_maps.h) */
	LB_SEEN_WORDS = 32768,     /* flow_seen indexes (a power of two: 8 bits per flow-table entry) */
	LB_MAX_CLIENT_NH = 65536,  /* client_nh: NAT clients whose next hop is remembered */
};

/* A Maglev table slot (struct ring_chunk) holds a real's id, and
 * RING_DIRTY when the slot's real changed since the service's flows were
 * last known to agree with the table (see bpf/lb_select.h). */
enum ring_flags {
	RING_ID_MASK = (1 << 24) - 1,
	RING_DIRTY = 1 << 30,
};

enum lb_flags {
	SVC_HASH_SRC = 1 << 0,  /* sh, mh, persistence: hash the (masked) source address only */
	SVC_HASH_PORT = 1 << 1, /* with SVC_HASH_SRC: add the source port (sh-port, mh-port) */
	SVC_REHASHED = 1 << 2,  /* the hash changed: every slot is dirty, and rings holds the
				 * previous reals by the previous hash (prev_flags, prev_mask) */
	SVC_HASH_MURMUR3 = 1 << 3, /* the hash is murmur3 over the key's words; without it, the
				    * mix32 chain of halo before layout v9 (selection_hash mix32) */
};

enum real_flags {
	REAL_VALID = 1 << 0,   /* the slot is in use; its gen is current */
	REAL_HAS_MAC = 1 << 1, /* the neighbour is resolved: frames may be sent */
	REAL_NEW_FLOWS = 1 << 2, /* weight > 0, up, MAC known: may take new flows (and persistence pins) */
	REAL_TUN_CSUM = 1 << 3,  /* GUE `csum`: the outer UDP checksum is computed over IPv4 too */
};

/* How a real is reached: DR (MAC rewrite), NAT (DNAT, replies translated
 * back through the reverse-NAT index) and TUN (ipip / ip6ip6). */
enum lb_method {
	METHOD_DR = 0,
	METHOD_NAT = 1,
	METHOD_TUN = 2,
	METHOD_GUE = 3, /* TUN in outer IP + UDP to port + GUE (bpf/lb_tun.h) */
};

enum flow_flags {
	FLOW_CLOSING = 1 << 0, /* a FIN was seen: the shorter timeout applies */
};

/* Why a packet left as it did. Several may count for one packet (a flow-table
 * hit that is then transmitted counts R_CT_HIT and R_TX). Append only: the
 * names are metrics labels. */
enum lb_reason {
	R_PASS_NOT_IP = 0,
	R_PASS_NOT_VIP,
	R_PASS_FRAGMENT,
	R_PASS_IP_OPTIONS,
	R_PASS_IPV6_EXT,
	R_PASS_TRUNCATED,
	R_PASS_NO_REAL,
	R_PASS_NO_MAC,
	R_TX,
	R_REDIRECT,
	R_CT_HIT,
	R_CT_NEW,
	R_CT_MISS,       /* mid-flow packet without an entry: forwarded by the table, not recorded */
	R_CT_FLOOD,      /* first packet while the new-entry budget is spent: forwarded, not recorded */
	R_CT_EXPIRED,    /* entry older than its idle timeout: dropped from the table */
	R_CT_STALE,      /* entry's real left the configuration: re-resolved */
	R_CT_CLOSED,     /* RST: entry removed after forwarding */
	R_DROP_NO_TXPORT, /* redirect target not in the devmap: dropped, not counted as a redirect */
	R_ICMP_TO_REAL,   /* ICMP error about a VIP flow, sent to that flow's real */
	R_NAT_DNAT,       /* client -> VIP:vport rewritten to client -> real:rport */
	R_NAT_REPLY,      /* real:rport -> client rewritten to VIP:vport -> client */
	R_PASS_NO_NEXTHOP, /* NAT reply whose client has no known next hop: untouched */
	R_PASS_TTL,       /* NAT packet whose TTL/hop limit would expire: the stack answers */
	R_TUN_ENCAP,      /* encapsulated (ipip / ip6ip6) to a TUN real */
	R_TUN_TOO_BIG,    /* too big once encapsulated: ICMP frag-needed / packet-too-big sent back */
	R_RING,           /* real taken from the service's table, no flow-table lookup (the slot is clean) */
	R_CT_PREV,        /* flow older than the table change, no entry: kept on the slot's previous real, recorded */
	R_MAX,
};

struct vip_key {
	__u32 addr[4]; /* IPv4 in addr[0], the rest zero */
	__u16 port;    /* network order */
	__u8 proto;
	__u8 family;   /* 4 or 6 */
};

/* vip_index: per hash of a service's (address, port, protocol)
 * (vip_filter_index), 0 when no service hashes there, the service id + 1
 * when exactly one does (its entry in svc_meta, key checked), VIP_INDEX_MANY
 * when several do or while Go changes the set (the vips hash map decides).
 * A packet whose destination's entry is 0 is no service's and skips the
 * flow-table and service lookups (it may still be a NAT reply). */
enum vip_index_flags {
	VIP_INDEX_MANY = 1 << 30,
};

struct vip_meta {
	struct vip_key key; /* the service (svc_meta is checked against it) */
	__u32 id;        /* service index: rings, new_rings, svc_meta */
	__u32 flags;     /* enum lb_flags */
	__u32 ring_size; /* slots of this service's table (prime) */
	__u32 persist_s; /* persistence_timeout in seconds; 0: none */
	__u32 src_mask[4]; /* persistence granularity, applied with SVC_HASH_SRC */
	__u32 prev_flags;  /* SVC_REHASHED: the hash rings is indexed by */
	__u32 prev_mask[4];
};

/* One (service, real) entry. gen changes whenever the slot is freed or
 * reused, so a flow entry that names a slot also names the generation it
 * was made with and never follows a reused slot to another real. */
/* Table slots are stored 16 to an element: an array rounds each value up
 * to 8 bytes, so one u32 per element would double the memory, and writing
 * a table is then 1,024 element updates instead of 16,381. */
struct ring_chunk {
	__u32 id[LB_RING_CHUNK];
};

struct real {
	__u32 addr[4];
	__u8 mac[6];
	__u8 family;
	__u8 flags;    /* enum real_flags */
	__u32 ifindex; /* egress interface */
	__u32 gen;
	__u32 svc;     /* owning service id (adoption after a restart) */
	__u16 port;    /* network order; NAT target port; GUE: UDP destination port */
	__u8 method;   /* enum lb_method */
	__u8 egress;   /* ifindex's entry in egress_ifs and tx_slots; 0: none (if_macs, tx_ports) */
};

/* An egress interface, by the small index reals carry (struct real's
 * egress): its MAC and ifindex in an array the program reads inline, where
 * if_macs (by ifindex) is a hash lookup per redirected frame. */
struct egress_if {
	__u8 mac[6];
	__u8 pad[2];
	__u32 ifindex; /* checked against the real's: a stale index falls back */
};

struct flow_key {
	__u32 src[4];
	__u32 dst[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

/* An IPv4 flow's key: struct flow_key's fields in 16 bytes instead of
 * 40, in a table of its own (conntrack4), because the kernel hashes and
 * compares the whole key on every lookup. */
struct flow_key4 {
	__u32 src;
	__u32 dst;
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 pad[3];
};

struct flow_val {
	__u32 real_id;
	__u32 gen;
	__u64 last_seen; /* bpf_ktime_get_ns, refreshed at most every LB_TOUCH_NS */
	__u32 flags;     /* enum flow_flags */
	__u32 cifindex;  /* NAT: interface the client's first packet came in on */
	__u8 cmac[6];    /* NAT: that packet's source MAC (the client's next hop) */
	__u16 pad;
};

/* Reverse-NAT index value: a reply from (real address, real port,
 * protocol), the key being a struct vip_key, leaves from VIP:vport. Only
 * written when exactly one NAT service uses that real address and port. */
struct rnat_val {
	__u32 vip[4];
	__u16 vport; /* network order */
	__u8 family;
	__u8 pad;
	__u32 svc;
};

/* Next hop towards a client network (LPM key: IPv4 as ::ffff:a.b.c.d). */
struct nh_key {
	__u32 prefixlen;
	__u32 addr[4];
};

struct nh_val {
	__u32 ifindex;
	__u8 mac[6];
	__u8 egress; /* ifindex's entry in egress_ifs and tx_slots; 0: none (if_macs, tx_ports) */
	__u8 pad;
};

/* A persistence pin: a client (source masked by the granularity) of a
 * service stays on one real for persist_s after its last packet. */
struct persist_key {
	__u32 svc;
	__u32 src[4];
};

struct persist_val {
	__u32 real_id;
	__u32 gen;
	__u64 last_seen;
};

/* Run-time settings (one entry), written by Go at start. Timeouts of 0
 * disable idle expiry for that class (the LRU still evicts). */
struct lb_config {
	__u64 tcp_timeout_ns;
	__u64 tcp_fin_timeout_ns;
	__u64 udp_timeout_ns;
	__u32 flood_threshold; /* new entries per second per CPU; 0: no limit */
	__u32 seen_epoch;      /* flow_seen, UDP: this epoch's bits are the odd words when odd */
	__u32 seen_epoch_tcp;  /* the same for TCP */
	__u32 seen_mask;       /* flow_seen indexes - 1 */
};

struct flood_state {
	__u64 window_start;
	__u64 count;
};

struct counter {
	__u64 packets;
	__u64 bytes;
};

/* The per-CPU state of the data path, the one element of reason_stats: a
 * packet looks it up once and then counts its reasons, spends its
 * new-entry budget and reads the clock without another lookup. The clock
 * is bpf_ktime_get_coarse_ns, which only moves when jiffies tick: it is
 * read once per tick (bpf_jiffies64 is one load, the helper a call). */
struct lb_percpu {
	struct counter reasons[R_MAX]; /* indexed by enum lb_reason */
	struct flood_state flood;
	__u64 jiffies; /* bpf_jiffies64 when now was read */
	__u64 now;     /* bpf_ktime_get_coarse_ns at that tick */
	/* Scratch space of the selection (map keys and values built here,
	 * not on a stack the program and the selection share). */
	struct flow_key key;   /* an IPv6 flow-table key (lb_maps.h) */
	struct flow_val val;   /* a flow-table entry being written */
	struct persist_key pkey;
	struct persist_val pval;
};
