package check

import (
	"context"
	"crypto/md5"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
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
	var tcpL, smtpL, httpL, tlsL net.Listener
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
		if httpL, err = net.Listen("tcp", "10.86.0.2:8080"); err != nil {
			return err
		}
		if tlsL, err = net.Listen("tcp", "10.86.0.2:8443"); err != nil {
			return err
		}
		udpPC, err = net.ListenPacket("udp", "10.86.0.2:9000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []interface{ Close() error }{tcpL, smtpL, dnsPC, udpPC, httpL} {
		defer c.Close()
	}
	web := http.NewServeMux()
	web.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello halo\n") })
	web.HandleFunc("/bad", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(500) })
	web.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })
	go http.Serve(httpL, web)
	tlsSrv := httptest.NewUnstartedServer(web)
	tlsSrv.Listener.Close()
	tlsSrv.Listener = tlsL
	tlsSrv.StartTLS()
	defer tlsSrv.Close()
	sum := md5.Sum([]byte("hello halo\n"))
	okDigest := hex.EncodeToString(sum[:])
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
		{"http ok with digest", &HTTP{T: tg("10.86.0.2", 8080, time.Second), URLs: []URL{{Path: "/ok", Digest: okDigest}}}, ""},
		{"http wrong status", &HTTP{T: tg("10.86.0.2", 8080, time.Second), URLs: []URL{{Path: "/bad"}}}, "status 500"},
		{"http wrong digest", &HTTP{T: tg("10.86.0.2", 8080, time.Second), URLs: []URL{{Path: "/ok", Digest: strings.Repeat("0", 32)}}}, "digest"},
		{"http timeout", &HTTP{T: tg("10.86.0.2", 8080, 300*time.Millisecond), URLs: []URL{{Path: "/slow"}}}, "deadline"},
		{"http refused", &HTTP{T: tg("10.86.0.2", 8081, time.Second), URLs: []URL{{Path: "/ok"}}}, "refused"},
		{"ssl ok", &HTTP{T: tg("10.86.0.2", 8443, time.Second), TLS: true, URLs: []URL{{Path: "/ok", Digest: okDigest}}}, ""},
		{"ssl wrong status", &HTTP{T: tg("10.86.0.2", 8443, time.Second), TLS: true, URLs: []URL{{Path: "/bad"}}}, "status 500"},
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
