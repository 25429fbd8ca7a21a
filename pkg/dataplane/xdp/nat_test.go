package xdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// rfc1071 is the Internet checksum's one's-complement sum of b (RFC 1071
// §4.1), written here on purpose: the golden test must not trust the
// program's incremental update nor the packet builder's helper.
func rfc1071(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

func rfc1071ok(sum uint32) bool {
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	return sum == 0xffff
}

// rfc1071Valid checks the IPv4 header checksum and the TCP/UDP checksum
// (pseudo-header included) of an Ethernet frame. IPv4 UDP with checksum 0
// (none) is valid; IPv6 UDP must carry one.
func rfc1071Valid(frame []byte) error {
	off := 12
	et := binary.BigEndian.Uint16(frame[off:])
	for et == 0x8100 || et == 0x88a8 {
		off += 4
		et = binary.BigEndian.Uint16(frame[off:])
	}
	off += 2
	var pseudo uint32
	var proto uint8
	var l4 []byte
	switch et {
	case 0x0800:
		ip := frame[off:]
		hl := int(ip[0]&0xf) * 4
		if !rfc1071ok(rfc1071(ip[:hl], 0)) {
			return fmt.Errorf("IPv4 header checksum wrong")
		}
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		proto = ip[9]
		l4 = ip[hl:tot]
		pseudo = rfc1071(ip[12:20], uint32(proto)+uint32(len(l4)))
	case 0x86dd:
		ip := frame[off:]
		proto = ip[6]
		l4 = ip[40 : 40+int(binary.BigEndian.Uint16(ip[4:]))]
		pseudo = rfc1071(ip[8:40], uint32(proto)+uint32(len(l4)))
	default:
		return nil
	}
	switch proto {
	case 6:
	case 17:
		if binary.BigEndian.Uint16(l4[6:]) == 0 {
			if et == 0x86dd {
				return fmt.Errorf("IPv6 UDP without a checksum")
			}
			return nil
		}
	default:
		return nil
	}
	if !rfc1071ok(rfc1071(l4, pseudo)) {
		return fmt.Errorf("protocol %d checksum wrong", proto)
	}
	return nil
}

// The checker itself must be able to fail: one flipped bit anywhere in the
// checked bytes is caught.
func TestRFC1071CheckerCatchesCorruption(t *testing.T) {
	for _, c := range natCases() {
		if c.out == nil {
			continue
		}
		if err := rfc1071Valid(c.out); err != nil {
			t.Fatalf("%s: builder frame invalid: %v", c.name, err)
		}
		for _, at := range []int{14 + 10, 14 + 16, len(c.out) - 1} {
			bad := append([]byte(nil), c.out...)
			bad[at] ^= 0x10
			if rfc1071Valid(bad) == nil && !(c.name == "nat udp4 without checksum keeps none" && at == len(c.out)-1) &&
				!(c.name == "nat udp4 reply without checksum keeps none" && at == len(c.out)-1) {
				t.Fatalf("%s: corruption at byte %d not caught", c.name, at)
			}
		}
	}
}

// The reverse index names a real address and port only when exactly one
// VIP:vport uses it; DR reals are not in it.
func TestReverseNATIndex(t *testing.T) {
	nat := func(vip string, vport uint16, real string, rport uint16) dataplane.Service {
		return dataplane.Service{Key: dataplane.ServiceKey{Addr: netip.MustParseAddr(vip), Port: vport, Proto: dataplane.TCP},
			Method: dataplane.NAT, Reals: []dataplane.Real{{Addr: netip.MustParseAddr(real), Port: rport, Weight: 1}}}
	}
	dr := nat("10.0.0.3", 80, "10.9.0.3", 0)
	dr.Method = dataplane.DR
	idx, amb := rnatIndex([]dataplane.Service{
		nat("10.0.0.1", 443, "10.9.0.1", 8443),
		nat("10.0.0.2", 443, "10.9.0.2", 8443),
		nat("10.0.0.2", 444, "10.9.0.2", 8443), // same real:port, other vport: ambiguous
		nat("10.0.0.4", 80, "10.9.0.4", 0),     // port 0: the service's
		dr,
	}, map[dataplane.ServiceKey]uint32{})
	key := func(a string, p uint16) lbVipKey {
		w, f := addrWords(netip.MustParseAddr(a))
		return lbVipKey{Addr: w, Port: htons(p), Proto: 6, Family: f}
	}
	if len(idx) != 2 || len(amb) != 1 {
		t.Fatalf("index %v ambiguous %v", idx, amb)
	}
	v, ok := idx[key("10.9.0.1", 8443)]
	if w, _ := addrWords(netip.MustParseAddr("10.0.0.1")); !ok || v.Vip != w || v.Vport != htons(443) {
		t.Fatalf("10.9.0.1:8443 -> %+v", v)
	}
	if v, ok := idx[key("10.9.0.4", 80)]; !ok || v.Vport != htons(80) {
		t.Fatalf("port-0 real: %+v %v", v, ok)
	}
}

// The index follows the configuration: a real that leaves a NAT service
// leaves the map; one that joins enters it.
func TestReverseNATMapFollowsApply(t *testing.T) {
	b := loadTest(t)
	ctx := context.Background()
	if err := b.Apply(ctx, goldenNATServices()); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		n := 0
		var k lbVipKey
		var v lbRnatVal
		for it := b.objs.Rnat.Iterate(); it.Next(&k, &v); {
			n++
		}
		return n
	}
	if n := count(); n != 5 {
		t.Fatalf("%d reverse-NAT entries, want 5", n)
	}
	if err := b.Apply(ctx, goldenNATServices()[:1]); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 1 {
		t.Fatalf("%d reverse-NAT entries after removing services, want 1", n)
	}
	if err := b.Apply(ctx, goldenServices()); err != nil {
		t.Fatal(err)
	}
	if n := count(); n != 0 {
		t.Fatalf("%d reverse-NAT entries with DR only, want 0", n)
	}
}

