package xdp

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

func loadWith(t *testing.T, o Options) *Backend {
	t.Helper()
	lab.RequireRoot(t)
	b, err := LoadWith(o)
	if err != nil {
		t.Fatal(err)
	}
	b.opts.ResolveMAC = fakeResolve
	t.Cleanup(func() { b.Close() })
	return b
}

func withFlags(f *packet.Frame, flags uint8) *packet.Frame {
	g := *f
	tcp := *f.TCP
	tcp.Flags = flags
	g.TCP = &tcp
	return &g
}

// realOf names the real a frame was sent to (by destination MAC).
func realOf(out []byte) string {
	p, err := packet.Parse(out)
	if err != nil {
		return "?"
	}
	for ip, m := range realMACs {
		if p.Dst.String() == m.String() {
			return ip
		}
	}
	return "?"
}

// flowKeyOf is the key of an IPv4 TCP frame's flow in conntrack4.
func flowKeyOf(f *packet.Frame) lbFlowKey4 {
	k := lbFlowKey4{Proto: 6}
	src, _ := addrWords(f.IPv4.Src)
	dst, _ := addrWords(f.IPv4.Dst)
	k.Src, k.Dst = src[0], dst[0]
	k.Sport, k.Dport = htons(f.TCP.SrcPort), htons(f.TCP.DstPort)
	return k
}

func (b *Backend) hasFlow(f *packet.Frame) bool {
	k := flowKeyOf(f)
	var v lbFlowVal
	return b.objs.Conntrack4.Lookup(&k, &v) == nil
}

// rewindFlow makes f's entry look idle for d.
func (b *Backend) rewindFlow(t *testing.T, f *packet.Frame, d time.Duration) {
	t.Helper()
	k := flowKeyOf(f)
	var v lbFlowVal
	if err := b.objs.Conntrack4.Lookup(&k, &v); err != nil {
		t.Fatalf("no entry to age: %v", err)
	}
	v.LastSeen -= uint64(d)
	if err := b.objs.Conntrack4.Put(&k, &v); err != nil {
		t.Fatal(err)
	}
}

// Golden aging cases, with every flow tracked (flow_tracking always; by
// default entries exist only where a table changed, TestTableChange*): a
// FIN switches the entry to tcp_fin_timeout (time is moved by rewinding
// the entry's last_seen, as the clock would); an expired entry is dropped
// and the packet starts the flow over; a RST is forwarded to the flow's
// real and then removes the entry at once.
func TestGoldenFlowAgingFINAndRST(t *testing.T) {
	b := loadWith(t, Options{TCPFinTimeout: 5 * time.Second, FlowTracking: TrackAlways})
	if err := b.Apply(context.Background(), []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11")}); err != nil {
		t.Fatal(err)
	}
	syn := tcp4(vip4, 80, 7000)
	steps := []struct {
		name   string
		f      *packet.Frame
		reason Reason
		flow   bool          // entry present afterwards
		age    time.Duration // rewind the entry's last_seen by this first
	}{
		{"syn creates the entry", syn, CTNew, true, 0},
		{"ack hits it", withFlags(syn, packet.TCPAck), CTHit, true, 0},
		{"idle for less than tcp_timeout it still hits", withFlags(syn, packet.TCPAck), CTHit, true, DefaultTCPTimeout - time.Minute},
		{"fin hits it and starts tcp_fin_timeout", withFlags(syn, packet.TCPFin|packet.TCPAck), CTHit, true, 0},
		{"within tcp_fin_timeout it still hits", withFlags(syn, packet.TCPAck), CTHit, true, 4 * time.Second},
		{"after tcp_fin_timeout the entry expires", withFlags(syn, packet.TCPAck), CTExpired, true, 6 * time.Second},
		{"and the packet starts the flow over", withFlags(syn, packet.TCPAck), CTHit, true, 0},
		{"a mid-flow packet of a flow unknown before goes where the table says, recorded", withFlags(tcp4(vip4, 80, 7002), packet.TCPAck), CTNew, true, 0},
	}
	rst := tcp4(vip4, 80, 7001)
	steps = append(steps, []struct {
		name   string
		f      *packet.Frame
		reason Reason
		flow   bool
		age    time.Duration
	}{
		{"syn creates the entry", rst, CTNew, true, 0},
		{"rst reaches the real and removes the entry", withFlags(rst, packet.TCPRst|packet.TCPAck), CTClosed, false, 0},
	}...)
	for _, st := range steps {
		if st.age > 0 {
			b.rewindFlow(t, st.f, st.age)
		}
		before := b.Reasons()[st.reason]
		verdict, out := run(t, b, st.f.Bytes())
		if verdict != xdpTX || !bytes.Equal(out, rewritten(st.f, "10.1.0.11")) {
			t.Fatalf("%s: verdict %d, frame\n got %x\nwant %x", st.name, verdict, out, rewritten(st.f, "10.1.0.11"))
		}
		if got := b.Reasons()[st.reason]; got != before+1 {
			t.Fatalf("%s: reason %s %d -> %d", st.name, reasonNames[st.reason], before, got)
		}
		if got := b.hasFlow(st.f); got != st.flow {
			t.Fatalf("%s: flow entry present %v, want %v", st.name, got, st.flow)
		}
	}
}

