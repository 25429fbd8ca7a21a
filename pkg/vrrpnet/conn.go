// Package vrrpnet sends and receives VRRP packets on raw IPPROTO_VRRP
// sockets, one per interface and address family, shaped as keepalived
// shapes them (docs/vrrp-wire.md#ip-and-link-layer): TOS / traffic class 0xC0, TTL
// and hop limit 255, IPv4 ID counting from 1, DF clear, multicast loop off.
package vrrpnet

import (
	"context"
	"errors"
	"fmt"
	"github.com/halo-lb/halo/pkg/sockopt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/net/ipv4"
	"golang.org/x/net/ipv6"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/pkg/vrrp"
)

// Packet is one received VRRP message with what the IP layer said about it.
type Packet struct {
	Src, Dst netip.Addr
	TTL      int // TTL or hop limit
	Payload  []byte
}

// Conn is a raw VRRP socket bound to one interface.
type Conn struct {
	Iface *net.Interface
	is6   bool
	c4    *ipv4.RawConn
	c6    *ipv6.PacketConn
	mu    sync.Mutex
	id    uint16
}

func bindControl(ifname string) func(network, address string, c syscall.RawConn) error {
	return func(network, address string, c syscall.RawConn) error {
		// Receive only what arrives on this interface, and only the
		// multicast groups this socket joined.
		level, opt := unix.IPPROTO_IP, unix.IP_MULTICAST_ALL
		if !strings.HasPrefix(network, "ip4") {
			level, opt = unix.IPPROTO_IPV6, unix.IPV6_MULTICAST_ALL
		}
		return sockopt.Control(sockopt.BindToDevice(ifname), func(fd int) error {
			return unix.SetsockoptInt(fd, level, opt, 0)
		})(network, address, c)
	}
}

// Listen opens a VRRP socket on the interface for one family and joins the
// multicast groups given (none for unicast-only instances).
func Listen(ifname string, is6 bool, groups []netip.Addr) (*Conn, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	lc := net.ListenConfig{Control: bindControl(ifname)}
	c := &Conn{Iface: ifi, is6: is6}
	if !is6 {
		pc, err := lc.ListenPacket(context.Background(), "ip4:112", "0.0.0.0")
		if err != nil {
			return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
		}
		rc, err := ipv4.NewRawConn(pc)
		if err != nil {
			pc.Close()
			return nil, err
		}
		c.c4 = rc
		err = errors.Join(rc.SetMulticastInterface(ifi), rc.SetMulticastLoopback(false), rc.SetMulticastTTL(255))
		for _, g := range groups {
			err = errors.Join(err, rc.JoinGroup(ifi, &net.IPAddr{IP: g.AsSlice()}))
		}
		if err != nil {
			rc.Close()
			return nil, fmt.Errorf("vrrp socket on %s: %w", ifname, err)
		}
		return c, nil
	}
	pc, err := lc.ListenPacket(context.Background(), "ip6:112", "::")
	if err != nil {
		return nil, fmt.Errorf("vrrp6 socket on %s: %w", ifname, err)
	}
	p6 := ipv6.NewPacketConn(pc)
	c.c6 = p6
	// The kernel computes and verifies the checksum (pseudo-header
	// included) at offset 6 of the VRRP message.
	err = errors.Join(p6.SetChecksum(true, 6), p6.SetMulticastHopLimit(255), p6.SetHopLimit(255),
		p6.SetTrafficClass(0xc0), p6.SetMulticastLoopback(false), p6.SetMulticastInterface(ifi),
		p6.SetControlMessage(ipv6.FlagHopLimit|ipv6.FlagDst|ipv6.FlagInterface, true))
	for _, g := range groups {
		err = errors.Join(err, p6.JoinGroup(ifi, &net.IPAddr{IP: g.AsSlice()}))
	}
	if err != nil {
		p6.Close()
		return nil, fmt.Errorf("vrrp6 socket on %s: %w", ifname, err)
	}
	return c, nil
}

