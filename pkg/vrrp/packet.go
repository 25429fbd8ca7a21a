// Package vrrp holds the pure parts of halo's VRRP: the v2/v3 codec with
// keepalived's checksums and the per-instance state machine. It does no I/O
// and reads no clock; the daemon feeds it packets and times.
package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Protocol is VRRP's IP protocol number.
const Protocol = 112

// TypeAdvertisement is the only VRRP message type.
const TypeAdvertisement = 1

// Auth types (VRRPv2 only; RFC 2338 §5.3.6).
const (
	AuthNone = 0
	AuthPass = 1
	AuthAH   = 2
)

// Multicast groups (RFC 5798 §5.1.1.2, §5.1.2.2).
var (
	Group4 = netip.MustParseAddr("224.0.0.18")
	Group6 = netip.MustParseAddr("ff02::12")
)

// Advert is a decoded VRRP advertisement.
type Advert struct {
	Version  uint8
	Type     uint8
	VRID     uint8
	Priority uint8
	// Interval is whole seconds for v2 and centiseconds for v3.
	Interval uint16
	AuthType uint8   // v2
	AuthData [8]byte // v2; zeros unless PASS
	Checksum uint16
	Addrs    []netip.Addr
}

// ChecksumMode says how a VRRPv3/IPv4 checksum is computed
// (docs/vrrp-wire.md#checksums).
type ChecksumMode int

const (
	// PseudoHeader is keepalived's default: IPv4 pseudo-header with the
	// packet's real destination.
	PseudoHeader ChecksumMode = iota
	// NoPseudoHeader is RFC 5798 §5.2.8 as Cisco, Juniper and RFC 9568
	// peers read it (`v3_checksum_as_v2`).
	NoPseudoHeader
	// PseudoHeaderGroup uses 224.0.0.18 as the destination even for
	// unicast, as keepalived before 1.3.6 did.
	PseudoHeaderGroup
)

func (m ChecksumMode) String() string {
	switch m {
	case PseudoHeader:
		return "pseudo-header"
	case NoPseudoHeader:
		return "no-pseudo-header"
	case PseudoHeaderGroup:
		return "pseudo-header-group"
	}
	return "?"
}

// Length is the wire length of the advert.
func (a *Advert) Length() int {
	n := 8
	for _, ad := range a.Addrs {
		if ad.Is4() {
			n += 4
		} else {
			n += 16
		}
	}
	if a.Version == 2 {
		n += 8
	}
	return n
}

// Marshal encodes the advert and fills in its checksum. src and dst are the
// IP addresses the packet travels between; they enter the checksum for v3
// (the IPv6 one is also computed by the kernel with IPV6_CHECKSUM; computing
// it here keeps captures and tests honest).
func (a *Advert) Marshal(src, dst netip.Addr, mode ChecksumMode) ([]byte, error) {
	switch a.Version {
	case 2:
		if a.Interval == 0 || a.Interval > 255 {
			return nil, fmt.Errorf("vrrp: v2 interval %d out of range 1-255", a.Interval)
		}
	case 3:
		if a.Interval == 0 || a.Interval > 0x0fff {
			return nil, fmt.Errorf("vrrp: v3 interval %d cs out of range 1-4095", a.Interval)
		}
	default:
		return nil, fmt.Errorf("vrrp: version %d", a.Version)
	}
	if len(a.Addrs) > 255 {
		return nil, errors.New("vrrp: more than 255 addresses")
	}
	b := make([]byte, a.Length())
	b[0] = a.Version<<4 | TypeAdvertisement
	b[1] = a.VRID
	b[2] = a.Priority
	b[3] = uint8(len(a.Addrs))
	if a.Version == 2 {
		b[4] = a.AuthType
		b[5] = uint8(a.Interval)
	} else {
		binary.BigEndian.PutUint16(b[4:], a.Interval&0x0fff)
	}
	off := 8
	for _, ad := range a.Addrs {
		s := ad.AsSlice()
		if a.Version == 2 && len(s) != 4 {
			return nil, errors.New("vrrp: v2 carries IPv4 addresses only")
		}
		copy(b[off:], s)
		off += len(s)
	}
	if a.Version == 2 {
		copy(b[off:], a.AuthData[:])
	}
	cs := checksum(b, a.Version, src, dst, mode)
	binary.BigEndian.PutUint16(b[6:], cs)
	a.Checksum = cs
	return b, nil
}

