package xdp

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// An in-place upgrade from the mix32 selection hash (halo before murmur3,
// or selection_hash mix32) to murmur3, with pinned maps: every flow of the
// old program, none of them recorded (its slots were clean), keeps its
// real although the new hash sends most of them elsewhere; new
// connections follow the new hash; once the flows are gone the service
// settles to the new hash's table with no flow-table reads.
func TestUpgradeFromMix32KeepsEveryFlow(t *testing.T) {
	pins := pinDir(t)
	clock := time.Unix(1_000_000, 0)
	now := func() time.Time { return clock }
	ctx := context.Background()
	s := svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11", "10.1.0.12", "10.1.0.13")
	for i := range s.Reals {
		s.Reals[i].Port = 80 // adoption reads the effective port back
	}
	services := []dataplane.Service{s}
	old := loadWith(t, Options{PinPath: pins, KeepOnClose: true, ResolveMAC: fakeResolve, SYNFloodThreshold: -1,
		SelectionHash: HashMix32, Now: now})
	if err := old.Apply(ctx, services); err != nil {
		t.Fatal(err)
	}
	if old.svcs[s.Key].flags&svcHashMurmur3 != 0 {
		t.Fatal("selection_hash mix32 set the murmur3 flag")
	}
	type fl struct {
		ack  *packet.Frame
		real string
	}
	var flows []fl
	for sp := uint16(0); sp < 300; sp++ {
		syn := tcp4(vip4, 80, 10000+sp)
		syn.IPv4.Src = netip.AddrFrom4([4]byte{198, 51, 100, byte(sp)})
		want := old.expected(t, syn, true)
		if _, out := run(t, old, syn.Bytes()); realOf(out) != want {
			t.Fatalf("mix32: flow %d went to %s, the Go rule says %s", sp, realOf(out), want)
		}
		flows = append(flows, fl{withFlags(syn, packet.TCPAck), want})
	}
	if n := old.FlowEntries(); n != 0 {
		t.Fatalf("%d flow entries on clean slots", n)
	}
	old.Close()

	b := loadWith(t, Options{PinPath: pins, ResolveMAC: fakeResolve, SYNFloodThreshold: -1, Now: now})
	if err := b.Apply(ctx, services); err != nil {
		t.Fatal(err)
	}
	st := b.svcs[s.Key]
	if !st.ring.rehash || st.flags&svcHashMurmur3 == 0 || st.ring.prevFlags&svcHashMurmur3 != 0 {
		t.Fatalf("after the upgrade: rehash %v, flags %x, previous flags %x", st.ring.rehash, st.flags, st.ring.prevFlags)
	}
	moved := 0
	for _, f := range flows {
		k := flowKeyOfFrame(f.ack)
		if b.slots.owners[st.ring.cur[flowHash(k, st.flags, st.mask)%RingSize]].real.Addr.String() != f.real {
			moved++
		}
		if _, out := run(t, b, f.ack.Bytes()); realOf(out) != f.real {
			t.Fatalf("after the upgrade flow %d moved from %s to %s", f.ack.TCP.SrcPort, f.real, realOf(out))
		}
	}
	// Without the rehash these would have moved: the test means something
	// only if the two hashes disagree on most flows.
	if moved < 150 {
		t.Fatalf("murmur3 and mix32 agree on %d of 300 flows", 300-moved)
	}
	for sp := uint16(0); sp < 50; sp++ {
		syn := tcp4(vip4, 80, 20000+sp)
		want := b.expected(t, syn, true)
		if _, out := run(t, b, syn.Bytes()); realOf(out) != want {
			t.Fatalf("new flow %d after the upgrade went to %s, murmur3 says %s", sp, realOf(out), want)
		}
	}
	clock = clock.Add(b.settleAfter() + time.Second)
	b.mono = func() uint64 { return monoNow() + uint64(2*time.Hour) }
	if _, err := b.Settle(); err != nil {
		t.Fatal(err)
	}
	var meta lbVipMeta
	if err := b.objs.SvcMeta.Lookup(b.svcs[s.Key].id, &meta); err != nil {
		t.Fatal(err)
	}
	if b.svcs[s.Key].ring.rehash || meta.Flags&svcRehashed != 0 || meta.Flags&svcHashMurmur3 == 0 {
		t.Fatalf("after settling: rehash %v, program flags %x", b.svcs[s.Key].ring.rehash, meta.Flags)
	}
	r0 := b.Reasons()[Ring]
	syn := tcp4(vip4, 80, 30000)
	if _, out := run(t, b, syn.Bytes()); realOf(out) != b.expected(t, syn, true) || b.Reasons()[Ring] != r0+1 {
		t.Fatalf("after settling a new flow went to %s (ring %d -> %d)", realOf(out), r0, b.Reasons()[Ring])
	}
}

