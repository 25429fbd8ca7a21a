package xdp

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/packet"
)

// xdpCtx is struct xdp_md as BPF_PROG_TEST_RUN takes it: a frame that came
// in by another interface than prog.Run's loopback.
type xdpCtx struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}

// NAT replies leave by the client's interface through its egress index,
// both ways the program learns the interface: the client_nh entry it
// writes on a flow's first packet (the index copied from if_macs) and the
// next hop Go writes for a client it never saw. With if_macs and tx_ports
// emptied only the index can deliver; an index that names another
// interface (stale) falls back to them.
func TestNATRepliesTakeTheEgressIndex(t *testing.T) {
	ns := egressNS(t, "nateg", "ce0")
	onEgress(t, ns, "ce0", func(b *Backend, eg *net.Interface) error {
		if err := b.Apply(context.Background(), goldenNATServices()); err != nil {
			return err
		}
		k := uint32(eg.Index)
		idx := b.egr.byIf[k]
		var im lbReal
		if err := b.objs.IfMacs.Lookup(k, &im); err != nil {
			return err
		}
		if idx == 0 || im.Egress != idx {
			return fmt.Errorf("ce0: index %d, if_macs carries %d", idx, im.Egress)
		}
		const cm, dm, gw = "02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:0a:0a"
		r4 := realMACs["10.1.0.13"].String()
		// The client's first packet comes in by ce0.
		first := natFrame{src: client4, dst: vip4, sport: 1000, dport: 443, ttl: 64, smac: cm, dmac: dm}.frame().Bytes()
		opts := runOpts(first)
		opts.Context = xdpCtx{DataEnd: uint32(len(first)), IngressIfindex: k}
		if _, err := b.Prog().Run(opts); err != nil {
			return fmt.Errorf("client's first packet: %w", err)
		}
		var nk lbNhKey
		nk.Prefixlen = 128
		nk.Addr, _ = addrWords(netip.AddrFrom16(client4.As16()))
		var nv lbNhVal
		if err := b.objs.ClientNh.Lookup(&nk, &nv); err != nil {
			return fmt.Errorf("client_nh after the first packet: %w", err)
		}
		if nv.Ifindex != k || nv.Egress != idx {
			return fmt.Errorf("client_nh %+v, want ifindex %d egress %d", nv, k, idx)
		}
		// Go's next hop for the rest of the world, by ce0 too.
		if err := b.writeHops([]hop{{prefix: netip.MustParsePrefix("0.0.0.0/0"), ifindex: eg.Index, mac: packet.MustMAC(gw)}}); err != nil {
			return err
		}
		var hv lbNhVal
		if err := b.objs.Nexthops.Lookup(nhKey(netip.MustParsePrefix("0.0.0.0/0")), &hv); err != nil {
			return err
		}
		if hv.Egress != idx {
			return fmt.Errorf("nexthops entry %+v, want egress %d", hv, idx)
		}
		replies := []struct {
			name string
			to   netip.Addr
			dmac string
		}{{"seen client", client4, cm}, {"next hop", otherClient4, gw}}
		send := func(to netip.Addr) (uint32, []byte, error) {
			in := natFrame{src: natReal4, dst: to, sport: 8443, dport: 1000, ttl: 64, smac: r4, dmac: dm}.frame().Bytes()
			o := runOpts(in)
			v, err := b.Prog().Run(o)
			return v, o.DataOut, err
		}
		if err := b.objs.IfMacs.Delete(k); err != nil {
			return err
		}
		if err := b.objs.TxPorts.Delete(k); err != nil {
			return err
		}
		for _, r := range replies {
			v, out, err := send(r.to)
			if err != nil {
				return err
			}
			if v != xdpRedirect || !bytes.Equal(out[6:12], eg.HardwareAddr) || net.HardwareAddr(out[:6]).String() != r.dmac {
				return fmt.Errorf("%s by index: verdict %d, MACs %x -> %x (want %s -> %s)", r.name, v, out[6:12], out[:6], eg.HardwareAddr, r.dmac)
			}
		}
		if err := b.objs.IfMacs.Put(k, &im); err != nil {
			return err
		}
		if err := b.objs.TxPorts.Put(k, k); err != nil {
			return err
		}
		stale := lbEgressIf{Mac: [6]byte{2, 0xee, 0xee, 0xee, 0xee, 0xee}, Ifindex: k + 1000}
		if err := b.objs.EgressIfs.Put(uint32(idx), &stale); err != nil {
			return err
		}
		for _, r := range replies {
			v, out, err := send(r.to)
			if err != nil {
				return err
			}
			if v != xdpRedirect || !bytes.Equal(out[6:12], eg.HardwareAddr) {
				return fmt.Errorf("%s, stale index: verdict %d, source MAC %x (want %s from if_macs)", r.name, v, out[6:12], eg.HardwareAddr)
			}
		}
		return nil
	})
}
