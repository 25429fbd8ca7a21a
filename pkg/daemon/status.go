package daemon

import (
	"context"
	"encoding/json"
	"net/http"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/halo-lb/halo/pkg/control/api"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/vrrpd"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

// Status implements control.Handler: status plus what the data plane
// says of each real (asked here only, not at every scrape).
func (d *Daemon) Status() api.Status {
	st := d.status()
	if rs, ok := d.backend.(dataplane.RealStater); ok {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		states, err := rs.RealStates(ctx)
		cancel()
		if err == nil {
			applyRealStates(st.VirtualServers, states)
		}
	}
	if d.backend != nil && len(st.VirtualServers) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		stats, err := d.backend.Stats(ctx)
		cancel()
		if err == nil {
			byKey := map[string]dataplane.ServiceStats{}
			for _, s := range stats {
				byKey[s.Key.String()] = s
			}
			attachCounters(st.VirtualServers, byKey)
		}
	}
	return st
}

// applyRealStates marks the reals the data plane cannot send new flows
// to. Virtual-server groups span several keys and are left unmarked.
func applyRealStates(vss []api.VirtualServer, states []dataplane.RealState) {
	for i := range vss {
		key := serviceKeyOf(vss[i])
		for _, s := range states {
			if s.Ready || s.Service.String() != key {
				continue
			}
			for j := range vss[i].Reals {
				r := &vss[i].Reals[j]
				if s.Real.Addr.String() == r.Address && (int(s.Real.Port) == r.Port || s.Real.Port == 0) {
					r.DataplaneState = s.Reason
				}
			}
		}
	}
}

// status is the snapshot metrics and the announcer read.
func (d *Daemon) status() api.Status {
	d.mu.Lock()
	st := api.Status{Version: d.o.Version, PID: os.Getpid(), Ready: d.isReady.Load(), StartedAt: d.started,
		Dataplane: d.cfg.Dataplane.Backend,
		Config: api.ConfigStatus{File: d.o.ConfigFile, LoadedAt: d.loadedAt, Reloads: d.reloads, FailedReloads: d.failed,
			LastReloadSuccessful: d.lastOK, LastReloadError: d.lastErr}}
	d.mu.Unlock()
	if d.backend != nil {
		st.Dataplane = d.backend.Name()
	}
	st.VRRP = []api.Instance{}
	if d.vrrp != nil {
		st.VRRP = instances(d.vrrp.Status())
		// The configured advert interval, when the VRRP side does not
		// report the one in use (it learns a v3 peer's).
		adv := map[string]string{}
		for _, in := range d.config().Instances {
			adv[in.Name] = in.AdvertInt.D().String()
		}
		for i := range st.VRRP {
			if st.VRRP[i].AdvertInterval == "" {
				st.VRRP[i].AdvertInterval = adv[st.VRRP[i].Name]
			}
		}
	}
	st.VirtualServers = []api.VirtualServer{}
	if d.mgr != nil {
		for _, vs := range d.mgr.Status() {
			st.VirtualServers = append(st.VirtualServers, virtualServer(vs))
		}
	}
	st.BGP = d.bgpStatus()
	if d.mgr != nil {
		for k, reason := range d.mgr.Skipped() {
			st.Skipped = append(st.Skipped, api.SkippedService{Service: k, Reason: reason})
		}
		sort.Slice(st.Skipped, func(i, j int) bool { return st.Skipped[i].Service < st.Skipped[j].Service })
	}
	return st
}

// instances copies the VRRP daemon's snapshots into the wire type by JSON
// field name: the wire type is the contract, and counters the VRRP side
// adds under the agreed names (adverts_sent, trackers, …) flow through
// without a change here.
func instances(in []vrrpd.Status) []api.Instance {
	var out []api.Instance
	if b, err := json.Marshal(in); err == nil {
		json.Unmarshal(b, &out)
	}
	if out == nil {
		out = []api.Instance{} // "vrrp": [] on the wire, never null
	}
	return out
}

func virtualServer(vs vsmgr.VSStatus) api.VirtualServer {
	out := api.VirtualServer{ID: vs.ID, Address: vs.Address, Port: vs.Port, Protocol: vs.Protocol, Scheduler: vs.Scheduler,
		Method: vs.Method, Quorum: vs.Quorum, LiveWeight: vs.LiveWeight, QuorumUp: vs.QuorumUp, Suspended: vs.Suspended,
		Reals: []api.Real{}}
	for _, r := range vs.Reals {
		out.Reals = append(out.Reals, realStatus(r))
	}
	if vs.Sorry != nil {
		s := realStatus(*vs.Sorry)
		out.Sorry = &s
	}
	return out
}

