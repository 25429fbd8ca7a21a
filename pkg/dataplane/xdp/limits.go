package xdp

import "time"

// Limits and the layout version of the compiled program, from enum
// lb_limits in bpf/include/lb.h (bpf2go -type): the one definition.
const (
	LayoutVersion = uint32(lbLbLimitsLB_LAYOUT_VERSION)
	// MaxServices is the default number of services (Options.MaxServices).
	MaxServices = uint32(lbLbLimitsLB_MAX_SERVICES)
	// MaxReals is the default number of (service, real) entries
	// (Options.MaxReals): a real that serves three services takes three.
	MaxReals = uint32(lbLbLimitsLB_MAX_REALS)
	// RingSize is the size of every service's Maglev table (a prime).
	RingSize = uint32(lbLbLimitsLB_RING_SIZE)
	// FlowTableSize is the default flow-table size (Options.FlowTableSize).
	FlowTableSize = uint32(lbLbLimitsLB_CT_SIZE)
	maxIfaces     = uint32(lbLbLimitsLB_MAX_IFACES)
)

// Defaults of the run-time settings: the flow timeouts are IPVS's
// (`ipvsadm --set 900 120 300`), so a flow lives as long in either backend.
const (
	DefaultTCPTimeout    = 900 * time.Second
	DefaultTCPFinTimeout = 120 * time.Second
	DefaultUDPTimeout    = 300 * time.Second
	// DefaultSYNFloodThreshold is the number of new flow-table entries per
	// second and CPU beyond which first packets are forwarded through the
	// Maglev table without being recorded (README: flood protection).
	DefaultSYNFloodThreshold = 20000
)

// Reason is a counter slot of reason_stats.
type Reason = lbLbReason

// Reasons, from the C enum.
const (
	PassNotIP     = lbLbReasonR_PASS_NOT_IP
	PassNotVIP    = lbLbReasonR_PASS_NOT_VIP
	PassFragment  = lbLbReasonR_PASS_FRAGMENT
	PassIPOptions = lbLbReasonR_PASS_IP_OPTIONS
	PassIPv6Ext   = lbLbReasonR_PASS_IPV6EXT
	PassTruncated = lbLbReasonR_PASS_TRUNCATED
	PassNoReal    = lbLbReasonR_PASS_NO_REAL
	PassNoMAC     = lbLbReasonR_PASS_NO_MAC
	TX            = lbLbReasonR_TX
	Redirect      = lbLbReasonR_REDIRECT
	CTHit         = lbLbReasonR_CT_HIT
	CTNew         = lbLbReasonR_CT_NEW
	CTMiss        = lbLbReasonR_CT_MISS
	CTFlood       = lbLbReasonR_CT_FLOOD
	CTExpired     = lbLbReasonR_CT_EXPIRED
	CTStale       = lbLbReasonR_CT_STALE
	CTClosed      = lbLbReasonR_CT_CLOSED
	DropNoTxPort  = lbLbReasonR_DROP_NO_TXPORT
	ICMPToReal    = lbLbReasonR_ICMP_TO_REAL
	NATDNAT       = lbLbReasonR_NAT_DNAT
	NATReply      = lbLbReasonR_NAT_REPLY
	PassNoNextHop = lbLbReasonR_PASS_NO_NEXTHOP
	PassTTL       = lbLbReasonR_PASS_TTL
	TUNEncap      = lbLbReasonR_TUN_ENCAP
	TUNTooBig     = lbLbReasonR_TUN_TOO_BIG
	Ring          = lbLbReasonR_RING
	CTPrev        = lbLbReasonR_CT_PREV
	numReasons    = lbLbReasonR_MAX
)

// reasonNames are the metrics labels; every reason has one (tested).
var reasonNames = map[Reason]string{PassNotIP: "pass_not_ip", PassNotVIP: "pass_not_vip", PassFragment: "pass_fragment",
	PassIPOptions: "pass_ip_options", PassIPv6Ext: "pass_ipv6_ext", PassTruncated: "pass_truncated",
	PassNoReal: "pass_no_real", PassNoMAC: "pass_no_mac", TX: "tx", Redirect: "redirect", CTHit: "ct_hit",
	CTNew: "ct_new", CTMiss: "ct_miss", CTFlood: "ct_flood", CTExpired: "ct_expired", CTStale: "ct_stale",
	CTClosed: "ct_closed", DropNoTxPort: "drop_no_txport", ICMPToReal: "icmp_to_real",
	NATDNAT: "nat_dnat", NATReply: "nat_reply", PassNoNextHop: "pass_no_nexthop", PassTTL: "pass_ttl", TUNEncap: "tun_encap", TUNTooBig: "tun_too_big",
	Ring: "ring", CTPrev: "ct_prev"}

// SeenEpochBytes is the memory one protocol's two flow_seen epochs take at
// a flow-table size: the range a packet's flow_seen read falls in.
func SeenEpochBytes(flowTableSize uint32) int { return int(seenWords(flowTableSize)) * 16 }
