package vrrpd

import (
	"log/slog"
	"net"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/vipfw"
	"github.com/halo-lb/halo/pkg/vrrp"
)

// Firewall drops the traffic of a master's VIPs when the instance has no
// accept mode (no_accept, or vrrp_strict without `accept`), as keepalived
// does with its nftables table (docs/keepalived.md#no-accept). Block sets
// an instance's dropped VIPs (replacing what it had), Unblock releases
// them, Close removes the table. SetVMAC records an instance's use_vmac
// interface (nil: gone) for keepalived's VMAC rules in the same tables
// (docs/keepalived.md#use-vmac-nftables).
type Firewall interface {
	Block(instance string, vips []vipfw.VIP) error
	Unblock(instance string) error
	SetVMAC(instance string, links []vipfw.VMACLink) error
	Close() error
}

// OpenFirewall opens the no_accept firewall; tests replace it before Run.
// The default is nftables over netlink, which first deletes any table a
// crashed run left.
var OpenFirewall = func(cfg vipfw.Config, log *slog.Logger) (Firewall, error) {
	return vipfw.Open(cfg, nil, log)
}

func firewallConfig(g *config.Global) vipfw.Config {
	return vipfw.Config{Table: g.Firewall.Table, Priority: int32(g.Firewall.Priority), Counters: g.Firewall.Counters,
		IfIndex: g.Firewall.IfIndex}
}

// dropsTraffic reports whether the instance's VIPs must not carry traffic
// while it is master: keepalived skips the rules for the address owner
// (priority 255) whatever accept says.
func dropsTraffic(c *config.VRRPInstance) bool {
	return !c.Accept && c.Priority != 255
}

// firewall returns the open firewall, opening it on first use. A failure is
// logged once per attempt and the VIPs then accept traffic (as keepalived
// when it cannot program nftables).
func (d *Daemon) firewall() Firewall {
	if d.fw != nil {
		return d.fw
	}
	cfg := firewallConfig(&d.cfg.Global)
	if cfg.Table == "" {
		// keepalived's own message for this case.
		d.log.Info("use_vmac or no_accept/strict specified, but no firewall configured - using nftables",
			"table", cfg.TableName())
	}
	fw, err := OpenFirewall(cfg, d.log.With("component", "nftables"))
	if err != nil {
		d.log.Error("nftables: cannot install keepalived's table; the VIPs of a no_accept master accept traffic and VMACs send their own group reports", "err", err)
		return nil
	}
	d.fw, d.fwCfg = fw, cfg
	return fw
}

// syncFirewall makes the instance's dropped VIPs what its state and accept
// mode call for: all its VIPs while master without accept, none otherwise.
// Becoming master calls it before the VIPs are added, so they never accept
// a packet; leaving master after they are removed.
func (in *instance) syncFirewall(master bool) {
	d := in.d
	if !master || !dropsTraffic(in.cfg) {
		if d.fw != nil {
			if err := d.fw.Unblock(in.cfg.Name); err != nil {
				in.log.Error("no_accept: remove the VIPs from the drop set", "err", err)
			}
		}
		return
	}
	fw := d.firewall()
	if fw == nil {
		return
	}
	if err := fw.Block(in.cfg.Name, in.firewallVIPs()); err != nil {
		in.log.Error("no_accept: add the VIPs to the drop set; they accept traffic", "err", err)
	}
}

// firewallVIPs are the instance's VIPs (advertised and excluded) as the
// firewall keys them: link-local IPv6 with its interface, by name where
// keepalived uses names (dont_track_primary, VIP on the instance's
// interface or no_track).
func (in *instance) firewallVIPs() []vipfw.VIP {
	noTrack := map[string]bool{}
	for _, v := range append(append([]*config.VIP(nil), in.cfg.VIPs...), in.cfg.ExcludedVIPs...) {
		noTrack[v.Prefix.String()] = v.NoTrack
	}
	var out []vipfw.VIP
	for _, a := range in.allVIPs() {
		fv := vipfw.VIP{Addr: a.Prefix.Addr(), Dev: a.Dev}
		if fv.Addr.Is6() && fv.Addr.IsLinkLocalUnicast() {
			if ifc, err := net.InterfaceByName(a.Dev); err == nil {
				fv.Ifindex = uint32(ifc.Index)
			}
			fv.ByName = in.cfg.DontTrackPrimary && (a.Dev == in.ifname || noTrack[a.Prefix.String()])
		}
		out = append(out, fv)
	}
	return out
}

// resyncFirewall follows a reload: new nftables settings replace the table
// (the old one is deleted), and every instance's drop set is recomputed.
func (d *Daemon) resyncFirewall() {
	if d.fw != nil && firewallConfig(&d.cfg.Global) != d.fwCfg {
		d.log.Info("reload: nftables settings changed, replacing the table")
		d.closeFirewall()
	}
	for _, in := range d.instances {
		in.syncVMACFirewall()
		in.syncFirewall(in.m.State() == vrrp.Master)
	}
}

// syncVMACFirewall gives the firewall the instance's VMAC as it is now: its
// index and its lower interface's while bound, nothing otherwise; in the
// table of the instance's family, and of the other one when the instance
// has addresses of it (as keepalived 2.2.7 did with an IPv6
// virtual_ipaddress_excluded on an IPv4 instance).
func (in *instance) syncVMACFirewall() {
	if in.vmac == "" {
		return
	}
	d := in.d
	var links []vipfw.VMACLink
	if in.cs != nil {
		vm, err1 := net.InterfaceByName(in.vmac)
		base, err2 := net.InterfaceByName(in.cfg.Interface)
		if err1 == nil && err2 == nil {
			fams := map[vipfw.Family]bool{vipfw.IPv4: !in.is6, vipfw.IPv6: in.is6}
			for _, a := range in.allVIPs() {
				fams[vipfw.IPv4] = fams[vipfw.IPv4] || a.Prefix.Addr().Is4()
				fams[vipfw.IPv6] = fams[vipfw.IPv6] || !a.Prefix.Addr().Is4()
			}
			for _, f := range []vipfw.Family{vipfw.IPv4, vipfw.IPv6} {
				if fams[f] {
					links = append(links, vipfw.VMACLink{Family: f, Ifindex: uint32(vm.Index), Base: uint32(base.Index)})
				}
			}
		}
	}
	if links == nil && d.fw == nil {
		return
	}
	fw := d.firewall()
	if fw == nil {
		return
	}
	if err := fw.SetVMAC(in.cfg.Name, links); err != nil {
		in.log.Error("use_vmac: update the nftables VMAC map", "vmac", in.vmac, "err", err)
	}
}

func (d *Daemon) closeFirewall() {
	if d.fw == nil {
		return
	}
	if err := d.fw.Close(); err != nil {
		d.log.Error("no_accept: remove the nftables table", "err", err)
	}
	d.fw = nil
}

// setupFirewall opens the firewall at start when any instance may need it,
// so a table a crashed run left (with its drop set) is replaced before any
// instance becomes master. keepalived makes its table for use_vmac too.
func (d *Daemon) setupFirewall() {
	for _, in := range d.instances {
		if dropsTraffic(in.cfg) || in.vmac != "" {
			d.firewall()
			return
		}
	}
}
