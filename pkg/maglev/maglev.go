// Package maglev builds weighted Maglev lookup tables (Eisenbud et al.,
// NSDI 2016): every backend walks its own permutation of the table's slots
// and claims free ones in turn, which spreads flows evenly and moves few of
// them when the backend set changes. Weights are honoured exactly: each
// backend's share of slots is fixed up front by largest remainder, and a
// backend stops claiming once it has its share. Pure: no I/O, no clock.
package maglev

import (
	"errors"
	"hash/fnv"
	"sort"
)

// Backend is one entry of the table.
type Backend struct {
	ID     uint32 // what the table stores
	Key    string // stable identity (address:port): sets the permutation
	Weight uint32 // 0 keeps it out of the table
}

// Sizes that work well: primes, so every skip is coprime with the size.
const (
	SizeSmall = 4093
	SizeBPF   = 16381 // the size halo's XDP program uses
	SizeLarge = 65537
)

// ErrEmpty is returned when no backend has a weight.
var ErrEmpty = errors.New("maglev: no backend with a weight")

// Table fills a table of size m (a prime) with backend IDs.
func Table(backends []Backend, m uint32) ([]uint32, error) {
	// A prime size makes every skip coprime with it, so each permutation
	// visits every slot; with another size a walk could cycle forever.
	if !isPrime(m) {
		return nil, errors.New("maglev: table size must be a prime")
	}
	var bs []Backend
	var total uint64
	for _, b := range backends {
		if b.Weight > 0 {
			bs = append(bs, b)
			total += uint64(b.Weight)
		}
	}
	if len(bs) == 0 {
		return nil, ErrEmpty
	}
	if uint32(len(bs)) > m {
		return nil, errors.New("maglev: more backends than table slots")
	}
	// Order by key so the result does not depend on the caller's order.
	sort.Slice(bs, func(i, j int) bool { return bs[i].Key < bs[j].Key })

	// Slots per backend by largest remainder: exact shares, at least one
	// slot for every weighted backend.
	quota := make([]uint32, len(bs))
	type rem struct {
		i int
		r uint64
	}
	rems := make([]rem, len(bs))
	var given uint32
	for i, b := range bs {
		q := uint64(m) * uint64(b.Weight) / total
		if q == 0 {
			q = 1
		}
		quota[i] = uint32(q)
		given += uint32(q)
		rems[i] = rem{i, uint64(m) * uint64(b.Weight) % total}
	}
	sort.SliceStable(rems, func(a, b int) bool { return rems[a].r > rems[b].r })
	for k := 0; given < m; k = (k + 1) % len(bs) {
		quota[rems[k].i]++
		given++
	}
	for k := len(bs) - 1; given > m; k = (k + len(bs) - 1) % len(bs) {
		if quota[rems[k].i] > 1 {
			quota[rems[k].i]--
			given--
		}
	}

	offset := make([]uint64, len(bs))
	skip := make([]uint64, len(bs))
	for i, b := range bs {
		offset[i] = hash(b.Key, 0x9e3779b97f4a7c15) % uint64(m)
		skip[i] = hash(b.Key, 0xc2b2ae3d27d4eb4f)%uint64(m-1) + 1
	}
	const empty = ^uint32(0)
	table := make([]uint32, m)
	for i := range table {
		table[i] = empty
	}
	// pos is each backend's current place in its permutation
	// (offset + n*skip mod m), advanced by addition: no division per probe.
	pos := offset
	have := make([]uint32, len(bs))
	filled := uint32(0)
	for filled < m {
		for i := range bs {
			if have[i] >= quota[i] {
				continue
			}
			// Walk this backend's permutation to its next free slot.
			for {
				c := pos[i]
				if pos[i] += skip[i]; pos[i] >= uint64(m) {
					pos[i] -= uint64(m)
				}
				if table[c] == empty {
					table[c] = bs[i].ID
					have[i]++
					filled++
					break
				}
			}
			if filled == m {
				break
			}
		}
	}
	return table, nil
}

func hash(s string, seed uint64) uint64 {
	h := fnv.New64a()
	var b [8]byte
	for i := range b {
		b[i] = byte(seed >> (8 * i))
	}
	h.Write(b[:])
	h.Write([]byte(s))
	x := h.Sum64()
	// A final mix: FNV's low bits are weak for short keys.
	x ^= x >> 33
	x *= 0xff51afd7ed558ccd
	x ^= x >> 33
	return x
}

func isPrime(n uint32) bool {
	if n < 2 {
		return false
	}
	for d := uint32(2); d*d <= n; d++ {
		if n%d == 0 {
			return false
		}
	}
	return true
}

// RoundRobin fills a table of size m with a smooth weighted round-robin
// sequence (each step picks the backend furthest behind its share), for
// schedulers that walk the table in order (rr, wrr): any window of the walk
// is spread by weight, where a Maglev table can hold long runs of one
// backend. Backends are ordered by key, as in Table.
func RoundRobin(backends []Backend, m uint32) ([]uint32, error) {
	var bs []Backend
	var total int64
	for _, b := range backends {
		if b.Weight > 0 {
			bs = append(bs, b)
			total += int64(b.Weight)
		}
	}
	if len(bs) == 0 {
		return nil, ErrEmpty
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Key < bs[j].Key })
	cur := make([]int64, len(bs))
	table := make([]uint32, m)
	for i := range table {
		best := 0
		for j, b := range bs {
			cur[j] += int64(b.Weight)
			if cur[j] > cur[best] {
				best = j
			}
		}
		cur[best] -= total
		table[i] = bs[best].ID
	}
	return table, nil
}
