package check

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// stalledListener is a loopback listener whose accept queue is full and
// never drained: the kernel drops further SYNs, so a connect to it stays in
// flight until it times out, or until drain makes room and the client's SYN
// retransmission (after 1 s) gets through.
func stalledListener(t *testing.T) (addr netip.AddrPort, drain func()) {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 0); err != nil { // room for one connection
		t.Fatal(err)
	}
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	addr = netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(sa.(*unix.SockaddrInet4).Port))
	filler, err := net.Dial("tcp", addr.String()) // fills the queue
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { filler.Close() })
	return addr, func() {
		nfd, _, err := unix.Accept(fd)
		if err == nil {
			unix.Close(nfd)
		}
	}
}

// fillQueue leaves the stalled listener's accept queue full: a dial that
// gets in stays queued (kept open until the test ends); one that times out
// found it full already.
func fillQueue(t *testing.T, addr netip.AddrPort) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 200*time.Millisecond)
	if err == nil {
		t.Cleanup(func() { c.Close() })
		return
	}
	if ne, ok := err.(net.Error); !ok || !ne.Timeout() {
		t.Fatalf("filling the stalled listener's queue: %v", err)
	}
}

// A server on this host has answered before connect() returns: the check
// completes without the poller, and the connection is closed with a reset.
func TestTCPConnectFastPathResets(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	// A busy machine can defer the handshake to ksoftirqd (in the
	// benchmark, 1 or 2 connects in 50,000): three tries.
	fast := tcpFastConnects.Load()
	for try := 0; try < 3 && tcpFastConnects.Load() == fast; try++ {
		if r := (&TCP{T: Target{Addr: ap.Addr(), Port: int(ap.Port()), Timeout: 5 * time.Second}}).Check(context.Background()); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if tcpFastConnects.Load() != fast+1 {
		t.Fatalf("fast path taken %d times in 3 loopback checks", tcpFastConnects.Load()-fast)
	}
	c, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 1))
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Fatalf("server read after the check closed: %v, want a reset (SO_LINGER 0)", err)
	}
}

// A connect still in flight is waited for, bounded by connect_timeout; the
// error reads as net.Dialer's did and is a timeout.
func TestTCPConnectTimesOut(t *testing.T) {
	addr, _ := stalledListener(t)
	polled := tcpPolledConnects.Load()
	start := time.Now()
	r := (&TCP{T: Target{Addr: addr.Addr(), Port: int(addr.Port()), Timeout: 300 * time.Millisecond}}).Check(context.Background())
	took := time.Since(start)
	if r.Err == nil || !errors.Is(r.Err, os.ErrDeadlineExceeded) || !strings.Contains(r.Err.Error(), "dial tcp "+addr.String()+": i/o timeout") {
		t.Fatalf("err %v, want dial tcp %s: i/o timeout", r.Err, addr)
	}
	var ne net.Error
	if !errors.As(r.Err, &ne) || !ne.Timeout() {
		t.Fatalf("err %v is not a net.Error timeout", r.Err)
	}
	if took < 250*time.Millisecond || took > 5*time.Second {
		t.Fatalf("took %v for a 300ms connect_timeout", took)
	}
	if tcpPolledConnects.Load() != polled+1 {
		t.Fatal("the stalled connect did not go through the poller")
	}
}

// A connect that completes while the check waits in the poller is a
// success.
func TestTCPConnectPolledSuccess(t *testing.T) {
	addr, drain := stalledListener(t)
	time.AfterFunc(200*time.Millisecond, drain) // the SYN retransmitted at 1 s gets in
	polled := tcpPolledConnects.Load()
	if r := (&TCP{T: Target{Addr: addr.Addr(), Port: int(addr.Port()), Timeout: 5 * time.Second}}).Check(context.Background()); r.Err != nil {
		t.Fatal(r.Err)
	}
	if tcpPolledConnects.Load() != polled+1 {
		t.Fatal("the check did not wait in the poller")
	}
}

func TestTCPConnectRefusedReadsLikeDialer(t *testing.T) {
	port := freePort(t)
	r := (&TCP{T: Target{Addr: netip.MustParseAddr("127.0.0.1"), Port: port, Timeout: time.Second}}).Check(context.Background())
	want := "dial tcp 127.0.0.1:" + strconv.Itoa(port) + ": connect: connection refused"
	if r.Err == nil || r.Err.Error() != want || !errors.Is(r.Err, syscall.ECONNREFUSED) {
		t.Fatalf("err %v, want %q (errors.Is ECONNREFUSED)", r.Err, want)
	}
}

