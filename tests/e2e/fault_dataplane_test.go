package e2e

import (
	"fmt"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"
)

const (
	faultUDPPort  = 5000
	faultUDPEvery = 2 * time.Millisecond // 500 datagrams/s: a constant rate the shared machine keeps
	faultStreams  = 4
	faultSize     = 8 << 20
)

// faultLab is the flow lab (client, two XDP DR directors with VRRP, three
// reals holding the VIP on lo) plus a UDP virtual server whose reals count
// the sequence numbers they receive.
type faultLab struct {
	*flowLab
	udp []*udpCounter
}

func newFaultLab(t *testing.T, subnet int) *faultLab {
	f := &faultLab{flowLab: newFlowLab(t, subnet, "mh", "")}
	vs := fmt.Sprintf("virtual_server %s %d {\n  delay_loop 1\n  lb_algo mh\n  lb_kind DR\n  protocol UDP\n", f.vip, faultUDPPort)
	for i, r := range f.reals {
		vs += fmt.Sprintf("  real_server 10.%d.0.%d %d {\n    weight 1\n  }\n", subnet, 11+i, faultUDPPort)
		f.udp = append(f.udp, serveUDPCounter(t, r, faultUDPPort))
	}
	vs += "}\n"
	for _, c := range f.confs {
		fh, err := os.OpenFile(c, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fh.WriteString(vs)
		fh.Close()
	}
	return f
}

// received is the number of distinct datagrams the reals got, and the
// longest run of consecutive sequence numbers that none of them got.
func (f *faultLab) received(sent int) (got, longestHole int) {
	seen := map[uint32]bool{}
	for _, u := range f.udp {
		u.mu.Lock()
		for k := range u.seen {
			seen[k] = true
		}
		u.mu.Unlock()
	}
	keys := make([]int, 0, len(seen))
	for k := range seen {
		keys = append(keys, int(k))
	}
	sort.Ints(keys)
	prev := -1
	for _, k := range keys {
		longestHole = max(longestHole, k-prev-1)
		prev = k
	}
	return len(seen), max(longestHole, sent-1-prev)
}

// waitUDP waits for the stream to end and the last datagrams to land.
func waitUDP(t *testing.T, done <-chan int, count int) int {
	t.Helper()
	select {
	case sent := <-done:
		time.Sleep(300 * time.Millisecond)
		return sent
	case <-time.After(time.Duration(count)*faultUDPEvery*3 + 10*time.Second):
		t.Fatal("UDP stream did not finish")
	}
	return 0
}

// halod on the only director is SIGKILLed and started again while TCP
// streams and a constant-rate UDP stream cross it. The XDP program, its
// link and its maps are pinned, so the data plane forwards with no daemon
// at all, and the new halod adopts them: every datagram arrives, every
// stream finishes byte-exact (no reset).
func TestFaultHalodRestartNoLoss(t *testing.T) {
	f := newFaultLab(t, 182)
	f.start(t, 0)
	f.waitServing(t, 0)
	if waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[0], f.vip) }) < 0 {
		t.Fatal("d1 never became master")
	}
	const count = 4000 // 8 s at 500/s
	rst := countResets(t, f.cl, "eth0")
	udp := udpStream(t, f.cl, fmt.Sprintf("%s:%d", f.vip, faultUDPPort), count, faultUDPEvery)
	streams, reals := f.openStreams(t, faultStreams, faultSize)
	time.Sleep(time.Second)
	if err := f.halods[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.halods[0].Wait(5 * time.Second)
	killed := time.Now()
	time.Sleep(time.Second) // a second with no daemon at all
	f.start(t, 0)
	f.waitServing(t, 0)
	t.Logf("halod back and serving %v after the kill", time.Since(killed).Round(time.Millisecond))
	sent := waitUDP(t, udp, count)
	f.finish(t, streams, reals, faultSize)
	got, hole := f.received(sent)
	rst.stop()
	t.Logf("UDP: sent %d, received %d, lost %d (longest hole %d datagrams); TCP resets seen by the client: %d", sent, got, sent-got, hole, rst.n.Load())
	if rst.n.Load() != 0 {
		t.Fatalf("%d TCP resets across a halod restart", rst.n.Load())
	}
	if sent != count || got != sent {
		t.Fatalf("UDP lost %d of %d datagrams across a halod restart (longest hole %d)", sent-got, sent, hole)
	}
}

// The master director dies (halod SIGKILL, link down) under TCP streams
// and a constant-rate UDP stream: the backup takes the VIP after
// Master_Down_Interval, GARPs, and forwards every established flow to its
// real through the same Maglev table: every TCP stream finishes
// byte-exact (resets = 0); UDP loses at most the datagrams of the takeover
// window, in one hole. (On this lab's bridge, as on a switch, frames for
// the dead master's MAC are flooded once its port is down, and d2's XDP
// program forwards them before it even holds the VIP: the hole is
// usually empty.) DR only here: NAT's takeover without state is covered by
// TestXDPNAT (flow table and pins wiped), a two-director NAT/TUN failover is not
// written yet.
func TestFaultMasterKilledBackupTakesOver(t *testing.T) {
	f := newFaultLab(t, 183)
	f.start(t, 0)
	f.start(t, 1)
	f.waitServing(t, 0)
	f.waitServing(t, 1)
	if waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[0], f.vip) }) < 0 {
		t.Fatal("d1 never became master")
	}
	const count = 4000
	rst := countResets(t, f.cl, "eth0")
	udp := udpStream(t, f.cl, fmt.Sprintf("%s:%d", f.vip, faultUDPPort), count, faultUDPEvery)
	streams, reals := f.openStreams(t, faultStreams, faultSize)
	time.Sleep(time.Second)
	if err := f.halods[0].Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	f.dirs[0].IP("link", "set", "eth0", "down")
	took := waitFor(10*time.Second, func() bool { return hasAddr(f.dirs[1], f.vip) })
	if took < 0 {
		t.Fatalf("d2 never took the VIP:\n%s", f.halods[1].Output())
	}
	d2mac := f.dirs[1].Link("eth0").HardwareAddr.String()
	follow := waitFor(5*time.Second, func() bool { return neighMAC(f.cl, f.vip) == d2mac })
	sent := waitUDP(t, udp, count)
	f.finish(t, streams, reals, faultSize)
	got, hole := f.received(sent)
	rst.stop()
	if rst.n.Load() != 0 {
		t.Fatalf("%d TCP resets across the failover", rst.n.Load())
	}
	window := time.Duration(hole) * faultUDPEvery
	t.Logf("VIP on d2 %v after the kill; client neighbour on d2 after %v more; UDP sent %d received %d lost %d (one hole of %d datagrams ≈ %v); TCP resets 0",
		took.Round(time.Millisecond), follow.Round(time.Millisecond), sent, got, sent-got, hole, window)
	if follow < 0 {
		t.Fatalf("client neighbour entry for the VIP is %q, not d2's %s", neighMAC(f.cl, f.vip), d2mac)
	}
	// Master_Down_Interval at priority 100, advert_int 0.1 s: 3 × 0.1 +
	// (256-100)/256 × 0.1 ≈ 0.36 s; the loss window may not exceed it by
	// more than a generous 2 s on the shared machine, and all loss is one
	// hole (nothing lost before the kill or after the takeover).
	if window > 360*time.Millisecond+2*time.Second {
		t.Fatalf("UDP hole of %v, want about Master_Down_Interval", window)
	}
	if sent-got != hole {
		t.Fatalf("UDP lost %d datagrams in more than one hole (longest %d)", sent-got, hole)
	}
}
