package xdp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// A VIP packet for a real behind another interface leaves by redirect,
// untagged: the ingress VLAN tags (one, or QinQ's two) belong to the
// ingress link. When the egress interface is not in the devmap the frame
// is dropped and counted as drop_no_txport, never counted as a redirect.
// Runs in a namespace of its own with a veth pair as the other interface.
func TestRedirectStripsTagsAndCountsUndeliverable(t *testing.T) {
	ns := egressNS(t, "vlan", "eg0")
	onEgress(t, ns, "eg0", func(b *Backend, eg *net.Interface) error {
		if err := b.Apply(context.Background(), []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11")}); err != nil {
			return err
		}
		for _, tags := range []struct{ outer, inner uint16 }{{0, 0}, {0, 42}, {100, 42}} {
			in := tcp4(vip4, 80, 4000+tags.inner)
			in.OuterVLAN, in.VLAN = tags.outer, tags.inner
			want := *in
			want.OuterVLAN, want.VLAN = 0, 0
			want.Dst, want.Src = realMACs["10.1.0.11"], eg.HardwareAddr
			opts := runOpts(in.Bytes())
			v, err := b.Prog().Run(opts)
			if err != nil {
				return err
			}
			if v != xdpRedirect || !bytes.Equal(opts.DataOut, want.Bytes()) {
				return fmt.Errorf("tags %v: verdict %d\n got %x\nwant %x", tags, v, opts.DataOut, want.Bytes())
			}
		}
		if got := b.Reasons()[Redirect]; got != 3 {
			return fmt.Errorf("redirect counter %d, want 3", got)
		}
		k := uint32(eg.Index)
		if err := redirectPaths(b, k, eg.HardwareAddr); err != nil {
			return err
		}
		if err := b.objs.TxPorts.Delete(k); err != nil {
			return err
		}
		if err := b.objs.TxSlots.Delete(uint32(b.egr.byIf[k])); err != nil {
			return err
		}
		in := tcp4(vip4, 80, 5000)
		opts := runOpts(in.Bytes())
		v, err := b.Prog().Run(opts)
		if err != nil {
			return err
		}
		r := b.Reasons()
		if v != xdpDrop || r[DropNoTxPort] != 1 || r[Redirect] != 5 {
			return fmt.Errorf("undeliverable redirect: verdict %d, drop_no_txport %d, redirect %d", v, r[DropNoTxPort], r[Redirect])
		}
		return nil
	})
}

// egressNS is a namespace of the test's own holding a veth pair, ifname and
// its peer, both up: an interface other than the program's to redirect to.
func egressNS(t *testing.T, tag, ifname string) *lab.NS {
	t.Helper()
	lab.RequireRoot(t)
	ns := lab.New(t).NS(tag)
	ns.IP("link", "add", ifname, "type", "veth", "peer", "name", ifname+"p")
	ns.IP("link", "set", ifname, "up")
	ns.IP("link", "set", ifname+"p", "up")
	return ns
}

