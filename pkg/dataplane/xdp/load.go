package xdp

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/pkg/dataplane"
)

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
