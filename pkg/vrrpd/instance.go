package vrrpd

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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
	conn     *vrrpnet.Conn
	ann      *announce.Announcer
	queue    *script.Queue

	csMode vrrp.ChecksumMode // v3/IPv4: what we send; follows what we hear

	trackers    map[string]*track.Item // by kind+name
	order       []string
	drops       map[string]int
	transitions int

	lastMaster netip.Addr // for skip_check_adv_addr

	annCancel context.CancelFunc

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
		in.vips = append(in.vips, a)
		in.addrs = append(in.addrs, v.Prefix.Addr())
	}
	for _, v := range ic.ExcludedVIPs {
		a, err := vip.FromConfig(v, in.ifname)
		if err != nil {
			return nil, fmt.Errorf("virtual_ipaddress_excluded %s: %w", v.Prefix, err)
		}
		in.excluded = append(in.excluded, a)
	}
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
	for _, t := range ic.TrackScripts {
		in.addTracker("script", t, scriptWeight(d.cfg, t))
	}
	for _, t := range ic.TrackInterfaces {
		in.addTracker("interface", t, 0)
	}
	for _, t := range ic.TrackFiles {
		w := 1
		for _, tf := range d.cfg.TrackFiles {
			if tf.Name == t.Name {
				w = tf.Weight
			}
		}
		in.addTracker("file", t, w)
	}
	if !ic.DontTrackPrimary {
		// The instance's own interface going down means FAULT.
		key := "interface/" + ic.Interface
		if _, ok := in.trackers[key]; !ok {
			in.trackers[key] = &track.Item{Name: ic.Interface, Weight: 0, OK: true}
			in.order = append(in.order, key)
		}
	}
	in.m = vrrp.New(in.machineConfig())
	in.queue = script.NewQueue(d.runner, in.log, 0)
	return in, nil
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
				// init_fail starts the tracker failed until the first run.
				in.trackers[kind+"/"+t.Name] = &track.Item{Name: t.Name, Weight: weight, Reverse: reverse, OK: !s.InitFail}
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
	if it.OK == ok && it.Value == value {
		return false
	}
	it.OK, it.Value = ok, value
	in.log.Info("tracked object changed", "kind", kind, "name", name, "ok", ok, "value", value)
	return true
}