// IPv6 and an IPv4-mapped address (which the kernel must see as IPv4).
func TestTCPConnectFamilies(t *testing.T) {
	for _, network := range []string{"tcp4", "tcp6"} {
		l, err := net.Listen(network, map[string]string{"tcp4": "127.0.0.1:0", "tcp6": "[::1]:0"}[network])
		if err != nil {
			t.Logf("%s: no loopback listener here: %v", network, err)
			continue
		}
		defer l.Close()
		ap := l.Addr().(*net.TCPAddr).AddrPort()
		a := ap.Addr()
		if a.Is4() {
			a = netip.AddrFrom16(a.As16()) // ::ffff:127.0.0.1
		}
		if r := (&TCP{T: Target{Addr: a, Port: int(ap.Port()), Timeout: 5 * time.Second}}).Check(context.Background()); r.Err != nil {
			t.Errorf("%s %s: %v", network, a, r.Err)
		}
	}
}

// A zone names an interface; a numeric zone is the index itself.
func TestIfIndex(t *testing.T) {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no IPv6 socket: %v", err)
	}
	defer unix.Close(fd)
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ifIndex(fd, "lo"); err != nil || got != uint32(lo.Index) {
		t.Fatalf("ifIndex(lo) = %d, %v; want %d", got, err, lo.Index)
	}
	if got, err := ifIndex(fd, "17"); err != nil || got != 17 {
		t.Fatalf("ifIndex(17) = %d, %v", got, err)
	}
	if _, err := ifIndex(fd, "nosuchif0"); err == nil || !strings.Contains(err.Error(), "no such device") {
		t.Fatalf("ifIndex(nosuchif0): %v", err)
	}
	sa, err := sockaddr(fd, netip.MustParseAddr("fe80::1%lo"), 80)
	if err != nil || sa.(*unix.SockaddrInet6).ZoneId != uint32(lo.Index) || sa.(*unix.SockaddrInet6).Port != 80 {
		t.Fatalf("sockaddr(fe80::1%%lo) = %+v, %v", sa, err)
	}
}

// The raw socket addresses are what the kernel reads: port in network
// byte order, family, scope.
func TestToRaw(t *testing.T) {
	r := toRaw(&unix.SockaddrInet4{Port: 0x1234, Addr: [4]byte{10, 0, 0, 5}})
	p4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(&r.sa))
	port := (*[2]byte)(unsafe.Pointer(&p4.Port))
	if r.len != unix.SizeofSockaddrInet4 || p4.Family != unix.AF_INET || *port != [2]byte{0x12, 0x34} || p4.Addr != [4]byte{10, 0, 0, 5} {
		t.Fatalf("v4 %+v len %d", p4, r.len)
	}
	a6 := netip.MustParseAddr("fe80::7").As16()
	r = toRaw(&unix.SockaddrInet6{Port: 80, Addr: a6, ZoneId: 3})
	p6 := (*unix.RawSockaddrInet6)(unsafe.Pointer(&r.sa))
	port = (*[2]byte)(unsafe.Pointer(&p6.Port))
	if r.len != unix.SizeofSockaddrInet6 || p6.Family != unix.AF_INET6 || *port != [2]byte{0, 80} || p6.Addr != a6 || p6.Scope_id != 3 {
		t.Fatalf("v6 %+v len %d", p6, r.len)
	}
}

// idleTop is the socket the next plain IPv4 check will take.
func idleTop() *tcpSock {
	tcpSocks.mu.Lock()
	defer tcpSocks.mu.Unlock()
	if n := len(tcpSocks.idle[0]); n > 0 {
		return tcpSocks.idle[0][n-1]
	}
	return nil
}

// A plain check's socket is kept and reused in the Scheduler's checks: the
// next check connects from it again, from a new port, and each connection
// ends with a reset.
func TestTCPSocketReused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	tg := Target{Addr: ap.Addr(), Port: int(ap.Port()), Timeout: 5 * time.Second}
	var from []string
	var socks []*tcpSock
	for i := 0; i < 2; i++ {
		if r := (&TCP{T: tg}).Check(reuseSockets(context.Background())); r.Err != nil {
			t.Fatal(r.Err)
		}
		socks = append(socks, idleTop())
		c, err := l.Accept()
		if err != nil {
			t.Fatal(err)
		}
		from = append(from, c.RemoteAddr().String())
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		if _, err := c.Read(make([]byte, 1)); !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("check %d: server read %v, want a reset", i, err)
		}
		c.Close()
	}
	if socks[0] == nil || socks[0] != socks[1] {
		t.Fatalf("pooled sockets %p then %p: the second check did not reuse the first's", socks[0], socks[1])
	}
	if from[0] == from[1] {
		t.Fatalf("both checks came from %s: a reused socket must take a new port", from[0])
	}
	// A failed check does not give its socket back.
	if r := (&TCP{T: Target{Addr: ap.Addr(), Port: freePort(t), Timeout: time.Second}}).Check(reuseSockets(context.Background())); r.Err == nil {
		t.Fatal("check of a closed port passed")
	}
	if idleTop() == socks[1] {
		t.Fatal("the socket of a refused check went back to the pool")
	}
	// Targets with socket options never use the pool.
	before := idleTop()
	tg.BindTo = netip.MustParseAddr("127.0.0.1")
	if r := (&TCP{T: tg}).Check(reuseSockets(context.Background())); r.Err != nil {
		t.Fatal(r.Err)
	}
	if idleTop() != before {
		t.Fatal("a bindto check's socket went to the pool")
	}
	// Nor do checks made outside the Scheduler (their thread may be in
	// another network namespace).
	tg.BindTo = netip.Addr{}
	takes := tcpPoolTakes.Load()
	if r := (&TCP{T: tg}).Check(context.Background()); r.Err != nil {
		t.Fatal(r.Err)
	}
	if tcpPoolTakes.Load() != takes || idleTop() != before {
		t.Fatal("a check outside the Scheduler used the pool")
	}
}

