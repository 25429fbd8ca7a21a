// Package bench is the packet-rate harness behind `make bench`
// (cmd/halo-bench): a live-frames generator (bpf/bench/bench.c), a lab of
// namespaces, the scenarios run side by side on it, the microbenchmarks,
// and the report (docs/benchmarks.md with its charts).
package bench

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// Progs is one loaded copy of the bench programs with its own counter:
// each role (generator, baseline, sink) loads its own copy so counts never
// mix.
type Progs struct {
	objs  benchObjects
	links []link.Link
}

// LoadProgs loads the programs without attaching them.
func LoadProgs() (*Progs, error) {
	p := &Progs{}
	if err := loadBenchObjects(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("load bench programs: %w", err)
	}
	return p, nil
}

// Close detaches and releases everything.
func (p *Progs) Close() error {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
	return p.objs.Close()
}

// Detach removes the attached programs, keeping the maps.
func (p *Progs) Detach() {
	for _, l := range p.links {
		l.Close()
	}
	p.links = nil
}

// Role names one of the programs.
type Role int

// Program roles.
const (
	RoleDrop Role = iota
	RoleMACSwap
	RoleSink
)

func (p *Progs) prog(r Role) *ebpf.Program {
	switch r {
	case RoleDrop:
		return p.objs.XdpDropCount
	case RoleMACSwap:
		return p.objs.XdpMacswap
	}
	return p.objs.XdpSink
}

// Attach attaches the role's program to ifname in the calling thread's
// namespace (native XDP; veth has it).
func (p *Progs) Attach(r Role, ifname string) error {
	ifi, err := net.InterfaceByName(ifname)
	if err != nil {
		return err
	}
	l, err := link.AttachXDP(link.XDPOptions{Program: p.prog(r), Interface: ifi.Index, Flags: link.XDPDriverMode})
	if err != nil {
		return fmt.Errorf("attach %v on %s: %w", r, ifname, err)
	}
	p.links = append(p.links, l)
	return nil
}

// Count is the sum over CPUs of the counter.
func (p *Progs) Count() (uint64, error) {
	var per []uint64
	if err := p.objs.Counter.Lookup(uint32(0), &per); err != nil {
		return 0, err
	}
	var s uint64
	for _, v := range per {
		s += v
	}
	return s, nil
}

// Sample returns the most recent sampled frame (its first bytes) of any
// CPU, or nil when none was taken.
func (p *Progs) Sample() ([]byte, error) {
	var per []benchSample
	if err := p.objs.Samples.Lookup(uint32(0), &per); err != nil {
		return nil, err
	}
	var best *benchSample
	for i := range per {
		if per[i].Seq != 0 && (best == nil || per[i].Seq > best.Seq) {
			best = &per[i]
		}
	}
	if best == nil {
		return nil, nil
	}
	n := min(int(best.Len), len(best.Data))
	return append([]byte(nil), best.Data[:n]...), nil
}

// ResetSample forgets the samples taken so far.
func (p *Progs) ResetSample() error {
	cpus, err := ebpf.PossibleCPU()
	if err != nil {
		return err
	}
	return p.objs.Samples.Put(uint32(0), make([]benchSample, cpus))
}

// Template is what the generator writes into every frame.
type Template struct {
	Frame   []byte // the whole first frame (data_in)
	HdrLen  int    // header bytes rewritten per frame (≤ 96)
	AddrOff int    // last 4 bytes of the varied address (source, or destination for replies)
	PortOff int    // the varied L4 port
	IPCsum  int    // 0 for IPv6
	L4Csum  int
	UDP     bool
}

// Flow modes of the generator.
const (
	// NewFlows makes every frame a flow never seen before.
	NewFlows = -1
)

// Configure sets the generator's template and flow count (a power of two,
// or NewFlows).
func (p *Progs) Configure(t Template, flows int) error {
	if t.HdrLen > len(benchGenCfg{}.Hdr) || t.HdrLen > len(t.Frame) {
		return fmt.Errorf("template header of %d bytes", t.HdrLen)
	}
	c := benchGenCfg{SaddrOff: uint16(t.AddrOff), SportOff: uint16(t.PortOff),
		IpCsumOff: uint16(t.IPCsum), L4CsumOff: uint16(t.L4Csum)}
	// Whole words only: the bytes past HdrLen up to the word end are the
	// frame's own (payload), copied from the frame itself.
	words := (t.HdrLen + 7) / 8
	if words*8 > len(t.Frame) {
		return fmt.Errorf("frame of %d bytes is shorter than its rewritten header", len(t.Frame))
	}
	copy(c.Hdr[:], t.Frame[:words*8])
	c.HdrWords = uint32(words)
	if t.UDP {
		c.Udp = 1
	}
	switch {
	case flows == NewFlows:
		c.Mode = uint32(benchGenModeGEN_FLOWS_NEW)
	case flows > 0 && flows&(flows-1) == 0:
		c.FlowsMask = uint32(flows - 1)
	default:
		return fmt.Errorf("flows %d: a power of two or NewFlows", flows)
	}
	return p.objs.GenConfig.Put(uint32(0), &c)
}

// Generate sends n frames out of ifindex with XDP_TX in live-frames mode,
// in batches of batch. It must run on a thread inside the generator's
// namespace (the ifindex is looked up there).
func (p *Progs) Generate(frame []byte, ifindex int, n uint32, batch uint32) error {
	ctx := xdpMD{DataEnd: uint32(len(frame)), IngressIfindex: uint32(ifindex)}
	_, err := p.objs.XdpGen.Run(&ebpf.RunOptions{Data: frame, Context: ctx, Repeat: n,
		Flags: unix.BPF_F_TEST_XDP_LIVE_FRAMES, BatchSize: batch})
	if errors.Is(err, unix.EINVAL) {
		return fmt.Errorf("live-frames BPF_PROG_RUN refused (kernel ≥ 5.18 needed): %w", err)
	}
	return err
}

// xdpMD is struct xdp_md, the context of an XDP test run.
type xdpMD struct {
	Data, DataEnd, DataMeta, IngressIfindex, RxQueueIndex, EgressIfindex uint32
}
