package xdp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
)

// resolveMAC finds a real's MAC and egress interface: the route tells the
// interface (a DR real must be on-link), the neighbour table the MAC; when
// the table has none, an ARP request (IPv4, mdlayher/arp) or a packet the
// kernel has to resolve for (IPv6) fills it.
func resolveMAC(ip netip.Addr) (net.HardwareAddr, int, error) {
	routes, err := netlink.RouteGet(ip.AsSlice())
	if err != nil || len(routes) == 0 {
		return nil, 0, fmt.Errorf("no route to real %s: %v", ip, err)
	}
	rt := routes[0]
	if rt.Gw != nil {
		return nil, 0, fmt.Errorf("real %s is behind gateway %s; DR needs reals on-link", ip, rt.Gw)
	}
	ifindex := rt.LinkIndex
	if mac := neighMAC(ip, ifindex); mac != nil {
		return mac, ifindex, nil
	}
	ifi, err := net.InterfaceByIndex(ifindex)
	if err != nil {
		return nil, 0, err
	}
	if ip.Is4() {
		c, err := arp.Dial(ifi)
		if err != nil {
			return nil, 0, fmt.Errorf("arp on %s: %w", ifi.Name, err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(time.Second))
		if mac, err := c.Resolve(ip); err == nil {
			return mac, ifindex, nil
		}
	} else {
		// Any datagram makes the kernel run neighbour discovery.
		if c, err := net.Dial("udp", netip.AddrPortFrom(ip, 9).String()); err == nil {
			c.Write([]byte{0})
			c.Close()
		}
	}
	for i := 0; i < 20; i++ {
		if mac := neighMAC(ip, ifindex); mac != nil {
			return mac, ifindex, nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return nil, 0, errors.New("real " + ip.String() + " does not answer ARP/ND")
}

func neighMAC(ip netip.Addr, ifindex int) net.HardwareAddr {
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	ns, err := netlink.NeighList(ifindex, fam)
	if err != nil {
		return nil
	}
	for _, n := range ns {
		a, ok := netip.AddrFromSlice(n.IP)
		if !ok || a.Unmap() != ip || len(n.HardwareAddr) != 6 {
			continue
		}
		if n.State&(netlink.NUD_FAILED|netlink.NUD_INCOMPLETE) != 0 {
			continue
		}
		return n.HardwareAddr
	}
	return nil
}

// refreshLoop re-resolves real MACs so a real that changes its MAC (a
// replaced host, a moved VM) keeps receiving traffic.
func (b *Backend) refreshLoop() {
	defer b.wg.Done()
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
		}
		b.refresh()
	}
}

// refresh re-resolves every real's MAC and rewrites the entries that
// changed.
func (b *Backend) refresh() {
	b.mu.Lock()
	defer b.mu.Unlock()
	for a, id := range b.realIDs {
		mac, ifindex, err := b.opts.ResolveMAC(a)
		if err != nil {
			continue
		}
		if old := b.realMACs[id]; old.mac.String() != mac.String() || old.ifindex != ifindex {
			b.log.Info("real server MAC changed", "real", a, "mac", mac)
			if err := b.writeReal(id, a, mac, ifindex); err != nil {
				b.log.Error("update real", "real", a, "err", err)
			}
		}
	}
}