// A pooled socket that once waited in the poller stays registered there;
// its next waits still wait (an idle socket's stale readiness is not a
// result) and time out at connect_timeout, and it still connects.
func TestTCPPooledSocketWaitsAgain(t *testing.T) {
	addr, drain := stalledListener(t)
	time.AfterFunc(200*time.Millisecond, drain)
	tg := Target{Addr: addr.Addr(), Port: int(addr.Port()), Timeout: 5 * time.Second}
	if r := (&TCP{T: tg}).Check(reuseSockets(context.Background())); r.Err != nil {
		t.Fatal(r.Err)
	}
	s := idleTop()
	if s == nil || s.file == nil {
		t.Fatalf("after a polled check the pool's top is %+v, want a registered socket", s)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	if r := (&TCP{T: Target{Addr: ap.Addr(), Port: int(ap.Port()), Timeout: 5 * time.Second}}).Check(reuseSockets(context.Background())); r.Err != nil {
		t.Fatalf("registered socket, live listener: %v", r.Err)
	}
	if idleTop() != s {
		t.Fatal("the registered socket was not reused")
	}
	// The reset connection usually stays queued until accepted, but on
	// loopback the reset can overtake the handshake's last ACK (another
	// CPU's backlog) and drop the connection before it is queued: fill the
	// queue again rather than count on it.
	fillQueue(t, addr)
	tg.Timeout = 300 * time.Millisecond
	start := time.Now()
	r := (&TCP{T: tg}).Check(reuseSockets(context.Background()))
	if took := time.Since(start); !errors.Is(r.Err, os.ErrDeadlineExceeded) || took < 250*time.Millisecond {
		t.Fatalf("registered socket, stalled listener: %v after %v, want a timeout after 300ms", r.Err, took)
	}
}

// After an attempt that had to wait, the next ones go straight to the
// poller, skipping the immediate second connect(); every retryEvery-th asks
// again, and a fast answer turns the skipping off.
func TestTCPSkipsRetryForFarServers(t *testing.T) {
	addr, drain := stalledListener(t)
	time.AfterFunc(200*time.Millisecond, drain)
	c := &TCP{T: Target{Addr: addr.Addr(), Port: int(addr.Port()), Timeout: 5 * time.Second}}
	if r := c.Check(context.Background()); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := c.skipRetry.Load(); got != retryEvery-1 {
		t.Fatalf("after a wait skipRetry = %d, want %d", got, retryEvery-1)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ap := l.Addr().(*net.TCPAddr).AddrPort()
	c.T = Target{Addr: ap.Addr(), Port: int(ap.Port()), Timeout: 5 * time.Second}
	fast, polled := tcpFastConnects.Load(), tcpPolledConnects.Load()
	for i := 0; i < retryEvery-1; i++ {
		if r := c.Check(context.Background()); r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	if tcpFastConnects.Load() != fast || tcpPolledConnects.Load() != polled+retryEvery-1 {
		t.Fatalf("skipping: fast +%d polled +%d, want +0 and +%d", tcpFastConnects.Load()-fast, tcpPolledConnects.Load()-polled, retryEvery-1)
	}
	if got := c.skipRetry.Load(); got != 0 {
		t.Fatalf("before the %dth attempt skipRetry = %d, want 0 (ask twice)", retryEvery, got)
	}
	if r := c.Check(context.Background()); r.Err != nil {
		t.Fatal(r.Err)
	}
	if tcpFastConnects.Load() == fast {
		// Handshake deferred to ksoftirqd on a busy machine: the attempt
		// waited, rightly.
		t.Logf("the %dth attempt waited in the poller: no fast answer to check", retryEvery)
		return
	}
	if got := c.skipRetry.Load(); got != 0 {
		t.Fatalf("after a fast %dth attempt skipRetry = %d, want 0", retryEvery, got)
	}
}
