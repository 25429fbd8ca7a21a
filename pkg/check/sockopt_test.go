package check

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/pkg/config"
)

// freePort returns a loopback port nothing is bound to (TCP and UDP).
func freePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if pc, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			pc.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

// bind_port and bindto: the server sees each check come from that address
// and port, twice in a row (the second check binds the port again right
// after the first connection closed).
func TestBindPortAndBindTo(t *testing.T) {
	tcpL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer tcpL.Close()
	seen := make(chan string, 16)
	go func() {
		for {
			c, err := tcpL.Accept()
			if err != nil {
				return
			}
			seen <- c.RemoteAddr().String()
			c.Close()
		}
	}()
	web := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen <- r.RemoteAddr
		fmt.Fprint(w, "ok")
	})}
	webL, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go web.Serve(webL)
	defer web.Close()
	udpPC, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer udpPC.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := udpPC.ReadFrom(buf)
			if err != nil {
				return
			}
			seen <- from.String()
			udpPC.WriteTo(buf[:n], from)
		}
	}()
	dnsAddr := dnsServer(t)

	at := func(hostport string) Target {
		tg := target(t, hostport, time.Second)
		tg.BindTo = netip.MustParseAddr("127.0.0.2")
		tg.BindPort = freePort(t)
		return tg
	}
	cases := []struct {
		name string
		make func(Target) Checker
		addr string
		echo bool // the server reports the source (DNS: checked by the reply only)
	}{
		{"TCP_CHECK", func(tg Target) Checker { return &TCP{T: tg} }, tcpL.Addr().String(), true},
		{"HTTP_GET", func(tg Target) Checker { return &HTTP{T: tg, URLs: []URL{{Path: "/"}}} }, webL.Addr().String(), true},
		{"UDP_CHECK", func(tg Target) Checker {
			return &UDP{T: tg, Payload: []byte("hi"), RequireReply: true, Pattern: "6869"}
		}, udpPC.LocalAddr().String(), true},
		{"DNS_CHECK", func(tg Target) Checker { return &DNS{T: tg, Type: "SOA", QName: "."} }, dnsAddr, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tg := at(c.addr)
			want := netip.AddrPortFrom(tg.BindTo, uint16(tg.BindPort)).String()
			for i := range 2 {
				r := c.make(tg).Check(context.Background())
				// The HTTP client releases its socket a moment after the
				// check returns (a goroutine of net/http still holds it), so
				// an immediate rebind may find the tuple busy. A TIME_WAIT
				// left behind would stay for a minute and still fail here.
				for try := 0; r.Err != nil && strings.Contains(r.Err.Error(), "cannot assign requested address") && try < 50; try++ {
					time.Sleep(10 * time.Millisecond)
					r = c.make(tg).Check(context.Background())
				}
				if r.Err != nil {
					t.Fatalf("check %d: %v", i, r.Err)
				}
				if !c.echo {
					continue
				}
				select {
				case got := <-seen:
					if got != want {
						t.Fatalf("check %d came from %s, want %s", i, got, want)
					}
				case <-time.After(2 * time.Second):
					t.Fatalf("check %d: the server saw nothing", i)
				}
			}
		})
	}

	// bind_port alone: the wildcard address with that port.
	tg := target(t, tcpL.Addr().String(), time.Second)
	tg.BindPort = freePort(t)
	if r := (&TCP{T: tg}).Check(context.Background()); r.Err != nil {
		t.Fatal(r.Err)
	}
	if got := <-seen; !strings.HasSuffix(got, fmt.Sprintf(":%d", tg.BindPort)) {
		t.Fatalf("bind_port alone: came from %s, want port %d", got, tg.BindPort)
	}
}

// bind_if is applied to every checker's socket: an interface that does not
// exist makes the attempt fail (SO_BINDTODEVICE), PING_CHECK included.
func TestBindIfApplied(t *testing.T) {
	tg := target(t, closedPort(t), time.Second)
	tg.BindIf = "nosuchif0"
	for _, c := range []Checker{&TCP{T: tg}, &UDP{T: tg, Payload: []byte("x")}, &DNS{T: tg, Type: "A", QName: "x."},
		&HTTP{T: tg, URLs: []URL{{Path: "/"}}}, &SMTP{T: tg, Helo: "h"}, &Ping{T: tg}} {
		r := c.Check(context.Background())
		if _, ping := c.(*Ping); ping && os.Geteuid() != 0 && r.Err != nil && strings.Contains(r.Err.Error(), "icmp socket") {
			t.Logf("PING_CHECK not covered: no raw or ping socket for this user: %v", r.Err)
			continue
		}
		if r.Err == nil || !strings.Contains(r.Err.Error(), "no such device") {
			t.Errorf("%s with bind_if nosuchif0: %v", c.Name(), r.Err)
		}
	}
}

// fwmark needs CAP_NET_ADMIN: without it the attempt fails naming SO_MARK
// (keepalived fails the connection too), never silently unmarked.
func TestFWMarkWithoutPrivilege(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("running as root: SO_MARK is allowed (TestFWMarkSteersRouting covers it)")
	}
	tg := target(t, closedPort(t), time.Second)
	tg.FWMark = 7
	r := (&TCP{T: tg}).Check(context.Background())
	if r.Err == nil || !strings.Contains(r.Err.Error(), "SO_MARK") {
		t.Fatalf("fwmark without CAP_NET_ADMIN: %v", r.Err)
	}
}

