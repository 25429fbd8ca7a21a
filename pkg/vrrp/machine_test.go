package vrrp

import (
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

func ms(n float64) time.Duration { return time.Duration(n * float64(time.Millisecond)) }

func cfg(prio int) Config {
	return Config{Version: 3, Priority: prio, AdvertInt: time.Second, Preempt: true, Addr: ap("10.0.0.2")}
}

func adv(prio int, interval uint16) *Advert {
	return &Advert{Version: 3, Type: 1, VRID: 1, Priority: uint8(prio), Interval: interval}
}

func acts(a []Action) string {
	var s []string
	for _, x := range a {
		s = append(s, x.String())
	}
	return strings.Join(s, "; ")
}

func expect(t *testing.T, got []Action, want string) {
	t.Helper()
	if g := acts(got); g != want {
		t.Fatalf("actions %q, want %q", g, want)
	}
}

func TestTimersFromTheRFC(t *testing.T) {
	m := New(cfg(100))
	if got := m.SkewTime(); got != ms(609.375) {
		t.Errorf("v3 skew at prio 100, 1 s = %v", got)
	}
	if got := m.MasterDownInterval(); got != ms(3609.375) {
		t.Errorf("v3 MDI = %v", got)
	}
	c := cfg(150)
	c.Version = 2
	if got := New(c).MasterDownInterval(); got != ms(3000+414.0625) {
		t.Errorf("v2 MDI at 150 = %v", got)
	}
	c = cfg(100)
	c.AdvertInt = 500 * time.Millisecond
	if got := New(c).MasterDownInterval(); got != ms(1500+304.687) { // keepalived truncates to µs
		t.Errorf("v3 MDI at 50 cs = %v", got)
	}
}

func TestStartBackupThenMasterOnTimeout(t *testing.T) {
	c := cfg(150)
	c.WantMaster = true // state MASTER still waits, as keepalived 2.x
	m := New(c)
	expect(t, m.Start(t0), "INIT->BACKUP (start)")
	if d := m.Deadline().Sub(t0); d != ms(3414.062) {
		t.Fatalf("first deadline %v", d)
	}
	expect(t, m.Tick(at(ms(3414))), "")
	expect(t, m.Tick(m.Deadline()), "advert(prio 150); BACKUP->MASTER (master down timer expired)")
	start := m.Deadline()
	expect(t, m.Tick(start), "advert(prio 150)")
	if m.Deadline() != start.Add(time.Second) {
		t.Fatalf("advert interval: next at %v", m.Deadline().Sub(start))
	}
}

func TestOwnerIsMasterAtOnce(t *testing.T) {
	m := New(cfg(255))
	expect(t, m.Start(t0), "advert(prio 255); INIT->MASTER (address owner (priority 255))")
	expect(t, m.SetPriority(t0, 10), "") // trackers never move the owner
	if m.Priority() != 255 {
		t.Fatal("owner priority changed")
	}
}

func TestBackupAcceptsAndRestartsDownTimer(t *testing.T) {
	m := New(cfg(100))
	m.Start(t0)
	m.Receive(at(2*time.Second), ap("10.0.0.9"), adv(150, 100))
	if d := m.Deadline().Sub(at(2 * time.Second)); d != ms(3609.375) {
		t.Fatalf("down timer %v", d)
	}
	if m.MasterAddr != ap("10.0.0.9") || m.MasterPrio != 150 {
		t.Fatal("master not recorded")
	}
	// Equal priority is accepted: a backup never preempts an equal master.
	m.Receive(at(4*time.Second), ap("10.0.0.1"), adv(100, 100))
	if m.Deadline() != at(4*time.Second).Add(ms(3609.375)) {
		t.Fatal("equal priority advert not accepted")
	}
}

func TestPriorityZeroMeansSkewTakeover(t *testing.T) {
	m := New(cfg(100))
	m.Start(t0)
	m.Receive(at(time.Second), ap("10.0.0.9"), adv(150, 100))
	m.Receive(at(2*time.Second), ap("10.0.0.9"), adv(0, 100))
	if d := m.Deadline().Sub(at(2 * time.Second)); d != ms(609.375) {
		t.Fatalf("takeover after %v, want the skew time", d)
	}
	expect(t, m.Tick(m.Deadline()), "advert(prio 100); BACKUP->MASTER (master down timer expired)")
}

func TestPreemptDiscardsLowerPriority(t *testing.T) {
	m := New(cfg(150))
	m.Start(t0)
	first := m.Deadline()
	m.Receive(at(time.Second), ap("10.0.0.9"), adv(100, 100))
	if m.Deadline() != first {
		t.Fatal("lower priority advert restarted the down timer")
	}
	expect(t, m.Tick(first), "advert(prio 150); BACKUP->MASTER (master down timer expired)")
}

func TestNoPreemptAcceptsLowerPriority(t *testing.T) {
	c := cfg(150)
	c.Preempt = false
	m := New(c)
	m.Start(t0)
	for s := 1; s < 20; s++ {
		now := at(time.Duration(s) * time.Second)
		m.Receive(now, ap("10.0.0.9"), adv(100, 100))
		expect(t, m.Tick(now), "")
	}
	if m.State() != Backup {
		t.Fatal("nopreempt backup took over")
	}
}

func TestPreemptDelay(t *testing.T) {
	c := cfg(150)
	c.PreemptDelay = 5 * time.Second
	m := New(c)
	m.Start(t0)
	var became time.Time
	for ms10 := 0; ms10 < 2000; ms10++ { // 20 s in 10 ms steps, adverts every second
		now := at(time.Duration(ms10) * 10 * time.Millisecond)
		if ms10%100 == 0 && ms10 > 0 {
			m.Receive(now, ap("10.0.0.9"), adv(100, 100))
		}
		for _, a := range m.Tick(now) {
			if a.Kind == Transition && a.To == Master && became.IsZero() {
				became = now
			}
		}
	}
	// First lower advert at 1 s starts a 5 s delay; adverts are accepted
	// until 6 s, then discarded, and the down timer (restarted last at 5 s
	// by the advert before the delay ended) runs out.
	if became.Before(at(6*time.Second)) || became.After(at(10*time.Second)) {
		t.Fatalf("preempted at %v", became.Sub(t0))
	}
}

func TestV3LearnsMasterInterval(t *testing.T) {
	m := New(cfg(100))
	m.Start(t0)
	m.Receive(at(time.Second), ap("10.0.0.9"), adv(200, 10)) // master at 10 cs
	if m.MasterAdverInterval() != 100*time.Millisecond {
		t.Fatalf("MAI %v", m.MasterAdverInterval())
	}
	// 3 × 0.1 s + (156 × 10 × 625 / 16) µs, truncated to µs
	if d := m.Deadline().Sub(at(time.Second)); d != ms(360.937) {
		t.Fatalf("down timer %v", d)
	}
	c := cfg(100)
	c.Version = 2
	m2 := New(c)
	m2.Start(t0)
	m2.Receive(at(time.Second), ap("10.0.0.9"), &Advert{Version: 2, Priority: 200, Interval: 3})
	if m2.MasterAdverInterval() != time.Second {
		t.Fatal("v2 must not learn the interval")
	}
}

func master(t *testing.T, c Config) *Machine {
	t.Helper()
	m := New(c)
	m.Start(t0)
	m.Tick(m.Deadline())
	if m.State() != Master {
		t.Fatal("not master")
	}
	return m
}

func TestMasterReceives(t *testing.T) {
	now := at(10 * time.Second)
	cases := []struct {
		name string
		cfg  func(*Config)
		src  string
		prio int
		want string
	}{
		{"higher priority", nil, "10.0.0.9", 200, "MASTER->BACKUP (higher priority 200 advert from 10.0.0.9)"},
		{"higher priority, send advert first", func(c *Config) { c.HigherPrioSendAdvert = true }, "10.0.0.9", 200,
			"advert(prio 100); MASTER->BACKUP (higher priority 200 advert from 10.0.0.9)"},
		{"equal priority, higher address", nil, "10.0.0.3", 100, "MASTER->BACKUP (equal priority 100 advert from higher address 10.0.0.3)"},
		{"equal priority, lower address", nil, "10.0.0.1", 100, "advert(prio 100); garp(lower prio)"},
		{"lower priority forces an election", nil, "10.0.0.9", 50, "advert(prio 100); garp(lower prio)"},
		{"lower priority with lower_prio_no_advert", func(c *Config) { c.LowerPrioNoAdvert = true }, "10.0.0.9", 50, ""},
		{"priority 0: answer at once", nil, "10.0.0.9", 0, "advert(prio 100)"},
		{"own advert", nil, "10.0.0.2", 100, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conf := cfg(100)
			if c.cfg != nil {
				c.cfg(&conf)
			}
			m := master(t, conf)
			expect(t, m.Receive(now, ap(c.src), adv(c.prio, 100)), c.want)
		})
	}
}

