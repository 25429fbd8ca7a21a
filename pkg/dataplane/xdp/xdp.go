// Package xdp is halo's XDP data plane: it implements dataplane.Backend on
// top of the program in bpf/lb.c (DR forwarding with Maglev tables and a
// connection table).
//
// Maps and the program links are pinned under a bpffs directory. A halod
// that starts and finds them adopts the maps (flows, tables, counters) and
// swaps its program in with an atomic bpf_link update, so forwarding never
// stops across restarts and upgrades, and established flows keep their
// real.
package xdp

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/maglev"
)

// Limits of the compiled program (bpf/lb.c).
const (
	MaxServices = 64
	MaxReals    = 4096
	RingSize    = maglev.SizeBPF
)

// Reason is a counter slot of reason_stats.
type Reason = lbLbReason

// Reasons, from the C enum.
const (
	PassNotIP     = lbLbReasonR_PASS_NOT_IP
	PassNotVIP    = lbLbReasonR_PASS_NOT_VIP
	PassFragment  = lbLbReasonR_PASS_FRAGMENT
	PassIPOptions = lbLbReasonR_PASS_IP_OPTIONS
	PassIPv6Ext   = lbLbReasonR_PASS_IPV6EXT
	PassTruncated = lbLbReasonR_PASS_TRUNCATED
	PassNoReal    = lbLbReasonR_PASS_NO_REAL
	PassNoMAC     = lbLbReasonR_PASS_NO_MAC
	TX            = lbLbReasonR_TX
	Redirect      = lbLbReasonR_REDIRECT
	CTHit         = lbLbReasonR_CT_HIT
	CTNew         = lbLbReasonR_CT_NEW
	numReasons    = lbLbReasonR_MAX
)

// Options configure the backend.
type Options struct {
	// Interfaces get the program attached; VIP traffic arrives there.
	Interfaces []string
	// Mode is native, generic or auto (native, falling back to generic).
	Mode string
	// PinPath is a bpffs directory for maps and links; empty: no pinning
	// (nothing survives the process).
	PinPath string
	// KeepOnClose leaves program and maps in place when the backend closes.
	KeepOnClose bool
	Log         *slog.Logger
	// ResolveMAC finds a real's MAC and egress interface; default: the
	// kernel's route and neighbour tables, probing when missing.
	ResolveMAC func(ip netip.Addr) (net.HardwareAddr, int, error)
}

type svcState struct {
	id   uint32
	ring uint32
}

// Backend is the XDP data plane.
type Backend struct {
	opts  Options
	objs  lbObjects
	links map[string]link.Link
	log   *slog.Logger

	mu        sync.Mutex
	installed []dataplane.Service
	svcs      map[dataplane.ServiceKey]*svcState
	realIDs   map[netip.Addr]uint32
	realMACs  map[uint32]realInfo
	warned    map[string]bool
	stop      chan struct{}
	wg        sync.WaitGroup
}

type realInfo struct {
	mac     net.HardwareAddr
	ifindex int
}

var _ dataplane.Backend = (*Backend)(nil)

// Load loads the program and its maps without attaching anything; tests
// use it with prog.Run.
func Load(pinPath string) (*Backend, error) {
	spec, err := loadLb()
	if err != nil {
		return nil, err
	}
	return loadSpec(spec, pinPath)
}

