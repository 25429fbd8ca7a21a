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
	"maps"
	"net"
	"net/netip"
	"sort"
	"sync"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vip"
	"github.com/halo-lb/halo/pkg/vipfw"
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
	// AdvertsSent counts adverts the kernel accepted (one per destination:
	// each unicast peer is one); AdvertsReceived those that passed every
	// check and reached the state machine.
	AdvertsSent     uint64 `json:"adverts_sent"`
	AdvertsReceived uint64 `json:"adverts_received"`
	// GratuitousSent counts gratuitous ARPs and unsolicited neighbour
	// advertisements actually sent for the instance's VIPs.
	GratuitousSent uint64 `json:"gratuitous_sent"`
	// AdvertInterval is the one in use: a v3 backup follows its master's.
	AdvertInterval string    `json:"advert_interval"`
	Trackers       []Tracker `json:"trackers"`
}

// Tracker is one tracked object of an instance as it stands: Up is the
// object's own status (a script that exits 0, an interface that is up),
// before reverse or weight are applied.
type Tracker struct {
	Name   string `json:"name"`
	Kind   string `json:"kind"` // script, interface, file
	Up     bool   `json:"up"`
	Weight int    `json:"weight"`
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
	static    routeSet // static_ipaddress, static_routes, static_rules
	staticIPs []vip.Addr

	fw    Firewall     // no_accept drop rules; nil until an instance needs them
	fwCfg vipfw.Config // the settings fw was opened with

	wctx     context.Context // lives while Run does: read loops and watchers
	watchers map[string]*watcher
	reloads  chan reloadReq
	startAt  time.Time // vrrp_startup_delay: instances leave INIT then

	mu      sync.Mutex // guards status snapshots and started, read from other goroutines
	started bool       // Run has begun: Reload goes through the event loop
	status  []Status
	ifDrops map[string]map[string]int

	// OnTransition, when set, is called (from the event loop) after each
	// state change; the virtual-server manager uses it for ha_suspend.
	OnTransition func(instance string, to vrrp.State)

	// NotifyTimeout bounds each notify script (notify, notify_*, sync
	// group scripts): a hung one is killed and logged so later
	// notifications run. Zero means DefaultNotifyTimeout; set it before Run.
	NotifyTimeout time.Duration
}

// DefaultNotifyTimeout is how long a notify script may run before it is
// killed. keepalived does not wait for notify scripts at all; halod runs
// them in order, so one that hangs must not hold back the next.
const DefaultNotifyTimeout = 30 * time.Second

func (d *Daemon) notifyTimeout() time.Duration {
	if d.NotifyTimeout > 0 {
		return d.NotifyTimeout
	}
	return DefaultNotifyTimeout
}

type connKey struct {
	ifname string
	is6    bool
}

type connState struct {
	key    connKey
	conn   *vrrpnet.Conn
	insts  []*instance
	groups map[netip.Addr]bool // multicast groups joined
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
		events: make(chan event, 1024), conns: map[connKey]*connState{}, watchers: map[string]*watcher{},
		reloads: make(chan reloadReq), wctx: context.Background()}
}

// Status returns a snapshot of every instance.
func (d *Daemon) Status() []Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]Status(nil), d.status...)
}

// InterfaceDrops returns, per interface and family ("eth0", "eth0/inet6"),
// the adverts no instance claimed, by reason (unknown_vrid, bad_length, …).
func (d *Daemon) InterfaceDrops() map[string]map[string]int {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]map[string]int{}
	for k, v := range d.ifDrops {
		out[k] = maps.Clone(v)
	}
	return out
}