// The config's connection options reach the checker's target.
func TestNewCarriesSocketOptions(t *testing.T) {
	rs := &config.RealServer{Addr: netip.MustParseAddr("10.0.0.5"), Port: 80}
	c, err := New(&config.Checker{Type: "HTTP_GET", BindTo: netip.MustParseAddr("10.0.0.1"), BindPort: 999, BindIf: "eth1",
		FWMark: 42, FastRecovery: true, URLs: []*config.URL{{Path: "/"}}}, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	h := c.(*HTTP)
	if h.T.BindPort != 999 || h.T.FWMark != 42 || h.T.BindIf != "eth1" || h.T.BindTo.String() != "10.0.0.1" || !h.Fast {
		t.Fatalf("checker %+v", h)
	}
}

// fwmark on a real socket: the director reaches the real server only
// through a policy route selected by mark 77. A check with fwmark 77 passes;
// the same check without it finds no route.
func TestFWMarkSteersRouting(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	dir, real := l.NS("dir"), l.NS("real")
	l.Veth(dir, "eth0", real, "eth0")
	dir.IP("addr", "add", "10.88.0.1/32", "dev", "eth0")
	dir.IP("route", "add", "10.88.1.2/32", "dev", "eth0", "src", "10.88.0.1", "table", "100")
	dir.IP("rule", "add", "fwmark", "77", "lookup", "100")
	real.IP("addr", "add", "10.88.1.2/32", "dev", "eth0")
	real.IP("route", "add", "10.88.0.1/32", "dev", "eth0")

	var ln net.Listener
	if err := real.Do(func() (err error) { ln, err = net.Listen("tcp", "10.88.1.2:80"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	var udpPC net.PacketConn
	if err := real.Do(func() (err error) { udpPC, err = net.ListenPacket("udp", "10.88.1.2:9000"); return err }); err != nil {
		t.Fatal(err)
	}
	defer udpPC.Close()
	go func() {
		buf := make([]byte, 512)
		for {
			n, from, err := udpPC.ReadFrom(buf)
			if err != nil {
				return
			}
			udpPC.WriteTo(buf[:n], from)
		}
	}()
	tg := func(port int, mark uint32) Target {
		return Target{Addr: netip.MustParseAddr("10.88.1.2"), Port: port, Timeout: 2 * time.Second, FWMark: mark}
	}
	checkers := map[string]func(mark uint32) Checker{
		"TCP_CHECK":  func(m uint32) Checker { return &TCP{T: tg(80, m)} },
		"UDP_CHECK":  func(m uint32) Checker { return &UDP{T: tg(9000, m), Payload: []byte("hi"), RequireReply: true} },
		"PING_CHECK": func(m uint32) Checker { return &Ping{T: tg(0, m)} },
	}
	for name, mk := range checkers {
		check := func(mark uint32) (r Result) {
			if err := dir.Do(func() error { r = mk(mark).Check(context.Background()); return nil }); err != nil {
				t.Fatal(err)
			}
			return r
		}
		if r := check(77); r.Err != nil {
			t.Errorf("%s with fwmark 77: %v", name, r.Err)
		}
		if r := check(0); r.Err == nil || !strings.Contains(r.Err.Error(), "unreachable") {
			t.Errorf("%s without fwmark: %v, want network unreachable", name, r.Err)
		}
	}
}

// bind_if on a real socket: the same address answers behind two
// interfaces; the main table routes it via eth1 (nothing listens there),
// bind_if eth0 reaches the server behind eth0.
func TestBindIfSteersInterface(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	dir, a, b := l.NS("dir"), l.NS("a"), l.NS("b")
	l.Veth(dir, "eth0", a, "eth0")
	l.Veth(dir, "eth1", b, "eth0")
	dir.IP("addr", "add", "10.89.0.1/24", "dev", "eth0")
	dir.IP("addr", "add", "10.89.1.1/24", "dev", "eth1")
	dir.IP("route", "add", "10.89.9.9/32", "dev", "eth1")
	for _, ns := range []*lab.NS{a, b} {
		ns.IP("addr", "add", "10.89.9.9/32", "dev", "eth0")
		ns.IP("route", "add", "10.89.0.0/16", "dev", "eth0")
	}
	var ln net.Listener
	if err := a.Do(func() (err error) { ln, err = net.Listen("tcp", "10.89.9.9:80"); return err }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	tg := Target{Addr: netip.MustParseAddr("10.89.9.9"), Port: 80, Timeout: 2 * time.Second}
	check := func(ifname string) (r Result) {
		tg.BindIf = ifname
		if err := dir.Do(func() error { r = (&TCP{T: tg}).Check(context.Background()); return nil }); err != nil {
			t.Fatal(err)
		}
		return r
	}
	if r := check(""); r.Err == nil {
		t.Fatal("without bind_if the check reached the server behind eth0: the test proves nothing")
	}
	if r := check("eth0"); r.Err != nil {
		t.Fatalf("bind_if eth0: %v", r.Err)
	}
}