func TestEffectivePriority(t *testing.T) {
	m := master(t, cfg(100))
	expect(t, m.SetPriority(at(5*time.Second), -30), "advert(prio 1)")
	expect(t, m.SetPriority(at(5*time.Second), 300), "advert(prio 254)")
	b := New(cfg(100))
	b.Start(t0)
	expect(t, b.SetPriority(t0, 95), "")
	if b.Priority() != 95 || b.SkewTime() != ms(628.906) {
		t.Fatalf("skew at 95: %v", b.SkewTime())
	}
}

func TestFault(t *testing.T) {
	m := master(t, cfg(100))
	expect(t, m.SetFault(at(5*time.Second), true, "eth0 down"), "advert(prio 0); advert(prio 0); MASTER->FAULT (eth0 down)")
	expect(t, m.Receive(at(6*time.Second), ap("10.0.0.9"), adv(50, 100)), "")
	expect(t, m.Tick(at(60*time.Second)), "")
	expect(t, m.SetFault(at(61*time.Second), false, "eth0 up"), "FAULT->BACKUP (eth0 up)")
	if m.Deadline() != at(61*time.Second).Add(ms(3609.375)) {
		t.Fatal("down timer not started after FAULT")
	}
	// Fault before start.
	f := New(cfg(100))
	f.SetFault(t0, true, "x")
	expect(t, f.Start(t0), "INIT->FAULT (tracked object down at start)")
}

