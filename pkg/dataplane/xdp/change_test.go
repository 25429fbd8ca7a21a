package xdp

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// A flow of the change tests: its frame and the real it went to.
type probeFlow struct {
	f    *packet.Frame
	real string
}

func flowKeyOfFrame(f *packet.Frame) FlowKey {
	var k FlowKey
	if f.IPv4 != nil {
		k.Src, k.Dst = f.IPv4.Src, f.IPv4.Dst
	} else {
		k.Src, k.Dst = f.IPv6.Src, f.IPv6.Dst
	}
	if f.TCP != nil {
		k.SPort, k.DPort, k.Proto = f.TCP.SrcPort, f.TCP.DstPort, 6
	} else {
		k.SPort, k.DPort, k.Proto = f.UDP.SrcPort, f.UDP.DstPort, 17
	}
	return k
}

// expected is the real the Go side's view says a frame's flow gets: the
// current table's for a new flow, the slot's previous real for an old
// one, on a dirty slot; the slot's real on a clean one.
func (b *Backend) expected(t *testing.T, f *packet.Frame, isNew bool) string {
	t.Helper()
	k := flowKeyOfFrame(f)
	st := b.svcs[dataplane.ServiceKey{Addr: k.Dst, Port: k.DPort, Proto: dataplane.Protocol(k.Proto)}]
	slot := flowHash(k, st.flags, st.mask) % uint32(len(st.ring.cur))
	id := st.ring.t[slot] & ringIDMask
	dirty := st.ring.t[slot]&ringDirty != 0
	if st.ring.rehash {
		id, dirty = st.ring.t[flowHash(k, st.ring.prevFlags, st.ring.prevMask)%uint32(len(st.ring.t))], true
	}
	if dirty && (isNew || id == 0) {
		id = st.ring.cur[slot]
	}
	return b.slots.owners[id].real.Addr.String()
}

// beforeChange reads flow_seen's bit of the flows before the last change
// for a frame's flow (rr: the 5-tuple hash).
func (b *Backend) beforeChange(t *testing.T, f *packet.Frame) bool {
	t.Helper()
	h := flowHash(flowKeyOfFrame(f), b.opts.selectionFlags(), [4]uint32{})
	k := 4*b.seenWords + (h>>6)&(b.seenWords-1)
	var snap uint64
	if err := b.objs.FlowSeen.Lookup(k, &snap); err != nil {
		t.Fatal(err)
	}
	return snap&(1<<(h&63)) != 0
}

func udp4(dport, sport uint16) *packet.Frame {
	return &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4},
		UDP: &packet.UDP{SrcPort: sport, DstPort: dport}, Payload: []byte("q")}
}

