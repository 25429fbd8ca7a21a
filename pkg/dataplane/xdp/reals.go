package xdp

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// realID returns the real's slot, writing the entry (with its MAC) the
// first time. Slots of reals that leave every service stay valid so the
// flows the connection table still sends there can finish.
func (b *Backend) realID(r dataplane.Real) (uint32, error) {
	if id, ok := b.realIDs[r.Addr]; ok {
		if info := b.realMACs[id]; info.mac != nil && !isZeroMAC(info.mac) {
			return id, nil
		}
	}
	mac, ifindex := r.MAC, 0
	if mac == nil {
		var err error
		mac, ifindex, err = b.opts.ResolveMAC(r.Addr)
		if err != nil {
			return 0, err
		}
	}
	id, ok := b.realIDs[r.Addr]
	if !ok {
		for cand := uint32(1); cand < MaxReals; cand++ {
			if !b.idUsed(cand) {
				id = cand
				break
			}
		}
		if id == 0 {
			return 0, fmt.Errorf("no free real slot (max %d)", MaxReals-1)
		}
	}
	if err := b.writeReal(id, r.Addr, mac, ifindex); err != nil {
		return 0, err
	}
	b.realIDs[r.Addr] = id
	return id, nil
}

func (b *Backend) idUsed(id uint32) bool {
	for _, x := range b.realIDs {
		if x == id {
			return true
		}
	}
	return false
}

func isZeroMAC(m net.HardwareAddr) bool {
	for _, x := range m {
		if x != 0 {
			return false
		}
	}
	return true
}

func (b *Backend) writeReal(id uint32, a netip.Addr, mac net.HardwareAddr, ifindex int) error {
	w, fam := addrWords(a)
	r := lbReal{Addr: w, Family: fam, Valid: 1, Ifindex: uint32(ifindex)}
	copy(r.Mac[:], mac)
	if ifindex != 0 && !b.ingress(ifindex) {
		// Another interface: the devmap must know it and the program
		// needs its MAC for the source address.
		if ifi, err := net.InterfaceByIndex(ifindex); err == nil {
			var m lbReal
			copy(m.Mac[:], ifi.HardwareAddr)
			k := uint32(ifindex)
			if err := b.objs.IfMacs.Put(k, &m); err != nil {
				return err
			}
			if err := b.objs.TxPorts.Put(k, k); err != nil {
				return fmt.Errorf("devmap %s: %w", ifi.Name, err)
			}
		}
	}
	if err := b.objs.Reals.Put(id, &r); err != nil {
		return fmt.Errorf("write real %s: %w", a, err)
	}
	b.realMACs[id] = realInfo{mac: append(net.HardwareAddr(nil), mac...), ifindex: ifindex}
	return nil
}

func (b *Backend) ingress(ifindex int) bool {
	for name := range b.links {
		if ifi, err := net.InterfaceByName(name); err == nil && ifi.Index == ifindex {
			return true
		}
	}
	return len(b.links) == 0
}
