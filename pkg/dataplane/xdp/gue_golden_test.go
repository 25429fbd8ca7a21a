package xdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/vsmgr"
)

const gueTestPort = 6080

// gueSport is the outer UDP source port the program must choose for a
// flow, written from its definition (docs/xdp-tun.md#gue-wire-format): the
// client address's words, the ports (network order, as the program holds
// them) and the protocol, XORed, through murmur3's finaliser, in 49152-65535.
func gueSport(src netip.Addr, sport, dport uint16, proto uint8) uint16 {
	w, _ := addrWords(src)
	h := w[0] ^ w[1] ^ w[2] ^ w[3] ^ (uint32(htons(sport))<<16 | uint32(htons(dport))) ^ uint32(proto)
	return 0xc000 | uint16(mix32(h)&0x3fff)
}

func gueSvc(vip netip.Addr, port uint16, proto dataplane.Protocol, real, csum string) dataplane.Service {
	s := svc(vip, port, proto, "rr", real)
	s.Method = dataplane.TUN
	s.Tunnel = dataplane.Tunnel{Type: "gue", Port: gueTestPort, Checksum: csum}
	return s
}

// gueOut is the frame the program must send: the inner IP packet (inner,
// from its IP header on) behind outer IP to the real from the flow's
// spread source, UDP from sport to the tunnel port, and the GUE header
// (version 0, no flags, proto 4 or 41). The UDP checksum is the builder's
// full sum over the whole datagram, or 0 when csum is false.
func gueOut(inner []byte, real string, client netip.Addr, cport, sport uint16, csum bool) []byte {
	b := client.As16()
	spread := cport ^ (uint16(b[14])<<8 | uint16(b[15]))
	ra := netip.MustParseAddr(real)
	f := &packet.Frame{Dst: realMACs[real], Src: dirMAC, UDP: &packet.UDP{SrcPort: sport, DstPort: gueTestPort, NoCsum: !csum}}
	if ra.Is4() {
		f.IPv4 = &packet.IPv4{Flags: 2, TTL: 64, Src: netip.AddrFrom4([4]byte{172, 16, byte(spread >> 8), byte(spread)}), Dst: ra}
		f.Payload = append([]byte{0, 4, 0, 0}, inner...)
	} else {
		var s6 [16]byte
		s6[0], s6[14], s6[15] = 0x01, byte(spread>>8), byte(spread)
		f.IPv6 = &packet.IPv6{HopLimit: 64, Src: netip.AddrFrom16(s6), Dst: ra}
		f.Payload = append([]byte{0, 41, 0, 0}, inner...)
	}
	return f.Bytes()
}

