package bench

import (
	"math"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
)

func TestMedianSpreadFloor(t *testing.T) {
	if m := Median([]float64{3, 1, 2}); m != 2 {
		t.Fatalf("median %v", m)
	}
	if m := Median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Fatalf("median %v", m)
	}
	if !math.IsNaN(Median(nil)) || !math.IsNaN(Ratio(1, 0)) {
		t.Fatal("missing figures must stay missing")
	}
	if s := Spread([]float64{9, 10, 11}); math.Abs(s-0.2) > 1e-9 {
		t.Fatalf("spread %v", s)
	}
	// Ratios are rounded down: 0.949 must not read as 0.95.
	if got := floor(0.9499, 2); got != "0.94" {
		t.Fatalf("floor %s", got)
	}
	if got := f(math.NaN(), 2); got != "–" {
		t.Fatalf("missing figure printed as %q", got)
	}
}

func TestTemplateOffsets(t *testing.T) {
	for _, s := range []Spec{
		{Family: 4, Size: 64, Src: ClientIP, Dst: VIP, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 9},
		{Family: 4, TCP: true, Size: 64, Src: ClientIP, Dst: VIP, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 80},
		{Family: 6, Size: 78, Src: ClientIP6, Dst: VIP6, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 9},
		{Family: 6, TCP: true, Size: 80, Src: ClientIP6, Dst: VIP6, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 80},
		{Family: 4, Size: 64, Src: Real1, Dst: ClientIP, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 8080, DPort: 1024, VaryDst: true},
	} {
		tm, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		addr, port := s.Src, s.SPort
		if s.VaryDst {
			addr, port = s.Dst, s.DPort
		}
		b := addr.AsSlice()
		if got := tm.Frame[tm.AddrOff : tm.AddrOff+4]; string(got) != string(b[len(b)-4:]) {
			t.Errorf("%+v: address offset %d holds % x", s, tm.AddrOff, got)
		}
		if got := uint16(tm.Frame[tm.PortOff])<<8 | uint16(tm.Frame[tm.PortOff+1]); got != port {
			t.Errorf("%+v: port offset holds %d", s, got)
		}
		p, err := packet.Parse(tm.Frame)
		if err != nil || !p.L3CsumOK || !p.L4CsumOK {
			t.Errorf("%+v: template does not parse with good checksums: %v", s, err)
		}
	}
	if _, err := (Spec{Family: 4, TCP: true, Size: 50, Src: ClientIP, Dst: VIP}).Build(); err == nil {
		t.Error("a frame shorter than its headers was built")
	}
}

// The generator's per-flow rewrite keeps every checksum valid, varies
// source port and address, and restores the template first (the frame
// given to it is garbage, as a recycled live-frame page may be).
func TestGeneratorChecksums(t *testing.T) {
	lab.RequireRoot(t)
	p, err := LoadProgs()
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	specs := []Spec{
		{Family: 4, Size: 64, Src: ClientIP, Dst: VIP, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 9},
		{Family: 4, TCP: true, Size: 64, Src: ClientIP, Dst: VIP, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 80, TCPFlags: packet.TCPAck},
		{Family: 6, Size: 78, Src: ClientIP6, Dst: VIP6, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 9},
		{Family: 6, TCP: true, Size: 80, Src: ClientIP6, Dst: VIP6, SrcMAC: GenMAC, DstMAC: GenMAC, SPort: 1024, DPort: 80},
	}
	for _, s := range specs {
		tm, err := s.Build()
		if err != nil {
			t.Fatal(err)
		}
		for _, flows := range []int{32768, NewFlows} {
			if err := p.Configure(tm, flows); err != nil {
				t.Fatal(err)
			}
			seen := map[netip.AddrPort]bool{}
			for i := 0; i < 20; i++ {
				junk := make([]byte, len(tm.Frame))
				copy(junk[tm.HdrLen:], tm.Frame[tm.HdrLen:])
				for j := 0; j < tm.HdrLen; j++ {
					junk[j] = byte(i + j)
				}
				out := make([]byte, len(junk)+256)
				ret, err := p.objs.XdpGen.Run(&ebpf.RunOptions{Data: junk, DataOut: out, Repeat: uint32(1 + i*97)})
				if err != nil || ret != 3 { // XDP_TX
					t.Fatalf("run: %d %v", ret, err)
				}
				pk, err := packet.Parse(out[:len(junk)])
				if err != nil {
					t.Fatal(err)
				}
				if !pk.L3CsumOK || !pk.L4CsumOK {
					t.Fatalf("%d-flow %+v frame %d: bad checksum (L3 %v L4 %v)", flows, s, i, pk.L3CsumOK, pk.L4CsumOK)
				}
				var src netip.Addr
				var sport uint16
				if pk.IPv4 != nil {
					src = pk.IPv4.Src
				} else {
					src = pk.IPv6.Src
				}
				if pk.TCP != nil {
					sport = pk.TCP.SrcPort
				} else {
					sport = pk.UDP.SrcPort
				}
				seen[netip.AddrPortFrom(src, sport)] = true
			}
			if len(seen) < 15 {
				t.Errorf("%+v: only %d distinct flows in 20 frames", s, len(seen))
			}
		}
	}
}

// TestQuick is `make bench-quick` as a test: every scenario runs once on
// the lab and must deliver frames of the right shape to its sink.
// Timings are never asserted; a scenario this kernel or backend refuses is
// logged as skipped.
func TestQuick(t *testing.T) {
	lab.RequireRoot(t)
	if _, err := exec.LookPath("nft"); err != nil && testkit.Strict() {
		t.Errorf("nft is missing: the nftables rows cannot run (make deps installs nftables)")
	}
	env := NewEnv(t)
	res := Run(env, Scenarios(), Options{Runs: 1, Packets: 20000, Batch: 64})
	ran := 0
	for _, r := range res {
		switch {
		case r.Skipped != "":
			t.Logf("%s: skipped: %s", r.Scenario.Name, r.Skipped)
		case r.Err != nil:
			t.Errorf("%s: %v", r.Scenario.Name, r.Err)
		default:
			ran++
			if r.Got == 0 {
				t.Errorf("%s: nothing reached the sink", r.Scenario.Name)
			}
			t.Logf("%s: %d of %d frames at the sink", r.Scenario.Name, r.Got, r.Sent)
		}
	}
	if ran < 10 {
		t.Errorf("only %d scenarios ran", ran)
	}
}
