package xdp

import (
	"context"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/pkg/dataplane"
)

func TestVIPFilterBits(t *testing.T) {
	a, b := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	f := vipFilterOf([]dataplane.Service{{Key: dataplane.ServiceKey{Addr: a}}}, []dataplane.Service{{Key: dataplane.ServiceKey{Addr: b}}})
	set := 0
	for _, w := range f.Bits {
		for ; w != 0; w &= w - 1 {
			set++
		}
	}
	want := 2
	if vipFilterIndex(a) == vipFilterIndex(b) {
		want = 1
	}
	if set != want {
		t.Fatalf("%d bits set for two addresses, want %d", set, want)
	}
	for _, x := range []netip.Addr{a, b} {
		if i := vipFilterIndex(x); f.Bits[i/64]&(1<<(i%64)) == 0 {
			t.Errorf("bit of %s (%d) not set", x, i)
		}
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
