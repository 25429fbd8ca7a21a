package xdp

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"time"

	"github.com/mdlayher/arp"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/pkg/dataplane"
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
		gw, _ := netip.AddrFromSlice(rt.Gw)
		return nil, 0, &behindGateway{real: ip, gw: gw.Unmap()}
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

// behindGateway: the real is not on-link. DR and NAT need it on-link (the
// frame must reach it unchanged); a TUN real is reached through the
// gateway's MAC, as any routed packet.
type behindGateway struct{ real, gw netip.Addr }

func (e *behindGateway) Error() string {
	return fmt.Sprintf("real %s is behind gateway %s; DR and NAT need reals on-link (TUN reals may be routed)", e.real, e.gw)
}

// lookup resolves a real's next hop: the real itself, or for an address
// only TUN reals use, the gateway it is routed through.
func (b *Backend) lookup(a netip.Addr, routed bool) (net.HardwareAddr, int, error) {
	mac, ifindex, err := b.opts.ResolveMAC(a)
	var gw *behindGateway
	if err != nil && routed && errors.As(err, &gw) {
		return b.opts.ResolveMAC(gw.gw)
	}
	return mac, ifindex, err
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

// neighbours is the MAC cache, per real address.
type neighbours struct {
	known map[netip.Addr]realInfo
	given map[netip.Addr]bool // MAC came from the configuration: never re-resolved
	// routed: every use of the address is a TUN real, which may sit behind
	// a router.
	routed map[netip.Addr]bool
	failed map[netip.Addr]error
	// epoch counts resolutions that succeeded; seen is its value at the
	// last install.
	epoch, seen uint64
}

type realInfo struct {
	mac     net.HardwareAddr
	ifindex int
}

func newNeighbours() neighbours {
	return neighbours{known: map[netip.Addr]realInfo{}, given: map[netip.Addr]bool{}, failed: map[netip.Addr]error{},
		routed: map[netip.Addr]bool{}}
}

// resolveParallel bounds how many resolutions (each up to ~2 s when a
// real does not answer) run at once.
const resolveParallel = 32

// resolveNew resolves the addresses of services that have never been
// tried, without holding mu. Failures are retried by the retry loop, not
// by the next Apply, so a dead real does not slow down every health
// verdict.
func (b *Backend) resolveNew(services []dataplane.Service) {
	b.mu.Lock()
	var todo []netip.Addr
	seen := map[netip.Addr]bool{}
	notTUN := map[netip.Addr]bool{}
	for _, s := range services {
		for _, r := range s.Reals {
			if methodOf(s, r) != dataplane.TUN {
				notTUN[r.Addr] = true
			}
		}
	}
	for _, s := range services {
		for _, r := range s.Reals {
			b.neigh.routed[r.Addr] = !notTUN[r.Addr]
			if seen[r.Addr] {
				continue
			}
			seen[r.Addr] = true
			if len(r.MAC) == 6 && !isZeroMAC(r.MAC) {
				if old, ok := b.neigh.known[r.Addr]; !ok || old.mac.String() != r.MAC.String() {
					b.neigh.known[r.Addr] = realInfo{mac: append(net.HardwareAddr(nil), r.MAC...)}
				}
				b.neigh.given[r.Addr] = true
				delete(b.neigh.failed, r.Addr)
				continue
			}
			if _, ok := b.neigh.known[r.Addr]; ok {
				continue
			}
			if _, ok := b.neigh.failed[r.Addr]; ok {
				continue
			}
			todo = append(todo, r.Addr)
		}
	}
	b.mu.Unlock()
	b.resolve(todo)
}

// resolve looks addresses up in parallel and records the outcome.
func (b *Backend) resolve(addrs []netip.Addr) (resolved int) {
	if len(addrs) == 0 {
		return 0
	}
	type result struct {
		a   netip.Addr
		i   realInfo
		err error
	}
	out := make(chan result, len(addrs))
	sem := make(chan struct{}, resolveParallel)
	routed := map[netip.Addr]bool{}
	b.mu.Lock()
	for _, a := range addrs {
		routed[a] = b.neigh.routed[a]
	}
	b.mu.Unlock()
	var wg sync.WaitGroup
	for _, a := range addrs {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			mac, ifindex, err := b.lookup(a, routed[a])
			if err == nil && (len(mac) != 6 || isZeroMAC(mac)) {
				err = fmt.Errorf("real %s: no usable MAC (%s)", a, mac)
			}
			out <- result{a, realInfo{mac: mac, ifindex: ifindex}, err}
		}()
	}
	wg.Wait()
	close(out)
	b.mu.Lock()
	defer b.mu.Unlock()
	for r := range out {
		if r.err != nil {
			if _, was := b.neigh.failed[r.a]; !was {
				b.log.Warn("real server MAC not resolved; it gets no new flows until it is", "real", r.a, "err", r.err)
			}
			b.neigh.failed[r.a] = r.err
			continue
		}
		delete(b.neigh.failed, r.a)
		b.neigh.known[r.a] = r.i
		b.neigh.epoch++
		resolved++
	}
	return resolved
}

