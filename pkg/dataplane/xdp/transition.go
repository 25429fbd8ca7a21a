package xdp

// The selection rule reads no per-flow state while a service's table is
// unchanged; the flow table is the memory for when it changes. This file
// is the pure part of that (bpf/lb_select.h is the program's): what the
// rings map holds per table slot after a change, and which dirty slots a
// settled service may clear.
//
// A slot of rings holds a real id and ringDirty. A clean slot's id is the
// current table's real: every flow of the slot is on it. A dirty slot's id
// is the real the slot's flows had when they last all agreed with the
// table (its "previous" real), and the slot stays dirty while flows may
// remain elsewhere: the program then looks flows up, sends unrecorded old
// flows to the previous real and new ones to the current table's (in
// new_rings), and records both.

const (
	ringDirty   = uint32(lbRingFlagsRING_DIRTY)
	ringIDMask  = uint32(lbRingFlagsRING_ID_MASK)
	svcRehashed = uint32(lbLbFlagsSVC_REHASHED)
	// svcHashMurmur3 names the selection hash's version (hash.go).
	svcHashMurmur3 = uint32(lbLbFlagsSVC_HASH_MURMUR3)
)

// nextRing is the rings content after the table becomes cur, given what
// rings held (prev; nil for a service that had no table) and which real
// ids are still configured (valid; a slot id that left never stays a
// previous real, its flows start over on cur). It returns the content and
// the number of dirty slots.
//
// A clean slot whose real changes becomes dirty with the old real as its
// previous one; a dirty slot keeps its previous real (flows not recorded
// since are on it) and stays dirty, since flows recorded in between may be
// on any real the slot had.
func nextRing(prev, cur []uint32, valid func(id uint32) bool) ([]uint32, int) {
	out := make([]uint32, len(cur))
	if len(prev) != len(cur) {
		copy(out, cur)
		return out, 0
	}
	dirty := 0
	for i, c := range cur {
		p, d := prev[i]&ringIDMask, prev[i]&ringDirty != 0
		if p == 0 || !valid(p) {
			p = c
		}
		if d || p != c {
			out[i] = p | ringDirty
			dirty++
			continue
		}
		out[i] = c
	}
	return out, dirty
}

// allDirty is the rings content that makes the program look up every
// flow (flow_tracking always): every slot dirty, with the current real as
// the previous one, so an unrecorded flow goes where the table says.
func allDirty(cur []uint32) []uint32 {
	out := make([]uint32, len(cur))
	for i, c := range cur {
		out[i] = c | ringDirty
	}
	return out
}

// settled clears the mark of every dirty slot of t not in busy (the slots
// where a live flow-table entry names a real other than cur's), returning
// the new content and how many slots stay dirty.
func settled(t, cur []uint32, busy map[uint32]bool) ([]uint32, int) {
	out := make([]uint32, len(t))
	dirty := 0
	for i, v := range t {
		if v&ringDirty == 0 || !busy[uint32(i)] {
			out[i] = cur[i]
			continue
		}
		out[i] = v
		dirty++
	}
	return out, dirty
}

// withoutLeft is a rehashed service's previous reals (t, ids and marks)
// as ids, with those no longer configured cleared: a flow whose previous
// real left starts over on the current table.
func withoutLeft(t []uint32, configured map[uint32]bool) []uint32 {
	out := make([]uint32, len(t))
	for i, v := range t {
		if id := v & ringIDMask; configured[id] {
			out[i] = id
		}
	}
	return out
}
