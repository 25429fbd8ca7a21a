package xdp

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// rnatIndex is the reverse-NAT index the program reads for replies: a
// (real address, real port, protocol) used by exactly one NAT service maps
// to that service's VIP and port. It is derived from the configuration
// alone, so every director with the same configuration translates the
// replies of flows it never saw (after a failover). A real address and
// port shared by NAT services of different VIPs is ambiguous: its replies
// are left to the stack (rnatAmbiguous lists them for the logs).
func rnatIndex(services []dataplane.Service, ids map[dataplane.ServiceKey]uint32) (idx map[lbVipKey]lbRnatVal, ambiguous []string) {
	idx = map[lbVipKey]lbRnatVal{}
	bad := map[lbVipKey]bool{}
	for _, s := range services {
		for _, r := range s.Reals {
			if methodOf(s, r) != dataplane.NAT {
				continue
			}
			port := r.Port
			if port == 0 {
				port = s.Key.Port
			}
			w, fam := addrWords(r.Addr)
			k := lbVipKey{Addr: w, Port: htons(port), Proto: uint8(s.Key.Proto), Family: fam}
			vw, vfam := addrWords(s.Key.Addr)
			v := lbRnatVal{Vip: vw, Vport: htons(s.Key.Port), Family: vfam, Svc: ids[s.Key]}
			if old, ok := idx[k]; ok && (old.Vip != v.Vip || old.Vport != v.Vport) {
				if !bad[k] {
					ambiguous = append(ambiguous, fmt.Sprintf("%s/%s", dataplane.RealKey{Addr: r.Addr, Port: port}, s.Key.Proto))
				}
				bad[k] = true
			}
			idx[k] = v
		}
	}
	for k := range bad {
		delete(idx, k)
	}
	return idx, ambiguous
}

// syncRNAT makes the rnat map hold the index of the installed services.
// Called with mu held, after a complete install.
func (b *Backend) syncRNAT(installed []dataplane.Service) error {
	ids := map[dataplane.ServiceKey]uint32{}
	for k, st := range b.svcs {
		ids[k] = st.id
	}
	want, ambiguous := rnatIndex(installed, ids)
	for _, a := range ambiguous {
		if !b.warned["rnat "+a] {
			b.warned["rnat "+a] = true
			b.log.Warn("real address and port serve NAT services of different VIPs: replies of flows this "+
				"director did not see cannot be attributed and are left to the kernel", "real", a)
		}
	}
	if b.rnat == nil {
		if err := b.adoptRNAT(); err != nil {
			return err
		}
	}
	// The filter covers old and new keys while the index changes, and
	// exactly the new ones after.
	if err := b.writeRNATFilter(rnatFilterOf(b.rnat, want)); err != nil {
		return err
	}
	for k := range b.rnat {
		if _, ok := want[k]; ok {
			continue
		}
		if err := b.objs.Rnat.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("reverse-NAT index: %w", err)
		}
		delete(b.rnat, k)
	}
	for k, v := range want {
		if old, ok := b.rnat[k]; ok && old == v {
			continue
		}
		if err := b.objs.Rnat.Put(&k, &v); err != nil {
			return fmt.Errorf("reverse-NAT index: %w", err)
		}
		b.rnat[k] = v
	}
	return b.writeRNATFilter(rnatFilterOf(want))
}
