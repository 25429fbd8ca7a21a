package xdp

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// A packet that no longer fits the link once encapsulated gets ICMP
// frag-needed (IPv4) or packet-too-big (IPv6) back, from the VIP, with the
// MTU left inside the tunnel, quoting its IP header and 8 bytes: exact
// frames. One that fits exactly is encapsulated. The program runs in a
// namespace whose loopback (prog.Run's ingress device) has MTU 1500.
func TestTUNTooBigAnsweredWithICMP(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), goldenNATServices()); err != nil {
		t.Fatal(err)
	}
	l := lab.New(t)
	ns := l.NS("mtu")
	ns.IP("link", "set", "lo", "mtu", "1500")

	sized := func(v6 bool, ipLen int) *packet.Frame {
		f := &packet.Frame{Dst: dirMAC, Src: clientMAC, TCP: &packet.TCP{SrcPort: 3333, DstPort: 8081, Flags: packet.TCPAck}}
		hdr := 20
		if v6 {
			hdr = 40
			f.IPv6 = &packet.IPv6{Src: client6, Dst: vip6}
		} else {
			f.IPv4 = &packet.IPv4{Src: client4, Dst: vip4, Flags: 2}
		}
		f.Payload = make([]byte, ipLen-hdr-20)
		return f
	}
	in4, in6 := sized(false, 1490).Bytes(), sized(true, 1490).Bytes()
	want4 := (&packet.Frame{Dst: clientMAC, Src: dirMAC, IPv4: &packet.IPv4{Src: vip4, Dst: client4, TTL: 64},
		ICMP: &packet.ICMP{Type: 3, Code: 4, Rest: 1480}, Payload: in4[14 : 14+28]}).Bytes()
	want6 := (&packet.Frame{Dst: clientMAC, Src: dirMAC, IPv6: &packet.IPv6{Src: vip6, Dst: client6, HopLimit: 64},
		ICMP: &packet.ICMP{Type: 2, Rest: 1460}, Payload: in6[14 : 14+48]}).Bytes()
	fits := sized(false, 1480).Bytes()

	for _, c := range []struct {
		name   string
		in     []byte
		want   []byte
		reason Reason
	}{
		{"ipv4 frag-needed", in4, want4, TUNTooBig},
		{"ipv6 packet-too-big", in6, want6, TUNTooBig},
		{"ipv4 that fits exactly", fits, nil, TUNEncap},
	} {
		before := b.Reasons()[c.reason]
		var verdict uint32
		var out []byte
		if err := ns.Do(func() error {
			opts := runOpts(c.in)
			var err error
			verdict, err = b.Prog().Run(opts)
			out = opts.DataOut
			return err
		}); err != nil {
			t.Fatal(err)
		}
		if verdict != xdpTX {
			t.Fatalf("%s: verdict %d", c.name, verdict)
		}
		if c.want != nil && !bytes.Equal(out, c.want) {
			t.Fatalf("%s:\n got %x\nwant %x", c.name, out, c.want)
		}
		if c.want == nil && len(out) != len(c.in)+20 {
			t.Fatalf("%s: %d bytes out, want the %d-byte frame encapsulated", c.name, len(out), len(c.in))
		}
		if b.Reasons()[c.reason] != before+1 {
			t.Fatalf("%s: reason %s not counted", c.name, reasonNames[c.reason])
		}
	}
}

// A TUN real behind a router is reached through the router's MAC; a DR
// real behind one is not resolved (it gets no frames).
func TestTUNRealBehindGateway(t *testing.T) {
	b := loadTest(t)
	routed, gw := netip.MustParseAddr("10.2.0.5"), netip.MustParseAddr("10.1.0.11")
	b.opts.ResolveMAC = func(ip netip.Addr) (net.HardwareAddr, int, error) {
		if ip == routed {
			return nil, 0, &behindGateway{real: ip, gw: gw}
		}
		return fakeResolve(ip)
	}
	tun := tunSvc(vip4, 8081, "10.2.0.5")
	dr := svc(vip4, 80, dataplane.TCP, "rr", "10.2.0.5")
	if err := b.Apply(context.Background(), []dataplane.Service{tun}); err != nil {
		t.Fatal(err)
	}
	verdict, out := run(t, b, tcp4(vip4, 8081, 1000).Bytes())
	if verdict != xdpTX || !bytes.Equal(out[0:6], realMACs["10.1.0.11"]) {
		t.Fatalf("TUN to a routed real: verdict %d, to %x (want the gateway's MAC)", verdict, out[0:6])
	}
	b2 := loadTest(t)
	b2.opts.ResolveMAC = b.opts.ResolveMAC
	b2.Apply(context.Background(), []dataplane.Service{dr})
	if verdict, _ := run(t, b2, tcp4(vip4, 80, 1000).Bytes()); verdict != xdpPass {
		t.Fatalf("DR to a real behind a gateway: verdict %d, want pass", verdict)
	}
}
