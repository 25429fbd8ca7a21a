package xdp

import (
	"context"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/maglev"
)

func (b *Backend) flags(s dataplane.Service) uint32 {
	var f uint32
	switch s.Scheduler {
	case "mh", "sh":
		f = uint32(lbLbFlagsSVC_HASH_SRC)
		for _, fl := range s.SchedFlags {
			if fl == "sh-port" || fl == "mh-port" {
				f |= uint32(lbLbFlagsSVC_HASH_PORT)
			}
		}
	case "rr", "wrr":
		f = uint32(lbLbFlagsSVC_ROUND)
	default:
		// lc/wlc need connection counts per real that the fast path does
		// not keep; weighted round robin over the same weights is the
		// documented stand-in.
		if !b.warned[s.Scheduler] {
			b.warned[s.Scheduler] = true
			b.log.Warn("scheduler has no XDP equivalent; using weighted round robin", "lvs_sched", s.Scheduler, "service", s.Key.String())
		}
		f = uint32(lbLbFlagsSVC_ROUND)
	}
	if s.Persistence > 0 {
		// Client affinity by source hashing: the same client lands on the
		// same real for as long as the real set does not change.
		f = uint32(lbLbFlagsSVC_HASH_SRC)
	}
	return f
}

// Apply implements dataplane.Backend.
func (b *Backend) Apply(ctx context.Context, desired []dataplane.Service) error {
	if err := dataplane.Validate(desired); err != nil {
		return err
	}
	var errs []error
	for _, s := range desired {
		if s.Key.FWMark != 0 {
			errs = append(errs, fmt.Errorf("service %s: firewall-mark services are not supported by the XDP data plane", s.Key))
		}
		for _, r := range s.Reals {
			m := r.Method
			if m == "" {
				m = s.Method
			}
			if m != dataplane.DR {
				errs = append(errs, fmt.Errorf("service %s real %s: lb_kind %s is not supported by the XDP data plane yet (DR only)", s.Key, r.Key(), m))
			}
		}
	}
	if uint32(len(desired)) > MaxServices {
		errs = append(errs, fmt.Errorf("%d services, the XDP program holds %d", len(desired), MaxServices))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	desired = dataplane.Canonical(desired)
	// Only services that changed get a new table: a health-check verdict on
	// one service must not rewrite every service's 16k-slot table.
	changed := map[dataplane.ServiceKey]bool{}
	d := dataplane.Diff(b.installed, desired)
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
	want := map[dataplane.ServiceKey]bool{}
	for _, s := range desired {
		want[s.Key] = true
		if !changed[s.Key] && !b.missingReal(s) {
			continue
		}
		if err := b.applyService(s); err != nil {
			return err
		}
	}
	for k, st := range b.svcs {
		if want[k] {
			continue
		}
		vk := vipKey(k)
		if err := b.objs.Vips.Delete(&vk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove service %s: %w", k, err)
		}
		delete(b.svcs, k)
		_ = st
	}
	b.installed = desired
	return nil
}

// missingReal reports whether a real of s has no usable slot yet (its MAC
// could not be resolved last time), so the service must be retried.
func (b *Backend) missingReal(s dataplane.Service) bool {
	for _, r := range s.Reals {
		id, ok := b.realIDs[r.Addr]
		if !ok || isZeroMAC(b.realMACs[id].mac) {
			return true
		}
	}
	return false
}

func vipKey(k dataplane.ServiceKey) lbVipKey {
	w, fam := addrWords(k.Addr)
	return lbVipKey{Addr: w, Port: htons(k.Port), Proto: uint8(k.Proto), Family: fam}
}

func (b *Backend) applyService(s dataplane.Service) error {
	var backends []maglev.Backend
	for _, r := range s.Reals {
		id, err := b.realID(r)
		if err != nil {
			b.log.Warn("real server not usable yet", "service", s.Key.String(), "real", r.Key().String(), "err", err)
			continue
		}
		backends = append(backends, maglev.Backend{ID: id, Key: r.Addr.String(), Weight: r.Weight})
	}
	st := b.svcs[s.Key]
	if st == nil {
		id, err := b.freeServiceID()
		if err != nil {
			return err
		}
		st = &svcState{id: id, ring: 1} // the first table goes to half 0
		b.svcs[s.Key] = st
	}
	flags := b.flags(s)
	build := maglev.Table
	if flags&uint32(lbLbFlagsSVC_ROUND) != 0 {
		build = maglev.RoundRobin
	}
	table, err := build(backends, RingSize)
	if errors.Is(err, maglev.ErrEmpty) {
		table = make([]uint32, RingSize) // no real: the program passes the traffic
	} else if err != nil {
		return err
	}
	next := st.ring ^ 1
	base := (st.id*2 + next) * RingSize
	keys := make([]uint32, RingSize)
	for i := range keys {
		keys[i] = base + uint32(i)
	}
	if _, err := b.objs.Rings.BatchUpdate(keys, table, nil); err != nil {
		// Fall back to single updates where batch ops are unavailable.
		for i := range keys {
			if err := b.objs.Rings.Put(keys[i], table[i]); err != nil {
				return fmt.Errorf("write table of %s: %w", s.Key, err)
			}
		}
	}
	vk := vipKey(s.Key)
	meta := lbVipMeta{Id: st.id, Ring: next, Flags: flags}
	if err := b.objs.Vips.Put(&vk, &meta); err != nil {
		return fmt.Errorf("install service %s: %w", s.Key, err)
	}
	st.ring = next
	return nil
}

func (b *Backend) freeServiceID() (uint32, error) {
	used := map[uint32]bool{}
	for _, st := range b.svcs {
		used[st.id] = true
	}
	for id := uint32(0); id < MaxServices; id++ {
		if !used[id] {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no free service slot (max %d)", MaxServices)
}
