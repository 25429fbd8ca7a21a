package xdp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/pkg/dataplane"
)

func TestVIPFilterBits(t *testing.T) {
	a := dataplane.ServiceKey{Addr: netip.MustParseAddr("192.0.2.10"), Port: 80, Proto: dataplane.TCP}
	b := dataplane.ServiceKey{Addr: netip.MustParseAddr("2001:db8::10"), Port: 53, Proto: dataplane.UDP}
	f := vipFilterOf([]dataplane.Service{{Key: a}}, []dataplane.Service{{Key: b}})
	set := 0
	for _, w := range f.Bits {
		for ; w != 0; w &= w - 1 {
			set++
		}
	}
	ia, ib := vipFilterIndex(vipKey(a)), vipFilterIndex(vipKey(b))
	want := 2
	if ia == ib {
		want = 1
	}
	if set != want {
		t.Fatalf("%d bits set for two services, want %d", set, want)
	}
	for _, i := range []uint32{ia, ib} {
		if f.Bits[i/64]&(1<<(i%64)) == 0 {
			t.Errorf("bit %d not set", i)
		}
	}
	// The port and protocol count: another port of the same address
	// (almost always) tests another bit.
	other := a
	other.Port = 81
	if vipFilterIndex(vipKey(other)) == ia {
		t.Errorf("port 81 shares port 80's bit")
	}
}

// The map follows the installed services: set on Apply, cleared when the
// services go. (That the C and Go index functions agree is what every VIP
// case of TestGoldenPackets shows: a VIP whose bit the program looked for
// elsewhere would be passed to the stack.)
func TestVIPFilterFollowsServices(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), goldenServices()); err != nil {
		t.Fatal(err)
	}
	var got lbVipFilter
	if err := b.objs.VipFilter.Lookup(uint32(0), &got); err != nil {
		t.Fatal(err)
	}
	if want := vipFilterOf(goldenServices()); got != want {
		t.Fatalf("vip_filter after Apply differs from the services' bits")
	}
	if err := b.Apply(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if err := b.objs.VipFilter.Lookup(uint32(0), &got); err != nil {
		t.Fatal(err)
	}
	if got != (lbVipFilter{}) {
		t.Fatalf("vip_filter keeps bits after every service is gone")
	}
}
