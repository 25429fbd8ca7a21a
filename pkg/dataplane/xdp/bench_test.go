package xdp

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

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
	for _, fr := range goldenCases() {
		if !fr.bench {
			continue
		}
		b.Run(strings.ReplaceAll(fr.name, " ", "-"), func(b *testing.B) {
			_, d, err := be.Prog().Benchmark(fr.in, max(b.N, 100000), nil)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(d.Nanoseconds()), "ns/pkt")
		})
	}
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
