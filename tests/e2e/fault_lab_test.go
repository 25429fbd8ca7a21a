package e2e

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// advertCapture records the arrival time of every VRRP advert (IPv4
// protocol 112) seen on an interface of an observer namespace, per source
// address. AF_PACKET sees the frames whether or not the observer joined
// 224.0.0.18, and nothing in halod's path depends on it.
type advertCapture struct {
	mu   sync.Mutex
	at   map[string][]time.Time
	fd   int
	quit atomic.Bool
	done chan struct{}
}

func captureAdverts(t *testing.T, ns *lab.NS, ifname string) *advertCapture {
	t.Helper()
	c := &advertCapture{at: map[string][]time.Time{}, done: make(chan struct{})}
	ifi := ns.Link(ifname)
	proto := int(htons(syscall.ETH_P_IP))
	if err := ns.Do(func() (err error) {
		c.fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto)
		if err != nil {
			return err
		}
		return syscall.Bind(c.fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	tv := syscall.NsecToTimeval(int64(200 * time.Millisecond))
	syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	// The reader owns the socket and closes it when told to quit (within
	// one receive timeout), so no other file can take its number meanwhile.
	go func(fd int) {
		defer close(c.done)
		defer syscall.Close(fd)
		buf := make([]byte, 2048)
		for !c.quit.Load() {
			n, _, err := syscall.Recvfrom(fd, buf, 0)
			now := time.Now()
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil {
				return // closed
			}
			if n < 20 || buf[0]>>4 != 4 || buf[9] != 112 {
				continue
			}
			src := netip.AddrFrom4([4]byte(buf[12:16])).String()
			c.mu.Lock()
			c.at[src] = append(c.at[src], now)
			c.mu.Unlock()
		}
	}(c.fd)
	t.Cleanup(c.stop)
	return c
}

func (c *advertCapture) stop() {
	c.quit.Store(true)
	<-c.done
}

// since returns the arrival times from src after t0.
func (c *advertCapture) since(src string, t0 time.Time) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, at := range c.at[src] {
		if at.After(t0) {
			out = append(out, at)
		}
	}
	return out
}

// maxGap is the longest silence between consecutive adverts in [from, to]
// (the edges count: no advert at all is one long gap).
func maxGap(ts []time.Time, from, to time.Time) time.Duration {
	sort.Slice(ts, func(i, j int) bool { return ts[i].Before(ts[j]) })
	prev, gap := from, time.Duration(0)
	for _, at := range ts {
		if at.After(to) {
			break
		}
		gap = max(gap, at.Sub(prev))
		prev = at
	}
	return max(gap, to.Sub(prev))
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// advertSlack is what the shared 2-core machine is allowed on top of one
// advert interval before a gap counts as a missed advert: less than one
// more interval, so a single missed advert always fails.
func advertSlack(advert time.Duration) time.Duration { return advert * 8 / 10 }

// udpCounter counts distinct sequence numbers received on a UDP port in a
// namespace (a real server behind the VIP).
type udpCounter struct {
	mu   sync.Mutex
	seen map[uint32]bool
}

func serveUDPCounter(t *testing.T, ns *lab.NS, port int) *udpCounter {
	t.Helper()
	u := &udpCounter{seen: map[uint32]bool{}}
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp4", fmt.Sprintf("0.0.0.0:%d", port)); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, _, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if n >= 4 {
				u.mu.Lock()
				u.seen[binary.BigEndian.Uint32(buf)] = true
				u.mu.Unlock()
			}
		}
	}()
	return u
}

// udpStream sends count datagrams (sequence numbers 0..count-1) to addr
// from ns at a constant rate; it returns when all are sent. Bounded in
// count and so in time (count/rate).
func udpStream(t *testing.T, ns *lab.NS, addr string, count int, every time.Duration) <-chan int {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = net.Dial("udp4", addr); return err }); err != nil {
		t.Fatal(err)
	}
	done := make(chan int, 1)
	go func() {
		defer c.Close()
		buf := make([]byte, 64)
		tick := time.NewTicker(every)
		defer tick.Stop()
		sent := 0
		for i := 0; i < count; i++ {
			<-tick.C
			binary.BigEndian.PutUint32(buf, uint32(i))
			if _, err := c.Write(buf); err == nil {
				sent++
			}
		}
		done <- sent
	}()
	return done
}

// rstCounter counts TCP segments with RST set that a namespace's
// interface sees in either direction (AF_PACKET, so the client's own
// resets count too): resets = 0 is measured, not inferred.
type rstCounter struct {
	n    atomic.Int64
	quit atomic.Bool
	done chan struct{}
}

func countResets(t *testing.T, ns *lab.NS, ifname string) *rstCounter {
	t.Helper()
	return countResetsOf(t, ns, ifname, false)
}

// countResetsOf counts TCP RSTs crossing ifname over IPv4, or over IPv6
// (TCP right after the fixed header: the labs' traffic carries no
// extension headers).
func countResetsOf(t *testing.T, ns *lab.NS, ifname string, v6 bool) *rstCounter {
	t.Helper()
	r := &rstCounter{done: make(chan struct{})}
	ifi := ns.Link(ifname)
	proto := int(htons(syscall.ETH_P_IP))
	if v6 {
		proto = int(htons(syscall.ETH_P_IPV6))
	}
	var fd int
	if err := ns.Do(func() (err error) {
		fd, err = syscall.Socket(syscall.AF_PACKET, syscall.SOCK_DGRAM, proto)
		if err != nil {
			return err
		}
		return syscall.Bind(fd, &syscall.SockaddrLinklayer{Protocol: uint16(proto), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	tv := syscall.NsecToTimeval(int64(200 * time.Millisecond))
	syscall.SetsockoptTimeval(fd, syscall.SOL_SOCKET, syscall.SO_RCVTIMEO, &tv)
	go func() {
		defer close(r.done)
		defer syscall.Close(fd)
		buf := make([]byte, 128)
		for !r.quit.Load() {
			n, _, err := syscall.Recvfrom(fd, buf, syscall.MSG_TRUNC)
			if err == syscall.EAGAIN || err == syscall.EINTR {
				continue
			}
			if err != nil {
				return
			}
			n = min(n, len(buf))
			var l4 int
			switch {
			case !v6 && n >= 20 && buf[0]>>4 == 4 && buf[9] == 6:
				l4 = int(buf[0]&0xf) * 4
			case v6 && n >= 40 && buf[0]>>4 == 6 && buf[6] == 6:
				l4 = 40
			default:
				continue
			}
			if n >= l4+14 && buf[l4+13]&0x04 != 0 {
				r.n.Add(1)
			}
		}
	}()
	t.Cleanup(r.stop)
	return r
}

func (r *rstCounter) stop() {
	r.quit.Store(true)
	<-r.done
}
