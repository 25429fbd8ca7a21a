package vrrpd

import (
	"bufio"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/halo-lb/halo/pkg/config"
	"github.com/halo-lb/halo/pkg/script"
	"github.com/halo-lb/halo/pkg/vrrp"
	"github.com/halo-lb/halo/pkg/vrrpnet"
)

// fakeClock is driven by the test.
type fakeClock struct{ t time.Time }

func (c *fakeClock) Now() time.Time { return c.t }

// testDaemon builds a daemon from a config without sockets: every instance
// is marked bound on a socket that sends nothing (interfaces named in the
// tests do not exist, so VIP changes fail harmlessly).
func testDaemon(t *testing.T, text string) (*Daemon, *fakeClock) {
	t.Helper()
	cfg := load(t, text)
	d := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	clk := &fakeClock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	d.clock = clk
	for _, ic := range cfg.Instances {
		in, err := newInstance(d, ic)
		if err != nil {
			t.Fatal(err)
		}
		in.queue = script.NewQueue(d.runner, d.log, time.Second)
		in.setBound(true, "")
		in.src = self
		in.m.Reconfigure(clk.t, in.machineConfig())
		d.instances = append(d.instances, in)
	}
	if err := d.buildGroups(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, in := range d.instances {
			in.queue.Close()
		}
		for _, g := range d.groups {
			g.queue.Close()
		}
	})
	d.start(clk.t)
	return d, clk
}

const ifc = "halo-nonexist0"

func inst2(name string, vrid int, body string) string {
	return "vrrp_instance " + name + " {\n interface " + ifc + "\n dont_track_primary\n virtual_router_id " +
		itoa(vrid) + "\n" + body + "\n virtual_ipaddress {\n  10.0.0.100/24\n }\n}\n"
}

func itoa(n int) string { return strconv.Itoa(n) }

func conn(d *Daemon) *connState {
	cs := &connState{key: connKey{ifname: ifc}, insts: d.instances, drops: map[string]int{}, groups: map[netip.Addr]bool{}}
	return cs
}

// Forged adverts are dropped, counted by reason, and never change state,
// timers or the master followed.
func TestForgedAdvertsChangeNothing(t *testing.T) {
	d, clk := testDaemon(t, inst2("V2", 51, " priority 100\n authentication {\n  auth_type PASS\n  auth_pass secret\n }")+
		inst2("U", 52, " version 3\n priority 100\n check_unicast_src\n unicast_peer {\n  10.0.0.3\n }"))
	cs := conn(d)
	v2, u := d.instances[0], d.instances[1]
	pass := [8]byte{'s', 'e', 'c', 'r', 'e', 't'}
	good := vrrp.Advert{Version: 2, VRID: 51, Priority: 200, Interval: 1, AuthType: vrrp.AuthPass, AuthData: pass,
		Addrs: []netip.Addr{vipA}}
	mod := func(f func(*vrrp.Advert)) vrrp.Advert { a := good; f(&a); return a }
	forged := []struct {
		p      vrrpnet.Packet
		reason string
		on     map[string]int
	}{
		{pkt(t, mod(func(a *vrrp.Advert) { a.AuthData[0] = 'X' }), peer, mgroup, 255, 0), "auth_failure", v2.drops},
		{pkt(t, mod(func(a *vrrp.Advert) { a.AuthType = 0 }), peer, mgroup, 255, 0), "auth_type_mismatch", v2.drops},
		{pkt(t, good, peer, mgroup, 64, 0), "bad_ttl", v2.drops},
		{func() vrrpnet.Packet { p := pkt(t, good, peer, mgroup, 255, 0); p.Payload[6] ^= 1; return p }(), "bad_checksum", v2.drops},
		{func() vrrpnet.Packet { p := pkt(t, good, peer, mgroup, 255, 0); p.Payload = p.Payload[:10]; return p }(), "bad_length", cs.drops},
		{func() vrrpnet.Packet { p := pkt(t, good, peer, mgroup, 255, 0); p.Payload[0] = 0x41; return p }(), "bad_version", cs.drops},
		{pkt(t, vrrp.Advert{Version: 3, VRID: 51, Priority: 200, Interval: 100, Addrs: []netip.Addr{vipA}}, peer, mgroup, 255, 0), "bad_version", v2.drops},
		{pkt(t, vrrp.Advert{Version: 3, VRID: 52, Priority: 200, Interval: 100, Addrs: []netip.Addr{vipA}}, peer, self, 255, 0), "unknown_unicast_source", u.drops},
		{pkt(t, mod(func(a *vrrp.Advert) { a.VRID = 99 }), peer, mgroup, 255, 0), "unknown_vrid", cs.drops},
	}
	deadlines := []time.Time{v2.m.Deadline(), u.m.Deadline()}
	for i, f := range forged {
		clk.t = clk.t.Add(100 * time.Millisecond)
		before := f.on[f.reason]
		d.receive(clk.t, cs, f.p)
		if f.on[f.reason] != before+1 {
			t.Errorf("forged %d: %s not counted (drops %v %v %v)", i, f.reason, v2.drops, u.drops, cs.drops)
		}
		for j, in := range []*instance{v2, u} {
			if in.m.State() != vrrp.Backup || in.m.Deadline() != deadlines[j] || in.m.MasterAddr.IsValid() {
				t.Fatalf("forged %d changed %s: %v deadline moved %v", i, in.cfg.Name, in.m.State(), in.m.Deadline().Sub(deadlines[j]))
			}
		}
	}
	// The genuine advert is accepted and restarts the down timer.
	d.receive(clk.t, cs, pkt(t, good, peer, mgroup, 255, 0))
	if v2.m.Deadline() == deadlines[0] || v2.m.MasterAddr != peer {
		t.Fatal("genuine advert not accepted")
	}
}

