package vrrpd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/halo-lb/halo/pkg/announce"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/track"
	"github.com/halo-lb/halo/pkg/vip"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpnet"
)

type instance struct {
	d        *Daemon
	cfg      *config.VRRPInstance
	log      *slog.Logger
	m        *vrrp.Machine
	is6      bool
	unicast  bool
	ifname   string       // where sockets, VIPs and announcements live: the interface or its VMAC
	vmac     string       // the VMAC interface halod created, "" without use_vmac
	src      netip.Addr   // where adverts come from
	dsts     []netip.Addr // the group, or every unicast peer
	vips     []vip.Addr   // advertised and added
	excluded []vip.Addr   // added, not advertised
	addrs    []netip.Addr // VIP addresses in the advert
	routes   routeSet     // virtual_routes and virtual_rules
	conn     *vrrpnet.Conn
	cs       *connState
	bindErr  string                         // why the instance has no socket ("" when bound)
	anns     map[string]*announce.Announcer // by interface: each VIP is announced where it lives
	queue    *script.Queue
	deleting bool // removed by a reload: notifies say DELETED (or FAULT)
	lastPrio int  // effective priority last reported (notify_priority_changes)

	csMode vrrp.ChecksumMode // v3/IPv4: what we send; follows what we hear

	trackers    map[string]*track.Item // by kind+name
	order       []string
	drops       map[string]int
	transitions int

	advertsSent     uint64        // event loop only
	advertsReceived uint64        // event loop only
	garpSent        atomic.Uint64 // announcement goroutines add to it

	lastMaster netip.Addr // for skip_check_adv_addr

	annCancel   context.CancelFunc // becoming-master bursts and refresh
	lowerCancel context.CancelFunc // lower-priority bursts

	group    *group
	groupIdx int
}

func newInstance(d *Daemon, ic *config.VRRPInstance) (*instance, error) {
	if ic.AuthType == "AH" {
		return nil, fmt.Errorf("auth_type AH is not supported by halo; use PASS or no authentication")
	}
	in := &instance{d: d, cfg: ic, is6: ic.Family == "inet6", trackers: map[string]*track.Item{}, drops: map[string]int{},
		log: d.log.With("instance", ic.Name), ifname: ic.Interface}
	if ic.UseVMAC {
		in.vmac = ic.VMACName
		if in.vmac == "" {
			in.vmac = fmt.Sprintf("vrrp.%d", ic.VRID)
		}
		in.ifname = in.vmac
	}
	if ic.V3ChecksumAsV2 {
		in.csMode = vrrp.NoPseudoHeader
	}
	for _, v := range ic.VIPs {
		a, err := vip.FromConfig(v, in.ifname)
		if err != nil {
			return nil, fmt.Errorf("virtual_ipaddress %s: %w", v.Prefix, err)
		}
		a = in.onVMAC(a)
		in.vips = append(in.vips, a)
		in.addrs = append(in.addrs, v.Prefix.Addr())
	}
	for _, v := range ic.ExcludedVIPs {
		a, err := vip.FromConfig(v, in.ifname)
		if err != nil {
			return nil, fmt.Errorf("virtual_ipaddress_excluded %s: %w", v.Prefix, err)
		}
		a = in.onVMAC(a)
		in.excluded = append(in.excluded, a)
	}
	rs, err := makeRoutes(ic.VirtualRoutes, ic.VirtualRules, in.ifname)
	if err != nil {
		return nil, err
	}
	in.routes = rs
	if len(ic.UnicastPeers) > 0 {
		in.unicast = true
		for _, p := range ic.UnicastPeers {
			in.dsts = append(in.dsts, p.Addr)
		}
	} else {
		g := d.cfg.Global.VRRPMcastGroup4
		if in.is6 {
			g = d.cfg.Global.VRRPMcastGroup6
		}
		if ic.McastDstIP.IsValid() {
			g = ic.McastDstIP
		}
		in.dsts = []netip.Addr{g}
	}
	sg := syncGroupOf(d.cfg, ic.Name)
	scripts, ifaces, files := ic.TrackScripts, ic.TrackInterfaces, ic.TrackFiles
	if sg != nil {
		// A group's own trackers apply to every member.
		scripts = append(append([]config.TrackRef(nil), scripts...), sg.TrackScripts...)
		ifaces = append(append([]config.TrackRef(nil), ifaces...), sg.TrackInterfaces...)
		files = append(append([]config.TrackRef(nil), files...), sg.TrackFiles...)
	}
	for _, t := range scripts {
		in.addTracker("script", t, scriptWeight(d.cfg, t))
	}
	for _, t := range ifaces {
		in.addTracker("interface", t, 0)
	}
	for _, t := range files {
		w := 1
		for _, tf := range d.cfg.TrackFiles {
			if tf.Name == t.Name {
				w = tf.Weight
			}
		}
		in.addTracker("file", t, w)
	}
	if sg != nil && !sg.TrackingWeight {
		// keepalived ignores tracker weights of sync-group members unless
		// sync_group_tracking_weight is set: every tracker counts as
		// weight 0, so its failure takes the group to FAULT.
		for _, k := range in.order {
			if it := in.trackers[k]; it.Weight != 0 {
				in.log.Warn("tracker weight ignored in a sync group without sync_group_tracking_weight",
					"tracker", k, "weight", it.Weight, "sync_group", sg.Name)
				it.Weight = 0
			}
		}
	}
	if !ic.DontTrackPrimary {
		// The instance's own interface going down means FAULT.
		key := "interface/" + ic.Interface
		if _, ok := in.trackers[key]; !ok {
			in.trackers[key] = &track.Item{Name: ic.Interface, Weight: 0, OK: true}
			in.order = append(in.order, key)
		}
	}
	in.trackers[bindKey+in.ifname] = &track.Item{Name: in.ifname, Weight: 0, OK: false}
	in.order = append(in.order, bindKey+in.ifname)
	in.bindErr = "not bound yet"
	in.m = vrrp.New(in.machineConfig())
	return in, nil
}