// The selection rule with the flow table as memory of changes only: while
// a service's table is unchanged no packet reads or writes the flow table;
// after a change every flow older than it keeps its real (TCP told apart
// by the SYN, UDP by flow_seen's record of the flows before the change), new flows follow the current table, flows
// opened between two changes keep theirs through the second, a drained
// real keeps its flows and gets no new one; once the idle timeouts have
// passed, Settle clears every slot without a live disagreeing entry, and
// the packets of those slots read the table only again.
func TestTableChangeKeepsEveryFlow(t *testing.T) {
	clock := time.Unix(1_000_000, 0)
	b := loadWith(t, Options{Now: func() time.Time { return clock }, SYNFloodThreshold: -1})
	ctx := context.Background()
	services := func(reals ...dataplane.Real) []dataplane.Service {
		tcp := svc(vip4, 80, dataplane.TCP, "rr")
		udp := svc(vip4, 53, dataplane.UDP, "rr")
		tcp.Reals, udp.Reals = reals, reals
		return []dataplane.Service{tcp, udp}
	}
	real := func(addr string, w int) dataplane.Real {
		return dataplane.Real{Addr: netip.MustParseAddr(addr), Weight: uint32(w)}
	}
	if err := b.Apply(ctx, services(real("10.1.0.11", 1), real("10.1.0.12", 1))); err != nil {
		t.Fatal(err)
	}
	send := func(f *packet.Frame) string {
		t.Helper()
		v, out := run(t, b, f.Bytes())
		if v != xdpTX {
			t.Fatalf("%v: verdict %d", flowKeyOfFrame(f), v)
		}
		return realOf(out)
	}
	ack := func(f *packet.Frame) *packet.Frame { return withFlags(f, packet.TCPAck) }
	var flows []probeFlow
	// open starts n TCP and n UDP flows from port base on and checks each
	// against the Go side's view of the tables.
	open := func(base uint16, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			syn := tcp4(vip4, 80, base+uint16(i))
			want := b.expected(t, syn, true)
			if got := send(syn); got != want {
				t.Fatalf("new TCP flow %d went to %s, the table says %s", base+uint16(i), got, want)
			}
			if got := send(ack(syn)); got != want {
				t.Fatalf("TCP flow %d: SYN to %s, ACK to %s", base+uint16(i), want, got)
			}
			flows = append(flows, probeFlow{ack(syn), want})
			u := udp4(53, base+uint16(i))
			want = b.expected(t, u, !b.beforeChange(t, u))
			if got := send(u); got != want {
				t.Fatalf("new UDP flow %d went to %s, the table says %s", base+uint16(i), got, want)
			}
			flows = append(flows, probeFlow{u, want})
		}
	}
	// kept checks every flow so far still reaches its real.
	kept := func(stage string) {
		t.Helper()
		for _, fl := range flows {
			if got := send(fl.f); got != fl.real {
				t.Fatalf("%s: flow %v moved from %s to %s", stage, flowKeyOfFrame(fl.f), fl.real, got)
			}
		}
	}

	open(1000, 200)
	r := b.Reasons()
	if n := b.FlowEntries(); n != 0 || r[CTHit]+r[CTNew]+r[CTPrev] != 0 || r[Ring] != 600 {
		t.Fatalf("unchanged tables: %d flow entries, reasons ring %d hit %d new %d prev %d; want only ring (600)",
			n, r[Ring], r[CTHit], r[CTNew], r[CTPrev])
	}

	// A third real: about a third of the slots change.
	if err := b.Apply(ctx, services(real("10.1.0.11", 1), real("10.1.0.12", 1), real("10.1.0.13", 1))); err != nil {
		t.Fatal(err)
	}
	r0 := b.Reasons()
	kept("after adding a real")
	r1 := b.Reasons()
	prev, ring := r1[CTPrev]-r0[CTPrev], r1[Ring]-r0[Ring]
	t.Logf("after adding a real: %d of %d old flows kept by their slot's previous real (recorded), %d on clean slots",
		prev, len(flows), ring)
	if prev == 0 || ring == 0 || prev+ring != uint64(len(flows)) || b.FlowEntries() != int(prev) {
		t.Fatalf("old flows: %d previous-real, %d clean-slot, %d entries (of %d flows)", prev, ring, b.FlowEntries(), len(flows))
	}
	before := len(flows)
	open(3000, 200)
	on13 := 0
	for _, fl := range flows[before:] {
		if fl.real == "10.1.0.13" {
			on13++
		}
	}
	if on13 == 0 {
		t.Fatal("no new flow reached the added real")
	}

	// Drain .12: its flows stay, new ones avoid it.
	if err := b.Apply(ctx, services(real("10.1.0.11", 1), real("10.1.0.12", 0), real("10.1.0.13", 1))); err != nil {
		t.Fatal(err)
	}
	kept("after draining a real")
	before = len(flows)
	open(5000, 100)
	for _, fl := range flows[before:] {
		if fl.real == "10.1.0.12" {
			t.Fatalf("new flow %v went to the drained real", flowKeyOfFrame(fl.f))
		}
	}
	kept("after the new flows")

	// Not settled before the timeouts have passed since the last change.
	if n, err := b.Settle(); err != nil || n != 0 {
		t.Fatalf("Settle right after a change cleared %d slots (%v)", n, err)
	}
	// Later: every entry idle beyond its timeout but one that disagrees
	// with the current table, which keeps its slot dirty.
	clock = clock.Add(b.settleAfter() + time.Second)
	var keep *probeFlow
	for i := range flows {
		if fl := &flows[i]; fl.f.TCP != nil && fl.real == "10.1.0.12" && b.hasFlow(fl.f) {
			keep = fl
			break
		}
	}
	if keep == nil {
		t.Fatal("no recorded flow on the drained real")
	}
	// Two hours on for the flow entries' clock (a fresh machine has no
	// two-hour-old entries to fake): every entry is idle but the kept
	// one, dated then.
	later := func() uint64 { return monoNow() + uint64(2*time.Hour) }
	keepKey := flowKeyOf(keep.f)
	var v lbFlowVal
	if err := b.objs.Conntrack4.Lookup(&keepKey, &v); err != nil {
		t.Fatal(err)
	}
	v.LastSeen = later()
	if err := b.objs.Conntrack4.Put(&keepKey, &v); err != nil {
		t.Fatal(err)
	}
	b.mono = later
	dirtyBefore := 0
	for _, st := range b.svcs {
		dirtyBefore += st.ring.dirty
	}
	n, err := b.Settle()
	if err != nil {
		t.Fatal(err)
	}
	dirtyAfter := 0
	for _, st := range b.svcs {
		dirtyAfter += st.ring.dirty
	}
	shown := 0
	for _, n := range b.ChangedSlots() {
		shown += n
	}
	if shown != dirtyAfter {
		t.Fatalf("ChangedSlots shows %d slots, %d are dirty", shown, dirtyAfter)
	}
	t.Logf("settle: %d dirty slots, %d cleared, %d left", dirtyBefore, n, dirtyAfter)
	if n == 0 || dirtyAfter != 1 || dirtyBefore-n != dirtyAfter {
		t.Fatalf("settle cleared %d of %d dirty slots, %d left; want all but the live flow's", n, dirtyBefore, dirtyAfter)
	}
	// Back to now, for the program too.
	b.mono = monoNow
	v.LastSeen = monoNow() - uint64(time.Second) // the program's coarse clock lags this one
	if err := b.objs.Conntrack4.Put(&keepKey, &v); err != nil {
		t.Fatal(err)
	}
	for _, st := range b.svcs {
		got, err := readRing(b.objs.Rings, st.id)
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if got[i] != st.ring.t[i] {
				t.Fatalf("rings slot %d holds %x, the Go side %x", i, got[i], st.ring.t[i])
			}
		}
	}
	h0 := b.Reasons()[CTHit]
	if got := send(keep.f); got != keep.real {
		t.Fatalf("the live flow moved from %s to %s after settling", keep.real, got)
	}
	if b.Reasons()[CTHit] != h0+1 {
		t.Fatal("the live flow's packet did not read its entry")
	}
	// Every other flow now takes its slot's real without a lookup.
	r0 = b.Reasons()
	for _, fl := range flows {
		if fl.f != keep.f {
			send(fl.f)
		}
	}
	r1 = b.Reasons()
	if got := r1[Ring] - r0[Ring]; got != uint64(len(flows)-1) {
		t.Fatalf("after settling %d of %d packets read only the table", got, len(flows)-1)
	}
}

