package xdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

// FuzzNATProgram is FuzzProgram's counterpart for the NAT and TUN
// configuration (FuzzProgram keeps the DR-only one): any frame, however
// truncated or malformed, either passes byte for byte, or leaves (XDP_TX:
// every golden real is on the ingress link) as one of
//   - DR: only the MACs rewritten;
//   - NAT request: same length, the IP destination a configured NAT real,
//     the payload after the L4 header (ICMP errors: after the quoted
//     ports) untouched, and checksums valid whenever they were valid on
//     the way in;
//   - NAT reply: same length, the IP source a VIP, same checksum rule (to
//     the MAC the flow came from, whatever the fuzzer made it);
//   - TUN: the input's IP packet, byte for byte, behind an outer header to a
//     configured TUN real.
//
// Under `make test` it runs on the seeds (every golden, NAT and TUN case).
func FuzzNATProgram(f *testing.F) {
	for _, c := range append(append(append(goldenCases(), natCases()...), natICMPCases()...), tunCases()...) {
		f.Add(c.in)
	}
	lab.RequireRoot(f)
	b, err := Load("")
	if err != nil {
		f.Fatal(err)
	}
	b.opts.ResolveMAC = fakeResolve
	f.Cleanup(func() { b.Close() })
	services := append(goldenServices(), goldenNATServices()...)
	if err := b.Apply(context.Background(), services); err != nil {
		f.Fatal(err)
	}
	natReals, tunReals, vips := map[netip.Addr]bool{}, map[netip.Addr]bool{}, map[netip.Addr]bool{}
	for _, s := range services {
		vips[s.Key.Addr] = true
		for _, r := range s.Reals {
			switch methodOf(s, r) {
			case "NAT":
				natReals[r.Addr] = true
			case "TUN":
				tunReals[r.Addr] = true
			}
		}
	}
	macs := map[string]bool{}
	for _, m := range realMACs {
		macs[m.String()] = true
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > maxFuzzSize {
			t.Skip("bpf_prog_test_run needs an Ethernet header and at most one frame")
		}
		orig := append([]byte(nil), in...)
		opts := runOpts(append([]byte(nil), in...))
		verdict, err := b.Prog().Run(opts)
		if err != nil {
			t.Fatalf("prog.Run: %v", err)
		}
		out := opts.DataOut
		switch verdict {
		case xdpPass:
			if !bytes.Equal(out, orig) {
				t.Fatalf("passed frame changed\n  in %x\n out %x", orig, out)
			}
			return
		case xdpTX:
		default:
			t.Fatalf("verdict %d for %x", verdict, orig)
		}
		toReal := macs[net.HardwareAddr(out[0:6]).String()]
		if bytes.Equal(out[12:], orig[12:]) {
			if !toReal {
				t.Fatalf("DR frame sent to %s, not a real's MAC", net.HardwareAddr(out[0:6]))
			}
			return
		}
		inIP, ok1 := ipInfo(orig)
		outIP, ok2 := ipInfo(out)
		if !ok1 || !ok2 {
			t.Fatalf("rewritten frame without a parseable IP header\n  in %x\n out %x", orig, out)
		}
		switch {
		case len(out) > len(orig): // TUN
			if !toReal || !tunReals[outIP.dst] || !bytes.Equal(out[outIP.off+outIP.hlen:], orig[inIP.off:]) {
				t.Fatalf("encapsulated to %v, or inner packet changed\n  in %x\n out %x", outIP.dst, orig, out)
			}
		case len(out) != len(orig):
			t.Fatalf("frame length %d -> %d", len(orig), len(out))
		case natReals[outIP.dst] && vips[inIP.dst] && toReal,
			// A reply goes to the MAC its flow's first packet came from.
			vips[outIP.src] && natReals[inIP.src]:
			l4 := inIP.off + inIP.hlen + 20 // beyond ports and checksums
			if p := orig[inIP.off+9-3*(inIP.hlen/40)]; p == 1 || p == 58 {
				// An ICMP error: its quoted packet's addresses, ports and
				// header checksum are translated too.
				l4 = inIP.off + 2*inIP.hlen + 8 + 4
			}
			if len(orig) > l4 && !bytes.Equal(out[l4:], orig[l4:]) {
				t.Fatalf("payload changed\n  in %x\n out %x", orig, out)
			}
			if safeValid(orig) && !safeValid(out) {
				t.Fatalf("valid checksums in, invalid out\n  in %x\n out %x", orig, out)
			}
		default:
			t.Fatalf("rewritten %v->%v into %v->%v: neither a NAT request to a real nor a reply from one\n  in %x\n out %x",
				inIP.src, inIP.dst, outIP.src, outIP.dst, orig, out)
		}
	})
}

type ipHdr struct {
	src, dst  netip.Addr
	off, hlen int
}

// ipInfo finds the IP header behind at most two VLAN tags.
func ipInfo(b []byte) (ipHdr, bool) {
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	for tags := 0; (et == 0x8100 || et == 0x88a8) && tags < 2; tags++ {
		off += 4
		if len(b) < off+2 {
			return ipHdr{}, false
		}
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	switch {
	case et == 0x0800 && len(b) >= off+20:
		return ipHdr{netip.AddrFrom4([4]byte(b[off+12 : off+16])), netip.AddrFrom4([4]byte(b[off+16 : off+20])), off, 20}, true
	case et == 0x86dd && len(b) >= off+40:
		return ipHdr{netip.AddrFrom16([16]byte(b[off+8 : off+24])), netip.AddrFrom16([16]byte(b[off+24 : off+40])), off, 40}, true
	}
	return ipHdr{}, false
}

// safeValid is rfc1071Valid for frames whose length fields may lie: a
// frame it cannot walk counts as invalid.
func safeValid(b []byte) (ok bool) {
	defer func() {
		if recover() != nil {
			ok = false
		}
	}()
	return rfc1071Valid(b) == nil
}