// onVMAC moves a VIP configured on the base interface onto the VMAC, as
// keepalived does with use_vmac: the address must answer with the virtual
// MAC, never the base interface's.
func (in *instance) onVMAC(a vip.Addr) vip.Addr {
	if in.vmac != "" && a.Dev == in.cfg.Interface {
		a.Dev = in.vmac
	}
	return a
}

// syncGroupOf is the sync group an instance belongs to, or nil.
func syncGroupOf(c *config.Config, name string) *config.SyncGroup {
	for _, sg := range c.SyncGroups {
		for _, m := range sg.Members {
			if m == name {
				return sg
			}
		}
	}
	return nil
}

// machineConfig is what the state machine needs of the instance; Addr is
// valid once pickSource has run.
func (in *instance) machineConfig() vrrp.Config {
	ic := in.cfg
	return vrrp.Config{
		Version: ic.Version, Priority: ic.Priority, AdvertInt: ic.AdvertInt.D(), WantMaster: ic.State == "MASTER",
		Preempt: !ic.NoPreempt, PreemptDelay: ic.PreemptDelay.D(), DownTimerAdverts: in.d.cfg.Global.DownTimerAdverts,
		LowerPrioNoAdvert: ic.LowerPrioNoAdvert, HigherPrioSendAdvert: ic.HigherPrioSendAdvert,
		Addr: in.src.WithZone(""),
	}
}

func scriptWeight(c *config.Config, t config.TrackRef) int {
	if t.Weight != nil {
		return *t.Weight
	}
	for _, s := range c.Scripts {
		if s.Name == t.Name {
			return s.Weight
		}
	}
	return 0
}

func (in *instance) addTracker(kind string, t config.TrackRef, weight int) {
	if t.Weight != nil {
		weight = *t.Weight
	}
	reverse := t.Reverse
	if kind == "script" {
		for _, s := range in.d.cfg.Scripts {
			if s.Name == t.Name {
				reverse = reverse || s.Reverse
				// Unknown until its first result, init_fail or not: a
				// weighted script moves nothing before it, a weight-0 one
				// holds the instance before any state (track.Pending).
				in.trackers[kind+"/"+t.Name] = &track.Item{Name: t.Name, Weight: weight, Reverse: reverse, OK: !s.InitFail,
					Unknown: true}
				in.order = append(in.order, kind+"/"+t.Name)
				return
			}
		}
	}
	it := &track.Item{Name: t.Name, Weight: weight, Reverse: reverse, OK: true, File: kind == "file"}
	in.trackers[kind+"/"+t.Name] = it
	in.order = append(in.order, kind+"/"+t.Name)
}

