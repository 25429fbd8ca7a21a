package e2e

import (
	"syscall"
	"testing"
	"time"
)

// Preemption settings with a returning higher-priority node
// (docs/keepalived.md#preemption). n1 (150) and n2 (100) both run halod; n1
// wins at start, is stopped (SIGTERM: priority 0, n2 takes over after its
// skew), and comes back while n2 is master.
//
//   - nopreempt: the returning n1 accepts n2's lower-priority adverts and
//     stays backup for as long as n2 advertises (keepalived 2.2.7 in n1's
//     place: still BACKUP 9 s after joining a priority-100 master).
//   - preempt_delay 7: the returning n1 waits 7 s after start (or after the
//     first lower advert) before preempting, then discards the lower adverts
//     and takes over a Master_Down_Interval later (keepalived 2.2.7 in the
//     same scenario: master 10.3 s after start); without the delay it would
//     preempt after Master_Down_Interval, about 3.4 s.
func TestWiringPreemption(t *testing.T) {
	for i, c := range []string{"nopreempt", "preempt_delay"} {
		t.Run(c, func(t *testing.T) {
			t.Parallel()
			runPreemption(t, 114+i, c)
		})
	}
}

func runPreemption(t *testing.T, subnet int, variant string) {
	w := newWLab(t, subnet, "n1", "n2")
	n1, n2 := w.ns["n1"], w.ns["n2"]
	vip := w.ip(100)
	extra := "  nopreempt"
	if variant == "preempt_delay" {
		extra = "  preempt_delay 7"
	}
	c1 := writeFile(t, "n1.conf", wGlobal("n1")+wInstance("VI_1", 51, 150, vip, extra))
	c2 := writeFile(t, "n2.conf", wGlobal("n2")+wInstance("VI_1", 51, 100, vip, ""))
	p1 := startHalod(t, n1, c1)
	startHalod(t, n2, c2)
	waitHolder(t, 10*time.Second, vip, "n1", "start: no master yet, the higher priority times out first", n1, n2)

	if err := p1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if exited, _ := p1.Wait(10 * time.Second); !exited {
		t.Fatal("halod on n1 did not exit on SIGTERM")
	}
	waitHolder(t, 5*time.Second, vip, "n2", "n1 stopped", n1, n2)
	holdFor(t, 1500*time.Millisecond, vip, "n2", "n1 stopped", n1, n2)

	startHalod(t, n1, c1)
	start := time.Now()
	switch variant {
	case "nopreempt":
		// Master_Down at 150 is 3.4 s: well past it, n1 is still backup.
		holdFor(t, 8*time.Second, vip, "n2", "nopreempt: the returning higher-priority node must not take over", n1, n2)
	case "preempt_delay":
		holdFor(t, 5500*time.Millisecond, vip, "n2", "preempt_delay 7: no preemption before the delay", n1, n2)
		waitHolder(t, 10*time.Second, vip, "n1", "preempt_delay 7: preempts once the delay is over", n1, n2)
		took := time.Since(start)
		t.Logf("preempt_delay 7: n1 master %v after it came back", took.Round(100*time.Millisecond))
		if took < 6500*time.Millisecond {
			t.Fatalf("preempted %v after start, before preempt_delay 7 s", took)
		}
	}
}
