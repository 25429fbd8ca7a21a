// Package vrrpd runs the VRRP instances of a config: it owns the sockets,
// feeds the pure state machines of pkg/vrrp with validated adverts, timer
// expiries and tracker changes, and carries out what they decide — adverts,
// VIPs, GARP/NA, notify scripts — in keepalived's order.
//
// Every instance is driven from one event loop, so sync groups, trackers
// shared between instances and shutdown need no locking around the
// machines. Slow work (scripts, announcement bursts) runs outside the loop.
package vrrpd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/halo-lb/halo/pkg/announce"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/track"
	"github.com/halo-lb/halo/pkg/vip"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpnet"
)

// Clock is injected so tests can drive time; the daemon uses the wall clock.
type Clock interface {
	Now() time.Time
}

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Status is a snapshot of one instance for the control socket and metrics.
type Status struct {
	Name              string         `json:"name"`
	VRID              int            `json:"vrid"`
	Interface         string         `json:"interface"`
	State             string         `json:"state"`
	Priority          int            `json:"priority"`
	EffectivePriority int            `json:"effective_priority"`
	VIPs              []string       `json:"vips"`
	MasterAddr        string         `json:"master,omitempty"`
	Drops             map[string]int `json:"drops,omitempty"`
	Transitions       int            `json:"transitions"`
}

// Daemon runs all VRRP instances of a config.
type Daemon struct {
	cfg    *config.Config
	log    *slog.Logger
	clock  Clock
	runner *script.Runner
	events chan event

	conns     map[connKey]*connState
	instances []*instance
	groups    []*group

	mu     sync.Mutex // guards status snapshots read from other goroutines
	status []Status

	// OnTransition, when set, is called (from the event loop) after each
	// state change; the virtual-server manager uses it for ha_suspend.
	OnTransition func(instance string, to vrrp.State)
}

type connKey struct {
	ifname string
	is6    bool
}

type connState struct {
	key   connKey
	conn  *vrrpnet.Conn
	insts []*instance
	// Drops of packets no instance claimed (unknown VRID, bad packet).
	drops map[string]int
}

type event struct {
	kind  int
	conn  *connState
	pkt   vrrpnet.Packet
	name  string
	ok    bool
	value int
}

const (
	evPacket = iota
	evScript
	evLink
	evFile
)

// New prepares the daemon; Run opens sockets and starts it.
func New(cfg *config.Config, log *slog.Logger) *Daemon {
	return &Daemon{cfg: cfg, log: log, clock: wallClock{}, runner: script.NewRunner(&cfg.Global),
		events: make(chan event, 1024), conns: map[connKey]*connState{}}
}

// Status returns a snapshot of every instance.
func (d *Daemon) Status() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Status(nil), d.status...)
}

// Run runs the instances until ctx is cancelled, then shuts them down the
// way keepalived does on SIGTERM: masters send priority 0 and drop their
// VIPs, notify scripts run, and Run returns once they have.
func (d *Daemon) Run(ctx context.Context) error {
	if err := d.setup(); err != nil {
		d.closeAll()
		return err
	}
	defer d.closeAll()

	wctx, stopWatchers := context.WithCancel(context.Background())
	defer stopWatchers()
	for _, cs := range d.conns {
		go d.readLoop(wctx, cs)
	}
	if err := d.startWatchers(wctx); err != nil {
		return err
	}

	now := d.clock.Now()
	for _, in := range d.instances {
		in.recompute(now, false)
		d.apply(in, in.m.Start(now))
	}
	d.publish()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		next := d.nextDeadline()
		if !next.IsZero() {
			timer.Reset(max(0, time.Until(next)))
		}
		select {
		case <-ctx.Done():
			d.shutdown()
			return nil
		case ev := <-d.events:
			d.handle(ev)
		case <-timer.C:
			now := d.clock.Now()
			for _, in := range d.instances {
				if dl := in.m.Deadline(); !dl.IsZero() && !now.Before(dl) {
					d.apply(in, in.m.Tick(now))
				}
			}
		}
		d.publish()
	}
}

