// Package announce tells the segment where a virtual IP now lives:
// gratuitous ARP for IPv4 and unsolicited neighbour advertisements for
// IPv6, in the exact shapes keepalived sends
// (docs/vrrp-wire.md#garp-and-unsolicited-na).
package announce

import (
	"context"
	"encoding/binary"
	"fmt"
	"github.com/halo-lb/halo/pkg/sockopt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/mdlayher/arp"
	"github.com/mdlayher/ethernet"
	"github.com/mdlayher/packet"
	"golang.org/x/net/ipv6"
)

var broadcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// Announcer sends announcements out of one interface.
type Announcer struct {
	ifi *net.Interface
	arp *packet.Conn // raw ARP frames; arp.Client would want an IPv4 address on the interface, which a VMAC lacks
	nd  *ipv6.PacketConn
}

// New opens the sockets needed for the families asked for.
func New(ifname string, v4, v6 bool) (*Announcer, error) {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return nil, err
	}
	a := &Announcer{ifi: ifi}
	if v4 {
		c, err := packet.Listen(ifi, packet.Raw, int(ethernet.EtherTypeARP), nil)
		if err != nil {
			return nil, fmt.Errorf("arp socket on %s: %w", ifname, err)
		}
		a.arp = c
	}
	if v6 {
		lc := net.ListenConfig{Control: sockopt.BindToDeviceControl(ifname)}
		pc, err := lc.ListenPacket(context.Background(), "ip6:ipv6-icmp", "::")
		if err != nil {
			a.Close()
			return nil, fmt.Errorf("icmpv6 socket on %s: %w", ifname, err)
		}
		a.nd = ipv6.NewPacketConn(pc)
		// Neighbour discovery messages must carry hop limit 255.
		if err := a.nd.SetMulticastHopLimit(255); err != nil {
			a.Close()
			return nil, err
		}
		// Send-only: drop everything that arrives.
		var f ipv6.ICMPFilter
		f.SetAll(true)
		_ = a.nd.SetICMPFilter(&f)
	}
	return a, nil
}

// MAC is the address announced.
func (a *Announcer) MAC() net.HardwareAddr { return a.ifi.HardwareAddr }

// GARP sends one gratuitous ARP request for ip: sender and target both ip,
// target hardware address ff:ff:ff:ff:ff:ff, to the broadcast address.
func (a *Announcer) GARP(ip netip.Addr) error {
	if a.arp == nil {
		return fmt.Errorf("announce: no IPv4 socket on %s", a.ifi.Name)
	}
	fb, err := GARPFrame(a.ifi.HardwareAddr, ip)
	if err != nil {
		return err
	}
	_, err = a.arp.WriteTo(fb, &packet.Addr{HardwareAddr: broadcast})
	return err
}

// GARPFrame is the Ethernet frame of a gratuitous ARP for ip from mac.
func GARPFrame(mac net.HardwareAddr, ip netip.Addr) ([]byte, error) {
	p, err := arp.NewPacket(arp.OperationRequest, mac, ip, broadcast, ip)
	if err != nil {
		return nil, err
	}
	pb, err := p.MarshalBinary()
	if err != nil {
		return nil, err
	}
	f := ethernet.Frame{Destination: broadcast, Source: mac, EtherType: ethernet.EtherTypeARP, Payload: pb}
	return f.MarshalBinary()
}

// NA sends one unsolicited neighbour advertisement for ip from ip to
// ff02::1 with the Override flag (and Router when forwarding is on) and
// the target link-layer address option.
func (a *Announcer) NA(ip netip.Addr) error {
	if a.nd == nil {
		return fmt.Errorf("announce: no IPv6 socket on %s", a.ifi.Name)
	}
	msg := NAMessage(ip, a.ifi.HardwareAddr, forwarding(a.ifi.Name))
	cm := &ipv6.ControlMessage{Src: ip.AsSlice(), IfIndex: a.ifi.Index, HopLimit: 255}
	_, err := a.nd.WriteTo(msg, cm, &net.IPAddr{IP: net.ParseIP("ff02::1"), Zone: a.ifi.Name})
	return err
}

// NAMessage builds the ICMPv6 neighbour advertisement (the kernel fills in
// the checksum on a raw ICMPv6 socket).
func NAMessage(target netip.Addr, mac net.HardwareAddr, router bool) []byte {
	b := make([]byte, 24+8)
	b[0] = 136               // neighbour advertisement
	flags := uint32(1 << 29) // Override
	if router {
		flags |= 1 << 31
	}
	binary.BigEndian.PutUint32(b[4:], flags)
	t := target.As16()
	copy(b[8:], t[:])
	b[24], b[25] = 2, 1 // target link-layer address, 8 bytes
	copy(b[26:], mac)
	return b
}

func forwarding(ifname string) bool {
	v, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + ifname + "/forwarding")
	return err == nil && strings.TrimSpace(string(v)) == "1"
}

// Send announces ip with the family's method.
func (a *Announcer) Send(ip netip.Addr) error {
	if ip.Is4() {
		return a.GARP(ip)
	}
	return a.NA(ip)
}

// Burst announces every address repeat times, pacing packets by interval
// (vrrp_garp_interval / vrrp_gna_interval), and stops early when ctx ends.
func (a *Announcer) Burst(ctx context.Context, ips []netip.Addr, repeat int, interval4, interval6 time.Duration) error {
	var firstErr error
	for i := 0; i < repeat; i++ {
		for _, ip := range ips {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err := a.Send(ip); err != nil && firstErr == nil {
				firstErr = err
			}
			d := interval4
			if ip.Is6() {
				d = interval6
			}
			if d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					return ctx.Err()
				}
			}
		}
	}
	return firstErr
}

// Close releases the sockets.
func (a *Announcer) Close() error {
	if a.arp != nil {
		a.arp.Close()
	}
	if a.nd != nil {
		a.nd.Close()
	}
	return nil
}
