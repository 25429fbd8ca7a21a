package xdp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

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
// ifname (one of ns's interfaces), and fails the test with fn's error. The
// backend is made by New, so its background work runs (every
// refreshEvery: a test that waits for it shortens that).
func onEgress(t *testing.T, ns *lab.NS, ifname string, fn func(b *Backend, eg *net.Interface) error) {
	t.Helper()
	err := ns.Do(func() error {
		eg, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		b, err := New(Options{ResolveMAC: resolveVia(eg)})
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
