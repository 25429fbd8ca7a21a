package xdp

import (
	"encoding/binary"
	"net/netip"

	"github.com/twmb/murmur3"
)

// FlowKey is the part of a packet the selection rule reads.
type FlowKey struct {
	Src, Dst     netip.Addr
	SPort, DPort uint16
	Proto        uint8
}

// hashSeed is LB_HASH_SEED of bpf/lb_select.h.
const hashSeed = 0x9747b28c

func mix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// flowHash is flow_hash_with of bpf/lb_select.h in Go (TestSelectionMatches
// Program runs both): a function of the packet and the service's settings
// only, so a flow lands on the same table position on every director.
// With svcHashMurmur3 it is murmur3_32 of the key's words as the program
// holds them (an IPv4 key: its 4 words only); without, the mix32 chain of
// earlier versions.
func flowHash(k FlowKey, flags uint32, mask [4]uint32) uint32 {
	src, _ := addrWords(k.Src)
	dst, _ := addrWords(k.Dst)
	n := 1
	if !k.Src.Is4() {
		n = 4
	}
	// Ports are compared as the program holds them: network order in a
	// native-endian 16-bit load.
	sport, dport := uint32(htons(k.SPort)), uint32(htons(k.DPort))
	var buf [10]uint32 // the longest key: IPv6 5-tuple
	words := buf[:0]
	if flags&uint32(lbLbFlagsSVC_HASH_SRC) != 0 {
		for i := 0; i < 4; i++ {
			src[i] &= mask[i]
		}
		if flags&svcHashMurmur3 == 0 {
			h := uint32(hashSeed)
			for i := 0; i < 4; i++ {
				h = mix32(h ^ src[i])
			}
			if flags&uint32(lbLbFlagsSVC_HASH_PORT) != 0 {
				h = mix32(h ^ sport)
			}
			return h
		}
		words = append(words, src[:n]...)
		if flags&uint32(lbLbFlagsSVC_HASH_PORT) != 0 {
			words = append(words, sport)
		}
		return murmur3Words(words)
	}
	ports := sport<<16 | dport
	if flags&svcHashMurmur3 == 0 {
		h := uint32(hashSeed)
		for _, w := range src {
			h = mix32(h ^ w)
		}
		for _, w := range dst {
			h = mix32(h ^ w)
		}
		h = mix32(h ^ ports)
		return mix32(h ^ uint32(k.Proto))
	}
	words = append(append(append(words, src[:n]...), dst[:n]...), ports, uint32(k.Proto))
	return murmur3Words(words)
}

// murmur3Words is murmur3_32 of the words' bytes as the program's
// native-endian (little-endian: bpf2go builds bpfel) loads see them.
func murmur3Words(words []uint32) uint32 {
	var buf [40]byte
	b := buf[:0]
	for _, w := range words {
		b = binary.LittleEndian.AppendUint32(b, w)
	}
	return murmur3.SeedSum32(hashSeed, b)
}
