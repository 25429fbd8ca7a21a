package xdp

import (
	"encoding/binary"

	"github.com/cilium/ebpf"
	"net"
	"net/netip"
)

func addrFrom(w [4]uint32, family uint8) netip.Addr {
	var b [16]byte
	for i := 0; i < 4; i++ {
		binary.NativeEndian.PutUint32(b[i*4:], w[i])
	}
	if family == 4 {
		return netip.AddrFrom4([4]byte(b[:4]))
	}
	return netip.AddrFrom16(b)
}

func addrWords(a netip.Addr) (w [4]uint32, family uint8) {
	if a.Is4() {
		b := a.As4()
		w[0] = binary.NativeEndian.Uint32(b[:])
		return w, 4
	}
	b := a.As16()
	for i := 0; i < 4; i++ {
		w[i] = binary.NativeEndian.Uint32(b[i*4:])
	}
	return w, 6
}

func htons(p uint16) uint16 { return binary.NativeEndian.Uint16([]byte{byte(p >> 8), byte(p)}) }

func ntohs(p uint16) uint16 {
	var b [2]byte
	binary.NativeEndian.PutUint16(b[:], p)
	return uint16(b[0])<<8 | uint16(b[1])
}

// Seams for tests that give reals an egress interface.
var (
	netInterfaceByIndex = net.InterfaceByIndex
	netInterfaceByName  = net.InterfaceByName
	netInterfaces       = net.Interfaces
)

// fullMask is the netmask of a /bits prefix as an address (bits 0: the
// whole address).
func fullMask(is4 bool, bits int) netip.Addr {
	n := 128
	if is4 {
		n = 32
	}
	if bits <= 0 || bits > n {
		bits = n
	}
	b := make([]byte, n/8)
	for i := 0; i < bits; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func possibleCPUs() (int, error) { return ebpf.PossibleCPU() }
