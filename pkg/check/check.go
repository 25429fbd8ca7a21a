// Package check implements keepalived's health checkers (TCP_CHECK,
// HTTP_GET, SSL_GET, MISC_CHECK, PING_CHECK, UDP_CHECK, DNS_CHECK,
// SMTP_CHECK) and the retry logic that turns their attempts into a real
// server being up or down (keepalived-semantics.md §8).
//
// A Checker makes one attempt; Probe (pure, clock-injected) decides what
// the attempts mean; Scheduler runs thousands of probes with jitter and
// bounded concurrency.
package check

import (
	"context"
	"crypto/md5"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"github.com/halo-lb/halo/pkg/sockopt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/net/dns/dnsmessage"
	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
)

// Result of one attempt. Weight is set by MISC_CHECK with misc_dynamic
// (exit code − 2); -1 means "leave the weight alone".
type Result struct {
	Err    error
	Weight int
}

// Checker makes one health-check attempt against a real server.
type Checker interface {
	Check(ctx context.Context) Result
	// Name is the checker type as the config spells it.
	Name() string
}

// Target is where a checker connects: connect_ip/connect_port when set,
// else the real server's address and port.
type Target struct {
	Addr   netip.Addr
	Port   int
	BindTo netip.Addr
	BindIf string
	// Timeout is connect_timeout: the bound on one whole attempt.
	Timeout time.Duration
}

func (t Target) hostPort() string { return netip.AddrPortFrom(t.Addr, uint16(t.Port)).String() }

func (t Target) dialer() *net.Dialer {
	// No keepalive: a check connection lives for one exchange, and the
	// socket options would cost four syscalls per check.
	d := &net.Dialer{Timeout: t.Timeout, KeepAlive: -1}
	if t.BindTo.IsValid() {
		d.LocalAddr = &net.TCPAddr{IP: t.BindTo.AsSlice()}
	}
	if t.BindIf != "" {
		d.Control = sockopt.BindToDeviceControl(t.BindIf)
	}
	return d
}

// New builds the checker for a config entry of real server rs. runner runs
// MISC_CHECK scripts.
func New(c *config.Checker, rs *config.RealServer, runner *script.Runner) (Checker, error) {
	t := Target{Addr: rs.Addr, Port: rs.Port, BindTo: c.BindTo, BindIf: c.BindIf, Timeout: c.ConnectTimeout.D()}
	if c.ConnectIP.IsValid() {
		t.Addr = c.ConnectIP
	}
	if c.ConnectPort != 0 {
		t.Port = c.ConnectPort
	}
	switch c.Type {
	case "TCP_CHECK":
		return &TCP{T: t}, nil
	case "HTTP_GET", "SSL_GET":
		h := &HTTP{T: t, TLS: c.Type == "SSL_GET", Protocol: c.HTTPProtocol, VirtualHost: c.VirtualHost}
		if c.EnableSNI || c.SNIName != "" {
			h.SNI = c.SNIName
			if h.SNI == "" {
				h.SNI = c.VirtualHost
			}
		}
		for _, u := range c.URLs {
			h.URLs = append(h.URLs, URL{Path: u.Path, Digest: u.Digest, Codes: u.StatusCodes, VirtualHost: u.VirtualHost})
		}
		return h, nil
	case "MISC_CHECK":
		return &Misc{Script: c.MiscPath, Timeout: c.MiscTimeout.D(), Dynamic: c.MiscDynamic, Runner: runner}, nil
	case "PING_CHECK":
		return &Ping{T: t}, nil
	case "UDP_CHECK":
		return &UDP{T: t, Payload: c.Payload, RequireReply: c.RequireReply, Pattern: c.ReplyPattern,
			MinLen: c.MinReplyLength, MaxLen: c.MaxReplyLength}, nil
	case "DNS_CHECK":
		if c.ConnectPort == 0 && rs.Port == 0 {
			t.Port = 53
		}
		return &DNS{T: t, Type: c.DNSType, QName: c.DNSName}, nil
	case "SMTP_CHECK":
		if c.ConnectPort == 0 && rs.Port == 0 {
			t.Port = 25
		}
		helo := c.HeloName
		if helo == "" {
			helo, _ = os.Hostname()
		}
		return &SMTP{T: t, Helo: helo}, nil
	}
	return nil, fmt.Errorf("unsupported checker %s", c.Type)
}

func ok() Result                      { return Result{Weight: -1} }
func fail(err error) Result           { return Result{Err: err, Weight: -1} }
func failf(f string, a ...any) Result { return fail(fmt.Errorf(f, a...)) }

