package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strings"

	"github.com/vishvananda/netlink"

	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/dataplane/xdp"
)

// Scenario is one way of handling the generated frames on l0.
type Scenario struct {
	Name  string
	Group string // baseline, halo, nftables, kernel, ipvs
	What  string // one line for the report
	Spec  Spec
	Flows int // a power of two, or NewFlows
	// Warm is sent once before the measured runs (TCP: SYNs that open the
	// flows the measured ACKs hit); nil: the measured frames themselves.
	Warm  *Spec
	Setup func(e *Env) (*Target, error)
	// Skip, when set, is why this machine cannot run the scenario.
	Skip string
	// Path is the way halo's VIP packets must have gone in the measured
	// run, by its reason counters (pathRing, pathTable, pathMixed); a run
	// that went another way is an error, so a row never claims a path it
	// did not measure. "": not checked.
	Path string
}

// Ways of halo's VIP packets (Scenario.Path).
const (
	pathRing  = "ring"  // every one by its table slot, none through the flow table
	pathTable = "table" // every one through the flow table
	pathMixed = "mixed" // some through the flow table (dirty slots), the rest by the slot
	pathReply = "reply" // NAT replies (client_nh), none through the flow table
)

// checkPath is nil when counters (of the measured run) show the packets
// went the scenario's Path.
func (s Scenario) checkPath(c map[string]uint64) error {
	table, ring, _ := tableShare(c)
	var ok bool
	switch s.Path {
	case "":
		return nil
	case pathRing:
		ok = ring > 0 && table == 0
	case pathTable:
		ok = table > 0 && ring == 0
	case pathMixed:
		ok = table > 0 && ring > 0
	case pathReply:
		ok = c["nat_reply"] > 0 && table == 0 && ring == 0
	}
	if ok {
		return nil
	}
	return fmt.Errorf("halo's packets were to go %q but counted %s", s.Path, fmtCounters(c))
}

// Target is a scenario set up on the lab.
type Target struct {
	Count    func() (uint64, error) // frames delivered so far
	Sample   func() ([]byte, error) // a delivered frame (its first bytes), or nil when not sampled
	Check    func(sample []byte) error
	Teardown func()
	// Counters reads program-specific counters for the report (halo's
	// reasons: flow-table hits, new entries, misses).
	Counters func() map[string]uint64
	// AfterWarm, when set, runs between the warm-up and the measured run
	// (halo-dr-32k-changed: a real joins the service).
	AfterWarm func() error
}

func bothSinks(e *Env) (func() (uint64, error), func() ([]byte, error)) {
	count := func() (uint64, error) {
		a, err := e.BackProgs.Count()
		if err != nil {
			return 0, err
		}
		b, err := e.SinkProgs.Count()
		return a + b, err
	}
	sample := func() ([]byte, error) {
		if s, err := e.SinkProgs.Sample(); err != nil || s != nil {
			return s, err
		}
		return e.BackProgs.Sample()
	}
	return count, sample
}

func macIs(b []byte, off int, want net.HardwareAddr, what string) error {
	if len(b) < off+6 {
		return fmt.Errorf("sample of %d bytes", len(b))
	}
	if got := net.HardwareAddr(b[off : off+6]); !bytes.Equal(got, want) {
		return fmt.Errorf("%s MAC %s, want %s", what, got, want)
	}
	return nil
}

// ipOf returns the IP header fields of a sampled frame (IPv4 header
// checksum verified, since the generator patches it per flow).
func ipOf(b []byte) (src, dst netip.Addr, ttl, proto uint8, err error) {
	if len(b) < 14+20 {
		return src, dst, 0, 0, fmt.Errorf("sample of %d bytes", len(b))
	}
	switch uint16(b[12])<<8 | uint16(b[13]) {
	case packet.EtherTypeIPv4:
		h := b[14 : 14+20]
		if packet.Checksum(h) != 0 {
			return src, dst, 0, 0, errors.New("IPv4 header checksum wrong")
		}
		src, dst = netip.AddrFrom4([4]byte(h[12:16])), netip.AddrFrom4([4]byte(h[16:20]))
		return src, dst, h[8], h[9], nil
	case packet.EtherTypeIPv6:
		if len(b) < 14+40 {
			return src, dst, 0, 0, errors.New("short IPv6 sample")
		}
		h := b[14 : 14+40]
		return netip.AddrFrom16([16]byte(h[8:24])), netip.AddrFrom16([16]byte(h[24:40])), h[7], h[6], nil
	}
	return src, dst, 0, 0, fmt.Errorf("EtherType %#x", uint16(b[12])<<8|uint16(b[13]))
}