// Golden case for a flow whose real went down: its packets still reach
// that real byte for byte, a new flow with the same client goes to the
// other real, and once the real leaves the configuration the flow
// re-resolves.
func TestGoldenFlowOfADownReal(t *testing.T) {
	b := loadWith(t, Options{})
	ctx := context.Background()
	two := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12")
	if err := b.Apply(ctx, []dataplane.Service{two}); err != nil {
		t.Fatal(err)
	}
	var f *packet.Frame
	for sp := uint16(9000); sp < 9100; sp++ {
		g := tcp4(vip4, 80, sp)
		if _, out := run(t, b, g.Bytes()); realOf(out) == "10.1.0.11" {
			f = g
			break
		}
	}
	if f == nil {
		t.Fatal("no flow reached 10.1.0.11")
	}
	down := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12")
	down.Reals[0].Down = true
	if err := b.Apply(ctx, []dataplane.Service{down}); err != nil {
		t.Fatal(err)
	}
	ack := withFlags(f, packet.TCPAck)
	if v, out := run(t, b, ack.Bytes()); v != xdpTX || !bytes.Equal(out, rewritten(ack, "10.1.0.11")) {
		t.Fatalf("established flow of a down real: verdict %d\n got %x\nwant %x", v, out, rewritten(ack, "10.1.0.11"))
	}
	for sp := uint16(9100); sp < 9150; sp++ {
		g := tcp4(vip4, 80, sp)
		if v, out := run(t, b, g.Bytes()); v != xdpTX || !bytes.Equal(out, rewritten(g, "10.1.0.12")) {
			t.Fatalf("new flow %d: verdict %d, went to %s", sp, v, realOf(out))
		}
	}
	if err := b.Apply(ctx, []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.12")}); err != nil {
		t.Fatal(err)
	}
	if v, out := run(t, b, ack.Bytes()); v != xdpTX || !bytes.Equal(out, rewritten(ack, "10.1.0.12")) {
		t.Fatalf("flow of a removed real: verdict %d, went to %s", v, realOf(out))
	}
}

// Under a flood of first packets the flow table takes at most the budget
// per second and CPU; every SYN is still forwarded (by the table), and an
// established flow keeps its entry and its real. Every flow is tracked
// here (flow_tracking always); by default a service whose table did not
// change writes no entry at all, flood or not.
func TestFloodBudget(t *testing.T) {
	const budget = 50
	b := loadWith(t, Options{SYNFloodThreshold: budget, FlowTracking: TrackAlways})
	if err := b.Apply(context.Background(), []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12")}); err != nil {
		t.Fatal(err)
	}
	est := tcp4(vip4, 80, 1)
	_, out := run(t, b, est.Bytes())
	estReal := realOf(out)
	for i := 0; i < 2000; i++ {
		f := tcp4(vip4, 80, uint16(10000+i))
		f.IPv4.Src = netip.AddrFrom4([4]byte{198, 51, byte(i >> 8), byte(i)})
		if v, _ := run(t, b, f.Bytes()); v != xdpTX {
			t.Fatalf("SYN %d under flood: verdict %d", i, v)
		}
	}
	n := b.FlowEntries()
	flood := b.Reasons()[CTFlood]
	t.Logf("2000 SYNs with a budget of %d/s per CPU: %d entries written, %d forwarded unrecorded", budget, n, flood)
	if n > 2*budget*len(mustCPUs(t))+1 || flood < 2000-uint64(n) {
		t.Fatalf("%d entries, %d unrecorded: the budget did not hold", n, flood)
	}
	if !b.hasFlow(est) {
		t.Fatal("the established flow lost its entry")
	}
	if _, out := run(t, b, withFlags(est, packet.TCPAck).Bytes()); realOf(out) != estReal {
		t.Fatalf("established flow moved from %s to %s", estReal, realOf(out))
	}
}

