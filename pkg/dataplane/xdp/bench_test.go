package xdp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/internal/testkit/lab"
)

func benchBackend(b *testing.B, spec *ebpf.CollectionSpec) *Backend {
	b.Helper()
	be, err := loadSpec(spec, Options{})
	if err != nil {
		b.Fatal(err)
	}
	be.opts.ResolveMAC = fakeResolve
	b.Cleanup(func() { be.Close() })
	if err := be.Apply(context.Background(), goldenServices()); err != nil {
		b.Fatal(err)
	}
	return be
}

// BenchmarkGolden runs golden frames through the program with
// BPF_PROG_TEST_RUN (the fixtures are the benchmark) and reports the cost
// per packet of each path.
func BenchmarkGolden(b *testing.B) {
	lab.RequireRoot(b)
	spec, err := loadLb()
	if err != nil {
		b.Fatal(err)
	}
	be := benchBackend(b, spec)
	if err := be.Apply(context.Background(), append(goldenServices(), goldenNATServices()...)); err != nil {
		b.Fatal(err)
	}
	cases := append(append(goldenCases(), natCases()...), tunCases()...)
	// Every case once, in table order: NAT replies then find the flow
	// their forward case recorded.
	for _, fr := range cases {
		if _, err := be.Prog().Run(runOpts(fr.in)); err != nil {
			b.Fatal(err)
		}
	}
	for _, fr := range cases {
		if !fr.bench {
			continue
		}
		name := strings.ReplaceAll(fr.name, " ", "-")
		if fr.out != nil && !bytes.Equal(fr.out[12:], fr.in[12:]) {
			// The kernel repeats a run on the same buffer: a NAT case would
			// measure its own output (another path) from the second run on.
			// Single runs timed by the kernel's run-time statistics
			// instead; nat-vs-dr below measures DR the same way.
			b.Run(name, func(b *testing.B) {
				stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
				if err != nil {
					b.Skipf("run-time statistics: %v", err)
				}
				defer stats.Close()
				b.ReportMetric(singleRuns(b, be, fr.in, 20000), "ns/pkt")
			})
			continue
		}
		b.Run(name, func(b *testing.B) {
			_, d, err := be.Prog().Benchmark(fr.in, max(b.N, 100000), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
		})
	}
	b.Run("nat-vs-dr-single-runs", func(b *testing.B) { natVersusDR(b, be, cases) })
}

// natVersusDR compares the NAT paths with the DR path under one
// measurement: single runs (the kernel repeats a run on the same buffer,
// which NAT rewrites), timed by the kernel's own per-program run-time
// statistics (bpf_stats_enabled: the program alone, without the test-run
// syscall), interleaved over rounds so that the machine's load falls on all
// paths alike; medians over the rounds.
func natVersusDR(b *testing.B, be *Backend, cases []golden) {
	stats, err := ebpf.EnableStats(unix.BPF_STATS_RUN_TIME)
	if err != nil {
		b.Skipf("run-time statistics: %v", err)
	}
	defer stats.Close()
	byName := map[string][]byte{}
	for _, c := range cases {
		byName[c.name] = c.in
	}
	paths := []struct{ label, fixture string }{
		{"dr", "vip tcp4"},
		{"nat-forward", "nat tcp4 client to vip:443 -> real:8443"},
		{"nat-reply", "nat tcp4 reply real:8443 -> vip:443"},
		{"tun", "tun ipip v4-in-v4"},
		{"pass", "other address"},
	}
	const rounds, runs = 11, 2000
	res := map[string][]float64{}
	for r := 0; r < rounds; r++ {
		for _, p := range paths {
			if ns := singleRuns(b, be, byName[p.fixture], runs); ns > 0 {
				res[p.label] = append(res[p.label], ns)
			}
		}
	}
	med := map[string]float64{}
	for _, p := range paths {
		v := res[p.label]
		if len(v) == 0 {
			b.Fatalf("no run-time statistics for %s", p.label)
		}
		sort.Float64s(v)
		med[p.label] = v[len(v)/2]
		b.ReportMetric(med[p.label], p.label+"-ns/pkt")
	}
	fmt.Fprintf(os.Stderr, "\nprogram run time (bpf_stats), median of %d interleaved rounds x %d single runs: DR %.0f ns, "+
		"NAT forward %.0f ns (%.2fx DR), NAT reply %.0f ns (%.2fx DR), TUN %.0f ns (%.2fx DR), non-VIP pass %.0f ns\n", rounds, runs,
		med["dr"], med["nat-forward"], med["nat-forward"]/med["dr"], med["nat-reply"], med["nat-reply"]/med["dr"],
		med["tun"], med["tun"]/med["dr"], med["pass"])
}

// singleRuns runs in that many times, each on a fresh copy, and returns the
// program's mean run time from the kernel's statistics (0 when they are
// off).
func singleRuns(b *testing.B, be *Backend, in []byte, runs int) float64 {
	s0, err := be.Prog().Stats()
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < runs; i++ {
		if _, err := be.Prog().Run(&ebpf.RunOptions{Data: in}); err != nil {
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
