package check

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
)

func target(t *testing.T, hostport string, timeout time.Duration) Target {
	t.Helper()
	ap, err := netip.ParseAddrPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return Target{Addr: ap.Addr(), Port: int(ap.Port()), Timeout: timeout}
}

// closedPort returns a loopback port nothing listens on.
func closedPort(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
}

func expectOK(t *testing.T, c Checker) {
	t.Helper()
	if r := c.Check(context.Background()); r.Err != nil {
		t.Fatalf("%s: %v", c.Name(), r.Err)
	}
}

func expectFail(t *testing.T, c Checker, want string) {
	t.Helper()
	r := c.Check(context.Background())
	if r.Err == nil || !strings.Contains(r.Err.Error(), want) {
		t.Fatalf("%s: err %v, want %q", c.Name(), r.Err, want)
	}
}

func TestTCP(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	expectOK(t, &TCP{T: target(t, l.Addr().String(), time.Second)})
	expectFail(t, &TCP{T: target(t, closedPort(t), time.Second)}, "refused")
}

func TestHTTP(t *testing.T) {
	body := "hello halo\n"
	sum := md5.Sum([]byte(body))
	digest := hex.EncodeToString(sum[:])
	var host atomic.Value
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) { host.Store(r.Host); fmt.Fprint(w, body) })
	mux.HandleFunc("/503", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { time.Sleep(2 * time.Second) })
	srv := httptest.NewServer(mux)
	defer srv.Close()
	hp := strings.TrimPrefix(srv.URL, "http://")
	mk := func(urls ...URL) *HTTP {
		return &HTTP{T: target(t, hp, 500*time.Millisecond), Protocol: "1.0", URLs: urls}
	}
	expectOK(t, mk(URL{Path: "/ok"}))
	expectOK(t, mk(URL{Path: "/ok", Digest: digest}, URL{Path: "/503", Codes: []config.StatusRange{{From: 200, To: 299}, {From: 503, To: 503}}}))
	expectFail(t, mk(URL{Path: "/503"}), "status 503")
	expectFail(t, mk(URL{Path: "/ok", Digest: strings.Repeat("0", 32)}), "digest "+digest)
	expectFail(t, mk(URL{Path: "/ok"}, URL{Path: "/missing"}), "status 404")
	expectFail(t, mk(URL{Path: "/slow"}), "deadline")
	c := mk(URL{Path: "/ok", VirtualHost: "www.example.test"})
	expectOK(t, c)
	if host.Load() != "www.example.test" {
		t.Fatalf("Host header %v", host.Load())
	}
	expectFail(t, &HTTP{T: target(t, closedPort(t), time.Second), URLs: []URL{{Path: "/"}}}, "refused")
}

func TestSSLGetWithSNI(t *testing.T) {
	var sni atomic.Value
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "tls") }))
	srv.TLS = &tls.Config{GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
		sni.Store(h.ServerName)
		return nil, nil
	}}
	srv.StartTLS()
	defer srv.Close()
	hp := strings.TrimPrefix(srv.URL, "https://")
	// No CA: keepalived does not verify certificates by default.
	expectOK(t, &HTTP{T: target(t, hp, time.Second), TLS: true, SNI: "api.example.test", URLs: []URL{{Path: "/"}}})
	if sni.Load() != "api.example.test" {
		t.Fatalf("SNI %v", sni.Load())
	}
	// Plain HTTP against a TLS port fails.
	expectFail(t, &HTTP{T: target(t, hp, time.Second), URLs: []URL{{Path: "/"}}}, "status 400")
}

