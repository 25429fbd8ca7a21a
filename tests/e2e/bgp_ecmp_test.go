package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
)

// ecmpLab: a client behind BIRD 2 (the upstream router, ECMP over the
// directors it learns by BGP), three directors running halod with XDP DR and
// a bgp block, two reals with the VIP on lo. Router, directors and reals
// share one bridge (10.S.0.0/24); the client sits on its own link behind
// the router (192.168.S.0/24); the reals answer the client through the
// router (DR).
type ecmpLab struct {
	l      *lab.Lab
	subnet int
	vip    string
	router *lab.NS
	cl     *lab.NS
	tester *lab.NS
	dirs   []*lab.NS
	halods []*lab.Proc
	confs  []string
	socks  []string
	bpffs  []string
	bird   *lab.Proc
	birdS  string
}

const (
	ecmpDirectors = 3
	ecmpHold      = 3
	ecmpPassword  = "ecmp-md5-Secret"
)

func (e *ecmpLab) dirIP(i int) string { return fmt.Sprintf("10.%d.0.%d", e.subnet, 21+i) }

func newECMPLab(t *testing.T, subnet int) *ecmpLab {
	lab.RequireRoot(t)
	testkit.Require(t, "bird", "birdc")
	l := lab.New(t)
	e := &ecmpLab{l: l, subnet: subnet, vip: fmt.Sprintf("10.%d.0.100", subnet)}
	sw := l.Switch("sw")
	e.router, e.cl = l.NS("rtr"), l.NS("cl")
	sw.Plug(e.router, "eth0")
	e.router.Addr("eth0", fmt.Sprintf("10.%d.0.1/24", subnet))
	l.Veth(e.router, "eth1", e.cl, "eth0")
	e.router.Addr("eth1", fmt.Sprintf("192.168.%d.1/24", subnet))
	e.cl.Addr("eth0", fmt.Sprintf("192.168.%d.2/24", subnet))
	e.cl.Route("default", fmt.Sprintf("192.168.%d.1", subnet))
	e.router.Sysctl("net.ipv4.ip_forward", "1")
	// Hash the 4-tuple so the client's connections spread over the
	// directors (the default hashes addresses only: one director).
	e.router.Sysctl("net.ipv4.fib_multipath_hash_policy", "1")
	for _, n := range []*lab.NS{e.router, e.cl} {
		n.TxOff("eth0") // docs/lab.md#checksum-offload
	}
	e.router.TxOff("eth1")

	var rs strings.Builder
	for i := 0; i < 2; i++ {
		ns := l.NS(fmt.Sprintf("r%d", i+1))
		sw.Plug(ns, "eth0")
		ip := fmt.Sprintf("10.%d.0.%d", subnet, 31+i)
		ns.Addr("eth0", ip+"/24")
		ns.TxOff("eth0")
		ns.Route("default", fmt.Sprintf("10.%d.0.1", subnet))
		ns.IP("addr", "add", e.vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			ns.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			ns.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		serveFlowReal(t, ns, fmt.Sprintf("real%d", i+1))
		fmt.Fprintf(&rs, "  real_server %s 80 {\n    TCP_CHECK {\n      connect_timeout 1\n      retry 0\n    }\n  }\n", ip)
	}

	var birdConf strings.Builder
	fmt.Fprintf(&birdConf, `router id 10.%d.0.1;
log stderr all;
protocol device { scan time 1; }
protocol kernel { ipv4 { export all; }; merge paths on; }
`, subnet)
	for i := 0; i < ecmpDirectors; i++ {
		d := l.NS(fmt.Sprintf("d%d", i+1))
		port := sw.Plug(d, "eth0")
		attachPass(t, sw.NS, port) // docs/lab.md#veth-peer-needs-xdp
		d.Addr("eth0", e.dirIP(i)+"/24")
		d.TxOff("eth0")
		e.dirs = append(e.dirs, d)
		e.bpffs = append(e.bpffs, filepath.Join(l.BPFFS(), "halo"))
		e.socks = append(e.socks, filepath.Join(t.TempDir(), "halod.sock"))
		e.confs = append(e.confs, writeFile(t, fmt.Sprintf("d%d.conf", i+1), fmt.Sprintf(`global_defs {
  router_id d%d
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo mh mh-port
  lb_kind DR
  protocol TCP
  quorum 2
%s}
dataplane {
  backend xdp
  interface eth0
}
bgp {
  local_as 65010
  router_id %s
  neighbor 10.%d.0.1 {
    remote_as 65000
    hold_time %d
    password %s
  }
}
`, i+1, e.vip, rs.String(), e.dirIP(i), subnet, ecmpHold, ecmpPassword)))
		fmt.Fprintf(&birdConf, "protocol bgp d%d { local 10.%d.0.1 as 65000; neighbor %s as 65010; hold time %d; keepalive time 1; connect retry time 1; error wait time 1, 2; password %q; ipv4 { import all; export none; }; }\n",
			i+1, subnet, e.dirIP(i), ecmpHold, ecmpPassword)
	}
	// A host on the directors' segment that reaches the VIP through d2
	// only (a static route): the traffic a drained director still gets.
	e.tester = l.NS("t")
	sw.Plug(e.tester, "eth0")
	e.tester.Addr("eth0", fmt.Sprintf("10.%d.0.9/24", subnet))
	e.tester.TxOff("eth0")
	e.tester.IP("route", "add", e.vip+"/32", "via", e.dirIP(1))
	dir := t.TempDir()
	conf := filepath.Join(dir, "bird.conf")
	if err := os.WriteFile(conf, []byte(birdConf.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	e.birdS = filepath.Join(dir, "bird.ctl")
	e.bird = e.router.Start("bird", "-c", conf, "-s", e.birdS, "-f")
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := e.birdc("show", "protocols")
			rt, _ := e.birdc("show", "route", "all")
			t.Logf("bird protocols:\n%s\nroutes:\n%s\nlog:\n%s", out, rt, e.bird.Output())
		}
	})
	e.halods = make([]*lab.Proc, ecmpDirectors)
	return e
}

