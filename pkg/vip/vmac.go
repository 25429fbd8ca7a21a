package vip

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"syscall"

	"github.com/vishvananda/netlink"
)

// VMAC returns the RFC 5798 virtual router MAC: 00:00:5e:00:01:VRID for
// IPv4, 00:00:5e:00:02:VRID for IPv6.
func VMAC(vrid int, is6 bool) net.HardwareAddr {
	m := net.HardwareAddr{0x00, 0x00, 0x5e, 0x00, 0x01, byte(vrid)}
	if is6 {
		m[4] = 0x02
	}
	return m
}

// EnsureVMAC creates (or adopts) a macvlan named name on parent with the
// virtual MAC, brings it up, and sets the sysctls that make neighbours learn
// the virtual MAC rather than the parent's: arp_ignore=1 and arp_filter=1 on
// the parent (it must not answer ARP for addresses on the VMAC) and
// arp_announce=2 (its own ARP requests must not name a VIP as sender, or
// neighbours would tie the VIP to the parent's MAC), and on the
// VMAC accept_local=1 / rp_filter=0 so its own traffic is not dropped.
func EnsureVMAC(parent, name string, mac net.HardwareAddr) error {
	p, err := netlink.LinkByName(parent)
	if err != nil {
		return fmt.Errorf("use_vmac: %w", err)
	}
	if l, err := netlink.LinkByName(name); err == nil {
		if l.Type() != "macvlan" || l.Attrs().ParentIndex != p.Attrs().Index {
			return fmt.Errorf("use_vmac: %s exists and is not a macvlan on %s", name, parent)
		}
	} else {
		mv := &netlink.Macvlan{LinkAttrs: netlink.LinkAttrs{Name: name, ParentIndex: p.Attrs().Index, HardwareAddr: mac},
			Mode: netlink.MACVLAN_MODE_PRIVATE}
		if err := netlink.LinkAdd(mv); err != nil && !errors.Is(err, syscall.EEXIST) {
			return fmt.Errorf("use_vmac: create %s: %w", name, err)
		}
	}
	l, err := netlink.LinkByName(name)
	if err != nil {
		return err
	}
	if err := netlink.LinkSetHardwareAddr(l, mac); err != nil {
		return fmt.Errorf("use_vmac: set MAC of %s: %w", name, err)
	}
	if err := netlink.LinkSetUp(l); err != nil {
		return err
	}
	for _, s := range []struct{ ifname, key, val string }{
		{parent, "arp_ignore", "1"}, {parent, "arp_filter", "1"}, {parent, "arp_announce", "2"},
		{name, "arp_ignore", "1"}, {name, "accept_local", "1"}, {name, "rp_filter", "0"},
	} {
		p := filepath.Join("/proc/sys/net/ipv4/conf", s.ifname, s.key)
		if err := os.WriteFile(p, []byte(s.val), 0o644); err != nil {
			return fmt.Errorf("use_vmac: %s: %w", p, err)
		}
	}
	return nil
}

// DeleteLink removes an interface halo created (a VMAC); a missing one is
// not an error.
func DeleteLink(name string) error {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil
	}
	return netlink.LinkDel(l)
}
