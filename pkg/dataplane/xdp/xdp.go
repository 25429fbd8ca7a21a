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
	"log/slog"
	"net"
	"net/netip"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/pkg/dataplane"
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

// Prog is the XDP program (for prog.Run).
func (b *Backend) Prog() *ebpf.Program { return b.objs.XdpLb }

// Name implements dataplane.Backend.
func (b *Backend) Name() string { return "xdp" }