func TestMisc(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) *config.Script {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"+body), 0o755); err != nil {
			t.Fatal(err)
		}
		return &config.Script{Raw: p, Argv: []string{p}}
	}
	r := &script.Runner{}
	expectOK(t, &Misc{Script: write("ok.sh", "exit 0\n"), Timeout: time.Second, Runner: r})
	expectFail(t, &Misc{Script: write("bad.sh", "exit 1\n"), Timeout: time.Second, Runner: r}, "exit status 1")
	dyn := &Misc{Script: write("dyn.sh", "exit 7\n"), Timeout: time.Second, Dynamic: true, Runner: r}
	if res := dyn.Check(context.Background()); res.Err != nil || res.Weight != 5 {
		t.Fatalf("misc_dynamic exit 7: %+v", res)
	}
	if res := (&Misc{Script: write("dyn1.sh", "exit 1\n"), Timeout: time.Second, Dynamic: true, Runner: r}).Check(context.Background()); res.Err == nil {
		t.Fatal("misc_dynamic exit 1 is down")
	}
	if res := (&Misc{Script: write("dyn0.sh", "exit 0\n"), Timeout: time.Second, Dynamic: true, Runner: r}).Check(context.Background()); res.Err != nil || res.Weight != -1 {
		t.Fatalf("misc_dynamic exit 0 keeps the weight: %+v", res)
	}
	// A timeout kills the whole process group, grandchildren included.
	pidf := filepath.Join(dir, "child.pid")
	slow := write("slow.sh", fmt.Sprintf("sleep 30 &\necho $! > %s\nwait\n", pidf))
	start := time.Now()
	expectFail(t, &Misc{Script: slow, Timeout: 300 * time.Millisecond, Runner: r}, "timed out")
	if time.Since(start) > 5*time.Second {
		t.Fatal("timeout did not stop the script")
	}
	b, err := os.ReadFile(pidf)
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
	time.Sleep(100 * time.Millisecond)
	if alive(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("the script's child survived the timeout")
	}
}

func udpServer(t *testing.T, handle func([]byte) []byte) string {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := handle(buf[:n]); out != nil {
				pc.WriteTo(out, from)
			}
		}
	}()
	return pc.LocalAddr().String()
}

func TestUDP(t *testing.T) {
	echo := udpServer(t, func(b []byte) []byte { return append([]byte{0xab, 0xcd}, b...) })
	silent := udpServer(t, func([]byte) []byte { return nil })
	to := 300 * time.Millisecond
	expectOK(t, &UDP{T: target(t, echo, to), Payload: []byte{1, 2}, RequireReply: true, Pattern: "abXd01"})
	expectFail(t, &UDP{T: target(t, echo, to), Payload: []byte{1, 2}, RequireReply: true, Pattern: "ab00"}, "does not match")
	expectFail(t, &UDP{T: target(t, echo, to), Payload: []byte{1}, RequireReply: true, MaxLen: 2}, "outside")
	// Without require_reply, silence is success and port unreachable fails.
	expectOK(t, &UDP{T: target(t, silent, to)})
	expectFail(t, &UDP{T: target(t, silent, to), RequireReply: true}, "timeout")
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0")
	closed := pc.LocalAddr().String()
	pc.Close()
	expectFail(t, &UDP{T: target(t, closed, to)}, "refused")
}

func TestMatchHex(t *testing.T) {
	for _, c := range []struct {
		p    string
		d    []byte
		want bool
	}{{"0a0b", []byte{0x0a, 0x0b}, true}, {"0aXb", []byte{0x0a, 0xfb}, true}, {"0a0c", []byte{0x0a, 0x0b}, false},
		{"0a", []byte{0x0a, 0x0b, 0x0c}, true}, {"0a0b0c", []byte{0x0a}, true}, {"X", []byte{0xff}, true}} {
		if got := MatchHex(c.p, c.d); got != c.want {
			t.Errorf("MatchHex(%q, %x) = %v", c.p, c.d, got)
		}
	}
}