// Run runs the instances until ctx is cancelled, then shuts them down the
// way keepalived does on SIGTERM: masters send priority 0 and drop their
// VIPs, notify scripts run, and Run returns once they have.
func (d *Daemon) Run(ctx context.Context) error {
	wctx, stopWatchers := context.WithCancel(context.Background())
	defer stopWatchers()
	d.mu.Lock()
	d.wctx = wctx
	d.started = true
	d.mu.Unlock()
	if err := d.setup(); err != nil {
		d.closeAll()
		return err
	}
	defer d.closeAll()
	if err := d.syncWatchers(); err != nil {
		return err
	}
	d.startFIFOScripts(wctx)

	d.start(d.clock.Now())
	d.publish()

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	retry := time.NewTicker(time.Second)
	defer retry.Stop()
	for {
		next := d.nextDeadline()
		timer.Reset(max(0, time.Until(next)))
		select {
		case <-ctx.Done():
			d.shutdown()
			return nil
		case ev := <-d.events:
			d.handle(ev)
		case req := <-d.reloads:
			req.done <- d.reload(req.cfg)
		case <-retry.C:
			d.retryBinds()
		case <-timer.C:
			now := d.clock.Now()
			d.startDue(now)
			for _, in := range d.instances {
				if dl := in.m.Deadline(); !dl.IsZero() && !now.Before(dl) {
					d.apply(in, in.m.Tick(now))
				}
			}
		}
		d.publish()
	}
}

// startFIFOScripts starts notify_fifo_script and vrrp_notify_fifo_script
// with the FIFO path as their last argument, as keepalived does; they are
// stopped with the daemon. The FIFO is made first so the script can open
// it.
func (d *Daemon) startFIFOScripts(ctx context.Context) {
	g := &d.cfg.Global
	for _, f := range []*config.FIFO{g.NotifyFIFO, g.VRRPNotifyFIFO} {
		if f == nil || f.Path == "" || f.Script == nil {
			continue
		}
		if err := script.MakeFIFO(f.Path, f.User, f.Group); err != nil {
			d.log.Error("notify fifo", "path", f.Path, "err", err)
			continue
		}
		f := f
		go func() {
			res, err := d.runner.Run(ctx, f.Script, 0, f.Path)
			if ctx.Err() == nil {
				d.log.Warn("notify fifo script exited", "script", f.Script.Raw, "exit", res.ExitCode, "err", err)
			}
		}()
	}
}

// start schedules the instances' start: now, or after vrrp_startup_delay.
func (d *Daemon) start(now time.Time) {
	d.startAt = now.Add(d.cfg.Global.VRRPStartupDelay.D())
	if d.startAt.After(now) {
		d.log.Info("vrrp_startup_delay: instances start later", "delay", d.cfg.Global.VRRPStartupDelay.D())
	}
	d.startDue(now)
}

// startDue takes instances out of INIT once vrrp_startup_delay is over.
// Those that do not start as master drop VIPs a previous run (a crash)
// left behind.
func (d *Daemon) startDue(now time.Time) {
	if now.Before(d.startAt) {
		return
	}
	for _, in := range d.instances {
		if in.m.State() == vrrp.Init {
			in.recompute(now, false)
		}
	}
	for _, g := range d.groups {
		// keepalived announces a group that starts in BACKUP before its
		// members' own BACKUP notifies.
		backup := g.state == vrrp.Init
		for _, m := range g.members {
			backup = backup && m.m.State() == vrrp.Init && !m.m.IsOwner() && !m.m.OwnFault() && !m.m.Held()
		}
		if backup {
			g.notifyState(d, vrrp.Backup)
		}
	}
	for _, in := range d.instances {
		if in.m.State() != vrrp.Init {
			continue
		}
		d.apply(in, in.m.Start(now))
		if in.m.Held() {
			in.log.Info("waiting for the first result of a weight-0 script before showing a state",
				"script", in.pendingScript())
		}
		if in.m.State() != vrrp.Master {
			in.delStaleVIPs()
		}
	}
}

func (d *Daemon) nextDeadline() time.Time {
	var next time.Time
	for _, in := range d.instances {
		if dl := in.m.Deadline(); !dl.IsZero() && (next.IsZero() || dl.Before(next)) {
			next = dl
		}
		if in.m.State() == vrrp.Init && d.startAt.After(d.clock.Now()) && (next.IsZero() || d.startAt.Before(next)) {
			next = d.startAt
		}
	}
	if next.IsZero() {
		next = d.clock.Now().Add(time.Hour)
	}
	return next
}

