package e2e

import (
	"fmt"
	"os"
	"syscall"
	"testing"
	"time"
)

// The soak (make soak; HALO_SOAK=DURATION, e.g. 10m): the master-kill
// scenario over and over for the whole duration. Each round streams TCP
// (byte-exact) and constant-rate UDP through the VIP, SIGKILLs the master
// director's halod and downs its link, waits for the other director, then
// brings the dead one back (it preempts: a second failover under the
// next round's traffic). Every round must keep every stream byte-exact
// and lose UDP only in one takeover-sized hole; the totals are logged for
// docs/reliability.md. Skipped unless HALO_SOAK is set.
func TestFaultSoakFailovers(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("HALO_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("HALO_SOAK is not set (make soak sets it): the soak runs only on request")
	}
	f := newFaultLab(t, 187)
	f.start(t, 0)
	f.start(t, 1)
	f.waitServing(t, 0)
	f.waitServing(t, 1)
	if waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[0], f.vip) }) < 0 {
		t.Fatal("d1 never became master")
	}
	const count = 1500 // 3 s at 500/s
	rst := countResets(t, f.cl, "eth0")
	deadline := time.Now().Add(d)
	var rounds, lostTotal, sentTotal int
	var worstTake, worstHole time.Duration
	for rounds < 1000 && time.Now().Before(deadline) {
		rounds++
		m := 0
		if !hasAddr(f.dirs[0], f.vip) {
			m = 1
		}
		b := 1 - m
		for _, u := range f.udp {
			u.mu.Lock()
			u.seen = map[uint32]bool{}
			u.mu.Unlock()
		}
		udp := udpStream(t, f.cl, fmt.Sprintf("%s:%d", f.vip, faultUDPPort), count, faultUDPEvery)
		streams, reals := f.openStreams(t, 2, 4<<20)
		time.Sleep(500 * time.Millisecond)
		if err := f.halods[m].Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		f.halods[m].Wait(5 * time.Second)
		f.dirs[m].IP("link", "set", "eth0", "down")
		took := waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[b], f.vip) })
		if took < 0 {
			t.Fatalf("round %d: d%d never took the VIP", rounds, b+1)
		}
		sent := waitUDP(t, udp, count)
		f.finish(t, streams, reals, 4<<20)
		got, hole := f.received(sent)
		if sent-got != hole {
			t.Fatalf("round %d: UDP lost %d in more than one hole (longest %d)", rounds, sent-got, hole)
		}
		if w := time.Duration(hole) * faultUDPEvery; w > 360*time.Millisecond+2*time.Second {
			t.Fatalf("round %d: UDP hole of %v", rounds, w)
		}
		worstTake = max(worstTake, took)
		worstHole = max(worstHole, time.Duration(hole)*faultUDPEvery)
		sentTotal, lostTotal = sentTotal+sent, lostTotal+sent-got
		// The dead director comes back as after a reboot of halod: its
		// leftover VIP removed, link up, halod started on its pins.
		f.dirs[m].IP("addr", "flush", "dev", "eth0", "to", f.vip+"/32")
		f.dirs[m].IP("link", "set", "eth0", "up")
		f.start(t, m)
		f.waitServing(t, m)
	}
	rst.stop()
	t.Logf("soak %v: %d failovers, every TCP stream byte-exact, %d TCP resets; UDP sent %d lost %d; worst takeover %v, worst UDP hole %v",
		d, rounds, rst.n.Load(), sentTotal, lostTotal, worstTake.Round(time.Millisecond), worstHole)
	if rst.n.Load() != 0 {
		t.Fatalf("%d TCP resets during the soak", rst.n.Load())
	}
}
