package bench

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/halo-lb/halo/internal/testkit/packet"
)

// Spec describes the frames of one scenario.
type Spec struct {
	Family   int // 4 or 6
	TCP      bool
	Size     int // frame length in bytes (without FCS)
	Src, Dst netip.Addr
	SrcMAC   net.HardwareAddr
	DstMAC   net.HardwareAddr
	SPort    uint16
	DPort    uint16
	TCPFlags uint8
	// VaryDst varies the destination address and port instead of the
	// source (replies towards many clients).
	VaryDst bool
}

// Build returns the generator template of s.
func (s Spec) Build() (Template, error) {
	f := &packet.Frame{Dst: s.DstMAC, Src: s.SrcMAC}
	l3, addrEnd := 20, 14+12+4 // IPv4: source address at 26..30
	if s.Family == 6 {
		l3, addrEnd = 40, 14+8+16
		f.IPv6 = &packet.IPv6{Src: s.Src, Dst: s.Dst, HopLimit: 64}
	} else {
		f.IPv4 = &packet.IPv4{Src: s.Src, Dst: s.Dst, TTL: 64}
	}
	if s.Family == 6 && !s.Src.Is6() || s.Family == 4 && !s.Src.Is4() {
		return Template{}, fmt.Errorf("family %d with address %s", s.Family, s.Src)
	}
	l4 := 8
	if s.TCP {
		l4 = 20
		f.TCP = &packet.TCP{SrcPort: s.SPort, DstPort: s.DPort, Flags: s.TCPFlags, Window: 512}
	} else {
		f.UDP = &packet.UDP{SrcPort: s.SPort, DstPort: s.DPort}
	}
	hdr := 14 + l3 + l4
	if s.Size < hdr {
		return Template{}, fmt.Errorf("frame of %d bytes: the headers alone take %d", s.Size, hdr)
	}
	f.Payload = make([]byte, s.Size-hdr)
	for i := range f.Payload {
		f.Payload[i] = byte(i)
	}
	t := Template{Frame: f.Bytes(), HdrLen: hdr, AddrOff: addrEnd - 4, PortOff: 14 + l3, UDP: !s.TCP}
	if s.VaryDst {
		t.AddrOff += 4 // IPv4 destination follows the source; IPv6 likewise 16 later
		if s.Family == 6 {
			t.AddrOff += 12
		}
		t.PortOff += 2
	}
	if s.Family == 4 {
		t.IPCsum = 14 + 10
	}
	if s.TCP {
		t.L4Csum = 14 + l3 + 16
	} else {
		t.L4Csum = 14 + l3 + 6
	}
	if len(t.Frame) != s.Size {
		return Template{}, fmt.Errorf("built %d bytes, want %d", len(t.Frame), s.Size)
	}
	return t, nil
}
