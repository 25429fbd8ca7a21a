package xdp

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/maglev"
)

// Apply implements dataplane.Backend. It never wedges on one bad service:
// each service is checked on its own, services the program cannot serve
// (or beyond the limits) are skipped and reported in a
// *dataplane.SkippedError while the rest is applied. Removals run before
// additions, so a full table can always take a replacement. Neighbour
// resolution runs without the state lock.
func (b *Backend) Apply(ctx context.Context, desired []dataplane.Service) error {
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.lastDesired = dataplane.Canonical(desired)
	accepted, skipped := b.admit(b.lastDesired)
	b.resolveNew(accepted)

	b.mu.Lock()
	b.rekeyAdopted(accepted)
	// vip_index sends every VIP about to change to the hash map first, and
	// names each service's svc_meta entry once the maps hold the new set
	// (see writeVIPFilter).
	err := b.writeVIPFilter(false, b.installed, accepted)
	if err == nil {
		err = b.install(accepted)
		err = errors.Join(err, b.writeVIPFilter(err == nil, b.installed))
	}
	if err == nil {
		err = b.syncRNAT(accepted)
	}
	b.mu.Unlock()
	if err == nil {
		err = b.syncHops()
	}
	if err == nil && len(b.pending) > 0 {
		err = b.swapPending()
	}
	if len(skipped) > 0 {
		err = errors.Join(err, &dataplane.SkippedError{Skipped: skipped})
	}
	return err
}

// admit splits desired into the services this program can install and
// the ones it skips, with the reason. Within the limits, services already
// installed keep their place before new ones, so a new service can never
// push out one that is forwarding.
func (b *Backend) admit(desired []dataplane.Service) ([]dataplane.Service, map[dataplane.ServiceKey]error) {
	valid, skipped := dataplane.SplitValid(desired)
	idx := map[dataplane.ServiceKey]int{}
	var ok []dataplane.Service
	for i, s := range valid {
		if err := supported(s); err != nil {
			skipped[s.Key] = err
			continue
		}
		idx[s.Key] = i
		ok = append(ok, s)
	}
	b.mu.Lock()
	installed := map[dataplane.ServiceKey]bool{}
	for k := range b.svcs {
		installed[k] = true
	}
	b.mu.Unlock()
	slices.SortStableFunc(ok, func(x, y dataplane.Service) int {
		switch {
		case installed[x.Key] == installed[y.Key]:
			return 0
		case installed[x.Key]:
			return -1
		}
		return 1
	})
	var keep []int
	reals := uint32(0)
	for _, s := range ok {
		if uint32(len(keep)) >= b.opts.MaxServices {
			skipped[s.Key] = fmt.Errorf("service limit reached (max_services %d)", b.opts.MaxServices)
			continue
		}
		if reals+uint32(len(s.Reals)) > b.opts.MaxReals-1 {
			skipped[s.Key] = fmt.Errorf("real entry limit reached (max_reals %d)", b.opts.MaxReals-1)
			continue
		}
		reals += uint32(len(s.Reals))
		keep = append(keep, idx[s.Key])
	}
	// Back to desired's (canonical) order.
	slices.Sort(keep)
	out := make([]dataplane.Service, 0, len(keep))
	for _, i := range keep {
		out = append(out, valid[i])
	}
	return out, skipped
}

// supported reports why the program cannot serve a valid service s, or nil.
func supported(s dataplane.Service) error {
	if s.Key.FWMark != 0 {
		return errors.New("firewall-mark services are not supported by the XDP data plane")
	}
	if s.Key.Proto != dataplane.TCP && s.Key.Proto != dataplane.UDP {
		return fmt.Errorf("protocol %s is not supported by the XDP data plane (TCP and UDP)", s.Key.Proto)
	}
	if s.Key.Port == 0 {
		return errors.New("port-0 (all ports) services are not supported by the XDP data plane yet")
	}
	if uint32(len(s.Reals)) > RingSize {
		return fmt.Errorf("%d reals, a service holds at most %d", len(s.Reals), RingSize)
	}
	for _, r := range s.Reals {
		switch m := methodOf(s, r); m {
		case dataplane.DR:
		case dataplane.NAT:
			if r.Addr.Is4() != s.Key.Addr.Is4() {
				return fmt.Errorf("real %s: NAT between IPv4 and IPv6 is not supported", r.Key())
			}
		case dataplane.TUN:
			if err := tunSupported(s, r); err != nil {
				return err
			}
		default:
			return fmt.Errorf("real %s: lb_kind %s is not supported by the XDP data plane", r.Key(), m)
		}
	}
	return nil
}