func TestShutdown(t *testing.T) {
	m := master(t, cfg(100))
	expect(t, m.Shutdown(at(time.Minute)), "advert(prio 0); MASTER->STOP (shutdown)")
	b := New(cfg(100))
	b.Start(t0)
	expect(t, b.Shutdown(t0), "BACKUP->STOP (shutdown)")
}

func TestSyncGroupMovesTogether(t *testing.T) {
	a, b := New(cfg(150)), New(cfg(150))
	g := &Group{Name: "G", Members: []*Machine{a, b}, Names: []string{"VI_1", "VI_2"}}
	a.Start(t0)
	b.Start(at(time.Second)) // b's timer would run out later
	out := a.Tick(a.Deadline())
	follow := g.Follow(a.Deadline(), 0, out)
	expect(t, follow[1], "advert(prio 150); BACKUP->MASTER (sync group G: VI_1 went MASTER)")
	if s, ok := g.State(); !ok || s != Master {
		t.Fatalf("group state %v %v", s, ok)
	}
	// VI_1 faults: the whole group goes to FAULT, as keepalived, and VI_2
	// stays there (no timer, adverts ignored) while VI_1 is in FAULT.
	now := at(10 * time.Second)
	out = a.SetFault(now, true, "track down")
	follow = g.Follow(now, 0, out)
	expect(t, follow[1], "advert(prio 0); advert(prio 0); MASTER->FAULT (sync group G: VI_1 is in FAULT)")
	expect(t, follow[0], "")
	if s, ok := g.State(); !ok || s != Fault {
		t.Fatalf("group state %v %v, want FAULT", s, ok)
	}
	expect(t, b.Tick(at(time.Hour)), "")
	expect(t, b.Receive(at(time.Hour), ap("10.0.0.9"), adv(50, 100)), "")
	// VI_1 recovers: both go to BACKUP together.
	later := at(2 * time.Hour)
	out = a.SetFault(later, false, "track up")
	expect(t, out, "FAULT->BACKUP (track up)")
	follow = g.Follow(later, 0, out)
	expect(t, follow[1], "FAULT->BACKUP (sync group G: no member in FAULT)")
	// Released from the group's FAULT, the member runs its own master-down
	// timer: with no master heard it takes over (RFC 5798 §6.4.2).
	expect(t, b.Tick(b.Deadline()), "advert(prio 150); BACKUP->MASTER (master down timer expired)")
}

// A sibling's fault at start keeps the group in FAULT from the beginning.
func TestSyncGroupFaultAtStart(t *testing.T) {
	a, b := New(cfg(100)), New(cfg(100))
	g := &Group{Name: "G", Members: []*Machine{a, b}, Names: []string{"VI_1", "VI_2"}}
	a.SetFault(t0, true, "eth1 down")
	expect(t, a.Start(t0), "INIT->FAULT (tracked object down at start)")
	g.Follow(t0, 0, nil)
	expect(t, b.Start(t0), "INIT->FAULT (sync group member in FAULT at start)")
	// One member's own fault does not clear while a sibling's also holds it.
	b.SetFault(t0, true, "eth2 down")
	g.Follow(t0, 1, nil)
	expect(t, a.SetFault(at(time.Second), false, "eth1 up"), "")
	g.Follow(at(time.Second), 0, nil)
	if a.State() != Fault || b.State() != Fault {
		t.Fatal("left FAULT while a sibling is down")
	}
	expect(t, b.SetFault(at(2*time.Second), false, "eth2 up"), "FAULT->BACKUP (eth2 up)")
	expect(t, g.Follow(at(2*time.Second), 1, nil)[0], "FAULT->BACKUP (sync group G: no member in FAULT)")
}

