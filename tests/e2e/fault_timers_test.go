package e2e

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/halo-lb/halo/internal/testkit/lab"
	"github.com/halo-lb/halo/pkg/control"
)

const faultAdvert = 500 * time.Millisecond // advert_int 0.5 in the configs below

// Hostile scripts and a hammered control plane must not cost an advert.
// n1 (priority 150) runs a notify_master that hangs, a notify_backup and
// notify that fail, and a vrrp_script that never exits (killed by its
// timeout, every interval); n2 (100) is the peer. A third namespace
// captures every advert on the wire: the longest silence of n1 stays
// below advert_int + slack (one missed advert would double it), and n2
// never sends one (it never thought n1 dead). Then the same with the
// control socket and the metrics endpoint under concurrent, bounded load.
func TestFaultTimersSurviveScriptsAndLoad(t *testing.T) {
	v := newVRRPLab(t, 181)
	const vip = "10.181.0.100"
	fails := wScript(t, "fail.sh", "echo failing >&2\nexit 3")
	n1conf := fmt.Sprintf(`global_defs {
  router_id n1
  script_user root
  enable_script_security
}
vrrp_script never_exits {
  script "/bin/sleep 1000"
  interval 1
  timeout 1
  weight 10
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 71
  priority 150
  version 3
  advert_int 0.5
  track_script {
    never_exits
  }
  notify_master "/bin/sleep 1000"
  notify_backup %s
  notify %s
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
`, fails, fails, vip)
	n2conf := fmt.Sprintf(`global_defs {
  router_id n2
}
vrrp_instance VI_1 {
  state BACKUP
  interface eth0
  virtual_router_id 71
  priority 100
  version 3
  advert_int 0.5
  virtual_ipaddress {
    %s/24 dev eth0
  }
}
`, vip)
	sock := filepath.Join(t.TempDir(), "halod.sock")
	cap := captureAdverts(t, v.cl, "eth0")
	p1 := startHalod(t, v.n1, writeFile(t, "n1.conf", n1conf), "--control", sock, "--metrics-addr", "127.0.0.1:9650")
	startHalod(t, v.n2, writeFile(t, "n2.conf", n2conf))
	if waitFor(10*time.Second, func() bool { return hasAddr(v.n1, vip) }) < 0 {
		t.Fatalf("n1 never became master:\n%s", p1.Output())
	}
	n1, n2 := "10.181.0.1", "10.181.0.2"
	window := 8 * time.Second
	limit := faultAdvert + advertSlack(faultAdvert)

	check := func(what string, from time.Time) {
		t.Helper()
		to := time.Now()
		got := cap.since(n1, from)
		gap := maxGap(got, from, to)
		t.Logf("%s: %d adverts from n1 in %v, longest gap %v (limit %v)", what, len(got), to.Sub(from).Round(time.Millisecond), gap.Round(time.Millisecond), limit)
		if gap > limit {
			t.Errorf("%s: n1 was silent for %v: a missed advert (advert_int %v)", what, gap, faultAdvert)
		}
		if want := int(to.Sub(from) / faultAdvert); len(got) < want-1 {
			t.Errorf("%s: %d adverts, want about %d", what, len(got), want)
		}
		if other := cap.since(n2, from); len(other) > 0 {
			t.Errorf("%s: n2 sent %d adverts: it took n1 for dead", what, len(other))
		}
		if hasAddr(v.n2, vip) {
			t.Errorf("%s: VIP on n2", what)
		}
	}

	// Phase 1: the scripts are already hanging and failing; let the
	// vrrp_script's timeouts pile up.
	from := time.Now()
	time.Sleep(window / 2)
	sleepers := nsProcs(v.n1, "/bin/sleep\x001000")
	time.Sleep(window / 2)
	check("hung notify + never-exiting vrrp_script", from)
	if sleepers == 0 || !strings.Contains(p1.Output(), "name=never_exits ok=false") || !strings.Contains(p1.Output(), "exit=3") {
		t.Fatalf("the hostile scripts did not run as planned (%d hung sleeps):\n%s", sleepers, p1.Output())
	}

	// Phase 2: concurrent control socket and metrics clients, bounded in
	// count (per worker) and time (the window).
	const workers, perWorker = 4, 400
	var ctlOK, metOK, errs atomic.Int64
	from = time.Now()
	deadline := from.Add(window)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(2)
		go func() {
			defer wg.Done()
			c := control.NewClient(sock)
			for i := 0; i < perWorker && time.Now().Before(deadline); i++ {
				if _, _, err := c.Status(); err != nil {
					errs.Add(1)
				} else {
					ctlOK.Add(1)
				}
				if _, _, err := c.Dump(); err == nil {
					ctlOK.Add(1)
				}
			}
		}()
		go func() {
			defer wg.Done()
			v.n1.Do(func() error {
				for i := 0; i < perWorker && time.Now().Before(deadline); i++ {
					c, err := net.DialTimeout("tcp", "127.0.0.1:9650", time.Second)
					if err != nil {
						errs.Add(1)
						continue
					}
					c.SetDeadline(time.Now().Add(3 * time.Second))
					fmt.Fprintf(c, "GET /metrics HTTP/1.0\r\n\r\n")
					if b, err := io.ReadAll(c); err == nil && len(b) > 100 {
						metOK.Add(1)
					} else {
						errs.Add(1)
					}
					c.Close()
				}
				return nil
			})
		}()
	}
	wg.Wait()
	if rest := time.Until(deadline); rest > 0 {
		time.Sleep(rest)
	}
	t.Logf("load: %d control replies, %d metrics scrapes, %d errors", ctlOK.Load(), metOK.Load(), errs.Load())
	if ctlOK.Load() == 0 || metOK.Load() == 0 {
		t.Fatalf("the load never reached halod (control %d, metrics %d, errors %d)", ctlOK.Load(), metOK.Load(), errs.Load())
	}
	check("control socket + metrics under load", from)
}

// nsProcs counts processes in ns whose command line starts with cmdline
// (arguments NUL-separated, as in /proc/PID/cmdline).
func nsProcs(ns *lab.NS, cmdline string) int {
	out, _ := exec.Command("ip", "netns", "pids", ns.Name).Output()
	n := 0
	for _, pid := range strings.Fields(string(out)) {
		b, _ := os.ReadFile("/proc/" + pid + "/cmdline")
		if strings.HasPrefix(string(b), cmdline) {
			n++
		}
	}
	return n
}