// The program and the Go mirror of its hash agree, and two independently
// loaded data planes (slot ids allocated in another order) send every flow
// to the same real: the selection rule end to end through prog.Run.
func TestTwoDirectorsPickTheSameReal(t *testing.T) {
	a := loadWith(t, Options{})
	c := loadWith(t, Options{})
	ctx := context.Background()
	s := svc(vip4, 80, dataplane.TCP, "wlc", "10.1.0.11", "10.1.0.12")
	s.Reals[0].Weight = 3
	if err := a.Apply(ctx, []dataplane.Service{s}); err != nil {
		t.Fatal(err)
	}
	// c first serves another service with the same reals, so its slot ids
	// differ, then gets the same service.
	if err := c.Apply(ctx, []dataplane.Service{svc(vip4, 53, dataplane.UDP, "rr", "10.1.0.12", "10.1.0.11")}); err != nil {
		t.Fatal(err)
	}
	if err := c.Apply(ctx, []dataplane.Service{svc(vip4, 53, dataplane.UDP, "rr", "10.1.0.12", "10.1.0.11"), s}); err != nil {
		t.Fatal(err)
	}
	if a.svcs[s.Key].reals[s.Reals[0].Key()] == c.svcs[s.Key].reals[s.Reals[0].Key()] {
		t.Fatal("test setup: slot ids are the same on both")
	}
	flags, mask := a.selection(s)
	table, _ := buildTable(s, func(rk dataplane.RealKey) (uint32, bool) { return a.svcs[s.Key].reals[rk], true })
	byID := map[uint32]string{}
	for rk, id := range a.svcs[s.Key].reals {
		byID[id] = rk.Addr.String()
	}
	n := map[string]int{}
	for sp := 0; sp < 400; sp++ {
		f := withFlags(tcp4(vip4, 80, uint16(20000+sp)), packet.TCPAck) // mid-flow: no entry on either
		_, oa := run(t, a, f.Bytes())
		_, oc := run(t, c, f.Bytes())
		if realOf(oa) != realOf(oc) {
			t.Fatalf("port %d: director A sends to %s, B to %s", 20000+sp, realOf(oa), realOf(oc))
		}
		want := byID[table[flowHash(FlowKey{Src: client4, Dst: vip4, SPort: uint16(20000 + sp), DPort: 80, Proto: 6}, flags, mask)%RingSize]]
		if realOf(oa) != want {
			t.Fatalf("port %d: program sends to %s, the Go rule says %s", 20000+sp, realOf(oa), want)
		}
		n[realOf(oa)]++
	}
	t.Logf("400 flows, weights 3:1: %v", n)
}

