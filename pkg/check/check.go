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
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/sockopt"
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
