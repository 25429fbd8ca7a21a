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
	"github.com/halo-lb/halo/pkg/dataplane"
)

// FuzzGUEProgram: any frame through a GUE configuration (IPv4 nocsum and
// csum, IPv6) either passes byte for byte or leaves as a GUE frame to a
// configured real's MAC and address: UDP to the tunnel port from a port in
// 49152-65535, a version-0 GUE header naming the inner family, and the
// input's IP packet (cut to its own length) byte for byte; the outer IPv4
// header checksum is always valid, and the outer UDP checksum is valid
// whenever the inner TCP/UDP checksum was. Under `make test` it runs on the
// seeds (the golden GUE inputs).
func FuzzGUEProgram(f *testing.F) {
	seeds := []*packet.Frame{tcp4(vip4, 8082, 1000), tcp4(vip4, 8083, 1000),
		{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: client6, Dst: vip6},
			TCP: &packet.TCP{SrcPort: 2000, DstPort: 8082, Flags: packet.TCPSyn}, Payload: []byte("GET /")},
		{Dst: dirMAC, Src: clientMAC, IPv4: &packet.IPv4{Src: client4, Dst: vip4}, UDP: &packet.UDP{SrcPort: 5353, DstPort: 8084}, Payload: []byte("q")}}
	for _, s := range seeds {
		f.Add(s.Bytes())
	}
	f.Add(append(tcp4(vip4, 8083, 1001).Bytes(), 1, 2, 3, 4))
	lab.RequireRoot(f)
	b, err := Load("")
	if err != nil {
		f.Fatal(err)
	}
	b.opts.ResolveMAC = fakeResolve
	f.Cleanup(func() { b.Close() })
	if err := b.Apply(context.Background(), []dataplane.Service{
		gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", ""),
		gueSvc(vip4, 8083, dataplane.TCP, "10.1.0.14", "csum"),
		gueSvc(vip4, 8084, dataplane.UDP, "10.1.0.12", "csum"),
		gueSvc(vip6, 8082, dataplane.TCP, "fd00:1::13", ""),
	}); err != nil {
		f.Fatal(err)
	}
	reals := map[netip.Addr]string{}
	for _, a := range []string{"10.1.0.12", "10.1.0.13", "10.1.0.14", "fd00:1::13"} {
		reals[netip.MustParseAddr(a)] = realMACs[a].String()
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) < 14 || len(in) > maxFuzzSize {
			t.Skip("bpf_prog_test_run needs an Ethernet header and at most one frame")
		}
		orig := bytes.Clone(in)
		opts := runOpts(bytes.Clone(in))
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
		inIP, ok1 := ipInfo(orig)
		outIP, ok2 := ipInfo(out)
		if !ok1 || !ok2 || outIP.off != 14 {
			t.Fatalf("sent frame without a parseable untagged IP header\n  in %x\n out %x", orig, out)
		}
		if mac, ok := reals[outIP.dst]; !ok || net.HardwareAddr(out[0:6]).String() != mac {
			t.Fatalf("sent to %v at %s: not a configured GUE real\n out %x", outIP.dst, net.HardwareAddr(out[0:6]), out)
		}
		iplen, proto, family := int(binary.BigEndian.Uint16(orig[inIP.off+2:])), orig[inIP.off+9], byte(4)
		if inIP.hlen == 40 {
			iplen, proto, family = 40+int(binary.BigEndian.Uint16(orig[inIP.off+4:])), orig[inIP.off+6], 41
		}
		if inIP.off+iplen > len(orig) {
			t.Fatalf("a packet longer than its frame was sent\n  in %x\n out %x", orig, out)
		}
		inner := orig[inIP.off : inIP.off+iplen]
		udp := out[14+outIP.hlen:]
		if len(udp) < 12 || binary.BigEndian.Uint16(udp[2:]) != gueTestPort || binary.BigEndian.Uint16(udp[0:]) < 49152 ||
			int(binary.BigEndian.Uint16(udp[4:])) != len(udp) || !bytes.Equal(udp[8:12], []byte{0, family, 0, 0}) ||
			!bytes.Equal(udp[12:], inner) {
			t.Fatalf("not UDP to %d + GUE + the input packet\n  in %x\n out %x", gueTestPort, orig, out)
		}
		if outIP.hlen == 20 && !rfc1071ok(rfc1071(out[14:34], 0)) {
			t.Fatalf("outer IPv4 header checksum wrong\n out %x", out)
		}
		if outIP.hlen == 40 && binary.BigEndian.Uint16(udp[6:]) == 0 {
			t.Fatalf("IPv6 GUE without a UDP checksum\n out %x", out)
		}
		if (proto == 6 || proto == 17) && safeValid(append(bytes.Clone(orig[:inIP.off]), inner...)) {
			if err := rfc1071Valid(out); err != nil {
				t.Fatalf("valid inner checksum, outer %v\n  in %x\n out %x", err, orig, out)
			}
		}
	})
}