// checksum computes the checksum of msg (its checksum field is ignored).
func checksum(msg []byte, version uint8, src, dst netip.Addr, mode ChecksumMode) uint16 {
	var sum uint32
	if version == 3 {
		switch {
		case src.Is6():
			s, d := src.As16(), dst.As16()
			sum = add(sum, s[:])
			sum = add(sum, d[:])
			sum += uint32(len(msg)>>16) + uint32(len(msg)&0xffff)
			sum += Protocol
		case mode != NoPseudoHeader:
			if mode == PseudoHeaderGroup {
				dst = Group4
			}
			s, d := src.As4(), dst.As4()
			sum = add(sum, s[:])
			sum = add(sum, d[:])
			sum += Protocol
			sum += uint32(len(msg))
		}
	}
	sum = add(sum, msg[:6])
	sum = add(sum, msg[8:])
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

func add(sum uint32, b []byte) uint32 {
	for len(b) >= 2 {
		sum += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint32(b[0]) << 8
	}
	return sum
}

// Errors returned by Parse, one per receive-drop reason so the daemon can
// count them.
var (
	ErrShort       = errors.New("vrrp: packet too short")
	ErrVersion     = errors.New("vrrp: unknown version")
	ErrType        = errors.New("vrrp: not an advertisement")
	ErrLength      = errors.New("vrrp: length does not match the address count")
	ErrFamily      = errors.New("vrrp: v2 over IPv6")
	ErrChecksum    = errors.New("vrrp: bad checksum")
	ErrInterval    = errors.New("vrrp: interval 0")
	ErrNoAddresses = errors.New("vrrp: no addresses")
)

// Parse decodes a VRRP message (without the IP header). is6 tells the
// address family of the IP packet it came in. Trailing bytes (Ethernet
// padding) are tolerated, as keepalived does. Parse never panics; the
// checksum is not verified here (see VerifyChecksum).
func Parse(b []byte, is6 bool) (*Advert, error) {
	if len(b) < 8 {
		return nil, ErrShort
	}
	a := &Advert{Version: b[0] >> 4, Type: b[0] & 0x0f, VRID: b[1], Priority: b[2]}
	n := int(b[3])
	if a.Version != 2 && a.Version != 3 {
		return nil, ErrVersion
	}
	if a.Type != TypeAdvertisement {
		return nil, ErrType
	}
	if a.Version == 2 && is6 {
		return nil, ErrFamily
	}
	alen := 4
	if is6 {
		alen = 16
	}
	want := 8 + n*alen
	if a.Version == 2 {
		want += 8
		a.AuthType = b[4]
		a.Interval = uint16(b[5])
	} else {
		a.Interval = binary.BigEndian.Uint16(b[4:]) & 0x0fff
	}
	if len(b) < want {
		return nil, ErrLength
	}
	a.Checksum = binary.BigEndian.Uint16(b[6:])
	for i := 0; i < n; i++ {
		off := 8 + i*alen
		ad, _ := netip.AddrFromSlice(b[off : off+alen])
		a.Addrs = append(a.Addrs, ad)
	}
	if a.Version == 2 {
		copy(a.AuthData[:], b[8+n*alen:])
	}
	return a, nil
}

// MessageLen is the length of the VRRP message in b as its header says,
// without trailing padding; b must have passed Parse.
func MessageLen(b []byte, is6 bool) int {
	alen := 4
	if is6 {
		alen = 16
	}
	n := 8 + int(b[3])*alen
	if b[0]>>4 == 2 {
		n += 8
	}
	return n
}

// VerifyChecksum checks msg's checksum. For v3/IPv4 it tries keepalived's
// form, then the others, and returns the mode that matched, so a receiver
// can accept every peer and follow the one it hears.
func VerifyChecksum(msg []byte, src, dst netip.Addr) (ChecksumMode, error) {
	if len(msg) < 8 {
		return 0, ErrShort
	}
	want := binary.BigEndian.Uint16(msg[6:])
	version := msg[0] >> 4
	modes := []ChecksumMode{PseudoHeader}
	if version == 3 && src.Is4() {
		modes = []ChecksumMode{PseudoHeader, NoPseudoHeader, PseudoHeaderGroup}
	}
	for _, m := range modes {
		if checksum(msg, version, src, dst, m) == want {
			return m, nil
		}
	}
	return 0, ErrChecksum
}