// TestGUEGoldenPackets: exact GUE frames for v4-in-v4 (nocsum and csum)
// and v6-in-v6, TCP, UDP and ICMP errors forwarded to a flow's real. Every
// frame's checksums are recomputed from scratch (rfc1071Valid: outer IPv4
// header, outer UDP over the whole datagram; IPv6 UDP must carry one), and
// the inner packet must come out byte for byte.
func TestGUEGoldenPackets(t *testing.T) {
	b := loadTest(t)
	ctx := context.Background()
	if err := b.Apply(ctx, []dataplane.Service{
		gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", ""),
		gueSvc(vip4, 8083, dataplane.TCP, "10.1.0.14", "csum"),
		gueSvc(vip4, 8084, dataplane.UDP, "10.1.0.12", "csum"),
		gueSvc(vip6, 8082, dataplane.TCP, "fd00:1::13", ""),
		gueSvc(vip6, 8084, dataplane.UDP, "fd00:1::14", ""),
	}); err != nil {
		t.Fatal(err)
	}
	tcp6 := func(dport, sport uint16) *packet.Frame {
		return &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: client6, Dst: vip6},
			TCP: &packet.TCP{SrcPort: sport, DstPort: dport, Flags: packet.TCPSyn}, Payload: []byte("GET /")}
	}
	udp := func(v6 bool, noCsum bool) *packet.Frame {
		f := &packet.Frame{Dst: dirMAC, Src: clientMAC, UDP: &packet.UDP{SrcPort: 5353, DstPort: 8084, NoCsum: noCsum}, Payload: []byte("query")}
		if v6 {
			f.IPv6 = &packet.IPv6{Src: client6, Dst: vip6}
		} else {
			f.IPv4 = &packet.IPv4{Src: client4, Dst: vip4}
		}
		return f
	}
	// ICMP errors from a router about the VIP's replies to client:1000:
	// they belong to the flow client:1000 -> VIP and go to its real.
	router4, router6 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8:ff::1")
	reply4 := &packet.Frame{IPv4: &packet.IPv4{Src: vip4, Dst: client4}, TCP: &packet.TCP{SrcPort: 8083, DstPort: 1000, Flags: packet.TCPAck}}
	icmp4 := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: router4, Dst: vip4},
		ICMP: &packet.ICMP{Type: 3, Code: 4, Rest: 1400}, Payload: reply4.Bytes()[14 : 14+28]}
	reply6 := &packet.Frame{IPv6: &packet.IPv6{Src: vip6, Dst: client6}, TCP: &packet.TCP{SrcPort: 8082, DstPort: 1000, Flags: packet.TCPAck}}
	icmp6 := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: router6, Dst: vip6},
		ICMP: &packet.ICMP{Type: 2, Rest: 1280}, Payload: reply6.Bytes()[14 : 14+48]}

	in := func(f *packet.Frame) []byte { return f.Bytes() }
	ip := func(f *packet.Frame) []byte { return f.Bytes()[14:] }
	cases := []struct {
		name string
		in   []byte
		out  []byte
	}{
		{"v4-in-v4 tcp nocsum", in(tcp4(vip4, 8082, 1000)),
			gueOut(ip(tcp4(vip4, 8082, 1000)), "10.1.0.13", client4, 1000, gueSport(client4, 1000, 8082, 6), false)},
		{"v4-in-v4 tcp csum", in(tcp4(vip4, 8083, 1000)),
			gueOut(ip(tcp4(vip4, 8083, 1000)), "10.1.0.14", client4, 1000, gueSport(client4, 1000, 8083, 6), true)},
		{"v4-in-v4 udp csum", in(udp(false, false)),
			gueOut(ip(udp(false, false)), "10.1.0.12", client4, 5353, gueSport(client4, 5353, 8084, 17), true)},
		// Nothing to build the sum on without reading the payload: the
		// outer checksum is left out, as IPv4 allows.
		{"v4-in-v4 udp csum, inner without checksum", in(udp(false, true)),
			gueOut(ip(udp(false, true)), "10.1.0.12", client4, 5353, gueSport(client4, 5353, 8084, 17), false)},
		{"v4-in-v4 icmp frag-needed to the flow's real", in(icmp4),
			gueOut(ip(icmp4), "10.1.0.14", client4, 1000, gueSport(client4, 1000, 8083, 6), true)},
		{"v6-in-v6 tcp", in(tcp6(8082, 2000)),
			gueOut(ip(tcp6(8082, 2000)), "fd00:1::13", client6, 2000, gueSport(client6, 2000, 8082, 6), true)},
		{"v6-in-v6 udp", in(udp(true, false)),
			gueOut(ip(udp(true, false)), "fd00:1::14", client6, 5353, gueSport(client6, 5353, 8084, 17), true)},
		{"v6-in-v6 icmp6 packet-too-big to the flow's real", in(icmp6),
			gueOut(ip(icmp6), "fd00:1::13", client6, 1000, gueSport(client6, 1000, 8082, 6), true)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			before := b.Reasons()[TUNEncap]
			verdict, out := run(t, b, c.in)
			if verdict != xdpTX {
				t.Fatalf("verdict %d, want TX", verdict)
			}
			if !bytes.Equal(out, c.out) {
				t.Fatalf("output frame\n got %x\nwant %x", out, c.out)
			}
			if err := rfc1071Valid(out); err != nil {
				t.Fatalf("outer: %v", err)
			}
			hl := 20
			if out[12] == 0x86 {
				hl = 40
			}
			if g := out[14+hl+8 : 14+hl+12]; g[0] != 0 || g[2] != 0 || g[3] != 0 || (g[1] != 4 && g[1] != 41) {
				t.Fatalf("GUE header %x, want version 0, no flags, proto 4 or 41", g)
			}
			if inner := out[14+hl+12:]; !bytes.Equal(inner, c.in[14:]) {
				t.Fatalf("inner packet changed\n got %x\nwant %x", inner, c.in[14:])
			}
			if got := b.Reasons()[TUNEncap]; got != before+1 {
				t.Fatalf("tun_encap %d -> %d", before, got)
			}
		})
	}
}