// Apply at the service limit: a replacement always fits (removals first),
// one service too many is skipped and reported, and the installed ones
// keep forwarding.
func TestApplyAtServiceLimit(t *testing.T) {
	b := loadWith(t, Options{MaxServices: 4})
	ctx := context.Background()
	mk := func(ports ...uint16) []dataplane.Service {
		var out []dataplane.Service
		for _, p := range ports {
			out = append(out, svc(vip4, p, dataplane.TCP, "rr", "10.1.0.11"))
		}
		return out
	}
	if err := b.Apply(ctx, mk(1, 2, 3, 4)); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, mk(2, 3, 4, 5)); err != nil {
		t.Fatalf("replacing one service in a full table: %v", err)
	}
	if v, _ := run(t, b, tcp4(vip4, 5, 1000).Bytes()); v != xdpTX {
		t.Fatalf("the replacement does not forward: verdict %d", v)
	}
	if v, _ := run(t, b, tcp4(vip4, 1, 1000).Bytes()); v != xdpPass {
		t.Fatalf("the removed service still forwards: verdict %d", v)
	}
	err := b.Apply(ctx, mk(1, 2, 3, 4, 5))
	var sk *dataplane.SkippedError
	if !errors.As(err, &sk) || len(sk.Skipped) != 1 {
		t.Fatalf("one service over the limit: %v", err)
	}
	if _, ok := sk.Skipped[mk(1)[0].Key]; !ok {
		t.Fatalf("skipped %v, want the new service (port 1), not an installed one", sk)
	}
	for _, p := range []uint16{2, 3, 4, 5} {
		if v, _ := run(t, b, tcp4(vip4, p, 1000).Bytes()); v != xdpTX {
			t.Fatalf("installed service %d stopped forwarding: verdict %d", p, v)
		}
	}
	// A later set that fits again installs it.
	if err := b.Apply(ctx, mk(1, 2, 3)); err != nil {
		t.Fatal(err)
	}
	if v, _ := run(t, b, tcp4(vip4, 1, 1000).Bytes()); v != xdpTX {
		t.Fatalf("service 1 once room was made: verdict %d", v)
	}
}

// One service the program cannot serve is skipped with its reason; every
// other service is applied.
func TestApplySkipsBadService(t *testing.T) {
	b := loadWith(t, Options{})
	tun := svc(vip4, 81, dataplane.TCP, "rr", "10.1.0.11")
	tun.Method = dataplane.TUN
	tun.Tunnel.Type = "gre"
	sctp := svc(vip4, 82, dataplane.SCTP, "rr", "10.1.0.11")
	dup := svc(vip4, 83, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.11")
	err := b.Apply(context.Background(), []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11"), tun, sctp, dup,
		svc(vip4, 53, dataplane.UDP, "mh", "10.1.0.12")})
	var sk *dataplane.SkippedError
	if !errors.As(err, &sk) || len(sk.Skipped) != 3 {
		t.Fatalf("want 3 skipped services, got %v", err)
	}
	t.Log(err)
	if v, _ := run(t, b, tcp4(vip4, 80, 1000).Bytes()); v != xdpTX {
		t.Fatalf("good TCP service: verdict %d", v)
	}
	udp := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4}, UDP: &packet.UDP{SrcPort: 5, DstPort: 53}}
	if v, _ := run(t, b, udp.Bytes()); v != xdpTX {
		t.Fatalf("good UDP service: verdict %d", v)
	}
	if got, _ := b.Services(context.Background()); len(got) != 2 {
		t.Fatalf("installed %d services, want 2", len(got))
	}
}

// A real whose MAC does not resolve gets no new flows and no frame with an
// empty MAC; it shows in RealStates; once it resolves (the retry loop),
// it takes its share.
func TestUnresolvedRealGetsNoFlows(t *testing.T) {
	b := loadWith(t, Options{})
	ctx := context.Background()
	ghost := "10.1.0.99"
	s := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", ghost)
	if err := b.Apply(ctx, []dataplane.Service{s}); err != nil {
		t.Fatal(err)
	}
	for sp := uint16(100); sp < 200; sp++ {
		if _, out := run(t, b, tcp4(vip4, 80, sp).Bytes()); realOf(out) != "10.1.0.11" {
			t.Fatalf("flow %d went to %s with one real unresolved", sp, realOf(out))
		}
	}
	st, _ := b.RealStates(ctx)
	var notReady int
	for _, r := range st {
		if !r.Ready {
			notReady++
			if r.Real.Addr.String() != ghost || r.Reason == "" {
				t.Fatalf("state %+v", r)
			}
		}
	}
	if notReady != 1 {
		t.Fatalf("real states %+v", st)
	}
	realMACs[ghost] = packet.MustMAC("02:00:00:00:99:01")
	defer delete(realMACs, ghost)
	b.retryFailed()
	n := map[string]int{}
	for sp := uint16(300); sp < 500; sp++ {
		_, out := run(t, b, tcp4(vip4, 80, sp).Bytes())
		n[realOf(out)]++
	}
	if n[ghost] == 0 || n["10.1.0.11"] == 0 {
		t.Fatalf("after the MAC resolved: %v", n)
	}
}

