package xdp

import (
	"fmt"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// vipFilterIndex is bpf/lb_maps.h's vip_filter_index: the vip_index entry
// of a service key (installed services) or of every packet's destination
// address, port and protocol.
func vipFilterIndex(k lbVipKey) uint32 {
	x := k.Addr[0] ^ k.Addr[1] ^ k.Addr[2] ^ k.Addr[3] ^ (uint32(k.Port)<<16 | uint32(k.Proto))
	return (x * 0x9e3779b1) >> uint32(lbLbLimitsLB_VIP_FILTER_SHIFT) & (uint32(lbLbLimitsLB_VIP_FILTER_BITS) - 1)
}

const vipIndexMany = uint32(lbVipIndexFlagsVIP_INDEX_MANY)

// vipIndexOf is vip_index for services whose ids id gives: an entry with
// one service names it (id + 1), one with several sends the program to
// the vips hash map. With exact false every entry with a service does: the
// value written while the maps change, when a new service's svc_meta entry
// is not written yet and a removed one's is stale.
func vipIndexOf(id func(dataplane.ServiceKey) (uint32, bool), exact bool, lists ...[]dataplane.Service) []uint32 {
	out := make([]uint32, lbLbLimitsLB_VIP_FILTER_BITS)
	seen := map[dataplane.ServiceKey]bool{}
	for _, l := range lists {
		for _, s := range l {
			if seen[s.Key] {
				continue
			}
			seen[s.Key] = true
			i := vipFilterIndex(vipKey(s.Key))
			n, ok := id(s.Key)
			switch {
			case !exact || !ok || out[i] != 0:
				out[i] = vipIndexMany
			default:
				out[i] = n + 1
			}
		}
	}
	return out
}

// vipIndexKeys are vip_index's keys, built once.
var vipIndexKeys = func() []uint32 {
	k := make([]uint32, lbLbLimitsLB_VIP_FILTER_BITS)
	for i := range k {
		k[i] = uint32(i)
	}
	return k
}()

// writeVIPFilter replaces vip_index. A packet only ever sees the old or
// the new value of each entry, so writing the union of the old and new sets
// (as "ask the hash map") before a change and the exact entries of the new
// set after it never hides an installed VIP nor names a stale svc_meta.
func (b *Backend) writeVIPFilter(exact bool, lists ...[]dataplane.Service) error {
	idx := vipIndexOf(func(k dataplane.ServiceKey) (uint32, bool) {
		st := b.svcs[k]
		if st == nil {
			return 0, false
		}
		return st.id, true
	}, exact, lists...)
	if _, err := b.objs.VipIndex.BatchUpdate(vipIndexKeys, idx, nil); err != nil {
		return fmt.Errorf("vip_index: %w", err)
	}
	return nil
}