// Only an advert that passed every check may switch the v3 checksum form
// halod sends.
func TestChecksumFormLearntFromValidAdvertOnly(t *testing.T) {
	d, clk := testDaemon(t, inst2("V3", 51, " version 3\n priority 100"))
	cs, in := conn(d), d.instances[0]
	bad := vrrp.Advert{Version: 3, VRID: 51, Priority: 200, Interval: 100, Addrs: []netip.Addr{vipB}}
	d.receive(clk.t, cs, pkt(t, bad, peer, mgroup, 255, vrrp.NoPseudoHeader))
	if in.csMode != vrrp.PseudoHeader || in.drops["vip_mismatch"] != 1 {
		t.Fatalf("dropped advert switched the checksum form to %v (drops %v)", in.csMode, in.drops)
	}
	d.receive(clk.t, cs, pkt(t, bad, peer, mgroup, 64, vrrp.NoPseudoHeader))
	if in.csMode != vrrp.PseudoHeader {
		t.Fatal("bad TTL advert switched the checksum form")
	}
	good := bad
	good.Addrs = []netip.Addr{vipA}
	d.receive(clk.t, cs, pkt(t, good, peer, mgroup, 255, vrrp.NoPseudoHeader))
	if in.csMode != vrrp.NoPseudoHeader {
		t.Fatalf("valid advert did not set the form: %v", in.csMode)
	}
}

