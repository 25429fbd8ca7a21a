package bench

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/sink"
)

// Addresses of the lab (docs/benchmarks.md#method draws it).
var (
	ClientIP = netip.MustParseAddr("10.240.0.2")
	LBIP     = netip.MustParseAddr("10.240.0.1")
	VIP      = netip.MustParseAddr("10.240.0.100")
	Real1    = netip.MustParseAddr("10.240.1.11")
	Real2    = netip.MustParseAddr("10.240.1.12")
	// Real3 joins VIP:9/UDP after the warm-up in halo-dr-32k-changed.
	Real3     = netip.MustParseAddr("10.240.1.13")
	ClientIP6 = netip.MustParseAddr("fd00:240::2")
	VIP6      = netip.MustParseAddr("fd00:240::100")
	Real1v6   = netip.MustParseAddr("fd00:240:1::11")
	Real2v6   = netip.MustParseAddr("fd00:240:1::12")
	GenMAC    = net.HardwareAddr{0x02, 0xbe, 0, 0, 0, 0x01}
	// RealMACs are the MACs halo's DR rewrites to when the reals sit on
	// the ingress link (XDP_TX back to the generator's veth).
	RealMACs = map[netip.Addr]net.HardwareAddr{
		Real1: {0x02, 0xbe, 0, 0, 1, 0x11}, Real2: {0x02, 0xbe, 0, 0, 1, 0x12}, Real3: {0x02, 0xbe, 0, 0, 1, 0x13},
		Real1v6: {0x02, 0xbe, 0, 0, 6, 0x11}, Real2v6: {0x02, 0xbe, 0, 0, 6, 0x12},
	}
)

// Env is the lab every scenario runs on:
//
//	gen ns: g0 ── l0 :lb ns (router/director) s0 ── eth0 :sink ns
//
// The generator transmits out of g0 into l0, where the program under test
// runs; what it bounces back (XDP_TX) is counted on g0, what it forwards
// or redirects towards the reals is counted on the sink's eth0.
type Env struct {
	Lab           *lab.Lab
	Gen, LB, Sink *lab.NS
	GenIfindex    int
	L0MAC, S0MAC  net.HardwareAddr
	SinkMAC       net.HardwareAddr
	S0Index       int
	// Counters: the generator (frames sent), back on g0, at the sink.
	GenProgs, BackProgs, SinkProgs *Progs
	// pass keeps l0 accepting xdp_frames when no program under test is
	// attached (kernel forwarding, nftables).
	pass *sink.Program
	t    lab.T
}

// NewEnv builds the lab. Everything is removed at t's cleanup.
func NewEnv(t lab.T) *Env {
	t.Helper()
	l := lab.New(t)
	e := &Env{Lab: l, Gen: l.NS("gen"), LB: l.NS("lb"), Sink: l.NS("sink"), t: t}
	l.Veth(e.Gen, "g0", e.LB, "l0")
	l.Veth(e.LB, "s0", e.Sink, "eth0")
	e.Gen.IP("link", "set", "g0", "address", GenMAC.String())
	e.Gen.Addr("g0", ClientIP.String()+"/24")
	e.Gen.Addr("g0", ClientIP6.String()+"/64")
	e.LB.Addr("l0", LBIP.String()+"/24")
	e.LB.Addr("l0", "fd00:240::1/64")
	e.LB.Addr("s0", "10.240.1.1/24")
	e.LB.Addr("s0", "fd00:240:1::1/64")
	for _, a := range []netip.Addr{Real1, Real2} {
		e.Sink.Addr("eth0", a.String()+"/24")
	}
	for _, a := range []netip.Addr{Real1v6, Real2v6} {
		e.Sink.Addr("eth0", a.String()+"/64")
	}
	e.LB.Sysctl("net.ipv4.ip_forward", "1")
	e.LB.Sysctl("net.ipv6.conf.all.forwarding", "1")
	for _, k := range []string{"all", "default", "l0", "s0"} {
		e.LB.Sysctl("net.ipv4.conf."+k+".rp_filter", "0")
	}
	e.L0MAC = e.LB.Link("l0").HardwareAddr
	s0 := e.LB.Link("s0")
	e.S0MAC, e.S0Index = s0.HardwareAddr, s0.Index
	e.SinkMAC = e.Sink.Link("eth0").HardwareAddr
	e.GenIfindex = e.Gen.Link("g0").Index
	// Permanent neighbours: ARP never stalls a run (generated clients sit
	// on other /24s too; forwarded traffic never returns).
	for _, a := range []netip.Addr{Real1, Real2, Real3, Real1v6, Real2v6} {
		e.LB.IP("neigh", "replace", a.String(), "lladdr", e.SinkMAC.String(), "dev", "s0", "nud", "permanent")
	}
	e.LB.IP("neigh", "replace", ClientIP.String(), "lladdr", GenMAC.String(), "dev", "l0", "nud", "permanent")

	var err error
	must := func(p *Progs, err error) *Progs {
		if err != nil {
			t.Fatalf("%v", err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	e.GenProgs = must(LoadProgs())
	e.BackProgs = must(LoadProgs())
	e.SinkProgs = must(LoadProgs())
	if err = e.Gen.Do(func() error { return e.BackProgs.Attach(RoleSink, "g0") }); err != nil {
		t.Fatalf("%v", err)
	}
	if err = e.Sink.Do(func() error { return e.SinkProgs.Attach(RoleSink, "eth0") }); err != nil {
		t.Fatalf("%v", err)
	}
	e.pass, err = sink.Load()
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() { e.pass.Close() })
	return e
}

// PassOn attaches the XDP_PASS program on l0 (the kernel stack is under
// test): a veth drops xdp_frames arriving without an XDP program.
func (e *Env) PassOn() (func(), error) {
	var off func()
	err := e.LB.Do(func() error {
		ifi, err := net.InterfaceByName("l0")
		if err != nil {
			return err
		}
		l, err := e.pass.Attach(ifi.Index)
		if err != nil {
			return err
		}
		off = func() { l.Close() }
		return nil
	})
	return off, err
}

// Nft loads an nftables ruleset into the lb namespace; the returned func
// deletes the table.
func (e *Env) Nft(table, rules string) (func(), error) {
	if _, err := exec.LookPath("nft"); err != nil {
		return nil, errSkip("nft not installed (Debian: apt-get install nftables)")
	}
	f, err := os.CreateTemp("", "halo-bench-*.nft")
	if err != nil {
		return nil, err
	}
	defer os.Remove(f.Name())
	f.WriteString(rules)
	f.Close()
	if out, err := e.LB.Exec("nft", "-f", f.Name()); err != nil {
		return nil, fmt.Errorf("nft -f: %v: %s", err, strings.TrimSpace(out))
	}
	return func() { e.LB.Exec("nft", "delete", "table", table) }, nil
}

// errSkip marks a scenario this machine cannot run; its text goes into the
// report.
type errSkip string

func (e errSkip) Error() string { return string(e) }
