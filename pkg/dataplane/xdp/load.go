package xdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// Load loads the program and its maps without attaching anything; tests
// use it with prog.Run.
func Load(pinPath string) (*Backend, error) { return LoadWith(Options{PinPath: pinPath}) }

// LoadWith is Load with options (sizes, timeouts); nothing is attached.
func LoadWith(opts Options) (*Backend, error) {
	spec, err := loadLb()
	if err != nil {
		return nil, err
	}
	return loadSpec(spec, opts)
}

// layoutDir names the pin directory of this program's maps: the layout
// version and the sizes. A halod whose layout differs finds no directory
// of its own, builds fresh maps there while the old program keeps
// forwarding with the old maps, and swaps the program once its maps hold
// the services (swapPending).
func layoutDir(o Options) string {
	return fmt.Sprintf("maps-v%d-s%d-r%d-f%d", LayoutVersion, o.MaxServices, o.MaxReals, o.FlowTableSize)
}

func loadSpec(spec *ebpf.CollectionSpec, opts Options) (*Backend, error) {
	opts.defaults()
	b := &Backend{opts: opts, links: map[string]link.Link{}, pending: map[string]link.Link{}, created: map[string]bool{}, onIndex: map[string]int{},
		svcs: map[dataplane.ServiceKey]*svcState{}, svcIDs: newIDPool(0, opts.MaxServices),
		slots: newSlotTable(opts.MaxReals), neigh: newNeighbours(), egr: newEgressSlots(), warned: map[string]bool{},
		stop: make(chan struct{}), log: slog.New(slog.DiscardHandler), mono: monoNow}
	if opts.Log != nil {
		b.log = opts.Log
	}
	for name, n := range map[string]uint32{"vips": opts.MaxServices, "rings": opts.MaxServices, "new_rings": opts.MaxServices, "svc_meta": opts.MaxServices,
		"reals": opts.MaxReals, "real_stats": opts.MaxReals,
		"conntrack": opts.FlowTableSize, "conntrack4": opts.FlowTableSize} {
		spec.Maps[name].MaxEntries = n
	}
	b.seenWords = seenWords(opts.FlowTableSize)
	spec.Maps["flow_seen"].MaxEntries = b.seenWords * uint32(lbLbLimitsLB_SEEN_GROUP)
	// stageTable creates the inner maps without BTF, so the template must
	// have none either: before 6.2, bpf_map_meta_equal compares timer_off,
	// which is -ENOENT for a map created with a struct value's BTF and
	// -EINVAL for one created without BTF, and the kernel rejects every
	// table (EINVAL) although sizes and flags agree.
	for _, name := range []string{"rings", "new_rings"} {
		spec.Maps[name].InnerMap.Key, spec.Maps[name].InnerMap.Value = nil, nil
	}
	var copts ebpf.CollectionOptions
	if opts.PinPath != "" {
		if err := ensureBPFFS(opts.PinPath); err != nil {
			return nil, err
		}
		b.mapDir = filepath.Join(opts.PinPath, layoutDir(opts))
		if _, err := os.Stat(b.mapDir); errors.Is(err, os.ErrNotExist) {
			b.fresh = true
		}
		if err := os.MkdirAll(b.mapDir, 0o700); err != nil {
			return nil, err
		}
		copts.Maps.PinPath = b.mapDir
	} else {
		for _, m := range spec.Maps {
			m.Pinning = ebpf.PinNone
		}
	}
	if err := spec.LoadAndAssign(&b.objs, &copts); err != nil {
		b.dropFreshDir()
		return nil, fmt.Errorf("load XDP program: %w", err)
	}
	// The flow_seen epoch goes on where a previous halod left it.
	var old lbLbConfig
	if b.objs.Config.Lookup(uint32(0), &old) == nil {
		b.seenEpoch, b.seenEpochTCP = old.SeenEpoch, old.SeenEpochTcp
	}
	b.seenTurned, b.seenTurnedTCP = b.now(), b.now()
	if err := b.writeConfig(); err != nil {
		b.objs.Close()
		b.dropFreshDir()
		return nil, err
	}
	if err := b.adopt(); err != nil {
		b.objs.Close()
		b.dropFreshDir()
		return nil, err
	}
	if err := b.adoptEgress(); err != nil {
		b.objs.Close()
		b.dropFreshDir()
		return nil, err
	}
	if err := b.adoptRNAT(); err != nil {
		b.objs.Close()
		b.dropFreshDir()
		return nil, err
	}
	b.dropRetiredPins()
	return b, nil
}

// retiredMaps are maps an earlier build of the same layout pinned and this
// one no longer has; their values are nothing the program reads.
var retiredMaps = []string{
	"vip_stats", // per-service counters: now the sum of the service's entries
}

