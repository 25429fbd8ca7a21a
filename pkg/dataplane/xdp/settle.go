package xdp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// The I/O half of transition.go: turning flow_seen's epoch, clearing the
// dirty slots of services whose flows have settled, and reading the slots
// back after a restart.

// settleEvery is how often maintain looks for settled services and a due
// flow_seen epoch; settleRetry how long a scan that left slots dirty (their
// flows live on) waits before the next, since a scan reads the whole flow
// table.
const (
	settleEvery = 10 * time.Second
	settleRetry = time.Minute
)

// settleAfter is how long after a service's last change its dirty slots
// stay marked whatever the flow table says: a flow older than the change
// that has not sent a packet since (so has no entry) is still on the
// slot's previous real until it has been idle that long, when the flow
// table would have expired it too. 0: never (a timeout of 0 keeps flows
// forever).
func (b *Backend) settleAfter() time.Duration {
	o := b.opts
	if o.TCPTimeout <= 0 || o.TCPFinTimeout <= 0 || o.UDPTimeout <= 0 {
		return 0
	}
	return max(o.TCPTimeout, o.TCPFinTimeout, o.UDPTimeout)
}

// seenWords is flow_seen's number of indexes for a flow table: 8 bits per
// entry, a power of two.
func seenWords(flowTableSize uint32) uint32 {
	w := uint32(1024)
	for w < flowTableSize/8 {
		w *= 2
	}
	return w
}

// turnSeen starts a new flow_seen epoch for a protocol once its idle
// timeout has passed since its last: the coming epoch's words are cleared
// first (the program sets bits in the current epoch's only), then the
// program switches. The words are cleared one by one in the mapped map:
// the program sets bits in the other epoch's word beside each.
func (b *Backend) turnSeen(now time.Time) error {
	for _, p := range []struct {
		offset  uint32 // of the protocol's first word (bpf/lb_maps.h)
		timeout time.Duration
		epoch   *uint32
		turned  *time.Time
	}{{0, b.opts.UDPTimeout, &b.seenEpoch, &b.seenTurned}, {2 * b.seenWords, b.opts.TCPTimeout, &b.seenEpochTCP, &b.seenTurnedTCP}} {
		if p.timeout <= 0 || now.Sub(*p.turned) < p.timeout {
			continue
		}
		mem, err := b.objs.FlowSeen.Memory()
		if err != nil {
			return fmt.Errorf("flow_seen: %w", err)
		}
		next := *p.epoch + 1
		var zero [8]byte
		for i := range b.seenWords {
			if _, err := mem.WriteAt(zero[:], int64(p.offset+i*2+next&1)*8); err != nil {
				return fmt.Errorf("clear flow_seen: %w", err)
			}
		}
		*p.epoch, *p.turned = next, now
		if err := b.writeConfig(); err != nil {
			return err
		}
	}
	return nil
}

// snapshotSeen copies the flows flow_seen knows into its last words, right
// before a changed table is published: the program tells the flows older
// than the change from newer ones by them. It reads and writes the mapped
// map (a batch lookup of its words took 70 ms; this takes well under one).
func (b *Backend) snapshotSeen() error {
	mem, err := b.objs.FlowSeen.Memory()
	if err != nil {
		return fmt.Errorf("flow_seen: %w", err)
	}
	w := b.seenWords
	epochs := make([]byte, 4*w*8)
	if _, err := mem.ReadAt(epochs, 0); err != nil {
		return fmt.Errorf("read flow_seen: %w", err)
	}
	word := func(i uint32) uint64 { return binary.NativeEndian.Uint64(epochs[i*8:]) }
	snap := make([]byte, w*8)
	for i := range w {
		u, t := 2*i, 2*(w+i)
		binary.NativeEndian.PutUint64(snap[i*8:], word(u)|word(u+1)|word(t)|word(t+1))
	}
	if _, err := mem.WriteAt(snap, int64(4*w*8)); err != nil {
		return fmt.Errorf("write flow_seen: %w", err)
	}
	return nil
}

// monoNow is the clock of flow entries' last_seen (bpf_ktime_get_coarse_ns
// is CLOCK_MONOTONIC, coarse).
func monoNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}

