package ipvs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/cloudflare/ipvs"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// kernelServices lists the services in the kernel by identity. The library
// reports an empty table as os.ErrNotExist.
func (b *Backend) kernelServices() (map[ident]ipvs.ServiceExtended, error) {
	list, err := b.c.Services()
	if errors.Is(err, os.ErrNotExist) {
		return map[ident]ipvs.ServiceExtended{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IPVS services: %w", err)
	}
	out := make(map[ident]ipvs.ServiceExtended, len(list))
	for _, s := range list {
		s.Flags &^= ipvs.ServiceHashed // kernel-internal state, never set by halo
		out[identOfKernel(s.Service)] = s
	}
	return out, nil
}

func (b *Backend) destinations(s ipvs.Service) ([]ipvs.DestinationExtended, error) {
	d, err := b.c.Destinations(s)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read IPVS destinations of %s: %w", identOfKernel(s), err)
	}
	return d, nil
}

func plain(ds []ipvs.DestinationExtended) []ipvs.Destination {
	out := make([]ipvs.Destination, len(ds))
	for i, d := range ds {
		out[i] = d.Destination
	}
	return out
}

// Apply implements dataplane.Backend. It reads the kernel's table every
// time, so a change someone made behind halod's back, or a step that
// failed last time, is repaired by the next Apply.
func (b *Backend) Apply(_ context.Context, desired []dataplane.Service) error {
	if err := dataplane.Validate(desired); err != nil {
		return err
	}
	want, err := plan(withoutDown(desired))
	if err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	kern, err := b.kernelServices()
	if err != nil {
		return err
	}
	// What halod has in the kernel: services it owns plus those the config
	// names (adopted now), in normal form under the control plane's keys.
	byID := map[ident]*planned{}
	for _, p := range want {
		byID[p.id] = p
	}
	var installed []dataplane.Service
	kernelOf := map[dataplane.ServiceKey]ipvs.Service{}
	for id, s := range kern {
		key, owned := b.owned[id]
		if p, ok := byID[id]; ok {
			if !owned {
				b.log.Info("adopting IPVS service that matches the config", "service", p.orig.Key.String())
			}
			key = p.orig.Key
		} else if !owned {
			continue // not halod's: left alone
		}
		ds, err := b.destinations(s.Service)
		if err != nil {
			return err
		}
		b.owned[id] = key
		kernelOf[key] = s.Service
		installed = append(installed, fromKernel(key, s.Service, plain(ds)))
	}
	for id := range b.owned {
		if _, ok := kern[id]; !ok && byID[id] == nil {
			delete(b.owned, id) // removed behind our back and no longer wanted
		}
	}
	norm := make([]dataplane.Service, 0, len(want))
	for _, p := range want {
		norm = append(norm, p.norm)
	}
	ch := dataplane.Diff(installed, norm)
	b.last = want
	if ch.Empty() {
		return nil
	}
	b.log.Debug("applying IPVS changes", "changes", ch.String())
	return b.execute(ch, want, kernelOf)
}

// execute carries out the changes in the contract's order. A failing step
// does not stop the others (one bad service must not hold back the rest);
// every error is returned and the next Apply retries what is still missing.
func (b *Backend) execute(ch dataplane.Changes, want map[dataplane.ServiceKey]*planned, kernelOf map[dataplane.ServiceKey]ipvs.Service) error {
	var errs []error
	fail := func(err error, format string, args ...any) {
		errs = append(errs, fmt.Errorf(format+": %w", append(args, err)...))
	}
	for _, s := range ch.AddServices {
		p := want[s.Key]
		if err := b.c.CreateService(p.svc); err != nil {
			fail(err, "create service %s", s.Key)
			continue
		}
		b.owned[p.id] = s.Key
		for _, r := range s.Reals {
			if err := b.c.CreateDestination(p.svc, p.dests[r.Key()]); err != nil {
				fail(err, "service %s: add real %s", s.Key, r.Key())
			}
		}
	}
	for _, s := range ch.UpdateServices {
		p := want[s.Key]
		if err := b.c.UpdateService(p.svc); err != nil {
			fail(err, "update service %s", s.Key)
		}
	}
	for _, r := range ch.AddReals {
		p := want[r.Service]
		if err := b.c.CreateDestination(p.svc, p.dests[r.Real.Key()]); err != nil {
			fail(err, "service %s: add real %s", r.Service, r.Real.Key())
		}
	}
	for _, r := range ch.UpdateReals {
		p := want[r.Service]
		if err := b.c.UpdateDestination(p.svc, p.dests[r.Real.Key()]); err != nil {
			fail(err, "service %s: update real %s", r.Service, r.Real.Key())
		}
	}
	for _, r := range ch.RemoveReals {
		p := want[r.Service]
		d := ipvs.Destination{Address: r.Real.Addr, Port: r.Real.Port, Family: familyOf(r.Real.Addr)}
		if err := b.c.RemoveDestination(p.svc, d); err != nil {
			fail(err, "service %s: remove real %s", r.Service, r.Real.Key())
		}
	}
	for _, k := range ch.RemoveServices {
		s := kernelOf[k]
		if err := b.c.RemoveService(s); err != nil {
			fail(err, "remove service %s", k)
			continue
		}
		delete(b.owned, identOfKernel(s))
	}
	return errors.Join(errs...)
}

