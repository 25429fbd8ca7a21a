package xdp

import (
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// idPool hands out ids in O(1): freed ids first (a stack), then ids never
// used. Id 0 is never handed out where first is 1 (the program reads slot
// 0 as "no real").
type idPool struct {
	next, limit uint32
	free        []uint32
}

func newIDPool(first, limit uint32) idPool { return idPool{next: first, limit: limit} }

func (p *idPool) get() (uint32, bool) {
	if n := len(p.free); n > 0 {
		id := p.free[n-1]
		p.free = p.free[:n-1]
		return id, true
	}
	if p.next >= p.limit {
		return 0, false
	}
	p.next++
	return p.next - 1, true
}

func (p *idPool) put(id uint32) { p.free = append(p.free, id) }

// rebuildPool makes a pool in which exactly the ids of used are taken
// (adoption after a restart).
func rebuildPool(used map[uint32]bool, first, limit uint32) idPool {
	p := idPool{next: first, limit: limit}
	for id := range used {
		if id >= p.next {
			p.next = id + 1
		}
	}
	for id := p.next; id > first; id-- {
		if !used[id-1] {
			p.free = append(p.free, id-1)
		}
	}
	return p
}

// slotOwner says which (service, real) a slot serves.
type slotOwner struct {
	svc   dataplane.ServiceKey
	real  dataplane.RealKey
	state dataplane.Real // as last written (weight, down)
}

// slotTable owns the reals map: one slot per (service, real). A slot's
// generation changes when it is freed and again when it is reused, and the
// flow table records the generation, so a flow never follows a slot to a
// real it was not made for.
type slotTable struct {
	ids    idPool
	gens   []uint32
	owners map[uint32]slotOwner
	hasMAC map[uint32]bool // written with a MAC
	// adopted: the maps come from an earlier process, so even ids this
	// process never handed out may hold old counters.
	adopted bool
	// rekey: adopted keys still to be matched to the configuration's
	// (adoptkeys.go); cleared by the first Apply.
	rekey  bool
	byAddr map[netip.Addr]map[uint32]bool
}

func newSlotTable(limit uint32) slotTable {
	return slotTable{ids: newIDPool(1, limit), gens: make([]uint32, limit), owners: map[uint32]slotOwner{}, hasMAC: map[uint32]bool{},
		byAddr: map[netip.Addr]map[uint32]bool{}}
}

// allocSlot takes a slot for r in service svc (id svcID); the caller
// writes its entry. Its counters start at zero even when the id served
// another real before.
func (b *Backend) allocSlot(svc dataplane.ServiceKey, svcID uint32, r dataplane.Real) (uint32, error) {
	reused := len(b.slots.ids.free) > 0 || b.slots.adopted
	id, ok := b.slots.ids.get()
	if !ok {
		return 0, fmt.Errorf("no free real entry (max %d)", b.opts.MaxReals-1)
	}
	if reused {
		// Never-used ids of maps this process created are zero already.
		zero := make([]lbCounter, ebpf.MustPossibleCPU())
		if err := b.objs.RealStats.Put(id, zero); err != nil {
			b.slots.ids.put(id)
			return 0, fmt.Errorf("reset counters of real entry %d: %w", id, err)
		}
	}
	b.slots.gens[id]++
	b.slots.owners[id] = slotOwner{svc: svc, real: r.Key(), state: r}
	if b.slots.byAddr[r.Addr] == nil {
		b.slots.byAddr[r.Addr] = map[uint32]bool{}
	}
	b.slots.byAddr[r.Addr][id] = true
	return id, nil
}

// writeSlot writes a slot's entry from the neighbour cache and the real's
// state (REAL_NEW_FLOWS: weight, down; persistence pins need it): without a MAC
// the entry is valid (its flows are recognised) but marked unresolved, so
// the program passes rather than send a frame with an empty MAC, and the
// table leaves it out.
func (b *Backend) writeSlot(id, svcID uint32, real dataplane.Real) error {
	r, err := b.slotEntry(id, svcID, real)
	if err != nil {
		return err
	}
	if err := b.objs.Reals.Put(id, &r); err != nil {
		return fmt.Errorf("write real %s: %w", real.Key(), err)
	}
	return nil
}

// slotEntry is a slot's map value (and registers its egress interface).
func (b *Backend) slotEntry(id, svcID uint32, real dataplane.Real) (lbReal, error) {
	rk := real.Key()
	w, fam := addrWords(rk.Addr)
	port := rk.Port
	if port == 0 {
		port = b.slots.owners[id].svc.Port // 0: the service's port
	}
	method := lbLbMethodMETHOD_DR
	switch real.Method {
	case dataplane.NAT:
		method = lbLbMethodMETHOD_NAT
	case dataplane.TUN:
		method = lbLbMethodMETHOD_TUN
	}
	r := lbReal{Addr: w, Family: fam, Flags: uint8(lbRealFlagsREAL_VALID), Gen: b.slots.gens[id], Svc: svcID,
		Port: htons(port), Method: uint8(method)}
	gueEntry(&r, real)
	if n, ok := b.neigh.known[rk.Addr]; ok {
		copy(r.Mac[:], n.mac)
		r.Ifindex = uint32(n.ifindex)
		r.Flags |= uint8(lbRealFlagsREAL_HAS_MAC)
		if real.Weight > 0 && !real.Down {
			r.Flags |= uint8(lbRealFlagsREAL_NEW_FLOWS)
		}
		eg, err := b.egress(n.ifindex)
		if err != nil {
			return r, err
		}
		r.Egress = eg
	}
	return r, nil
}

// freeSlot invalidates a slot: flows that still name it re-resolve.
func (b *Backend) freeSlot(id uint32) {
	o := b.slots.owners[id]
	b.slots.gens[id]++
	r := lbReal{Gen: b.slots.gens[id]}
	if err := b.objs.Reals.Put(id, &r); err != nil {
		b.log.Error("invalidate real entry", "slot", id, "err", err)
	}
	// The entry counts nothing more (a packet already past the check on
	// another CPU at most); its service keeps what it counted.
	if st := b.svcs[o.svc]; st != nil {
		c := sumCounter(b.objs.RealStats, id)
		st.retired.Packets += c.Packets
		st.retired.Bytes += c.Bytes
	}
	delete(b.slots.owners, id)
	delete(b.slots.hasMAC, id)
	if m := b.slots.byAddr[o.real.Addr]; m != nil {
		delete(m, id)
		if len(m) == 0 {
			delete(b.slots.byAddr, o.real.Addr)
		}
	}
	b.slots.ids.put(id)
}
