package e2e

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// Shared by the NAT and TUN master-dies scenarios (fault_nat_test.go,
// fault_tun_test.go): the director pair reuses flowLab's start, waitServing
// and metric; what is new here is traffic that outlives the failover by
// construction (streams paced in time, not only in bytes) and UDP
// request/response, where the answer's source is what is checked.

const (
	pairChunk     = 4 << 10
	pairPace      = 8 * time.Millisecond // 4 KiB per 8 ms ≈ 0.5 MB/s per stream
	pairSize      = 3 << 20              // ≈ 6 s per stream: it spans the failover
	pairUDPEvery  = 2 * time.Millisecond // 500 requests/s
	pairUDPCount  = 4000                 // 8 s
	pairStreamMax = 30 * time.Second
)

// servePacedReal serves raw TCP on addr: a request line "SEED SIZE\n" is
// answered with the real's name on a line, then SIZE bytes of the seed's
// pattern (patternByte), pairChunk every pairPace. Anything else (a health
// check's connect and close) is dropped.
func servePacedReal(t *testing.T, ns *lab.NS, addr, name string) {
	t.Helper()
	var l net.Listener
	if err := ns.Do(func() (err error) { l, err = net.Listen("tcp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(pairStreamMax))
				var seed, size int
				if _, err := fmt.Fscanf(bufio.NewReader(c), "%d %d\n", &seed, &size); err != nil || size <= 0 || size > 64<<20 {
					return
				}
				if _, err := fmt.Fprintf(c, "%s\n", name); err != nil {
					return
				}
				chunk := make([]byte, pairChunk)
				for sent := 0; sent < size; {
					b := chunk[:min(len(chunk), size-sent)]
					for i := range b {
						b[i] = patternByte(seed, sent+i)
					}
					if _, err := c.Write(b); err != nil {
						return
					}
					sent += len(b)
					time.Sleep(pairPace)
				}
			}()
		}
	}()
}

// pacedStream is one established connection through the VIP. Its reader
// checks every byte against the pattern and records how far it got and
// the longest silence between two reads (the stall the failover caused).
type pacedStream struct {
	from, real string
	seed, size int

	mu       sync.Mutex
	n        int
	last     time.Time
	maxStall time.Duration
	stallEnd time.Time
	err      error
	done     chan struct{}
}

func (s *pacedStream) progress() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n
}

// openPacedStream connects from ns to addr (VIP:vport) and starts reading.
func openPacedStream(t *testing.T, ns *lab.NS, addr string, seed, size int) *pacedStream {
	t.Helper()
	var c net.Conn
	if err := ns.Do(func() (err error) { c, err = net.DialTimeout("tcp", addr, 3*time.Second); return err }); err != nil {
		t.Fatalf("stream %d from %s: %v", seed, ns.Tag, err)
	}
	t.Cleanup(func() { c.Close() })
	c.SetDeadline(time.Now().Add(pairStreamMax))
	fmt.Fprintf(c, "%d %d\n", seed, size)
	br := bufio.NewReader(c)
	name, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("stream %d from %s: no greeting: %v", seed, ns.Tag, err)
	}
	s := &pacedStream{from: ns.Tag, real: strings.TrimSpace(name), seed: seed, size: size, last: time.Now(), done: make(chan struct{})}
	go func() {
		defer close(s.done)
		buf := make([]byte, 32<<10)
		for {
			m, err := br.Read(buf)
			now := time.Now()
			s.mu.Lock()
			for i := 0; i < m; i++ {
				if buf[i] != patternByte(seed, s.n+i) {
					s.err = fmt.Errorf("byte %d differs", s.n+i)
					s.mu.Unlock()
					return
				}
			}
			if m > 0 {
				if gap := now.Sub(s.last); gap > s.maxStall {
					s.maxStall, s.stallEnd = gap, now
				}
				s.n += m
				s.last = now
			}
			if s.n == size || err != nil {
				if s.n != size {
					s.err = err
				}
				s.mu.Unlock()
				return
			}
			s.mu.Unlock()
		}
	}()
	return s
}

// udpEchoReal answers every datagram on addr with its payload.
func udpEchoReal(t *testing.T, ns *lab.NS, addr string) {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", addr); return err }); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
}

