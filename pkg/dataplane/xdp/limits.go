package xdp

// Limits of the compiled program, from enum lb_limits in bpf/include/lb.h.
const (
	MaxServices   = uint32(lbLbLimitsLB_MAX_SERVICES)
	MaxReals      = uint32(lbLbLimitsLB_MAX_REALS)
	RingSize      = uint32(lbLbLimitsLB_RING_SIZE)
	FlowTableSize = uint32(lbLbLimitsLB_CT_SIZE)
	maxIfaces     = uint32(lbLbLimitsLB_MAX_IFACES)
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
	numReasons    = lbLbReasonR_MAX
)
