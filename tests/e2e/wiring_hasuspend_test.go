package e2e

import (
	"fmt"
	"syscall"
	"testing"
	"time"
)

// ha_suspend pauses a virtual server's checkers while its address is not on
// this node (docs/keepalived.md#omega-and-ha_suspend). n2 (priority 100)
// checks real r1 every second for the virtual server on the VIP; n1
// (priority 150, no virtual server) holds the VIP. The checks are counted
// where they land, at r1: none while n2 is backup, some as soon as n2 is
// master, none again once n1 is back and n2 is backup again.
func TestWiringHASuspend(t *testing.T) {
	w := newWLab(t, 116, "n1", "n2", "r1")
	n1, n2 := w.ns["n1"], w.ns["n2"]
	vip := w.ip(100)
	r1 := &wReal{ns: w.ns["r1"], name: "r1", addr: w.ip(3) + ":80"}
	r1.start(t)

	c1 := writeFile(t, "n1.conf", wGlobal("n1")+wInstance("VI_1", 51, 150, vip, ""))
	c2 := writeFile(t, "n2.conf", wGlobal("n2")+wInstance("VI_1", 51, 100, vip, "")+fmt.Sprintf(`
virtual_server %s 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  ha_suspend
  real_server %s 80 {
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
      retry 0
    }
  }
}
`, vip, w.ip(3)))
	p1 := startHalod(t, n1, c1)
	waitHolder(t, 10*time.Second, vip, "n1", "n1 alone", n1, n2)
	startHalod(t, n2, c2)
	// Let n2 settle into BACKUP behind n1's adverts.
	time.Sleep(2500 * time.Millisecond)
	from := time.Now()
	holdFor(t, 5*time.Second, vip, "n1", "n2 is backup", n1, n2)
	if hits := r1.checks(from); len(hits) != 0 {
		t.Fatalf("ha_suspend: %d checks reached r1 in 5 s while n2 was backup (delay_loop 1), want 0 (first from %s)",
			len(hits), hits[0].from)
	}

	if err := p1.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	waitHolder(t, 5*time.Second, vip, "n2", "n1 stopped: n2 master", n1, n2)
	from = time.Now()
	if waitFor(5*time.Second, func() bool { return len(r1.checks(from)) >= 2 }) < 0 {
		t.Fatalf("ha_suspend: n2 is master but only %d checks reached r1 in 5 s (delay_loop 1)", len(r1.checks(from)))
	}

	startHalod(t, n1, c1)
	waitHolder(t, 10*time.Second, vip, "n1", "n1 back: preempts n2", n1, n2)
	time.Sleep(1500 * time.Millisecond) // an attempt already in flight may land
	from = time.Now()
	time.Sleep(4 * time.Second)
	if hits := r1.checks(from); len(hits) != 0 {
		t.Fatalf("ha_suspend: %d checks reached r1 in 4 s after n2 went back to backup, want 0", len(hits))
	}
}