// Counters are per (service, real), and a reused slot starts at zero.
func TestPerServiceRealCounters(t *testing.T) {
	b := loadWith(t, Options{})
	ctx := context.Background()
	a, c := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11"), svc(vip4, 81, dataplane.TCP, "rr", "10.1.0.11")
	if err := b.Apply(ctx, []dataplane.Service{a, c}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		run(t, b, tcp4(vip4, 80, uint16(100+i)).Bytes())
	}
	run(t, b, tcp4(vip4, 81, 100).Bytes())
	counts := func() map[uint16]uint64 {
		st, _ := b.Stats(ctx)
		out := map[uint16]uint64{}
		for _, s := range st {
			out[s.Key.Port] = s.Reals[dataplane.RealKey{Addr: netip.MustParseAddr("10.1.0.11")}].Packets
		}
		return out
	}
	if got := counts(); got[80] != 3 || got[81] != 1 {
		t.Fatalf("per-service real counters %v, want 80:3 81:1", got)
	}
	// Service 81 goes; a new service reuses its slot: its counter is zero.
	if err := b.Apply(ctx, []dataplane.Service{a}); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, []dataplane.Service{a, svc(vip4, 82, dataplane.TCP, "rr", "10.1.0.11")}); err != nil {
		t.Fatal(err)
	}
	if got := counts(); got[82] != 0 || got[80] != 3 {
		t.Fatalf("after reuse %v, want 82:0 80:3", got)
	}
}

