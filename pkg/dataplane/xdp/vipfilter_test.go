package xdp

import (
	"context"
	"net/netip"
	"slices"
	"testing"

	"github.com/halo-lb/halo/pkg/dataplane"
)

func TestVIPIndexEntries(t *testing.T) {
	a := dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.10"), Port: 80, Proto: dataplane.TCP}
	b := dataplane.ServiceKey{Addr: netip.MustParseAddr("2001:db8::10"), Port: 53, Proto: dataplane.UDP}
	ids := map[dataplane.ServiceKey]uint32{a: 0, b: 7}
	id := func(k dataplane.ServiceKey) (uint32, bool) { n, ok := ids[k]; return n, ok }
	ia, ib := vipFilterIndex(vipKey(a)), vipFilterIndex(vipKey(b))
	if ia == ib {
		t.Skip("the two keys share an entry")
	}
	idx := vipIndexOf(id, true, []dataplane.Service{{Key: a}}, []dataplane.Service{{Key: b}, {Key: a}})
	if idx[ia] != 1 || idx[ib] != 8 {
		t.Fatalf("exact entries %d and %d, want 1 and 8 (id + 1)", idx[ia], idx[ib])
	}
	set := 0
	for _, v := range idx {
		if v != 0 {
			set++
		}
	}
	if set != 2 {
		t.Fatalf("%d entries set for two services", set)
	}
	// While the maps change, every entry with a service asks the hash map.
	loose := vipIndexOf(id, false, []dataplane.Service{{Key: a}, {Key: b}})
	if loose[ia] != vipIndexMany || loose[ib] != vipIndexMany {
		t.Fatalf("entries while changing: %x %x", loose[ia], loose[ib])
	}
	// Two services on one entry, or one without an id: the hash map.
	var c dataplane.ServiceKey
	for p := uint16(1); ; p++ {
		c = dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.11"), Port: p, Proto: dataplane.TCP}
		if vipFilterIndex(vipKey(c)) == ia {
			break
		}
	}
	ids[c] = 3
	if got := vipIndexOf(id, true, []dataplane.Service{{Key: a}, {Key: c}}); got[ia] != vipIndexMany {
		t.Fatalf("a shared entry holds %x", got[ia])
	}
	if got := vipIndexOf(id, true, []dataplane.Service{{Key: dataplane.ServiceKey{Addr: a.Addr, Port: 99}}}); slices.Contains(got, 1) {
		t.Fatal("a service without an id was given one")
	}
	// The port and protocol count: another port of the same address
	// (almost always) tests another entry.
	other := a
	other.Port = 81
	if vipFilterIndex(vipKey(other)) == ia {
		t.Errorf("port 81 shares port 80's entry")
	}
}

// The map follows the installed services: each entry names its service
// after Apply, and is cleared when the services go. (That the C and Go
// index functions agree is what every VIP case of TestGoldenPackets shows:
// a VIP whose entry the program looked for elsewhere would be passed to
// the stack.)
func TestVIPIndexFollowsServices(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), goldenServices()); err != nil {
		t.Fatal(err)
	}
	read := func() []uint32 {
		out := make([]uint32, len(vipIndexKeys))
		for i := range out {
			if err := b.objs.VipIndex.Lookup(uint32(i), &out[i]); err != nil {
				t.Fatal(err)
			}
		}
		return out
	}
	got := read()
	for _, s := range goldenServices() {
		st := b.svcs[s.Key]
		v := got[vipFilterIndex(vipKey(s.Key))]
		if v != st.id+1 && v != vipIndexMany {
			t.Fatalf("%s: vip_index holds %x, its id is %d", s.Key, v, st.id)
		}
		if v == st.id+1 {
			var m lbVipMeta
			if err := b.objs.SvcMeta.Lookup(st.id, &m); err != nil || m.Key != vipKey(s.Key) {
				t.Fatalf("%s: svc_meta[%d] holds %+v (%v)", s.Key, st.id, m.Key, err)
			}
		}
	}
	if err := b.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if slices.ContainsFunc(read(), func(v uint32) bool { return v != 0 }) {
		t.Fatalf("vip_index keeps entries after every service is gone")
	}
}