func loadSpec(spec *ebpf.CollectionSpec, pinPath string) (*Backend, error) {
	b := &Backend{links: map[string]link.Link{}, svcs: map[dataplane.ServiceKey]*svcState{},
		realIDs: map[netip.Addr]uint32{}, realMACs: map[uint32]realInfo{}, warned: map[string]bool{},
		stop: make(chan struct{}), log: slog.New(slog.DiscardHandler)}
	var opts ebpf.CollectionOptions
	if pinPath != "" {
		if err := ensureBPFFS(pinPath); err != nil {
			return nil, err
		}
		if err := os.MkdirAll(pinPath, 0o700); err != nil {
			return nil, err
		}
		opts.Maps.PinPath = pinPath
	} else {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	if err := spec.LoadAndAssign(&b.objs, &opts); err != nil {
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	if err := b.adopt(); err != nil {
		b.objs.Close()
		return nil, err
	}
	return b, nil
}

// New loads (or adopts) the data plane and attaches it to the interfaces.
func New(opts Options) (*Backend, error) {
	b, err := Load(opts.PinPath)
	if err != nil {
		return nil, err
	}
	b.opts = opts
	if opts.Log != nil {
		b.log = opts.Log
	}
	if b.opts.ResolveMAC == nil {
		b.opts.ResolveMAC = resolveMAC
	}
	for _, name := range opts.Interfaces {
		if err := b.attach(name); err != nil {
			b.Close()
			return nil, err
		}
	}
	b.wg.Add(1)
	go b.refreshLoop()
	return b, nil
}

// Prog is the XDP program (for prog.Run).
func (b *Backend) Prog() *ebpf.Program { return b.objs.XdpLb }

func (b *Backend) linkPin(ifname string) string {
	return filepath.Join(b.opts.PinPath, "link_"+ifname)
}

func (b *Backend) attach(ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return fmt.Errorf("dataplane interface %s: %w", ifname, err)
	}
	if b.opts.PinPath != "" {
		if l, err := link.LoadPinnedLink(b.linkPin(ifname), nil); err == nil {
			// A previous halod left the program attached: replace it in
			// one step, without a moment of no program.
			if err := l.Update(b.objs.XdpLb); err != nil {
				l.Close()
				return fmt.Errorf("replace XDP program on %s: %w", ifname, err)
			}
			b.links[ifname] = l
			b.log.Info("adopted pinned XDP link; program replaced atomically", "interface", ifname)
			return nil
		}
	}
	var modes []link.XDPAttachFlags
	switch b.opts.Mode {
	case "native":
		modes = []link.XDPAttachFlags{link.XDPDriverMode}
	case "generic":
		modes = []link.XDPAttachFlags{link.XDPGenericMode}
	default:
		modes = []link.XDPAttachFlags{link.XDPDriverMode, link.XDPGenericMode}
	}
	var errs []error
	for _, m := range modes {
		l, err := link.AttachXDP(link.XDPOptions{Program: b.objs.XdpLb, Interface: ifi.Index, Flags: m})
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if b.opts.PinPath != "" {
			if err := l.Pin(b.linkPin(ifname)); err != nil {
				l.Close()
				return fmt.Errorf("pin XDP link: %w", err)
			}
		}
		b.links[ifname] = l
		b.log.Info("XDP program attached", "interface", ifname, "mode", modeName(m))
		return nil
	}
	return fmt.Errorf("attach XDP to %s: %w", ifname, errors.Join(errs...))
}

func modeName(m link.XDPAttachFlags) string {
	if m == link.XDPGenericMode {
		return "generic"
	}
	return "native"
}

// adopt rebuilds the id allocations from maps a previous halod pinned.
func (b *Backend) adopt() error {
	var k lbVipKey
	var v lbVipMeta
	it := b.objs.Vips.Iterate()
	for it.Next(&k, &v) {
		key := dataplane.ServiceKey{Addr: addrFrom(k.Addr, k.Family), Port: ntohs(k.Port), Proto: dataplane.Protocol(k.Proto)}
		b.svcs[key] = &svcState{id: v.Id, ring: v.Ring}
		b.installed = append(b.installed, dataplane.Service{Key: key})
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("adopt services: %w", err)
	}
	for id := uint32(1); id < MaxReals; id++ {
		var r lbReal
		if err := b.objs.Reals.Lookup(id, &r); err != nil {
			return fmt.Errorf("adopt reals: %w", err)
		}
		if r.Valid == 0 {
			continue
		}
		a := addrFrom(r.Addr, r.Family)
		b.realIDs[a] = id
		b.realMACs[id] = realInfo{mac: append(net.HardwareAddr(nil), r.Mac[:]...), ifindex: int(r.Ifindex)}
	}
	return nil
}

func addrFrom(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := 0; i < 4; i++ {
		binary.NativeEndian.PutUint32(b[i*4:], w[i])
	}
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func addrWords(a netip.Addr) (w [4]uint32, family uint8) {
	if a.Is4() {
		b := a.As4()
		w[0] = binary.NativeEndian.Uint32(b[:])
		return w, 4
	}
	b := a.As16()
	for i := 0; i < 4; i++ {
		w[i] = binary.NativeEndian.Uint32(b[i*4:])
	}
	return w, 6
}

func htons(p uint16) uint16 { return binary.NativeEndian.Uint16([]byte{byte(p >> 8), byte(p)}) }

func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return uint16(b[0])<<8 | uint16(b[1])
}

// Name implements dataplane.Backend.
func (b *Backend) Name() string { return "xdp" }

func (b *Backend) flags(s dataplane.Service) uint32 {
	var f uint32
	switch s.Scheduler {
	case "mh", "sh":
		f = uint32(lbLbFlagsSVC_HASH_SRC)
		for _, fl := range s.SchedFlags {
			if fl == "sh-port" || fl == "mh-port" {
				f |= uint32(lbLbFlagsSVC_HASH_PORT)
			}
		}
	case "rr", "wrr":
		f = uint32(lbLbFlagsSVC_ROUND)
	default:
		// lc/wlc need connection counts per real that the fast path does
		// not keep; weighted round robin over the same weights is the
		// documented stand-in.
		if !b.warned[s.Scheduler] {
			b.warned[s.Scheduler] = true
			b.log.Warn("scheduler has no XDP equivalent; using weighted round robin", "lvs_sched", s.Scheduler, "service", s.Key.String())
		}
		f = uint32(lbLbFlagsSVC_ROUND)
	}
	if s.Persistence > 0 {
		// Client affinity by source hashing: the same client lands on the
		// same real for as long as the real set does not change.
		f = uint32(lbLbFlagsSVC_HASH_SRC)
	}
	return f
}

// Apply implements dataplane.Backend.
func (b *Backend) Apply(ctx context.Context, desired []dataplane.Service) error {
	if err := dataplane.Validate(desired); err != nil {
		return err
	}
	var errs []error
	for _, s := range desired {
		if s.Key.FWMark != 0 {
			errs = append(errs, fmt.Errorf("service %s: firewall-mark services are not supported by the XDP data plane", s.Key))
		}
		for _, r := range s.Reals {
			m := r.Method
			if m == "" {
				m = s.Method
			}
			if m != dataplane.DR {
				errs = append(errs, fmt.Errorf("service %s real %s: lb_kind %s is not supported by the XDP data plane yet (DR only)", s.Key, r.Key(), m))
			}
		}
	}
	if len(desired) > MaxServices {
		errs = append(errs, fmt.Errorf("%d services, the XDP program holds %d", len(desired), MaxServices))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	desired = dataplane.Canonical(desired)
	// Only services that changed get a new table: a health-check verdict on
	// one service must not rewrite every service's 16k-slot table.
	changed := map[dataplane.ServiceKey]bool{}
	d := dataplane.Diff(b.installed, desired)
	for _, s := range d.AddServices {
		changed[s.Key] = true
	}
	for _, s := range d.UpdateServices {
		changed[s.Key] = true
	}
	for _, list := range [][]dataplane.RealChange{d.AddReals, d.UpdateReals, d.RemoveReals} {
		for _, r := range list {
			changed[r.Service] = true
		}
	}
	want := map[dataplane.ServiceKey]bool{}
	for _, s := range desired {
		want[s.Key] = true
		if !changed[s.Key] && !b.missingReal(s) {
			continue
		}
		if err := b.applyService(s); err != nil {
			return err
		}
	}
	for k, st := range b.svcs {
		if want[k] {
			continue
		}
		vk := vipKey(k)
		if err := b.objs.Vips.Delete(&vk); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("remove service %s: %w", k, err)
		}
		delete(b.svcs, k)
		_ = st
	}
	b.installed = desired
	return nil
}

// missingReal reports whether a real of s has no usable slot yet (its MAC
// could not be resolved last time), so the service must be retried.
func (b *Backend) missingReal(s dataplane.Service) bool {
	for _, r := range s.Reals {
		id, ok := b.realIDs[r.Addr]
		if !ok || isZeroMAC(b.realMACs[id].mac) {
			return true
		}
	}
	return false
}

func vipKey(k dataplane.ServiceKey) lbVipKey {
	w, fam := addrWords(k.Addr)
	return lbVipKey{Addr: w, Port: htons(k.Port), Proto: uint8(k.Proto), Family: fam}
}

func (b *Backend) applyService(s dataplane.Service) error {
	var backends []maglev.Backend
	for _, r := range s.Reals {
		id, err := b.realID(r)
		if err != nil {
			b.log.Warn("real server not usable yet", "service", s.Key.String(), "real", r.Key().String(), "err", err)
			continue
		}
		backends = append(backends, maglev.Backend{ID: id, Key: r.Addr.String(), Weight: r.Weight})
	}
	st := b.svcs[s.Key]
	if st == nil {
		id, err := b.freeServiceID()
		if err != nil {
			return err
		}
		st = &svcState{id: id, ring: 1} // the first table goes to half 0
		b.svcs[s.Key] = st
	}
	flags := b.flags(s)
	build := maglev.Table
	if flags&uint32(lbLbFlagsSVC_ROUND) != 0 {
		build = maglev.RoundRobin
	}
	table, err := build(backends, RingSize)
	if errors.Is(err, maglev.ErrEmpty) {
		table = make([]uint32, RingSize) // no real: the program passes the traffic
	} else if err != nil {
		return err
	}
	next := st.ring ^ 1
	base := (st.id*2 + next) * RingSize
	keys := make([]uint32, RingSize)
	for i := range keys {
		keys[i] = base + uint32(i)
	}
	if _, err := b.objs.Rings.BatchUpdate(keys, table, nil); err != nil {
		// Fall back to single updates where batch ops are unavailable.
		for i := range keys {
			if err := b.objs.Rings.Put(keys[i], table[i]); err != nil {
				return fmt.Errorf("write table of %s: %w", s.Key, err)
			}
		}
	}
	vk := vipKey(s.Key)
	meta := lbVipMeta{Id: st.id, Ring: next, Flags: flags}
	if err := b.objs.Vips.Put(&vk, &meta); err != nil {
		return fmt.Errorf("install service %s: %w", s.Key, err)
	}
	st.ring = next
	return nil
}

func (b *Backend) freeServiceID() (uint32, error) {
	used := map[uint32]bool{}
	for _, st := range b.svcs {
		used[st.id] = true
	}
	for id := uint32(0); id < MaxServices; id++ {
		if !used[id] {
			return id, nil
		}
	}
	return 0, fmt.Errorf("no free service slot (max %d)", MaxServices)
}

// realID returns the real's slot, writing the entry (with its MAC) the
// first time. Slots of reals that leave every service stay valid so the
// flows the connection table still sends there can finish.
func (b *Backend) realID(r dataplane.Real) (uint32, error) {
	if id, ok := b.realIDs[r.Addr]; ok {
		if info := b.realMACs[id]; info.mac != nil && !isZeroMAC(info.mac) {
			return id, nil
		}
	}
	mac, ifindex := r.MAC, 0
	if mac == nil {
		var err error
		mac, ifindex, err = b.opts.ResolveMAC(r.Addr)
		if err != nil {
			return 0, err
		}
	}
	id, ok := b.realIDs[r.Addr]
	if !ok {
		for cand := uint32(1); cand < MaxReals; cand++ {
			if !b.idUsed(cand) {
				id = cand
				break
			}
		}
		if id == 0 {
			return 0, fmt.Errorf("no free real slot (max %d)", MaxReals-1)
		}
	}
	if err := b.writeReal(id, r.Addr, mac, ifindex); err != nil {
		return 0, err
	}
	b.realIDs[r.Addr] = id
	return id, nil
}

func (b *Backend) idUsed(id uint32) bool {
	for _, x := range b.realIDs {
		if x == id {
			return true
		}
	}
	return false
}

func isZeroMAC(m net.HardwareAddr) bool {
	for _, x := range m {
		if x != 0 {
			return false
		}
	}
	return true
}

func (b *Backend) writeReal(id uint32, a netip.Addr, mac net.HardwareAddr, ifindex int) error {
	w, fam := addrWords(a)
	r := lbReal{Addr: w, Family: fam, Valid: 1, Ifindex: uint32(ifindex)}
	copy(r.Mac[:], mac)
	if ifindex != 0 && !b.ingress(ifindex) {
		// Another interface: the devmap must know it and the program
		// needs its MAC for the source address.
		if ifi, err := net.InterfaceByIndex(ifindex); err == nil {
			var m lbReal
			copy(m.Mac[:], ifi.HardwareAddr)
			k := uint32(ifindex)
			if err := b.objs.IfMacs.Put(k, &m); err != nil {
				return err
			}
			if err := b.objs.TxPorts.Put(k, k); err != nil {
				return fmt.Errorf("devmap %s: %w", ifi.Name, err)
			}
		}
	}
	if err := b.objs.Reals.Put(id, &r); err != nil {
		return fmt.Errorf("write real %s: %w", a, err)
	}
	b.realMACs[id] = realInfo{mac: append(net.HardwareAddr(nil), mac...), ifindex: ifindex}
	return nil
}

func (b *Backend) ingress(ifindex int) bool {
	for name := range b.links {
		if ifi, err := net.InterfaceByName(name); err == nil && ifi.Index == ifindex {
			return true
		}
	}
	return len(b.links) == 0
}

// refreshLoop re-resolves real MACs so a real that changes its MAC (a
// replaced host, a moved VM) keeps receiving traffic.
func (b *Backend) refreshLoop() {
	defer b.wg.Done()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.refresh()
	}
}

