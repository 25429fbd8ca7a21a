package e2e

import (
	"testing"
	"time"
)

// The members of a vrrp_sync_group move together
// (docs/keepalived.md#sync-groups): halod (n1) runs VI_1 and VI_2 in one
// group at priority 150, keepalived 2.2.7 (n2) runs both at 100. VI_1 tracks
// an interface of its own; when it goes down VI_1 is in FAULT, and VI_2,
// although nothing is wrong with it, must leave MASTER as well and stay out
// while its sibling is in FAULT, so keepalived ends up holding both VIPs.
// When the interface comes back both instances return to n1 (150 > 100).
// keepalived 2.2.7 in n1's place, same scenario: "Syncing instances to FAULT
// state", VI_2 in FAULT at once, both VIPs on the peer until the interface
// returned, both back four seconds after.
func TestWiringSyncGroupFollows(t *testing.T) {
	w := newWLab(t, 113, "n1", "n2")
	n1, n2 := w.ns["n1"], w.ns["n2"]
	w.l.Veth(n1, "trk0", n1, "trk1")
	vip1, vip2 := w.ip(100), w.ip(101)

	halodConf := wGlobal("n1") + `vrrp_sync_group G {
  group {
    VI_1
    VI_2
  }
}
` + wInstance("VI_1", 61, 150, vip1, "  track_interface {\n    trk0\n  }") +
		wInstance("VI_2", 62, 150, vip2, "")
	keepConf := wGlobal("n2") + wInstance("VI_1", 61, 100, vip1, "") + wInstance("VI_2", 62, 100, vip2, "")
	startHalod(t, n1, writeFile(t, "n1.conf", halodConf))
	startKeepalivedPeer(t, n2, writeFile(t, "n2.conf", keepConf))

	waitHolder(t, 10*time.Second, vip1, "n1", "start: VI_1 on the priority-150 node", n1, n2)
	waitHolder(t, 5*time.Second, vip2, "n1", "start: VI_2 on the priority-150 node", n1, n2)
	holdFor(t, 1500*time.Millisecond, vip2, "n1", "start", n1, n2)

	n1.IP("link", "set", "trk0", "down")
	took := waitHolder(t, 8*time.Second, vip1, "n2", "VI_1 in FAULT on n1", n1, n2)
	t.Logf("VI_1 on keepalived %v after its tracked interface went down", took)
	// VI_2 has no fault of its own: only following its group moves it.
	took = waitHolder(t, 8*time.Second, vip2, "n2", "VI_2 must follow VI_1 out of MASTER", n1, n2)
	t.Logf("VI_2 followed: on keepalived after %v", took)
	// And it stays out while its sibling is in FAULT, although its own
	// priority (150) beats keepalived's (100).
	holdFor(t, 5*time.Second, vip2, "n2", "VI_2 must not preempt while VI_1 is in FAULT", n1, n2)
	holdFor(t, 100*time.Millisecond, vip1, "n2", "VI_1 in FAULT", n1, n2)

	n1.IP("link", "set", "trk0", "up")
	waitHolder(t, 10*time.Second, vip1, "n1", "fault cleared: VI_1 preempts back", n1, n2)
	waitHolder(t, 10*time.Second, vip2, "n1", "fault cleared: VI_2 back with its group", n1, n2)
}
