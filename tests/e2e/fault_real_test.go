package e2e

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/internal/testkit/sink"
)

// A real server dies, comes back, then flaps quickly, and finally two
// reals fail so quorum is lost and comes back, all through the XDP data
// plane (DR) with HTTP_GET checks (delay_loop 1, retry 1,
// delay_before_retry 1). New connections from the client never reach the
// dead real (every one is answered, none by it); the flapping real changes
// state no faster than the checker's pace allows (two failures 1 s apart
// to go down, a check at delay_loop to come up: transitions at least
// ~1 s apart); the sorry server takes every new connection while quorum
// is lost and none once it is back.
func TestFaultRealDiesFlapsAndQuorum(t *testing.T) {
	w := newWLab(t, 185)
	vip := w.ip(100)
	node := func(tag string, host int) *lab.NS {
		n := w.l.NS(tag)
		port := w.sw.Plug(n, "eth0")
		if tag == "dir" {
			sink.AttachIn(t, w.sw.NS, port) // docs/lab.md#veth-peer-needs-xdp
		}
		n.Addr("eth0", fmt.Sprintf("%s/24", w.ip(host)))
		n.TxOff("eth0") // docs/lab.md#checksum-offload
		return n
	}
	dir, cl := node("dir", 1), node("cl", 2)
	reals := map[string]*wReal{}
	for i, name := range []string{"r1", "r2", "r3", "sorry"} {
		n := node(name, 11+i)
		n.IP("addr", "add", vip+"/32", "dev", "lo")
		for _, k := range []string{"all", "eth0"} {
			n.Sysctl("net.ipv4.conf."+k+".arp_ignore", "1")
			n.Sysctl("net.ipv4.conf."+k+".arp_announce", "2")
		}
		r := &wReal{ns: n, name: name, addr: "0.0.0.0:80"}
		r.start(t)
		reals[name] = r
	}
	logf := filepath.Join(t.TempDir(), "notify.log")
	note := wScript(t, "note.sh", fmt.Sprintf(`echo "$(date +%%s.%%N) $*" >> %s`, logf))
	var rs strings.Builder
	for i, name := range []string{"r1", "r2", "r3"} {
		fmt.Fprintf(&rs, `  real_server %s 80 {
    weight 1
    notify_up "%s up %s"
    notify_down "%s down %s"
    HTTP_GET {
      url {
        path /healthz
      }
      connect_timeout 1
      retry 1
      delay_before_retry 1
    }
  }
`, w.ip(11+i), note, name, note, name)
	}
	conf := writeFile(t, "dir.conf", wGlobal("dir")+fmt.Sprintf(`vrrp_instance VI_1 {
  state MASTER
  interface eth0
  virtual_router_id 85
  priority 255
  virtual_ipaddress {
    %s/24
  }
}
virtual_server %s 80 {
  delay_loop 1
  lb_algo rr
  lb_kind DR
  protocol TCP
  quorum 2
  sorry_server %s 80
%s}
dataplane {
  backend xdp
  interface eth0
}
`, vip, vip, w.ip(14), rs.String()))
	startHalod(t, dir, conf, "--dataplane", "xdp", "--bpffs", filepath.Join(w.l.BPFFS(), "halo"))

	served := func(n int) (names []string, failed int) {
		for i := 0; i < n; i++ {
			body, err := cl.HTTPGet(vip+":80", "/", 2*time.Second)
			if err != nil {
				failed++
				continue
			}
			names = append(names, strings.TrimSpace(body))
		}
		return names, failed
	}
	only := func(got []string, allowed ...string) bool {
		for _, g := range got {
			if !slices.Contains(allowed, g) {
				return false
			}
		}
		return true
	}
	all3 := func(got []string) bool {
		return only(got, "r1", "r2", "r3") && slices.Contains(got, "r1") && slices.Contains(got, "r2") && slices.Contains(got, "r3")
	}
	// events returns the notify lines for real name: time and up/down.
	type event struct {
		at   time.Time
		what string
	}
	events := func(name string) []event {
		var out []event
		for _, line := range readLines(logf) {
			f := strings.Fields(line)
			if len(f) != 3 || f[2] != name {
				continue
			}
			sec, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				continue
			}
			out = append(out, event{time.Unix(0, int64(sec*1e9)), f[1]})
		}
		return out
	}
	last := func(name string) string {
		if ev := events(name); len(ev) > 0 {
			return ev[len(ev)-1].what
		}
		return ""
	}
	var got []string
	var failed int
	if waitFor(20*time.Second, func() bool { got, failed = served(12); return failed == 0 && all3(got) }) < 0 {
		t.Fatalf("the VIP is not served by r1, r2, r3: %q (%d failed)", got, failed)
	}

	// r1 dies: its server is gone (connections to it would be refused).
	reals["r1"].stop()
	died := time.Now()
	if waitFor(10*time.Second, func() bool { return last("r1") == "down" }) < 0 {
		t.Fatalf("r1 never reported down: %q", readLines(logf))
	}
	t.Logf("r1 down %v after its server died", time.Since(died).Round(time.Millisecond))
	got, failed = served(30)
	if failed > 0 || !only(got, "r2", "r3") {
		t.Fatalf("with r1 down: %d of 30 new connections failed, served by %q", failed, got)
	}

	reals["r1"].start(t)
	if waitFor(10*time.Second, func() bool { return last("r1") == "up" }) < 0 {
		t.Fatalf("r1 never came back up: %q", readLines(logf))
	}
	if waitFor(5*time.Second, func() bool { got, failed = served(12); return failed == 0 && all3(got) }) < 0 {
		t.Fatalf("r1 back: new connections %q (%d failed)", got, failed)
	}

	// r1 flaps: its check fails and passes, while r1 itself keeps
	// answering (so every connection must still succeed). Fast: every
	// 200 ms for 4 s, faster than retry × delay_before_retry can confirm a
	// failure. Slow: 2.2 s failing, 1.2 s passing, three times: each phase
	// outlasts the checker's pace, so r1 does go down and up.
	flap := func(what string, fail, pass time.Duration, d time.Duration) (n int, minGap time.Duration) {
		from := time.Now()
		conns, connFailed := 0, 0
		for time.Since(from) < d {
			for _, ph := range []struct {
				failing bool
				d       time.Duration
			}{{true, fail}, {false, pass}} {
				reals["r1"].setFailing(ph.failing)
				until := time.Now().Add(ph.d)
				for time.Now().Before(until) {
					_, f := served(1)
					conns, connFailed = conns+1, connFailed+f
					time.Sleep(50 * time.Millisecond)
				}
			}
		}
		reals["r1"].setFailing(false)
		if waitFor(10*time.Second, func() bool { return last("r1") != "down" }) < 0 {
			t.Fatalf("%s: r1 did not settle up after flapping", what)
		}
		var tr []event
		for _, e := range events("r1") {
			if e.at.After(from) {
				tr = append(tr, e)
			}
		}
		minGap = -1
		for i := 1; i < len(tr); i++ {
			if g := tr[i].at.Sub(tr[i-1].at); minGap < 0 || g < minGap {
				minGap = g
			}
		}
		t.Logf("%s flapping for %v: %d transitions of r1, shortest gap %v; %d connections, %d failed", what, time.Since(from).Round(time.Millisecond), len(tr), minGap.Round(time.Millisecond), conns, connFailed)
		// delay_before_retry 1 s is the floor between a pass and the
		// confirming failure; 0.8 s leaves room for the shared machine.
		if minGap >= 0 && minGap < 800*time.Millisecond {
			t.Errorf("%s: r1 changed state %v apart, faster than delay_before_retry (1 s)", what, minGap)
		}
		if connFailed > 0 {
			t.Errorf("%s: %d of %d connections failed while r1 flapped (it kept answering)", what, connFailed, conns)
		}
		return len(tr), minGap
	}
	if n, _ := flap("fast", 200*time.Millisecond, 200*time.Millisecond, 4*time.Second); n > 2 {
		t.Errorf("fast flapping: %d transitions; a 200 ms failure cannot be confirmed by a retry 1 s later", n)
	}
	if n, _ := flap("slow", 2200*time.Millisecond, 1200*time.Millisecond, 3*3400*time.Millisecond); n < 2 {
		t.Errorf("slow flapping: %d transitions; 2.2 s failures must take r1 down", n)
	}

	// Quorum: r2 and r3 fail their checks; live weight 1 < quorum 2.
	reals["r2"].setFailing(true)
	reals["r3"].setFailing(true)
	took := waitFor(15*time.Second, func() bool { got, failed = served(10); return failed == 0 && only(got, "sorry") })
	if took < 0 {
		t.Fatalf("quorum lost: want every connection on the sorry server, got %q (%d failed)", got, failed)
	}
	t.Logf("quorum lost: sorry server serving after %v", took.Round(time.Millisecond))
	reals["r2"].setFailing(false)
	took = waitFor(15*time.Second, func() bool {
		got, failed = served(10)
		return failed == 0 && only(got, "r1", "r2") && slices.Contains(got, "r1") && slices.Contains(got, "r2")
	})
	if took < 0 {
		t.Fatalf("quorum back: want r1 and r2 only, got %q (%d failed)", got, failed)
	}
	t.Logf("quorum back: reals serving after %v", took.Round(time.Millisecond))
}