func (d *Daemon) nextDeadline() time.Time {
	var next time.Time
	for _, in := range d.instances {
		if dl := in.m.Deadline(); !dl.IsZero() && (next.IsZero() || dl.Before(next)) {
			next = dl
		}
	}
	if next.IsZero() {
		next = d.clock.Now().Add(time.Hour)
	}
	return next
}

func (d *Daemon) setup() error {
	byName := map[string]*instance{}
	for _, ic := range d.cfg.Instances {
		in, err := newInstance(d, ic)
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", ic.Name, err)
		}
		d.instances = append(d.instances, in)
		byName[ic.Name] = in
	}
	for _, sg := range d.cfg.SyncGroups {
		grp := &group{cfg: sg, vg: &vrrp.Group{Name: sg.Name}}
		for _, name := range sg.Members {
			in := byName[name]
			if in == nil {
				return fmt.Errorf("sync group %s: unknown instance %s", sg.Name, name)
			}
			in.group, in.groupIdx = grp, len(grp.members)
			grp.members = append(grp.members, in)
			grp.vg.Members = append(grp.vg.Members, in.m)
			grp.vg.Names = append(grp.vg.Names, name)
		}
		grp.queue = script.NewQueue(d.runner, d.log.With("sync_group", sg.Name), 0)
		d.groups = append(d.groups, grp)
	}
	for _, in := range d.instances {
		if in.vmac != "" {
			if err := vip.EnsureVMAC(in.cfg.Interface, in.vmac, vip.VMAC(in.cfg.VRID, in.is6)); err != nil {
				return fmt.Errorf("vrrp_instance %s: %w", in.cfg.Name, err)
			}
			in.log.Info("VMAC interface ready", "vmac", in.vmac, "mac", vip.VMAC(in.cfg.VRID, in.is6).String())
		}
	}
	// One socket per (interface, family); multicast groups joined as needed.
	groups := map[connKey]map[netip.Addr]bool{}
	for _, in := range d.instances {
		k := connKey{in.ifname, in.is6}
		if groups[k] == nil {
			groups[k] = map[netip.Addr]bool{}
		}
		if !in.unicast {
			groups[k][in.dsts[0]] = true
		}
	}
	for k, gs := range groups {
		var list []netip.Addr
		for a := range gs {
			list = append(list, a)
		}
		c, err := vrrpnet.Listen(k.ifname, k.is6, list)
		if err != nil {
			return err
		}
		d.conns[k] = &connState{key: k, conn: c, drops: map[string]int{}}
	}
	for _, in := range d.instances {
		cs := d.conns[connKey{in.ifname, in.is6}]
		cs.insts = append(cs.insts, in)
		in.conn = cs.conn
		if err := in.pickSource(); err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", in.cfg.Name, err)
		}
		ann, err := announce.New(in.ifname, !in.is6 || hasFamily(in.vips, false), in.is6 || hasFamily(in.vips, true))
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", in.cfg.Name, err)
		}
		in.ann = ann
	}
	return nil
}

func hasFamily(vs []vip.Addr, is6 bool) bool {
	for _, v := range vs {
		if v.Prefix.Addr().Is6() == is6 {
			return true
		}
	}
	return false
}