// TCP is TCP_CHECK: up when connect() completes within connect_timeout.
type TCP struct{ T Target }

// Name implements Checker.
func (*TCP) Name() string { return "TCP_CHECK" }

// Check implements Checker.
func (c *TCP) Check(ctx context.Context) Result {
	// The dialer's own timeout bounds the attempt; a cancellable context
	// would cost a watcher goroutine per connect, which matters at
	// thousands of checks per second. Cancellation waits at most one
	// connect_timeout.
	conn, err := c.T.dialer().DialContext(context.WithoutCancel(ctx), "tcp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	// Close with a reset: no FIN exchange and no TIME_WAIT left on the
	// director for every check.
	if tc, ok := conn.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	conn.Close()
	return ok()
}

// URL is one url block.
type URL struct {
	Path        string
	Digest      string // MD5 of the body, lower-case hex
	Codes       []config.StatusRange
	VirtualHost string
}

// HTTP is HTTP_GET and SSL_GET: every URL must answer with an accepted
// status and, when a digest is set, a body with that MD5.
type HTTP struct {
	T           Target
	TLS         bool
	SNI         string
	CA          *x509.CertPool // nil: no verification, as keepalived
	Protocol    string         // 1.0, 1.0C, 1.1
	VirtualHost string
	URLs        []URL
}

// Name implements Checker.
func (c *HTTP) Name() string {
	if c.TLS {
		return "SSL_GET"
	}
	return "HTTP_GET"
}

// Check implements Checker.
func (c *HTTP) Check(ctx context.Context) Result {
	ctx, cancel := context.WithTimeout(ctx, c.T.Timeout)
	defer cancel()
	scheme := "http"
	if c.TLS {
		scheme = "https"
	}
	for _, u := range c.URLs {
		if r := c.get(ctx, scheme, u); r.Err != nil {
			return r
		}
	}
	return ok()
}

// get fetches one URL. The connection is dialled here, on the caller's
// goroutine (so a caller that entered a network namespace checks from it),
// and handed to a one-shot transport that adds TLS for SSL_GET.
func (c *HTTP) get(ctx context.Context, scheme string, u URL) Result {
	conn, err := c.T.dialer().DialContext(ctx, "tcp", c.T.hostPort())
	if err != nil {
		return fail(fmt.Errorf("%s: %w", u.Path, err))
	}
	used := false
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if used {
				return nil, errors.New("one connection per URL")
			}
			used = true
			return conn, nil
		},
		DisableKeepAlives: true,
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: c.CA == nil, RootCAs: c.CA, ServerName: c.SNI},
	}
	defer tr.CloseIdleConnections()
	defer conn.Close()
	client := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+c.T.hostPort()+u.Path, nil)
	if err != nil {
		return fail(err)
	}
	host := u.VirtualHost
	if host == "" {
		host = c.VirtualHost
	}
	if host != "" {
		req.Host = host
	}
	if c.Protocol == "1.0" || c.Protocol == "1.0C" {
		req.Proto, req.ProtoMajor, req.ProtoMinor = "HTTP/1.0", 1, 0
	}
	req.Close = true
	req.Header.Set("User-Agent", "halo-check")
	resp, err := client.Do(req)
	if err != nil {
		return fail(err)
	}
	h := md5.New()
	_, err = io.Copy(h, io.LimitReader(resp.Body, 16<<20))
	resp.Body.Close()
	if err != nil {
		return failf("%s: reading body: %v", u.Path, err)
	}
	if !statusOK(resp.StatusCode, u.Codes) {
		return failf("%s: status %d", u.Path, resp.StatusCode)
	}
	if u.Digest != "" {
		if got := hex.EncodeToString(h.Sum(nil)); got != u.Digest {
			return failf("%s: digest %s, want %s", u.Path, got, u.Digest)
		}
	}
	return ok()
}

func statusOK(code int, ranges []config.StatusRange) bool {
	if len(ranges) == 0 {
		return code >= 200 && code <= 299
	}
	for _, r := range ranges {
		if code >= r.From && code <= r.To {
			return true
		}
	}
	return false
}

// Misc is MISC_CHECK: exit 0 up, anything else down; with misc_dynamic,
// 0 up (weight unchanged), 1 down, 2–255 up with weight = code − 2.
type Misc struct {
	Script  *config.Script
	Timeout time.Duration
	Dynamic bool
	Runner  *script.Runner
}

// Name implements Checker.
func (*Misc) Name() string { return "MISC_CHECK" }

