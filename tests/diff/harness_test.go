// Package diff runs the same VRRP scenario twice, once with keepalived
// 2.2.7 and once with halod as the node under test, each against a
// keepalived peer in its own namespaces, and compares what an operator
// sees per phase: notify script invocations, notify FIFO lines, the VIPs
// and routes on the node, and the gratuitous ARPs / unsolicited NAs it
// sends (count and timing on the wire). Any difference is a test failure
// unless the scenario documents it as a deliberate one.
package diff

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit"
	"github.com/halo-lb/halo/internal/testkit/lab"
)

var halodBin string

func TestMain(m *testing.M) {
	code := func() int {
		// HALO_DIFF_HALOD runs a prebuilt halod instead of building one.
		if b := os.Getenv("HALO_DIFF_HALOD"); b != "" {
			halodBin = b
			return m.Run()
		}
		dir, err := os.MkdirTemp("", "halo-diff-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		bins, err := testkit.Build(dir, "./cmd/halod")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		halodBin = bins[0]
		return m.Run()
	}()
	os.Exit(code)
}

// net is what a scenario's configs and actions need to know of its lab.
type net struct {
	Sub           int    // 10.Sub.0.0/24, fd00:Sub::/64
	NUT, Peer, Cl string // IPv4 addresses
	NUT6, Peer6   string
	Dir           string // scripts, FIFO and flag files of the node under test
	Notify        string // notify script: appends its arguments to Dir/notify.log
	FIFO          string
	Flag          string // track scripts test for this file
	Track         string // `test -f Flag` as a script path
	underTest     string
	nutNS, peerNS *lab.NS
	clNS          *lab.NS
	startNUT      func()
	// reload rewrites the node's config and sends SIGHUP to its daemon.
	reload func(t *testing.T, conf string)
}

// V4 is an address on the scenario's subnet.
func (n *net) V4(host int) string { return fmt.Sprintf("10.%d.0.%d", n.Sub, host) }

// V6 is an IPv6 address on the scenario's subnet.
func (n *net) V6(host int) string { return fmt.Sprintf("fd00:%d::%x", n.Sub, host) }

type step struct {
	name string
	do   func(t *testing.T, n *net) // at the start of the phase (nil: nothing)
	wait time.Duration
}

type scenario struct {
	nut, peer func(n *net) string // keepalived.conf of the node under test and of the peer
	// peerFirst starts the peer one step before the node under test (the
	// first step must then start the node with startNUT).
	peerFirst bool
	// peerHalod runs halod as the peer too (to produce what keepalived
	// 2.2.7 cannot send, e.g. v3 checksums without the pseudo-header).
	peerHalod bool
	steps     []step
	routes    []string // route destinations to watch
	// deliberate explains an expected difference; compare then reports
	// what differs without failing, and the scenario asserts on halod's
	// side with check.
	deliberate string
	check      func(t *testing.T, halod []phase)
	// quantum widens the announcement-timing slack for scenarios whose
	// transition is seen at the next tick of a 1 s timer that each daemon
	// runs with its own phase (a vrrp_script interval, the advert on which
	// preempt_delay is checked): the same behaviour then lands anywhere in
	// that tick, in either daemon.
	quantum time.Duration
}

// phase is what the operator saw during one step.
type phase struct {
	Name   string
	Notify []string // sorted: keepalived runs notify scripts concurrently
	FIFO   []string // in order
	VIPs   []string
	Routes []string
	GARP   map[string][]time.Duration // per address, offsets from the phase start
	// Stall is how much longer the phase took than its nominal wait: on a
	// loaded 2-core CI machine a 6 s sleep has been seen to last 23 s, and
	// a daemon stalled with it announces late by as much.
	Stall time.Duration
}

const stableWait = 6 * time.Second

// run plays a scenario with `keepalived` or `halod` as the node under test.
func run(t *testing.T, sc scenario, sub int, underTest string) []phase {
	l := lab.New(t)
	sw := l.Switch("sw")
	n := &net{Sub: sub, underTest: underTest, nutNS: l.NS("nut"), peerNS: l.NS("peer"), clNS: l.NS("cl"), Dir: t.TempDir()}
	os.Chmod(n.Dir, 0o755)
	for i, ns := range []*lab.NS{n.nutNS, n.peerNS, n.clNS} {
		sw.Plug(ns, "eth0")
		ns.Addr("eth0", fmt.Sprintf("10.%d.0.%d/24", sub, i+1))
		ns.Addr("eth0", fmt.Sprintf("fd00:%d::%d/64", sub, i+1))
		// An interface for track_interface scenarios (this kernel has no
		// dummy driver: a veth pair inside the namespace).
		ns.IP("link", "add", "trk0", "type", "veth", "peer", "name", "trk1")
		ns.IP("link", "set", "trk1", "up")
		ns.IP("link", "set", "trk0", "up")
	}
	n.NUT, n.Peer, n.Cl = n.V4(1), n.V4(2), n.V4(3)
	n.NUT6, n.Peer6 = n.V6(1), n.V6(2)
	n.Notify = filepath.Join(n.Dir, "notify.sh")
	n.FIFO = filepath.Join(n.Dir, "fifo")
	n.Flag = filepath.Join(n.Dir, "flag")
	n.Track = filepath.Join(n.Dir, "track.sh")
	must(t, os.WriteFile(n.Notify, []byte("#!/bin/sh\necho \"$*\" >> "+filepath.Join(n.Dir, "notify.log")+"\n"), 0o755))
	must(t, os.WriteFile(n.Track, []byte("#!/bin/sh\ntest -f "+n.Flag+"\n"), 0o755))
	must(t, os.WriteFile(n.Flag, nil, 0o644))
	must(t, syscall.Mkfifo(n.FIFO, 0o600))
	fifo, err := os.OpenFile(n.FIFO, os.O_RDWR, 0)
	must(t, err)
	t.Cleanup(func() { fifo.Close() })
	var mu sync.Mutex
	var fifoLines []stamped
	go func() {
		sc := bufio.NewScanner(fifo)
		for sc.Scan() {
			mu.Lock()
			fifoLines = append(fifoLines, stamped{time.Now(), sc.Text()})
			mu.Unlock()
		}
	}()

	// Capture what the node under test announces, from the client's side.
	nutMAC := n.nutNS.Link("eth0").HardwareAddr.String()
	dump := n.clNS.Start("tcpdump", "-i", "eth0", "-nn", "-l", "-e", "-tt", "arp or icmp6")
	time.Sleep(300 * time.Millisecond)

	peerConf := writeConf(t, n.Dir, "peer.conf", sc.peer(n))
	nutConf := writeConf(t, n.Dir, "nut.conf", sc.nut(n))
	startPeer := func() {
		if sc.peerHalod {
			startDaemon(t, n.peerNS, "halod", peerConf, "")
		} else {
			startDaemon(t, n.peerNS, "keepalived", peerConf, "")
		}
	}
	var nut *lab.Proc
	n.startNUT = func() { nut = startDaemon(t, n.nutNS, underTest, nutConf, n.Dir) }
	n.reload = func(t *testing.T, text string) {
		must(t, os.WriteFile(nutConf, []byte(text), 0o600))
		pid := nut.Pid() // `ip netns exec` execs the daemon in place
		if underTest == "keepalived" {
			// The parent reloads its children; signal it alone.
			b, err := os.ReadFile(filepath.Join(n.Dir, "k.pid"))
			must(t, err)
			pid, err = strconv.Atoi(strings.TrimSpace(string(b)))
			must(t, err)
		}
		must(t, syscall.Kill(pid, syscall.SIGHUP))
	}
	if sc.peerFirst {
		startPeer()
	} else {
		// The node first, the peer a second later: who wins the start
		// race must not depend on how fast each daemon starts.
		n.startNUT()
		time.Sleep(time.Second)
		startPeer()
	}

	var phases []phase
	var notifySeen int
	for _, st := range sc.steps {
		start := time.Now()
		if st.do != nil {
			st.do(t, n)
		}
		time.Sleep(st.wait)
		end := time.Now()
		p := phase{Name: st.name, GARP: map[string][]time.Duration{}}
		if over := end.Sub(start) - st.wait; over > 500*time.Millisecond {
			p.Stall = over
		}
		b, _ := os.ReadFile(filepath.Join(n.Dir, "notify.log"))
		lines := splitLines(string(b))
		p.Notify = append([]string(nil), lines[notifySeen:]...)
		notifySeen = len(lines)
		slices.Sort(p.Notify)
		mu.Lock()
		for _, l := range fifoLines {
			if !l.at.Before(start) && l.at.Before(end) {
				p.FIFO = append(p.FIFO, l.text)
			}
		}
		mu.Unlock()
		p.VIPs = vips(n.nutNS, sub)
		p.Routes = routes(n.nutNS, sc.routes)
		for _, g := range announcements(dump.Output(), nutMAC) {
			if !g.at.Before(start) && g.at.Before(end) {
				p.GARP[g.text] = append(p.GARP[g.text], g.at.Sub(start))
			}
		}
		phases = append(phases, p)
	}
	if nut != nil {
		nut.Stop()
		if testing.Verbose() {
			t.Logf("%s output:\n%s", underTest, nut.Output())
		}
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("tcpdump on the client:\n%s", dump.Output())
	}
	return phases
}

type stamped struct {
	at   time.Time
	text string
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeConf(t *testing.T, dir, name, text string) string {
	p := filepath.Join(dir, name)
	must(t, os.WriteFile(p, []byte(text), 0o600))
	return p
}

func startDaemon(t *testing.T, ns *lab.NS, which, conf, dir string) *lab.Proc {
	t.Helper()
	var p *lab.Proc
	if which == "keepalived" {
		d := dir
		if d == "" {
			d = t.TempDir()
		}
		p = ns.Start("keepalived", "-n", "-l", "-D", "-P", "-f", conf,
			"-p", filepath.Join(d, "k.pid"), "-r", filepath.Join(d, "k-vrrp.pid"))
	} else {
		p = ns.Start(halodBin, "-f", conf, "--check-interfaces=false", "--dataplane", "none",
			"--control", filepath.Join(t.TempDir(), "halod.sock"), "--metrics-addr", "")
	}
	t.Cleanup(func() {
		p.Stop()
		if t.Failed() {
			t.Logf("%s in %s output:\n%s", which, ns.Tag, p.Output())
		}
	})
	return p
}

func splitLines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// vips lists the addresses on the node beyond its own .1 / ::1 and
// link-locals.
func vips(ns *lab.NS, sub int) []string {
	out, _ := ns.Exec("ip", "-o", "addr", "show")
	var list []string
	for _, l := range splitLines(out) {
		f := strings.Fields(l)
		if len(f) < 4 || (f[2] != "inet" && f[2] != "inet6") {
			continue
		}
		a := f[3]
		if strings.HasPrefix(a, "127.") || a == "::1/128" || strings.HasPrefix(a, "fe80:") ||
			a == fmt.Sprintf("10.%d.0.1/24", sub) || a == fmt.Sprintf("fd00:%d::1/64", sub) {
			continue
		}
		list = append(list, f[1]+" "+a)
	}
	slices.Sort(list)
	return list
}

var protoRE = regexp.MustCompile(` proto \S+`)

// routes lists the routes to the watched destinations, in any table,
// without the protocol (keepalived marks its routes proto keepalived).
func routes(ns *lab.NS, dsts []string) []string {
	if len(dsts) == 0 {
		return nil
	}
	var list []string
	for _, fam := range []string{"-4", "-6"} {
		out, _ := ns.Exec("ip", fam, "-o", "route", "show", "table", "all")
		for _, l := range splitLines(out) {
			for _, d := range dsts {
				if strings.HasPrefix(l, d+" ") {
					list = append(list, strings.Join(strings.Fields(protoRE.ReplaceAllString(l, "")), " "))
				}
			}
		}
	}
	slices.Sort(list)
	return list
}

var (
	garpRE = regexp.MustCompile(`^(\d+\.\d+) (\S+) > ff:ff:ff:ff:ff:ff.*Request who-has (\S+)(?: \([0-9a-f:]+\))? tell (\S+),`)
	naRE   = regexp.MustCompile(`^(\d+\.\d+) (\S+) > 33:33:00:00:00:01.*neighbor advertisement, tgt is (\S+),`)
)

// announcements are the gratuitous ARPs (who-has X tell X) and unsolicited
// NAs that mac sent, by address.
func announcements(dump, mac string) []stamped {
	var out []stamped
	for _, l := range splitLines(dump) {
		var ts, src, addr string
		if m := garpRE.FindStringSubmatch(l); m != nil && m[3] == m[4] {
			ts, src, addr = m[1], m[2], m[3]
		} else if m := naRE.FindStringSubmatch(l); m != nil {
			ts, src, addr = m[1], m[2], m[3]
		} else {
			continue
		}
		if src != mac {
			continue
		}
		sec, err := strconv.ParseFloat(ts, 64)
		if err != nil {
			continue
		}
		at := time.Unix(0, int64(sec*1e9))
		out = append(out, stamped{at, addr})
	}
	return out
}

// garpSlack is how far apart the two runs' announcement times may be:
// both daemons run on a shared, busy machine.
const garpSlack = 600 * time.Millisecond

// compare lists every difference between keepalived's phases and halod's.
func compare(k, h []phase, slack time.Duration) []string {
	var diffs []string
	for i := range k {
		a, b := k[i], h[i]
		// Timing is compared within what the machine allowed: a phase
		// whose own clock stalled widens its slack by that stall (both
		// sequences and counts are still compared exactly).
		slack := slack + max(a.Stall, b.Stall)
		add := func(what string, x, y any) {
			diffs = append(diffs, fmt.Sprintf("phase %q %s:\n  keepalived: %v\n  halod:      %v", a.Name, what, x, y))
		}
		if !slices.Equal(a.Notify, b.Notify) {
			add("notify invocations", a.Notify, b.Notify)
		}
		if !slices.Equal(perName(a.FIFO), perName(b.FIFO)) {
			add("FIFO lines", a.FIFO, b.FIFO)
		}
		if !slices.Equal(a.VIPs, b.VIPs) {
			add("addresses", a.VIPs, b.VIPs)
		}
		if !slices.Equal(a.Routes, b.Routes) {
			add("routes", a.Routes, b.Routes)
		}
		addrs := map[string]bool{}
		for x := range a.GARP {
			addrs[x] = true
		}
		for x := range b.GARP {
			addrs[x] = true
		}
		for x := range addrs {
			ka, ha := a.GARP[x], b.GARP[x]
			if len(ka) != len(ha) {
				add("announcements for "+x+" (count)", fmtTimes(ka), fmtTimes(ha))
				continue
			}
			for j := range ka {
				if d := ka[j] - ha[j]; d > slack || d < -slack {
					add("announcements for "+x+" (timing)", fmtTimes(ka), fmtTimes(ha))
					break
				}
			}
		}
	}
	return diffs
}

// perName orders FIFO lines by their subject (stable), so lines of two
// instances that change state in the same instant may interleave either
// way, while each instance's own sequence must match.
func perName(lines []string) []string {
	out := slices.Clone(lines)
	slices.SortStableFunc(out, func(x, y string) int {
		return strings.Compare(fifoName(x), fifoName(y))
	})
	return out
}

func fifoName(l string) string {
	f := strings.Fields(l)
	if len(f) < 2 {
		return l
	}
	return f[0] + " " + f[1]
}

func fmtTimes(ds []time.Duration) string {
	var s []string
	for _, d := range ds {
		s = append(s, fmt.Sprintf("%.2fs", d.Seconds()))
	}
	return fmt.Sprintf("%d at [%s]", len(ds), strings.Join(s, " "))
}

func requireTools(t *testing.T) {
	lab.RequireRoot(t)
	testkit.Require(t, "keepalived", "tcpdump")
}

// runScenario plays sc with both daemons side by side (same machine load)
// and compares.
func runScenario(t *testing.T, sc scenario, sub int) {
	requireTools(t)
	// Scenarios run in parallel (go test -parallel, GOMAXPROCS by
	// default); the two runs of one scenario run one after the other.
	t.Parallel()
	var k, h []phase
	t.Run("keepalived", func(t *testing.T) { k = run(t, sc, sub, "keepalived") })
	t.Run("halod", func(t *testing.T) { h = run(t, sc, sub, "halod") })
	if len(k) != len(sc.steps) || len(h) != len(sc.steps) {
		t.Fatal("a run did not finish")
	}
	for i := range k {
		t.Logf("phase %q\n  keepalived: %+v\n  halod:      %+v", k[i].Name, k[i], h[i])
	}
	diffs := compare(k, h, garpSlack+sc.quantum)
	if sc.deliberate != "" {
		for _, d := range diffs {
			t.Logf("deliberate difference (%s): %s", sc.deliberate, d)
		}
	} else {
		for _, d := range diffs {
			t.Error(d)
		}
	}
	if sc.check != nil {
		sc.check(t, h)
	}
}
