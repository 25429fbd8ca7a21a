package xdp

import (
	"net/netip"
)

// FlowKey is the part of a packet the selection rule reads.
type FlowKey struct {
	Src, Dst     netip.Addr
	SPort, DPort uint16
	Proto        uint8
}

func mix32(h uint32) uint32 {
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	h ^= h >> 16
	return h
}

// flowHash is flow_hash of bpf/lb.c in Go (TestFlowHashMatchesProgram runs
// both): a function of the packet and the service's settings only, so a
// flow lands on the same table position on every director.
func flowHash(k FlowKey, flags uint32, mask [4]uint32) uint32 {
	src, _ := addrWords(k.Src)
	dst, _ := addrWords(k.Dst)
	// Ports are compared as the program holds them: network order in a
	// native-endian 16-bit load.
	sport, dport := uint32(htons(k.SPort)), uint32(htons(k.DPort))
	h := uint32(0x9747b28c)
	if flags&uint32(lbLbFlagsSVC_HASH_SRC) != 0 {
		for i := 0; i < 4; i++ {
			h = mix32(h ^ (src[i] & mask[i]))
		}
		if flags&uint32(lbLbFlagsSVC_HASH_PORT) != 0 {
			h = mix32(h ^ sport)
		}
		return h
	}
	for i := 0; i < 4; i++ {
		h = mix32(h ^ src[i])
	}
	for i := 0; i < 4; i++ {
		h = mix32(h ^ dst[i])
	}
	h = mix32(h ^ (sport<<16 | dport))
	return mix32(h ^ uint32(k.Proto))
}
