package xdp

import (
	"net/netip"

	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// goldenServices is the configuration every golden case runs against.
func goldenServices() []dataplane.Service {
	return []dataplane.Service{
		svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11"),
		svc(vip4, 53, dataplane.UDP, "mh", "10.1.0.12"),
		svc(vip6, 443, dataplane.TCP, "rr", "fd00:1::11"),
		svc(vip6, 53, dataplane.UDP, "rr", "fd00:1::11"),
		{Key: dataplane.ServiceKey{Addr: vip4, Port: 8080, Proto: dataplane.TCP}, Scheduler: "rr", Method: dataplane.DR},
	}
}

// golden is one fixture: input frame → verdict → exact output frame and the
// reason counter that must move. The same table is the specification
// (TestGoldenPackets) and the microbenchmark (BenchmarkGolden).
type golden struct {
	name    string
	in      []byte
	verdict uint32
	out     []byte // nil: unchanged
	reason  Reason
	bench   bool // also a BenchmarkGolden path
}

func goldenCases() []golden {
	udp4 := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4},
		UDP: &packet.UDP{SrcPort: 5353, DstPort: 53}, Payload: []byte("query")}
	tcp6 := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: client6, Dst: vip6},
		TCP: &packet.TCP{SrcPort: 40000, DstPort: 443, Flags: packet.TCPSyn}}
	udp6 := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: client6, Dst: vip6},
		UDP: &packet.UDP{SrcPort: 40000, DstPort: 53}, Payload: []byte("q6")}
	vlan := tcp4(vip4, 80, 1234)
	vlan.VLAN = 42
	qinq := tcp4(vip4, 80, 1238)
	qinq.OuterVLAN, qinq.VLAN = 100, 42
	// Three tags: more than the program parses; left to the stack.
	tripleTag := append(append(append([]byte(nil), qinq.Bytes()[:12]...), 0x81, 0x00, 0x00, 0x07), qinq.Bytes()[12:]...)
	frag := tcp4(vip4, 80, 1235)
	frag.IPv4.Flags = 1 // more fragments
	fragOff := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4, Protocol: packet.ProtoTCP, FragOff: 100},
		Payload: make([]byte, 40)}
	opts := tcp4(vip4, 80, 1236)
	opts.IPv4.Options = []byte{1, 1, 1, 0}
	icmp := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4}, ICMP: &packet.ICMP{Type: 8}}
	// A routing header (43) between IPv6 and TCP.
	ext6 := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: client6, Dst: vip6, NextHeader: 43,
		ExtHeaders: []byte{6, 0, 0, 0, 0, 0, 0, 0}}, TCP: &packet.TCP{SrcPort: 1, DstPort: 443}}
	arp := &packet.Frame{Dst: dirMAC, Src: clientMAC, EtherType: packet.EtherTypeARP, Payload: make([]byte, 28)}
	full := tcp4(vip4, 80, 1237).Bytes()
	full6 := tcp6.Bytes()
	vlanTrunc := vlan.Bytes()[:16]

	return []golden{
		{"vip tcp4", tcp4(vip4, 80, 1000).Bytes(), xdpTX, rewritten(tcp4(vip4, 80, 1000), "10.1.0.11"), TX, true},
		{"vip udp4", udp4.Bytes(), xdpTX, rewritten(udp4, "10.1.0.12"), TX, false},
		{"vip tcp6", tcp6.Bytes(), xdpTX, rewritten(tcp6, "fd00:1::11"), TX, false},
		{"vip udp6", udp6.Bytes(), xdpTX, rewritten(udp6, "fd00:1::11"), TX, true},
		{"vlan-tagged vip (tag kept on XDP_TX)", vlan.Bytes(), xdpTX, rewritten(vlan, "10.1.0.11"), TX, false},
		{"qinq-tagged vip (both tags kept on XDP_TX)", qinq.Bytes(), xdpTX, rewritten(qinq, "10.1.0.11"), TX, false},
		{"three vlan tags", tripleTag, xdpPass, nil, PassNotIP, false},
		{"other port on the vip", tcp4(vip4, 81, 1000).Bytes(), xdpPass, nil, PassNotVIP, false},
		{"other address", tcp4(netip.MustParseAddr("10.1.0.1"), 80, 1000).Bytes(), xdpPass, nil, PassNotVIP, true},
		{"udp to a tcp service port", (&packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4},
			UDP: &packet.UDP{DstPort: 80}}).Bytes(), xdpPass, nil, PassNotVIP, false},
		{"first fragment", frag.Bytes(), xdpPass, nil, PassFragment, false},
		{"later fragment", fragOff.Bytes(), xdpPass, nil, PassFragment, false},
		{"ip options", opts.Bytes(), xdpPass, nil, PassIPOptions, false},
		{"icmp to the vip", icmp.Bytes(), xdpPass, nil, PassNotVIP, false},
		{"ipv6 extension header", ext6.Bytes(), xdpPass, nil, PassIPv6Ext, false},
		{"arp", arp.Bytes(), xdpPass, nil, PassNotIP, true},
		{"service without reals", tcp4(vip4, 8080, 1000).Bytes(), xdpPass, nil, PassNoReal, false},
		{"truncated vlan tag", vlanTrunc, xdpPass, nil, PassTruncated, false},
		{"truncated ipv4 header", full[:14+19], xdpPass, nil, PassTruncated, false},
		{"truncated tcp header", full[:14+20+19], xdpPass, nil, PassTruncated, false},
		{"truncated ipv6 header", full6[:14+39], xdpPass, nil, PassTruncated, false},
		{"truncated ipv6 tcp header", full6[:14+40+10], xdpPass, nil, PassTruncated, false},
	}
}

