package xdp

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
)

// rnat_filter covers exactly the reverse-NAT keys after an apply: every
// key's entry set, nothing else; without NAT services it is empty.
func TestRNATFilterFollowsApply(t *testing.T) {
	b := loadTest(t)
	ctx := context.Background()
	read := func() map[uint32]bool {
		set := map[uint32]bool{}
		var i, v uint32
		for it := b.objs.RnatFilter.Iterate(); it.Next(&i, &v); {
			if v != 0 {
				set[i] = true
			}
		}
		return set
	}
	if err := b.Apply(ctx, goldenNATServices()); err != nil {
		t.Fatal(err)
	}
	want := map[uint32]bool{}
	var k lbVipKey
	var v lbRnatVal
	n := 0
	for it := b.objs.Rnat.Iterate(); it.Next(&k, &v); n++ {
		want[vipFilterIndex(k)] = true
	}
	if n == 0 {
		t.Fatal("no reverse-NAT entries with NAT services")
	}
	if got := read(); len(got) != len(want) {
		t.Fatalf("filter entries %v, want %v (the %d keys' indexes)", got, want, n)
	} else {
		for i := range want {
			if !got[i] {
				t.Fatalf("filter entry %d (a key's) not set: %v", i, got)
			}
		}
	}
	if err := b.Apply(ctx, goldenServices()); err != nil {
		t.Fatal(err)
	}
	if got := read(); len(got) != 0 {
		t.Fatalf("filter entries %v left without NAT services", got)
	}
}

// A halod that adopts the maps of a build without rnat_filter (its pin
// missing, a fresh empty map created) makes the filter cover the adopted
// reverse-NAT index at load, before its first apply: the replies of NAT
// flows keep being translated across the upgrade. The reply here has no
// next hop, so it counts pass_no_nexthop after the rnat lookup, where a
// filter that hid its key would count pass_not_vip.
func TestRNATFilterCoversAdoptedIndex(t *testing.T) {
	pins := pinDir(t)
	o := Options{PinPath: pins, ResolveMAC: fakeResolve, KeepOnClose: true}
	b1, err := LoadWith(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := b1.Apply(context.Background(), goldenNATServices()); err != nil {
		b1.Close()
		t.Fatal(err)
	}
	b1.Close()
	od := o
	od.defaults()
	if err := os.Remove(filepath.Join(pins, layoutDir(od), "rnat_filter")); err != nil {
		t.Fatal(err)
	}
	b, err := LoadWith(o)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	const dm = "02:00:00:00:00:02"
	r4 := realMACs["10.1.0.13"].String()
	reply := natFrame{src: natReal4, dst: otherClient4, sport: 8443, dport: 2000, ttl: 64, smac: r4, dmac: dm}.frame().Bytes()
	before := b.Reasons()
	verdict, out := run(t, b, reply)
	after := b.Reasons()
	if verdict != xdpPass || !bytes.Equal(out[:len(reply)], reply) {
		t.Fatalf("reply without a next hop: verdict %d, changed %v", verdict, !bytes.Equal(out[:len(reply)], reply))
	}
	if after[PassNoNextHop] != before[PassNoNextHop]+1 {
		t.Fatalf("the adopted index's reply was not looked up: pass_no_nexthop %d -> %d, pass_not_vip %d -> %d",
			before[PassNoNextHop], after[PassNoNextHop], before[PassNotVIP], after[PassNotVIP])
	}
	// Anyone else's packet still passes as no VIP's.
	other := natFrame{src: otherClient4, dst: natReal4, sport: 2000, dport: 8443, ttl: 64, smac: r4, dmac: dm}.frame().Bytes()
	before = b.Reasons()
	if verdict, _ := run(t, b, other); verdict != xdpPass || b.Reasons()[PassNotVIP] != before[PassNotVIP]+1 {
		t.Fatalf("a packet of no NAT real: verdict %d, pass_not_vip %d -> %d", verdict, before[PassNotVIP], b.Reasons()[PassNotVIP])
	}
}