// methodOf is the real's lvs_method, or the service's lb_kind.
func methodOf(s dataplane.Service, r dataplane.Real) dataplane.Method {
	if r.Method != "" {
		return r.Method
	}
	return s.Method
}

// install makes the maps hold exactly accepted. Order: services that go
// away, then reals that leave a service (their service first gets a table
// without them), then new and changed services. A kernel error stops it;
// the next Apply retries the remaining difference.
func (b *Backend) install(accepted []dataplane.Service) error {
	d := dataplane.Diff(b.installed, accepted)
	byKey := map[dataplane.ServiceKey]dataplane.Service{}
	for _, s := range b.installed {
		byKey[s.Key] = s
	}
	complete := false
	defer func() {
		if complete {
			b.installed = accepted
			return
		}
		b.installed = b.installed[:0]
		for _, s := range byKey {
			b.installed = append(b.installed, s)
		}
		b.installed = dataplane.Canonical(b.installed)
	}()

	for _, k := range d.RemoveServices {
		if err := b.removeService(k); err != nil {
			return err
		}
		delete(byKey, k)
	}
	leaving := map[dataplane.ServiceKey][]dataplane.RealKey{}
	freeing := map[dataplane.ServiceKey][]dataplane.RealKey{}
	var shrink []staged
	for _, rc := range d.RemoveReals {
		leaving[rc.Service] = append(leaving[rc.Service], rc.Real.Key())
	}
	for k, gone := range leaving {
		st := b.svcs[k]
		if st == nil {
			continue
		}
		old := byKey[k]
		kept := slices.DeleteFunc(slices.Clone(old.Reals), func(r dataplane.Real) bool { return slices.Contains(gone, r.Key()) })
		old.Reals = kept
		t, err := b.stageTable(old, st)
		if err != nil {
			return err
		}
		shrink = append(shrink, t)
		byKey[k] = old
		freeing[k] = gone
	}
	// Tables without the leaving reals are live before their slots go, so
	// no table ever names a freed slot.
	if err := b.publish(shrink); err != nil {
		return err
	}
	for k, gone := range freeing {
		st := b.svcs[k]
		for _, rk := range gone {
			if id, ok := st.reals[rk]; ok {
				b.freeSlot(id)
				delete(st.reals, rk)
			}
		}
	}
	changed := map[dataplane.ServiceKey]bool{}
	for _, s := range d.AddServices {
		changed[s.Key] = true
	}
	for _, s := range d.UpdateServices {
		changed[s.Key] = true
	}
	for _, list := range [][]dataplane.RealChange{d.AddReals, d.UpdateReals, d.RemoveReals} {
		for _, r := range list {
			changed[r.Service] = true
		}
	}
	// Only when a MAC resolved since the last install can an unchanged
	// service need its table again (checking costs a lookup per real).
	checkMACs := b.neigh.epoch != b.neigh.seen
	b.neigh.seen = b.neigh.epoch
	var grown []dataplane.Service
	for _, s := range accepted {
		if !changed[s.Key] && (!checkMACs || !b.macArrived(s)) {
			continue
		}
		grown = append(grown, s)
	}
	grow, err := b.installServices(grown)
	if err != nil {
		return err
	}
	if err := b.publish(grow); err != nil {
		return err
	}
	for _, s := range grown {
		byKey[s.Key] = s
	}
	complete = true
	return nil
}

// macArrived reports whether a real of s was written without a MAC that
// the cache now has (the retry loop resolved it).
func (b *Backend) macArrived(s dataplane.Service) bool {
	st := b.svcs[s.Key]
	if st == nil {
		return false
	}
	for _, r := range s.Reals {
		id, ok := st.reals[r.Key()]
		if !ok {
			return true
		}
		_, known := b.neigh.known[r.Addr]
		if known != b.slots.hasMAC[id] {
			return true
		}
	}
	return false
}

func (b *Backend) removeService(k dataplane.ServiceKey) error {
	st := b.svcs[k]
	if st == nil {
		return nil
	}
	vk := vipKey(k)
	if err := b.objs.Vips.Delete(&vk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("remove service %s: %w", k, err)
	}
	for _, m := range []*ebpf.Map{b.objs.Rings, b.objs.NewRings} {
		if err := m.Delete(st.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove table of %s: %w", k, err)
		}
	}
	for _, id := range st.reals {
		b.freeSlot(id)
	}
	b.svcIDs.put(st.id)
	delete(b.svcs, k)
	return nil
}