// setTracker updates a tracked object; it reports whether this instance
// tracks it.
func (in *instance) setTracker(name, kind string, ok bool, value int) bool {
	it := in.trackers[kind+"/"+name]
	if it == nil {
		return false
	}
	if it.OK == ok && it.Value == value && !it.Unknown {
		return false
	}
	it.OK, it.Value, it.Unknown = ok, value, false
	in.log.Info("tracked object changed", "kind", kind, "name", name, "ok", ok, "value", value)
	return true
}

// recompute applies the trackers: FAULT, or a new effective priority.
func (in *instance) recompute(now time.Time, act bool) {
	items := in.items()
	prio, fault := track.Effective(in.cfg.Priority, items)
	var acts []vrrp.Action
	if fault != "" {
		acts = append(acts, in.m.SetFault(now, true, fault+" is down")...)
	} else {
		acts = append(acts, in.m.SetFault(now, false, "tracked objects recovered")...)
	}
	acts = append(acts, in.m.SetPriority(now, prio)...)
	acts = append(acts, in.m.SetHold(now, in.pendingScript() != "")...)
	if act {
		in.d.apply(in, acts)
	}
}

func (in *instance) pickSource() error {
	switch {
	case in.unicast && in.cfg.UnicastSrcIP.IsValid():
		in.src = in.cfg.UnicastSrcIP
	case !in.unicast && in.cfg.McastSrcIP.IsValid():
		in.src = in.cfg.McastSrcIP
	default:
		// IPv4 adverts come from the parent's address even with a VMAC
		// (which has none); IPv6 ones from the link-local of the interface
		// they leave by.
		name := in.cfg.Interface
		if in.is6 {
			name = in.ifname
		}
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return err
		}
		exclude := map[netip.Addr]bool{}
		for _, a := range in.d.cfg.Instances {
			for _, v := range a.VIPs {
				exclude[v.Prefix.Addr()] = true
			}
		}
		src, err := vrrpnet.PrimaryAddr(ifi, in.is6, exclude)
		if err != nil {
			return err
		}
		in.src = src
	}
	// The primary address breaks equal-priority ties; the machine learns
	// it without leaving its state.
	in.d.apply(in, in.m.Reconfigure(in.d.clock.Now(), in.machineConfig()))
	return nil
}

func (in *instance) isPeer(a netip.Addr) bool {
	for _, p := range in.cfg.UnicastPeers {
		if p.Addr == a.WithZone("") {
			return true
		}
	}
	return false
}

// validate applies keepalived's receive checks; "" means accept.
func (in *instance) validate(p vrrpnet.Packet, a *vrrp.Advert) string {
	multicast := p.Dst.IsMulticast()
	if !in.unicast && p.TTL != 255 {
		return "bad_ttl"
	}
	if in.unicast {
		for _, peer := range in.cfg.UnicastPeers {
			if peer.Addr == p.Src.WithZone("") {
				if (peer.MinTTL != 0 && p.TTL < peer.MinTTL) || (peer.MaxTTL != 0 && p.TTL > peer.MaxTTL) {
					return "bad_ttl"
				}
			}
		}
	}
	if int(a.Version) != in.cfg.Version {
		return "bad_version"
	}
	if a.Version == 2 {
		want := uint8(vrrp.AuthNone)
		if in.cfg.AuthType == "PASS" {
			want = vrrp.AuthPass
		}
		if a.AuthType != want {
			return "auth_type_mismatch"
		}
		if want == vrrp.AuthPass && a.AuthData != in.authData() {
			return "auth_failure"
		}
		if time.Duration(a.Interval)*time.Second != in.cfg.AdvertInt.D() {
			return "interval_mismatch"
		}
	}
	msg := p.Payload[:vrrp.MessageLen(p.Payload, in.is6)]
	mode := in.csMode
	if !in.is6 {
		var err error
		if mode, err = vrrp.VerifyChecksum(msg, p.Src, p.Dst); err != nil {
			return "bad_checksum"
		}
	}
	if in.unicast && multicast {
		return "expected_unicast"
	}
	if !in.unicast && !multicast {
		return "expected_multicast"
	}
	if !(in.cfg.SkipCheckAdvAddr && p.Src == in.lastMaster) && !sameAddrs(a.Addrs, in.addrs) {
		return "vip_mismatch"
	}
	if in.unicast && (in.cfg.CheckUnicastSrc || in.d.cfg.Global.CheckUnicastSrc || in.peerTTLLimits()) && !in.isPeer(p.Src) {
		return "unknown_unicast_source"
	}
	// Only an advert that passed every check may change the checksum form
	// we send: a forged or foreign packet must not make our adverts
	// unreadable to a keepalived peer.
	if !in.is6 && a.Version == 3 && mode != in.csMode && !in.cfg.V3ChecksumAsV2 {
		// Follow the peer's checksum form, as keepalived auto-detects
		// pre-1.3.6 unicast peers.
		in.log.Info("peer uses another VRRPv3 checksum form; following it", "mode", mode.String(), "from", p.Src)
		in.csMode = mode
	}
	in.lastMaster = p.Src
	return ""
}

