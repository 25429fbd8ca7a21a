// Package check implements keepalived's health checkers (TCP_CHECK,
// HTTP_GET, SSL_GET, MISC_CHECK, PING_CHECK, UDP_CHECK, DNS_CHECK,
// SMTP_CHECK) and the retry logic that turns their attempts into a real
// server being up or down (docs/keepalived.md#health-checks).
//
// A Checker makes one attempt (one file per checker type); Probe (pure,
// clock-injected, probe.go) decides what the attempts mean; Scheduler
// (scheduler.go) runs thousands of probes with jitter and bounded
// concurrency.
package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/sockopt"
	"golang.org/x/sys/unix"
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
// else the real server's address and port; and where from: bindto,
// bind_port, bind_if and fwmark shape the checker's own socket as
// keepalived's socket_bind_connect does.
type Target struct {
	Addr     netip.Addr
	Port     int
	BindTo   netip.Addr
	BindPort int
	BindIf   string
	FWMark   uint32
	// Timeout is connect_timeout: the bound on one whole attempt.
	Timeout time.Duration
}

func (t Target) hostPort() string {
	return netip.AddrPortFrom(t.zoned(t.Addr), uint16(t.Port)).String()
}

// zoned scopes an IPv6 link-local address to bind_if, which keepalived
// requires for one.
func (t Target) zoned(a netip.Addr) netip.Addr {
	if t.BindIf != "" && a.Is6() && a.IsLinkLocalUnicast() && a.Zone() == "" {
		return a.WithZone(t.BindIf)
	}
	return a
}

// local is the address the socket is bound to, nil for none. bind_port
// alone binds the wildcard address of the target's family with that port.
func (t Target) local() (netip.Addr, bool) {
	switch {
	case t.BindTo.IsValid():
		return t.BindTo, true
	case t.BindPort != 0 && t.Addr.Is6():
		return netip.IPv6Unspecified(), true
	case t.BindPort != 0:
		return netip.IPv4Unspecified(), true
	}
	return netip.Addr{}, false
}

// dialer makes the checker's TCP ("tcp") or UDP ("udp") dialer.
func (t Target) dialer(network string) *net.Dialer {
	// No keepalive: a check connection lives for one exchange, and the
	// socket options would cost four syscalls per check.
	d := &net.Dialer{Timeout: t.Timeout, KeepAlive: -1}
	if a, ok := t.local(); ok {
		ap := netip.AddrPortFrom(t.zoned(a), uint16(t.BindPort))
		if network == "udp" {
			d.LocalAddr = net.UDPAddrFromAddrPort(ap)
		} else {
			d.LocalAddr = net.TCPAddrFromAddrPort(ap)
		}
	}
	if set := t.sockopts(network == "tcp"); len(set) > 0 {
		d.Control = sockopt.Control(set...)
	}
	return d
}

// sockopts are the options set before bind and connect, in keepalived's
// order: SO_MARK, then SO_BINDTODEVICE. A fixed source port also gets
// SO_REUSEADDR and, for TCP, an abortive close, so the next check can bind
// the same port while the last connection would still be in TIME_WAIT.
func (t Target) sockopts(stream bool) []func(fd int) error {
	var set []func(fd int) error
	if t.FWMark != 0 {
		set = append(set, setMark(t.FWMark))
	}
	if t.BindIf != "" {
		set = append(set, sockopt.BindToDevice(t.BindIf))
	}
	if t.BindPort != 0 {
		set = append(set, func(fd int) error { return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1) })
		if stream {
			set = append(set, func(fd int) error {
				return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &unix.Linger{Onoff: 1, Linger: 0})
			})
		}
	}
	return set
}

// setMark is fwmark: SO_MARK on every packet the checker sends (policy
// routing, nftables). It needs CAP_NET_ADMIN; without it the attempt fails
// with the error, as keepalived's does.
func setMark(mark uint32) func(fd int) error {
	return func(fd int) error {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(mark)); err != nil {
			return fmt.Errorf("fwmark %d: SO_MARK: %w", mark, err)
		}
		return nil
	}
}

// New builds the checker for a config entry of real server rs. runner runs
// MISC_CHECK scripts.
func New(c *config.Checker, rs *config.RealServer, runner *script.Runner) (Checker, error) {
	t := Target{Addr: rs.Addr, Port: rs.Port, BindTo: c.BindTo, BindPort: c.BindPort, BindIf: c.BindIf,
		FWMark: c.FWMark, Timeout: c.ConnectTimeout.D()}
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
		h.Fast = c.FastRecovery
		for _, u := range c.URLs {
			cu := URL{Path: u.Path, Digest: u.Digest, Codes: u.StatusCodes, VirtualHost: u.VirtualHost,
				NoMatch: u.RegexNoMatch, MinOffset: u.RegexMinOffset}
			if u.RegexMaxOffset != nil {
				cu.MaxOffset, cu.HasMax = *u.RegexMaxOffset, true
			}
			if u.Regex != "" {
				re, err := regexp.Compile(u.Regex)
				if err != nil {
					return nil, fmt.Errorf("url %s: regex: %w", u.Path, err)
				}
				cu.Regex = re
			}
			h.URLs = append(h.URLs, cu)
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