func (d *Daemon) startWatchers(ctx context.Context) error {
	scripts := map[string]*config.VRRPScript{}
	for _, s := range d.cfg.Scripts {
		scripts[s.Name] = s
	}
	used := map[string]bool{}
	var links []string
	files := map[string]*config.TrackFile{}
	for _, tf := range d.cfg.TrackFiles {
		files[tf.Name] = tf
	}
	usedFiles := map[string]bool{}
	for _, in := range d.instances {
		for _, t := range in.cfg.TrackScripts {
			used[t.Name] = true
		}
		for _, t := range in.cfg.TrackFiles {
			usedFiles[t.Name] = true
		}
		for _, t := range in.cfg.TrackInterfaces {
			links = append(links, t.Name)
		}
		if !in.cfg.DontTrackPrimary {
			links = append(links, in.cfg.Interface)
		}
	}
	for name := range used {
		s := scripts[name]
		if s == nil {
			continue
		}
		go track.WatchScript(ctx, d.runner, s, func(ok bool) {
			d.post(ctx, event{kind: evScript, name: name, ok: ok})
		})
	}
	for name := range usedFiles {
		tf := files[name]
		if tf == nil {
			continue
		}
		go track.WatchFile(ctx, tf, func(v int) {
			d.post(ctx, event{kind: evFile, name: name, value: v})
		})
	}
	if len(links) > 0 {
		if err := track.WatchLinks(ctx, links, func(name string, up bool) {
			d.post(ctx, event{kind: evLink, name: name, ok: up})
		}); err != nil {
			return fmt.Errorf("watch interfaces: %w", err)
		}
	}
	return nil
}

func (d *Daemon) post(ctx context.Context, ev event) {
	select {
	case d.events <- ev:
	case <-ctx.Done():
	}
}

func (d *Daemon) readLoop(ctx context.Context, cs *connState) {
	buf := make([]byte, 65536)
	for {
		p, err := cs.conn.Recv(buf)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			d.log.Warn("vrrp receive", "interface", cs.key.ifname, "err", err)
			time.Sleep(100 * time.Millisecond)
			continue
		}
		p.Payload = append([]byte(nil), p.Payload...)
		d.post(ctx, event{kind: evPacket, conn: cs, pkt: p})
	}
}

func (d *Daemon) handle(ev event) {
	now := d.clock.Now()
	switch ev.kind {
	case evPacket:
		d.receive(now, ev.conn, ev.pkt)
	case evScript:
		for _, in := range d.instances {
			if in.setTracker(ev.name, "script", ev.ok, 0) {
				in.recompute(now, true)
			}
		}
	case evLink:
		for _, in := range d.instances {
			if in.setTracker(ev.name, "interface", ev.ok, 0) {
				in.recompute(now, true)
			}
		}
	case evFile:
		for _, in := range d.instances {
			if in.setTracker(ev.name, "file", true, ev.value) {
				in.recompute(now, true)
			}
		}
	}
}

// receive validates a packet in keepalived's order (keepalived-semantics.md
// §3) and hands it to the instance it belongs to. Every drop is counted by
// reason; a dropped packet never restarts a timer.
func (d *Daemon) receive(now time.Time, cs *connState, p vrrpnet.Packet) {
	a, err := vrrp.Parse(p.Payload, cs.key.is6)
	if err != nil {
		cs.drops[dropReason(err)]++
		return
	}
	var target *instance
	for _, in := range cs.insts {
		if int(a.VRID) != in.cfg.VRID {
			continue
		}
		if in.unicast && !in.isPeer(p.Src) && len(cs.insts) > 1 && in.cfg.CheckUnicastSrc {
			continue
		}
		target = in
		break
	}
	if target == nil {
		cs.drops["unknown_vrid"]++
		return
	}
	if reason := target.validate(p, a); reason != "" {
		target.drops[reason]++
		if target.drops[reason] == 1 || target.drops[reason]%100 == 0 {
			target.log.Warn("dropped VRRP advert", "reason", reason, "from", p.Src, "count", target.drops[reason])
		}
		return
	}
	if a.Priority == 0 {
		target.drops["priority_zero_received"]++ // counted, not dropped
	}
	d.apply(target, target.m.Receive(now, p.Src, a))
}

func dropReason(err error) string {
	switch {
	case errors.Is(err, vrrp.ErrShort), errors.Is(err, vrrp.ErrLength):
		return "bad_length"
	case errors.Is(err, vrrp.ErrVersion):
		return "bad_version"
	case errors.Is(err, vrrp.ErrType):
		return "bad_type"
	case errors.Is(err, vrrp.ErrFamily):
		return "bad_family"
	}
	return "malformed"
}

