package xdp

import (
	"context"
	"fmt"
	"os"
	"sort"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// BenchmarkGUE compares the encapsulations under one measurement, as
// ratios to DR: single runs on fresh copies (the program rewrites its
// buffer), timed by the kernel's per-program run-time statistics, paths
// interleaved over rounds so that the machine's load falls on all alike;
// medians over the rounds.
func BenchmarkGUE(b *testing.B) {
	lab.RequireRoot(b)
	be, err := Load("")
	if err != nil {
		b.Fatal(err)
	}
	be.opts.ResolveMAC = fakeResolve
	b.Cleanup(func() { be.Close() })
	if err := be.Apply(context.Background(), []dataplane.Service{
		svc(vip4, 80, dataplane.TCP, "rr", "10.1.0.11"),
		tunSvc(vip4, 8081, "10.1.0.14"),
		gueSvc(vip4, 8082, dataplane.TCP, "10.1.0.13", ""),
		gueSvc(vip4, 8083, dataplane.TCP, "10.1.0.14", "csum"),
		tunSvc(vip6, 8081, "fd00:1::14"),
		gueSvc(vip6, 8082, dataplane.TCP, "fd00:1::13", ""),
	}); err != nil {
		b.Fatal(err)
	}
	tcp6 := func(dport uint16) []byte {
		return (&packet.Frame{Dst: dirMAC, Src: clientMAC, IPv6: &packet.IPv6{Src: client6, Dst: vip6},
			TCP: &packet.TCP{SrcPort: 2000, DstPort: dport, Flags: packet.TCPAck}, Payload: make([]byte, 512)}).Bytes()
	}
	tcp := func(dport uint16) []byte {
		f := tcp4(vip4, dport, 1000)
		f.TCP.Flags, f.Payload = packet.TCPAck, make([]byte, 512)
		return f.Bytes()
	}
	paths := []struct {
		label string
		in    []byte
	}{
		{"dr", tcp(80)}, {"ipip", tcp(8081)}, {"gue4-nocsum", tcp(8082)}, {"gue4-csum", tcp(8083)},
		{"ip6ip6", tcp6(8081)}, {"gue6", tcp6(8082)},
	}
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Skipf("run-time statistics: %v", err)
	}
	defer stats.Close()
	runTime := func(in []byte, runs int) float64 {
		s0, err := be.Prog().Stats()
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < runs; i++ {
			if _, err := be.Prog().Run(&ebpf.RunOptions{Data: in, DataOut: make([]byte, len(in)+64)}); err != nil {
				b.Fatal(err)
			}
		}
		s1, err := be.Prog().Stats()
		if err != nil {
			b.Fatal(err)
		}
		if n := s1.RunCount - s0.RunCount; n > 0 {
			return float64((s1.Runtime - s0.Runtime).Nanoseconds()) / float64(n)
		}
		return 0
	}
	const rounds, runs = 11, 2000
	res := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, p := range paths {
			if ns := runTime(p.in, runs); ns > 0 {
				res[p.label] = append(res[p.label], ns)
			}
		}
	}
	msg := fmt.Sprintf("\nprogram run time (bpf_stats), 580-byte TCP frames, median of %d interleaved rounds x %d single runs:", rounds, runs)
	var dr float64
	for _, p := range paths {
		v := res[p.label]
		if len(v) == 0 {
			b.Fatalf("no run-time statistics for %s", p.label)
		}
		sort.Float64s(v)
		m := v[len(v)/2]
		if p.label == "dr" {
			dr = m
		}
		b.ReportMetric(m, p.label+"-ns/pkt")
		msg += fmt.Sprintf(" %s %.0f ns (%.2fx DR);", p.label, m, m/dr)
	}
	med := func(l string) float64 { v := res[l]; return v[len(v)/2] }
	msg += fmt.Sprintf(" GUE over ipip: v4 nocsum %.2fx, v4 csum %.2fx, v6 %.2fx (over ip6ip6)",
		med("gue4-nocsum")/med("ipip"), med("gue4-csum")/med("ipip"), med("gue6")/med("ip6ip6"))
	fmt.Fprintln(os.Stderr, msg)
}
