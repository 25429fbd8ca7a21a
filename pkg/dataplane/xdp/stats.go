package xdp

import (
	"context"
	"net/netip"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// Services implements dataplane.Backend.
func (b *Backend) Services(context.Context) ([]dataplane.Service, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return dataplane.Canonical(b.installed), nil
}

// Stats implements dataplane.Backend: per service, and per real of each
// service (each (service, real) has its own counters). A service's
// counters are its entries' summed, with those of the entries it freed:
// the program counts each packet once, per entry.
func (b *Backend) Stats(context.Context) ([]dataplane.ServiceStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []dataplane.ServiceStats
	for _, s := range b.installed {
		st := b.svcs[s.Key]
		if st == nil {
			continue
		}
		ss := dataplane.ServiceStats{Key: s.Key, Reals: map[dataplane.RealKey]dataplane.Stats{}}
		ss.Stats = st.retired
		for rk, id := range st.reals {
			c := sumCounter(b.objs.RealStats, id)
			ss.Reals[rk] = c
			ss.Stats.Packets += c.Packets
			ss.Stats.Bytes += c.Bytes
		}
		out = append(out, ss)
	}
	return out, nil
}

// RealStates implements dataplane.RealStater: a real whose MAC is not
// resolved takes no new flows, and says why.
func (b *Backend) RealStates(context.Context) ([]dataplane.RealState, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []dataplane.RealState
	for _, s := range b.installed {
		for _, r := range s.Reals {
			rs := dataplane.RealState{Service: s.Key, Real: r.Key(), Ready: true}
			if _, ok := b.neigh.known[r.Addr]; !ok {
				rs.Ready = false
				rs.Reason = "MAC not resolved"
				if err := b.neigh.failed[r.Addr]; err != nil {
					rs.Reason += ": " + err.Error()
				}
			}
			out = append(out, rs)
		}
	}
	return out, nil
}

func sumCounter(m *ebpf.Map, key uint32) dataplane.Stats {
	var per []lbCounter
	var s dataplane.Stats
	if err := m.Lookup(key, &per); err != nil {
		return s
	}
	for _, c := range per {
		s.Packets += c.Packets
		s.Bytes += c.Bytes
	}
	return s
}

// Reasons returns the per-reason packet counters (summed over the CPUs'
// states: reason_stats has one element per CPU, struct lb_percpu).
func (b *Backend) Reasons() map[Reason]uint64 {
	out := map[Reason]uint64{}
	for r := Reason(0); r < numReasons; r++ {
		out[r] = 0
	}
	var per []lbLbPercpu
	if err := b.objs.ReasonStats.Lookup(uint32(0), &per); err != nil {
		return out
	}
	for _, p := range per {
		for r := Reason(0); r < numReasons && int(r) < len(p.Reasons); r++ {
			out[r] += p.Reasons[r].Packets
		}
	}
	return out
}

// ReasonNames returns the per-reason counters keyed by a stable name.
func (b *Backend) ReasonNames() map[string]uint64 {
	out := map[string]uint64{}
	for r, n := range b.Reasons() {
		out[reasonNames[r]] = n
	}
	return out
}

// RealFlows counts flow-table entries per real address.
func (b *Backend) RealFlows() map[netip.Addr]int {
	b.mu.Lock()
	byID := map[uint32]netip.Addr{}
	for id, o := range b.slots.owners {
		byID[id] = o.real.Addr
	}
	b.mu.Unlock()
	out := map[netip.Addr]int{}
	b.eachFlow(func(v *lbFlowVal) { out[byID[v.RealId]]++ })
	return out
}

// eachFlow calls f with every entry of both flow tables (IPv4, IPv6).
func (b *Backend) eachFlow(f func(*lbFlowVal)) {
	var v lbFlowVal
	var k4 lbFlowKey4
	it := b.objs.Conntrack4.Iterate()
	for it.Next(&k4, &v) {
		f(&v)
	}
	var k lbFlowKey
	it = b.objs.Conntrack.Iterate()
	for it.Next(&k, &v) {
		f(&v)
	}
}

// FlowEntries is the number of flow-table entries (both families).
func (b *Backend) FlowEntries() int {
	n := 0
	b.eachFlow(func(*lbFlowVal) { n++ })
	return n
}

// ChangedSlots is, per service, the number of table slots whose flows the
// program looks up because the real set changed (0 once they settled).
func (b *Backend) ChangedSlots() map[dataplane.ServiceKey]int {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make(map[dataplane.ServiceKey]int, len(b.svcs))
	for k, st := range b.svcs {
		n := st.ring.dirty
		if b.opts.FlowTracking == TrackAlways {
			n = 0 // every slot, by configuration: not a change to settle
		}
		out[k] = n
	}
	return out
}