// refresh re-resolves every real's MAC and rewrites the entries that
// changed.
func (b *Backend) refresh() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for a, id := range b.realIDs {
		mac, ifindex, err := b.opts.ResolveMAC(a)
		if err != nil {
			continue
		}
		if old := b.realMACs[id]; old.mac.String() != mac.String() || old.ifindex != ifindex {
			b.log.Info("real server MAC changed", "real", a, "mac", mac)
			if err := b.writeReal(id, a, mac, ifindex); err != nil {
				b.log.Error("update real", "real", a, "err", err)
			}
		}
	}
}

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

// Close implements dataplane.Backend: it detaches and unpins, unless
// KeepOnClose asks to leave the data plane forwarding.
func (b *Backend) Close() error {
	select {
	case <-b.stop:
	default:
		close(b.stop)
	}
	b.wg.Wait()
	var names []string
	for n := range b.links {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		l := b.links[n]
		if !b.opts.KeepOnClose {
			if b.opts.PinPath != "" {
				l.Unpin()
			}
		}
		l.Close()
	}
	if !b.opts.KeepOnClose && b.opts.PinPath != "" {
		for _, m := range []*ebpf.Map{b.objs.Vips, b.objs.Rings, b.objs.Reals, b.objs.Conntrack, b.objs.VipStats,
			b.objs.RealStats, b.objs.ReasonStats, b.objs.RrCursor, b.objs.TxPorts, b.objs.IfMacs} {
			m.Unpin()
		}
	}
	return b.objs.Close()
}