func (e *ecmpLab) birdc(args ...string) (string, error) {
	return e.router.Exec("birdc", append([]string{"-s", e.birdS}, args...)...)
}

func (e *ecmpLab) start(t *testing.T, i int) {
	e.halods[i] = startHalod(t, e.dirs[i], e.confs[i], "--dataplane", "xdp", "--bpffs", e.bpffs[i],
		"--control", e.socks[i], "--metrics-addr", "127.0.0.1:9650")
}

// nexthops are the gateways of the router's kernel route to the VIP.
func (e *ecmpLab) nexthops() []string {
	out, err := e.router.Exec("ip", "-4", "route", "show", e.vip)
	if err != nil {
		return nil
	}
	var gws []string
	f := strings.Fields(out)
	for i := 0; i+1 < len(f); i++ {
		if f[i] == "via" {
			gws = append(gws, f[i+1])
		}
	}
	return gws
}

func (e *ecmpLab) waitNexthops(t *testing.T, d time.Duration, dirs ...int) time.Duration {
	t.Helper()
	var want []string
	for _, i := range dirs {
		want = append(want, e.dirIP(i))
	}
	took := waitFor(d, func() bool {
		got := e.nexthops()
		if len(got) != len(want) {
			return false
		}
		for _, w := range want {
			if !strings.Contains(" "+strings.Join(got, " ")+" ", " "+w+" ") {
				return false
			}
		}
		return true
	})
	if took < 0 {
		rt, _ := e.birdc("show", "route", "all")
		t.Fatalf("router's route to %s goes via %v, want %v\n%s", e.vip, e.nexthops(), want, rt)
	}
	return took
}

// txPackets is director i's halo_xdp_packets_total{reason="tx"}.
func (e *ecmpLab) txPackets(t *testing.T, i int) float64 {
	t.Helper()
	var v float64
	for _, line := range strings.Split(e.scrape(t, i), "\n") {
		if strings.HasPrefix(line, "halo_xdp_packets_total") && strings.Contains(line, `reason="tx"`) {
			fmt.Sscanf(line[strings.LastIndex(line, " ")+1:], "%g", &v)
		}
	}
	return v
}