// Scenarios returns every scenario of a run, in report order.
func Scenarios() []Scenario {
	udp4 := func(dst netip.Addr, size int) Spec {
		return Spec{Family: 4, Size: size, Src: ClientIP, Dst: dst, SrcMAC: GenMAC, SPort: 1024, DPort: 9}
	}
	tcp4 := func(dst netip.Addr, flags uint8) Spec {
		return Spec{Family: 4, TCP: true, Size: 64, Src: ClientIP, Dst: dst, SrcMAC: GenMAC, SPort: 1024, DPort: 80, TCPFlags: flags}
	}
	udp6 := Spec{Family: 6, Size: 78, Src: ClientIP6, Dst: VIP6, SrcMAC: GenMAC, SPort: 1024, DPort: 9}
	tcp6 := func(flags uint8) Spec {
		return Spec{Family: 6, TCP: true, Size: 80, Src: ClientIP6, Dst: VIP6, SrcMAC: GenMAC, SPort: 1024, DPort: 80, TCPFlags: flags}
	}
	syn4, syn6 := tcp4(VIP, packet.TCPSyn), tcp6(packet.TCPSyn)
	const k32 = 32768
	s := []Scenario{
		{Name: "xdp-drop", Group: "baseline", What: "count, XDP_DROP on l0", Spec: udp4(VIP, 64), Flows: k32, Setup: setupDrop},
		{Name: "macswap-tx", Group: "baseline", What: "swap MACs, count, XDP_TX back to g0", Spec: udp4(VIP, 64), Flows: k32, Setup: setupMACSwap},
		{Name: "macswap-tx-1500B", Group: "baseline", What: "MAC swap, 1500-byte frames", Spec: udp4(VIP, 1500), Flows: k32, Setup: setupMACSwap},
		{Name: "halo-dr-1flow", Group: "halo", What: "DR, UDP/IPv4, one flow, XDP_TX; steady service: table slot, no flow-table lookup", Spec: udp4(VIP, 64), Flows: 1, Setup: setupHaloDR(haloRun{flood: -1}), Path: pathRing},
		{Name: "halo-dr-32k", Group: "halo", What: "DR, UDP/IPv4, 32k flows, XDP_TX; steady service: table slot, no flow-table lookup", Spec: udp4(VIP, 64), Flows: k32, Setup: setupHaloDR(haloRun{flood: -1}), Path: pathRing},
		{Name: "halo-dr-32k-ft32k", Group: "halo", What: "as halo-dr-32k with flow_table_size 32768 (the default is 262144): flow_seen, 8 bits per flow-table entry, spans 64 KiB per protocol instead of 512 KiB", Spec: udp4(VIP, 64), Flows: k32, Setup: setupHaloDR(haloRun{flood: -1, flowTable: k32}), Path: pathRing},
		{Name: "halo-dr-32k-tracked", Group: "halo", What: "as halo-dr-32k with FlowTracking always: every packet looks its flow up in the flow table (hits; the design before layout v8)", Spec: udp4(VIP, 64), Flows: k32, Setup: setupHaloDR(haloRun{flood: -1, track: xdp.TrackAlways}), Path: pathTable},
		{Name: "halo-dr-32k-changed", Group: "halo", What: "as halo-dr-32k, then after the warm-up a third real joins the service: packets on the slots that changed look up the flow table, each flow recorded on its first packet after the change (in the measured run)", Spec: udp4(VIP, 64), Flows: k32, Setup: setupHaloDR(haloRun{flood: -1, change: true}), Path: pathMixed},
		{Name: "halo-dr-32k-tcp4", Group: "halo", What: "DR, TCP/IPv4 ACKs, 32k flows opened by SYNs; table slot, no flow-table lookup", Spec: tcp4(VIP, packet.TCPAck), Warm: &syn4, Flows: k32, Setup: setupHaloDR(haloRun{flood: -1}), Path: pathRing},
		{Name: "halo-dr-32k-udp6", Group: "halo", What: "DR, UDP/IPv6, 32k flows; table slot, no flow-table lookup", Spec: udp6, Flows: k32, Setup: setupHaloDR(haloRun{flood: -1}), Path: pathRing},
		{Name: "halo-dr-32k-tcp6", Group: "halo", What: "DR, TCP/IPv6 ACKs, 32k flows opened by SYNs; table slot, no flow-table lookup", Spec: tcp6(packet.TCPAck), Warm: &syn6, Flows: k32, Setup: setupHaloDR(haloRun{flood: -1}), Path: pathRing},
		{Name: "halo-dr-32k-1500B", Group: "halo", What: "DR, UDP/IPv4, 32k flows, 1500-byte frames; table slot, no flow-table lookup", Spec: udp4(VIP, 1500), Flows: k32, Setup: setupHaloDR(haloRun{flood: -1}), Path: pathRing},
		{Name: "halo-dr-newflows", Group: "halo", What: "DR, every frame a new flow, steady service, default new-entry budget: table slot, nothing recorded (no flow-table lookup or write)", Spec: udp4(VIP, 64), Flows: NewFlows, Setup: setupHaloDR(haloRun{}), Path: pathRing},
		{Name: "halo-dr-newflows-insert", Group: "halo", What: "DR, every frame a new flow, FlowTracking always and no budget: every packet a flow-table miss and an insert (LRU evicts)", Spec: udp4(VIP, 64), Flows: NewFlows, Setup: setupHaloDR(haloRun{flood: -1, track: xdp.TrackAlways}), Path: pathTable},
		{Name: "halo-dr-32k-redirect", Group: "halo", What: "DR, 32k flows, reals behind s0: devmap redirect (same path as the kernel rows); table slot, no flow-table lookup", Spec: udp4(VIP, 64), Flows: k32, Setup: setupHaloDR(haloRun{flood: -1, redirect: true}), Path: pathRing},
		{Name: "halo-nat-in-32k", Group: "halo", What: "NAT, client → VIP:9 DNAT to real:8080, 32k flows; table slot, no flow-table lookup", Spec: udp4(VIP, 64), Flows: k32, Setup: setupHaloNAT(false), Path: pathRing},
		{Name: "halo-nat-out-32k", Group: "halo", What: "NAT, replies real:8080 → clients SNAT to VIP:9, 32k flows; the client's next hop from client_nh, no flow-table lookup", Spec: Spec{Family: 4, Size: 64, Src: Real1, Dst: ClientIP, SrcMAC: GenMAC, SPort: 8080, DPort: 1024, VaryDst: true},
			Warm: ptr(udp4(VIP, 64)), Flows: k32, Setup: setupHaloNAT(true), Path: pathReply},
		{Name: "halo-tun-32k", Group: "halo", What: "TUN (IPIP), 32k flows; table slot, no flow-table lookup", Spec: udp4(VIP, 64), Flows: k32, Setup: setupHaloTUN, Path: pathRing},
		{Name: "nft-numgen-1flow", Group: "nftables", What: "nftables DNAT numgen inc mod 2 (conntrack), one flow", Spec: udp4(VIP, 64), Flows: 1, Setup: setupNft("numgen inc mod 2")},
		{Name: "nft-numgen-32k", Group: "nftables", What: "nftables DNAT numgen inc mod 2, 32k flows", Spec: udp4(VIP, 64), Flows: k32, Setup: setupNft("numgen inc mod 2")},
		{Name: "nft-jhash-32k", Group: "nftables", What: "nftables DNAT jhash ip saddr . udp sport mod 2, 32k flows", Spec: udp4(VIP, 64), Flows: k32, Setup: setupNft("jhash ip saddr . udp sport mod 2 seed 0x5eed")},
		{Name: "kernel-fwd-32k", Group: "kernel", What: "plain kernel IPv4 forwarding l0 → s0, 32k flows", Spec: udp4(Real1, 64), Flows: k32, Setup: setupKernelFwd},
		{Name: "ipvs", Group: "ipvs", What: "IPVS DR/NAT", Skip: "this kernel has no IPVS (CONFIG_IP_VS unset, no modules); make test-vm exercises the IPVS backend in a Debian kernel under qemu, too slow (TCG) for rates"},
	}
	return s
}