// udpExchange is a constant-rate request/response stream: numbered
// requests to the VIP from an unconnected socket, so an answer from any
// other source is received and counted (wrong), not filtered by the kernel.
type udpExchange struct {
	want netip.AddrPort
	sent int
	done chan struct{}

	mu     sync.Mutex
	seen   map[uint32]time.Time
	wrong  map[string]int
	sendAt []time.Time
}

func startUDPExchange(t *testing.T, ns *lab.NS, local string, vip netip.AddrPort, count int, every time.Duration) *udpExchange {
	t.Helper()
	var pc net.PacketConn
	if err := ns.Do(func() (err error) { pc, err = net.ListenPacket("udp", local); return err }); err != nil {
		t.Fatal(err)
	}
	u := &udpExchange{want: vip, done: make(chan struct{}), seen: map[uint32]time.Time{}, wrong: map[string]int{}, sendAt: make([]time.Time, count)}
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			ap := from.(*net.UDPAddr).AddrPort()
			u.mu.Lock()
			if netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()) != vip || n < 4 {
				u.wrong[from.String()]++
			} else if _, dup := u.seen[binary.BigEndian.Uint32(buf)]; !dup {
				u.seen[binary.BigEndian.Uint32(buf)] = time.Now()
			}
			u.mu.Unlock()
		}
	}()
	go func() {
		defer close(u.done)
		defer func() { time.Sleep(500 * time.Millisecond); pc.Close() }() // the last answers land
		tick := time.NewTicker(every)
		defer tick.Stop()
		dst := net.UDPAddrFromAddrPort(vip)
		b := make([]byte, 64)
		for i := 0; i < count; i++ {
			<-tick.C
			binary.BigEndian.PutUint32(b, uint32(i))
			u.mu.Lock()
			u.sendAt[i] = time.Now()
			u.mu.Unlock()
			if _, err := pc.WriteTo(b, dst); err == nil {
				u.sent++
			}
		}
	}()
	return u
}