// The same VRID twice on one interface: told apart by mcast_dst_ip and by
// unicast peer.
func TestDuplicateVRIDDispatch(t *testing.T) {
	d, clk := testDaemon(t, inst2("A", 51, " version 3\n mcast_dst_ip 224.0.0.18")+
		inst2("B", 51, " version 3\n mcast_dst_ip 224.0.0.19")+
		inst2("C", 51, " version 3\n unicast_peer {\n  10.0.0.7\n }")+
		inst2("D", 51, " version 3\n unicast_peer {\n  10.0.0.8\n }"))
	cs := conn(d)
	a := vrrp.Advert{Version: 3, VRID: 51, Priority: 200, Interval: 100, Addrs: []netip.Addr{vipA}}
	cases := []struct {
		src, dst string
		want     string
	}{{"10.0.0.2", "224.0.0.18", "A"}, {"10.0.0.2", "224.0.0.19", "B"}, {"10.0.0.7", "10.0.0.1", "C"}, {"10.0.0.8", "10.0.0.1", "D"}}
	for _, c := range cases {
		p := pkt(t, a, netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst), 255, 0)
		if got := dispatch(cs.insts, 51, p); got == nil || got.cfg.Name != c.want {
			t.Fatalf("%s -> %s went to %v, want %s", c.src, c.dst, got, c.want)
		}
		d.receive(clk.t, cs, p)
	}
	for _, in := range d.instances {
		if len(in.drops) != 0 || !in.m.MasterAddr.IsValid() {
			t.Fatalf("%s: drops %v master %v", in.cfg.Name, in.drops, in.m.MasterAddr)
		}
	}
	p := pkt(t, a, netip.MustParseAddr("10.0.0.9"), netip.MustParseAddr("10.0.0.1"), 255, 0)
	d.receive(clk.t, cs, p)
	if cs.drops["unknown_vrid"] != 1 {
		t.Fatalf("advert for no instance not counted: %v", cs.drops)
	}
}

// A member's FAULT takes the whole sync group to FAULT; the group's notify
// FIFO lines are keepalived's: GROUP "NAME" STATE 0.
func TestSyncGroupFaultAndFIFO(t *testing.T) {
	if err := syscall.Mkfifo(filepath.Join(t.TempDir(), "probe"), 0o600); err != nil {
		t.Skip("no FIFOs here:", err)
	}
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	r, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	d, clk := testDaemon(t, "global_defs {\n notify_fifo "+fifo+"\n}\n"+
		"vrrp_script chk {\n script /bin/true\n weight -20\n}\n"+
		inst2("VI_1", 51, " priority 100\n track_script {\n  chk\n }")+inst2("VI_2", 52, " priority 100")+
		"vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n}\n")
	a, b := d.instances[0], d.instances[1]
	if w := a.trackers["script/chk"].Weight; w != 0 {
		t.Fatalf("member tracker weight %d kept without sync_group_tracking_weight", w)
	}
	// Without sync_group_tracking_weight the script is a weight-0 tracker:
	// the whole group waits for its first result, showing no state.
	if a.m.State() != vrrp.Init || b.m.State() != vrrp.Init {
		t.Fatalf("states %v %v before the script's first result, want INIT INIT", a.m.State(), b.m.State())
	}
	// It fails: VI_1 faults and takes VI_2 along.
	clk.t = clk.t.Add(time.Second)
	d.handle(event{kind: evScript, name: "chk", ok: false})
	if a.m.State() != vrrp.Fault || b.m.State() != vrrp.Fault {
		t.Fatalf("states %v %v, want FAULT FAULT", a.m.State(), b.m.State())
	}
	clk.t = clk.t.Add(time.Second)
	d.handle(event{kind: evScript, name: "chk", ok: true})
	if a.m.State() != vrrp.Backup || b.m.State() != vrrp.Backup {
		t.Fatalf("states %v %v after recovery, want BACKUP BACKUP", a.m.State(), b.m.State())
	}
	want := []string{`INSTANCE "VI_1" FAULT 100`, `INSTANCE "VI_2" FAULT 100`, `GROUP "G" FAULT 0`,
		`INSTANCE "VI_1" BACKUP 100`, `INSTANCE "VI_2" BACKUP 100`, `GROUP "G" BACKUP 0`}
	r.SetReadDeadline(time.Now().Add(2 * time.Second))
	sc := bufio.NewScanner(r)
	for i, w := range want {
		if !sc.Scan() {
			t.Fatalf("line %d: %v", i, sc.Err())
		}
		if sc.Text() != w {
			t.Fatalf("line %d: %q, want %q", i, sc.Text(), w)
		}
	}
}