func ptr[T any](v T) *T { return &v }

func setupDrop(e *Env) (*Target, error) {
	p, err := LoadProgs()
	if err != nil {
		return nil, err
	}
	if err := e.LB.Do(func() error { return p.Attach(RoleDrop, "l0") }); err != nil {
		p.Close()
		return nil, err
	}
	return &Target{Count: p.Count, Teardown: func() { p.Close() }}, nil
}

func setupMACSwap(e *Env) (*Target, error) {
	p, err := LoadProgs()
	if err != nil {
		return nil, err
	}
	if err := e.LB.Do(func() error { return p.Attach(RoleMACSwap, "l0") }); err != nil {
		p.Close()
		return nil, err
	}
	return &Target{Count: e.BackProgs.Count, Sample: e.BackProgs.Sample, Teardown: func() { p.Close() },
		Check: func(b []byte) error { return macIs(b, 0, GenMAC, "destination") }}, nil
}

// haloServices: the same two reals behind a UDP and a TCP service, IPv4
// and IPv6. Scheduler rr: halo's XDP path picks the real from the weighted
// Maglev table by the 5-tuple's hash, so the generator's 32k flows spread
// over the table's slots; mh (and sh) hash the source address only, which
// would put all flows of the generator's two addresses on two slots.
func haloServices(m dataplane.Method, realPort uint16) []dataplane.Service {
	mk := func(vip netip.Addr, port uint16, p dataplane.Protocol, reals ...netip.Addr) dataplane.Service {
		s := dataplane.Service{Key: dataplane.ServiceKey{Addr: vip, Port: port, Proto: p}, Scheduler: "rr", Method: m}
		for _, r := range reals {
			s.Reals = append(s.Reals, dataplane.Real{Addr: r, Port: realPort, Weight: 1})
		}
		return s
	}
	return []dataplane.Service{mk(VIP, 9, dataplane.UDP, Real1, Real2), mk(VIP, 80, dataplane.TCP, Real1, Real2),
		mk(VIP6, 9, dataplane.UDP, Real1v6, Real2v6), mk(VIP6, 80, dataplane.TCP, Real1v6, Real2v6)}
}

