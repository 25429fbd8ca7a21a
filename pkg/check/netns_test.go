package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/lab"
)

// The checkers against servers in another network namespace, across a
// bridge, as a director sees its real servers: success, refusal, and
// timeouts toward an address where no host answers.
func TestCheckersAcrossNamespaces(t *testing.T) {
	lab.RequireRoot(t)
	l := lab.New(t)
	sw := l.Switch("sw")
	dir, real := l.NS("dir"), l.NS("real")
	sw.Plug(dir, "eth0")
	sw.Plug(real, "eth0")
	dir.Addr("eth0", "10.86.0.1/24")
	dir.Addr("eth0", "fd00:86::1/64")
	real.Addr("eth0", "10.86.0.2/24")
	real.Addr("eth0", "fd00:86::2/64")

	// Servers live in the real server's namespace.
	var tcpL, smtpL net.Listener
	var dnsPC, udpPC net.PacketConn
	if err := real.Do(func() (err error) {
		if tcpL, err = net.Listen("tcp", "10.86.0.2:80"); err != nil {
			return err
		}
		if smtpL, err = net.Listen("tcp", "10.86.0.2:25"); err != nil {
			return err
		}
		if dnsPC, err = net.ListenPacket("udp", "10.86.0.2:53"); err != nil {
			return err
		}
		udpPC, err = net.ListenPacket("udp", "10.86.0.2:9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface{ Close() error }{tcpL, smtpL, dnsPC, udpPC} {
		defer c.Close()
	}
	go func() {
		for {
			c, err := tcpL.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	go func() {
		for {
			c, err := smtpL.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				fmt.Fprint(c, "220 real ESMTP\r\n")
				buf := make([]byte, 256)
				if n, _ := c.Read(buf); strings.HasPrefix(string(buf[:n]), "HELO") {
					fmt.Fprint(c, "250 hi\r\n")
				}
			}()
		}
	}()
	serveUDP := func(pc net.PacketConn, h func([]byte) []byte) {
		buf := make([]byte, 4096)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := h(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}
	srv := dnsServer(t) // reuse the handler: forward to the loopback one
	go serveUDP(udpPC, func(b []byte) []byte { return append([]byte("re:"), b...) })
	go serveUDP(dnsPC, func(b []byte) []byte {
		c, err := net.Dial("udp", srv)
		if err != nil {
			return nil
		}
		defer c.Close()
		c.Write(b)
		c.SetReadDeadline(time.Now().Add(time.Second))
		out := make([]byte, 4096)
		n, err := c.Read(out)
		if err != nil {
			return nil
		}
		return out[:n]
	})

	tg := func(addr string, port int, to time.Duration) Target {
		return Target{Addr: netip.MustParseAddr(addr), Port: port, Timeout: to}
	}
	cases := []struct {
		name string
		c    Checker
		fail string // "" for success
	}{
		{"tcp ok", &TCP{T: tg("10.86.0.2", 80, time.Second)}, ""},
		{"tcp refused", &TCP{T: tg("10.86.0.2", 81, time.Second)}, "refused"},
		{"tcp timeout (no host)", &TCP{T: tg("10.86.0.99", 80, 500*time.Millisecond)}, "timeout"},
		{"smtp ok", &SMTP{T: tg("10.86.0.2", 25, time.Second), Helo: "dir"}, ""},
		{"dns ok", &DNS{T: tg("10.86.0.2", 53, time.Second), Type: "SOA", QName: "."}, ""},
		{"dns nxdomain", &DNS{T: tg("10.86.0.2", 53, time.Second), Type: "A", QName: "nope.test"}, "rcode"},
		{"udp reply", &UDP{T: tg("10.86.0.2", 9000, time.Second), Payload: []byte("x"), RequireReply: true, Pattern: "72653a"}, ""},
		{"udp port unreachable", &UDP{T: tg("10.86.0.2", 9001, time.Second), Payload: []byte("x")}, "refused"},
		{"ping ok", &Ping{T: tg("10.86.0.2", 0, time.Second)}, ""},
		{"ping6 ok", &Ping{T: tg("fd00:86::2", 0, time.Second)}, ""},
		{"ping timeout (no host)", &Ping{T: tg("10.86.0.99", 0, 500*time.Millisecond)}, "no echo reply"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var r Result
			// The checker's sockets are created on a thread inside the
			// director's namespace.
			if err := dir.Do(func() error { r = c.c.Check(context.Background()); return nil }); err != nil {
				t.Fatal(err)
			}
			switch {
			case c.fail == "" && r.Err != nil:
				t.Fatalf("want success: %v", r.Err)
			case c.fail != "" && (r.Err == nil || !strings.Contains(r.Err.Error(), c.fail)):
				t.Fatalf("want failure %q, got %v", c.fail, r.Err)
			}
		})
	}
}