// Settle clears the dirty slots of services whose last change is
// settleAfter old and where no live flow-table entry names a real other
// than the current table's; it returns how many slots it cleared. maintain
// runs it every settleEvery.
func (b *Backend) Settle() (int, error) {
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	after := b.settleAfter()
	if after == 0 || b.opts.FlowTracking == TrackAlways {
		return 0, nil
	}
	now := b.now()
	if now.Before(b.settleNext) {
		return 0, nil
	}
	due := map[uint32]*svcState{}
	for _, st := range b.svcs {
		if st.ring.dirty > 0 && st.ring.t != nil && now.Sub(st.ring.changed) >= after {
			due[st.id] = st
		}
	}
	if len(due) == 0 {
		return 0, nil
	}
	busy := map[uint32]map[uint32]bool{}
	mono := b.mono()
	b.eachFlowKey(func(k FlowKey, v *lbFlowVal) {
		o, ok := b.slots.owners[v.RealId]
		if !ok || b.slots.gens[v.RealId] != v.Gen || !b.live(k.Proto, v, mono) {
			return
		}
		st := b.svcs[o.svc]
		if st == nil || due[st.id] == nil {
			return
		}
		slot := flowHash(k, st.flags, st.mask) % uint32(len(st.ring.cur))
		if (st.ring.rehash || st.ring.t[slot]&ringDirty != 0) && st.ring.cur[slot] != v.RealId {
			if busy[st.id] == nil {
				busy[st.id] = map[uint32]bool{}
			}
			busy[st.id][slot] = true
		}
	})
	var list []staged
	cleared := 0
	for id, st := range due {
		t, dirty := settled(st.ring.t, st.ring.cur, busy[id])
		if st.ring.rehash {
			// All or nothing: the slots of two hashes do not match.
			if len(busy[id]) > 0 {
				continue
			}
			t, dirty = slices.Clone(st.ring.cur), 0
		}
		if dirty == st.ring.dirty {
			continue
		}
		inner, err := newRingMap(t)
		if err != nil {
			return 0, err
		}
		key := b.keyOf(st)
		vk := vipKey(key)
		var meta lbVipMeta
		if err := b.objs.Vips.Lookup(&vk, &meta); err != nil {
			inner.Close()
			return 0, fmt.Errorf("settle %s: %w", key, err)
		}
		meta.Flags &^= svcRehashed
		cleared += st.ring.dirty - dirty
		list = append(list, staged{svc: key, id: id, inner: inner, meta: meta,
			ring: ringState{t: t, cur: st.ring.cur, dirty: dirty, changed: st.ring.changed}})
	}
	if err := b.publish(list); err != nil {
		return 0, err
	}
	if len(busy) > 0 {
		b.settleNext = now.Add(settleRetry)
	}
	return cleared, nil
}

// keyOf is the service key of an installed service's state.
func (b *Backend) keyOf(st *svcState) (k dataplane.ServiceKey) {
	for key, s := range b.svcs {
		if s == st {
			return key
		}
	}
	return k
}

// live reports whether an entry is within its idle timeout.
func (b *Backend) live(proto uint8, v *lbFlowVal, mono uint64) bool {
	timeout := b.opts.UDPTimeout
	if proto == 6 {
		timeout = b.opts.TCPTimeout
		if v.Flags&uint32(lbFlowFlagsFLOW_CLOSING) != 0 {
			timeout = b.opts.TCPFinTimeout
		}
	}
	return timeout <= 0 || mono < v.LastSeen || mono-v.LastSeen <= uint64(timeout)
}

// eachFlowKey calls f with every entry of both flow tables and its key.
func (b *Backend) eachFlowKey(f func(FlowKey, *lbFlowVal)) {
	var v lbFlowVal
	var k4 lbFlowKey4
	it := b.objs.Conntrack4.Iterate()
	for it.Next(&k4, &v) {
		f(FlowKey{Src: addrFrom([4]uint32{k4.Src}, 4), Dst: addrFrom([4]uint32{k4.Dst}, 4),
			SPort: ntohs(k4.Sport), DPort: ntohs(k4.Dport), Proto: k4.Proto}, &v)
	}
	var k lbFlowKey
	it = b.objs.Conntrack.Iterate()
	for it.Next(&k, &v) {
		f(FlowKey{Src: addrFrom(k.Src, 6), Dst: addrFrom(k.Dst, 6), SPort: ntohs(k.Sport), DPort: ntohs(k.Dport),
			Proto: k.Proto}, &v)
	}
}

// adoptRing reads back what a previous halod left in a service's slots, so
// a restart during a transition keeps the dirty slots' previous reals. The
// change is dated now: the flows' ages are unknown.
func (b *Backend) adoptRing(st *svcState, meta lbVipMeta) {
	t, err := readRing(b.objs.Rings, st.id)
	if err != nil || t == nil {
		return
	}
	dirty := 0
	for _, v := range t {
		if v&ringDirty != 0 {
			dirty++
		}
	}
	cur := t
	if dirty > 0 {
		if c, err := readRing(b.objs.NewRings, st.id); err == nil && c != nil {
			cur = c
		}
	}
	st.ring = ringState{t: t, cur: cur, dirty: dirty, changed: b.now()}
	if meta.Flags&svcRehashed != 0 {
		st.ring.rehash, st.ring.prevFlags, st.ring.prevMask = true, meta.PrevFlags, meta.PrevMask
		st.ring.dirty = len(cur)
	}
}

// readRing is the table of service id in outer; nil when it has none.
func readRing(outer *ebpf.Map, id uint32) ([]uint32, error) {
	var innerID uint32
	if err := outer.Lookup(id, &innerID); err != nil {
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return nil, nil
		}
		return nil, err
	}
	inner, err := ebpf.NewMapFromID(ebpf.MapID(innerID))
	if err != nil {
		return nil, err
	}
	defer inner.Close()
	out := make([]uint32, 0, RingSize)
	var chunk lbRingChunk
	for i := range chunkKeys {
		if err := inner.Lookup(uint32(i), &chunk); err != nil {
			return nil, err
		}
		out = append(out, chunk.Id[:]...)
	}
	return out[:RingSize], nil
}