// Services implements dataplane.Backend: halod's services as the kernel
// has them. A service that matches what was last applied is returned as the
// control plane spelled it.
func (b *Backend) Services(context.Context) ([]dataplane.Service, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kern, err := b.kernelServices()
	if err != nil {
		return nil, err
	}
	var out []dataplane.Service
	for id, key := range b.owned {
		s, ok := kern[id]
		if !ok {
			continue
		}
		ds, err := b.destinations(s.Service)
		if err != nil {
			return nil, err
		}
		got := fromKernel(key, s.Service, plain(ds))
		if p := b.last[key]; p != nil && dataplane.Diff([]dataplane.Service{got}, []dataplane.Service{p.norm}).Empty() {
			got = p.orig
		}
		out = append(out, got)
	}
	return dataplane.Canonical(out), nil
}

// Stats implements dataplane.Backend with the kernel's 64-bit counters:
// Packets and Bytes count what clients sent through the service, the Out
// counters the replies IPVS forwarded back (NAT), Conns the connections
// scheduled, and per real the active and inactive connection gauges.
func (b *Backend) Stats(context.Context) ([]dataplane.ServiceStats, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	kern, err := b.kernelServices()
	if err != nil {
		return nil, err
	}
	var out []dataplane.ServiceStats
	for id, key := range b.owned {
		s, ok := kern[id]
		if !ok {
			continue
		}
		ds, err := b.destinations(s.Service)
		if err != nil {
			return nil, err
		}
		ss := dataplane.ServiceStats{Key: key, Stats: stats(s.Stats64), Reals: map[dataplane.RealKey]dataplane.Stats{}}
		p := b.last[key]
		for _, d := range ds {
			rk := dataplane.RealKey{Addr: d.Address, Port: d.Port}
			if p != nil {
				if orig, ok := p.realKeys[rk]; ok {
					rk = orig
				}
			}
			st := stats(d.Stats64)
			st.ActiveConns, st.InactiveConns = uint64(d.ActiveConnections), uint64(d.InactiveConnections)
			ss.Reals[rk] = st
		}
		out = append(out, ss)
	}
	slices.SortFunc(out, func(a, b dataplane.ServiceStats) int { return strings.Compare(a.Key.String(), b.Key.String()) })
	return out, nil
}

func stats(s ipvs.Stats) dataplane.Stats {
	return dataplane.Stats{Packets: s.IncomingPackets, Bytes: s.IncomingBytes, Conns: s.Connections,
		PacketsOut: s.OutgoingPackets, BytesOut: s.OutgoingBytes}
}

// withoutDown drops reals whose checks fail, as keepalived removes them from
// IPVS: the kernel keeps forwarding their established connections
// (expire_nodest_conn is 0 by default) and sends them no new ones. A real
// kept at weight 0 (inhibit_on_failure) arrives with Down unset and stays.
func withoutDown(in []dataplane.Service) []dataplane.Service {
	out := make([]dataplane.Service, len(in))
	for i, s := range in {
		s.Reals = slices.DeleteFunc(slices.Clone(s.Reals), func(r dataplane.Real) bool { return r.Down })
		out[i] = s
	}
	return out
}