// onEgress runs fn in ns with a backend whose reals all resolve behind
// ifname (one of ns's interfaces), and fails the test with fn's error.
func onEgress(t *testing.T, ns *lab.NS, ifname string, fn func(b *Backend, eg *net.Interface) error) {
	t.Helper()
	err := ns.Do(func() error {
		eg, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		b, err := LoadWith(Options{ResolveMAC: resolveVia(eg)})
		if err != nil {
			return err
		}
		defer b.Close()
		return fn(b, eg)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// resolveVia resolves every real to its fixture MAC behind eg.
func resolveVia(eg *net.Interface) func(netip.Addr) (net.HardwareAddr, int, error) {
	return func(ip netip.Addr) (net.HardwareAddr, int, error) {
		m, _, err := fakeResolve(ip)
		return m, eg.Index, err
	}
}

// redirectPaths checks both ways the program finds a redirect's egress (k,
// MAC mac): the real's index into egress_ifs and tx_slots, which works with
// the ifindex-keyed if_macs and tx_ports emptied; and, when that index
// names another interface (a stale entry), the ifindex-keyed maps, whose
// MAC the frame then carries. Two redirects.
func redirectPaths(b *Backend, k uint32, mac net.HardwareAddr) error {
	send := func(sport uint16) ([]byte, uint32, error) {
		opts := runOpts(tcp4(vip4, 80, sport).Bytes())
		v, err := b.Prog().Run(opts)
		return opts.DataOut, v, err
	}
	idx := b.egr.byIf[k]
	if idx == 0 {
		return fmt.Errorf("egress %d has no index", k)
	}
	var keep lbReal
	if err := b.objs.IfMacs.Lookup(k, &keep); err != nil {
		return err
	}
	if err := b.objs.IfMacs.Delete(k); err != nil {
		return err
	}
	if err := b.objs.TxPorts.Delete(k); err != nil {
		return err
	}
	out, v, err := send(4100)
	if err != nil {
		return err
	}
	if v != xdpRedirect || !bytes.Equal(out[6:12], mac) {
		return fmt.Errorf("by index: verdict %d, source MAC %x (want %s)", v, out[6:12], mac)
	}
	if err := b.objs.IfMacs.Put(k, &keep); err != nil {
		return err
	}
	if err := b.objs.TxPorts.Put(k, k); err != nil {
		return err
	}
	stale := lbEgressIf{Mac: [6]byte{2, 0xee, 0xee, 0xee, 0xee, 0xee}, Ifindex: k + 1000}
	if err := b.objs.EgressIfs.Put(uint32(idx), &stale); err != nil {
		return err
	}
	out, v, err = send(4101)
	if err != nil {
		return err
	}
	if v != xdpRedirect || !bytes.Equal(out[6:12], mac) {
		return fmt.Errorf("stale index: verdict %d, source MAC %x (want %s from if_macs)", v, out[6:12], mac)
	}
	return nil
}

var _ = packet.EtherTypeQinQ

// An egress interface whose MAC changes gets the new one written where the
// program reads it (egress_ifs, by the real's index) at the next apply;
// while it stays the same, its index stays the same.
func TestEgressFollowsMACChange(t *testing.T) {
	ns := egressNS(t, "egm", "em0")
	ns.IP("link", "set", "em0", "address", "02:00:00:00:e0:01")
	onEgress(t, ns, "em0", func(b *Backend, eg *net.Interface) error {
		read := func() (uint8, net.HardwareAddr, error) {
			idx := b.egr.byIf[uint32(eg.Index)]
			var e lbEgressIf
			if err := b.objs.EgressIfs.Lookup(uint32(idx), &e); err != nil {
				return 0, nil, err
			}
			if e.Ifindex != uint32(eg.Index) {
				return 0, nil, fmt.Errorf("egress_ifs[%d] names ifindex %d, want %d", idx, e.Ifindex, eg.Index)
			}
			return idx, net.HardwareAddr(e.Mac[:]), nil
		}
		apply := func(reals ...string) error {
			return b.Apply(context.Background(), []dataplane.Service{svc(vip4, 80, dataplane.TCP, "rr", reals...)})
		}
		if err := apply("10.1.0.11"); err != nil {
			return err
		}
		idx, mac, err := read()
		if err != nil {
			return err
		}
		if idx == 0 || mac.String() != "02:00:00:00:e0:01" {
			return fmt.Errorf("index %d, MAC %s", idx, mac)
		}
		if out, err := ns.Exec("ip", "link", "set", "em0", "address", "02:00:00:00:e0:02"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		if err := apply("10.1.0.11", "10.1.0.12"); err != nil {
			return err
		}
		idx2, mac, err := read()
		if err != nil {
			return err
		}
		if idx2 != idx || mac.String() != "02:00:00:00:e0:02" {
			return fmt.Errorf("after the MAC change: index %d (was %d), MAC %s", idx2, idx, mac)
		}
		return nil
	})
}

// The egress interfaces follow the system without any real changing: an
// interface no real uses (where NAT replies leave) gets its new MAC
// written, and one that is deleted gives back its if_macs entry and its
// index, which the next interface gets. The backend's background work
// does it (every 50 ms here), in the namespace the backend was made in
// although it runs on a goroutine of its own.
func TestEgressFollowsInterfaces(t *testing.T) {
	defer func(d time.Duration) { refreshEvery = d }(refreshEvery)
	refreshEvery = 50 * time.Millisecond
	ns := egressNS(t, "egf", "ef0")
	ns.IP("link", "add", "ef1", "type", "veth", "peer", "name", "ef1p")
	ns.IP("link", "set", "ef1", "address", "02:00:00:00:f1:01")
	err := ns.Do(func() error {
		eg, err := net.InterfaceByName("ef0")
		if err != nil {
			return err
		}
		b, err := New(Options{ResolveMAC: resolveVia(eg)})
		if err != nil {
			return err
		}
		defer b.Close()
		// As attach registers the interfaces the program runs on.
		register := func(ifindex int) (uint8, error) {
			b.applyMu.Lock()
			defer b.applyMu.Unlock()
			b.mu.Lock()
			defer b.mu.Unlock()
			return b.egress(ifindex)
		}
		// within polls cond until it holds, for at most 5 s.
		within := func(cond func() error) error {
			deadline := time.Now().Add(5 * time.Second)
			for {
				err := cond()
				if err == nil || time.Now().After(deadline) {
					return err
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
		ef1, err := net.InterfaceByName("ef1")
		if err != nil {
			return err
		}
		k := uint32(ef1.Index)
		idx, err := register(ef1.Index)
		if err != nil || idx == 0 {
			return fmt.Errorf("register ef1: index %d, %v", idx, err)
		}
		idx0, err := register(eg.Index)
		if err != nil {
			return err
		}
		entries := func(k uint32, idx uint8) (net.HardwareAddr, net.HardwareAddr, error) {
			var m lbReal
			if err := b.objs.IfMacs.Lookup(k, &m); err != nil {
				return nil, nil, fmt.Errorf("if_macs[%d]: %w", k, err)
			}
			var e lbEgressIf
			if err := b.objs.EgressIfs.Lookup(uint32(idx), &e); err != nil {
				return nil, nil, err
			}
			if m.Egress != idx || e.Ifindex != k {
				return nil, nil, fmt.Errorf("if_macs[%d] carries index %d, egress_ifs[%d] names %d; want %d, %d", k, m.Egress, idx, e.Ifindex, idx, k)
			}
			return net.HardwareAddr(m.Mac[:]), net.HardwareAddr(e.Mac[:]), nil
		}
		if out, err := ns.Exec("ip", "link", "set", "ef1", "address", "02:00:00:00:f1:02"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		err = within(func() error {
			m, e, err := entries(k, idx)
			if err == nil && (m.String() != "02:00:00:00:f1:02" || e.String() != "02:00:00:00:f1:02") {
				err = fmt.Errorf("after ef1's MAC change: if_macs %s, egress_ifs %s", m, e)
			}
			return err
		})
		if err != nil {
			return err
		}
		if out, err := ns.Exec("ip", "link", "del", "ef1"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		err = within(func() error {
			var m1 lbReal
			if err := b.objs.IfMacs.Lookup(k, &m1); err == nil {
				return fmt.Errorf("if_macs still holds deleted ef1 (%d)", k)
			}
			var gone lbEgressIf
			if err := b.objs.EgressIfs.Lookup(uint32(idx), &gone); err != nil || gone.Ifindex != 0 {
				return fmt.Errorf("egress_ifs[%d] after ef1 left: %+v, %v", idx, gone, err)
			}
			return nil
		})
		if err != nil {
			return err
		}
		if _, _, err := entries(uint32(eg.Index), idx0); err != nil {
			return fmt.Errorf("ef0, untouched: %w", err)
		}
		if out, err := ns.Exec("ip", "link", "add", "ef2", "type", "veth", "peer", "name", "ef2p"); err != nil {
			return fmt.Errorf("%v: %s", err, out)
		}
		ef2, err := net.InterfaceByName("ef2")
		if err != nil {
			return err
		}
		idx2, err := register(ef2.Index)
		if err != nil {
			return err
		}
		if idx2 != idx {
			return fmt.Errorf("ef2 got index %d, want ef1's freed %d", idx2, idx)
		}
		_, _, err = entries(uint32(ef2.Index), idx2)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