// haloRun is how a halo row runs its data plane.
type haloRun struct {
	redirect bool   // reals behind s0 (devmap redirect) instead of back on l0 (XDP_TX)
	flood    int    // new-entry budget per second and CPU: 0 halod's default, -1 none
	track    string // xdp.Options.FlowTracking; "" the default (on change)
	change   bool   // after the warm-up Real3 joins VIP:9/UDP
	// flowTable: flow_table_size (0: halod's default); flow_seen's size
	// follows it.
	flowTable uint32
}

// withReal3 is svcs with Real3 added to the IPv4 UDP service (the one the
// generator's UDP/IPv4 frames reach).
func withReal3(svcs []dataplane.Service) []dataplane.Service {
	out := make([]dataplane.Service, len(svcs))
	for i, s := range svcs {
		if s.Key.Addr == VIP && s.Key.Proto == dataplane.UDP {
			r := s.Reals[0]
			r.Addr = Real3
			s.Reals = append(append([]dataplane.Real(nil), s.Reals...), r)
		}
		out[i] = s
	}
	return out
}

// startHalo loads halo's XDP data plane on l0 through its public API and
// applies services; reals resolve to fixed MACs (on l0: XDP_TX) or to the
// sink behind s0 (redirect).
func startHalo(e *Env, hr haloRun, svcs []dataplane.Service) (*xdp.Backend, error) {
	redirect := hr.redirect
	resolve := func(ip netip.Addr) (net.HardwareAddr, int, error) {
		if redirect {
			return e.SinkMAC, e.S0Index, nil
		}
		if m, ok := RealMACs[ip]; ok {
			return m, 0, nil
		}
		return nil, 0, fmt.Errorf("no MAC for %s", ip)
	}
	var be *xdp.Backend
	err := e.LB.Do(func() error {
		var err error
		be, err = xdp.New(xdp.Options{Interfaces: []string{"l0"}, Mode: "native", ResolveMAC: resolve, SYNFloodThreshold: hr.flood,
			FlowTracking: hr.track, FlowTableSize: hr.flowTable})
		if err != nil {
			return err
		}
		if err := be.Apply(context.Background(), svcs); err != nil {
			be.Close()
			var sk *dataplane.SkippedError
			if errors.As(err, &sk) {
				var keys []string
				why := map[string]error{}
				for k, e := range sk.Skipped {
					keys = append(keys, k.String())
					why[k.String()] = e
				}
				sort.Strings(keys)
				return errSkip(fmt.Sprintf("halo's XDP backend refused %d of %d services; %s: %v", len(keys), len(svcs), keys[0], why[keys[0]]))
			}
			return err
		}
		return nil
	})
	return be, err
}

func haloCounters(be *xdp.Backend) func() map[string]uint64 {
	return func() map[string]uint64 {
		out := map[string]uint64{}
		for k, v := range be.ReasonNames() {
			if v != 0 {
				out[k] = v
			}
		}
		return out
	}
}

