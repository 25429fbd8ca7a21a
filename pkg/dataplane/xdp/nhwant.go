package xdp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
)

// wantedEvery is how often the addresses the program could not reach are
// drained (bpf/lb_maps.h nh_wanted): a NAT reply to an on-link client this
// director never talked to waits about this long plus one ARP/ND exchange.
const wantedEvery = 100 * time.Millisecond

// nhAddr is the address of a next-hop key (IPv4 as ::ffff:a.b.c.d).
func nhAddr(k lbNhKey) netip.Addr {
	var raw [16]byte
	for i, w := range k.Addr {
		binary.NativeEndian.PutUint32(raw[4*i:], w)
	}
	return netip.AddrFrom16(raw).Unmap()
}

// resolveWanted drains nh_wanted and asks the kernel to resolve each
// address on the dataplane interface its route leaves by (the gateway's,
// when the route has one). The kernel does it as for its own traffic
// (NTF_USE: ARP or neighbour solicitation, retries, the usual state
// machine); the next-hop map is then rebuilt from the kernel's tables, as
// the periodic refresh does. The director's own addresses are skipped: a
// health-check answer from a NAT real's port to the director is not a
// reply and stays with the stack.
func (b *Backend) resolveWanted() {
	var k lbNhKey
	var v uint32
	var keys []lbNhKey
	if b.objs.NhWanted == nil {
		return
	}
	for it := b.objs.NhWanted.Iterate(); it.Next(&k, &v); {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return
	}
	ifaces := map[int]bool{}
	for name := range b.linkNames() {
		if ifi, err := netInterfaceByName(name); err == nil {
			ifaces[ifi.Index] = true
		}
	}
	own := ownAddrs()
	type pending struct {
		addr    netip.Addr
		ifindex int
	}
	var wait []pending
	for _, k := range keys {
		b.objs.NhWanted.Delete(&k)
		a := nhAddr(k)
		if own[a] || !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
			continue
		}
		routes, err := netlink.RouteGet(a.AsSlice())
		if err != nil || len(routes) == 0 || !ifaces[routes[0].LinkIndex] {
			continue
		}
		target, idx := a, routes[0].LinkIndex
		if routes[0].Gw != nil {
			gw, _ := netip.AddrFromSlice(routes[0].Gw)
			target = gw.Unmap()
		}
		if neighMAC(target, idx) == nil {
			fam := netlink.FAMILY_V4
			if target.Is6() {
				fam = netlink.FAMILY_V6
			}
			err := netlink.NeighSet(&netlink.Neigh{LinkIndex: idx, Family: fam, IP: target.AsSlice(), Flags: netlink.NTF_USE})
			if err != nil {
				b.log.Debug("NAT next hop: resolve", "addr", target, "err", err)
				continue
			}
		}
		wait = append(wait, pending{target, idx})
	}
	if len(wait) == 0 {
		return
	}
	// One ARP/ND round trip on the segment; bounded so a silent address
	// does not hold up the others (it is asked for again by its next
	// reply).
	deadline := time.Now().Add(time.Second)
	for time.Now().Before(deadline) {
		done := true
		for _, p := range wait {
			if neighMAC(p.addr, p.ifindex) == nil {
				done = false
				break
			}
		}
		if done {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	if err := b.syncHops(); err != nil {
		b.log.Warn("NAT next hops", "err", err)
	}
}

// ownAddrs are the addresses of this host's interfaces (in its network
// namespace).
func ownAddrs() map[netip.Addr]bool {
	out := map[netip.Addr]bool{}
	addrs, _ := net.InterfaceAddrs()
	for _, ad := range addrs {
		if p, ok := ad.(*net.IPNet); ok {
			if a, ok := netip.AddrFromSlice(p.IP); ok {
				out[a.Unmap()] = true
			}
		}
	}
	return out
}
