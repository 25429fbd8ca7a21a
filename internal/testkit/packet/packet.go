// Package packet builds and parses Ethernet frames for tests of packet
// programs: golden-packet tables describe an input frame, run it through a
// BPF program and compare the output with another built frame.
//
// The builder is deliberately small and byte-exact. Tests must be able to
// produce frames that no well-behaved stack would (bad checksums, truncated
// headers, IP options, fragments, VLAN tags), so every field can be set and
// checksums are computed only when asked for (the default).
package packet

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// EtherTypes and IP protocol numbers used by halo.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeVLAN = 0x8100
	EtherTypeQinQ = 0x88a8 // 802.1ad service tag
	EtherTypeIPv6 = 0x86dd

	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
	ProtoVRRP   = 112
)

// TCP flag bits.
const (
	TCPFin = 0x01
	TCPSyn = 0x02
	TCPRst = 0x04
	TCPPsh = 0x08
	TCPAck = 0x10
)

// Frame describes one Ethernet frame. Exactly one of IPv4/IPv6 may be set
// (or neither, with Raw as the payload after the Ethernet header); exactly one
// of TCP/UDP/ICMP may be set as the L4 header.
type Frame struct {
	Dst, Src net.HardwareAddr
	VLAN     uint16 // 802.1Q VLAN id; 0 means untagged
	// OuterVLAN is an 802.1ad service tag in front of VLAN (QinQ); 0: none.
	OuterVLAN uint16
	EtherType uint16 // set automatically from IPv4/IPv6 when zero

	IPv4 *IPv4
	IPv6 *IPv6

	TCP  *TCP
	UDP  *UDP
	ICMP *ICMP

	Payload []byte
}

// IPv4 header fields. Zero values get sensible defaults (TTL 64, IHL from
// Options, total length and checksum computed) unless the matching Keep*
// flag asks for the literal value.
type IPv4 struct {
	TOS        uint8
	ID         uint16
	Flags      uint8  // 3 bits: 0x2 DF, 0x1 MF
	FragOff    uint16 // in 8-byte units
	TTL        uint8
	Protocol   uint8 // set from the L4 header when zero
	Src, Dst   netip.Addr
	Options    []byte // must be a multiple of 4 bytes
	Checksum   uint16
	KeepCsum   bool // use Checksum as is (to build bad checksums)
	TotalLen   uint16
	KeepLength bool // use TotalLen as is
}

// IPv6 header fields.
type IPv6 struct {
	TrafficClass uint8
	FlowLabel    uint32
	NextHeader   uint8 // set from the L4 header when zero
	HopLimit     uint8
	Src, Dst     netip.Addr
	// ExtHeaders are raw extension headers placed between the fixed header and
	// the L4 header; NextHeader must then name the first of them.
	ExtHeaders []byte
}

// TCP header fields.
type TCP struct {
	SrcPort, DstPort uint16
	Seq, Ack         uint32
	Flags            uint8
	Window           uint16
	Options          []byte // multiple of 4 bytes
	Checksum         uint16
	KeepCsum         bool
}

// UDP header fields. A zero checksum over IPv4 means "no checksum" on the
// wire; set NoCsum to send that.
type UDP struct {
	SrcPort, DstPort uint16
	Checksum         uint16
	KeepCsum         bool
	NoCsum           bool
}

// ICMP is an ICMPv4 or ICMPv6 header (type, code, checksum, 4 bytes of rest).
type ICMP struct {
	Type, Code uint8
	Rest       uint32 // identifier and sequence for echo
	Checksum   uint16
	KeepCsum   bool
}

// MustMAC parses a MAC address or panics; for test tables.
func MustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// Bytes serialises the frame.
func (f *Frame) Bytes() []byte {
	b := make([]byte, 0, 128+len(f.Payload))
	b = append(b, mac6(f.Dst)...)
	b = append(b, mac6(f.Src)...)
	et := f.EtherType
	if et == 0 {
		switch {
		case f.IPv4 != nil:
			et = EtherTypeIPv4
		case f.IPv6 != nil:
			et = EtherTypeIPv6
		}
	}
	if f.OuterVLAN != 0 {
		b = binary.BigEndian.AppendUint16(b, EtherTypeQinQ)
		b = binary.BigEndian.AppendUint16(b, f.OuterVLAN&0x0fff)
	}
	if f.VLAN != 0 {
		b = binary.BigEndian.AppendUint16(b, EtherTypeVLAN)
		b = binary.BigEndian.AppendUint16(b, f.VLAN&0x0fff)
	}
	b = binary.BigEndian.AppendUint16(b, et)

	l4proto, l4 := f.l4()
	switch {
	case f.IPv4 != nil:
		ip := f.IPv4
		if ip.Protocol != 0 {
			l4proto = ip.Protocol
		}
		l4 = f.finishL4(l4, pseudo4(ip.Src, ip.Dst, l4proto, len(l4)))
		b = append(b, ip.header(l4proto, len(l4))...)
		b = append(b, l4...)
	case f.IPv6 != nil:
		ip := f.IPv6
		l4 = f.finishL4(l4, pseudo6(ip.Src, ip.Dst, l4proto, len(l4)))
		b = append(b, ip.header(l4proto, len(l4))...)
		b = append(b, l4...)
	default:
		b = append(b, l4...)
	}
	return b
}

