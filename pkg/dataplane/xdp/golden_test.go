package xdp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// XDP verdicts, as prog.Run returns them.
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpTX       = 3
	xdpRedirect = 4
)

var (
	clientMAC = packet.MustMAC("02:00:00:00:00:01")
	dirMAC    = packet.MustMAC("02:00:00:00:00:02")
	realMACs  = map[string]net.HardwareAddr{
		"10.1.0.11":  packet.MustMAC("02:00:00:00:11:11"),
		"10.1.0.12":  packet.MustMAC("02:00:00:00:12:12"),
		"10.1.0.13":  packet.MustMAC("02:00:00:00:13:13"),
		"10.1.0.14":  packet.MustMAC("02:00:00:00:14:14"),
		"fd00:1::14": packet.MustMAC("02:00:00:00:61:14"),
		"fd00:1::11": packet.MustMAC("02:00:00:00:61:11"),
		"fd00:1::13": packet.MustMAC("02:00:00:00:61:13"),
	}
	client4, vip4 = netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("10.1.0.100")
	client6, vip6 = netip.MustParseAddr("2001:db8::7"), netip.MustParseAddr("fd00:1::100")
)

func fakeResolve(ip netip.Addr) (net.HardwareAddr, int, error) {
	if m, ok := realMACs[ip.String()]; ok {
		return m, 0, nil
	}
	return nil, 0, fmt.Errorf("no MAC for %s", ip)
}

func loadTest(t *testing.T) *Backend {
	t.Helper()
	lab.RequireRoot(t)
	b, err := Load("")
	if err != nil {
		t.Fatal(err)
	}
	b.opts.ResolveMAC = fakeResolve
	t.Cleanup(func() { b.Close() })
	return b
}

func svc(addr netip.Addr, port uint16, proto dataplane.Protocol, sched string, reals ...string) dataplane.Service {
	s := dataplane.Service{Key: dataplane.ServiceKey{Addr: addr, Port: port, Proto: proto}, Scheduler: sched, Method: dataplane.DR}
	for _, r := range reals {
		s.Reals = append(s.Reals, dataplane.Real{Addr: netip.MustParseAddr(r), Weight: 1})
	}
	return s
}

func runOpts(in []byte) *ebpf.RunOptions {
	return &ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+256)}
}

func run(t *testing.T, b *Backend, in []byte) (uint32, []byte) {
	t.Helper()
	opts := runOpts(in)
	ret, err := b.Prog().Run(opts)
	if err != nil {
		t.Fatal(err)
	}
	return ret, opts.DataOut
}

func tcp4(dst netip.Addr, dport uint16, sport uint16) *packet.Frame {
	return &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: dst},
		TCP: &packet.TCP{SrcPort: sport, DstPort: dport, Flags: packet.TCPSyn}, Payload: []byte("GET /")}
}

// rewritten is what DR makes of a frame: destination MAC the real's, source
// MAC the director's (the old destination), the rest byte for byte.
func rewritten(f *packet.Frame, real string) []byte {
	g := *f
	g.Dst, g.Src = realMACs[real], f.Dst
	return g.Bytes()
}