func setupHaloDR(hr haloRun) func(e *Env) (*Target, error) {
	return func(e *Env) (*Target, error) {
		svcs := haloServices(dataplane.DR, 0)
		be, err := startHalo(e, hr, svcs)
		if err != nil {
			return nil, err
		}
		t := &Target{Teardown: func() { be.Close() }, Counters: haloCounters(be)}
		if hr.change {
			t.AfterWarm = func() error {
				return e.LB.Do(func() error { return be.Apply(context.Background(), withReal3(svcs)) })
			}
		}
		if hr.redirect {
			t.Count, t.Sample = e.SinkProgs.Count, e.SinkProgs.Sample
			t.Check = func(b []byte) error {
				if err := macIs(b, 0, e.SinkMAC, "destination"); err != nil {
					return err
				}
				return macIs(b, 6, e.S0MAC, "source")
			}
			return t, nil
		}
		t.Count, t.Sample = e.BackProgs.Count, e.BackProgs.Sample
		t.Check = func(b []byte) error {
			if err := macIs(b, 6, e.L0MAC, "source"); err != nil {
				return err
			}
			_, dst, _, _, err := ipOf(b)
			if err != nil {
				return err
			}
			if dst != VIP && dst != VIP6 {
				return fmt.Errorf("DR changed the destination address to %s", dst)
			}
			for _, m := range RealMACs {
				if bytes.Equal(b[:6], m) {
					return nil
				}
			}
			return fmt.Errorf("destination MAC %s is no real's", net.HardwareAddr(b[:6]))
		}
		return t, nil
	}
}

func setupHaloNAT(out bool) func(e *Env) (*Target, error) {
	return func(e *Env) (*Target, error) {
		be, err := startHalo(e, haloRun{redirect: true, flood: -1}, haloServices(dataplane.NAT, 8080))
		if err != nil {
			return nil, err
		}
		count, sample := bothSinks(e)
		return &Target{Count: count, Sample: sample, Teardown: func() { be.Close() }, Counters: haloCounters(be),
			Check: func(b []byte) error {
				src, dst, _, _, err := ipOf(b)
				if err != nil {
					return err
				}
				if out && src != VIP {
					return fmt.Errorf("reply leaves with source %s, want the VIP", src)
				}
				if !out && dst != Real1 && dst != Real2 {
					return fmt.Errorf("DNAT sent to %s, want a real", dst)
				}
				return nil
			}}, nil
	}
}

func setupHaloTUN(e *Env) (*Target, error) {
	be, err := startHalo(e, haloRun{redirect: true, flood: -1}, haloServices(dataplane.TUN, 0))
	if err != nil {
		return nil, err
	}
	count, sample := bothSinks(e)
	return &Target{Count: count, Sample: sample, Teardown: func() { be.Close() }, Counters: haloCounters(be),
		Check: func(b []byte) error {
			_, dst, _, proto, err := ipOf(b)
			if err != nil {
				return err
			}
			if proto != 4 && proto != 41 && proto != 17 && proto != 47 {
				return fmt.Errorf("outer protocol %d is no tunnel", proto)
			}
			if dst != Real1 && dst != Real2 {
				return fmt.Errorf("tunnel to %s, want a real", dst)
			}
			return nil
		}}, nil
}

func kernelTarget(e *Env, teardown func()) *Target {
	return &Target{Count: e.SinkProgs.Count, Sample: e.SinkProgs.Sample, Teardown: teardown,
		Check: func(b []byte) error {
			if err := macIs(b, 0, e.SinkMAC, "destination"); err != nil {
				return err
			}
			_, dst, ttl, _, err := ipOf(b)
			if err != nil {
				return err
			}
			if ttl != 63 {
				return fmt.Errorf("TTL %d after one router, want 63", ttl)
			}
			if dst != Real1 && dst != Real2 {
				return fmt.Errorf("forwarded to %s, want a real", dst)
			}
			return nil
		}}
}

func setupKernelFwd(e *Env) (*Target, error) {
	off, err := e.PassOn()
	if err != nil {
		return nil, err
	}
	return kernelTarget(e, off), nil
}

func setupNft(expr string) func(e *Env) (*Target, error) {
	return func(e *Env) (*Target, error) {
		// One rule per line and the closing braces on their own lines:
		// nft's one-line form of a table does not parse.
		rules := fmt.Sprintf(`table ip halobench {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    ip daddr %s udp dport 9 dnat to %s map { 0 : %s, 1 : %s }
  }
}
`, VIP, expr, Real1, Real2)
		del, err := e.Nft("halobench", rules)
		if err != nil {
			return nil, err
		}
		off, err := e.PassOn()
		if err != nil {
			del()
			return nil, err
		}
		// conntrack would keep the previous run's DNAT choices otherwise.
		flush := func() {
			e.LB.Do(func() error { return netlink.ConntrackTableFlush(netlink.ConntrackTable) })
		}
		return kernelTarget(e, func() { off(); del(); flush() }), nil
	}
}

// sortedKeys is for stable report output.
func sortedKeys(m map[string]uint64) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func fmtCounters(m map[string]uint64) string {
	var parts []string
	for _, k := range sortedKeys(m) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}
