package xdp

import (
	"fmt"
	"net/netip"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// vipFilterIndex is bpf/lb_maps.h's vip_filter_index: the bit of
// vip_filter that an address sets (VIPs) or tests (every packet's
// destination).
func vipFilterIndex(a netip.Addr) uint32 {
	w, _ := addrWords(a)
	return ((w[0] ^ w[1] ^ w[2] ^ w[3]) * 0x9e3779b1) >> uint32(lbLbLimitsLB_VIP_FILTER_SHIFT) & (uint32(lbLbLimitsLB_VIP_FILTER_BITS) - 1)
}

// vipFilterOf is the filter with the bit of every service address set.
func vipFilterOf(lists ...[]dataplane.Service) lbVipFilter {
	var f lbVipFilter
	for _, l := range lists {
		for _, s := range l {
			i := vipFilterIndex(s.Key.Addr)
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
