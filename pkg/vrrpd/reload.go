package vrrpd

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vip"
	"github.com/halo-lb/halo/pkg/vrrp"
)

// Change is what a reload does to one VRRP instance.
type Change int

const (
	// Unchanged instances keep state, timers, VIPs and trackers.
	Unchanged Change = iota
	// InPlace instances keep their state and timers and take the new
	// settings (priority, advert_int, VIPs, routes, trackers, notify
	// scripts, GARP, preemption …); VIPs are added or removed by
	// difference, and only new ones are announced.
	InPlace
	// Restart instances changed what keepalived uses to identify them
	// (interface, VRID, family, version, unicast or multicast, VMAC,
	// source address): the old one is stopped as a deleted instance and
	// the new one started.
	Restart
	// Added instances start as at daemon start.
	Added
	// Removed instances stop as keepalived deletes them on reload:
	// priority 0 if master, VIPs removed, notify_deleted (or FAULT).
	Removed
)

func (c Change) String() string {
	return [...]string{"unchanged", "in-place", "restart", "added", "removed"}[c]
}

// identity is what must stay equal for an instance to be updated in place.
type identity struct {
	Interface, VMACName, Family string
	VRID, Version               int
	UseVMAC, Unicast, CsumAsV2  bool
	McastDst, McastSrc, UcSrc   string
	Mcast4, Mcast6              string
}

func identityOf(c *config.Config, ic *config.VRRPInstance) identity {
	return identity{Interface: ic.Interface, VMACName: ic.VMACName, Family: ic.Family, VRID: ic.VRID,
		Version: ic.Version, UseVMAC: ic.UseVMAC, Unicast: len(ic.UnicastPeers) > 0, CsumAsV2: ic.V3ChecksumAsV2,
		McastDst: ic.McastDstIP.String(), McastSrc: ic.McastSrcIP.String(), UcSrc: ic.UnicastSrcIP.String(),
		Mcast4: c.Global.VRRPMcastGroup4.String(), Mcast6: c.Global.VRRPMcastGroup6.String()}
}

// fingerprint is everything a running instance depends on, without
// source positions: equal fingerprints mean Unchanged.
func fingerprint(c *config.Config, ic *config.VRRPInstance) string {
	ctx := struct {
		Inst      *config.VRRPInstance
		Group     *config.SyncGroup
		Scripts   []*config.VRRPScript
		Files     []*config.TrackFile
		DownTimer int
		CheckSrc  bool
		Identity  identity
	}{Inst: ic, Group: syncGroupOf(c, ic.Name), Scripts: c.Scripts, Files: c.TrackFiles,
		DownTimer: c.Global.DownTimerAdverts, CheckSrc: c.Global.CheckUnicastSrc, Identity: identityOf(c, ic)}
	b, err := json.Marshal(ctx)
	if err != nil {
		return fmt.Sprint(err)
	}
	var v any
	if json.Unmarshal(b, &v) != nil {
		return string(b)
	}
	b, _ = json.Marshal(dropKey(v, "pos"))
	return string(b)
}

func dropKey(v any, key string) any {
	switch v := v.(type) {
	case map[string]any:
		delete(v, key)
		for k, x := range v {
			v[k] = dropKey(x, key)
		}
	case []any:
		for i, x := range v {
			v[i] = dropKey(x, key)
		}
	}
	return v
}

// Diff says, by instance name, what a reload from old to new does to each
// VRRP instance. It is pure, for tests and for logging what a reload will
// do before it does it.
func Diff(old, new *config.Config) map[string]Change {
	out := map[string]Change{}
	prev := map[string]*config.VRRPInstance{}
	for _, ic := range old.Instances {
		prev[ic.Name] = ic
		out[ic.Name] = Removed
	}
	for _, ic := range new.Instances {
		o := prev[ic.Name]
		switch {
		case o == nil:
			out[ic.Name] = Added
		case identityOf(old, o) != identityOf(new, ic):
			out[ic.Name] = Restart
		case fingerprint(old, o) == fingerprint(new, ic):
			out[ic.Name] = Unchanged
		default:
			out[ic.Name] = InPlace
		}
	}
	return out
}