// peerTTLLimits: setting min_ttl or max_ttl on a peer turns on
// check_unicast_src, as in keepalived.
func (in *instance) peerTTLLimits() bool {
	for _, p := range in.cfg.UnicastPeers {
		if p.MinTTL != 0 || p.MaxTTL != 0 {
			return true
		}
	}
	return false
}

func sameAddrs(a, b []netip.Addr) bool {
	if len(a) != len(b) {
		return false
	}
	set := map[netip.Addr]int{}
	for _, x := range a {
		set[x]++
	}
	for _, x := range b {
		if set[x] == 0 {
			return false
		}
		set[x]--
	}
	return true
}

func (in *instance) authData() [8]byte {
	var b [8]byte
	copy(b[:], in.cfg.AuthPass)
	return b
}

func (in *instance) sendAdvert(prio int) {
	a := vrrp.Advert{Version: uint8(in.cfg.Version), VRID: uint8(in.cfg.VRID), Priority: uint8(prio), Addrs: in.addrs}
	if in.cfg.Version == 2 {
		a.Interval = uint16(in.cfg.AdvertInt.D() / time.Second)
		if in.cfg.AuthType == "PASS" {
			a.AuthType = vrrp.AuthPass
			a.AuthData = in.authData()
		}
	} else {
		a.Interval = uint16(in.cfg.AdvertInt.D() / (10 * time.Millisecond))
	}
	for _, dst := range in.dsts {
		msg, err := a.Marshal(in.src, dst, in.csMode)
		if err != nil {
			in.log.Error("cannot encode advert", "err", err)
			return
		}
		if in.conn == nil {
			return
		}
		ttl := 255
		if in.unicast && in.cfg.UnicastTTL > 0 {
			ttl = in.cfg.UnicastTTL
		}
		if err := in.conn.SendTTL(in.src, dst, msg, ttl); err != nil {
			in.log.Warn("send advert", "to", dst, "err", err)
			continue
		}
		in.advertsSent++
	}
}

// allVIPs is what the instance adds as master: advertised and excluded.
func (in *instance) allVIPs() []vip.Addr {
	return append(append([]vip.Addr(nil), in.vips...), in.excluded...)
}

func (in *instance) addVIPs() {
	for _, v := range in.allVIPs() {
		if err := vip.Add(v); err != nil {
			in.log.Error("add VIP", "vip", v.String(), "err", err)
		}
	}
	in.routes.add(in.log)
}

func (in *instance) delVIPs() {
	in.routes.del(in.log)
	for _, v := range in.allVIPs() {
		if err := vip.Del(v); err != nil {
			in.log.Error("remove VIP", "vip", v.String(), "err", err)
		}
	}
}

// delStaleVIPs removes, at start, VIPs an instance that did not start as
// master may have left behind (a crash keeps them): otherwise the address
// would live on two hosts.
func (in *instance) delStaleVIPs() {
	for _, v := range in.allVIPs() {
		if ok, err := vip.Present(v); err == nil && ok {
			in.log.Warn("removing a VIP left from an earlier run", "vip", v.String())
			if err := vip.Del(v); err != nil {
				in.log.Error("remove VIP", "vip", v.String(), "err", err)
			}
		}
	}
}

