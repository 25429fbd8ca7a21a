package sink

import (
	"bytes"
	"net/netip"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
)

var (
	v4a, v4b = netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	v6a, v6b = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
)

// Each hand-built frame goes through BPF_PROG_TEST_RUN: the verdict must be
// XDP_PASS, the frame must come out unchanged, and exactly its class counter
// must move by one packet and its length in bytes.
func TestProgRunCountsPerClass(t *testing.T) {
	lab.RequireRoot(t)
	p, err := Load()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()

	frames := []struct {
		name  string
		frame []byte
		class Class
	}{
		{"ipv4 tcp", (&packet.Frame{IPv4: &packet.IPv4{Src: v4a, Dst: v4b}, TCP: &packet.TCP{DstPort: 80}}).Bytes(), IPv4TCP},
		{"ipv4 udp", (&packet.Frame{IPv4: &packet.IPv4{Src: v4a, Dst: v4b}, UDP: &packet.UDP{DstPort: 53}, Payload: []byte("q")}).Bytes(), IPv4UDP},
		{"ipv4 icmp", (&packet.Frame{IPv4: &packet.IPv4{Src: v4a, Dst: v4b}, ICMP: &packet.ICMP{Type: 8}}).Bytes(), IPv4ICMP},
		{"ipv4 vrrp", (&packet.Frame{IPv4: &packet.IPv4{Src: v4a, Dst: v4b, Protocol: packet.ProtoVRRP}, Payload: make([]byte, 20)}).Bytes(), IPv4Other},
		{"ipv6 tcp", (&packet.Frame{IPv6: &packet.IPv6{Src: v6a, Dst: v6b}, TCP: &packet.TCP{DstPort: 443}}).Bytes(), IPv6TCP},
		{"ipv6 udp vlan", (&packet.Frame{VLAN: 7, IPv6: &packet.IPv6{Src: v6a, Dst: v6b}, UDP: &packet.UDP{}}).Bytes(), IPv6UDP},
		{"ipv6 icmp", (&packet.Frame{IPv6: &packet.IPv6{Src: v6a, Dst: v6b}, ICMP: &packet.ICMP{Type: 128}}).Bytes(), IPv6ICMP},
		{"arp", (&packet.Frame{EtherType: packet.EtherTypeARP, Payload: make([]byte, 28)}).Bytes(), ARP},
		{"unknown ethertype", (&packet.Frame{EtherType: 0x88cc, Payload: make([]byte, 30)}).Bytes(), Other},
		{"truncated ipv4", (&packet.Frame{IPv4: &packet.IPv4{Src: v4a, Dst: v4b}}).Bytes()[:20], Truncated},
		{"truncated vlan", (&packet.Frame{VLAN: 7, EtherType: packet.EtherTypeIPv4}).Bytes()[:16], Truncated},
	}
	for _, f := range frames {
		t.Run(f.name, func(t *testing.T) {
			before, err := p.Read()
			if err != nil {
				t.Fatal(err)
			}
			opts := &ebpf.RunOptions{Data: f.frame, DataOut: make([]byte, len(f.frame)+256)}
			ret, err := p.Prog().Run(opts)
			if err != nil {
				t.Fatal(err)
			}
			if ret != 2 { // XDP_PASS
				t.Fatalf("verdict %d, want XDP_PASS", ret)
			}
			if !bytes.Equal(opts.DataOut, f.frame) {
				t.Fatalf("frame changed:\n got %x\nwant %x", opts.DataOut, f.frame)
			}
			after, err := p.Read()
			if err != nil {
				t.Fatal(err)
			}
			for c := Class(0); c < numClass; c++ {
				dp := after[c].Packets - before[c].Packets
				db := after[c].Bytes - before[c].Bytes
				wantP, wantB := uint64(0), uint64(0)
				if c == f.class {
					wantP, wantB = 1, uint64(len(f.frame))
				}
				if dp != wantP || db != wantB {
					t.Errorf("class %d: +%d packets +%d bytes, want +%d +%d", c, dp, db, wantP, wantB)
				}
			}
		})
	}
}
