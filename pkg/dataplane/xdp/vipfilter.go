package xdp

import (
	"fmt"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// vipFilterIndex is bpf/lb_maps.h's vip_filter_index: the bit of
// vip_filter that a service key sets (installed services) or tests (every
// packet's destination address, port and protocol).
func vipFilterIndex(k lbVipKey) uint32 {
	x := k.Addr[0] ^ k.Addr[1] ^ k.Addr[2] ^ k.Addr[3] ^ (uint32(k.Port)<<16 | uint32(k.Proto))
	return (x * 0x9e3779b1) >> uint32(lbLbLimitsLB_VIP_FILTER_SHIFT) & (uint32(lbLbLimitsLB_VIP_FILTER_BITS) - 1)
}

// vipFilterOf is the filter with the bit of every service set.
func vipFilterOf(lists ...[]dataplane.Service) lbVipFilter {
	var f lbVipFilter
	for _, l := range lists {
		for _, s := range l {
			i := vipFilterIndex(vipKey(s.Key))
			f.Bits[i/64] |= 1 << (i % 64)
		}
	}
	return f
}

// writeVIPFilter replaces the filter. A packet only ever sees the old or
// the new value of each word, so writing the union of the old and new sets
// before a change and the new set after it never hides an installed VIP.
func (b *Backend) writeVIPFilter(lists ...[]dataplane.Service) error {
	f := vipFilterOf(lists...)
	if err := b.objs.VipFilter.Put(uint32(0), &f); err != nil {
		return fmt.Errorf("vip_filter: %w", err)
	}
	return nil
}
