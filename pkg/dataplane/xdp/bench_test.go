package xdp

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/cilium/ebpf"

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
	cases := append(goldenCases(), natCases()...)
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
			// Single runs, averaged, instead; the DR case is measured the
			// same way beside them so the two compare.
			b.Run(name, func(b *testing.B) { b.ReportMetric(singleShot(b, be, fr.in), "ns/pkt") })
			continue
		}
		b.Run(name, func(b *testing.B) {
			_, d, err := be.Prog().Benchmark(fr.in, max(b.N, 100000), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
		})
		if fr.verdict == xdpTX {
			b.Run(name+"-single-runs", func(b *testing.B) { b.ReportMetric(singleShot(b, be, fr.in), "ns/pkt") })
		}
	}
}

// singleShot is the mean of the kernel-measured duration of single
// BPF_PROG_TEST_RUN runs of in (each on a fresh copy of the frame).
func singleShot(b *testing.B, be *Backend, in []byte) float64 {
	const runs = 20000
	var total time.Duration
	for i := 0; i < runs; i++ {
		_, d, err := be.Prog().Benchmark(in, 1, nil)
		if err != nil {
			b.Fatal(err)
		}
		total += d
	}
	return float64(total.Nanoseconds()) / runs
}

// BenchmarkConntrack compares the global LRU connection table that halo
// uses with a per-CPU LRU, on the established-flow path, in one run.
func BenchmarkConntrack(b *testing.B) {
	lab.RequireRoot(b)
	global, err := loadLb()
	if err != nil {
		b.Fatal(err)
	}
	percpu, err := loadLbpercpu()
	if err != nil {
		b.Fatal(err)
	}
	res := map[string]float64{}
	for _, v := range []struct {
		name string
		spec *ebpf.CollectionSpec
	}{{"global-lru", global}, {"percpu-lru", percpu}} {
		be := benchBackend(b, v.spec)
		frame := tcp4(vip4, 80, 1000).Bytes()
		const repeat = 2000000
		var best float64
		for i := 0; i < 3; i++ {
			_, d, err := be.Prog().Benchmark(frame, repeat, nil)
			if err != nil {
				b.Fatal(err)
			}
			if ns := float64(d.Nanoseconds()); best == 0 || ns < best {
				best = ns
			}
		}
		res[v.name] = best
		b.ReportMetric(best, v.name+"-ns/pkt")
	}
	fmt.Fprintf(os.Stderr, "\nestablished flow, ns per packet (best of 3 x 2M): global LRU %.1f, per-CPU LRU %.1f, ratio %.2f\n",
		res["global-lru"], res["percpu-lru"], res["global-lru"]/res["percpu-lru"])
}