func mac6(m net.HardwareAddr) []byte {
	if len(m) == 6 {
		return m
	}
	return make([]byte, 6)
}

// l4 returns the protocol number and the L4 header plus payload with a zero
// checksum field; finishL4 fills the checksum in.
func (f *Frame) l4() (uint8, []byte) {
	switch {
	case f.TCP != nil:
		t := f.TCP
		hl := 20 + len(t.Options)
		h := make([]byte, hl, hl+len(f.Payload))
		binary.BigEndian.PutUint16(h[0:], t.SrcPort)
		binary.BigEndian.PutUint16(h[2:], t.DstPort)
		binary.BigEndian.PutUint32(h[4:], t.Seq)
		binary.BigEndian.PutUint32(h[8:], t.Ack)
		h[12] = uint8(hl/4) << 4
		h[13] = t.Flags
		w := t.Window
		if w == 0 {
			w = 65535
		}
		binary.BigEndian.PutUint16(h[14:], w)
		copy(h[20:], t.Options)
		return ProtoTCP, append(h, f.Payload...)
	case f.UDP != nil:
		u := f.UDP
		h := make([]byte, 8, 8+len(f.Payload))
		binary.BigEndian.PutUint16(h[0:], u.SrcPort)
		binary.BigEndian.PutUint16(h[2:], u.DstPort)
		binary.BigEndian.PutUint16(h[4:], uint16(8+len(f.Payload)))
		return ProtoUDP, append(h, f.Payload...)
	case f.ICMP != nil:
		c := f.ICMP
		h := make([]byte, 8, 8+len(f.Payload))
		h[0], h[1] = c.Type, c.Code
		binary.BigEndian.PutUint32(h[4:], c.Rest)
		p := uint8(ProtoICMP)
		if f.IPv6 != nil {
			p = ProtoICMPv6
		}
		return p, append(h, f.Payload...)
	}
	return 0, append([]byte(nil), f.Payload...)
}

func (f *Frame) finishL4(l4 []byte, pseudo uint32) []byte {
	switch {
	case f.TCP != nil:
		cs := f.TCP.Checksum
		if !f.TCP.KeepCsum {
			cs = Fold(Sum(l4, pseudo))
		}
		binary.BigEndian.PutUint16(l4[16:], cs)
	case f.UDP != nil:
		cs := f.UDP.Checksum
		switch {
		case f.UDP.NoCsum:
			cs = 0
		case !f.UDP.KeepCsum:
			cs = Fold(Sum(l4, pseudo))
			if cs == 0 {
				cs = 0xffff
			}
		}
		binary.BigEndian.PutUint16(l4[6:], cs)
	case f.ICMP != nil:
		cs := f.ICMP.Checksum
		if !f.ICMP.KeepCsum {
			if f.IPv6 != nil {
				cs = Fold(Sum(l4, pseudo))
			} else {
				cs = Fold(Sum(l4, 0)) // ICMPv4 has no pseudo-header
			}
		}
		binary.BigEndian.PutUint16(l4[2:], cs)
	}
	return l4
}

func (ip *IPv4) header(proto uint8, l4len int) []byte {
	hl := 20 + len(ip.Options)
	h := make([]byte, hl)
	h[0] = 0x40 | uint8(hl/4)
	h[1] = ip.TOS
	tl := uint16(hl + l4len)
	if ip.KeepLength {
		tl = ip.TotalLen
	}
	binary.BigEndian.PutUint16(h[2:], tl)
	binary.BigEndian.PutUint16(h[4:], ip.ID)
	binary.BigEndian.PutUint16(h[6:], uint16(ip.Flags)<<13|ip.FragOff&0x1fff)
	ttl := ip.TTL
	if ttl == 0 {
		ttl = 64
	}
	h[8] = ttl
	h[9] = proto
	s, d := ip.Src.As4(), ip.Dst.As4()
	copy(h[12:], s[:])
	copy(h[16:], d[:])
	copy(h[20:], ip.Options)
	cs := ip.Checksum
	if !ip.KeepCsum {
		cs = Fold(Sum(h, 0))
	}
	binary.BigEndian.PutUint16(h[10:], cs)
	return h
}

