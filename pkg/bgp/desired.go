// Package bgp announces virtual-server addresses to routers with an embedded
// GoBGP speaker, so several active directors can share VIPs through the
// routers' ECMP (docs/bgp.md).
//
// The package has two halves: Desired, a pure function from the director's
// state (quorum per virtual server, VRRP state per VIP, the announce list,
// the drain flag) to the set of prefixes it should announce; and Speaker,
// which owns the BGP sessions and only reconciles what is announced with
// what Desired says.
package bgp

import (
	"net/netip"
	"slices"
)

// VirtualServer is what the speaker needs to know about one virtual server:
// its address and whether it has quorum on this director. Services without
// an address (fwmark) are not passed.
type VirtualServer struct {
	Addr     netip.Addr
	QuorumUp bool
}

// VIP is one VRRP virtual address and whether this node is MASTER of an
// instance that holds it.
type VIP struct {
	Addr   netip.Addr
	Master bool
}

// State is everything Desired reads.
type State struct {
	VirtualServers []VirtualServer
	VIPs           []VIP
	// Announce is the bgp block's announce list; empty means every virtual
	// server address as a host prefix.
	Announce []netip.Prefix
	// Drained withdraws everything (haloctl drain, or a clean stop).
	Drained bool
}

// Desired returns the prefixes to announce, sorted, without duplicates.
//
// An address is eligible when every virtual server at that address has
// quorum here (a director that cannot serve one port of an address leaves
// the address to directors that can serve them all), and, when it is also a
// VRRP VIP, this node is MASTER of an instance holding it: with VRRP and BGP
// together only the master attracts the address, so the two never disagree
// about who answers.
//
// A prefix of the announce list is announced while at least one virtual
// server address inside it is eligible; a prefix with no virtual server
// inside is announced as given (it is the operator's static announcement),
// except that a VIP inside it still needs MASTER.
func Desired(st State) []netip.Prefix {
	if st.Drained {
		return nil
	}
	// quorum[a] is false as soon as one virtual server at a lacks quorum.
	quorum := map[netip.Addr]bool{}
	for _, vs := range st.VirtualServers {
		if !vs.Addr.IsValid() {
			continue
		}
		a := vs.Addr.Unmap()
		if up, seen := quorum[a]; seen {
			quorum[a] = up && vs.QuorumUp
		} else {
			quorum[a] = vs.QuorumUp
		}
	}
	// master[a] is true when any instance holding a is MASTER.
	master := map[netip.Addr]bool{}
	for _, v := range st.VIPs {
		if v.Addr.IsValid() {
			a := v.Addr.Unmap()
			master[a] = master[a] || v.Master
		}
	}
	eligible := func(a netip.Addr) bool {
		if m, isVIP := master[a]; isVIP && !m {
			return false
		}
		up, isVS := quorum[a]
		return !isVS || up
	}

	var out []netip.Prefix
	if len(st.Announce) == 0 {
		for a := range quorum {
			if eligible(a) {
				out = append(out, netip.PrefixFrom(a, a.BitLen()))
			}
		}
	} else {
		for _, p := range st.Announce {
			if !p.IsValid() {
				continue
			}
			p = netip.PrefixFrom(p.Addr().Unmap(), min(p.Bits(), p.Addr().Unmap().BitLen())).Masked()
			if prefixAnnounced(p, quorum, master, eligible) {
				out = append(out, p)
			}
		}
	}
	slices.SortFunc(out, comparePrefix)
	return slices.Compact(out)
}

func prefixAnnounced(p netip.Prefix, quorum, master map[netip.Addr]bool, eligible func(netip.Addr) bool) bool {
	inside := false
	for a := range quorum {
		if p.Contains(a) {
			inside = true
			if eligible(a) {
				return true
			}
		}
	}
	if inside {
		return false
	}
	// No virtual server inside: a static announcement, still gated by
	// the VRRP state of any VIP it covers.
	for a, m := range master {
		if p.Contains(a) && !m {
			return false
		}
	}
	return true
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// Diff returns what to add and what to withdraw to go from have to want.
// Both inputs are sets (order does not matter); the outputs are sorted.
func Diff(have, want []netip.Prefix) (add, del []netip.Prefix) {
	h := map[netip.Prefix]bool{}
	for _, p := range have {
		h[p] = true
	}
	w := map[netip.Prefix]bool{}
	for _, p := range want {
		w[p] = true
		if !h[p] {
			add = append(add, p)
		}
	}
	for p := range h {
		if !w[p] {
			del = append(del, p)
		}
	}
	slices.SortFunc(add, comparePrefix)
	slices.SortFunc(del, comparePrefix)
	return slices.Compact(add), slices.Compact(del)
}
