package check

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"
)

// Ping is PING_CHECK: one ICMP echo (v4 or v6) answered within the timeout.
type Ping struct{ T Target }

// Name implements Checker.
func (*Ping) Name() string { return "PING_CHECK" }

// Check implements Checker.
func (c *Ping) Check(ctx context.Context) Result {
	proto := 1
	var typ, reply icmp.Type = ipv4.ICMPTypeEcho, ipv4.ICMPTypeEchoReply
	if c.T.Addr.Is6() {
		proto, typ, reply = 58, ipv6.ICMPTypeEchoRequest, ipv6.ICMPTypeEchoReply
	}
	conn, unpriv, err := c.T.icmpSocket()
	if err != nil {
		return fail(err)
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

// icmpSocket opens raw ICMP as root and an unprivileged ping socket
// otherwise, with fwmark, bind_if and bindto applied as for the other
// checkers (bind_port has no meaning for ICMP).
func (t Target) icmpSocket() (net.PacketConn, bool, error) {
	fam, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if t.Addr.Is6() {
		fam, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	var err error
	for _, typ := range []int{unix.SOCK_RAW, unix.SOCK_DGRAM} {
		var fd int
		fd, err = unix.Socket(fam, typ|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
		if err != nil {
			continue
		}
		if err := t.bindICMP(fd); err != nil {
			unix.Close(fd)
			return nil, false, err
		}
		f := os.NewFile(uintptr(fd), "icmp")
		pc, err := net.FilePacketConn(f)
		f.Close()
		if err != nil {
			return nil, false, err
		}
		return pc, typ == unix.SOCK_DGRAM, nil
	}
	return nil, false, fmt.Errorf("icmp socket: %w", err)
}

func (t Target) bindICMP(fd int) error {
	for _, set := range t.sockopts(false) {
		if err := set(fd); err != nil {
			return err
		}
	}
	if !t.BindTo.IsValid() {
		return nil
	}
	var sa unix.Sockaddr
	if t.BindTo.Is4() {
		sa = &unix.SockaddrInet4{Addr: t.BindTo.As4()}
	} else {
		s6 := &unix.SockaddrInet6{Addr: t.BindTo.As16()}
		if t.BindIf != "" && t.BindTo.IsLinkLocalUnicast() {
			if ifi, err := net.InterfaceByName(t.BindIf); err == nil {
				s6.ZoneId = uint32(ifi.Index)
			}
		}
		sa = s6
	}
	if err := unix.Bind(fd, sa); err != nil {
		return fmt.Errorf("bindto %s: %w", t.BindTo, err)
	}
	return nil
}