// The golden table (fixtures_test.go): input frame → verdict → exact output
// frame → reason counter. Every frame that leaves has its checksums
// recomputed from scratch (rfc1071Valid), independently of the program's
// incremental updates and of the builder that made the expected frame.
func TestGoldenPackets(t *testing.T) {
	b := loadTest(t)
	ctx := context.Background()
	if err := b.Apply(ctx, append(goldenServices(), goldenNATServices()...)); err != nil {
		t.Fatal(err)
	}
	for _, c := range append(append(append(goldenCases(), natCases()...), natICMPCases()...), tunCases()...) {
		t.Run(c.name, func(t *testing.T) {
			before := b.Reasons()[c.reason]
			verdict, out := run(t, b, c.in)
			if verdict != c.verdict {
				t.Fatalf("verdict %d, want %d", verdict, c.verdict)
			}
			want := c.out
			if want == nil {
				want = c.in
			}
			if !bytes.Equal(out, want) {
				t.Fatalf("output frame\n got %x\nwant %x", out, want)
			}
			if c.verdict == xdpTX || c.verdict == xdpRedirect {
				if err := rfc1071Valid(out); err != nil {
					t.Fatalf("transmitted frame: %v\n%x", err, out)
				}
			}
			if after := b.Reasons()[c.reason]; after != before+1 {
				t.Fatalf("reason %d counter %d -> %d", c.reason, before, after)
			}
		})
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// The TCP/80 services must be there and have counted: an empty or
	// failing Stats must not pass.
	seen := 0
	for _, s := range st {
		if s.Key.Port == 80 && s.Key.Proto == dataplane.TCP {
			seen++
			if s.Stats.Packets < 2 {
				t.Fatalf("vip counters not kept: %+v", s)
			}
		}
	}
	if seen == 0 {
		t.Fatalf("Stats has no TCP/80 service: %+v", st)
	}
}

// A flow keeps its real when the real set changes; new flows follow the
// new table; weight 0 takes a real out of new-flow selection only. New
// flows are SYNs, established ones ACKs: no entry exists before the first
// change, so what tells them apart then is the SYN.
func TestConnectionTableKeepsFlows(t *testing.T) {
	b := loadTest(t)
	ctx := context.Background()
	two := svc(vip4, 80, dataplane.TCP, "mh", "10.1.0.11", "10.1.0.12")
	two.SchedFlags = []string{"mh-port"}
	if err := b.Apply(ctx, []dataplane.Service{two}); err != nil {
		t.Fatal(err)
	}
	send := func(f *packet.Frame) string {
		_, out := run(t, b, f.Bytes())
		p, _ := packet.Parse(out)
		for ip, m := range realMACs {
			if p.Dst.String() == m.String() {
				return ip
			}
		}
		return "?"
	}
	dest := func(sport uint16) string { return send(tcp4(vip4, 80, sport)) }
	est := func(sport uint16) string {
		f := tcp4(vip4, 80, sport)
		f.TCP.Flags = packet.TCPAck
		return send(f)
	}
	// Find a flow on each real.
	first := map[string]uint16{}
	for sp := uint16(1000); sp < 1100 && len(first) < 2; sp++ {
		if r := dest(sp); first[r] == 0 {
			first[r] = sp
		}
	}
	if len(first) != 2 {
		t.Fatalf("flows all went to one real: %v", first)
	}
	flowOn11, flowOn12 := first["10.1.0.11"], first["10.1.0.12"]
	// Weight 0 (drain) on .11: its flow stays, new flows go to .12.
	drain := svc(vip4, 80, dataplane.TCP, "mh", "10.1.0.11", "10.1.0.12")
	drain.SchedFlags = []string{"mh-port"}
	drain.Reals[0].Weight = 0
	if err := b.Apply(ctx, []dataplane.Service{drain}); err != nil {
		t.Fatal(err)
	}
	if got := est(flowOn11); got != "10.1.0.11" {
		t.Fatalf("established flow on a drained real moved to %s", got)
	}
	for sp := uint16(2000); sp < 2050; sp++ {
		if got := dest(sp); got != "10.1.0.12" {
			t.Fatalf("new flow %d went to %s", sp, got)
		}
	}
	// .11 leaves the configuration: its flow gets no packet more and
	// re-resolves (to .12); .12's flow is untouched.
	stale := b.Reasons()[CTStale]
	if err := b.Apply(ctx, []dataplane.Service{svc(vip4, 80, dataplane.TCP, "mh", "10.1.0.12")}); err != nil {
		t.Fatal(err)
	}
	if got := est(flowOn11); got != "10.1.0.12" {
		t.Fatalf("flow of a removed real went to %s", got)
	}
	if got := est(flowOn12); got != "10.1.0.12" {
		t.Fatalf("flow of a kept real went to %s", got)
	}
	if n := b.Reasons()[CTStale]; n != stale+1 {
		t.Fatalf("stale re-resolutions %d -> %d, want one", stale, n)
	}
	// Weight 0 (inhibit): same for a real still installed.
	inh := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12")
	inh.Reals[1].Weight = 0
	if err := b.Apply(ctx, []dataplane.Service{inh}); err != nil {
		t.Fatal(err)
	}
	if got := est(2000); got != "10.1.0.12" {
		t.Fatalf("established flow on an inhibited real moved to %s", got)
	}
	for sp := uint16(3000); sp < 3050; sp++ {
		if got := dest(sp); got != "10.1.0.11" {
			t.Fatalf("new flow %d went to the weight-0 real %s", sp, got)
		}
	}
	// The drained real's flow had no entry before the first change: it
	// was kept by the slot's previous real (and recorded then).
	if r := b.Reasons(); r[CTPrev] < 1 || r[CTHit]+r[CTPrev] < 2 {
		t.Fatalf("flows kept by the flow table: %d hits, %d previous-real", r[CTHit], r[CTPrev])
	}
}

// rr walks the weighted table: new flows split by weight.
func TestRoundRobinFollowsWeights(t *testing.T) {
	b := loadTest(t)
	s := svc(vip4, 80, dataplane.TCP, "wrr", "10.1.0.11", "10.1.0.12")
	s.Reals[0].Weight = 3
	if err := b.Apply(context.Background(), []dataplane.Service{s}); err != nil {
		t.Fatal(err)
	}
	n := map[string]int{}
	for sp := 0; sp < 4000; sp++ {
		_, out := run(t, b, tcp4(vip4, 80, uint16(10000+sp)).Bytes())
		p, _ := packet.Parse(out)
		n[p.Dst.String()]++
	}
	a, c := n[realMACs["10.1.0.11"].String()], n[realMACs["10.1.0.12"].String()]
	ratio := float64(a) / float64(c)
	t.Logf("weights 3:1 -> %d:%d", a, c)
	if ratio < 2.7 || ratio > 3.3 {
		t.Fatalf("split %d:%d, want about 3:1", a, c)
	}
}

func TestRejectsWhatPart1CannotDo(t *testing.T) {
	b := loadTest(t)
	tun := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11")
	tun.Method = dataplane.TUN
	tun.Tunnel.Type = "gre"
	if err := b.Apply(context.Background(), []dataplane.Service{tun}); err == nil {
		t.Fatal("TUN service with GRE accepted")
	}
	mixed := svc(vip4, 80, dataplane.TCP, "rr", "fd00:1::11")
	mixed.Method = dataplane.NAT
	if err := b.Apply(context.Background(), []dataplane.Service{mixed}); err == nil {
		t.Fatal("NAT from an IPv4 VIP to an IPv6 real accepted")
	}
	if got, _ := b.Services(context.Background()); len(got) != 0 {
		t.Fatal("a rejected set was half-applied")
	}
}

// A real whose MAC changes (a replaced host) gets traffic at its new MAC
// after the periodic refresh.
func TestMACRefresh(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11")}); err != nil {
		t.Fatal(err)
	}
	newMAC := packet.MustMAC("02:00:00:00:99:99")
	b.opts.ResolveMAC = func(ip netip.Addr) (net.HardwareAddr, int, error) { return newMAC, 0, nil }
	b.refresh()
	_, out := run(t, b, tcp4(vip4, 80, 5555).Bytes())
	if p, _ := packet.Parse(out); p.Dst.String() != newMAC.String() {
		t.Fatalf("frame sent to %s, want the new MAC %s", p.Dst, newMAC)
	}
}

// Applying a set in which one service changed rewrites only that service's
// table: the other keeps its active half.
func TestApplyTouchesOnlyChangedServices(t *testing.T) {
	b := loadTest(t)
	ctx := context.Background()
	a := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11")
	c := svc(vip4, 53, dataplane.UDP, "rr", "10.1.0.12")
	if err := b.Apply(ctx, []dataplane.Service{a, c}); err != nil {
		t.Fatal(err)
	}
	table := func(k dataplane.ServiceKey) uint32 {
		var inner uint32 // an ARRAY_OF_MAPS lookup returns the inner map's id
		if err := b.objs.Rings.Lookup(b.svcs[k].id, &inner); err != nil {
			t.Fatal(err)
		}
		return inner
	}
	ringA, ringC := table(a.Key), table(c.Key)
	a2 := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12")
	if err := b.Apply(ctx, []dataplane.Service{a2, c}); err != nil {
		t.Fatal(err)
	}
	if table(a.Key) == ringA {
		t.Fatal("changed service did not get a new table")
	}
	if table(c.Key) != ringC {
		t.Fatal("unchanged service's table was rewritten")
	}
}