// A restart with pinned maps during a transition keeps the dirty slots:
// the new process reads them back, and its first Apply of the same
// services leaves them as they were.
func TestRestartKeepsDirtySlots(t *testing.T) {
	// keepalived.conf may name a real with or without its port; the maps
	// hold the effective port either way, and adoption must give the slot
	// back to the real as configured.
	for _, port := range []uint16{80, 0} {
		t.Run(fmt.Sprintf("real port %d", port), func(t *testing.T) { restartKeepsDirtySlots(t, port) })
	}
}

func restartKeepsDirtySlots(t *testing.T, port uint16) {
	pins := pinDir(t)
	o := Options{PinPath: pins, KeepOnClose: true, ResolveMAC: fakeResolve}
	first := loadWith(t, o)
	ctx := context.Background()
	withPorts := func(s dataplane.Service) []dataplane.Service {
		for i := range s.Reals {
			s.Reals[i].Port = port
		}
		return []dataplane.Service{s}
	}
	two := withPorts(svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12"))
	three := withPorts(svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12", "10.1.0.13"))
	if err := first.Apply(ctx, two); err != nil {
		t.Fatal(err)
	}
	if err := first.Apply(ctx, three); err != nil {
		t.Fatal(err)
	}
	st := first.svcs[three[0].Key]
	want := append([]uint32(nil), st.ring.t...)
	if st.ring.dirty == 0 {
		t.Fatal("adding a real left no dirty slot")
	}
	first.Close()

	second := loadWith(t, Options{PinPath: pins, ResolveMAC: fakeResolve})
	if err := second.Apply(ctx, three); err != nil {
		t.Fatal(err)
	}
	got, err := readRing(second.objs.Rings, second.svcs[three[0].Key].id)
	if err != nil {
		t.Fatal(err)
	}
	dirty := 0
	for i := range got {
		if got[i]&ringDirty != 0 {
			dirty++
		}
		if got[i] != want[i] {
			t.Fatalf("slot %d: %x after the restart, %x before", i, got[i], want[i])
		}
	}
	if dirty != st.ring.dirty {
		t.Fatalf("%d dirty slots after the restart, %d before", dirty, st.ring.dirty)
	}
	for rk := range second.svcs[three[0].Key].reals {
		if rk.Port != port {
			t.Fatalf("adopted real %s, configured with port %d", rk, port)
		}
	}
}

// pinDir is a bpffs directory of the test's own.
func pinDir(t *testing.T) string {
	t.Helper()
	lab.RequireRoot(t)
	return filepath.Join(lab.New(t).BPFFS(), "halo")
}

// A table that goes back to what it was (a real added, then drained)
// leaves its slots dirty: flows that started on the added real in between
// stay on it, although every slot's current real is its previous one
// again.
func TestTableChangeAndBack(t *testing.T) {
	b := loadWith(t, Options{SYNFloodThreshold: -1})
	ctx := context.Background()
	apply := func(w13 uint32) {
		t.Helper()
		s := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12")
		if w13 != 2 {
			s.Reals = append(s.Reals, dataplane.Real{Addr: netip.MustParseAddr("10.1.0.13"), Weight: w13})
		}
		if err := b.Apply(ctx, []dataplane.Service{s}); err != nil {
			t.Fatal(err)
		}
	}
	apply(2) // two reals
	apply(1) // a third
	var on13 []*packet.Frame
	for sp := uint16(1000); sp < 1300; sp++ {
		syn := tcp4(vip4, 80, sp)
		if _, out := run(t, b, syn.Bytes()); realOf(out) == "10.1.0.13" {
			on13 = append(on13, withFlags(syn, packet.TCPAck))
		}
	}
	if len(on13) == 0 {
		t.Fatal("no new flow reached the added real")
	}
	apply(0) // drained: the table is the first one again
	st := b.svcs[dataplane.ServiceKey{Addr: vip4, Port: 80, Proto: dataplane.TCP}]
	if st.ring.dirty == 0 {
		t.Fatal("no slot stayed dirty")
	}
	for _, f := range on13 {
		if _, out := run(t, b, f.Bytes()); realOf(out) != "10.1.0.13" {
			t.Fatalf("flow %d moved from the drained real to %s", f.TCP.SrcPort, realOf(out))
		}
	}
	t.Logf("%d flows opened on the added real stayed through the table's return; %d slots dirty", len(on13), st.ring.dirty)
}

// A service whose hash changes (rr to sh, as a reload that changes
// lb_algo does) has every slot looked up until it settles, with each
// flow's previous real found by the previous hash: every flow keeps its
// real, recorded or not, through the change and a further one; new flows
// follow the new hash. Settling returns the service to clean slots.
func TestHashChangeKeepsEveryFlow(t *testing.T) {
	clock := time.Unix(1_000_000, 0)
	b := loadWith(t, Options{SYNFloodThreshold: -1, Now: func() time.Time { return clock }})
	ctx := context.Background()
	key := dataplane.ServiceKey{Addr: vip4, Port: 80, Proto: dataplane.TCP}
	apply := func(sched string, reals ...string) {
		t.Helper()
		if err := b.Apply(ctx, []dataplane.Service{svc(vip4, 80, dataplane.TCP, sched, reals...)}); err != nil {
			t.Fatal(err)
		}
	}
	type fl struct {
		f    *packet.Frame
		real string
	}
	var flows []fl
	open := func(from, n uint16) {
		for sp := from; sp < from+n; sp++ {
			syn := tcp4(vip4, 80, sp)
			syn.IPv4.Src = netip.AddrFrom4([4]byte{198, 51, 100, byte(sp)})
			want := b.expected(t, syn, true)
			if _, out := run(t, b, syn.Bytes()); realOf(out) != want {
				t.Fatalf("new flow %d went to %s, the table says %s", sp, realOf(out), want)
			}
			flows = append(flows, fl{withFlags(syn, packet.TCPAck), want})
		}
	}
	kept := func(stage string) {
		t.Helper()
		for _, f := range flows {
			if _, out := run(t, b, f.f.Bytes()); realOf(out) != f.real {
				t.Fatalf("%s: flow %d moved from %s to %s", stage, f.f.TCP.SrcPort, f.real, realOf(out))
			}
		}
	}
	apply("rr", "10.1.0.11", "10.1.0.12", "10.1.0.13")
	open(2000, 200) // unrecorded: nothing changed yet
	if b.FlowEntries() != 0 {
		t.Fatalf("%d entries before any change", b.FlowEntries())
	}
	apply("sh", "10.1.0.11", "10.1.0.12", "10.1.0.13")
	st := b.svcs[key]
	if !st.ring.rehash || st.ring.dirty != len(st.ring.cur) {
		t.Fatalf("after the hash changed: rehash %v, %d of %d slots dirty", st.ring.rehash, st.ring.dirty, len(st.ring.cur))
	}
	kept("after rr -> sh")
	open(3000, 100) // by the new hash: recorded, every slot is dirty
	apply("sh", "10.1.0.11", "10.1.0.12", "10.1.0.13", "10.1.0.14")
	kept("after adding a real")
	if !b.svcs[key].ring.rehash {
		t.Fatal("a later change ended the rehash")
	}
	// Settled once the timeouts passed and no live entry disagrees
	// with the current table: two hours on, every entry is idle.
	clock = clock.Add(b.settleAfter() + time.Second)
	b.mono = func() uint64 { return monoNow() + uint64(2*time.Hour) }
	if _, err := b.Settle(); err != nil {
		t.Fatal(err)
	}
	st = b.svcs[key]
	var meta lbVipMeta
	if err := b.objs.SvcMeta.Lookup(st.id, &meta); err != nil {
		t.Fatal(err)
	}
	if st.ring.rehash || st.ring.dirty != 0 || meta.Flags&svcRehashed != 0 {
		t.Fatalf("after settling: rehash %v, %d dirty, program flags %x", st.ring.rehash, st.ring.dirty, meta.Flags)
	}
	r0 := b.Reasons()[Ring]
	syn := tcp4(vip4, 80, 9999)
	if _, out := run(t, b, syn.Bytes()); realOf(out) != b.expected(t, syn, true) || b.Reasons()[Ring] != r0+1 {
		t.Fatalf("after settling a new flow went to %s (ring %d -> %d)", realOf(out), r0, b.Reasons()[Ring])
	}
}
