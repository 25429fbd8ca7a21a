package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/halo-lb/halo/internal/testkit/packet"
	"github.com/halo-lb/halo/pkg/dataplane"
	"github.com/halo-lb/halo/pkg/dataplane/xdp"
	"github.com/halo-lb/halo/pkg/maglev"
)

// MicroOptions of the microbenchmarks.
type MicroOptions struct {
	Quick bool // fewer repeats; no checker or failover benchmarks (they take minutes)
	Log   io.Writer
}

// PathCost is the BPF_PROG_TEST_RUN cost of one path.
type PathCost struct {
	Name  string
	NsPkt []float64 // each round's ns per packet
}

// Micro holds every microbenchmark's figures; a field's *Skip says why it
// is missing.
type Micro struct {
	Repeat  int
	Paths   []PathCost // halo's paths and the baseline programs, one process, one run
	PathErr string

	MaglevMs  map[int]float64 // reals → ms per 16381-slot table
	MaglevErr string

	SyncWall, SyncCPU, SyncOne time.Duration
	SyncSkip                   string

	ChecksLine, ChecksSkip string
	ChecksCores            float64
	FailoverLines          []string
	FailoverMedianMs       map[string]float64 // "halod 1s" → ms
	FailoverSkip           string
	GoldenLines            []string // BenchmarkGolden's own output
	GoldenSkip             string
}

// RunMicro runs the microbenchmarks (root for the BPF ones).
func RunMicro(o MicroOptions) *Micro {
	m := &Micro{MaglevMs: map[int]float64{}, FailoverMedianMs: map[string]float64{}}
	logf := func(f string, a ...any) {
		if o.Log != nil {
			fmt.Fprintf(o.Log, f+"\n", a...)
		}
	}
	logf("microbenchmarks: program paths through BPF_PROG_TEST_RUN")
	m.Repeat = 1_000_000
	if o.Quick {
		m.Repeat = 100_000
	}
	m.Paths, m.PathErr = pathCosts(m.Repeat)
	logf("microbenchmarks: Maglev table build")
	m.maglev(o.Quick)
	logf("microbenchmarks: map sync of 1,000 services x 100 reals")
	m.sync()
	if o.Quick {
		m.ChecksSkip, m.FailoverSkip, m.GoldenSkip = "--quick", "--quick", "--quick"
		return m
	}
	root, err := moduleRoot()
	if err != nil {
		m.ChecksSkip, m.FailoverSkip, m.GoldenSkip = err.Error(), err.Error(), err.Error()
		return m
	}
	logf("microbenchmarks: go test -bench ^BenchmarkGolden$ ./pkg/dataplane/xdp")
	out, err := goBench(root, "^BenchmarkGolden$", "./pkg/dataplane/xdp", 5*time.Minute)
	if err != nil {
		m.GoldenSkip = err.Error()
	}
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "BenchmarkGolden/") {
			m.GoldenLines = append(m.GoldenLines, strings.Join(strings.Fields(l), " "))
		}
	}
	logf("microbenchmarks: go test -bench ^BenchmarkTCPChecks$ ./pkg/check (about 10 s)")
	out, err = goBench(root, "^BenchmarkTCPChecks$", "./pkg/check", 5*time.Minute)
	if l := grepLine(out, "10,000 TCP checks"); l != "" {
		m.ChecksLine = l
		if f := regexp.MustCompile(`([0-9.]+) cores`).FindStringSubmatch(l); f != nil {
			m.ChecksCores, _ = strconv.ParseFloat(f[1], 64)
		}
	} else {
		m.ChecksSkip = fmt.Sprintf("no result (%v): %s", err, tail(out))
	}
	logf("microbenchmarks: go test -bench ^BenchmarkFailover$ ./tests/e2e (halod and keepalived, a minute or two)")
	out, err = goBench(root, "^BenchmarkFailover$", "./tests/e2e", 10*time.Minute)
	re := regexp.MustCompile(`^(halod|keepalived)\s+(\S+)s\s+([0-9]+)\s+([0-9]+)\s+([0-9]+)$`)
	for _, l := range strings.Split(out, "\n") {
		if f := re.FindStringSubmatch(strings.TrimSpace(l)); f != nil {
			m.FailoverLines = append(m.FailoverLines, strings.TrimSpace(l))
			v, _ := strconv.ParseFloat(f[4], 64)
			m.FailoverMedianMs[f[1]+" "+f[2]+"s"] = v
		}
	}
	if len(m.FailoverLines) == 0 {
		m.FailoverSkip = fmt.Sprintf("no result (%v): %s", err, tail(out))
	}
	return m
}