// installSlots allocates and writes s's service id and slots.
func (b *Backend) installSlots(s dataplane.Service) (staged, error) {
	st := b.svcs[s.Key]
	if st == nil {
		id, ok := b.svcIDs.get()
		if !ok {
			return staged{}, fmt.Errorf("no free service slot (max %d)", b.opts.MaxServices)
		}
		st = &svcState{id: id, reals: map[dataplane.RealKey]uint32{}}
		b.svcs[s.Key] = st
	}
	ids := make([]uint32, 0, len(s.Reals))
	vals := make([]lbReal, 0, len(s.Reals))
	for _, r := range s.Reals {
		id, ok := st.reals[r.Key()]
		if !ok {
			var err error
			if id, err = b.allocSlot(s.Key, st.id, r); err != nil {
				return staged{}, fmt.Errorf("service %s: %w", s.Key, err)
			}
			st.reals[r.Key()] = id
		}
		r.Method = methodOf(s, r)
		r.Tunnel = tunnelOf(s, r)
		b.slots.owners[id] = slotOwner{svc: s.Key, real: r.Key(), state: r}
		v, err := b.slotEntry(id, st.id, r)
		if err != nil {
			return staged{}, err
		}
		ids, vals = append(ids, id), append(vals, v)
		_, b.slots.hasMAC[id] = b.neigh.known[r.Addr]
	}
	// One write for the service's entries (one syscall, not one per real).
	if len(ids) > 0 {
		if _, err := b.objs.Reals.BatchUpdate(ids, vals, nil); err != nil {
			for i := range ids {
				if err := b.objs.Reals.Put(ids[i], &vals[i]); err != nil {
					return staged{}, fmt.Errorf("service %s: write real entry: %w", s.Key, err)
				}
			}
		}
	}
	return staged{}, nil
}

// installServices is installService for many services: slots are written
// in order, and the tables (the costly part: a Maglev fill and a map write
// per service) are built on every CPU at once. Nothing it touches is
// written concurrently: each worker reads the neighbour cache and the
// service's slots, and writes only its own inner map.
func (b *Backend) installServices(list []dataplane.Service) ([]staged, error) {
	type job struct {
		s  dataplane.Service
		st *svcState
	}
	jobs := make([]job, 0, len(list))
	for _, s := range list {
		if _, err := b.installSlots(s); err != nil {
			return nil, err
		}
		b.selection(s) // logs once per scheduler, before the workers run
		jobs = append(jobs, job{s, b.svcs[s.Key]})
	}
	out := make([]staged, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	next := make(chan int)
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				out[i], errs[i] = b.stageTable(jobs[i].s, jobs[i].st)
			}
		}()
	}
	for i := range jobs {
		next <- i
	}
	close(next)
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		for _, t := range out {
			if t.inner != nil {
				t.inner.Close()
			}
		}
		return nil, err
	}
	return out, nil
}

// buildTable is the selection rule's table: the weighted Maglev table of
// the reals that may take new flows (weight > 0, not down, usable per
// slot), keyed by the real's address and port. Slot ids are local to a
// director, but the keys are not, so two directors with the same service
// fill every table position with the same real (TestSelectionRule).
func buildTable(s dataplane.Service, slot func(dataplane.RealKey) (id uint32, usable bool)) ([]uint32, error) {
	var backends []maglev.Backend
	for _, r := range s.Reals {
		if r.Weight == 0 || r.Down {
			continue
		}
		id, ok := slot(r.Key())
		if !ok {
			continue
		}
		backends = append(backends, maglev.Backend{ID: id, Key: r.Key().String(), Weight: r.Weight})
	}
	return maglev.Table(backends, RingSize)
}

// chunkKeys are the keys of a full table, built once.
var chunkKeys = func() []uint32 {
	k := make([]uint32, lbLbLimitsLB_RING_CHUNKS)
	for i := range k {
		k[i] = uint32(i)
	}
	return k
}()

// staged is a service's new table, written into a fresh inner map and not
// yet visible to the program.
type staged struct {
	svc   dataplane.ServiceKey
	id    uint32
	inner *ebpf.Map // rings: nil: the service has no real that takes new flows
	next  *ebpf.Map // new_rings: the current table, when a slot is dirty
	meta  lbVipMeta
	ring  ringState // what st.ring becomes once published
	// changes: new_rings gets another table (flow_seen's snapshot of
	// the flows before it is taken first).
	changes bool
}