// NAT fixtures: vport differs from rport everywhere, so every case maps the
// port as well as the address.
var (
	natReal4, natReal6 = netip.MustParseAddr("10.1.0.13"), netip.MustParseAddr("fd00:1::13")
	// otherClient4 sent nothing through this director: its replies have no
	// flow entry (a failover) and no next hop is configured for it.
	otherClient4 = netip.MustParseAddr("198.51.100.9")
)

// goldenNATServices are the NAT services of the golden configuration. They
// are kept apart from goldenServices, whose DR-only configuration the fuzz
// test's properties (nothing but the MACs rewritten) are written for.
func goldenNATServices() []dataplane.Service {
	nat := func(vip netip.Addr, vport uint16, proto dataplane.Protocol, real netip.Addr, rport uint16) dataplane.Service {
		return dataplane.Service{Key: dataplane.ServiceKey{Addr: vip, Port: vport, Proto: proto}, Scheduler: "rr",
			Method: dataplane.NAT, Reals: []dataplane.Real{{Addr: real, Port: rport, Weight: 1}}}
	}
	// A DR service whose real is also a NAT real: its replies are not
	// translated (only NAT reals are in the reverse index).
	perReal := svc(vip4, 8000, dataplane.TCP, "rr", "10.1.0.12")
	perReal.Reals[0].Method = dataplane.NAT
	perReal.Reals[0].Port = 8001
	return []dataplane.Service{
		nat(vip4, 443, dataplane.TCP, natReal4, 8443),
		nat(vip4, 5353, dataplane.UDP, natReal4, 53),
		nat(vip6, 8443, dataplane.TCP, natReal6, 80),
		nat(vip6, 5353, dataplane.UDP, natReal6, 53),
		perReal,
		tunSvc(vip4, 8081, "10.1.0.14"),
		tunSvc(vip6, 8081, "fd00:1::14"),
	}
}

// natFrame builds a client <-> real frame for the NAT cases.
type natFrame struct {
	src, dst     netip.Addr
	sport, dport uint16
	udp, noCsum  bool
	ttl          uint8
	smac, dmac   string
}

func (n natFrame) frame() *packet.Frame {
	f := &packet.Frame{Dst: packet.MustMAC(n.dmac), Src: packet.MustMAC(n.smac), Payload: []byte("GET / HTTP/1.0\r\n\r\n")}
	if n.src.Is4() {
		f.IPv4 = &packet.IPv4{Src: n.src, Dst: n.dst, TTL: n.ttl, ID: 0x1234}
	} else {
		f.IPv6 = &packet.IPv6{Src: n.src, Dst: n.dst, HopLimit: n.ttl}
	}
	if n.udp {
		f.UDP = &packet.UDP{SrcPort: n.sport, DstPort: n.dport, NoCsum: n.noCsum}
	} else {
		f.TCP = &packet.TCP{SrcPort: n.sport, DstPort: n.dport, Flags: packet.TCPSyn, Seq: 7}
	}
	return f
}

