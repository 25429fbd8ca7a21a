package xdp

import (
	"bytes"
	"fmt"
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