// result waits for the exchange and returns the answers from the VIP, the
// longest run of unanswered requests and the time it spans, and the
// answers from anywhere else.
func (u *udpExchange) result(t *testing.T) (answered, hole int, holeSpan time.Duration, wrong map[string]int) {
	t.Helper()
	select {
	case <-u.done:
	case <-time.After(time.Duration(len(u.sendAt))*pairUDPEvery*3 + 10*time.Second):
		t.Fatal("UDP exchange did not finish")
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	keys := make([]int, 0, len(u.seen))
	for k := range u.seen {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	prev := -1
	for _, k := range append(keys, len(u.sendAt)) {
		if h := k - prev - 1; h > hole {
			hole = h
			if k < len(u.sendAt) {
				holeSpan = u.sendAt[k].Sub(u.sendAt[prev+1])
			} else {
				holeSpan = u.sendAt[k-1].Sub(u.sendAt[prev+1])
			}
		}
		prev = k
	}
	return len(u.seen), hole, holeSpan, u.wrong
}

// directorPair is flowLab's pair of directors (start, waitServing, metric)
// in a lab the NAT and TUN scenarios build themselves.
func directorPair(l *lab.Lab, subnet int, vip string, cl *lab.NS) *flowLab {
	f := &flowLab{l: l, subnet: subnet, vip: vip, cl: cl}
	for i := range f.dirs {
		f.dirs[i] = l.NS(fmt.Sprintf("d%d", i+1))
		f.bpffs[i] = filepath.Join(l.BPFFS(), "halo")
	}
	return f
}

// killMaster is what the master's death looks like to the network: halod
// SIGKILLed (its pinned XDP program would go on forwarding on its own) and
// every link of the director down.
func killMaster(t *testing.T, f *flowLab, links ...string) {
	t.Helper()
	if err := f.halods[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for _, ifname := range links {
		f.dirs[0].IP("link", "set", ifname, "down")
	}
}

// pairOutage is how long the VIP may be nowhere: Master_Down_Interval at
// priority 100, advert_int 0.1 s (3 × 0.1 + (256-100)/256 × 0.1 ≈ 0.36 s)
// plus 2 s for the shared machine.
const pairOutage = 360*time.Millisecond + 2*time.Second

// pairStallLimit bounds a stream's longest silence: the sender's
// retransmission timer doubles while the VIP is nowhere, so its first
// retransmission after the takeover comes at most about one outage later
// (plus the 200 ms minimum RTO twice). A stream that stalls longer was not
// carried by the new master when it took over but only later, when
// something else (a neighbour entry, a timer) happened to fix it.
const pairStallLimit = 2*pairOutage + 400*time.Millisecond

// awaitStreams waits for every stream and fails on any that did not
// deliver every byte in order or stalled longer than pairStallLimit; it
// logs per stream the bytes received before the takeover and the longest
// stall.
func awaitStreams(t *testing.T, streams []*pacedStream, atTakeover []int) {
	t.Helper()
	var worst time.Duration
	complete := 0
	for i, s := range streams {
		// Errors, not fatal: the resets and UDP figures that follow say
		// what happened to a stream that broke.
		select {
		case <-s.done:
		case <-time.After(pairStreamMax):
			t.Errorf("stream %d (%s via %s) did not finish: %d of %d bytes", s.seed, s.from, s.real, s.progress(), s.size)
			continue
		}
		if s.err != nil || s.n != s.size {
			t.Errorf("stream %d (%s via %s) got %d of %d bytes: %v", s.seed, s.from, s.real, s.n, s.size, s.err)
			continue
		}
		// "Bytes continue": the stream was established before the kill and
		// received most of its bytes after it, through the new master.
		if atTakeover[i] == 0 || atTakeover[i] >= s.size/2 {
			t.Fatalf("stream %d had %d of %d bytes at the takeover: the failover did not happen mid-stream", s.seed, atTakeover[i], s.size)
		}
		complete++
		worst = max(worst, s.maxStall)
		t.Logf("stream %d from %s on %s: %d bytes byte-exact, %d before the takeover, %d after; longest stall %v",
			s.seed, s.from, s.real, s.n, atTakeover[i], s.n-atTakeover[i], s.maxStall.Round(time.Millisecond))
		if s.maxStall > pairStallLimit {
			t.Errorf("stream %d from %s on %s stalled %v (limit %v): the new master did not carry it from the takeover on",
				s.seed, s.from, s.real, s.maxStall.Round(time.Millisecond), pairStallLimit)
		}
	}
	t.Logf("TCP: %d of %d streams complete, longest stall among them %v", complete, len(streams), worst.Round(time.Millisecond))
}

// xdpCount reads one halo_xdp_packets_total reason from halod in ns.
func xdpCount(t *testing.T, ns *lab.NS, reason string) float64 {
	t.Helper()
	var v float64
	for _, line := range strings.Split((&drLab{dir: ns}).scrape(t), "\n") {
		if strings.HasPrefix(line, `halo_xdp_packets_total{reason="`+reason+`"}`) {
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
		}
	}
	return v
}

// neighWatch is a neighbour entry that must move to the new master's MAC
// (its GARP) after the takeover: ns's entry for ip.
type neighWatch struct {
	ns      *lab.NS
	ip, mac string
}

// masterDies is the scenario the NAT and TUN tests share. The pair is
// started and d1 (priority 150) holds every VIP in vips; each client opens
// two paced TCP streams to tcpAddr and runs a UDP request/response stream
// to udpAddr; d1 dies (killMaster on links); d2 must hold every VIP, the
// neighbours in follow must move to it, every stream must finish
// byte-exact with most of its bytes after the kill, no TCP reset may cross
// a client's interface, and UDP answers must come from udpAddr only, lost
// in at most one hole per client no longer than Master_Down_Interval plus
// slack.
type masterDies struct {
	f       *flowLab
	links   []string
	vips    []string
	follow  []neighWatch
	clients []*lab.NS
	tcpAddr string
	udpAddr netip.AddrPort
	fam     pairFamily
	// onTakeover, when set, runs once d2 holds the VIPs and the
	// neighbours follow (diagnostics of the new master's state).
	onTakeover func(t *testing.T)
	// tcpOnly clients send no UDP: nothing but their TCP streams' ACKs
	// reaches the new master from them (no flow's first packet to note
	// their next hop by), so their replies need the resolved neighbour.
	tcpOnly []*lab.NS
}

func (m *masterDies) run(t *testing.T) {
	t.Helper()
	f := m.f
	f.start(t, 0)
	f.start(t, 1)
	f.waitServing(t, 0)
	f.waitServing(t, 1)
	// Runs before the halods stop (cleanups run last-in first-out).
	t.Cleanup(func() {
		if t.Failed() {
			var reals []string
			if st := haloctlStatus(t, f.socks[1]); st != nil {
				for _, vs := range st.VirtualServers {
					for _, r := range vs.Reals {
						reals = append(reals, fmt.Sprintf("%s up=%v %s", r.Address, r.Up, r.LastError))
					}
				}
			}
			addrs, _ := f.dirs[1].Exec("ip", "-o", "addr", "show", "dev", "eth0")
			t.Logf("d2 reals: %s\nd2 eth0:\n%s\nd2 data plane:\n%s", strings.Join(reals, "; "), addrs,
				grepLines((&drLab{dir: f.dirs[1]}).scrape(t), "halo_xdp_packets"))
		}
	})
	holdsAll := func(ns *lab.NS) bool {
		for _, a := range m.vips {
			if !hasAddr(ns, a) {
				return false
			}
		}
		return true
	}
	if waitFor(10*time.Second, func() bool { return holdsAll(f.dirs[0]) }) < 0 {
		t.Fatalf("d1 never held %v:\n%s", m.vips, f.halods[0].Output())
	}
	for _, a := range m.vips {
		if hasAddr(f.dirs[1], a) {
			t.Fatalf("d2 holds %s while d1 is master", a)
		}
	}
	var rsts []*rstCounter
	var udps []*udpExchange
	var streams []*pacedStream
	var udpFrom []string
	for ci, c := range m.clients {
		rsts = append(rsts, m.fam.resets(t, c))
		if !slices.Contains(m.tcpOnly, c) {
			udps = append(udps, startUDPExchange(t, c, ":0", m.udpAddr, pairUDPCount, pairUDPEvery))
			udpFrom = append(udpFrom, c.Tag)
		}
		for k := 0; k < 2; k++ {
			streams = append(streams, openPacedStream(t, c, m.tcpAddr, 2*ci+k, pairSize))
		}
	}
	time.Sleep(1500 * time.Millisecond)
	atKill := make([]int, len(streams))
	for i, s := range streams {
		atKill[i] = s.progress()
	}
	// Only entries that exist can be seen to move (a real whose replies
	// never went through the gateway has none).
	var watch []neighWatch
	for _, w := range m.follow {
		if neighMAC(w.ns, w.ip) != "" {
			watch = append(watch, w)
		}
	}
	killMaster(t, f, m.links...)
	took := waitFor(10*time.Second, func() bool { return holdsAll(f.dirs[1]) })
	if took < 0 {
		t.Fatalf("d2 never took %v:\n%s", m.vips, f.halods[1].Output())
	}
	var follows []string
	for _, w := range watch {
		d := waitFor(5*time.Second, func() bool { return neighMAC(w.ns, w.ip) == w.mac })
		if d < 0 {
			t.Fatalf("%s's neighbour entry for %s is %q, not d2's %s", w.ns.Tag, w.ip, neighMAC(w.ns, w.ip), w.mac)
		}
		follows = append(follows, fmt.Sprintf("%s→%s %v", w.ns.Tag, w.ip, d.Round(time.Millisecond)))
	}
	t.Logf("VIPs %v on d2 %v after the kill; neighbours on d2 after %s more", m.vips, took.Round(time.Millisecond), strings.Join(follows, ", "))
	if m.onTakeover != nil {
		m.onTakeover(t)
	}
	awaitStreams(t, streams, atKill)
	// The loss must be one hole around the kill, no longer than the
	// outage: nothing lost before it or after the takeover.
	limit := pairOutage
	for ui, u := range udps {
		got, hole, span, wrong := u.result(t)
		t.Logf("UDP from %s: sent %d, answered from %s %d, lost %d (longest hole %d requests, %v); answers from elsewhere: %v",
			udpFrom[ui], u.sent, m.udpAddr, got, u.sent-got, hole, span.Round(time.Millisecond), wrong)
		if len(wrong) != 0 {
			t.Errorf("UDP answers to %s came from %v, not only %s", udpFrom[ui], wrong, m.udpAddr)
		}
		if u.sent != pairUDPCount || got == 0 {
			t.Errorf("UDP from %s: sent %d of %d, answered %d", udpFrom[ui], u.sent, pairUDPCount, got)
		}
		if u.sent-got != hole || span > limit {
			t.Errorf("UDP from %s lost %d requests, longest hole %d (%v): want one hole of at most %v", udpFrom[ui], u.sent-got, hole, span, limit)
		}
	}
	for ci, r := range rsts {
		r.stop()
		t.Logf("TCP resets on %s's interface: %d", m.clients[ci].Tag, r.n.Load())
		if r.n.Load() != 0 {
			t.Errorf("%d TCP resets crossed %s's interface across the failover", r.n.Load(), m.clients[ci].Tag)
		}
	}
	// A new connection on the new master.
	for _, c := range m.clients {
		s := openPacedStream(t, c, m.tcpAddr, 99, pairChunk)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
		}
		if s.err != nil || s.progress() != pairChunk {
			t.Errorf("a new connection from %s through d2: %d bytes, %v", c.Tag, s.progress(), s.err)
		}
	}
}

// pairFamily is the address plan of a NAT or TUN failover lab: network n
// (0: the clients' and the VIP's, 1: the NAT reals', 9: behind the
// router), host h.
type pairFamily struct {
	v6     bool
	subnet int
}

// remoteClient is a router on the VIP's network (.254) with a client (rc)
// behind it on network 9, checksum offload off on every end.
func (p pairFamily) remoteClient(t *testing.T, l *lab.Lab, sw *lab.Switch) (rt, rc *lab.NS) {
	rt, rc = l.NS("rt"), l.NS("rc")
	sw.Plug(rt, "eth0")
	l.Veth(rt, "eth1", rc, "eth0")
	rt.Addr("eth0", p.cidr(0, 254))
	rt.Addr("eth1", p.cidr(9, 1))
	p.forwarding(t, rt, true)
	rc.Addr("eth0", p.cidr(9, 2))
	rc.Route("default", p.ip(9, 1))
	for _, e := range []struct {
		ns     *lab.NS
		ifname string
	}{{rt, "eth0"}, {rt, "eth1"}, {rc, "eth0"}} {
		e.ns.TxOff(e.ifname) // docs/lab.md#checksum-offload
	}
	return rt, rc
}

// vipOpts are the options of the pair's VIPs: IPv6 VIPs are deprecated
// (preferred_lft 0) so a director does not take its VIP as the source of
// its own traffic, health checks included: a DR or TUN real holding the VIP
// would answer such a check to itself (docs/keepalived.md#ipv6-vip-source-address).
func (p pairFamily) vipOpts() string {
	if p.v6 {
		return " preferred_lft 0"
	}
	return ""
}

func (p pairFamily) ip(n, h int) string {
	s := fmt.Sprintf("10.%d.%d.%d", p.subnet, n, h)
	if p.v6 {
		s = fmt.Sprintf("fd%02x:%d::%d", p.subnet, n, h)
	}
	return netip.MustParseAddr(s).String() // as ip(8) prints it
}

func (p pairFamily) cidr(n, h int) string {
	if p.v6 {
		return p.ip(n, h) + "/64"
	}
	return p.ip(n, h) + "/24"
}

func (p pairFamily) network(n int) string {
	if p.v6 {
		return fmt.Sprintf("fd%02x:%d::/64", p.subnet, n)
	}
	return fmt.Sprintf("10.%d.%d.0/24", p.subnet, n)
}

func (p pairFamily) forwarding(t *testing.T, ns *lab.NS, on bool) {
	t.Helper()
	key, v := "net.ipv4.ip_forward", "0"
	if p.v6 {
		key = "net.ipv6.conf.all.forwarding"
	}
	if on {
		v = "1"
	}
	ns.Sysctl(key, v)
	if got := strings.TrimSpace(ns.MustExec("sysctl", "-n", key)); got != v {
		t.Fatalf("%s in %s: %s, want %s", key, ns.Tag, got, v)
	}
}

// resets counts TCP RSTs crossing ns's eth0 in the plan's family.
func (p pairFamily) resets(t *testing.T, ns *lab.NS) *rstCounter {
	t.Helper()
	return countResetsOf(t, ns, "eth0", p.v6)
}
