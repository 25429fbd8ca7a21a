package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
)

// hop is where NAT replies to a client network go when the flow table has
// no entry for them (a flow this director never saw: after a failover, or
// after a restart without pinned maps). The program cannot use
// bpf_fib_lookup for this: it answers FWD_DISABLED on interfaces with
// forwarding off, and the director runs with forwarding off. So the Go side
// mirrors the director's routes out of its dataplane interfaces.
type hop struct {
	prefix  netip.Prefix
	ifindex int // 0: no next hop known (or the director's own address): the reply is left to the stack
	mac     net.HardwareAddr
}

// nhKey is the LPM key of a prefix: IPv4 as ::ffff:a.b.c.d, so one trie
// holds both families.
func nhKey(p netip.Prefix) lbNhKey {
	a, bits := p.Addr(), p.Bits()
	if a.Is4() {
		a, bits = netip.AddrFrom16(a.As16()), bits+96
	}
	w, _ := addrWords(a)
	return lbNhKey{Prefixlen: uint32(bits), Addr: w}
}

// nextHopEntries are the map entries for hops; a later hop for the same
// prefix wins.
func nextHopEntries(hops []hop) map[lbNhKey]lbNhVal {
	out := map[lbNhKey]lbNhVal{}
	for _, h := range hops {
		v := lbNhVal{}
		if h.ifindex != 0 && len(h.mac) == 6 {
			v.Ifindex = uint32(h.ifindex)
			copy(v.Mac[:], h.mac)
		}
		out[nhKey(h.prefix.Masked())] = v
	}
	return out
}

// gatherHops reads the routes out of the dataplane interfaces: a route via
// a gateway gives that gateway's MAC; a connected network gives its
// neighbours (clients the director has talked to) and otherwise leaves
// replies to the stack; the director's own addresses always go to the
// stack (health-check answers from a NAT real's port are not replies).
func (b *Backend) gatherHops() []hop {
	ifaces := map[int]bool{}
	for name := range b.linkNames() {
		if ifi, err := netInterfaceByName(name); err == nil {
			ifaces[ifi.Index] = true
		}
	}
	var hops, own []hop
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := netlink.RouteList(nil, fam)
		if err != nil {
			continue
		}
		for _, rt := range routes {
			if !ifaces[rt.LinkIndex] {
				continue
			}
			prefix := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
			if fam == netlink.FAMILY_V6 {
				prefix = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
			}
			if rt.Dst != nil {
				a, _ := netip.AddrFromSlice(rt.Dst.IP)
				ones, _ := rt.Dst.Mask.Size()
				prefix = netip.PrefixFrom(a.Unmap(), ones)
			}
			if rt.Gw != nil {
				gw, _ := netip.AddrFromSlice(rt.Gw)
				gw = gw.Unmap()
				mac := neighMAC(gw, rt.LinkIndex)
				if mac == nil {
					if m, idx, err := b.opts.ResolveMAC(gw); err == nil && idx == rt.LinkIndex {
						mac = m
					}
				}
				if mac == nil {
					hops = append(hops, hop{prefix: prefix})
					continue
				}
				hops = append(hops, hop{prefix: prefix, ifindex: rt.LinkIndex, mac: mac})
				continue
			}
			hops = append(hops, hop{prefix: prefix})
			ns, err := netlink.NeighList(rt.LinkIndex, fam)
			if err != nil {
				continue
			}
			for _, n := range ns {
				a, ok := netip.AddrFromSlice(n.IP)
				if !ok || len(n.HardwareAddr) != 6 || n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE|netlink.NUD_NOARP) != 0 {
					continue
				}
				if a = a.Unmap(); prefix.Contains(a) {
					hops = append(hops, hop{prefix: netip.PrefixFrom(a, a.BitLen()), ifindex: rt.LinkIndex, mac: n.HardwareAddr})
				}
			}
		}
	}
	for idx := range ifaces {
		link, err := netlink.LinkByIndex(idx)
		if err != nil {
			continue
		}
		addrs, _ := netlink.AddrList(link, netlink.FAMILY_ALL)
		for _, ad := range addrs {
			if a, ok := netip.AddrFromSlice(ad.IP); ok {
				a = a.Unmap()
				own = append(own, hop{prefix: netip.PrefixFrom(a, a.BitLen())})
			}
		}
	}
	return append(hops, own...)
}

func (b *Backend) linkNames() map[string]bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]bool{}
	for n := range b.links {
		out[n] = true
	}
	for n := range b.pending {
		out[n] = true
	}
	return out
}

// writeHops makes the nexthops map hold exactly hops.
func (b *Backend) writeHops(hops []hop) error {
	want := nextHopEntries(hops)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.nh == nil {
		b.nh = map[lbNhKey]lbNhVal{}
		var k lbNhKey
		var v lbNhVal
		it := b.objs.Nexthops.Iterate()
		for it.Next(&k, &v) {
			b.nh[k] = v
		}
	}
	for k := range b.nh {
		if _, ok := want[k]; ok {
			continue
		}
		if err := b.objs.Nexthops.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("next hops: %w", err)
		}
		delete(b.nh, k)
	}
	for k, v := range want {
		if v.Ifindex != 0 {
			v.Egress = b.egr.byIf[v.Ifindex] // 0 when it has none
		}
		if old, ok := b.nh[k]; ok && old == v {
			continue
		}
		if err := b.objs.Nexthops.Put(&k, &v); err != nil {
			return fmt.Errorf("next hops: %w", err)
		}
		b.nh[k] = v
	}
	return nil
}

// syncHops refreshes the next hops when NAT services are installed (and
// empties them otherwise).
func (b *Backend) syncHops() error {
	b.mu.Lock()
	nat := len(b.rnat) > 0
	b.mu.Unlock()
	var hops []hop
	if nat {
		hops = b.gatherHops()
	}
	return b.writeHops(hops)
}