// apply carries out the machine's actions and keeps sync groups together.
func (d *Daemon) apply(in *instance, acts []vrrp.Action) {
	now := d.clock.Now()
	for _, a := range acts {
		switch a.Kind {
		case vrrp.SendAdvert:
			in.sendAdvert(a.Priority)
		case vrrp.GARPLowerPrio:
			in.log.Info("lower priority advert heard, forcing a new election", "reason", a.Reason)
			g := in.cfg.GARP
			in.announce(g.LowerPrioRepeat, g.LowerPrioDelay.D(), false)
			in.queue.Script(in.cfg.NotifyRxLower)
			in.fifo(fmt.Sprintf("INSTANCE \"%s\" MASTER_RX_LOWER_PRI %d", in.cfg.Name, in.m.Priority()))
		case vrrp.Transition:
			d.transition(in, a)
		}
	}
	if in.group != nil && len(acts) > 0 {
		follow := in.group.vg.Follow(now, in.groupIdx, acts)
		idx := make([]int, 0, len(follow))
		for j := range follow {
			idx = append(idx, j)
		}
		sort.Ints(idx)
		for _, j := range idx {
			if len(follow[j]) > 0 {
				d.apply(in.group.members[j], follow[j])
			}
		}
		in.group.maybeNotify(d)
	}
}

func (d *Daemon) transition(in *instance, a vrrp.Action) {
	in.transitions++
	in.log.Info("VRRP transition", "from", a.From.String(), "to", a.To.String(), "reason", a.Reason,
		"priority", in.m.Priority())
	switch a.To {
	case vrrp.Master:
		// The advert has gone out already (the machine orders it first);
		// now the addresses, then the announcements, then notify.
		in.addVIPs()
		g := in.cfg.GARP
		repeat := g.MasterRepeat
		in.announce(repeat, g.MasterDelay.D(), true)
	default:
		if a.From == vrrp.Master {
			in.stopAnnounce()
			in.delVIPs()
		}
	}
	in.notify(a.To)
	if d.OnTransition != nil {
		d.OnTransition(in.cfg.Name, a.To)
	}
}

func (d *Daemon) shutdown() {
	now := d.clock.Now()
	for _, in := range d.instances {
		d.apply(in, in.m.Shutdown(now))
	}
	d.publish()
	deadline := 10 * time.Second
	for _, in := range d.instances {
		if !in.queue.Drain(deadline) {
			in.log.Warn("notify scripts still running at shutdown")
		}
	}
	for _, g := range d.groups {
		g.queue.Drain(deadline)
	}
}

func (d *Daemon) closeAll() {
	for _, cs := range d.conns {
		cs.conn.Close()
	}
	for _, in := range d.instances {
		in.stopAnnounce()
		if in.ann != nil {
			in.ann.Close()
		}
		in.queue.Close()
	}
	for _, g := range d.groups {
		g.queue.Close()
	}
	for _, in := range d.instances {
		if in.vmac != "" {
			if err := vip.DeleteLink(in.vmac); err != nil {
				in.log.Warn("remove VMAC", "vmac", in.vmac, "err", err)
			}
		}
	}
}

func (d *Daemon) publish() {
	st := make([]Status, 0, len(d.instances))
	for _, in := range d.instances {
		s := Status{Name: in.cfg.Name, VRID: in.cfg.VRID, Interface: in.cfg.Interface, State: in.m.State().String(),
			Priority: in.cfg.Priority, EffectivePriority: in.m.Priority(), Transitions: in.transitions,
			Drops: map[string]int{}}
		for _, v := range in.vips {
			s.VIPs = append(s.VIPs, v.Prefix.String())
		}
		if in.m.MasterAddr.IsValid() {
			s.MasterAddr = in.m.MasterAddr.String()
		}
		for k, v := range in.drops {
			s.Drops[k] = v
		}
		st = append(st, s)
	}
	d.mu.Lock()
	d.status = st
	d.mu.Unlock()
}
