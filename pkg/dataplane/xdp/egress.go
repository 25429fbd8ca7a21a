package xdp

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// egressSlots hands out the small indexes a real's or a next hop's entry
// carries for its egress interface (struct real's and struct nh_val's
// egress; the program copies if_macs' into the client_nh entries it
// writes): the program reads the interface's MAC from egress_ifs and
// redirects through tx_slots, two array reads, where if_macs and tx_ports
// are a hash lookup each.
type egressSlots struct {
	byIf map[uint32]uint8
	pool idPool
	// written: the MAC last written for an interface; every real's entry
	// registers its interface again, and rewriting four map entries (two
	// devmap entries, each a new allocation freed after RCU) per real
	// would be most of an apply's map writes for nothing.
	written map[uint32][]byte
}

func newEgressSlots() egressSlots {
	// Index 0 means none: the program then uses if_macs and tx_ports.
	return egressSlots{byIf: map[uint32]uint8{}, pool: newIDPool(1, maxIfaces), written: map[uint32][]byte{}}
}

// egress registers an egress interface (a real's, or one the program is
// attached to, where NAT replies and reals on another dataplane interface
// go): the devmaps must hold it and the program needs its MAC as source.
// It returns the interface's index in egress_ifs, or 0 when every index
// is taken (the program then finds the interface by its ifindex).
func (b *Backend) egress(ifindex int) (uint8, error) {
	if ifindex == 0 {
		return 0, nil
	}
	ifi, err := netInterfaceByIndex(ifindex)
	if err != nil {
		return 0, nil // gone: the program drops with drop_no_txport
	}
	k := uint32(ifindex)
	if idx, ok := b.egr.byIf[k]; ok && bytes.Equal(b.egr.written[k], ifi.HardwareAddr) {
		return idx, nil
	}
	if err := b.objs.TxPorts.Put(k, k); err != nil {
		return 0, fmt.Errorf("devmap %s: %w", ifi.Name, err)
	}
	idx, known := b.egr.byIf[k]
	if !known {
		if id, free := b.egr.pool.get(); free {
			idx = uint8(id)
		}
	}
	if idx != 0 {
		// The devmap first: an entry that names the interface is
		// complete once the program can read it.
		if err := b.objs.TxSlots.Put(uint32(idx), k); err != nil {
			if !known {
				b.egr.pool.put(uint32(idx))
			}
			return 0, fmt.Errorf("devmap %s: %w", ifi.Name, err)
		}
		e := lbEgressIf{Ifindex: k}
		copy(e.Mac[:], ifi.HardwareAddr)
		if err := b.objs.EgressIfs.Put(uint32(idx), &e); err != nil {
			return 0, err
		}
	}
	// if_macs last: it carries the index (0 when every index is taken)
	// for the client entries the program writes (note_client), so the
	// index's own entries must be complete first.
	m := lbReal{Egress: idx}
	copy(m.Mac[:], ifi.HardwareAddr)
	if err := b.objs.IfMacs.Put(k, &m); err != nil {
		return 0, err
	}
	if idx != 0 {
		b.egr.byIf[k] = idx
		b.egr.written[k] = bytes.Clone(ifi.HardwareAddr)
	}
	return idx, nil
}

// adoptEgress takes over the indexes a previous halod handed out (the
// adopted real entries carry them).
func (b *Backend) adoptEgress() error {
	used := map[uint32]bool{}
	var i uint32
	var e lbEgressIf
	it := b.objs.EgressIfs.Iterate()
	for it.Next(&i, &e) {
		if i == 0 || e.Ifindex == 0 {
			continue
		}
		used[i] = true
		b.egr.byIf[e.Ifindex] = uint8(i)
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("adopt egress interfaces: %w", err)
	}
	b.egr.pool = rebuildPool(used, 1, maxIfaces)
	return nil
}

// refreshEgress keeps the registered egress interfaces true to the system.
// An interface whose MAC changed is written again: a real's entry is
// rewritten only when the real changes and an interface no real uses
// (where NAT replies leave) never is, so frames would keep the old source
// MAC. An interface that is gone gives back its if_macs entry and its
// index: both hold maxIfaces, and interfaces (VLANs, bonds, veths) come
// and go over a long uptime; without this, egress() would fail once
// if_macs is full. A real or client entry still carrying a freed index
// names another ifindex than the index's next interface, so the program
// falls back to the ifindex-keyed maps, where the gone interface has no
// entry: drop_no_txport, as for any gone interface. maintain runs it with
// the neighbour refresh.
func (b *Backend) refreshEgress() error {
	ifs, err := netInterfaces()
	if err != nil {
		return fmt.Errorf("list interfaces: %w", err)
	}
	now := map[uint32][6]byte{}
	for _, ifi := range ifs {
		var m [6]byte
		copy(m[:], ifi.HardwareAddr)
		now[uint32(ifi.Index)] = m
	}
	known := map[uint32][6]byte{}
	var k uint32
	var m lbReal
	it := b.objs.IfMacs.Iterate()
	for it.Next(&k, &m) {
		known[k] = m.Mac
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("read if_macs: %w", err)
	}
	for k := range b.egr.byIf {
		if _, ok := known[k]; !ok {
			known[k] = [6]byte{}
		}
	}
	var errs []error
	for k, old := range known {
		mac, ok := now[k]
		switch {
		case !ok:
			errs = append(errs, b.releaseEgress(k))
		case mac != old:
			delete(b.egr.written, k)
			_, err := b.egress(int(k))
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// releaseEgress forgets a gone interface. Its egress_ifs entry is cleared
// before its index can go to another interface.
func (b *Backend) releaseEgress(k uint32) error {
	if err := b.objs.IfMacs.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("if_macs: %w", err)
	}
	// The kernel empties devmap entries of an interface it unregisters.
	if err := b.objs.TxPorts.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("tx_ports: %w", err)
	}
	idx, ok := b.egr.byIf[k]
	if !ok {
		return nil
	}
	if err := b.objs.EgressIfs.Put(uint32(idx), &lbEgressIf{}); err != nil {
		return fmt.Errorf("egress_ifs: %w", err)
	}
	if err := b.objs.TxSlots.Delete(uint32(idx)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		return fmt.Errorf("tx_slots: %w", err)
	}
	delete(b.egr.byIf, k)
	delete(b.egr.written, k)
	b.egr.pool.put(uint32(idx))
	return nil
}
