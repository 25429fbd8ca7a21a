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