// The checker the golden test relies on must fail on a GUE frame with one
// wrong checksum bit, and on IPv6 GUE without a checksum.
func TestGUEChecksumCheckerCatchesErrors(t *testing.T) {
	good := gueOut(tcp4(vip4, 8083, 1000).Bytes()[14:], "10.1.0.14", client4, 1000, 50000, true)
	if err := rfc1071Valid(good); err != nil {
		t.Fatal(err)
	}
	bad := bytes.Clone(good)
	bad[14+20+7] ^= 1
	if rfc1071Valid(bad) == nil {
		t.Fatal("a wrong outer UDP checksum passed")
	}
	v6 := gueOut(tcp4(vip4, 8083, 1000).Bytes()[14:], "fd00:1::13", client6, 1000, 50000, false)
	if rfc1071Valid(v6) == nil {
		t.Fatal("IPv6 UDP without a checksum passed")
	}
}

// Flows of one client spread over source ports; a flow keeps its port.
func TestGUESourcePortPerFlow(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), []dataplane.Service{gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", "")}); err != nil {
		t.Fatal(err)
	}
	ports := map[uint16]bool{}
	for sp := uint16(1000); sp < 1064; sp++ {
		_, out := run(t, b, tcp4(vip4, 8082, sp).Bytes())
		_, again := run(t, b, tcp4(vip4, 8082, sp).Bytes())
		p := binary.BigEndian.Uint16(out[14+20:])
		if p < 49152 || p != binary.BigEndian.Uint16(again[14+20:]) {
			t.Fatalf("flow %d: source port %d then %d", sp, p, binary.BigEndian.Uint16(again[14+20:]))
		}
		ports[p] = true
	}
	if len(ports) < 48 {
		t.Fatalf("64 flows used %d source ports", len(ports))
	}
}

// GUE adds 12 bytes to ipip's overhead: a packet that fits exactly is
// encapsulated, one byte more gets frag-needed / packet-too-big with the
// MTU left inside the GUE tunnel (1500-20-8-4, 1500-40-8-4).
func TestGUETooBigAnsweredWithICMP(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), []dataplane.Service{
		gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", ""), gueSvc(vip6, 8082, dataplane.TCP, "fd00:1::13", ""),
	}); err != nil {
		t.Fatal(err)
	}
	ns := lab.New(t).NS("mtu")
	ns.IP("link", "set", "lo", "mtu", "1500")
	sized := func(v6 bool, ipLen int) []byte {
		f := &packet.Frame{Dst: dirMAC, Src: clientMAC, TCP: &packet.TCP{SrcPort: 3333, DstPort: 8082, Flags: packet.TCPAck}}
		hdr := 20
		if v6 {
			hdr = 40
			f.IPv6 = &packet.IPv6{Src: client6, Dst: vip6}
		} else {
			f.IPv4 = &packet.IPv4{Src: client4, Dst: vip4, Flags: 2}
		}
		f.Payload = make([]byte, ipLen-hdr-20)
		return f.Bytes()
	}
	big4, big6 := sized(false, 1469), sized(true, 1449)
	want4 := (&packet.Frame{Dst: clientMAC, Src: dirMAC, IPv4: &packet.IPv4{Src: vip4, Dst: client4, TTL: 64},
		ICMP: &packet.ICMP{Type: 3, Code: 4, Rest: 1468}, Payload: big4[14 : 14+28]}).Bytes()
	want6 := (&packet.Frame{Dst: clientMAC, Src: dirMAC, IPv6: &packet.IPv6{Src: vip6, Dst: client6, HopLimit: 64},
		ICMP: &packet.ICMP{Type: 2, Rest: 1448}, Payload: big6[14 : 14+48]}).Bytes()
	for _, c := range []struct {
		name    string
		in      []byte
		want    []byte
		wantLen int
		reason  Reason
	}{
		{"ipv4 frag-needed", big4, want4, 0, TUNTooBig},
		{"ipv6 packet-too-big", big6, want6, 0, TUNTooBig},
		{"ipv4 that fits exactly", sized(false, 1468), nil, 14 + 1500, TUNEncap},
		{"ipv6 that fits exactly", sized(true, 1448), nil, 14 + 1500, TUNEncap},
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
		if c.want == nil {
			if len(out) != c.wantLen {
				t.Fatalf("%s: %d bytes out, want %d", c.name, len(out), c.wantLen)
			}
			if err := rfc1071Valid(out); err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
		}
		if b.Reasons()[c.reason] != before+1 {
			t.Fatalf("%s: reason %s not counted", c.name, reasonNames[c.reason])
		}
	}
}