// recompute applies the trackers: FAULT, or a new effective priority.
func (in *instance) recompute(now time.Time, act bool) {
	items := make([]track.Item, 0, len(in.order))
	for _, k := range in.order {
		items = append(items, *in.trackers[k])
	}
	prio, fault := track.Effective(in.cfg.Priority, items)
	var acts []vrrp.Action
	if fault != "" {
		acts = append(acts, in.m.SetFault(now, true, fault+" is down")...)
	} else {
		acts = append(acts, in.m.SetFault(now, false, "tracked objects recovered")...)
	}
	acts = append(acts, in.m.SetPriority(now, prio)...)
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
	// The primary address breaks equal-priority ties: the machine is made
	// again now that it is known.
	in.m = vrrp.New(in.machineConfig())
	if in.group != nil {
		in.group.vg.Members[in.groupIdx] = in.m
	}
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
	if !in.is6 {
		mode, err := vrrp.VerifyChecksum(msg, p.Src, p.Dst)
		if err != nil {
			return "bad_checksum"
		}
		if a.Version == 3 && mode != in.csMode && !in.cfg.V3ChecksumAsV2 {
			// Follow the peer's checksum form, as keepalived auto-detects
			// pre-1.3.6 unicast peers.
			in.log.Info("peer uses another VRRPv3 checksum form; following it", "mode", mode.String(), "from", p.Src)
			in.csMode = mode
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
	if in.unicast && in.cfg.CheckUnicastSrc && !in.isPeer(p.Src) {
		return "unknown_unicast_source"
	}
	in.lastMaster = p.Src
	return ""
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
		if err := in.conn.Send(in.src, dst, msg); err != nil {
			in.log.Warn("send advert", "to", dst, "err", err)
		}
	}
}

func (in *instance) addVIPs() {
	for _, v := range append(append([]vip.Addr(nil), in.vips...), in.excluded...) {
		if err := vip.Add(v); err != nil {
			in.log.Error("add VIP", "vip", v.String(), "err", err)
		}
	}
}

func (in *instance) delVIPs() {
	for _, v := range append(append([]vip.Addr(nil), in.vips...), in.excluded...) {
		if err := vip.Del(v); err != nil {
			in.log.Error("remove VIP", "vip", v.String(), "err", err)
		}
	}
}

// announce sends `repeat` GARP/NA per VIP now and again after delay (0: no
// second burst), then, for a new master with garp_master_refresh, every
// refresh interval, until the instance leaves MASTER.
func (in *instance) announce(repeat int, delay time.Duration, master bool) {
	if repeat <= 0 {
		return
	}
	if master {
		in.stopAnnounce()
	}
	ctx, cancel := context.WithCancel(context.Background())
	if master {
		in.annCancel = cancel
	}
	var ips []netip.Addr
	for _, v := range append(append([]vip.Addr(nil), in.vips...), in.excluded...) {
		ips = append(ips, v.Prefix.Addr())
	}
	g := in.cfg.GARP
	ann, log := in.ann, in.log
	go func() {
		if !master {
			defer cancel()
		}
		burst := func(n int) {
			if err := ann.Burst(ctx, ips, n, g.Interval.D(), g.GNAInterval.D()); err != nil && ctx.Err() == nil {
				log.Warn("announce VIPs", "err", err)
			}
		}
		burst(repeat)
		if delay > 0 && !g.MinGARP {
			select {
			case <-time.After(delay):
				burst(repeat)
			case <-ctx.Done():
				return
			}
		}
		if !master || g.MasterRefresh <= 0 {
			return
		}
		t := time.NewTicker(g.MasterRefresh.D())
		defer t.Stop()
		for {
			select {
			case <-t.C:
				burst(g.MasterRefreshRepeat)
			case <-ctx.Done():
				return
			}
		}
	}()
}

func (in *instance) stopAnnounce() {
	if in.annCancel != nil {
		in.annCancel()
		in.annCancel = nil
	}
}

// notify queues the state's script, then `notify` with keepalived's four
// arguments, then the FIFO line: all through the instance's ordered queue.
func (in *instance) notify(s vrrp.State) {
	specific := forState(s, in.cfg.NotifyMaster, in.cfg.NotifyBackup, in.cfg.NotifyFault, in.cfg.NotifyStop)
	prio := fmt.Sprint(in.m.Priority())
	in.queue.Script(specific)
	in.queue.Script(in.cfg.Notify, "INSTANCE", in.cfg.Name, s.String(), prio)
	in.fifo(fmt.Sprintf("INSTANCE \"%s\" %s %s", in.cfg.Name, s, prio))
}

// fifo writes one line to notify_fifo and vrrp_notify_fifo, in queue order.
func (in *instance) fifo(line string) {
	g := &in.d.cfg.Global
	for _, f := range []*config.FIFO{g.NotifyFIFO, g.VRRPNotifyFIFO} {
		if f == nil || f.Path == "" {
			continue
		}
		path := f.Path
		in.queue.Func(func() { script.WriteFIFO(path, line, in.log) })
	}
}

// group is a running sync group.
type group struct {
	cfg     *config.SyncGroup
	vg      *vrrp.Group
	members []*instance
	queue   *script.Queue
	state   vrrp.State
}

// maybeNotify runs the group's notify scripts when all members agree on a
// new state.
func (g *group) maybeNotify(d *Daemon) {
	s := g.members[0].m.State()
	for _, m := range g.members[1:] {
		if m.m.State() != s {
			return
		}
	}
	if s == g.state {
		return
	}
	g.state = s
	g.queue.Script(forState(s, g.cfg.NotifyMaster, g.cfg.NotifyBackup, g.cfg.NotifyFault, g.cfg.NotifyStop))
	g.queue.Script(g.cfg.Notify, "GROUP", g.cfg.Name, s.String(), "0")
	_ = d
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