// natCases: the forward DNAT, the reply it gets back, and the packets
// that must pass untouched. Forward cases come before their replies (the
// reply of a seen flow goes to the MAC the flow came from).
func natCases() []golden {
	const cm, dm = "02:00:00:00:00:01", "02:00:00:00:00:02"
	r4, r6 := realMACs["10.1.0.13"].String(), realMACs["fd00:1::13"].String()
	type pair struct {
		name             string
		in, out          natFrame
		reason           Reason
		verdict          uint32
		bench, untouched bool
	}
	ps := []pair{
		{name: "nat tcp4 client to vip:443 -> real:8443",
			in:  natFrame{src: client4, dst: vip4, sport: 1000, dport: 443, ttl: 64, smac: cm, dmac: dm},
			out: natFrame{src: client4, dst: natReal4, sport: 1000, dport: 8443, ttl: 63, smac: dm, dmac: r4}, reason: NATDNAT, verdict: xdpTX, bench: true},
		{name: "nat tcp4 reply real:8443 -> vip:443",
			in:  natFrame{src: natReal4, dst: client4, sport: 8443, dport: 1000, ttl: 64, smac: r4, dmac: dm},
			out: natFrame{src: vip4, dst: client4, sport: 443, dport: 1000, ttl: 63, smac: dm, dmac: cm}, reason: NATReply, verdict: xdpTX, bench: true},
		{name: "nat udp4 client to vip:5353 -> real:53",
			in:  natFrame{src: client4, dst: vip4, sport: 3000, dport: 5353, udp: true, ttl: 64, smac: cm, dmac: dm},
			out: natFrame{src: client4, dst: natReal4, sport: 3000, dport: 53, udp: true, ttl: 63, smac: dm, dmac: r4}, reason: NATDNAT, verdict: xdpTX},
		{name: "nat udp4 reply real:53 -> vip:5353",
			in:  natFrame{src: natReal4, dst: client4, sport: 53, dport: 3000, udp: true, ttl: 64, smac: r4, dmac: dm},
			out: natFrame{src: vip4, dst: client4, sport: 5353, dport: 3000, udp: true, ttl: 63, smac: dm, dmac: cm}, reason: NATReply, verdict: xdpTX},
		{name: "nat udp4 without checksum keeps none",
			in:  natFrame{src: client4, dst: vip4, sport: 3001, dport: 5353, udp: true, noCsum: true, ttl: 64, smac: cm, dmac: dm},
			out: natFrame{src: client4, dst: natReal4, sport: 3001, dport: 53, udp: true, noCsum: true, ttl: 63, smac: dm, dmac: r4}, reason: NATDNAT, verdict: xdpTX},
		{name: "nat udp4 reply without checksum keeps none",
			in:  natFrame{src: natReal4, dst: client4, sport: 53, dport: 3001, udp: true, noCsum: true, ttl: 64, smac: r4, dmac: dm},
			out: natFrame{src: vip4, dst: client4, sport: 5353, dport: 3001, udp: true, noCsum: true, ttl: 63, smac: dm, dmac: cm}, reason: NATReply, verdict: xdpTX},
		{name: "nat tcp6 client to vip:8443 -> real:80",
			in:  natFrame{src: client6, dst: vip6, sport: 1000, dport: 8443, ttl: 64, smac: cm, dmac: dm},
			out: natFrame{src: client6, dst: natReal6, sport: 1000, dport: 80, ttl: 63, smac: dm, dmac: r6}, reason: NATDNAT, verdict: xdpTX},
		{name: "nat tcp6 reply real:80 -> vip:8443",
			in:  natFrame{src: natReal6, dst: client6, sport: 80, dport: 1000, ttl: 64, smac: r6, dmac: dm},
			out: natFrame{src: vip6, dst: client6, sport: 8443, dport: 1000, ttl: 63, smac: dm, dmac: cm}, reason: NATReply, verdict: xdpTX},
		{name: "nat udp6 client to vip:5353 -> real:53",
			in:  natFrame{src: client6, dst: vip6, sport: 4000, dport: 5353, udp: true, ttl: 64, smac: cm, dmac: dm},
			out: natFrame{src: client6, dst: natReal6, sport: 4000, dport: 53, udp: true, ttl: 63, smac: dm, dmac: r6}, reason: NATDNAT, verdict: xdpTX},
		{name: "nat udp6 reply real:53 -> vip:5353",
			in:  natFrame{src: natReal6, dst: client6, sport: 53, dport: 4000, udp: true, ttl: 64, smac: r6, dmac: dm},
			out: natFrame{src: vip6, dst: client6, sport: 5353, dport: 4000, udp: true, ttl: 63, smac: dm, dmac: cm}, reason: NATReply, verdict: xdpTX},
		{name: "per-real lvs_method NAT in a DR service",
			in:  natFrame{src: client4, dst: vip4, sport: 1001, dport: 8000, ttl: 64, smac: cm, dmac: dm},
			out: natFrame{src: client4, dst: netip.MustParseAddr("10.1.0.12"), sport: 1001, dport: 8001, ttl: 63, smac: dm, dmac: realMACs["10.1.0.12"].String()}, reason: NATDNAT, verdict: xdpTX},
		{name: "nat ttl 1 left to the stack",
			in:     natFrame{src: client4, dst: vip4, sport: 1002, dport: 443, ttl: 1, smac: cm, dmac: dm},
			reason: PassTTL, verdict: xdpPass, untouched: true},
		{name: "nat reply of an unseen flow without a next hop",
			in:     natFrame{src: natReal4, dst: otherClient4, sport: 8443, dport: 2000, ttl: 64, smac: r4, dmac: dm},
			reason: PassNoNextHop, verdict: xdpPass, untouched: true},
		{name: "from a nat real's unknown port",
			in:     natFrame{src: natReal4, dst: client4, sport: 9999, dport: 1000, ttl: 64, smac: r4, dmac: dm},
			reason: PassNotVIP, verdict: xdpPass, untouched: true},
		{name: "from a non-real",
			in:     natFrame{src: netip.MustParseAddr("10.1.0.99"), dst: client4, sport: 8443, dport: 1000, ttl: 64, smac: r4, dmac: dm},
			reason: PassNotVIP, verdict: xdpPass, untouched: true},
		{name: "udp from a nat real's tcp port",
			in:     natFrame{src: natReal4, dst: client4, sport: 8443, dport: 1000, udp: true, ttl: 64, smac: r4, dmac: dm},
			reason: PassNotVIP, verdict: xdpPass, untouched: true},
		{name: "from a dr real",
			in:     natFrame{src: netip.MustParseAddr("10.1.0.11"), dst: client4, sport: 80, dport: 1000, ttl: 64, smac: r4, dmac: dm},
			reason: PassNotVIP, verdict: xdpPass, untouched: true},
	}
	var out []golden
	for _, p := range ps {
		g := golden{name: p.name, in: p.in.frame().Bytes(), verdict: p.verdict, reason: p.reason, bench: p.bench}
		if !p.untouched {
			g.out = p.out.frame().Bytes()
		}
		out = append(out, g)
	}
	return out
}