func (ip *IPv6) header(proto uint8, l4len int) []byte {
	h := make([]byte, 40, 40+len(ip.ExtHeaders))
	binary.BigEndian.PutUint32(h[0:], 6<<28|uint32(ip.TrafficClass)<<20|ip.FlowLabel&0xfffff)
	binary.BigEndian.PutUint16(h[4:], uint16(l4len+len(ip.ExtHeaders)))
	nh := proto
	if ip.NextHeader != 0 {
		nh = ip.NextHeader
	}
	h[6] = nh
	hl := ip.HopLimit
	if hl == 0 {
		hl = 64
	}
	h[7] = hl
	s, d := ip.Src.As16(), ip.Dst.As16()
	copy(h[8:], s[:])
	copy(h[24:], d[:])
	return append(h, ip.ExtHeaders...)
}

func pseudo4(src, dst netip.Addr, proto uint8, l int) uint32 {
	if !src.Is4() || !dst.Is4() {
		return 0
	}
	s, d := src.As4(), dst.As4()
	var p [12]byte
	copy(p[0:], s[:])
	copy(p[4:], d[:])
	p[9] = proto
	binary.BigEndian.PutUint16(p[10:], uint16(l))
	return Sum(p[:], 0)
}

func pseudo6(src, dst netip.Addr, proto uint8, l int) uint32 {
	if !src.Is6() || !dst.Is6() {
		return 0
	}
	s, d := src.As16(), dst.As16()
	var p [40]byte
	copy(p[0:], s[:])
	copy(p[16:], d[:])
	binary.BigEndian.PutUint32(p[32:], uint32(l))
	p[39] = proto
	return Sum(p[:], 0)
}