func (d *Daemon) setup() error {
	for _, ic := range d.cfg.Instances {
		in, err := newInstance(d, ic)
		if err != nil {
			return fmt.Errorf("vrrp_instance %s: %w", ic.Name, err)
		}
		d.instances = append(d.instances, in)
	}
	if err := d.buildGroups(); err != nil {
		return err
	}
	for _, in := range d.instances {
		in.queue = script.NewQueue(d.runner, in.log, d.notifyTimeout())
		d.tryBind(in)
	}
	d.setupFirewall()
	if err := d.setupStatic(); err != nil {
		return err
	}
	return nil
}

// setupStatic installs static_ipaddress, static_routes and static_rules:
// present while halod runs, whatever the VRRP state, as in keepalived.
func (d *Daemon) setupStatic() error {
	for _, v := range d.cfg.StaticAddrs {
		a, err := vip.FromConfig(v, v.Dev)
		if err != nil {
			return fmt.Errorf("static_ipaddress %s: %w", v.Prefix, err)
		}
		if a.Dev == "" {
			return fmt.Errorf("static_ipaddress %s: needs dev", v.Prefix)
		}
		d.staticIPs = append(d.staticIPs, a)
	}
	rs, err := makeRoutes(d.cfg.StaticRoutes, d.cfg.StaticRules, "")
	if err != nil {
		return fmt.Errorf("static_routes: %w", err)
	}
	d.static = rs
	for _, a := range d.staticIPs {
		if err := vip.Add(a); err != nil {
			d.log.Error("add static address", "err", err)
		}
	}
	d.static.add(d.log)
	return nil
}

func (d *Daemon) retryBinds() {
	now := d.clock.Now()
	for _, in := range d.instances {
		if in.cs == nil && d.tryBind(in) && in.m.State() != vrrp.Init {
			in.recompute(now, true)
		}
	}
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
		if ev.conn.conn == nil || d.conns[ev.conn.key] != ev.conn {
			return // a socket closed since: the packet is stale
		}
		d.receive(now, ev.conn, ev.pkt)
	case evScript:
		for _, in := range d.instances {
			if in.setTracker(ev.name, "script", ev.ok, 0) && in.started() {
				in.recompute(now, true)
				in.releaseGroup(now)
			}
		}
	case evLink:
		d.checkLinks(ev.name)
		for _, in := range d.instances {
			in.setTracker(ev.name, "interface", ev.ok, 0)
			if ev.ok && (in.ifname == ev.name || in.cfg.Interface == ev.name) {
				d.tryBind(in)
			}
			if in.started() {
				in.recompute(now, true)
			}
		}
	case evFile:
		for _, in := range d.instances {
			if in.setTracker(ev.name, "file", true, ev.value) && in.started() {
				in.recompute(now, true)
			}
		}
	}
}

func (d *Daemon) receive(now time.Time, cs *connState, p vrrpnet.Packet) {
	a, err := vrrp.Parse(p.Payload, cs.key.is6)
	if err != nil {
		cs.drops[dropReason(err)]++
		return
	}
	target := dispatch(cs.insts, a.VRID, p)
	if target == nil {
		cs.drops["unknown_vrid"]++
		if cs.drops["unknown_vrid"] == 1 || cs.drops["unknown_vrid"]%1000 == 0 {
			d.log.Debug("advert for an unknown VRID", "interface", cs.key.ifname, "vrid", a.VRID, "from", p.Src,
				"count", cs.drops["unknown_vrid"])
		}
		return
	}
	if reason := target.validate(p, a); reason != "" {
		target.drops[reason]++
		if target.drops[reason] == 1 || target.drops[reason]%100 == 0 {
			target.log.Warn("dropped VRRP advert", "reason", reason, "from", p.Src, "count", target.drops[reason])
		}
		return
	}
	target.advertsReceived++
	if a.Priority == 0 {
		target.drops["priority_zero_received"]++ // counted, not dropped
	}
	d.apply(target, target.m.Receive(now, p.Src, a))
}