// dnsServer answers SOA for "." and A for good.test; everything else NXDOMAIN.
func dnsServer(t *testing.T) string {
	return udpServer(t, func(b []byte) []byte {
		var m dnsmessage.Message
		if m.Unpack(b) != nil || len(m.Questions) != 1 {
			return nil
		}
		q := m.Questions[0]
		resp := dnsmessage.Message{Header: dnsmessage.Header{ID: m.Header.ID, Response: true}, Questions: m.Questions}
		switch {
		case q.Name.String() == "." && q.Type == dnsmessage.TypeSOA:
			resp.Answers = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class},
				Body: &dnsmessage.SOAResource{NS: dnsmessage.MustNewName("ns.test."), MBox: dnsmessage.MustNewName("root.test."), Serial: 1}}}
		case q.Name.String() == "good.test." && q.Type == dnsmessage.TypeA:
			resp.Answers = []dnsmessage.Resource{{Header: dnsmessage.ResourceHeader{Name: q.Name, Type: q.Type, Class: q.Class},
				Body: &dnsmessage.AResource{A: [4]byte{10, 0, 0, 1}}}}
		default:
			resp.Header.RCode = dnsmessage.RCodeNameError
		}
		out, _ := resp.Pack()
		return out
	})
}

func TestDNS(t *testing.T) {
	srv := dnsServer(t)
	to := 500 * time.Millisecond
	expectOK(t, &DNS{T: target(t, srv, to), Type: "SOA", QName: "."})
	expectOK(t, &DNS{T: target(t, srv, to), Type: "a", QName: "good.test"})
	expectFail(t, &DNS{T: target(t, srv, to), Type: "A", QName: "bad.test"}, "rcode")
	expectFail(t, &DNS{T: target(t, srv, to), Type: "MX", QName: "."}, "rcode")
	silent := udpServer(t, func([]byte) []byte { return nil })
	expectFail(t, &DNS{T: target(t, silent, to), Type: "SOA", QName: "."}, "timeout")
}

func smtpServer(t *testing.T, banner string) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
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
				fmt.Fprint(c, banner)
				buf := make([]byte, 512)
				n, _ := c.Read(buf)
				if strings.HasPrefix(string(buf[:n]), "HELO ") {
					fmt.Fprint(c, "250-mail.test greets you\r\n250 OK\r\n")
				}
				c.Read(buf)
			}()
		}
	}()
	return l.Addr().String()
}

func TestSMTP(t *testing.T) {
	expectOK(t, &SMTP{T: target(t, smtpServer(t, "220 mail.test ESMTP\r\n"), time.Second), Helo: "halo"})
	expectFail(t, &SMTP{T: target(t, smtpServer(t, "554 go away\r\n"), time.Second), Helo: "halo"}, "banner code 554")
	expectFail(t, &SMTP{T: target(t, closedPort(t), time.Second), Helo: "halo"}, "refused")
}

func TestPing(t *testing.T) {
	c := &Ping{T: Target{Addr: netip.MustParseAddr("127.0.0.1"), Timeout: time.Second}}
	r := c.Check(context.Background())
	if r.Err != nil && os.Geteuid() != 0 {
		t.Skipf("no raw or ping socket for an unprivileged user: %v", r.Err)
	}
	if r.Err != nil {
		t.Fatal(r.Err)
	}
	expectOK(t, &Ping{T: Target{Addr: netip.MustParseAddr("::1"), Timeout: time.Second}})
}

func TestNewFromConfig(t *testing.T) {
	rs := &config.RealServer{Addr: netip.MustParseAddr("10.0.0.5"), Port: 8080}
	c, err := New(&config.Checker{Type: "TCP_CHECK", ConnectPort: 9090, ConnectTimeout: config.Duration(3 * time.Second)}, rs, nil)
	if err != nil {
		t.Fatal(err)
	}
	if tc := c.(*TCP); tc.T.Port != 9090 || tc.T.Addr != rs.Addr || tc.T.Timeout != 3*time.Second {
		t.Fatalf("target %+v", tc.T)
	}
	d, _ := New(&config.Checker{Type: "DNS_CHECK", DNSType: "SOA", DNSName: "."}, &config.RealServer{Addr: rs.Addr}, nil)
	if d.(*DNS).T.Port != 53 {
		t.Fatal("DNS default port")
	}
	if _, err := New(&config.Checker{Type: "BFD_CHECK"}, rs, nil); err == nil {
		t.Fatal("unsupported checker accepted")
	}
}

// alive reports whether pid runs; a zombie waiting for a reaper that may
// never come (PID 1 in some containers) counts as dead.
func alive(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}