func realStatus(r vsmgr.RealStatus) api.Real {
	out := api.Real{Address: r.Address, Port: r.Port, Weight: r.Weight, ConfiguredWeight: r.ConfiguredWeight, Up: r.Up,
		Drained: r.Drained, LastError: r.LastError}
	for _, c := range r.Checkers {
		out.Checkers = append(out.Checkers, api.Checker{Type: c.Type, Up: c.Up, LastError: c.LastError, Attempts: c.Attempts,
			LatencySeconds: c.Latency.Seconds(), LastCheck: c.LastCheck})
	}
	return out
}

// Dump implements control.Handler: the status with data-plane counters
// on every virtual and real server, and what the data plane holds.
func (d *Daemon) Dump() api.Dump {
	out := api.Dump{Status: d.Status(), DataplaneServices: []api.Service{}}
	if d.backend == nil {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	installed, _ := d.backend.Services(ctx)
	stats, _ := d.backend.Stats(ctx)
	byKey := map[string]dataplane.ServiceStats{}
	for _, s := range stats {
		byKey[s.Key.String()] = s
	}
	for _, s := range installed {
		st := byKey[s.Key.String()]
		svc := api.Service{Key: s.Key.String(), Scheduler: s.Scheduler, Method: string(s.Method), Counters: counts(st.Stats),
			Reals: []api.ServiceReal{}}
		for _, r := range s.Reals {
			svc.Reals = append(svc.Reals, api.ServiceReal{Key: r.Key().String(), Weight: r.Weight, Counters: counts(st.Reals[r.Key()])})
		}
		out.DataplaneServices = append(out.DataplaneServices, svc)
	}
	sort.Slice(out.DataplaneServices, func(i, j int) bool { return out.DataplaneServices[i].Key < out.DataplaneServices[j].Key })
	attachCounters(out.VirtualServers, byKey)
	if v, ok := d.backend.(interface{ ReasonNames() map[string]uint64 }); ok {
		out.DataplaneVerdicts = v.ReasonNames()
	}
	if f, ok := d.backend.(interface{ RealFlows() map[netip.Addr]int }); ok {
		flows := f.RealFlows()
		for i := range out.VirtualServers {
			for j := range out.VirtualServers[i].Reals {
				r := &out.VirtualServers[i].Reals[j]
				if a, err := netip.ParseAddr(r.Address); err == nil {
					n := flows[a]
					r.FlowEntries = &n
				}
			}
		}
	}
	return out
}

// serviceKeyOf is the data-plane key string of a plain or fwmark virtual
// server (dataplane.ServiceKey.String's form).
// attachCounters puts the data plane's packets, bytes and connections on
// each virtual and real server, whatever the backend (XDP or IPVS), so
// status, dump and metrics show the same figures.
func attachCounters(vss []api.VirtualServer, byKey map[string]dataplane.ServiceStats) {
	for i := range vss {
		vs := &vss[i]
		s, ok := byKey[serviceKeyOf(*vs)]
		if !ok {
			continue
		}
		c := counts(s.Stats)
		vs.Counters = &c
		for j := range vs.Reals {
			r := &vs.Reals[j]
			for rk, rs := range s.Reals {
				if rk.Addr.String() == r.Address && (int(rk.Port) == r.Port || rk.Port == 0) {
					rc := counts(rs)
					r.Counters = &rc
				}
			}
		}
	}
}

func serviceKeyOf(vs api.VirtualServer) string {
	for i := len(vs.ID) - 1; i > 0; i-- {
		if vs.ID[i] == '/' {
			return vs.ID[i+1:] + ":" + vs.ID[:i]
		}
	}
	return vs.ID
}

func counts(s dataplane.Stats) api.Counts {
	return api.Counts{Packets: s.Packets, Bytes: s.Bytes, Conns: s.Conns}
}

// MetricsHandler serves the daemon's /metrics (also without --metrics-addr).
func (d *Daemon) MetricsHandler() http.Handler { return d.metrics.Handler() }