func isZeroMAC(m net.HardwareAddr) bool {
	for _, x := range m {
		if x != 0 {
			return false
		}
	}
	return true
}

// Intervals of the background work.
var (
	retryEvery   = 2 * time.Second
	refreshEvery = 10 * time.Second
)

// maintain retries unresolved reals (re-applying the last desired set
// when one resolves) and re-checks resolved MACs, so a replaced host or a
// moved VM keeps receiving traffic.
func (b *Backend) maintain(netns *os.File) {
	defer b.wg.Done()
	if netns != nil {
		leave, err := enterNetns(netns)
		if err != nil {
			b.log.Warn("background work: enter the network namespace", "err", err)
		}
		defer leave()
	}
	retry := time.NewTicker(retryEvery)
	defer retry.Stop()
	refresh := time.NewTicker(refreshEvery)
	defer refresh.Stop()
	wanted := time.NewTicker(wantedEvery)
	defer wanted.Stop()
	settle := time.NewTicker(settleEvery)
	defer settle.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-settle.C:
			b.applyMu.Lock()
			b.mu.Lock()
			err := b.turnSeen(b.now())
			b.mu.Unlock()
			b.applyMu.Unlock()
			if err != nil {
				b.log.Warn("flow_seen epoch", "err", err)
			}
			if n, err := b.Settle(); err != nil {
				b.log.Warn("settle table changes", "err", err)
			} else if n > 0 {
				b.log.Debug("flows settled on the current tables", "slots", n)
			}
		case <-wanted.C:
			b.resolveWanted()
		case <-retry.C:
			b.retryFailed()
		case <-refresh.C:
			b.refreshAll()
		}
	}
}

// refreshAll re-reads what moves under the data plane: the reals' MACs,
// the routes and client neighbours behind the NAT next hops, and this
// host's own interfaces (the program's, and where frames leave).
func (b *Backend) refreshAll() {
	b.refresh()
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	if err := b.syncHops(); err != nil {
		b.log.Warn("NAT next hops", "err", err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.reattach(); err != nil {
		b.log.Warn("dataplane interfaces", "err", err)
	}
	if err := b.refreshEgress(); err != nil {
		b.log.Warn("egress interfaces", "err", err)
	}
}

func (b *Backend) retryFailed() {
	b.mu.Lock()
	var addrs []netip.Addr
	for a := range b.neigh.failed {
		addrs = append(addrs, a)
	}
	b.mu.Unlock()
	if b.resolve(addrs) == 0 {
		return
	}
	b.applyMu.Lock()
	desired := b.lastDesired
	b.applyMu.Unlock()
	if err := b.Apply(context.Background(), desired); err != nil {
		b.log.Warn("re-apply after a real's MAC resolved", "err", err)
	}
}

// refresh re-resolves every resolved real's MAC and rewrites the entries
// that changed.
func (b *Backend) refresh() {
	b.mu.Lock()
	var addrs []netip.Addr
	routed := map[netip.Addr]bool{}
	for a := range b.neigh.known {
		if !b.neigh.given[a] {
			addrs = append(addrs, a)
			routed[a] = b.neigh.routed[a]
		}
	}
	b.mu.Unlock()
	fresh := map[netip.Addr]realInfo{}
	for _, a := range addrs {
		mac, ifindex, err := b.lookup(a, routed[a])
		if err != nil || len(mac) != 6 || isZeroMAC(mac) {
			continue // keep the last good MAC
		}
		fresh[a] = realInfo{mac, ifindex}
	}
	b.applyMu.Lock()
	defer b.applyMu.Unlock()
	b.mu.Lock()
	defer b.mu.Unlock()
	for a, n := range fresh {
		old := b.neigh.known[a]
		if old.mac.String() == n.mac.String() && old.ifindex == n.ifindex {
			continue
		}
		b.log.Info("real server MAC changed", "real", a, "mac", n.mac)
		b.neigh.known[a] = n
		for id := range b.slots.byAddr[a] {
			o := b.slots.owners[id]
			if st := b.svcs[o.svc]; st != nil {
				if err := b.writeSlot(id, st.id, o.state); err != nil {
					b.log.Error("update real", "real", a, "err", err)
				}
			}
		}
	}
}

// enterNetns moves this goroutine's thread into netns (and closes it) when
// the thread is elsewhere; leave takes the thread back before the
// goroutine ends, so it returns to the pool where it came from. A thread
// that cannot go back stays locked, and the runtime ends it with the
// goroutine.
func enterNetns(netns *os.File) (leave func(), err error) {
	defer netns.Close()
	leave = func() {}
	here, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return leave, err
	}
	var a, b unix.Stat_t
	if unix.Fstat(int(here.Fd()), &a) == nil && unix.Fstat(int(netns.Fd()), &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino {
		here.Close()
		return leave, nil // already there: halod's case
	}
	runtime.LockOSThread()
	if err := unix.Setns(int(netns.Fd()), unix.CLONE_NEWNET); err != nil {
		here.Close()
		runtime.UnlockOSThread()
		return leave, err
	}
	return func() {
		if unix.Setns(int(here.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		here.Close()
	}, nil
}
