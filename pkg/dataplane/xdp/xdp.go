// Package xdp is halo's XDP data plane: it implements dataplane.Backend on
// top of the program in bpf/lb.c (DR, NAT and TUN forwarding with
// per-service Maglev tables and a flow table).
//
// The files follow the concepts: load.go loads, pins, adopts and swaps the
// program; services.go applies the desired set (tables, ordering, skipping);
// reals.go owns the (service, real) slots; neighbour.go resolves real MACs
// outside the lock and retries; stats.go reads counters back; hash.go is the
// selection key in Go; rnat.go the reverse-NAT index of NAT replies;
// nexthop.go the next hops of NAT replies for flows this director never saw.
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
	"time"

	"github.com/cilium/ebpf/link"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// Options configure the backend. Zero values take the defaults of limits.go.
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

	// Map sizes (the dataplane block's max_services, max_reals,
	// flow_table_size). A change is a layout change: see load.go.
	MaxServices, MaxReals, FlowTableSize uint32
	// Idle timeouts of flow-table entries (tcp_timeout, tcp_fin_timeout,
	// udp_timeout).
	TCPTimeout, TCPFinTimeout, UDPTimeout time.Duration
	// SYNFloodThreshold is the new-entry budget per second and CPU
	// (syn_flood_threshold); negative: no limit.
	SYNFloodThreshold int
	// FlowTracking is when flows are recorded (flow_tracking): TrackOnChange
	// (the default: only where a service's table changed, bpf/lb_select.h)
	// or TrackAlways (every flow, the table read on every packet).
	FlowTracking string
	// SelectionHash is the hash of the selection rule (selection_hash):
	// HashMurmur3 (the default) or HashMix32, the one of halo before it.
	// Directors that share flows (a VRRP pair, ECMP) must use the same;
	// changing it on a running director is a hash change (flows kept).
	SelectionHash string
	// Now is the wall clock of table changes (tests move it); default
	// time.Now.
	Now func() time.Time
}

// Flow-tracking modes (Options.FlowTracking).
const (
	TrackOnChange = "on_change"
	TrackAlways   = "always"
)

// Selection hashes (Options.SelectionHash).
const (
	HashMurmur3 = "murmur3"
	HashMix32   = "mix32"
)

func (o *Options) defaults() {
	if o.MaxServices == 0 {
		o.MaxServices = MaxServices
	}
	if o.MaxReals == 0 {
		o.MaxReals = MaxReals
	}
	if o.FlowTableSize == 0 {
		o.FlowTableSize = FlowTableSize
	}
	if o.TCPTimeout == 0 {
		o.TCPTimeout = DefaultTCPTimeout
	}
	if o.TCPFinTimeout == 0 {
		o.TCPFinTimeout = DefaultTCPFinTimeout
	}
	if o.UDPTimeout == 0 {
		o.UDPTimeout = DefaultUDPTimeout
	}
	if o.SYNFloodThreshold == 0 {
		o.SYNFloodThreshold = DefaultSYNFloodThreshold
	}
	if o.ResolveMAC == nil {
		o.ResolveMAC = resolveMAC
	}
	if o.FlowTracking == "" {
		o.FlowTracking = TrackOnChange
	}
	if o.SelectionHash == "" {
		o.SelectionHash = HashMurmur3
	}
	if o.Now == nil {
		o.Now = time.Now
	}
}

func (b *Backend) now() time.Time { return b.opts.Now() }

// svcState is an installed service.
type svcState struct {
	id    uint32
	reals map[dataplane.RealKey]uint32 // slot per real
	ring  ringState                    // its slots as published
	flags uint32                       // selection (vip_meta) as published
	mask  [4]uint32
	// retired: what the service's freed entries counted. The program
	// counts per entry only; the service's counters are this plus its
	// live entries'.
	retired dataplane.Stats
}

// Backend is the XDP data plane.
type Backend struct {
	opts  Options
	objs  lbObjects
	links map[string]link.Link
	log   *slog.Logger
	// mapDir is where this layout's maps are pinned; fresh reports that
	// it did not exist before this process (a new layout, or no pins).
	mapDir string
	fresh  bool
	// pending are pinned links of an older program (another layout) that
	// keep forwarding until the first Apply has filled the new maps.
	pending map[string]link.Link
	// created are the links this process attached (not adopted);
	// onIndex the interface index each link went on (reattach.go).
	created map[string]bool
	onIndex map[string]int

	// applyMu serialises Apply and the retry loop; mu guards the state
	// below for readers (Stats, Services, status) and is never held
	// across neighbour resolution.
	applyMu sync.Mutex
	mu      sync.Mutex
	// installed is what the maps hold; lastDesired what was asked last
	// (the retry loop re-applies it once a missing MAC resolves).
	installed   []dataplane.Service
	lastDesired []dataplane.Service
	svcs        map[dataplane.ServiceKey]*svcState
	svcIDs      idPool
	slots       slotTable
	neigh       neighbours
	egr         egressSlots // egress interfaces by the index reals carry
	warned      map[string]bool
	// rnat mirrors the reverse-NAT map (read at load: adoptRNAT).
	rnat map[lbVipKey]lbRnatVal
	// rnatFilter: rnat_filter as last written (rnatfilter.go).
	rnatFilter []uint32
	// nh mirrors the next-hop map (nil until the first write reads it).
	nh map[lbNhKey]lbNhVal
	// seenEpoch(TCP) are cfg->seen_epoch(_tcp); seenTurned(TCP) when they
	// last moved; seenWords flow_seen's indexes.
	seenEpoch, seenEpochTCP   uint32
	seenTurned, seenTurnedTCP time.Time
	seenWords                 uint32
	// settleNext is the earliest next Settle scan; mono the clock of flow
	// entries (monoNow; tests move it).
	settleNext time.Time
	mono       func() uint64
	stop       chan struct{}
	wg         sync.WaitGroup
}

var _ dataplane.Backend = (*Backend)(nil)

// Name implements dataplane.Backend.
func (b *Backend) Name() string { return "xdp" }