func tunSvc(vip netip.Addr, port uint16, real string) dataplane.Service {
	s := svc(vip, port, dataplane.TCP, "rr", real)
	s.Method = dataplane.TUN
	return s
}

// tunCases: the client's IP packet, byte for byte, inside an outer header
// to the real, from a per-flow source (172.16.0.0/16 or 100::/64, low 16
// bits = client port XOR the low 16 bits of the client's address).
func tunCases() []golden {
	spread := func(src netip.Addr, sport uint16) uint16 {
		b := src.As16()
		return sport ^ (uint16(b[14])<<8 | uint16(b[15]))
	}
	in4 := tcp4(vip4, 8081, 1000)
	s4 := spread(client4, 1000)
	out4 := &packet.Frame{Dst: realMACs["10.1.0.14"], Src: dirMAC, IPv4: &packet.IPv4{Flags: 2, TTL: 64, Protocol: 4,
		Src: netip.AddrFrom4([4]byte{172, 16, byte(s4 >> 8), byte(s4)}), Dst: netip.MustParseAddr("10.1.0.14")},
		Payload: in4.Bytes()[14:]}
	in6 := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: client6, Dst: vip6},
		TCP: &packet.TCP{SrcPort: 2000, DstPort: 8081, Flags: packet.TCPSyn}, Payload: []byte("GET /")}
	s6 := spread(client6, 2000)
	var src6 [16]byte
	src6[0], src6[1], src6[14], src6[15] = 0x01, 0x00, byte(s6>>8), byte(s6)
	out6 := &packet.Frame{Dst: realMACs["fd00:1::14"], Src: dirMAC, IPv6: &packet.IPv6{NextHeader: 41, HopLimit: 64,
		Src: netip.AddrFrom16(src6), Dst: netip.MustParseAddr("fd00:1::14")}, Payload: in6.Bytes()[14:]}
	tagged := tcp4(vip4, 8081, 1001)
	tagged.VLAN = 42
	return []golden{
		{"tun ipip v4-in-v4", in4.Bytes(), xdpTX, out4.Bytes(), TUNEncap, true},
		{"tun ip6ip6 v6-in-v6", in6.Bytes(), xdpTX, out6.Bytes(), TUNEncap, false},
		{"tun vlan-tagged left to the stack", tagged.Bytes(), xdpPass, nil, PassNotVIP, false},
	}
}