// dispatch finds the instance an advert is for. The same VRID may be used
// twice on one interface with different multicast groups (mcast_dst_ip)
// or different unicast peers; keepalived tells them apart by destination
// and source, and so does halod.
func dispatch(insts []*instance, vrid uint8, p vrrpnet.Packet) *instance {
	var cands []*instance
	for _, in := range insts {
		if in.cfg.VRID == int(vrid) {
			cands = append(cands, in)
		}
	}
	if len(cands) <= 1 {
		if len(cands) == 1 {
			return cands[0]
		}
		return nil
	}
	for _, in := range cands {
		if p.Dst.IsMulticast() {
			if !in.unicast && in.dsts[0] == p.Dst.WithZone("") {
				return in
			}
		} else if in.unicast && in.isPeer(p.Src) {
			return in
		}
	}
	return nil
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
			in.announce(lowerPrioPlan(in.cfg.GARP), false)
			if in.group != nil {
				// Sync-group siblings that are master re-announce too, as
				// keepalived does.
				for _, m := range in.group.members {
					if m != in && m.m.State() == vrrp.Master {
						m.announce(lowerPrioPlan(m.cfg.GARP), false)
					}
				}
			}
			in.queue.Script(in.cfg.NotifyRxLower)
			in.fifo(fmt.Sprintf("INSTANCE \"%s\" MASTER_RX_LOWER_PRI %d", in.cfg.Name, in.m.Priority()))
		case vrrp.Transition:
			d.transition(in, a)
		}
	}
	in.notifyPriority()
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
		// now the drop rules of no_accept, the addresses, then the
		// announcements, then notify.
		in.syncFirewall(true)
		in.addVIPs()
		in.announce(masterPlan(in.cfg.GARP), true)
	default:
		if a.From == vrrp.Master {
			in.stopAnnounce()
			in.delVIPs()
			in.syncFirewall(false)
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
	for _, g := range d.groups {
		// keepalived's notify_shutdown: every group reports STOP.
		if g.state != vrrp.Stop {
			g.state = vrrp.Stop
			g.queue.Script(g.cfg.NotifyStop)
			g.queue.Script(g.cfg.Notify, "GROUP", g.cfg.Name, "STOP", "0")
			d.fifo(fmt.Sprintf("GROUP \"%s\" STOP 0", g.cfg.Name), d.log)
		}
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
	d.static.del(d.log)
	for _, a := range d.staticIPs {
		if err := vip.Del(a); err != nil {
			d.log.Error("remove static address", "err", err)
		}
	}
}

func (d *Daemon) closeAll() {
	for _, in := range d.instances {
		d.release(in)
	}
	for _, cs := range d.conns {
		cs.conn.Close()
	}
	for _, g := range d.groups {
		g.queue.Close()
	}
	d.stopWatchers()
	d.closeFirewall()
}

// release frees what an instance holds: socket share, announcers, queue,
// VMAC.
func (d *Daemon) release(in *instance) {
	d.unbind(in, "stopped")
	if in.queue != nil {
		in.queue.Close()
	}
	if in.vmac != "" {
		if err := vip.DeleteLink(in.vmac); err != nil {
			in.log.Warn("remove VMAC", "vmac", in.vmac, "err", err)
		}
		in.syncVMACFirewall() // unbound: its element goes
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
		s.AdvertsSent, s.AdvertsReceived, s.GratuitousSent = in.advertsSent, in.advertsReceived, in.garpSent.Load()
		s.AdvertInterval = in.m.MasterAdverInterval().String()
		s.Trackers = in.trackerStatus()
		st = append(st, s)
	}
	ifd := map[string]map[string]int{}
	for k, cs := range d.conns {
		name := k.ifname
		if k.is6 {
			name += "/inet6"
		}
		ifd[name] = maps.Clone(cs.drops)
	}
	d.mu.Lock()
	d.status = st
	d.ifDrops = ifd
	d.mu.Unlock()
}