// GARP settings keep an explicit zero, and vrrp_min_garp means one packet
// and no second burst.
func TestGARPPlans(t *testing.T) {
	g := config.GARP{MasterRepeat: 0, MasterDelay: 0, LowerPrioRepeat: 0, MasterRefresh: config.Duration(10 * time.Second), MasterRefreshRepeat: 2}
	if p := masterPlan(g); p.Repeat != 0 || p.Delay != 0 || p.Refresh != 10*time.Second || p.RefreshRepeat != 2 {
		t.Fatalf("zeros not kept: %+v", p)
	}
	g = config.GARP{MasterRepeat: 5, MasterDelay: config.Duration(5 * time.Second), LowerPrioRepeat: 3, LowerPrioDelay: config.Duration(time.Second), MinGARP: true}
	if p := masterPlan(g); p.Repeat != 1 || p.Delay != 0 {
		t.Fatalf("min_garp: %+v", p)
	}
	if p := lowerPrioPlan(g); p.Repeat != 1 || p.Delay != 0 {
		t.Fatalf("min_garp lower prio: %+v", p)
	}
}

// A sync group's own trackers apply to every member; with
// sync_group_tracking_weight, member weights are kept.
func TestSyncGroupTrackers(t *testing.T) {
	d, clk := testDaemon(t, "vrrp_script chk {\n script /bin/true\n weight -20\n}\n"+
		inst2("VI_1", 51, " priority 100")+inst2("VI_2", 52, " priority 100")+
		"vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n track_script {\n  chk\n }\n}\n")
	clk.t = clk.t.Add(time.Second)
	d.handle(event{kind: evScript, name: "chk", ok: false})
	for _, in := range d.instances {
		if in.m.State() != vrrp.Fault {
			t.Fatalf("%s %v: the group's tracker must apply to every member", in.cfg.Name, in.m.State())
		}
	}
	d2, clk2 := testDaemon(t, "vrrp_script chk {\n script /bin/true\n weight -20\n}\n"+
		inst2("VI_1", 51, " priority 100\n track_script {\n  chk\n }")+inst2("VI_2", 52, " priority 100")+
		"vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n sync_group_tracking_weight\n}\n")
	clk2.t = clk2.t.Add(time.Second)
	d2.handle(event{kind: evScript, name: "chk", ok: false})
	if a := d2.instances[0]; a.m.State() != vrrp.Backup || a.m.Priority() != 80 {
		t.Fatalf("with sync_group_tracking_weight: %v prio %d, want BACKUP 80", a.m.State(), a.m.Priority())
	}
}

// The lower-priority GARP bursts stop when the instance leaves MASTER.
func TestLowerPrioBurstCancelledOnLeavingMaster(t *testing.T) {
	d, clk := testDaemon(t, inst2("VI_1", 51, " priority 100"))
	in := d.instances[0]
	clk.t = in.m.Deadline()
	d.apply(in, in.m.Tick(clk.t))
	cs := conn(d)
	lower := vrrp.Advert{Version: 2, VRID: 51, Priority: 50, Interval: 1, Addrs: []netip.Addr{vipA}}
	d.receive(clk.t, cs, pkt(t, lower, peer, mgroup, 255, 0))
	if in.lowerCancel == nil || in.annCancel == nil {
		t.Fatal("no lower-priority burst / master plan running")
	}
	higher := lower
	higher.Priority = 200
	d.receive(clk.t, cs, pkt(t, higher, peer, mgroup, 255, 0))
	if in.m.State() != vrrp.Backup || in.lowerCancel != nil || in.annCancel != nil {
		t.Fatalf("state %v, bursts still running after leaving MASTER", in.m.State())
	}
}