type reloadReq struct {
	cfg  *config.Config
	done chan error
}

// Reload replaces the running VRRP configuration with cfg, diffing
// instances by name (see Diff and Change): an unchanged instance keeps
// its state, timers and VIPs (no transition, no VIP removed, no GARP); a
// new one starts; a removed one releases its VIPs as a stop would
// (priority-0 advert if master, notify_deleted or FAULT); a changed one is
// updated in place where keepalived keeps its state, otherwise restarted
// alone. Sync groups are rebuilt from cfg; tracker feeds whose definition
// did not change keep running.
//
// cfg must have loaded without errors. Reload checks what it can before
// touching anything (VIP options, routes, sync-group members) and returns
// an error with the running configuration untouched if that fails.
// It is safe to call from any goroutine while Run runs; it returns once
// the reload is applied. Before Run it only replaces the configuration.
func (d *Daemon) Reload(cfg *config.Config) error {
	if cfg == nil {
		return errors.New("vrrp reload: no config")
	}
	d.mu.Lock()
	started, wctx := d.started, d.wctx
	if !started {
		d.cfg = cfg
	}
	d.mu.Unlock()
	if !started {
		return nil
	}
	req := reloadReq{cfg: cfg, done: make(chan error, 1)}
	select {
	case d.reloads <- req:
		return <-req.done
	case <-wctx.Done():
		return errors.New("vrrp reload: daemon stopped")
	}
}

// reload runs in the event loop.
func (d *Daemon) reload(cfg *config.Config) error {
	now := d.clock.Now()
	changes := Diff(d.cfg, cfg)
	old := d.cfg
	// Check everything that can fail before changing anything.
	d.cfg = cfg
	fresh := map[string]*instance{}
	for _, ic := range cfg.Instances {
		if changes[ic.Name] == Unchanged {
			continue
		}
		in, err := newInstance(d, ic)
		if err != nil {
			d.cfg = old
			return fmt.Errorf("vrrp_instance %s: %w", ic.Name, err)
		}
		fresh[ic.Name] = in
	}
	names := map[string]bool{}
	for _, ic := range cfg.Instances {
		names[ic.Name] = true
	}
	for _, sg := range cfg.SyncGroups {
		for _, m := range sg.Members {
			if !names[m] {
				d.cfg = old
				return fmt.Errorf("sync group %s: unknown instance %s", sg.Name, m)
			}
		}
	}
	staticSame := fmt.Sprint(old.StaticAddrs, old.StaticRoutes, old.StaticRules) ==
		fmt.Sprint(cfg.StaticAddrs, cfg.StaticRoutes, cfg.StaticRules)

	running := map[string]*instance{}
	for _, in := range d.instances {
		running[in.cfg.Name] = in
	}
	for name, in := range running {
		if c := changes[name]; c == Removed || c == Restart {
			in.log.Info("reload: instance " + c.String())
			d.remove(now, in)
		}
	}
	var list []*instance
	var started []*instance
	for _, ic := range cfg.Instances {
		in := running[ic.Name]
		switch changes[ic.Name] {
		case Unchanged:
			in.cfg = ic
			if in.m.State() == vrrp.Master {
				// keepalived's reload rebuilds its timers: a pending second
				// GARP burst is dropped, the refresh goes on.
				in.announce(reloadPlan(in.cfg.GARP, false), true)
			}
		case InPlace:
			in.log.Info("reload: instance updated in place")
			d.update(now, in, fresh[ic.Name])
		default:
			in = fresh[ic.Name]
			in.log.Info("reload: instance " + changes[ic.Name].String())
			in.queue = script.NewQueue(d.runner, in.log, d.notifyTimeout())
			started = append(started, in)
		}
		list = append(list, in)
	}
	d.instances = list
	if err := d.buildGroups(); err != nil {
		return err // checked above; cannot happen
	}
	for _, in := range started {
		d.tryBind(in)
	}
	d.startDue(now)
	if !staticSame {
		d.static.del(d.log)
		for _, a := range d.staticIPs {
			_ = vip.Del(a)
		}
		d.static, d.staticIPs = routeSet{}, nil
		if err := d.setupStatic(); err != nil {
			d.log.Error("reload: static addresses and routes", "err", err)
		}
	}
	if err := d.syncWatchers(); err != nil {
		d.log.Error("reload: trackers", "err", err)
	}
	d.resyncFirewall()
	d.publish()
	return nil
}

