package check

import (
	"context"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/net/icmp"
	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
)

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