// Tunnel options the program does not implement are refused at apply, with
// the service and the option named; never accepted and sent as ipip. Pure
// logic: runs without root.
func TestGUEOptionsRefused(t *testing.T) {
	for _, c := range []struct {
		tun  dataplane.Tunnel
		want string
	}{
		{dataplane.Tunnel{Type: "gue", Port: 6080, Checksum: "remcsum"}, "remcsum"},
		{dataplane.Tunnel{Type: "gre"}, "tunnel type gre"},
		{dataplane.Tunnel{Type: "gre", Checksum: "csum"}, "tunnel type gre"},
		{dataplane.Tunnel{Type: "gue"}, "needs a port"},
		{dataplane.Tunnel{Type: "gue", Port: 6080, Checksum: "crc"}, `"crc"`},
		{dataplane.Tunnel{Type: "ipip", Checksum: "csum"}, "ipip tunnels take no"},
		{dataplane.Tunnel{Type: "vxlan"}, "tunnel type vxlan"},
	} {
		s := gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", "")
		s.Tunnel = c.tun
		err := supported(s)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "10.1.0.13") {
			t.Errorf("%+v: %v, want an error naming the real and %q", c.tun, err, c.want)
		}
		// A real's own tunnel is checked the same way.
		s.Tunnel = dataplane.Tunnel{Type: "gue", Port: 6080}
		s.Reals[0].Tunnel = c.tun
		if err := supported(s); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("real override %+v: %v", c.tun, err)
		}
	}
	for _, ok := range []dataplane.Tunnel{{}, {Type: "ipip"}, {Type: "gue", Port: 1}, {Type: "gue", Port: 6080, Checksum: "csum"},
		{Type: "gue", Port: 6080, Checksum: "nocsum"}} {
		s := gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", "")
		s.Tunnel = ok
		if err := supported(s); err != nil {
			t.Errorf("%+v refused: %v", ok, err)
		}
	}
}

