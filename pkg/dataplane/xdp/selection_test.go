package xdp

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/pkg/dataplane"
)

// The selection rule: two directors that built their tables on their own
// (different slot ids, reals listed in another order) send every flow key
// to the same real, for each kind of scheduler. Unprivileged: the table
// builder and the Go mirror of the program's hash are pure.
func TestSelectionRule(t *testing.T) {
	s := dataplane.Service{Key: dataplane.ServiceKey{Addr: netip.MustParseAddr("10.0.0.100"), Port: 80, Proto: dataplane.TCP}}
	for i := 0; i < 10; i++ {
		s.Reals = append(s.Reals, dataplane.Real{Addr: netip.AddrFrom4([4]byte{10, 0, 1, byte(10 + i)}), Port: 80, Weight: uint32(1 + i%3)})
	}
	s.Reals[3].Weight = 0 // drained
	s.Reals[7].Down = true
	other := s
	other.Reals = append([]dataplane.Real(nil), s.Reals...)
	rand.New(rand.NewPCG(1, 2)).Shuffle(len(other.Reals), func(i, j int) { other.Reals[i], other.Reals[j] = other.Reals[j], other.Reals[i] })

	build := func(svc dataplane.Service, base uint32) ([]uint32, map[uint32]dataplane.RealKey) {
		ids := map[uint32]dataplane.RealKey{}
		slot := map[dataplane.RealKey]uint32{}
		for i, r := range svc.Reals {
			slot[r.Key()] = base + uint32(i)*7
			ids[base+uint32(i)*7] = r.Key()
		}
		table, err := buildTable(svc, func(rk dataplane.RealKey) (uint32, bool) { return slot[rk], true })
		if err != nil {
			t.Fatal(err)
		}
		return table, ids
	}
	ta, ida := build(s, 1)
	tb, idb := build(other, 5000)

	full, _ := addrWords(fullMask(true, 0))
	slash24, _ := addrWords(fullMask(true, 24))
	rng := rand.New(rand.NewPCG(3, 4))
	for _, sel := range []struct {
		name  string
		flags uint32
		mask  [4]uint32
	}{
		{"5-tuple (rr, wrr, lc, wlc, dh)", 0, full},
		{"source (sh, mh)", uint32(lbLbFlagsSVC_HASH_SRC), full},
		{"source and port (mh-port)", uint32(lbLbFlagsSVC_HASH_SRC | lbLbFlagsSVC_HASH_PORT), full},
		{"persistence /24", uint32(lbLbFlagsSVC_HASH_SRC), slash24},
	} {
		t.Run(sel.name, func(t *testing.T) {
			seen := map[dataplane.RealKey]int{}
			for i := 0; i < 20000; i++ {
				k := FlowKey{Src: netip.AddrFrom4([4]byte{192, byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))}), Dst: s.Key.Addr,
					SPort: uint16(1024 + rng.IntN(60000)), DPort: 80, Proto: 6}
				pos := flowHash(k, sel.flags, sel.mask) % RingSize
				a, b := ida[ta[pos]], idb[tb[pos]]
				if a != b {
					t.Fatalf("key %+v: director A picks %s, director B %s", k, a, b)
				}
				seen[a]++
			}
			if len(seen) != 8 {
				t.Fatalf("flows reached %d reals, want the 8 with a weight that are up: %v", len(seen), seen)
			}
			for _, r := range []dataplane.Real{s.Reals[3], s.Reals[7]} {
				if seen[r.Key()] != 0 {
					t.Fatalf("%s (drained or down) got new flows", r.Key())
				}
			}
		})
	}
}

// Persistence granularity groups clients: addresses in one /24 share a
// table position, and the rule still separates /24s.
func TestPersistenceMaskGroupsClients(t *testing.T) {
	m, _ := addrWords(fullMask(true, 24))
	flags := uint32(lbLbFlagsSVC_HASH_SRC)
	k := func(a string, port uint16) FlowKey {
		return FlowKey{Src: netip.MustParseAddr(a), Dst: netip.MustParseAddr("10.0.0.1"), SPort: port, DPort: 80, Proto: 6}
	}
	if flowHash(k("192.0.2.1", 1000), flags, m) != flowHash(k("192.0.2.250", 2000), flags, m) {
		t.Fatal("two clients of one /24 hash apart under persistence_granularity /24")
	}
	distinct := map[uint32]bool{}
	for i := 0; i < 64; i++ {
		distinct[flowHash(k(fmt.Sprintf("192.0.%d.1", i), 1000), flags, m)] = true
	}
	if len(distinct) < 60 {
		t.Fatalf("64 /24s gave %d hashes", len(distinct))
	}
}