// ringState is what a service's slots hold (transition.go).
type ringState struct {
	t, cur  []uint32  // rings content (ids, ringDirty) and the current table
	dirty   int       // slots of t marked dirty (rehash: all)
	changed time.Time // when cur last changed while slots were dirty
	// rehash: the hash changed; t holds the previous reals by the
	// previous hash (prevFlags, prevMask), without marks.
	rehash    bool
	prevFlags uint32
	prevMask  [4]uint32
}

// stageTable builds s's Maglev table over its reals that have a weight, are
// up and have a MAC, works out what each slot of rings holds after the
// change (nextRing), and writes both into new inner maps.
func (b *Backend) stageTable(s dataplane.Service, st *svcState) (staged, error) {
	table, err := buildTable(s, func(rk dataplane.RealKey) (uint32, bool) {
		id, ok := st.reals[rk]
		if !ok {
			return 0, false
		}
		_, known := b.neigh.known[rk.Addr]
		return id, known
	})
	flags, mask := b.selection(s)
	out := staged{svc: s.Key, id: st.id, meta: lbVipMeta{Key: vipKey(s.Key), Id: st.id, Flags: flags, SrcMask: mask,
		PersistS: uint32((s.Persistence + time.Second - 1) / time.Second)}}
	switch {
	case errors.Is(err, maglev.ErrEmpty):
		if st.ring.t == nil || s.Persistence > 0 {
			return out, nil
		}
		// No real takes new flows, but flows on the slots' reals (down
		// or drained) go on: the slots stay as memory.
		table = make([]uint32, RingSize)
	case err != nil:
		return out, fmt.Errorf("table of %s: %w", s.Key, err)
	}
	var next ringState
	switch {
	case s.Persistence > 0:
		// The flow table is always read first for these (select_pinned).
		next.t = table
	case b.opts.FlowTracking == TrackAlways:
		next.t, next.dirty = allDirty(table), len(table)
	case st.ring.rehash || (st.ring.t != nil && (st.flags != flags || st.mask != mask)):
		// Another hash: a slot's previous real says nothing about the
		// flows the new hash puts there. rings keeps the previous reals
		// by the previous hash (that of the first change, through any
		// later ones), every slot is dirty until the change settles.
		next = ringState{rehash: true, prevFlags: st.flags, prevMask: st.mask, t: st.ring.t}
		if st.ring.rehash {
			next.prevFlags, next.prevMask = st.ring.prevFlags, st.ring.prevMask
		}
		next.t, next.dirty = withoutLeft(next.t, configuredIDs(s, st)), len(table)
	default:
		configured := configuredIDs(s, st)
		next.t, next.dirty = nextRing(st.ring.t, table, func(id uint32) bool { return configured[id] })
	}
	next.cur, next.changed = table, st.ring.changed
	if next.dirty > 0 && (!slices.Equal(table, st.ring.cur) || next.rehash != st.ring.rehash) {
		next.changed, out.changes = b.now(), true
	}
	if next.rehash {
		out.meta.Flags |= svcRehashed
		out.meta.PrevFlags, out.meta.PrevMask = next.prevFlags, next.prevMask
	}
	if out.inner, err = newRingMap(next.t); err != nil {
		return out, fmt.Errorf("table of %s: %w", s.Key, err)
	}
	if next.dirty > 0 {
		if out.next, err = newRingMap(table); err != nil {
			out.inner.Close()
			return out, fmt.Errorf("table of %s: %w", s.Key, err)
		}
	}
	out.meta.RingSize, out.ring = RingSize, next
	return out, nil
}

// configuredIDs are the slot ids of s's reals.
func configuredIDs(s dataplane.Service, st *svcState) map[uint32]bool {
	out := map[uint32]bool{}
	for _, r := range s.Reals {
		if id, ok := st.reals[r.Key()]; ok {
			out[id] = true
		}
	}
	return out
}

// newRingMap writes a table (RingSize slots) into a new inner map.
func newRingMap(table []uint32) (*ebpf.Map, error) {
	chunks := make([]lbRingChunk, len(chunkKeys))
	for i, id := range table {
		chunks[i/int(lbLbLimitsLB_RING_CHUNK)].Id[i%int(lbLbLimitsLB_RING_CHUNK)] = id
	}
	inner, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: uint32(len(chunks[0].Id) * 4),
		MaxEntries: uint32(len(chunkKeys)), Flags: unix.BPF_F_INNER_MAP})
	if err != nil {
		return nil, err
	}
	if _, err := inner.BatchUpdate(chunkKeys, chunks, nil); err != nil {
		for i := range chunks {
			if err := inner.Put(chunkKeys[i], &chunks[i]); err != nil {
				inner.Close()
				return nil, fmt.Errorf("write: %w", err)
			}
		}
	}
	return inner, nil
}