// Sum adds b to the running RFC 1071 sum (not yet folded).
func Sum(b []byte, sum uint32) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// Fold folds a running sum to 16 bits and complements it.
func Fold(sum uint32) uint16 {
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// Checksum is the RFC 1071 checksum of b.
func Checksum(b []byte) uint16 { return Fold(Sum(b, 0)) }

// Parsed is the result of Parse: the layers found and whether the checksums
// they carry are right.
type Parsed struct {
	Dst, Src  net.HardwareAddr
	VLAN      uint16
	OuterVLAN uint16
	EtherType uint16

	IPv4 *IPv4
	IPv6 *IPv6
	TCP  *TCP
	UDP  *UDP
	ICMP *ICMP

	L3CsumOK bool // IPv4 header checksum (true for IPv6, which has none)
	L4CsumOK bool
	Payload  []byte
}

// ErrTruncated is returned when a header runs past the end of the frame.
var ErrTruncated = errors.New("packet: truncated")

// Parse decodes a frame built by Frame.Bytes or received from the wire. It
// never panics; unknown EtherTypes or protocols leave the rest in Payload.
func Parse(b []byte) (*Parsed, error) {
	if len(b) < 14 {
		return nil, fmt.Errorf("ethernet: %w", ErrTruncated)
	}
	p := &Parsed{Dst: net.HardwareAddr(b[0:6]), Src: net.HardwareAddr(b[6:12]), L3CsumOK: true}
	et := binary.BigEndian.Uint16(b[12:])
	off := 14
	if et == EtherTypeQinQ {
		if len(b) < 18 {
			return nil, fmt.Errorf("qinq: %w", ErrTruncated)
		}
		p.OuterVLAN = binary.BigEndian.Uint16(b[14:]) & 0x0fff
		et = binary.BigEndian.Uint16(b[16:])
		b = append(append([]byte(nil), b[:12]...), b[16:]...) // parse the rest as if untagged outside
	}
	if et == EtherTypeVLAN {
		if len(b) < 18 {
			return nil, fmt.Errorf("vlan: %w", ErrTruncated)
		}
		p.VLAN = binary.BigEndian.Uint16(b[14:]) & 0x0fff
		et = binary.BigEndian.Uint16(b[16:])
		off = 18
	}
	p.EtherType = et
	rest := b[off:]
	var proto uint8
	var pseudo uint32
	switch et {
	case EtherTypeIPv4:
		if len(rest) < 20 {
			return nil, fmt.Errorf("ipv4: %w", ErrTruncated)
		}
		hl := int(rest[0]&0x0f) * 4
		if hl < 20 || len(rest) < hl {
			return nil, fmt.Errorf("ipv4 header length %d: %w", hl, ErrTruncated)
		}
		tl := int(binary.BigEndian.Uint16(rest[2:]))
		ip := &IPv4{
			TOS: rest[1], TotalLen: uint16(tl), ID: binary.BigEndian.Uint16(rest[4:]),
			Flags: rest[6] >> 5, FragOff: binary.BigEndian.Uint16(rest[6:]) & 0x1fff,
			TTL: rest[8], Protocol: rest[9], Checksum: binary.BigEndian.Uint16(rest[10:]),
			Src: netip.AddrFrom4([4]byte(rest[12:16])), Dst: netip.AddrFrom4([4]byte(rest[16:20])),
			Options: append([]byte(nil), rest[20:hl]...),
		}
		p.IPv4 = ip
		p.L3CsumOK = Checksum(rest[:hl]) == 0
		if tl < hl || tl > len(rest) {
			return p, fmt.Errorf("ipv4 total length %d: %w", tl, ErrTruncated)
		}
		rest = rest[hl:tl]
		proto = ip.Protocol
		if ip.FragOff != 0 || ip.Flags&1 != 0 {
			p.Payload = rest
			return p, nil
		}
		pseudo = pseudo4(ip.Src, ip.Dst, proto, len(rest))
	case EtherTypeIPv6:
		if len(rest) < 40 {
			return nil, fmt.Errorf("ipv6: %w", ErrTruncated)
		}
		vtf := binary.BigEndian.Uint32(rest[0:])
		pl := int(binary.BigEndian.Uint16(rest[4:]))
		ip := &IPv6{
			TrafficClass: uint8(vtf >> 20), FlowLabel: vtf & 0xfffff, NextHeader: rest[6], HopLimit: rest[7],
			Src: netip.AddrFrom16([16]byte(rest[8:24])), Dst: netip.AddrFrom16([16]byte(rest[24:40])),
		}
		p.IPv6 = ip
		if 40+pl > len(rest) {
			return p, fmt.Errorf("ipv6 payload length %d: %w", pl, ErrTruncated)
		}
		rest = rest[40 : 40+pl]
		proto = ip.NextHeader
		pseudo = pseudo6(ip.Src, ip.Dst, proto, len(rest))
	default:
		p.Payload = rest
		return p, nil
	}
	switch proto {
	case ProtoTCP:
		if len(rest) < 20 {
			return p, fmt.Errorf("tcp: %w", ErrTruncated)
		}
		hl := int(rest[12]>>4) * 4
		if hl < 20 || len(rest) < hl {
			return p, fmt.Errorf("tcp header length %d: %w", hl, ErrTruncated)
		}
		p.TCP = &TCP{
			SrcPort: binary.BigEndian.Uint16(rest[0:]), DstPort: binary.BigEndian.Uint16(rest[2:]),
			Seq: binary.BigEndian.Uint32(rest[4:]), Ack: binary.BigEndian.Uint32(rest[8:]),
			Flags: rest[13], Window: binary.BigEndian.Uint16(rest[14:]),
			Checksum: binary.BigEndian.Uint16(rest[16:]), Options: append([]byte(nil), rest[20:hl]...),
		}
		p.L4CsumOK = Fold(Sum(rest, pseudo)) == 0
		p.Payload = rest[hl:]
	case ProtoUDP:
		if len(rest) < 8 {
			return p, fmt.Errorf("udp: %w", ErrTruncated)
		}
		p.UDP = &UDP{
			SrcPort: binary.BigEndian.Uint16(rest[0:]), DstPort: binary.BigEndian.Uint16(rest[2:]),
			Checksum: binary.BigEndian.Uint16(rest[6:]),
		}
		p.UDP.NoCsum = p.UDP.Checksum == 0
		p.L4CsumOK = (p.UDP.NoCsum && p.IPv4 != nil) || Fold(Sum(rest, pseudo)) == 0
		p.Payload = rest[8:]
	case ProtoICMP, ProtoICMPv6:
		if len(rest) < 8 {
			return p, fmt.Errorf("icmp: %w", ErrTruncated)
		}
		p.ICMP = &ICMP{Type: rest[0], Code: rest[1], Checksum: binary.BigEndian.Uint16(rest[2:]),
			Rest: binary.BigEndian.Uint32(rest[4:])}
		if proto == ProtoICMP {
			pseudo = 0
		}
		p.L4CsumOK = Fold(Sum(rest, pseudo)) == 0
		p.Payload = rest[8:]
	default:
		p.Payload = rest
	}
	return p, nil
}
