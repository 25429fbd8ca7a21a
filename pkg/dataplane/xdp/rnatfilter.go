package xdp

import (
	"fmt"
)

// rnatFilterOf is rnat_filter for the reverse-NAT keys of the given
// indexes: entry vipFilterIndex(k) is 1 for every key k. The program looks
// a packet up in rnat only where its entry is set, so the filter must
// always cover every key rnat holds; an entry set for no key costs only
// the hash lookup it would have cost anyway.
func rnatFilterOf(idx ...map[lbVipKey]lbRnatVal) []uint32 {
	out := make([]uint32, lbLbLimitsLB_VIP_FILTER_BITS)
	for _, m := range idx {
		for k := range m {
			out[vipFilterIndex(k)] = 1
		}
	}
	return out
}

// writeRNATFilter makes rnat_filter hold want, writing the entries that
// differ from what this process last wrote (or read at adoption).
func (b *Backend) writeRNATFilter(want []uint32) error {
	for i, v := range want {
		if b.rnatFilter[i] == v {
			continue
		}
		if err := b.objs.RnatFilter.Put(uint32(i), v); err != nil {
			return fmt.Errorf("reverse-NAT filter: %w", err)
		}
		b.rnatFilter[i] = v
	}
	return nil
}

// adoptRNAT reads the reverse-NAT index a previous halod left in adopted
// maps and makes the filter cover it before any program of this build
// runs with them: a build that had no filter left none (a fresh, empty
// map), and until the first apply its NAT replies would otherwise go to
// the stack untranslated.
func (b *Backend) adoptRNAT() error {
	b.rnat = map[lbVipKey]lbRnatVal{}
	var k lbVipKey
	var v lbRnatVal
	it := b.objs.Rnat.Iterate()
	for it.Next(&k, &v) {
		b.rnat[k] = v
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read reverse-NAT index: %w", err)
	}
	b.rnatFilter = make([]uint32, lbLbLimitsLB_VIP_FILTER_BITS)
	for i := range b.rnatFilter {
		if err := b.objs.RnatFilter.Lookup(uint32(i), &b.rnatFilter[i]); err != nil {
			return fmt.Errorf("read reverse-NAT filter: %w", err)
		}
	}
	want := rnatFilterOf(b.rnat)
	for i, v := range b.rnatFilter {
		want[i] |= v // what is set stays set until the first sync
	}
	return b.writeRNATFilter(want)
}