// dropRetiredPins removes the retired maps' pins from the adopted
// directory, so a restart-upgrade does not keep them for as long as the
// layout lives (a clean stop removes the whole directory anyway).
func (b *Backend) dropRetiredPins() {
	if b.mapDir == "" {
		return
	}
	for _, n := range retiredMaps {
		if err := os.Remove(filepath.Join(b.mapDir, n)); err != nil && !errors.Is(err, os.ErrNotExist) {
			b.log.Warn("remove the pin of a map this version no longer uses", "map", n, "err", err)
		}
	}
}

// dropFreshDir removes a map directory this process created and never
// used for forwarding; pins another halod made are never touched here.
func (b *Backend) dropFreshDir() {
	if b.fresh && b.mapDir != "" {
		os.RemoveAll(b.mapDir)
	}
}

func (b *Backend) writeConfig() error {
	c := lbLbConfig{TcpTimeoutNs: uint64(b.opts.TCPTimeout), TcpFinTimeoutNs: uint64(b.opts.TCPFinTimeout),
		UdpTimeoutNs: uint64(b.opts.UDPTimeout), SeenEpoch: b.seenEpoch, SeenEpochTcp: b.seenEpochTCP,
		SeenMask: b.seenWords - 1}
	if b.opts.SYNFloodThreshold > 0 {
		c.FloodThreshold = uint32(b.opts.SYNFloodThreshold)
	}
	if err := b.objs.Config.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("write data-plane settings: %w", err)
	}
	return nil
}

// New loads (or adopts) the data plane and attaches it to the interfaces.
// When it fails, whatever a previous halod left forwarding stays as it was.
func New(opts Options) (*Backend, error) {
	b, err := LoadWith(opts)
	if err != nil {
		return nil, err
	}
	for _, name := range b.opts.Interfaces {
		if err := b.attach(name); err != nil {
			b.abandon()
			return nil, err
		}
	}
	// The background work runs where the backend was made: a caller in
	// a network namespace of its own (halo-bench's lab, tests) has only
	// its own thread there, and maintain would otherwise read another
	// namespace's interfaces, routes and neighbours.
	netns, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		b.log.Warn("network namespace not known; background work runs in the process's", "err", err)
	}
	b.wg.Add(1)
	go b.maintain(netns)
	return b, nil
}

// abandon releases this process's handles after a failed start: links
// this process made are detached, pinned ones (a running data plane) are
// left in place, and a map directory this process created is removed.
func (b *Backend) abandon() {
	for name, l := range b.links {
		if b.created[name] {
			l.Unpin()
		}
		l.Close()
	}
	for _, l := range b.pending {
		l.Close()
	}
	b.objs.Close()
	b.dropFreshDir()
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
			if b.fresh {
				// The running program uses maps of another layout: it
				// keeps forwarding until ours hold the services.
				b.pending[ifname] = l
				b.log.Info("pinned XDP program has another map layout; it keeps forwarding until the first apply, then is replaced",
					"interface", ifname, "layout", layoutDir(b.opts))
				_, err = b.egress(ifi.Index)
				return err
			}
			// Same maps: replace the program in one step, without a
			// moment of no program.
			if err := l.Update(b.objs.XdpLb); err != nil {
				l.Close()
				return fmt.Errorf("replace XDP program on %s: %w", ifname, err)
			}
			b.links[ifname] = l
			b.onIndex[ifname] = ifi.Index
			b.log.Info("adopted pinned XDP link; program replaced atomically", "interface", ifname)
			_, err = b.egress(ifi.Index)
			return err
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
		b.onIndex[ifname] = ifi.Index
		b.created[ifname] = true
		b.log.Info("XDP program attached", "interface", ifname, "mode", modeName(m))
		_, err = b.egress(ifi.Index)
		return err
	}
	return fmt.Errorf("attach XDP to %s: %w", ifname, errors.Join(errs...))
}

// swapPending replaces a program of another layout once this one's maps
// hold the services, then removes the old layout's pins (the old maps are
// freed with the last reference).
func (b *Backend) swapPending() error {
	for name, l := range b.pending {
		if err := l.Update(b.objs.XdpLb); err != nil {
			return fmt.Errorf("replace XDP program on %s: %w", name, err)
		}
		b.links[name] = l
		if ifi, err := netInterfaceByName(name); err == nil {
			b.onIndex[name] = ifi.Index
		}
		delete(b.pending, name)
		b.log.Info("XDP program of the old layout replaced atomically", "interface", name)
	}
	ents, err := os.ReadDir(b.opts.PinPath)
	if err != nil {
		return nil
	}
	mine := filepath.Base(b.mapDir)
	for _, e := range ents {
		n := e.Name()
		switch {
		case strings.HasPrefix(n, "link_") || n == mine:
		case e.IsDir() && strings.HasPrefix(n, "maps-v"):
			os.RemoveAll(filepath.Join(b.opts.PinPath, n))
		case !e.IsDir():
			os.Remove(filepath.Join(b.opts.PinPath, n)) // layout 1 pinned its maps here
		}
	}
	return nil
}