// A service's counters are its entries' summed (the program counts each
// packet once, per entry), and keep what an entry counted after its real
// left; a new service of a reused id starts at zero.
func TestServiceCountersSumEntries(t *testing.T) {
	b := loadWith(t, Options{})
	ctx := context.Background()
	two := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12")
	if err := b.Apply(ctx, []dataplane.Service{two}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		run(t, b, tcp4(vip4, 80, uint16(2000+i)).Bytes())
	}
	service := func(port uint16) (dataplane.Stats, map[dataplane.RealKey]dataplane.Stats) {
		st, err := b.Stats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range st {
			if s.Key.Port == port {
				return s.Stats, s.Reals
			}
		}
		t.Fatalf("no service :%d in %+v", port, st)
		return dataplane.Stats{}, nil
	}
	tot, reals := service(80)
	r11, r12 := reals[dataplane.RealKey{Addr: netip.MustParseAddr("10.1.0.11")}], reals[dataplane.RealKey{Addr: netip.MustParseAddr("10.1.0.12")}]
	if tot.Packets != 20 || r11.Packets+r12.Packets != 20 || r11.Packets == 0 || r12.Packets == 0 {
		t.Fatalf("service %+v, reals .11 %+v .12 %+v: want 20 packets over both", tot, r11, r12)
	}
	if tot.Bytes != r11.Bytes+r12.Bytes || tot.Bytes == 0 {
		t.Fatalf("service bytes %d, reals %d + %d", tot.Bytes, r11.Bytes, r12.Bytes)
	}
	// .12 leaves: the service keeps its packets; five more go to .11.
	if err := b.Apply(ctx, []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11")}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		run(t, b, withFlags(tcp4(vip4, 80, uint16(3000+i)), packet.TCPSyn).Bytes())
	}
	after, reals := service(80)
	if after.Packets != 25 || after.Bytes <= tot.Bytes || len(reals) != 1 {
		t.Fatalf("after .12 left: service %+v (want 25 packets), reals %+v", after, reals)
	}
	// The service goes; another takes its id and starts at zero.
	if err := b.Apply(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.Apply(ctx, []dataplane.Service{svc(vip4, 81, dataplane.TCP, "rr", "10.1.0.12")}); err != nil {
		t.Fatal(err)
	}
	if s, _ := service(81); s.Packets != 0 {
		t.Fatalf("new service starts at %+v", s)
	}
}

func mustCPUs(t *testing.T) []int {
	n, err := possibleCPUs()
	if err != nil {
		t.Fatal(err)
	}
	return make([]int, n)
}

var _ = net.HardwareAddr{}

// Persistence (issue 11's first part): a client stays on its real across
// connections while the table would now send it elsewhere, until the pin
// is older than persistence_timeout after the client's last packet, or its
// real goes down.
func TestGoldenPersistence(t *testing.T) {
	b := loadWith(t, Options{})
	ctx := context.Background()
	mk := func(w11, w12 uint32, down11 bool) dataplane.Service {
		s := svc(vip4, 80, dataplane.TCP, "wlc", "10.1.0.11", "10.1.0.12")
		s.Persistence = 300 * time.Second
		s.Reals[0].Weight, s.Reals[1].Weight, s.Reals[0].Down = w11, w12, down11
		return s
	}
	// Only .11 takes new flows: the client is pinned to it.
	if err := b.Apply(ctx, []dataplane.Service{mk(1, 0, false)}); err != nil {
		t.Fatal(err)
	}
	first := tcp4(vip4, 80, 2000)
	if v, out := run(t, b, first.Bytes()); v != xdpTX || !bytes.Equal(out, rewritten(first, "10.1.0.11")) {
		t.Fatalf("first connection: verdict %d to %s", v, realOf(out))
	}
	// Now only .12 would be chosen by the table; the pin holds.
	if err := b.Apply(ctx, []dataplane.Service{mk(1, 1000, false)}); err != nil {
		t.Fatal(err)
	}
	for sp := uint16(2001); sp < 2020; sp++ {
		f := tcp4(vip4, 80, sp)
		if v, out := run(t, b, f.Bytes()); v != xdpTX || !bytes.Equal(out, rewritten(f, "10.1.0.11")) {
			t.Fatalf("connection %d of a pinned client went to %s", sp, realOf(out))
		}
	}
	// Another client follows the table.
	other := tcp4(vip4, 80, 2000)
	other.IPv4.Src = netip.MustParseAddr("192.0.2.99")
	if _, out := run(t, b, other.Bytes()); realOf(out) == "?" {
		t.Fatal("another client was not forwarded")
	}
	// The pin expires persistence_timeout after the client's last packet.
	k := lbPersistKey{Svc: b.svcs[mk(1, 1, false).Key].id}
	k.Src, _ = addrWords(client4)
	var v lbPersistVal
	if err := b.objs.Persist.Lookup(&k, &v); err != nil {
		t.Fatalf("no pin for the client: %v", err)
	}
	v.LastSeen -= uint64(301 * time.Second)
	if err := b.objs.Persist.Put(&k, &v); err != nil {
		t.Fatal(err)
	}
	moved := 0
	for sp := uint16(3000); sp < 3020; sp++ {
		if _, out := run(t, b, tcp4(vip4, 80, sp).Bytes()); realOf(out) == "10.1.0.12" {
			moved++
		}
	}
	if moved == 0 {
		t.Fatal("the client stayed on its real after the pin expired")
	}
	// A real that goes down breaks its pins at once.
	if err := b.Apply(ctx, []dataplane.Service{mk(1, 0, false)}); err != nil {
		t.Fatal(err)
	}
	c2 := tcp4(vip4, 80, 4000)
	c2.IPv4.Src = netip.MustParseAddr("192.0.2.50")
	if _, out := run(t, b, c2.Bytes()); realOf(out) != "10.1.0.11" {
		t.Fatalf("pin setup: %s", realOf(out))
	}
	if err := b.Apply(ctx, []dataplane.Service{mk(1, 1, true)}); err != nil {
		t.Fatal(err)
	}
	c3 := tcp4(vip4, 80, 4001)
	c3.IPv4.Src = c2.IPv4.Src
	if _, out := run(t, b, c3.Bytes()); realOf(out) != "10.1.0.12" {
		t.Fatalf("a new connection of a client pinned to a down real went to %s", realOf(out))
	}
}

// ICMP errors about a VIP flow (issue 11, DR part): a router's frag-needed
// (IPv4) or packet-too-big (IPv6) about a packet a real sent from the VIP
// reaches the real that owns the flow, byte for byte but for the MACs, so
// path-MTU discovery works through the director. Errors about anything
// else, and echo requests, stay with the stack.
func TestGoldenICMPErrorsFollowTheirFlow(t *testing.T) {
	b := loadWith(t, Options{})
	ctx := context.Background()
	if err := b.Apply(ctx, []dataplane.Service{svc(vip4, 80, dataplane.TCP, "wlc", "10.1.0.11", "10.1.0.12"),
		svc(vip6, 443, dataplane.TCP, "wlc", "fd00:1::11")}); err != nil {
		t.Fatal(err)
	}
	router4, router6 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8:ffff::1")
	// Flows on each IPv4 real.
	on := map[string]uint16{}
	for sp := uint16(5000); sp < 5100 && len(on) < 2; sp++ {
		if _, out := run(t, b, tcp4(vip4, 80, sp).Bytes()); on[realOf(out)] == 0 {
			on[realOf(out)] = sp
		}
	}
	if len(on) != 2 {
		t.Fatalf("flows reached %v", on)
	}
	entries := b.FlowEntries()
	for real, sp := range on {
		// The real's reply, VIP:80 -> client:sp, did not fit a link.
		reply := (&packet.Frame{Dst: clientMAC, Src: dirMAC, IPv4: &packet.IPv4{Src: vip4, Dst: client4},
			TCP: &packet.TCP{SrcPort: 80, DstPort: sp, Flags: packet.TCPAck}, Payload: make([]byte, 64)}).Bytes()
		icmp := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: router4, Dst: vip4},
			ICMP: &packet.ICMP{Type: 3, Code: 4, Rest: 1400}, Payload: reply[14 : 14+20+8]}
		before := b.Reasons()[ICMPToReal]
		if v, out := run(t, b, icmp.Bytes()); v != xdpTX || !bytes.Equal(out, rewritten(icmp, real)) {
			t.Fatalf("frag-needed for the flow on %s: verdict %d, went to %s", real, v, realOf(out))
		}
		if b.Reasons()[ICMPToReal] != before+1 {
			t.Fatal("icmp_to_real not counted")
		}
	}
	// IPv6 packet too big, with the inner header and ports.
	reply6 := (&packet.Frame{Dst: clientMAC, Src: dirMAC, IPv6: &packet.IPv6{Src: vip6, Dst: client6},
		TCP: &packet.TCP{SrcPort: 443, DstPort: 40001, Flags: packet.TCPAck}}).Bytes()
	ptb := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: router6, Dst: vip6},
		ICMP: &packet.ICMP{Type: 2, Rest: 1280}, Payload: reply6[14 : 14+40+8]}
	if v, out := run(t, b, ptb.Bytes()); v != xdpTX || !bytes.Equal(out, rewritten(ptb, "fd00:1::11")) {
		t.Fatalf("packet too big: verdict %d, went to %s", v, realOf(out))
	}
	// About a port that is no service, and an echo request: the stack's.
	other := (&packet.Frame{Dst: clientMAC, Src: dirMAC, IPv4: &packet.IPv4{Src: vip4, Dst: client4},
		TCP: &packet.TCP{SrcPort: 22, DstPort: 5000}}).Bytes()
	stray := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: router4, Dst: vip4},
		ICMP: &packet.ICMP{Type: 3, Code: 4}, Payload: other[14 : 14+28]}
	echo := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4}, ICMP: &packet.ICMP{Type: 8}}
	for name, f := range map[string]*packet.Frame{"error about a non-service port": stray, "echo request": echo} {
		if v, out := run(t, b, f.Bytes()); v != xdpPass || !bytes.Equal(out, f.Bytes()) {
			t.Fatalf("%s: verdict %d", name, v)
		}
	}
	if n := b.FlowEntries(); n != entries {
		t.Fatalf("ICMP errors created flow entries: %d -> %d", entries, n)
	}
}
