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

// Stats implements dataplane.Backend.
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
		ss.Stats = sumCounter(b.objs.VipStats, st.id)
		for _, r := range s.Reals {
			if id, ok := b.realIDs[r.Addr]; ok {
				ss.Reals[r.Key()] = sumCounter(b.objs.RealStats, id)
			}
		}
		out = append(out, ss)
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

// Reasons returns the per-reason packet counters.
func (b *Backend) Reasons() map[Reason]uint64 {
	out := map[Reason]uint64{}
	for r := Reason(0); r < numReasons; r++ {
		out[r] = sumCounter(b.objs.ReasonStats, uint32(r)).Packets
	}
	return out
}

// ReasonNames returns the per-reason counters keyed by a stable name.
func (b *Backend) ReasonNames() map[string]uint64 {
	names := map[Reason]string{PassNotIP: "pass_not_ip", PassNotVIP: "pass_not_vip", PassFragment: "pass_fragment",
		PassIPOptions: "pass_ip_options", PassIPv6Ext: "pass_ipv6_ext", PassTruncated: "pass_truncated",
		PassNoReal: "pass_no_real", PassNoMAC: "pass_no_mac", TX: "tx", Redirect: "redirect", CTHit: "ct_hit", CTNew: "ct_new"}
	out := map[string]uint64{}
	for r, n := range b.Reasons() {
		out[names[r]] = n
	}
	return out
}

// RealFlows counts connection-table entries per real address.
func (b *Backend) RealFlows() map[netip.Addr]int {
	b.mu.Lock()
	byID := map[uint32]netip.Addr{}
	for a, id := range b.realIDs {
		byID[id] = a
	}
	b.mu.Unlock()
	out := map[netip.Addr]int{}
	var k lbFlowKey
	var v lbFlowVal
	it := b.objs.Conntrack.Iterate()
	for it.Next(&k, &v) {
		out[byID[v.RealId]]++
	}
	return out
}