// The Go rule (flowHash over the tables the Go side built) and the program
// pick the same real for every kind of selection, both hash versions and
// both families: the settle scan and the tests rely on the Go rule.
func TestSelectionMatchesProgram(t *testing.T) {
	for _, hash := range []string{HashMurmur3, HashMix32} {
		b := loadWith(t, Options{ResolveMAC: fakeResolve, SYNFloodThreshold: -1, SelectionHash: hash})
		var services []dataplane.Service
		for i, kind := range []struct {
			sched   string
			flags   []string
			persist time.Duration
		}{{"rr", nil, 0}, {"sh", nil, 0}, {"mh", []string{"mh-port"}, 0}, {"wlc", nil, time.Minute}} {
			v4 := svc(vip4, uint16(80+i), dataplane.TCP, kind.sched, "10.1.0.11", "10.1.0.12", "10.1.0.13", "10.1.0.14")
			v6 := svc(vip6, uint16(80+i), dataplane.TCP, kind.sched, "fd00:1::11", "fd00:1::13", "fd00:1::14")
			for _, s := range []*dataplane.Service{&v4, &v6} {
				s.SchedFlags, s.Persistence = kind.flags, kind.persist
				s.PersistenceMask = 24
				if s.Key.Addr.Is6() {
					s.PersistenceMask = 64
				}
			}
			services = append(services, v4, v6)
		}
		if err := b.Apply(context.Background(), services); err != nil {
			t.Fatal(err)
		}
		for _, s := range services {
			reached := map[string]bool{}
			for n := 0; n < 96; n++ {
				f := tcp4(s.Key.Addr, s.Key.Port, uint16(30000+n*7))
				if s.Key.Addr.Is6() {
					f.IPv4 = nil
					f.IPv6 = &packet.IPv6{Src: netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 6: byte(n / 3), 7: byte(n), 15: 7}), Dst: s.Key.Addr}
				} else {
					f.IPv4.Src = netip.AddrFrom4([4]byte{198, 51, byte(n / 3), byte(n)})
				}
				want := b.expected(t, f, true)
				if _, out := run(t, b, f.Bytes()); realOf(out) != want {
					t.Fatalf("%s %s %s: flow %d went to %s, the Go rule says %s", hash, s.Scheduler, s.Key, n, realOf(out), want)
				}
				reached[want] = true
			}
			if len(reached) < len(s.Reals)-1 {
				t.Fatalf("%s %s %s: 96 flows reached only %v", hash, s.Scheduler, s.Key, reached)
			}
		}
	}
}

// The selection hash is a contract between directors and between halo
// versions: these values must never change (a change moves every flow of
// an upgraded director's peer). murmur3's are murmur3_32 of the key words'
// bytes (the library's, through murmur3Words).
func TestSelectionHashValues(t *testing.T) {
	k4 := FlowKey{Src: netip.MustParseAddr("192.0.2.7"), Dst: netip.MustParseAddr("10.1.0.100"), SPort: 40000, DPort: 80, Proto: 6}
	k6 := FlowKey{Src: netip.MustParseAddr("2001:db8::7"), Dst: netip.MustParseAddr("fd00:1::100"), SPort: 40000, DPort: 443, Proto: 17}
	full4, _ := addrWords(fullMask(true, 0))
	full6, _ := addrWords(fullMask(false, 0))
	src, port := uint32(lbLbFlagsSVC_HASH_SRC), uint32(lbLbFlagsSVC_HASH_SRC|lbLbFlagsSVC_HASH_PORT)
	for _, c := range []struct {
		name  string
		k     FlowKey
		flags uint32
		mask  [4]uint32
		want  uint32
	}{
		{"murmur3 5-tuple IPv4", k4, svcHashMurmur3, full4, 0x2313a7ce},
		{"murmur3 5-tuple IPv6", k6, svcHashMurmur3, full6, 0x9b7173af},
		{"murmur3 source IPv4", k4, svcHashMurmur3 | src, full4, 0x53938d57},
		{"murmur3 source and port IPv6", k6, svcHashMurmur3 | port, full6, 0xbf8ec7ab},
		{"mix32 5-tuple IPv4", k4, 0, full4, 0x97bd801f},
		{"mix32 5-tuple IPv6", k6, 0, full6, 0xe0e68cc0},
		{"mix32 source and port IPv4", k4, port, full4, 0xe12fbbc3},
	} {
		if got := flowHash(c.k, c.flags, c.mask); got != c.want {
			t.Errorf("%s: %#x, want %#x", c.name, got, c.want)
		}
	}
}
