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

// Names of the program paths the report quotes.
const (
	pathSteadyUDP4  = "halo: VIP UDP/IPv4 established, table slot (no flow-table lookup)"
	pathTrackedUDP4 = "halo, FlowTracking always: VIP UDP/IPv4 flow-table hit"
	pathChangedUDP4 = "halo: VIP UDP/IPv4 on a slot a change made dirty (flow-table hit)"
	pathSwap        = "baseline: MAC swap + XDP_TX"
)

// loadHalo loads halo's program (nothing attached) with the lab's DR
// services.
func loadHalo(track string) (*xdp.Backend, error) {
	be, err := xdp.LoadWith(xdp.Options{ResolveMAC: func(ip netip.Addr) (net.HardwareAddr, int, error) {
		return RealMACs[ip], 0, nil
	}, SYNFloodThreshold: -1, FlowTracking: track})
	if err != nil {
		return nil, err
	}
	if err := be.Apply(context.Background(), haloServices(dataplane.DR, 0)); err != nil {
		be.Close()
		return nil, err
	}
	return be, nil
}

// runOnce runs frame once through be's program and returns which of
// halo's reasons it counted.
func runOnce(be *xdp.Backend, frame []byte) (map[string]uint64, error) {
	before := be.ReasonNames()
	if _, _, err := be.Prog().Benchmark(frame, 1, nil); err != nil {
		return nil, err
	}
	d := map[string]uint64{}
	for k, v := range be.ReasonNames() {
		if v != before[k] {
			d[k] = v - before[k]
		}
	}
	return d, nil
}

// pathCosts loads halo's program three times (no attach): as halod runs
// it (flows on clean table slots, no flow-table lookup), with
// FlowTracking always (every packet a flow-table lookup: the old design),
// and as halod runs it after a real joined the UDP/IPv4 service (a flow
// on a dirty slot: a flow-table hit). Each path's frame runs Repeat times
// per round, five rounds, with the bench baselines in the same rounds. A
// path whose first packet does not count the reason it is named after
// is an error, not a figure.
func pathCosts(repeat int) ([]PathCost, string) {
	be, err := loadHalo("")
	if err != nil {
		return nil, err.Error()
	}
	defer be.Close()
	bt, err := loadHalo(xdp.TrackAlways)
	if err != nil {
		return nil, err.Error()
	}
	defer bt.Close()
	bc, err := loadHalo("")
	if err != nil {
		return nil, err.Error()
	}
	defer bc.Close()
	if err := bc.Apply(context.Background(), withReal3(haloServices(dataplane.DR, 0))); err != nil {
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
	udp4at := func(sport uint16) []byte {
		return (&packet.Frame{Dst: lbMAC, Src: GenMAC, IPv4: &packet.IPv4{Src: ClientIP, Dst: VIP, TTL: 64},
			UDP: &packet.UDP{SrcPort: sport, DstPort: 9}, Payload: make([]byte, 22)}).Bytes()
	}
	udp4 := udp4at(40000)
	udp6 := (&packet.Frame{Dst: lbMAC, Src: GenMAC, IPv6: &packet.IPv6{Src: ClientIP6, Dst: VIP6, HopLimit: 64},
		UDP: &packet.UDP{SrcPort: 40000, DstPort: 9}, Payload: make([]byte, 16)}).Bytes()
	other := (&packet.Frame{Dst: lbMAC, Src: GenMAC, IPv4: &packet.IPv4{Src: ClientIP, Dst: LBIP, TTL: 64},
		UDP: &packet.UDP{SrcPort: 40000, DstPort: 9}, Payload: make([]byte, 22)}).Bytes()
	arp := (&packet.Frame{Dst: lbMAC, Src: GenMAC, EtherType: packet.EtherTypeARP, Payload: make([]byte, 28)}).Bytes()
	// Open the flows: the SYN and the first UDP packets are recorded
	// where the program records (FlowTracking always), so what follows
	// are hits; on the steady program they count `ring` like the rest.
	for _, w := range []struct {
		be    *xdp.Backend
		frame []byte
	}{{be, tcp(packet.TCPSyn)}, {bt, tcp(packet.TCPSyn)}, {bt, udp4}, {bt, udp6}} {
		if _, err := runOnce(w.be, w.frame); err != nil {
			return nil, err.Error()
		}
	}
	// A flow on a slot the change made dirty: its first packet is a new
	// flow's (not in flow_seen: ct_new), the next ones flow-table hits.
	var dirty []byte
	for sport := uint16(40000); sport < 40200 && dirty == nil; sport++ {
		fr := udp4at(sport)
		d, err := runOnce(bc, fr)
		if err != nil {
			return nil, err.Error()
		}
		if d["ct_new"] > 0 || d["ct_prev"] > 0 {
			dirty = fr
		}
	}
	if dirty == nil {
		return nil, "adding a third real left none of 200 flows on a dirty slot"
	}
	paths := []struct {
		name  string
		be    *xdp.Backend  // halo's program, or nil and:
		prog  *ebpf.Program // a baseline
		want  string        // the reason halo's packets count
		frame []byte
	}{
		{"baseline: count + XDP_DROP", nil, base.objs.XdpDropCount, "", udp4},
		{pathSwap, nil, base.objs.XdpMacswap, "", udp4},
		{"halo: VIP TCP/IPv4 established, table slot (no flow-table lookup)", be, nil, "ring", tcp(packet.TCPAck)},
		{pathSteadyUDP4, be, nil, "ring", udp4},
		{"halo: VIP UDP/IPv6 established, table slot (no flow-table lookup)", be, nil, "ring", udp6},
		{"halo, FlowTracking always: VIP TCP/IPv4 flow-table hit", bt, nil, "ct_hit", tcp(packet.TCPAck)},
		{pathTrackedUDP4, bt, nil, "ct_hit", udp4},
		{"halo, FlowTracking always: VIP UDP/IPv6 flow-table hit", bt, nil, "ct_hit", udp6},
		{pathChangedUDP4, bc, nil, "ct_hit", dirty},
		{"halo: non-VIP IPv4 (XDP_PASS)", be, nil, "pass_not_vip", other},
		{"halo: ARP (XDP_PASS)", be, nil, "pass_not_ip", arp},
	}
	out := make([]PathCost, len(paths))
	for i := range paths {
		p := &paths[i]
		out[i].Name = p.name
		if p.be == nil {
			continue
		}
		p.prog = p.be.Prog()
		d, err := runOnce(p.be, p.frame)
		if err != nil {
			return nil, fmt.Sprintf("%s: %v", p.name, err)
		}
		if d[p.want] != 1 {
			return nil, fmt.Sprintf("%s: its packet counted %s, not %s", p.name, fmtCounters(d), p.want)
		}
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