// Through Apply: the refusal names the virtual server; the rest of the set
// is applied. Changing a service's tunnel rewrites its reals' entries (ipip
// becomes GUE and back), and a real's own `lvs_method TUN` (ipip) wins over
// the service's GUE.
func TestGUEApply(t *testing.T) {
	b := loadTest(t)
	ctx := context.Background()
	bad := gueSvc(vip4, 8085, dataplane.TCP, "10.1.0.11", "remcsum")
	err := b.Apply(ctx, []dataplane.Service{bad, tunSvc(vip4, 8082, "10.1.0.13")})
	var sk *dataplane.SkippedError
	if !errors.As(err, &sk) || len(sk.Skipped) != 1 || !strings.Contains(err.Error(), "tcp:10.1.0.100:8085") ||
		!strings.Contains(err.Error(), "remcsum") {
		t.Fatalf("want the remcsum service skipped by name, got %v", err)
	}
	t.Log(err)
	proto := func() byte {
		t.Helper()
		v, out := run(t, b, tcp4(vip4, 8082, 1000).Bytes())
		if v != xdpTX {
			t.Fatalf("verdict %d", v)
		}
		return out[14+9]
	}
	if p := proto(); p != 4 {
		t.Fatalf("ipip service: outer protocol %d", p)
	}
	if err := b.Apply(ctx, []dataplane.Service{gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", "")}); err != nil {
		t.Fatal(err)
	}
	if p := proto(); p != 17 {
		t.Fatalf("after the switch to gue: outer protocol %d", p)
	}
	s := gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", "")
	s.Reals[0].Method, s.Reals[0].Tunnel = dataplane.TUN, dataplane.Tunnel{Type: "ipip"}
	if err := b.Apply(ctx, []dataplane.Service{s}); err != nil {
		t.Fatal(err)
	}
	if p := proto(); p != 4 {
		t.Fatalf("real with its own ipip in a gue service: outer protocol %d", p)
	}
}

// configs/lvs-tun-gue.conf, through the virtual-server manager, is applied
// whole by the XDP backend: no service skipped, the GUE reals written as GUE
// (with csum where asked) and the ipip override as ipip.
func TestGUEExampleConfigApplies(t *testing.T) {
	b := loadTest(t)
	cfg, diags := config.Load("../../../configs/lvs-tun-gue.conf", config.Options{})
	if err := diags.Err(true); err != nil {
		t.Fatal(err)
	}
	m, err := vsmgr.New(cfg, b, nil, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Apply(context.Background()); err != nil {
		t.Fatalf("the example is not applied whole: %v", err)
	}
	got := map[string][2]uint8{}
	var e lbReal
	for id, o := range b.slots.owners {
		if err := b.objs.Reals.Lookup(id, &e); err != nil {
			t.Fatal(err)
		}
		got[o.svc.String()+" "+o.real.Addr.String()] = [2]uint8{e.Method, e.Flags & uint8(lbRealFlagsREAL_TUN_CSUM)}
		if e.Method == uint8(lbLbMethodMETHOD_GUE) && ntohs(e.Port) != 6080 {
			t.Errorf("%s: GUE port %d", o.real.Addr, ntohs(e.Port))
		}
	}
	gue, ipip, csum := uint8(lbLbMethodMETHOD_GUE), uint8(lbLbMethodMETHOD_TUN), uint8(lbRealFlagsREAL_TUN_CSUM)
	want := map[string][2]uint8{
		"tcp:10.221.0.100:80 10.231.1.21":        {gue, 0},
		"tcp:10.221.0.100:80 10.231.2.22":        {gue, 0},
		"udp:10.221.0.100:53 10.231.1.21":        {gue, csum},
		"udp:10.221.0.100:53 10.231.2.22":        {ipip, 0},
		"tcp:[fd00:221::100]:443 fd00:231:1::21": {gue, 0},
	}
	if len(got) != len(want) {
		t.Fatalf("entries %v, want %v", got, want)
	}
	for k, w := range want {
		if got[k] != w {
			t.Errorf("%s: method, csum %v, want %v", k, got[k], w)
		}
	}
}

// Ethernet padding after a short packet stays out of the tunnel (it would
// enter the UDP checksum unaccounted): the datagram carries the IP packet
// only. A packet longer than its frame is left to the stack, untouched.
func TestGUETrimsPadding(t *testing.T) {
	b := loadTest(t)
	if err := b.Apply(context.Background(), []dataplane.Service{gueSvc(vip4, 8083, dataplane.TCP, "10.1.0.14", "csum")}); err != nil {
		t.Fatal(err)
	}
	ack := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4},
		TCP: &packet.TCP{SrcPort: 1000, DstPort: 8083, Flags: packet.TCPAck}}
	padded := append(ack.Bytes(), 0xde, 0xad, 0xbe, 0xef, 0x55, 0xaa) // a 60-byte minimum frame
	verdict, out := run(t, b, padded)
	want := gueOut(ack.Bytes()[14:], "10.1.0.14", client4, 1000, gueSport(client4, 1000, 8083, 6), true)
	if verdict != xdpTX || !bytes.Equal(out, want) {
		t.Fatalf("padded frame: verdict %d\n got %x\nwant %x", verdict, out, want)
	}
	if err := rfc1071Valid(out); err != nil {
		t.Fatal(err)
	}
	long := ack.Bytes()
	binary.BigEndian.PutUint16(long[14+2:], 41) // one byte more than the frame holds
	before := b.Reasons()[PassTruncated]
	if verdict, out := run(t, b, long); verdict != xdpPass || !bytes.Equal(out, long) {
		t.Fatalf("packet longer than its frame: verdict %d, changed %v", verdict, !bytes.Equal(out, long))
	}
	if b.Reasons()[PassTruncated] != before+1 {
		t.Fatal("pass_truncated not counted")
	}
}