// A reply of a flow this director never saw (a failover) is translated by
// the reverse index alone and goes to the next hop of the client's
// network; a NAT real's answer to the director itself (a health check) is
// no reply and reaches the stack untouched.
func TestNATReplyOfUnseenFlow(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), goldenNATServices()); err != nil {
		t.Fatal(err)
	}
	gw := "02:00:00:00:0a:0a"
	hops := []hop{
		{prefix: netip.MustParsePrefix("0.0.0.0/0"), ifindex: 1, mac: packet.MustMAC(gw)}, // prog.Run's ingress: lo
		{prefix: netip.MustParsePrefix("10.1.0.0/24")},
		{prefix: netip.MustParsePrefix("10.1.0.1/32")},
	}
	if err := b.writeHops(hops); err != nil {
		t.Fatal(err)
	}
	const dm = "02:00:00:00:00:02"
	r4 := realMACs["10.1.0.13"].String()
	in := natFrame{src: natReal4, dst: otherClient4, sport: 8443, dport: 2000, ttl: 64, smac: r4, dmac: dm}
	want := natFrame{src: vip4, dst: otherClient4, sport: 443, dport: 2000, ttl: 63, smac: dm, dmac: gw}
	verdict, out := run(t, b, in.frame().Bytes())
	if verdict != xdpTX || !bytes.Equal(out, want.frame().Bytes()) {
		t.Fatalf("verdict %d\n got %x\nwant %x", verdict, out, want.frame().Bytes())
	}
	if err := rfc1071Valid(out); err != nil {
		t.Fatal(err)
	}
	for _, dst := range []string{"10.1.0.1", "10.1.0.77"} {
		hc := natFrame{src: natReal4, dst: netip.MustParseAddr(dst), sport: 8443, dport: 40000, ttl: 64, smac: r4, dmac: dm}.frame().Bytes()
		before := b.Reasons()[PassNoNextHop]
		verdict, out = run(t, b, hc)
		if verdict != xdpPass || !bytes.Equal(out, hc) || b.Reasons()[PassNoNextHop] != before+1 {
			t.Fatalf("reply to %s: verdict %d, changed %v", dst, verdict, !bytes.Equal(out, hc))
		}
	}
	// Both destinations are asked for (the Go side resolves them and skips
	// the director's own 10.1.0.1).
	wanted := map[netip.Addr]bool{}
	var wk lbNhKey
	var wv uint32
	for it := b.objs.NhWanted.Iterate(); it.Next(&wk, &wv); {
		wanted[nhAddr(wk)] = true
	}
	if len(wanted) != 2 || !wanted[netip.MustParseAddr("10.1.0.1")] || !wanted[netip.MustParseAddr("10.1.0.77")] {
		t.Fatalf("nh_wanted %v, want 10.1.0.1 and 10.1.0.77", wanted)
	}
	// Without NAT services the next hops go away with the index.
	if err := b.Apply(context.Background(), goldenServices()); err != nil {
		t.Fatal(err)
	}
	var k lbNhKey
	var v lbNhVal
	if b.objs.Nexthops.Iterate().Next(&k, &v) {
		t.Fatalf("next hop %+v left without NAT services", k)
	}
}

func TestNextHopKeys(t *testing.T) {
	e := nextHopEntries([]hop{
		{prefix: netip.MustParsePrefix("192.0.2.0/24"), ifindex: 3, mac: packet.MustMAC("02:00:00:00:00:09")},
		{prefix: netip.MustParsePrefix("2001:db8::/32"), ifindex: 4}, // no MAC: no next hop
	})
	k4 := lbNhKey{Prefixlen: 96 + 24}
	k4.Addr, _ = addrWords(netip.MustParseAddr("::ffff:192.0.2.0"))
	if v, ok := e[k4]; !ok || v.Ifindex != 3 || v.Mac[5] != 9 {
		t.Fatalf("IPv4 entry %+v %v in %+v", v, ok, e)
	}
	k6 := lbNhKey{Prefixlen: 32}
	k6.Addr, _ = addrWords(netip.MustParseAddr("2001:db8::"))
	if v, ok := e[k6]; !ok || v.Ifindex != 0 {
		t.Fatalf("IPv6 entry %+v %v", v, ok)
	}
}