// publish makes staged tables visible: the current tables of dirty slots
// first (new_rings), then every rings table in one batch update of the
// outer map (the kernel waits one RCU grace period per update of a
// map-in-map, so one batch costs one wait, not one per service), then the
// service entries (flags, table size).
func (b *Backend) publish(list []staged) error {
	defer func() {
		for _, t := range list {
			for _, m := range []*ebpf.Map{t.inner, t.next} {
				if m != nil {
					m.Close() // the outer map holds its own reference
				}
			}
		}
	}()
	if slices.ContainsFunc(list, func(t staged) bool { return t.changes }) {
		if err := b.snapshotSeen(); err != nil {
			return err
		}
	}
	if err := putRings(b.objs.NewRings, list, func(t staged) *ebpf.Map { return t.next }); err != nil {
		return err
	}
	for _, t := range list {
		if t.inner == nil {
			if err := b.objs.Rings.Delete(t.id); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				return fmt.Errorf("clear table of %s: %w", t.svc, err)
			}
		}
	}
	if err := putRings(b.objs.Rings, list, func(t staged) *ebpf.Map { return t.inner }); err != nil {
		return err
	}
	for _, t := range list {
		if st := b.svcs[t.svc]; st != nil {
			st.ring = t.ring
			st.flags, st.mask = t.meta.Flags&^svcRehashed, t.meta.SrcMask
		}
		vk := vipKey(t.svc)
		if err := b.objs.SvcMeta.Put(t.id, &t.meta); err != nil {
			return fmt.Errorf("install service %s: %w", t.svc, err)
		}
		if err := b.objs.Vips.Put(&vk, &t.meta); err != nil {
			return fmt.Errorf("install service %s: %w", t.svc, err)
		}
	}
	return nil
}

// putRings stores the inner maps pick chooses into outer, in one batch.
func putRings(outer *ebpf.Map, list []staged, pick func(staged) *ebpf.Map) error {
	var ids, fds []uint32
	for _, t := range list {
		if m := pick(t); m != nil {
			ids = append(ids, t.id)
			fds = append(fds, uint32(m.FD()))
		}
	}
	if len(ids) == 0 {
		return nil
	}
	if _, err := outer.BatchUpdate(ids, fds, nil); err == nil {
		return nil
	}
	for _, t := range list {
		if m := pick(t); m != nil {
			if err := outer.Put(t.id, m); err != nil {
				return fmt.Errorf("install table of %s: %w", t.svc, err)
			}
		}
	}
	return nil
}

// selection maps a scheduler onto the one rule: every service resolves
// through its weighted Maglev table; what is hashed is the scheduler's
// business. sh/mh and persistence name the client (address, masked by the
// persistence granularity; plus the port with sh-port/mh-port); every
// other scheduler hashes the 5-tuple, so one client's connections still
// spread.
func (b *Backend) selection(s dataplane.Service) (flags uint32, mask [4]uint32) {
	mask, _ = addrWords(fullMask(s.Key.Addr.Is4(), 0))
	switch s.Scheduler {
	case "mh", "sh":
		flags = uint32(lbLbFlagsSVC_HASH_SRC)
		for _, fl := range s.SchedFlags {
			if fl == "sh-port" || fl == "mh-port" {
				flags |= uint32(lbLbFlagsSVC_HASH_PORT)
			}
		}
	case "rr", "wrr", "dh":
	default:
		if !b.warned[s.Scheduler] {
			b.warned[s.Scheduler] = true
			b.log.Warn("scheduler resolved through the weighted Maglev table by 5-tuple hash in XDP: "+
				"connection counts per real are not kept in the fast path, and a pure function of the flow "+
				"keeps a flow's real on every director (the IPVS backend keeps the exact semantics)",
				"lvs_sched", s.Scheduler, "service", s.Key.String())
		}
	}
	if s.Persistence > 0 {
		flags = uint32(lbLbFlagsSVC_HASH_SRC)
		mask, _ = addrWords(fullMask(s.Key.Addr.Is4(), s.PersistenceMask))
	}
	return flags | b.opts.selectionFlags(), mask
}

// selectionFlags are the flags of the selection hash's version.
func (o *Options) selectionFlags() uint32 {
	if o.SelectionHash == HashMix32 {
		return 0
	}
	return svcHashMurmur3
}

func vipKey(k dataplane.ServiceKey) lbVipKey {
	w, fam := addrWords(k.Addr)
	return lbVipKey{Addr: w, Port: htons(k.Port), Proto: uint8(k.Proto), Family: fam}
}
