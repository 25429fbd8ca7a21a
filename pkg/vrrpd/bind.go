package vrrpd

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/halo-lb/halo/pkg/announce"
	"github.com/halo-lb/halo/pkg/track"
	"github.com/halo-lb/halo/pkg/vip"
	"github.com/halo-lb/halo/pkg/vrrpnet"
)

// bindKey is the tracker that holds an instance in FAULT while it has no
// socket: its interface is missing, has no address yet, or was deleted.
// keepalived treats these as FAULT and recovers when the interface is
// back; halod does the same instead of exiting.
const bindKey = "bind/"

// bind gives the instance its VMAC, socket (joining its multicast group),
// source address and announcers. On failure the instance is left unbound
// and in FAULT; the loop retries every second and on link events.
func (d *Daemon) bind(in *instance) error {
	if in.cs != nil {
		return nil
	}
	if in.vmac != "" {
		if err := vip.EnsureVMAC(in.cfg.Interface, in.vmac, vip.VMAC(in.cfg.VRID, in.is6)); err != nil {
			return err
		}
	}
	ifi, err := net.InterfaceByName(in.ifname)
	if err != nil {
		return err
	}
	if err := in.pickSource(); err != nil {
		return err
	}
	k := connKey{in.ifname, in.is6}
	cs := d.conns[k]
	if cs != nil && cs.conn.Iface.Index != ifi.Index {
		// The interface was deleted and made again: the old socket is
		// bound to an ifindex that no longer exists.
		d.dropConn(cs, "interface "+in.ifname+" was recreated")
		cs = nil
	}
	if cs == nil {
		c, err := vrrpnet.Listen(in.ifname, in.is6, nil)
		if err != nil {
			return err
		}
		cs = &connState{key: k, conn: c, drops: map[string]int{}, groups: map[netip.Addr]bool{}}
		d.conns[k] = cs
		go d.readLoop(d.wctx, cs)
	}
	if !in.unicast && !cs.groups[in.dsts[0]] {
		if err := cs.conn.Join(in.dsts[0]); err != nil {
			if len(cs.insts) == 0 {
				d.dropConn(cs, "")
			}
			return err
		}
		cs.groups[in.dsts[0]] = true
	}
	cs.insts = append(cs.insts, in)
	in.cs, in.conn = cs, cs.conn
	d.openAnnouncers(in)
	if in.vmac != "" {
		in.log.Info("VMAC interface ready", "vmac", in.vmac, "mac", vip.VMAC(in.cfg.VRID, in.is6).String())
		in.syncVMACFirewall()
	}
	return nil
}

// openAnnouncers opens an announcer on each interface the instance's
// addresses live on that has none yet.
func (d *Daemon) openAnnouncers(in *instance) {
	if in.cs == nil {
		return
	}
	if in.anns == nil {
		in.anns = map[string]*announce.Announcer{}
	}
	for dev, fam := range in.announceDevs() {
		if in.anns[dev] != nil {
			continue
		}
		a, err := announce.New(dev, fam[0], fam[1])
		if err != nil {
			// A VIP on another interface that is missing must not keep
			// the instance down; its announcements are skipped.
			in.log.Warn("cannot announce on interface", "interface", dev, "err", err)
			continue
		}
		in.anns[dev] = a
	}
}

// announceDevs lists the interfaces the instance's addresses live on with
// the families each needs (IPv4, IPv6): `dev X` VIPs and excluded VIPs are
// announced where they are, not on the instance's interface.
func (in *instance) announceDevs() map[string][2]bool {
	out := map[string][2]bool{}
	for _, v := range in.allVIPs() {
		f := out[v.Dev]
		if v.Prefix.Addr().Is6() {
			f[1] = true
		} else {
			f[0] = true
		}
		out[v.Dev] = f
	}
	return out
}

// unbind releases the instance's socket share and announcers and puts it
// in FAULT through its bind tracker.
func (d *Daemon) unbind(in *instance, reason string) {
	in.stopAnnounce()
	for _, a := range in.anns {
		a.Close()
	}
	in.anns = nil
	if cs := in.cs; cs != nil {
		for i, x := range cs.insts {
			if x == in {
				cs.insts = append(cs.insts[:i], cs.insts[i+1:]...)
				break
			}
		}
		if len(cs.insts) == 0 {
			d.dropConn(cs, "")
		}
	}
	in.cs, in.conn = nil, nil
	in.setBound(false, reason)
}

// dropConn closes a socket and unbinds every instance still on it.
func (d *Daemon) dropConn(cs *connState, reason string) {
	if d.conns[cs.key] == cs {
		delete(d.conns, cs.key)
	}
	cs.conn.Close()
	insts := cs.insts
	cs.insts = nil
	for _, in := range insts {
		in.cs, in.conn = nil, nil
		d.unbind(in, reason)
	}
}

// setBound records whether the instance has its socket; unbound means FAULT.
func (in *instance) setBound(ok bool, reason string) {
	it := in.trackers[bindKey+in.ifname]
	if it == nil {
		it = &track.Item{Name: in.ifname, Weight: 0, OK: true}
		in.trackers[bindKey+in.ifname] = it
		in.order = append(in.order, bindKey+in.ifname)
	}
	if it.OK != ok {
		if ok {
			in.log.Info("interface usable again", "interface", in.ifname)
		} else {
			in.log.Warn("interface not usable; instance in FAULT until it is", "interface", in.ifname, "reason", reason)
		}
	}
	it.OK = ok
	in.bindErr = reason
}

// tryBind binds an unbound instance and reports whether its bind state
// changed.
func (d *Daemon) tryBind(in *instance) bool {
	if in.cs != nil {
		return false
	}
	err := d.bind(in)
	if err != nil {
		msg := err.Error()
		changed := in.bindErr != msg
		in.setBound(false, msg)
		return changed
	}
	in.setBound(true, "")
	return true
}

// checkLinks rebinds instances whose interface was deleted or recreated
// (its ifindex changed), so sockets, multicast membership and announcers
// follow the new interface.
func (d *Daemon) checkLinks(name string) {
	for _, cs := range d.conns {
		if cs.key.ifname != name {
			continue
		}
		ifi, err := net.InterfaceByName(name)
		switch {
		case err != nil:
			d.dropConn(cs, fmt.Sprintf("interface %s is gone", name))
		case ifi.Index != cs.conn.Iface.Index:
			d.dropConn(cs, fmt.Sprintf("interface %s was recreated", name))
		}
	}
}