// Check implements Checker.
func (c *Misc) Check(ctx context.Context) Result {
	res, err := c.Runner.Run(ctx, c.Script, c.Timeout)
	switch {
	case err != nil:
		return fail(err)
	case res.TimedOut:
		return failf("timed out after %v (process group killed)", c.Timeout)
	case res.ExitCode == 0:
		return ok()
	case c.Dynamic && res.ExitCode >= 2:
		return Result{Weight: res.ExitCode - 2}
	}
	return failf("exit status %d", res.ExitCode)
}

// Ping is PING_CHECK: one ICMP echo (v4 or v6) answered within the timeout.
type Ping struct{ T Target }

// Name implements Checker.
func (*Ping) Name() string { return "PING_CHECK" }

// Check implements Checker.
func (c *Ping) Check(ctx context.Context) Result {
	network, proto := "ip4:icmp", 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if c.T.Addr.Is6() {
		network, proto, typ, reply = "ip6:ipv6-icmp", 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	// Raw ICMP as root; an unprivileged ping socket otherwise.
	conn, err := icmp.ListenPacket(network, "")
	unpriv := false
	if err != nil {
		udp := "udp4"
		if c.T.Addr.Is6() {
			udp = "udp6"
		}
		conn, err = icmp.ListenPacket(udp, "")
		if err != nil {
			return fail(err)
		}
		unpriv = true
	}
	defer conn.Close()
	deadline := time.Now().Add(c.T.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	_ = conn.SetDeadline(deadline)
	id := os.Getpid() & 0xffff
	seq := int(time.Now().UnixNano() & 0x7fff)
	msg := icmp.Message{Type: typ, Body: &icmp.Echo{ID: id, Seq: seq, Data: []byte("halo-ping-check")}}
	b, _ := msg.Marshal(nil)
	var dst net.Addr = &net.IPAddr{IP: c.T.Addr.AsSlice(), Zone: c.T.Addr.Zone()}
	if unpriv {
		dst = &net.UDPAddr{IP: c.T.Addr.AsSlice(), Zone: c.T.Addr.Zone()}
	}
	if _, err := conn.WriteTo(b, dst); err != nil {
		return fail(err)
	}
	buf := make([]byte, 1500)
	for {
		n, from, err := conn.ReadFrom(buf)
		if err != nil {
			return failf("no echo reply: %v", err)
		}
		m, err := icmp.ParseMessage(proto, buf[:n])
		if err != nil || m.Type != reply {
			continue
		}
		e, isEcho := m.Body.(*icmp.Echo)
		if !isEcho || e.Seq != seq || (!unpriv && e.ID != id) {
			continue
		}
		if !sameHost(from, c.T.Addr) {
			continue
		}
		return ok()
	}
}

func sameHost(a net.Addr, want netip.Addr) bool {
	var ip net.IP
	switch x := a.(type) {
	case *net.IPAddr:
		ip = x.IP
	case *net.UDPAddr:
		ip = x.IP
	}
	got, ok := netip.AddrFromSlice(ip)
	return ok && got.Unmap() == want.WithZone("").Unmap()
}

// UDP is UDP_CHECK: send the payload (random without one); with
// require_reply an answer must come and match the pattern; without it only
// an ICMP error (port unreachable) fails the check.
type UDP struct {
	T            Target
	Payload      []byte
	RequireReply bool
	Pattern      string // hex, X nibbles are wildcards
	MinLen       int
	MaxLen       int
}

// Name implements Checker.
func (*UDP) Name() string { return "UDP_CHECK" }

// Check implements Checker.
func (c *UDP) Check(ctx context.Context) Result {
	d := c.T.dialer()
	if c.T.BindTo.IsValid() {
		d.LocalAddr = &net.UDPAddr{IP: c.T.BindTo.AsSlice()}
	}
	conn, err := d.DialContext(ctx, "udp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.T.Timeout))
	payload := c.Payload
	if len(payload) == 0 {
		payload = []byte(strconv.FormatInt(time.Now().UnixNano(), 16))
	}
	if _, err := conn.Write(payload); err != nil {
		return fail(err)
	}
	buf := make([]byte, 65536)
	n, err := conn.Read(buf)
	if err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() && !c.RequireReply {
			return ok() // silence is success unless a reply is required
		}
		return fail(err) // ECONNREFUSED from an ICMP port unreachable
	}
	if !c.RequireReply {
		return ok()
	}
	if n < c.MinLen || (c.MaxLen > 0 && n > c.MaxLen) {
		return failf("reply of %d bytes outside %d-%d", n, c.MinLen, c.MaxLen)
	}
	if !MatchHex(c.Pattern, buf[:n]) {
		return failf("reply %x does not match %s", buf[:n], c.Pattern)
	}
	return ok()
}

// MatchHex compares data with a hex pattern over the shorter of the two;
// an X nibble matches anything.
func MatchHex(pattern string, data []byte) bool {
	pattern = strings.ToLower(strings.ReplaceAll(pattern, " ", ""))
	for i := 0; i+1 < len(pattern)+1 && i/2 < len(data); i += 2 {
		if i >= len(pattern) {
			break
		}
		hi := pattern[i]
		lo := byte('x')
		if i+1 < len(pattern) {
			lo = pattern[i+1]
		}
		b := data[i/2]
		if !nibble(hi, b>>4) || !nibble(lo, b&0x0f) {
			return false
		}
	}
	return true
}

func nibble(p byte, v byte) bool {
	if p == 'x' {
		return true
	}
	n, err := strconv.ParseUint(string(p), 16, 8)
	return err == nil && byte(n) == v
}

// DNS is DNS_CHECK: a UDP query for name/type must get a response with
// the same id, no error rcode, and at least one answer of that type (SOA
// of the root by default).
type DNS struct {
	T     Target
	Type  string
	QName string
}

// Name implements Checker.
func (*DNS) Name() string { return "DNS_CHECK" }

var dnsTypes = map[string]dnsmessage.Type{"A": dnsmessage.TypeA, "NS": dnsmessage.TypeNS, "CNAME": dnsmessage.TypeCNAME,
	"SOA": dnsmessage.TypeSOA, "MX": dnsmessage.TypeMX, "TXT": dnsmessage.TypeTXT, "AAAA": dnsmessage.TypeAAAA}

// Check implements Checker.
func (c *DNS) Check(ctx context.Context) Result {
	qt, found := dnsTypes[strings.ToUpper(c.Type)]
	if !found {
		return failf("unknown DNS type %q", c.Type)
	}
	name := c.QName
	if !strings.HasSuffix(name, ".") {
		name += "."
	}
	qn, err := dnsmessage.NewName(name)
	if err != nil {
		return fail(err)
	}
	id := uint16(time.Now().UnixNano())
	q := dnsmessage.Message{Header: dnsmessage.Header{ID: id, RecursionDesired: true},
		Questions: []dnsmessage.Question{{Name: qn, Type: qt, Class: dnsmessage.ClassINET}}}
	wire, err := q.Pack()
	if err != nil {
		return fail(err)
	}
	conn, err := c.T.dialer().DialContext(ctx, "udp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.T.Timeout))
	if _, err := conn.Write(wire); err != nil {
		return fail(err)
	}
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if err != nil {
			return fail(err)
		}
		var m dnsmessage.Message
		if err := m.Unpack(buf[:n]); err != nil || m.Header.ID != id || !m.Header.Response {
			continue // not our answer; keep waiting until the deadline
		}
		if m.Header.RCode != dnsmessage.RCodeSuccess {
			return failf("rcode %v", m.Header.RCode)
		}
		for _, a := range m.Answers {
			if a.Header.Type == qt {
				return ok()
			}
		}
		return failf("no %s record in the answer", c.Type)
	}
}

// SMTP is SMTP_CHECK: read a 220 banner, send HELO, expect 250, QUIT.
type SMTP struct {
	T    Target
	Helo string
}

// Name implements Checker.
func (*SMTP) Name() string { return "SMTP_CHECK" }

// Check implements Checker.
func (c *SMTP) Check(ctx context.Context) Result {
	conn, err := c.T.dialer().DialContext(ctx, "tcp", c.T.hostPort())
	if err != nil {
		return fail(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(c.T.Timeout))
	buf := make([]byte, 4096)
	readCode := func() (int, error) {
		var line []byte
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return 0, err
			}
			line = append(line, buf[:n]...)
			// Multi-line replies use "250-"; the last line has "250 ".
			lines := strings.Split(strings.TrimRight(string(line), "\r\n"), "\n")
			last := strings.TrimRight(lines[len(lines)-1], "\r")
			if strings.HasSuffix(string(line), "\n") && len(last) >= 4 && last[3] == ' ' {
				return strconv.Atoi(last[:3])
			}
			if len(line) > 64<<10 {
				return 0, errors.New("reply too long")
			}
		}
	}
	code, err := readCode()
	if err != nil {
		return failf("banner: %v", err)
	}
	if code != 220 {
		return failf("banner code %d", code)
	}
	if _, err := fmt.Fprintf(conn, "HELO %s\r\n", c.Helo); err != nil {
		return fail(err)
	}
	if code, err = readCode(); err != nil || code != 250 {
		return failf("HELO answered %d %v", code, err)
	}
	fmt.Fprintf(conn, "QUIT\r\n")
	return ok()
}
