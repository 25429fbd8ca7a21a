package xdp

import (
	"slices"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// rekeyAdopted gives adopted slots the keys the configuration uses. The
// maps hold a real's effective port, which for a real configured without
// one is the service's: read back, such a real is (address, service port)
// where the configuration says (address, 0), and the diff would free its
// slot and allocate another, with a new generation and a new id in every
// table slot, so the flows a dirty slot remembers would lose their real.
// A slot is renamed only when the configuration has the port-less real and
// not the same address with the service's port spelled out. Called under
// b.mu before the install of accepted; only the first Apply after
// adoption has anything to match (later ones start from the config's keys).
func (b *Backend) rekeyAdopted(accepted []dataplane.Service) {
	if !b.slots.rekey {
		return
	}
	b.slots.rekey = false
	byKey := make(map[dataplane.ServiceKey]*dataplane.Service, len(accepted))
	for i := range accepted {
		byKey[accepted[i].Key] = &accepted[i]
	}
	for i, s := range b.installed {
		st := b.svcs[s.Key]
		want := byKey[s.Key]
		if st == nil || want == nil {
			continue
		}
		wanted := map[dataplane.RealKey]bool{}
		for _, r := range want.Reals {
			wanted[r.Key()] = true
		}
		s.Reals = slices.Clone(s.Reals) // b.installed may share its slices
		b.installed[i].Reals = s.Reals
		for j, r := range s.Reals {
			bare := dataplane.RealKey{Addr: r.Addr}
			if r.Port != s.Key.Port || wanted[r.Key()] || !wanted[bare] {
				continue
			}
			if _, taken := st.reals[bare]; taken {
				continue
			}
			id := st.reals[r.Key()]
			delete(st.reals, r.Key())
			st.reals[bare] = id
			o := b.slots.owners[id]
			o.real, o.state.Port = bare, 0
			b.slots.owners[id] = o
			b.installed[i].Reals[j].Port = 0
		}
	}
	b.installed = dataplane.Canonical(b.installed)
}