// remove stops an instance that a reload deleted (or restarts): it goes
// through STOP with priority 0 if master, its notifies report DELETED
// (notify_deleted) or FAULT, and its resources are released.
func (d *Daemon) remove(now time.Time, in *instance) {
	in.deleting = true
	d.apply(in, in.m.Shutdown(now))
	q := in.queue
	in.queue = nil
	d.release(in)
	if q != nil {
		go func() { q.Drain(d.notifyTimeout()); q.Close() }()
	}
}

// update gives a running instance the settings of nin (made from the new
// config) without a transition.
func (d *Daemon) update(now time.Time, in, nin *instance) {
	for k, it := range nin.trackers {
		if o := in.trackers[k]; o != nil {
			it.OK, it.Value, it.Unknown = o.OK, o.Value, o.Unknown
		}
	}
	master := in.m.State() == vrrp.Master
	oldVIPs, oldRoutes := in.allVIPs(), in.routes
	in.cfg, in.vips, in.excluded, in.addrs = nin.cfg, nin.vips, nin.excluded, nin.addrs
	in.routes, in.dsts, in.trackers, in.order = nin.routes, nin.dsts, nin.trackers, nin.order
	if master {
		// Before the new VIPs exist, so they never accept a packet.
		in.syncFirewall(true)
		gone, added := vipDiff(oldVIPs, in.allVIPs())
		oldRoutes.minus(in.routes).del(in.log)
		for _, v := range gone {
			if err := vip.Del(v); err != nil {
				in.log.Error("remove VIP", "vip", v.String(), "err", err)
			}
		}
		for _, v := range added {
			if err := vip.Add(v); err != nil {
				in.log.Error("add VIP", "vip", v.String(), "err", err)
			}
		}
		in.routes.minus(oldRoutes).add(in.log)
		d.openAnnouncers(in)
		// keepalived re-announces every VIP of a changed master once.
		in.announce(reloadPlan(in.cfg.GARP, true), true)
	} else {
		d.openAnnouncers(in)
	}
	d.apply(in, in.m.Reconfigure(now, in.machineConfig()))
	in.recompute(now, true)
}

// reloadPlan is what a master does about announcements on reload: no
// pending second burst; one burst of every VIP if its settings changed;
// the refresh timer restarted.
func reloadPlan(g config.GARP, changed bool) garpPlan {
	p := masterPlan(g)
	p.Delay = 0
	if !changed {
		p.Repeat = 0
	}
	return p
}

func vipDiff(old, new []vip.Addr) (gone, added []vip.Addr) {
	has := func(list []vip.Addr, a vip.Addr) bool {
		for _, x := range list {
			if x == a {
				return true
			}
		}
		return false
	}
	for _, a := range old {
		if !has(new, a) {
			gone = append(gone, a)
		}
	}
	for _, a := range new {
		if !has(old, a) {
			added = append(added, a)
		}
	}
	return gone, added
}

// minus is the routes and rules of s that are not in o.
func (s routeSet) minus(o routeSet) routeSet {
	var out routeSet
	for _, r := range s.routes {
		found := false
		for _, x := range o.routes {
			found = found || fmt.Sprint(x.Words) == fmt.Sprint(r.Words)
		}
		if !found {
			out.routes = append(out.routes, r)
		}
	}
	for _, r := range s.rules {
		found := false
		for _, x := range o.rules {
			found = found || fmt.Sprint(x.Words) == fmt.Sprint(r.Words)
		}
		if !found {
			out.rules = append(out.rules, r)
		}
	}
	return out
}