// garpPlan is when and how often a new master announces its VIPs
// (docs/keepalived.md#garp-timing), computed apart from the I/O.
type garpPlan struct {
	Repeat        int
	Delay         time.Duration // second burst after Delay; 0: none
	Refresh       time.Duration // periodic burst from becoming master; 0: none
	RefreshRepeat int
}

func masterPlan(g config.GARP) garpPlan {
	p := garpPlan{Repeat: g.MasterRepeat, Delay: g.MasterDelay.D(), Refresh: g.MasterRefresh.D(), RefreshRepeat: g.MasterRefreshRepeat}
	if g.MinGARP {
		// vrrp_min_garp: one packet per address, no second burst.
		p.Repeat, p.Delay = min(p.Repeat, 1), 0
	}
	return p
}

func lowerPrioPlan(g config.GARP) garpPlan {
	p := garpPlan{Repeat: g.LowerPrioRepeat, Delay: g.LowerPrioDelay.D()}
	if g.MinGARP {
		p.Repeat, p.Delay = min(p.Repeat, 1), 0
	}
	return p
}

// announce carries out a plan on every interface the VIPs live on, until
// the instance leaves MASTER (both the becoming-master and the
// lower-priority bursts are cancelled then). The refresh timer runs from
// the moment the plan starts, as keepalived arms it on becoming master.
func (in *instance) announce(p garpPlan, master bool) { in.announceVIPs(p, master, in.allVIPs()) }

// announceVIPs is announce for some of the addresses (a reload announces
// only those it added).
func (in *instance) announceVIPs(p garpPlan, master bool, vips []vip.Addr) {
	if master {
		// A new plan replaces the running one (its pending bursts too).
		in.stopAnnounce()
	}
	if p.Repeat <= 0 && p.Refresh <= 0 {
		return
	}
	ctx, cancel := context.WithCancel(context.Background())
	if master {
		in.stopAnnounce()
		in.annCancel = cancel
	} else {
		if in.lowerCancel != nil {
			in.lowerCancel()
		}
		in.lowerCancel = cancel
	}
	byDev := map[string][]netip.Addr{}
	for _, v := range vips {
		byDev[v.Dev] = append(byDev[v.Dev], v.Prefix.Addr())
	}
	g := in.cfg.GARP
	for dev, ips := range byDev {
		ann := in.anns[dev]
		if ann == nil {
			continue
		}
		log := in.log.With("interface", dev)
		burst := func(n int) {
			if err := burst(ctx, ann, ips, n, g.Interval.D(), g.GNAInterval.D(), &in.garpSent); err != nil && ctx.Err() == nil {
				log.Warn("announce VIPs", "err", err)
			}
		}
		go func() {
			if p.Repeat > 0 {
				burst(p.Repeat)
			}
			if p.Delay <= 0 {
				return
			}
			select {
			case <-time.After(p.Delay):
				burst(p.Repeat)
			case <-ctx.Done():
			}
		}()
		if p.Refresh > 0 && p.RefreshRepeat > 0 {
			go func() {
				t := time.NewTicker(p.Refresh)
				defer t.Stop()
				for {
					select {
					case <-t.C:
						burst(p.RefreshRepeat)
					case <-ctx.Done():
						return
					}
				}
			}()
		}
	}
}

