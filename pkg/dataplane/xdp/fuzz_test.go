package xdp

import (
	"bytes"
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
)

// maxFuzzSize: one Ethernet MTU frame; bpf_prog_test_run caps near a page anyway.
const maxFuzzSize = 1514

// FuzzProgram sends random and mutated frames through the loaded XDP
// program (prog.Run, no interface needed) with the golden configuration,
// and checks the properties that must hold for any frame whatever:
//   - the program never errors or aborts, and never drops (the golden reals
//     are all reachable on the ingress link);
//   - a passed frame leaves byte for byte as it came (non-VIP traffic is the
//     stack's business, untouched);
//   - a transmitted frame was addressed to a VIP, leaves with a configured
//     real's MAC as destination, our MAC (its old destination) as source, and
//     every byte after the MACs unchanged: never a half-rewritten header.
//
// Seeds: every golden fixture and a few builder frames. Without root the
// fuzzer skips (loading BPF needs it); under `make test` it runs on the seeds.
func FuzzProgram(f *testing.F) {
	for _, c := range goldenCases() {
		f.Add(c.in)
	}
	syn := tcp4(vip4, 80, 4242)
	f.Add(syn.Bytes())
	rst := tcp4(vip4, 80, 4243)
	rst.TCP.Flags = packet.TCPRst | packet.TCPAck
	f.Add(rst.Bytes())
	f.Add((&packet.Frame{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4},
		ICMP: &packet.ICMP{Type: 3, Code: 4}, Payload: tcp4(client4, 1000, 80).Bytes()[14:]}).Bytes())
	f.Add(make([]byte, 14))

	lab.RequireRoot(f)
	b, err := Load("")
	if err != nil {
		f.Fatal(err)
	}
	b.opts.ResolveMAC = fakeResolve
	f.Cleanup(func() { b.Close() })
	if err := b.Apply(context.Background(), goldenServices()); err != nil {
		f.Fatal(err)
	}
	reals := map[string]bool{}
	for _, m := range realMACs {
		reals[m.String()] = true
	}

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > maxFuzzSize {
			t.Skip("bpf_prog_test_run needs an Ethernet header and at most one frame")
		}
		in = append([]byte(nil), in...)
		orig := append([]byte(nil), in...)
		opts := runOpts(in)
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
		case xdpTX:
			dst, ok := ipDst(orig)
			if !ok || (dst != vip4 && dst != vip6) {
				t.Fatalf("frame to %v (parsed %v) transmitted; only VIP traffic may be: %x", dst, ok, orig)
			}
			if len(out) != len(orig) {
				t.Fatalf("DR changed the frame length %d -> %d", len(orig), len(out))
			}
			to := net.HardwareAddr(out[0:6]).String()
			if !reals[to] {
				t.Fatalf("transmitted to %s, not a configured real's MAC", to)
			}
			if want, ok := serviceReal(orig); ok && to != realMACs[want].String() {
				t.Fatalf("transmitted to %s; the service's only real is %s (%s)", to, want, realMACs[want])
			}
			if !bytes.Equal(out[6:12], orig[0:6]) {
				t.Fatalf("source MAC %x, want the old destination %x", out[6:12], orig[0:6])
			}
			if !bytes.Equal(out[12:], orig[12:]) {
				t.Fatalf("bytes after the MACs rewritten (half-rewritten frame)\n  in %x\n out %x", orig, out)
			}
		default:
			t.Fatalf("verdict %d (drop=%d) for %x", verdict, xdpDrop, orig)
		}
	})
}

// ipDst reads the IP destination the way the program does: behind at most
// two VLAN tags, IPv4 or IPv6. It never trusts anything the frame says
// about its own length beyond the bytes present.
func ipDst(b []byte) (netip.Addr, bool) {
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	for tags := 0; (et == 0x8100 || et == 0x88a8) && tags < 2; tags++ {
		off += 4
		if len(b) < off+2 {
			return netip.Addr{}, false
		}
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	switch et {
	case 0x0800:
		if len(b) < off+20 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom4([4]byte(b[off+16 : off+20])), true
	case 0x86dd:
		if len(b) < off+40 {
			return netip.Addr{}, false
		}
		return netip.AddrFrom16([16]byte(b[off+24 : off+40])), true
	}
	return netip.Addr{}, false
}

// serviceReal is the one real of the golden service a TCP or UDP frame is
// for (every golden service has a single real); ok is false for anything
// else (ICMP errors are steered by the packet they quote).
func serviceReal(b []byte) (string, bool) {
	off := 12
	et := binary.BigEndian.Uint16(b[off:])
	for tags := 0; (et == 0x8100 || et == 0x88a8) && tags < 2; tags++ {
		off += 4
		et = binary.BigEndian.Uint16(b[off:])
	}
	off += 2
	var proto byte
	var l4 int
	switch et {
	case 0x0800:
		proto, l4 = b[off+9], off+int(b[off]&0xf)*4
	case 0x86dd:
		proto, l4 = b[off+6], off+40
	default:
		return "", false
	}
	if (proto != 6 && proto != 17) || len(b) < l4+4 {
		return "", false
	}
	dst, _ := ipDst(b)
	port := binary.BigEndian.Uint16(b[l4+2:])
	switch {
	case dst == vip4 && proto == 6 && port == 80:
		return "10.1.0.11", true
	case dst == vip4 && proto == 17 && port == 53:
		return "10.1.0.12", true
	case dst == vip6 && ((proto == 6 && port == 443) || (proto == 17 && port == 53)):
		return "fd00:1::11", true
	}
	return "", false
}