// Two address owners (priority 255 on both sides): both start MASTER, the
// lower primary address yields on the first advert from the higher one, and
// the higher one answers the lower one's adverts to force the election.
func TestTwoOwners(t *testing.T) {
	lo := New(Config{Version: 3, Priority: 255, AdvertInt: time.Second, Preempt: true, Addr: ap("10.0.0.1")})
	hi := New(Config{Version: 3, Priority: 255, AdvertInt: time.Second, Preempt: true, Addr: ap("10.0.0.2")})
	lo.Start(t0)
	hi.Start(t0)
	expect(t, hi.Receive(at(ms(10)), ap("10.0.0.1"), adv(255, 100)), "advert(prio 255); garp(lower prio)")
	expect(t, lo.Receive(at(ms(20)), ap("10.0.0.2"), adv(255, 100)),
		"MASTER->BACKUP (equal priority 255 advert from higher address 10.0.0.2)")
	// The yielding owner follows the other while it advertises…
	for s := 1; s < 10; s++ {
		now := at(time.Duration(s) * time.Second)
		lo.Receive(now, ap("10.0.0.2"), adv(255, 100))
		expect(t, lo.Tick(now), "")
	}
	// …and takes over after Master_Down_Interval (3 s + 1/256 of a second)
	// when it stops.
	expect(t, lo.Tick(at(9*time.Second+3*time.Second+ms(3.906))), "advert(prio 255); BACKUP->MASTER (master down timer expired)")
}

func TestReconfigureKeepsState(t *testing.T) {
	m := master(t, cfg(100))
	c := cfg(100)
	c.AdvertInt = 2 * time.Second
	now := at(20 * time.Second)
	expect(t, m.Reconfigure(now, c), "")
	if m.State() != Master || m.Deadline().After(now.Add(2*time.Second)) {
		t.Fatalf("state %v next advert %v", m.State(), m.Deadline().Sub(now))
	}
	expect(t, m.Tick(m.Deadline()), "advert(prio 100)")
	b := New(cfg(100))
	b.Start(t0)
	b.Receive(at(time.Second), ap("10.0.0.9"), adv(150, 100))
	expect(t, b.Reconfigure(at(2*time.Second), cfg(120)), "")
	if b.State() != Backup || b.MasterAddr != ap("10.0.0.9") {
		t.Fatal("backup lost its master across a reconfigure")
	}
	// Becoming the address owner takes over at once.
	expect(t, b.Reconfigure(at(3*time.Second), cfg(255)), "advert(prio 255); BACKUP->MASTER (address owner (priority 255))")
	expect(t, b.Reconfigure(at(4*time.Second), cfg(100)), "")
	if b.Priority() != 100 {
		t.Fatalf("priority %d after leaving ownership", b.Priority())
	}
}

// A weight-0 script tracker with no result holds the machine in INIT:
// Start shows no state; the release starts it with what is known by then
// (docs/keepalived.md#init_fail-measured).
func TestHoldDelaysStart(t *testing.T) {
	m := New(cfg(150))
	expect(t, m.SetHold(at(0), true), "")
	expect(t, m.Start(at(0)), "")
	if m.State() != Init || !m.Held() || !m.Deadline().IsZero() {
		t.Fatalf("held start: state %v held %v deadline %v", m.State(), m.Held(), m.Deadline())
	}
	expect(t, m.SetHold(at(time.Second), true), "")
	// The first result passed 3 s in: BACKUP, down timer from then.
	expect(t, m.SetHold(at(3*time.Second), false), "INIT->BACKUP (start)")
	if m.Held() || m.Deadline() != at(3*time.Second+m.MasterDownInterval()) {
		t.Fatalf("down timer %v after release", m.Deadline().Sub(t0))
	}
	expect(t, m.SetHold(at(4*time.Second), false), "")

	// The first result failed: FAULT, never BACKUP first.
	m = New(cfg(150))
	m.SetHold(at(0), true)
	expect(t, m.Start(at(0)), "")
	expect(t, m.SetFault(at(3*time.Second), true, "chk is down"), "")
	expect(t, m.SetHold(at(3*time.Second), false), "INIT->FAULT (tracked object down at start)")

	// Released before the start: Start then proceeds as usual.
	m = New(cfg(150))
	m.SetHold(at(0), true)
	expect(t, m.SetHold(at(0), false), "")
	expect(t, m.Start(at(0)), "INIT->BACKUP (start)")

	// The owner becomes MASTER on release.
	m = New(cfg(OwnerPriority))
	m.SetHold(at(0), true)
	expect(t, m.Start(at(0)), "")
	expect(t, m.SetHold(at(time.Second), false), "advert(prio 255); INIT->MASTER (address owner (priority 255))")

	// Holding after the start changes nothing.
	m = New(cfg(150))
	m.Start(at(0))
	expect(t, m.SetHold(at(time.Second), true), "")
	if m.State() != Backup || m.Held() {
		t.Fatalf("hold after start: %v held %v", m.State(), m.Held())
	}
}
