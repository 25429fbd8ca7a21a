package xdp

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
	"unsafe"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/pkg/dataplane"
)

// scaleSet is 1,000 services of 100 reals each, drawn from 10,000 real
// addresses (reals serve several services, as in a farm).
func scaleSet(services, reals int) []dataplane.Service {
	out := make([]dataplane.Service, 0, services)
	for i := 0; i < services; i++ {
		s := dataplane.Service{Key: dataplane.ServiceKey{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: 80, Proto: dataplane.TCP},
			Scheduler: "wlc", Method: dataplane.DR}
		for j := 0; j < reals; j++ {
			s.Reals = append(s.Reals, dataplane.Real{Addr: netip.AddrFrom4([4]byte{10, 2, byte(j), byte(i % 100)}), Weight: uint32(1 + j%4)})
		}
		out = append(out, s)
	}
	return out
}

func instantMAC(ip netip.Addr) (net.HardwareAddr, int, error) {
	a := ip.As4()
	return net.HardwareAddr{2, 0, a[0], a[1], a[2], a[3]}, 0, nil
}

// BenchmarkApplyAtScale applies 1,000 services x 100 reals to fresh maps
// (the bound: 2 s) and then one health verdict (one real's weight
// in one service), and prints the kernel memory the maps take.
func BenchmarkApplyAtScale(b *testing.B) {
	lab.RequireRoot(b)
	be, err := LoadWith(Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer be.Close()
	be.opts.ResolveMAC = instantMAC
	set := scaleSet(1000, 100)
	cpu0 := cpuTime()
	start := time.Now()
	if err := be.Apply(context.Background(), set); err != nil {
		b.Fatal(err)
	}
	full := time.Since(start)
	fullCPU := cpuTime() - cpu0
	set[500].Reals[7].Weight = 0
	start = time.Now()
	if err := be.Apply(context.Background(), set); err != nil {
		b.Fatal(err)
	}
	one := time.Since(start)
	b.ReportMetric(full.Seconds(), "s/full-apply")
	b.ReportMetric(float64(one.Microseconds()), "µs/one-verdict")
	fmt.Fprintf(os.Stderr, "\napply 1000 services x 100 reals into fresh maps: %v wall, %v CPU (user+system, this process); one weight change after it: %v\n",
		full.Round(time.Millisecond), fullCPU.Round(time.Millisecond), one.Round(time.Microsecond))
	fmt.Fprint(os.Stderr, memoryReport(b, be, 1000))
}

// memoryReport sums the kernel memory (memlock, as the kernel accounts
// it) of every map, and of the per-service tables for n services.
func memoryReport(tb testing.TB, be *Backend, n int) string {
	var sb strings.Builder
	var total uint64
	// Every map of the program, by its name in bpf/lb_maps.h.
	m := map[string]*ebpf.Map{}
	mv := reflect.ValueOf(be.objs.lbMaps)
	for i := 0; i < mv.NumField(); i++ {
		if em, ok := mv.Field(i).Interface().(*ebpf.Map); ok && em != nil {
			m[mv.Type().Field(i).Tag.Get("ebpf")] = em
		}
	}
	names := slices.Sorted(maps.Keys(m))
	cpus, _ := ebpf.PossibleCPU()
	fmt.Fprintf(&sb, "kernel memory of the maps (memlock, %d possible CPUs):\n", cpus)
	for _, name := range names {
		v := memlock(tb, m[name])
		total += v
		fmt.Fprintf(&sb, "  %-14s %8.2f MiB\n", name, float64(v)/(1<<20))
	}
	inner, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.Array, KeySize: 4, ValueSize: uint32(unsafe.Sizeof(lbRingChunk{})),
		MaxEntries: uint32(lbLbLimitsLB_RING_CHUNKS), Flags: unix.BPF_F_INNER_MAP})
	if err != nil {
		tb.Fatal(err)
	}
	defer inner.Close()
	per := memlock(tb, inner)
	total += per * uint64(n)
	fmt.Fprintf(&sb, "  tables         %8.1f MiB (%d x %.1f KiB; a service whose slots are dirty has a second one)\n  total          %8.1f MiB\n",
		float64(per*uint64(n))/(1<<20), n, float64(per)/1024, float64(total)/(1<<20))
	return sb.String()
}

func memlock(tb testing.TB, m *ebpf.Map) uint64 {
	f, err := os.Open(fmt.Sprintf("/proc/self/fdinfo/%d", m.FD()))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "memlock:"); ok {
			n, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// cpuTime is this process's user+system time: on a shared machine the
// wall time of one run says more about the neighbours than about halo.
func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
