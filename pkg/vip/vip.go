// Package vip adds and removes virtual IP addresses with netlink, honouring
// the `ip addr` options keepalived accepts (dev, label, brd, scope, …).
package vip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"syscall"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/pkg/config"
)

// Addr is one address to manage on an interface.
type Addr struct {
	Prefix        netip.Prefix
	Dev           string
	Label         string
	Brd           netip.Addr
	Scope         int // unix.RT_SCOPE_*
	Peer          netip.Prefix
	NoDAD         bool
	NoPrefixRoute bool
	Home          bool
	// Preferred is preferred_lft in seconds; nil: forever (the kernel's
	// default, and keepalived's). `preferred_lft 0` makes an IPv6 VIP
	// deprecated, so the kernel never picks it as the director's source
	// address (docs/keepalived.md#ipv6-vip-source-address).
	Preferred *uint32
}

// FromConfig converts a configured VIP; defaultDev is the instance's
// interface.
func FromConfig(v *config.VIP, defaultDev string) (Addr, error) {
	a := Addr{Prefix: v.Prefix, Dev: v.Dev, Label: v.Label, Peer: v.Peer, NoPrefixRoute: v.NoPrefixRoute, Home: v.Home}
	if a.Dev == "" {
		a.Dev = defaultDev
	}
	// IPv6 VIPs skip DAD so they answer at once after a takeover (the old
	// master still holding the address would otherwise fail DAD).
	a.NoDAD = v.NoDAD || v.Prefix.Addr().Is6()
	switch v.Brd {
	case "":
	case "+", "-":
		if v.Brd == "+" && v.Prefix.Addr().Is4() {
			a.Brd = lastAddr(v.Prefix)
		}
	default:
		b, err := netip.ParseAddr(v.Brd)
		if err != nil {
			return a, fmt.Errorf("brd %q: %w", v.Brd, err)
		}
		a.Brd = b
	}
	switch v.Scope {
	case "", "global":
		a.Scope = unix.RT_SCOPE_UNIVERSE
	case "site":
		a.Scope = unix.RT_SCOPE_SITE
	case "link":
		a.Scope = unix.RT_SCOPE_LINK
	case "host":
		a.Scope = unix.RT_SCOPE_HOST
	case "nowhere":
		a.Scope = unix.RT_SCOPE_NOWHERE
	default:
		var n int
		if _, err := fmt.Sscanf(v.Scope, "%d", &n); err != nil {
			return a, fmt.Errorf("scope %q", v.Scope)
		}
		a.Scope = n
	}
	if v.PreferredLft != "" && v.PreferredLft != "forever" {
		n, err := strconv.ParseUint(v.PreferredLft, 10, 32)
		if err != nil {
			return a, fmt.Errorf("preferred_lft %q", v.PreferredLft)
		}
		p := uint32(n)
		a.Preferred = &p
	}
	if a.Label != "" && len(a.Label) > 15 {
		return a, fmt.Errorf("label %q longer than 15 characters", a.Label)
	}
	return a, nil
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func (a Addr) String() string { return fmt.Sprintf("%s dev %s", a.Prefix, a.Dev) }

func (a Addr) netlink() *netlink.Addr {
	n := &netlink.Addr{
		IPNet: &net.IPNet{IP: a.Prefix.Addr().AsSlice(), Mask: net.CIDRMask(a.Prefix.Bits(), a.Prefix.Addr().BitLen())},
		Label: a.Label,
		Scope: a.Scope,
	}
	if a.Brd.IsValid() {
		n.Broadcast = a.Brd.AsSlice()
	}
	if a.Peer.IsValid() {
		n.Peer = &net.IPNet{IP: a.Peer.Addr().AsSlice(), Mask: net.CIDRMask(a.Peer.Bits(), a.Peer.Addr().BitLen())}
	}
	if a.NoDAD {
		n.Flags |= unix.IFA_F_NODAD
	}
	if a.NoPrefixRoute {
		n.Flags |= unix.IFA_F_NOPREFIXROUTE
	}
	if a.Home {
		n.Flags |= unix.IFA_F_HOMEADDRESS
	}
	if a.Preferred != nil {
		// netlink sends IFA_CACHEINFO only when a lifetime is non-zero;
		// the valid lifetime stays forever.
		n.ValidLft, n.PreferedLft = 0xffffffff, int(*a.Preferred)
	}
	return n
}

// Add installs the address; an address already present is not an error
// (a restarted halod adopts what it left).
func Add(a Addr) error {
	link, err := netlink.LinkByName(a.Dev)
	if err != nil {
		return fmt.Errorf("add %s: %w", a, err)
	}
	if err := netlink.AddrAdd(link, a.netlink()); err != nil && !errors.Is(err, syscall.EEXIST) {
		return fmt.Errorf("add %s: %w", a, err)
	}
	return nil
}

// Del removes the address; an address already gone is not an error.
func Del(a Addr) error {
	link, err := netlink.LinkByName(a.Dev)
	if err != nil {
		if errors.As(err, new(netlink.LinkNotFoundError)) {
			return nil // the interface went away with its addresses
		}
		return fmt.Errorf("del %s: %w", a, err)
	}
	if err := netlink.AddrDel(link, a.netlink()); err != nil &&
		!errors.Is(err, syscall.EADDRNOTAVAIL) && !errors.Is(err, syscall.ENODEV) && !errors.Is(err, syscall.ENOENT) {
		return fmt.Errorf("del %s: %w", a, err)
	}
	return nil
}

// Present reports whether the address is configured on its device.
func Present(a Addr) (bool, error) {
	link, err := netlink.LinkByName(a.Dev)
	if err != nil {
		return false, err
	}
	fam := netlink.FAMILY_V4
	if a.Prefix.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := netlink.AddrList(link, fam)
	if err != nil {
		return false, err
	}
	for _, x := range addrs {
		if ip, ok := netip.AddrFromSlice(x.IP); ok && ip.Unmap() == a.Prefix.Addr() {
			return true, nil
		}
	}
	return false, nil
}