// scrape is director i's /metrics.
func (e *ecmpLab) scrape(t *testing.T, i int) string {
	t.Helper()
	var body string
	e.dirs[i].Do(func() error {
		c, err := net.DialTimeout("tcp", "127.0.0.1:9650", 2*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\n\r\n")
		b, _ := io.ReadAll(c)
		body = string(b)
		return nil
	})
	return body
}

// Active-active directors behind ECMP: BIRD installs one multipath route
// over the three directors; client connections cross all of them; a
// director that dies is withdrawn within about its hold time and every
// stream finishes byte-exact through the others (mh: every director picks
// the same real for a flow); quorum loss withdraws one director only; a
// clean stop withdraws before the XDP program goes.
func TestBGPECMPDirectors(t *testing.T) {
	e := newECMPLab(t, 130)
	for i := range e.dirs {
		e.start(t, i)
	}
	if waitFor(15*time.Second, func() bool {
		return strings.Contains(e.halods[0].Output(), "bgp speaker started")
	}) < 0 {
		t.Skipf("halod does not run the bgp block (daemon wiring of pkg/bgp missing):\n%s", e.halods[0].Output())
	}
	e.waitNexthops(t, 30*time.Second, 0, 1, 2)
	rt, _ := e.birdc("show", "route", e.vip+"/32")
	if strings.Count(rt, "via 10.") != ecmpDirectors {
		t.Fatalf("birdc show route %s: want %d paths:\n%s", e.vip, ecmpDirectors, rt)
	}
	for i, h := range e.halods {
		if strings.Contains(h.Output(), ecmpPassword) {
			t.Fatalf("d%d logged the BGP password", i+1)
		}
	}

	// Many client ports: every director forwards some of them.
	var before [ecmpDirectors]float64
	for i := range e.dirs {
		before[i] = e.txPackets(t, i)
	}
	for c := 0; c < 120; c++ {
		if _, err := e.cl.HTTPGet(e.vip+":80", "/", 3*time.Second); err != nil {
			t.Fatalf("connection %d: %v", c, err)
		}
	}
	for i := range e.dirs {
		if d := e.txPackets(t, i) - before[i]; d <= 0 {
			t.Fatalf("d%d forwarded nothing of 120 connections (tx packets %v → %v)", i+1, before[i], e.txPackets(t, i))
		}
	}

	// Streams open through all directors (batches of 6 until each
	// director's counters grew: the router hashes ports, not round-robin);
	// then d3 dies (SIGKILL, link down).
	f := &flowLab{cl: e.cl, vip: e.vip}
	const size = 12 << 20
	var tx [ecmpDirectors]float64
	for i := range e.dirs {
		tx[i] = e.txPackets(t, i)
	}
	var chans []chan streamResult
	var reals []string
	crossed := 0
	for batch := 0; batch < 5 && crossed < ecmpDirectors; batch++ {
		c, r := f.openStreams(t, 6, size)
		chans, reals = append(chans, c...), append(reals, r...)
		time.Sleep(300 * time.Millisecond)
		crossed = 0
		for i := range e.dirs {
			if e.txPackets(t, i) > tx[i] {
				crossed++
			}
		}
	}
	if crossed < ecmpDirectors {
		t.Fatalf("%d streams crossed only %d of %d directors", len(chans), crossed, ecmpDirectors)
	}
	t.Logf("%d streams open, crossing all %d directors", len(chans), crossed)
	if err := e.halods[2].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.dirs[2].IP("link", "set", "eth0", "down")
	took := e.waitNexthops(t, 4*ecmpHold*time.Second, 0, 1)
	t.Logf("dead director withdrawn by the router after %v (hold time %d s)", took, ecmpHold)
	f.finish(t, chans, reals, size)

	// Quorum loss on d2 only (its checks cannot reach the reals): d2's route
	// goes, d1's stays.
	for _, r := range []string{"31", "32"} {
		e.dirs[1].IP("route", "add", "blackhole", fmt.Sprintf("10.%d.0.%s/32", e.subnet, r))
	}
	e.waitNexthops(t, 15*time.Second, 0)
	for _, r := range []string{"31", "32"} {
		e.dirs[1].IP("route", "del", "blackhole", fmt.Sprintf("10.%d.0.%s/32", e.subnet, r))
	}
	e.waitNexthops(t, 15*time.Second, 0, 1)

	// haloctl drain on d2: its route goes, d1's stays; d2 still forwards
	// what reaches it (the tester's static route), and status and metrics
	// show the sessions and announcements.
	if out, err := exec.Command(haloctlBin, "--control", e.socks[1], "drain").CombinedOutput(); err != nil {
		t.Fatalf("haloctl drain: %v: %s", err, out)
	}
	e.waitNexthops(t, 10*time.Second, 0)
	txBefore := e.txPackets(t, 1)
	for c := 0; c < 20; c++ {
		if _, err := e.tester.HTTPGet(e.vip+":80", "/", 3*time.Second); err != nil {
			t.Fatalf("drained d2 did not forward connection %d: %v", c, err)
		}
	}
	if e.txPackets(t, 1) <= txBefore {
		t.Fatalf("drained d2's XDP counters did not grow")
	}
	st, err := exec.Command(haloctlBin, "--control", e.socks[1], "status").CombinedOutput()
	if err != nil || !strings.Contains(string(st), "DRAINED") || !strings.Contains(string(st), "established") ||
		strings.Contains(string(st), ecmpPassword) {
		t.Fatalf("haloctl status while drained: %v\n%s", err, st)
	}
	m := e.scrape(t, 1)
	for _, want := range []string{fmt.Sprintf(`halo_bgp_session_up{peer="10.%d.0.1"} 1`, e.subnet),
		fmt.Sprintf(`halo_bgp_announced{prefix="%s/32"} 0`, e.vip), "halo_bgp_updates_sent_total "} {
		if !strings.Contains(m, want) {
			t.Fatalf("d2 metrics lack %q:\n%s", want, m)
		}
	}
	if out, err := exec.Command(haloctlBin, "--control", e.socks[1], "drain", "--undo").CombinedOutput(); err != nil {
		t.Fatalf("haloctl drain --undo: %v: %s", err, out)
	}
	e.waitNexthops(t, 10*time.Second, 0, 1)
	if m := e.scrape(t, 0); !strings.Contains(m, fmt.Sprintf(`halo_bgp_announced{prefix="%s/32"} 1`, e.vip)) {
		t.Fatalf("d1 metrics do not show the announced VIP:\n%s", m)
	}

	// halod on d2 killed and started again on its pins (an upgrade): the
	// pinned program forwards meanwhile, graceful restart keeps d2's path
	// at the router the whole time, and the new halod takes it over.
	if err := e.halods[1].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	e.halods[1].Wait(5 * time.Second)
	killed := time.Now()
	e.start(t, 1)
	for {
		if got := e.nexthops(); len(got) != 2 {
			rt, _ := e.birdc("show", "route", "all")
			t.Fatalf("%v after halod's kill -9 on d2 the router's route is via %v (want d1 and d2 kept)\n%s\n%s",
				time.Since(killed), got, rt, e.halods[1].Output())
		}
		rt, _ := e.birdc("show", "route", e.vip+"/32", "all")
		if strings.Contains(e.halods[1].Output(), "bgp announce") && !strings.Contains(rt, "stale") {
			break
		}
		if time.Since(killed) > 30*time.Second {
			t.Fatalf("restarted halod on d2 never took its route over:\n%s\n%s", rt, e.halods[1].Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("halod on d2 restarted gracefully in %v; the router kept both paths", time.Since(killed))
	if !strings.Contains(e.halods[1].Output(), "restarting=true") {
		t.Fatalf("the restarted halod did not start its speaker as restarting:\n%s", e.halods[1].Output())
	}

	// Clean stop of d1: the router loses d1 while d1's XDP program is still
	// attached, and halod logs the withdrawal before the data plane goes.
	if err := e.halods[0].Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	attached := false
	e.waitNexthops(t, 10*time.Second, 1)
	if out, _ := e.dirs[0].Exec("ip", "link", "show", "eth0"); strings.Contains(out, "xdp") {
		attached = true
	}
	e.halods[0].Wait(10 * time.Second)
	out := e.halods[0].Output()
	w := strings.Index(out, "bgp withdraw")
	stopped := strings.Index(out, "bgp speaker stopped")
	if w < 0 || stopped < 0 {
		t.Fatalf("d1's clean stop did not withdraw:\n%s", out)
	}
	t.Logf("router dropped d1 while its XDP program was attached: %v", attached)
}