// natICMPCases: ICMP errors about NAT flows, translated like the packets
// they quote. They follow natCases (the UDP flow of client4:3000 exists).
func natICMPCases() []golden {
	router4, router6 := netip.MustParseAddr("203.0.113.1"), netip.MustParseAddr("2001:db8:ff::1")
	quote := func(f *packet.Frame, n int) []byte { return f.Bytes()[14 : 14+n] }
	// Frag-needed from a router on the client's side about a reply
	// VIP:443 -> client: to the real, about real:8443 -> client.
	replyV4 := func(src netip.Addr, sport uint16) *packet.Frame {
		return &packet.Frame{IPv4: &packet.IPv4{Src: src, Dst: client4, TTL: 63}, TCP: &packet.TCP{SrcPort: sport, DstPort: 1000, Flags: packet.TCPSyn | packet.TCPAck}}
	}
	aIn := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: router4, Dst: vip4, TTL: 64},
		ICMP: &packet.ICMP{Type: 3, Code: 4, Rest: 1400}, Payload: quote(replyV4(vip4, 443), 28)}
	aOut := &packet.Frame{Dst: realMACs["10.1.0.13"], Src: dirMAC, IPv4: &packet.IPv4{Src: router4, Dst: natReal4, TTL: 63},
		ICMP: &packet.ICMP{Type: 3, Code: 4, Rest: 1400}, Payload: quote(replyV4(natReal4, 8443), 28)}
	// Port unreachable from the real about client4:3000 -> real:53: back to
	// the client from the VIP, about client -> VIP:5353 (the quoted UDP
	// checksum stays as quoted).
	reqV4 := func(dst netip.Addr, dport uint16) *packet.Frame {
		return &packet.Frame{IPv4: &packet.IPv4{Src: client4, Dst: dst, TTL: 63}, UDP: &packet.UDP{SrcPort: 3000, DstPort: dport}, Payload: []byte("query")}
	}
	bq := quote(reqV4(natReal4, 53), 28)
	bq2 := quote(reqV4(vip4, 5353), 28)
	copy(bq2[26:28], bq[26:28])
	bIn := &packet.Frame{Dst: dirMAC, Src: realMACs["10.1.0.13"], IPv4: &packet.IPv4{Src: natReal4, Dst: client4, TTL: 64},
		ICMP: &packet.ICMP{Type: 3, Code: 3}, Payload: bq}
	bOut := &packet.Frame{Dst: clientMAC, Src: dirMAC, IPv4: &packet.IPv4{Src: vip4, Dst: client4, TTL: 63},
		ICMP: &packet.ICMP{Type: 3, Code: 3}, Payload: bq2}
	// Packet-too-big from a router about a reply [VIP]:8443 -> client.
	replyV6 := func(src netip.Addr, sport uint16) *packet.Frame {
		return &packet.Frame{IPv6: &packet.IPv6{Src: src, Dst: client6, HopLimit: 63}, TCP: &packet.TCP{SrcPort: sport, DstPort: 1000, Flags: packet.TCPAck}}
	}
	cIn := &packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: router6, Dst: vip6, HopLimit: 64},
		ICMP: &packet.ICMP{Type: 2, Rest: 1280}, Payload: quote(replyV6(vip6, 8443), 48)}
	cOut := &packet.Frame{Dst: realMACs["fd00:1::13"], Src: dirMAC, IPv6: &packet.IPv6{Src: router6, Dst: natReal6, HopLimit: 63},
		ICMP: &packet.ICMP{Type: 2, Rest: 1280}, Payload: quote(replyV6(natReal6, 80), 48)}
	return []golden{
		{"nat icmp4 frag-needed about a reply, to the real", aIn.Bytes(), xdpTX, aOut.Bytes(), NATDNAT, false},
		{"nat icmp4 port-unreachable from the real, to the client", bIn.Bytes(), xdpTX, bOut.Bytes(), NATReply, false},
		{"nat icmp6 packet-too-big about a reply, to the real", cIn.Bytes(), xdpTX, cOut.Bytes(), NATDNAT, false},
	}
}