// Join joins a multicast group on the socket's interface.
func (c *Conn) Join(group netip.Addr) error {
	ga := &net.IPAddr{IP: group.AsSlice()}
	if c.c4 != nil {
		return c.c4.JoinGroup(c.Iface, ga)
	}
	return c.c6.JoinGroup(c.Iface, ga)
}

// Recv reads the next VRRP packet. buf must hold at least 1500 bytes.
func (c *Conn) Recv(buf []byte) (Packet, error) {
	if c.c4 != nil {
		h, p, _, err := c.c4.ReadFrom(buf)
		if err != nil {
			return Packet{}, err
		}
		src, _ := netip.AddrFromSlice(h.Src.To4())
		dst, _ := netip.AddrFromSlice(h.Dst.To4())
		// Trim Ethernet padding: the IP total length is authoritative.
		if l := h.TotalLen - h.Len; l >= 0 && l < len(p) {
			p = p[:l]
		}
		return Packet{Src: src, Dst: dst, TTL: h.TTL, Payload: p}, nil
	}
	n, cm, from, err := c.c6.ReadFrom(buf)
	if err != nil {
		return Packet{}, err
	}
	pkt := Packet{Payload: buf[:n]}
	if ia, ok := from.(*net.IPAddr); ok {
		pkt.Src, _ = netip.AddrFromSlice(ia.IP)
	}
	if cm != nil {
		pkt.TTL = cm.HopLimit
		pkt.Dst, _ = netip.AddrFromSlice(cm.Dst)
	}
	return pkt, nil
}

// Send transmits one VRRP message from src to dst with TTL / hop limit
// 255.
func (c *Conn) Send(src, dst netip.Addr, msg []byte) error { return c.SendTTL(src, dst, msg, 255) }

// SendTTL is Send with another TTL, for unicast_ttl (multicast adverts
// always carry 255: receivers drop anything else).
func (c *Conn) SendTTL(src, dst netip.Addr, msg []byte, ttl int) error {
	if ttl <= 0 || ttl > 255 {
		ttl = 255
	}
	if c.c4 != nil {
		c.mu.Lock()
		c.id++
		if c.id == 0 {
			c.id = 1
		}
		id := c.id
		c.mu.Unlock()
		h := &ipv4.Header{Version: 4, Len: ipv4.HeaderLen, TOS: 0xc0, TotalLen: ipv4.HeaderLen + len(msg),
			ID: int(id), TTL: ttl, Protocol: vrrp.Protocol, Src: src.AsSlice(), Dst: dst.AsSlice()}
		return c.c4.WriteTo(h, msg, nil)
	}
	cm := &ipv6.ControlMessage{Src: src.AsSlice(), IfIndex: c.Iface.Index, HopLimit: ttl}
	_, err := c.c6.WriteTo(msg, cm, &net.IPAddr{IP: dst.AsSlice(), Zone: c.Iface.Name})
	return err
}

// Close closes the socket; a blocked Recv returns an error.
func (c *Conn) Close() error {
	if c.c4 != nil {
		return c.c4.Close()
	}
	return c.c6.Close()
}

// PrimaryAddr returns the address keepalived would send from: the first
// IPv4 address of the interface that is not in exclude, or its IPv6
// link-local address.
func PrimaryAddr(ifi *net.Interface, is6 bool, exclude map[netip.Addr]bool) (netip.Addr, error) {
	addrs, err := ifi.Addrs()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if exclude[ip] {
			continue
		}
		if !is6 && ip.Is4() {
			return ip, nil
		}
		if is6 && ip.Is6() && ip.IsLinkLocalUnicast() {
			return ip.WithZone(ifi.Name), nil
		}
	}
	fam := "IPv4"
	if is6 {
		fam = "IPv6 link-local"
	}
	return netip.Addr{}, fmt.Errorf("interface %s has no %s address to send VRRP from", ifi.Name, fam)
}