// burst is announce.Announcer.Burst counting each packet the kernel
// accepted, so halo_vrrp_gratuitous_sent_total says what really left.
func burst(ctx context.Context, ann *announce.Announcer, ips []netip.Addr, repeat int, interval4, interval6 time.Duration,
	sent *atomic.Uint64) error {
	var firstErr error
	for range repeat {
		for _, ip := range ips {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := ann.Send(ip); err != nil {
				if firstErr == nil {
					firstErr = err
				}
			} else {
				sent.Add(1)
			}
			d := interval4
			if ip.Is6() {
				d = interval6
			}
			if d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	return firstErr
}

// trackerStatus lists the configured trackers in config order (the
// internal socket-binding tracker is not one).
func (in *instance) trackerStatus() []Tracker {
	out := []Tracker{}
	for _, k := range in.order {
		kind, _, _ := strings.Cut(k, "/")
		if kind+"/" == bindKey {
			continue
		}
		it := in.trackers[k]
		out = append(out, Tracker{Name: it.Name, Kind: kind, Up: it.OK && !it.Unknown, Weight: it.Weight})
	}
	return out
}

func (in *instance) stopAnnounce() {
	if in.annCancel != nil {
		in.annCancel()
		in.annCancel = nil
	}
	if in.lowerCancel != nil {
		in.lowerCancel()
		in.lowerCancel = nil
	}
}

// notify runs the state's script, then `notify` with keepalived's four
// arguments, through the instance's ordered queue; the FIFO line is
// written at once, as keepalived writes it when the event happens, so a
// slow script never delays it. A reload that deletes the instance reports
// DELETED with notify_deleted, FAULT without (keepalived's rule).
func (in *instance) notify(s vrrp.State) {
	name := s.String()
	specific := forState(s, in.cfg.NotifyMaster, in.cfg.NotifyBackup, in.cfg.NotifyFault, in.cfg.NotifyStop)
	if in.deleting {
		if in.cfg.NotifyDeleted != nil {
			name, specific = "DELETED", in.cfg.NotifyDeleted
			if len(specific.Argv) == 0 {
				specific = nil
			}
		} else {
			name, specific = "FAULT", in.cfg.NotifyFault
		}
	}
	prio := fmt.Sprint(in.m.Priority())
	in.queue.Script(specific)
	in.queue.Script(in.cfg.Notify, "INSTANCE", in.cfg.Name, name, prio)
	in.fifo(fmt.Sprintf("INSTANCE \"%s\" %s %s", in.cfg.Name, name, prio))
}

// notifyPriority writes MASTER_PRIORITY / BACKUP_PRIORITY FIFO lines when
// the effective priority changed, with vrrp_notify_priority_changes.
func (in *instance) notifyPriority() {
	p := in.m.Priority()
	if p == in.lastPrio {
		return
	}
	prev := in.lastPrio
	in.lastPrio = p
	if prev == 0 || !in.d.cfg.Global.NotifyPriorityChanges {
		return
	}
	switch in.m.State() {
	case vrrp.Master:
		in.fifo(fmt.Sprintf("INSTANCE \"%s\" MASTER_PRIORITY %d", in.cfg.Name, p))
	case vrrp.Backup:
		in.fifo(fmt.Sprintf("INSTANCE \"%s\" BACKUP_PRIORITY %d", in.cfg.Name, p))
	}
}

// fifo writes one line to notify_fifo and vrrp_notify_fifo now.
func (in *instance) fifo(line string) { in.d.fifo(line, in.log) }

func (d *Daemon) fifo(line string, log *slog.Logger) {
	g := &d.cfg.Global
	for _, f := range []*config.FIFO{g.NotifyFIFO, g.VRRPNotifyFIFO} {
		if f == nil || f.Path == "" {
			continue
		}
		script.WriteFIFOAs(f.Path, line, f.User, f.Group, log)
	}
}

// forState picks the notify_* script for a state.
func forState(s vrrp.State, master, backup, fault, stop *config.Script) *config.Script {
	switch s {
	case vrrp.Master:
		return master
	case vrrp.Backup:
		return backup
	case vrrp.Fault:
		return fault
	case vrrp.Stop:
		return stop
	}
	return nil
}

// items is a snapshot of the trackers in config order.
func (in *instance) items() []track.Item {
	items := make([]track.Item, 0, len(in.order))
	for _, k := range in.order {
		items = append(items, *in.trackers[k])
	}
	return items
}

// pendingScript names the weight-0 script whose first result the instance
// waits for. A sync group waits as a whole: keepalived 2.2.7 showed no state
// for any member until a member's script had answered, then BACKUP for
// each and the group.
func (in *instance) pendingScript() string {
	if in.group == nil {
		return track.Pending(in.items())
	}
	for _, m := range in.group.members {
		if p := track.Pending(m.items()); p != "" {
			return p
		}
	}
	return ""
}

// started reports whether tracker changes act on the instance now: it has
// left INIT, or its start waits for a weight-0 script's first result.
func (in *instance) started() bool { return in.m.State() != vrrp.Init || in.m.Held() }