func grepLine(s, sub string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			return strings.TrimSpace(l)
		}
	}
	return ""
}

func tail(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	if len(ls) > 3 {
		ls = ls[len(ls)-3:]
	}
	return strings.Join(ls, " | ")
}

func moduleRoot() (string, error) {
	d, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(d, "go.mod")); err == nil {
			return d, nil
		}
		p := filepath.Dir(d)
		if p == d {
			return "", fmt.Errorf("not inside the halo module (no go.mod above %s)", d)
		}
		d = p
	}
}

// goBench runs one Go benchmark once and returns its combined output.
func goBench(root, re, pkg string, limit time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	defer cancel()
	cmd := exec.CommandContext(ctx, "go", "test", "-count=1", "-run", "^$", "-bench", re, "-benchtime", "1x", pkg)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// pathCosts loads halo's program (no attach), installs the lab's services
// and runs each path's frame Repeat times, three rounds, with the bench
// baselines in the same rounds (five).
func pathCosts(repeat int) ([]PathCost, string) {
	be, err := xdp.LoadWith(xdp.Options{ResolveMAC: func(ip netip.Addr) (net.HardwareAddr, int, error) {
		return RealMACs[ip], 0, nil
	}, SYNFloodThreshold: -1})
	if err != nil {
		return nil, err.Error()
	}
	defer be.Close()
	if err := be.Apply(context.Background(), haloServices(dataplane.DR, 0)); err != nil {
		return nil, err.Error()
	}
	base, err := LoadProgs()
	if err != nil {
		return nil, err.Error()
	}
	defer base.Close()
	lbMAC := net.HardwareAddr{2, 0xbe, 0, 0, 0, 0xfe}
	tcp := func(flags uint8) []byte {
		return (&packet.Frame{Dst: lbMAC, Src: GenMAC, IPv4: &packet.IPv4{Src: ClientIP, Dst: VIP, TTL: 64},
			TCP: &packet.TCP{SrcPort: 40000, DstPort: 80, Flags: flags}, Payload: make([]byte, 10)}).Bytes()
	}
	udp4 := (&packet.Frame{Dst: lbMAC, Src: GenMAC, IPv4: &packet.IPv4{Src: ClientIP, Dst: VIP, TTL: 64},
		UDP: &packet.UDP{SrcPort: 40000, DstPort: 9}, Payload: make([]byte, 22)}).Bytes()
	udp6 := (&packet.Frame{Dst: lbMAC, Src: GenMAC, IPv6: &packet.IPv6{Src: ClientIP6, Dst: VIP6, HopLimit: 64},
		UDP: &packet.UDP{SrcPort: 40000, DstPort: 9}, Payload: make([]byte, 16)}).Bytes()
	other := (&packet.Frame{Dst: lbMAC, Src: GenMAC, IPv4: &packet.IPv4{Src: ClientIP, Dst: LBIP, TTL: 64},
		UDP: &packet.UDP{SrcPort: 40000, DstPort: 9}, Payload: make([]byte, 22)}).Bytes()
	arp := (&packet.Frame{Dst: lbMAC, Src: GenMAC, EtherType: packet.EtherTypeARP, Payload: make([]byte, 28)}).Bytes()
	// Open the TCP flow with a SYN so the ACKs are flow-table hits.
	if _, _, err := be.Prog().Benchmark(tcp(packet.TCPSyn), 1, nil); err != nil {
		return nil, err.Error()
	}
	paths := []struct {
		name  string
		prog  *ebpf.Program
		frame []byte
	}{
		{"baseline: count + XDP_DROP", base.objs.XdpDropCount, udp4},
		{"baseline: MAC swap + XDP_TX", base.objs.XdpMacswap, udp4},
		{"halo: VIP TCP/IPv4 established (flow-table hit)", be.Prog(), tcp(packet.TCPAck)},
		{"halo: VIP UDP/IPv4 established (flow-table hit)", be.Prog(), udp4},
		{"halo: VIP UDP/IPv6 established (flow-table hit)", be.Prog(), udp6},
		{"halo: non-VIP IPv4 (XDP_PASS)", be.Prog(), other},
		{"halo: ARP (XDP_PASS)", be.Prog(), arp},
	}
	out := make([]PathCost, len(paths))
	for i := range paths {
		out[i].Name = paths[i].name
	}
	for round := 0; round < 5; round++ {
		for i, p := range paths {
			_, d, err := p.prog.Benchmark(p.frame, repeat, nil)
			if err != nil {
				return nil, fmt.Sprintf("%s: %v", p.name, err)
			}
			out[i].NsPkt = append(out[i].NsPkt, float64(d.Nanoseconds()))
		}
	}
	return out, ""
}

func (m *Micro) maglev(quick bool) {
	iters := 20
	if quick {
		iters = 3
	}
	for _, n := range []int{10, 100, 1000} {
		bs := make([]maglev.Backend, n)
		for i := range bs {
			bs[i] = maglev.Backend{ID: uint32(i + 1), Key: fmt.Sprintf("10.2.%d.%d:80", i/256, i%256), Weight: uint32(1 + i%4)}
		}
		var best time.Duration
		for i := 0; i < iters; i++ {
			s := time.Now()
			if _, err := maglev.Table(bs, maglev.SizeBPF); err != nil {
				m.MaglevErr = err.Error()
				return
			}
			if d := time.Since(s); best == 0 || d < best {
				best = d
			}
		}
		m.MaglevMs[n] = float64(best.Microseconds()) / 1000
	}
}

// sync applies 1,000 services x 100 reals to fresh maps, then one weight
// change, timing wall and this process's CPU.
func (m *Micro) sync() {
	be, err := xdp.LoadWith(xdp.Options{ResolveMAC: func(ip netip.Addr) (net.HardwareAddr, int, error) {
		a := ip.As4()
		return net.HardwareAddr{2, 0, a[0], a[1], a[2], a[3]}, 0, nil
	}})
	if err != nil {
		m.SyncSkip = err.Error()
		return
	}
	defer be.Close()
	set := make([]dataplane.Service, 0, 1000)
	for i := 0; i < 1000; i++ {
		s := dataplane.Service{Key: dataplane.ServiceKey{Addr: netip.AddrFrom4([4]byte{10, 1, byte(i >> 8), byte(i)}), Port: 80, Proto: dataplane.TCP},
			Scheduler: "wlc", Method: dataplane.DR}
		for j := 0; j < 100; j++ {
			s.Reals = append(s.Reals, dataplane.Real{Addr: netip.AddrFrom4([4]byte{10, 2, byte(j), byte(i % 100)}), Weight: uint32(1 + j%4)})
		}
		set = append(set, s)
	}
	c0, t0 := cpuTime(), time.Now()
	if err := be.Apply(context.Background(), set); err != nil {
		m.SyncSkip = "the backend did not take 1,000 x 100: " + err.Error()
		return
	}
	m.SyncWall, m.SyncCPU = time.Since(t0), cpuTime()-c0
	set[500].Reals[7].Weight = 0
	t1 := time.Now()
	if err := be.Apply(context.Background(), set); err != nil {
		m.SyncSkip = err.Error()
		return
	}
	m.SyncOne = time.Since(t1)
}

func cpuTime() time.Duration {
	var ru unix.Rusage
	unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