// vrrp_startup_delay holds every instance in INIT, then they start.
func TestStartupDelay(t *testing.T) {
	d, clk := testDaemon(t, "global_defs {\n vrrp_startup_delay 5\n}\n"+inst2("VI_1", 51, " priority 100"))
	in := d.instances[0]
	if in.m.State() != vrrp.Init || d.nextDeadline() != clk.t.Add(5*time.Second) {
		t.Fatalf("state %v, next wake-up in %v", in.m.State(), d.nextDeadline().Sub(clk.t))
	}
	clk.t = clk.t.Add(5 * time.Second)
	d.startDue(clk.t)
	if in.m.State() != vrrp.Backup {
		t.Fatalf("state %v after the delay", in.m.State())
	}
}

// A weight-0 script, init_fail or not, holds the instance in INIT (no
// FAULT) until its first result; a weighted init_fail one moves nothing
// until then (docs/keepalived.md#init_fail-measured).
func TestInitFailWaitsForFirstResult(t *testing.T) {
	const scr = "vrrp_script chk {\n script /bin/true\n init_fail\n}\n"
	for _, c := range []struct {
		script string
		ok     bool
	}{{scr, true}, {scr, false}, {"vrrp_script chk {\n script /bin/true\n}\n", false}} {
		d, clk := testDaemon(t, c.script+inst2("VI_1", 51, " priority 150\n track_script {\n  chk\n }"))
		in := d.instances[0]
		if in.m.State() != vrrp.Init || !in.m.Held() || in.pendingScript() != "chk" {
			t.Fatalf("before the first result: %v held %v", in.m.State(), in.m.Held())
		}
		clk.t = clk.t.Add(3 * time.Second)
		d.handle(event{kind: evScript, name: "chk", ok: c.ok})
		want := vrrp.Backup
		if !c.ok {
			want = vrrp.Fault
		}
		if in.m.State() != want {
			t.Fatalf("first result ok=%v: %v, want %v", c.ok, in.m.State(), want)
		}
		if c.ok && in.m.Deadline() != clk.t.Add(in.m.MasterDownInterval()) {
			t.Fatalf("down timer not started at the first result: %v", in.m.Deadline().Sub(clk.t))
		}
	}

	d, clk := testDaemon(t, scr+inst2("VI_1", 51, " priority 150\n track_script {\n  chk weight -60\n }"))
	in := d.instances[0]
	if in.m.State() != vrrp.Backup || in.m.Priority() != 150 {
		t.Fatalf("weighted init_fail at start: %v prio %d, want BACKUP 150", in.m.State(), in.m.Priority())
	}
	clk.t = clk.t.Add(3 * time.Second)
	d.handle(event{kind: evScript, name: "chk", ok: false})
	if in.m.State() != vrrp.Backup || in.m.Priority() != 90 {
		t.Fatalf("weighted init_fail failed: %v prio %d, want BACKUP 90", in.m.State(), in.m.Priority())
	}
}

// A sync group waits as a whole for a member's weight-0 script, then every
// member and the group go BACKUP (measured: TestDiffInitFailSyncGroup).
func TestSyncGroupWaitsForFirstResult(t *testing.T) {
	d, clk := testDaemon(t, "vrrp_script chk {\n script /bin/true\n init_fail\n}\n"+
		inst2("VI_1", 51, " priority 100\n track_script {\n  chk\n }")+inst2("VI_2", 52, " priority 100")+
		"vrrp_sync_group G {\n group {\n  VI_1\n  VI_2\n }\n}\n")
	a, b := d.instances[0], d.instances[1]
	if !a.m.Held() || !b.m.Held() || d.groups[0].state != vrrp.Init {
		t.Fatalf("before the first result: held %v %v, group %v", a.m.Held(), b.m.Held(), d.groups[0].state)
	}
	clk.t = clk.t.Add(3 * time.Second)
	d.handle(event{kind: evScript, name: "chk", ok: true})
	if a.m.State() != vrrp.Backup || b.m.State() != vrrp.Backup || d.groups[0].state != vrrp.Backup {
		t.Fatalf("after a pass: %v %v, group %v; want BACKUP", a.m.State(), b.m.State(), d.groups[0].state)
	}
}