func modeName(m link.XDPAttachFlags) string {
	if m == link.XDPGenericMode {
		return "generic"
	}
	return "native"
}

// adopt rebuilds the id allocations from maps a previous halod pinned:
// services from vips, (service, real) slots from reals (each entry names
// its service), generations from every slot.
func (b *Backend) adopt() error {
	byID := map[uint32]dataplane.ServiceKey{}
	usedSvc := map[uint32]bool{}
	metas := map[uint32]lbVipMeta{}
	var k lbVipKey
	var v lbVipMeta
	it := b.objs.Vips.Iterate()
	for it.Next(&k, &v) {
		key := dataplane.ServiceKey{Addr: addrFrom(k.Addr, k.Family), Port: ntohs(k.Port), Proto: dataplane.Protocol(k.Proto)}
		b.svcs[key] = &svcState{id: v.Id, reals: map[dataplane.RealKey]uint32{}, flags: v.Flags &^ svcRehashed, mask: v.SrcMask}
		metas[v.Id] = v
		byID[v.Id] = key
		usedSvc[v.Id] = true
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("adopt services: %w", err)
	}
	if len(b.svcs) == 0 && (b.fresh || b.mapDir == "") {
		return nil // maps this process created: nothing to read
	}
	b.slots.adopted = b.mapDir != "" && !b.fresh
	b.slots.rekey = b.slots.adopted
	b.svcIDs = rebuildPool(usedSvc, 0, b.opts.MaxServices)
	used := map[uint32]bool{}
	reals := map[dataplane.ServiceKey][]dataplane.Real{}
	var id uint32
	var r lbReal
	rit := b.objs.Reals.Iterate()
	for rit.Next(&id, &r) {
		b.slots.gens[id] = r.Gen
		if r.Flags&uint8(lbRealFlagsREAL_VALID) == 0 || id == 0 {
			continue
		}
		key, ok := byID[r.Svc]
		if !ok {
			continue
		}
		rk := dataplane.RealKey{Addr: addrFrom(r.Addr, r.Family), Port: ntohs(r.Port)}
		used[id] = true
		b.svcs[key].reals[rk] = id
		b.slots.owners[id] = slotOwner{svc: key, real: rk, state: dataplane.Real{Addr: rk.Addr, Port: rk.Port}}
		if b.slots.byAddr[rk.Addr] == nil {
			b.slots.byAddr[rk.Addr] = map[uint32]bool{}
		}
		b.slots.byAddr[rk.Addr][id] = true
		if r.Flags&uint8(lbRealFlagsREAL_HAS_MAC) != 0 {
			b.neigh.known[rk.Addr] = realInfo{mac: append(net.HardwareAddr(nil), r.Mac[:]...), ifindex: int(r.Ifindex)}
			b.slots.hasMAC[id] = true
		}
		// Weights are not in the maps: the first Apply sees every real
		// as changed and rewrites the tables it owns.
		reals[key] = append(reals[key], dataplane.Real{Addr: rk.Addr, Port: rk.Port})
	}
	if err := rit.Err(); err != nil {
		return fmt.Errorf("adopt reals: %w", err)
	}
	b.slots.ids = rebuildPool(used, 1, b.opts.MaxReals)
	for _, st := range b.svcs {
		b.adoptRing(st, metas[st.id])
	}
	for key := range b.svcs {
		b.installed = append(b.installed, dataplane.Service{Key: key, Reals: reals[key]})
	}
	b.installed = dataplane.Canonical(b.installed)
	return nil
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
		if !b.opts.KeepOnClose && b.opts.PinPath != "" {
			l.Unpin()
		}
		l.Close()
	}
	for _, l := range b.pending {
		l.Close() // another layout's program: never ours to remove
	}
	err := b.objs.Close()
	if !b.opts.KeepOnClose && b.mapDir != "" && len(b.pending) == 0 {
		os.RemoveAll(b.mapDir)
	}
	return err
}

// Release closes this process's handles and leaves the pinned program and
// maps exactly as they are, whatever KeepOnClose says: for a halod that
// fails after New, which must never tear down a data plane that forwards.
func (b *Backend) Release() error {
	b.opts.KeepOnClose = true
	return b.Close()
}
